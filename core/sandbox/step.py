"""One step in the OS sandbox (core.sandbox.isolation explains the layers): what a step is
(`Step`) and where it may run (`Backend`), the bwrap command line that confines it, starting it
under its resource limits, and reading its output until it exits or its deadline, when it and its
pid namespace are killed."""
from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from glob import glob

DEFAULT_TIMEOUT = 10.0
DEFAULT_MEMORY_MB = 512
MAX_OUTPUT = 8_000            # characters of each stream a result keeps (its head and its tail)
MAX_FILE_BYTES = 16 * 1024 * 1024          # the largest file a run step may write
COMPILE_FILE_BYTES = 256 * 1024 * 1024     # ... and a compile step (a linker's output and temporaries)
DEFAULT_PROCESSES = 256       # RLIMIT_NPROC inside the sandbox (threads count)
SANDBOX_UID = 65534
WORKDIR = "/sandbox"          # where the step's directory is mounted inside the sandbox
KILL_DRAIN = 0.5              # seconds the pipes are still drained after the kill at the deadline
SETUP_TIMEOUT = 10.0
EXIT_LEFTOVER = 86            # the wrapper's exit code when the program left processes running
LEFTOVER_MARK = "shoal-sandbox: the program left processes running"

# Inside the sandbox: set the process limit (it counts in the sandbox's own user namespace), run the
# step, then fail it if any process it started is still running (the pid namespace's init is 1).
_WRAPPER = r'''
ulimit -p "$1" 2>/dev/null || ulimit -u "$1" 2>/dev/null || exit 125
shift
"$@"
rc=$?
left() {
  for p in /proc/[0-9]*; do
    n=${p#/proc/}
    [ "$n" = 1 ] || [ "$n" = "$$" ] || return 0
  done
  return 1
}
if left; then
  sleep 0.2
  if left; then
    echo "%s after it exited" >&2
    exit %d
  fi
fi
exit $rc
''' % (LEFTOVER_MARK, EXIT_LEFTOVER)


@dataclass(frozen=True)
class Step:
    """One command of a program's build-and-run (argv relative to the working directory)."""
    argv: tuple[str, ...]
    phase: str = "run"              # compile | run
    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    memory_kind: str = "as"         # as (address space) | data: JVM and V8 reserve far more than they use
    processes: int = DEFAULT_PROCESSES
    open_files: int = 256
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Backend:
    kind: str                 # bwrap | unsafe (opted in, no OS sandbox) | none (refuse)
    bwrap: str = ""
    as_root: bool = False     # root: the id map is written here and setpriv drops to SANDBOX_UID
    problem: str | None = None

    def describe(self) -> str:
        if self.kind == "bwrap":
            how = "uid 65534 via an id map written as root" if self.as_root else "uid 65534 in a user namespace"
            return f"bubblewrap ({self.bwrap}; {how})"
        return f"{'UNSAFE' if self.kind == 'unsafe' else 'none'}: {self.problem}"


# --------------------------------------------------------------------------- what the sandbox sees

_ETC = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "java-*", "python3*",
        "ssl/openssl.cnf")


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def extra_roots(paths) -> list[str]:
    """`paths` (install prefixes) that are not already under /usr, without nesting; never `/`, the
    home directory, the current directory or a parent of them (where the database lives)."""
    private = {os.path.realpath(p) for p in (os.path.expanduser("~"), os.getcwd())}
    keep: list[str] = []
    for p in sorted({os.path.normpath(p) for p in paths if p}, key=len):
        if p in ("/", "/usr") or _under(p, ["/usr"]) or _under(p, keep) or os.path.realpath(p) == "/":
            continue
        if any(_under(priv, [os.path.realpath(p)]) for priv in private) or not os.path.isdir(p):
            continue
        keep.append(p)
    return keep


def _bind_args(roots: list[str]) -> list[str]:
    """Read-only binds of `roots`, their parents made traversable (bwrap copies the host's modes,
    and /root is 0700: the sandbox's uid could not reach a toolchain under it)."""
    args: list[str] = []
    made: set[str] = set()
    for root in roots:
        parents = []
        parent = os.path.dirname(root)
        while parent not in ("/", ""):
            parents.append(parent)
            parent = os.path.dirname(parent)
        for d in reversed(parents):
            if d not in made and d not in ("/usr", "/etc"):
                args += ["--perms", "0755", "--dir", d]
                made.add(d)
        args += ["--ro-bind", root, root]
    return args


def _python_roots() -> list[str]:
    exe = os.path.realpath(sys.executable)
    return [sys.prefix, os.path.realpath(sys.prefix), sys.base_prefix, os.path.realpath(sys.base_prefix),
            os.path.dirname(os.path.dirname(exe))]


@lru_cache(maxsize=1)
def _system_args() -> tuple[str, ...]:
    """bwrap arguments for the read-only system: /usr, the top-level links or dirs, a few /etc
    entries, the Python interpreter (the venv and its base prefix)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--perms", "0755", "--dir", "/etc"]
    etc = [path for pattern in _ETC for path in sorted(glob(f"/etc/{pattern}"))]
    return tuple(args + _bind_args(etc) + _bind_args(extra_roots(_python_roots())))


def _bwrap_argv(backend: Backend, step: Step, workdir: str, env: dict[str, str], binds: tuple[str, ...]) -> list[str]:
    cmd = [backend.bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
           "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox", "--cap-drop", "ALL"]
    inner = ["/bin/sh", "-c", _WRAPPER, "sh", str(step.processes), *step.argv]
    if backend.as_root:   # setpriv (ns uid 0 = real root) becomes uid 65534 = real 65534, for good
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
        inner = [shutil.which("setpriv") or "setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}",
                 "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--", *inner]
    else:
        cmd += ["--disable-userns"]
    cmd += [*_system_args()]
    cmd += _bind_args([r for r in extra_roots(binds) if not _under(r, extra_roots(_python_roots()))])
    cmd += ["--proc", "/proc", "--dev", "/dev", "--bind", workdir, WORKDIR, "--chdir", WORKDIR,
            "--remount-ro", "/", "--clearenv"]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return [*cmd, "--", *inner]


# --------------------------------------------------------------------------- running one step

def _limited(step: Step, argv: list[str], nproc: bool) -> list[str]:
    """`argv` started under the step's resource limits. The limits are set by `prlimit` (util-linux)
    or a bare `python -I -S` that execs the step: never by Python code between fork and exec
    (`preexec_fn`), which can deadlock when the caller has other threads (a thread pool of checks)."""
    mem = step.memory_mb * 1024 * 1024
    cpu = max(1, int(step.timeout) + 1)
    fsize = COMPILE_FILE_BYTES if step.phase == "compile" else MAX_FILE_BYTES
    limits = {"as" if step.memory_kind == "as" else "data": (mem, mem), "cpu": (cpu, cpu + 1),
              "fsize": (fsize, fsize), "core": (0, 0), "nofile": (step.open_files, step.open_files)}
    if nproc:   # the unsafe mode only: inside bwrap the wrapper sets it in the user namespace
        limits["nproc"] = (step.processes, step.processes)
    prlimit = shutil.which("prlimit")
    if prlimit:
        return [prlimit, *(f"--{k}={lo}:{hi}" for k, (lo, hi) in limits.items()), "--", *argv]
    code = ("import os, resource, sys\n"
            f"for k, v in {limits!r}.items():\n"
            "    resource.setrlimit(getattr(resource, 'RLIMIT_' + k.upper()), v)\n"
            "os.execvp(sys.argv[1], sys.argv[1:])\n")
    return [sys.executable, "-I", "-S", "-c", code, *argv]


def _child_pid(fd: int, deadline: float) -> int:
    """bwrap's `--info-fd` report (read to its end: bwrap dies of SIGPIPE if the reader goes away
    early): the pid of the sandbox's first process."""
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            m = re.search(rb'"child-pid"\s*:\s*(\d+)', data)
            if m:
                return int(m.group(1))
            break
        data += chunk
    raise OSError("bwrap did not report its sandbox")


def _write_id_maps(pid: int) -> None:
    """Sandbox uid/gid 0 is root (bwrap's own setup, then setpriv), 65534 is the real 65534."""
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as fh:
            fh.write(f"0 0 1\n{SANDBOX_UID} {SANDBOX_UID} 1\n")


def _start(backend: Backend, step: Step, workdir: str, env: dict[str, str],
           binds: tuple[str, ...]) -> tuple[subprocess.Popen, int | None]:
    """Start the step (in bwrap, or unconfined in the unsafe mode) in its own process group; with
    a pidfd of the sandbox's init (from bwrap's `--info-fd` report), None in the unsafe mode."""
    common: dict = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                    "start_new_session": True}
    if backend.kind == "none":
        raise OSError(backend.problem or "no sandbox")
    if backend.kind != "bwrap":
        argv = _limited(step, list(step.argv), os.getuid() != 0)   # (root ignores RLIMIT_NPROC: the unsafe mode's gap)
        return subprocess.Popen(argv, cwd=workdir, env=env, **common), None
    cmd = _bwrap_argv(backend, step, workdir, env, binds)
    info_r, info_w = os.pipe()
    block_r, block_w = os.pipe() if backend.as_root else (-1, -1)
    init = None
    try:
        cmd[1:1] = ["--info-fd", str(info_w)] + (["--userns-block-fd", str(block_r)] if backend.as_root else [])
        fds = (info_w, block_r) if backend.as_root else (info_w,)
        # bwrap itself starts with an empty environment too: its init stays in the sandbox as pid 1,
        # and (without root) the sandbox's uid may read /proc/1/environ
        # as root: no supplementary group (gid 0) reaches the sandbox (set by subprocess in C)
        groups: dict = {"extra_groups": []} if backend.as_root else {}
        proc = subprocess.Popen(_limited(step, cmd, False), pass_fds=fds, env={"PATH": "/usr/bin:/bin"},
                                **groups, **common)
        for fd in fds:
            os.close(fd)
        info_w = block_r = -1
        try:
            pid = _child_pid(info_r, time.monotonic() + SETUP_TIMEOUT)
            init = os.pidfd_open(pid)   # (a pidfd, not the number: the pid may be reused once it is gone)
            if backend.as_root:
                _write_id_maps(pid)
                os.write(block_w, b"1")
        except OSError:
            _kill(proc, init)   # never let it go on without its id map: it dies, and the run reports bwrap's error
        return proc, init
    finally:
        for fd in (info_r, info_w, block_r, block_w):
            if fd >= 0:
                os.close(fd)


def _end_namespace(init: int | None, timeout: float = 5.0) -> None:
    """Make sure the sandbox's pid namespace is gone: its init (`init`: a pidfd) is killed, and the
    kernel kills every process inside before the init itself has exited, which is waited for here."""
    if init is None:
        return
    try:
        signal.pidfd_send_signal(init, signal.SIGKILL)
        select.select([init], [], [], timeout)   # readable once it has exited
    except OSError:
        pass
    finally:
        os.close(init)


def _kill(proc: subprocess.Popen, init: int | None = None) -> None:
    """SIGKILL bwrap's process group and the sandbox's init: every process inside dies with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    if init is not None:
        try:
            signal.pidfd_send_signal(init, signal.SIGKILL)
        except OSError:
            pass


class _Capture:
    """The head and the tail of a stream, MAX_OUTPUT // 2 bytes each; the middle is counted, not kept."""

    def __init__(self) -> None:
        self.cap = MAX_OUTPUT // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail = (self.tail + chunk)[-self.cap:]

    def data(self) -> bytes:
        skipped = self.total - len(self.head) - len(self.tail)
        if not skipped:
            return bytes(self.head + self.tail)
        return bytes(self.head) + f"\n… (output truncated: {skipped} bytes left out) …\n".encode() + bytes(self.tail)


def _collect(proc: subprocess.Popen, timeout: float, init: int | None = None) -> tuple[bytes, bytes, bool]:
    """(stdout, stderr, timed out): read both pipes until they close or the deadline passes; then the
    sandbox is killed and the pipes drained for KILL_DRAIN at most, whoever still holds them."""
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    caps = {out_fd: _Capture(), err_fd: _Capture()}
    live = set(caps)
    stop_at = time.monotonic() + timeout
    timed_out = False
    try:
        while live:
            left = stop_at - time.monotonic()
            if left <= 0:
                if timed_out:
                    break
                timed_out = True
                _kill(proc, init)
                stop_at = time.monotonic() + KILL_DRAIN
                continue
            ready, _, _ = select.select(list(live), [], [], left)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if chunk:
                    caps[fd].add(chunk)
                else:
                    live.discard(fd)
        try:
            proc.wait(timeout=max(0.05, stop_at - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc, init)
            proc.wait(timeout=5)
    finally:
        proc.stdout.close()
        proc.stderr.close()
        _end_namespace(init)
    return caps[out_fd].data(), caps[err_fd].data(), timed_out


def execute(backend: Backend, step: Step, workdir: str, binds: tuple[str, ...] = ()) -> tuple[int | None, bytes, bytes, bool, float]:
    """(returncode, stdout, stderr, timed out, seconds) of one step."""
    home = WORKDIR if backend.kind == "bwrap" else workdir
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", **dict(step.env)}
    t0 = time.perf_counter()
    proc, init = _start(backend, step, workdir, env, binds)
    out, err, timed_out = _collect(proc, step.timeout, init)
    rc = proc.returncode
    if rc is not None and rc > 128 and backend.kind == "bwrap":
        rc = -(rc - 128)   # the wrapper's "killed by signal N"
    return rc, out, err, timed_out, time.perf_counter() - t0
