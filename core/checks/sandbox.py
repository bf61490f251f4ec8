"""Run untrusted code in a separate, limited process — never in the app process.

Python (`run_python`) layers (each independent of the others):
* a fresh temporary working directory (also HOME and TMPDIR), deleted afterwards;
* resource limits set in the child before exec: address space (RLIMIT_AS), CPU seconds,
  largest file written (RLIMIT_FSIZE), open files, and no core dumps;
* a wall-clock timeout after which the whole process group is killed;
* no network: when the kernel lets us, the child runs in its own empty network namespace
  (`unshare -n`, as root; `unshare -rn` via a user namespace otherwise) where only a
  down loopback exists; in every case an audit hook (PEP 578) installed before the user's
  code refuses socket connect/bind/getaddrinfo;
* the same audit hook refuses opening files for writing outside the working directory,
  deleting / renaming / chmod-ing outside it, starting processes (fork, exec, spawn,
  subprocess, os.system) and loading native code through ctypes;
* output captured and truncated; stdin is empty; the environment is minimal.
An audit hook cannot stop deliberate native-code attacks; it contains the ordinary ways
generated code touches the network and the disk, and the rlimits bound the rest.

Other languages (`run_program`: compile and run steps, see core.checks.languages) have no audit
hook; instead each step runs in its own mount + network namespace where every mount but the
working directory is remounted read-only, and (when we are root) the run step drops to the
unprivileged `nobody` user, so the program can neither write outside the directory nor undo the
read-only mounts. Where namespaces are not allowed the steps still get the rlimits, the timeout,
the temporary directory and the minimal environment, and the result says `fs_isolation: none`.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from functools import lru_cache

DEFAULT_TIMEOUT = 10.0
DEFAULT_MEMORY_MB = 512
MAX_OUTPUT = 8_000
MAX_FILE_BYTES = 16 * 1024 * 1024

# Exit codes the runner uses to say what happened.
EXIT_SYNTAX = 3
EXIT_BLOCKED = 4
EXIT_MEMORY = 5

_RUNNER = textwrap.dedent(r'''
    import os, sys
    WORKDIR = os.path.realpath(os.getcwd())
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    class SandboxViolation(PermissionError):
        pass

    def _inside(path):
        try:
            if isinstance(path, int):
                return True
            p = os.fsdecode(path)
            p = os.path.realpath(os.path.join(WORKDIR, p))
        except Exception:
            return False
        return p == WORKDIR or p.startswith(WORKDIR + os.sep) or p == os.devnull

    _NET = {"socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
            "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg"}
    _PROC = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
             "subprocess.Popen", "os.startfile", "pty.spawn"}
    _FS_PATH1 = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
                 "os.utime", "shutil.rmtree", "os.link", "os.symlink", "os.chdir"}
    _NATIVE = {"ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata"}

    def _hook(event, args):
        if event in _NET:
            raise SandboxViolation("network access is disabled in the sandbox (%s)" % event)
        if event in _PROC:
            raise SandboxViolation("starting processes is disabled in the sandbox (%s)" % event)
        if event in _NATIVE:
            raise SandboxViolation("native code is disabled in the sandbox (%s)" % event)
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                      (isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writing and path is not None and not _inside(path):
                raise SandboxViolation("writing outside the sandbox directory is disabled: %r" % (path,))
        elif event in ("os.rename", "shutil.move", "shutil.copyfile", "shutil.copytree"):
            dst = args[1] if len(args) > 1 else None
            if not (_inside(args[0]) if event == "os.rename" else True) or (dst is not None and not _inside(dst)):
                raise SandboxViolation("%s outside the sandbox directory is disabled" % event)
        elif event in _FS_PATH1:
            if args and not _inside(args[0]):
                raise SandboxViolation("%s outside the sandbox directory is disabled" % event)

    sys.addaudithook(_hook)
    sys.argv = ["solution.py"]
    src = open("solution.py", encoding="utf-8").read()
    try:
        code = compile(src, "solution.py", "exec")
    except (SyntaxError, ValueError) as exc:
        sys.stderr.write("SyntaxError: %s\n" % exc)
        sys.exit(3)
    g = {"__name__": "__main__", "__file__": "solution.py", "__builtins__": __builtins__}
    try:
        exec(code, g)
    except MemoryError:
        sys.stderr.write("MemoryError: the memory limit was reached\n")
        sys.exit(5)
    except SandboxViolation as exc:
        sys.stderr.write("SandboxViolation: %s\n" % exc)
        sys.exit(4)
''')


# status -> outcome: the program passed, failed (ran and went wrong), did not build, or was not run
_OUTCOME = {"ok": "pass", "syntax_error": "error", "compile_error": "error", "skipped": "skipped"}


@dataclass
class SandboxResult:
    status: str   # ok | error | syntax_error | compile_error | timeout | memory | blocked | killed | skipped
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    network_isolation: str   # netns | userns | audit-hook | none
    language: str = "python"
    fs_isolation: str = "audit-hook"   # audit-hook (Python) | mountns-nobody | mountns | none
    phase: str = "run"                 # the step that decided the status: compile | run | none

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def outcome(self) -> str:
        """pass | fail | error (did not compile) | skipped (no toolchain, nothing to run)."""
        return _OUTCOME.get(self.status, "fail")

    def as_dict(self) -> dict:
        return {**asdict(self), "outcome": self.outcome}


@lru_cache(maxsize=1)
def network_isolation() -> tuple[str, tuple[str, ...]]:
    """How the child is cut off from the network: the best mechanism this machine allows."""
    unshare = shutil.which("unshare")
    if unshare and sys.platform.startswith("linux"):
        for name, prefix in (("netns", (unshare, "-n", "--")), ("userns", (unshare, "-r", "-n", "--"))):
            try:
                r = subprocess.run([*prefix, sys.executable, "-c", "pass"], capture_output=True, timeout=20)
            except (OSError, subprocess.SubprocessError):
                continue
            if r.returncode == 0:
                return name, prefix
    return "audit-hook", ()


def _limits(memory_mb: int, cpu_seconds: int):
    def apply() -> None:
        mem = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        if os.getuid() != 0:  # root ignores RLIMIT_NPROC; the audit hook blocks forks anyway
            resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
    return apply


def _decode(b: bytes) -> str:
    text = b[:MAX_OUTPUT].decode("utf-8", "replace")
    return text + ("\n… (output truncated)" if len(b) > MAX_OUTPUT else "")


def run_python(code: str, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB) -> SandboxResult:
    """Compile and run `code` as a script in the sandbox; never raises for what the code does."""
    iso_name, prefix = network_isolation()
    workdir = tempfile.mkdtemp(prefix="shoal-sandbox-")
    try:
        with open(os.path.join(workdir, "solution.py"), "w", encoding="utf-8") as fh:
            fh.write(code)
        with open(os.path.join(workdir, "_runner.py"), "w", encoding="utf-8") as fh:
            fh.write(_RUNNER)
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        cmd = [*prefix, sys.executable, "-I", "-B", "_runner.py"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_limits(memory_mb, max(1, int(timeout) + 1)),
                                start_new_session=True)
        out, err, timed_out = _wait(proc, timeout)
        seconds = time.perf_counter() - t0
        rc = proc.returncode
        stderr = _decode(err)
        if _out_of_time(timed_out, rc, seconds, timeout):
            status = "timeout"
        elif rc == 0:
            status = "ok"
        elif rc == EXIT_SYNTAX:
            status = "syntax_error"
        elif rc == EXIT_MEMORY or "MemoryError" in stderr[-2000:]:
            status = "memory"
        elif rc == EXIT_BLOCKED or "SandboxViolation" in stderr[-2000:]:
            status = "blocked"
        elif rc is not None and rc < 0:
            status = "killed"
        else:
            status = "error"
        return SandboxResult(status, rc, _decode(out), stderr, round(seconds, 3), iso_name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[bytes, bytes, bool]:
    """(stdout, stderr, timed out) of a run; on the timeout its process group is killed first."""
    try:
        out, err = proc.communicate(timeout=timeout)
        return out, err, False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return out, err, True


def _out_of_time(timed_out: bool, rc: int | None, seconds: float, limit: float) -> bool:
    """A timeout, or the CPU limit's signal (or the kill that follows it) near the time limit."""
    return timed_out or rc in (-signal.SIGXCPU, -signal.SIGKILL) and seconds >= limit * 0.9


# --------------------------------------------------------------------------- other languages

NOBODY = 65534
# Set up inside the new mount namespace, then exec the step: the working directory becomes its own
# (writable) mount, every other mount is remounted read-only; the `cd` enters the new mount (the
# inherited working directory still points at the old, now read-only one).
_READ_ONLY_SETUP = r'''
w="$1"; shift
mount --make-rprivate / 2>/dev/null
mount --bind "$w" "$w" || exit 125
while read -r _ m _; do
  [ "$m" = "$w" ] || mount -o remount,bind,ro "$m" 2>/dev/null
done < /proc/self/mounts
cd "$w" || exit 125
exec "$@"
'''
_SETUP_FAILED = 125
# what runtimes print when they run out of memory under the limits
_MEMORY_MARKERS = ("MemoryError", "OutOfMemoryError", "JavaScript heap out of memory", "std::bad_alloc",
                   "memory allocation of", "Allocation failed", "Cannot allocate memory",
                   "Could not reserve enough space")


@dataclass(frozen=True)
class Step:
    """One command of a program's build-and-run (argv relative to the working directory)."""
    argv: tuple[str, ...]
    phase: str = "run"              # compile | run
    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    memory_kind: str = "as"         # as (address space) | data: JVM and V8 reserve far more than they use
    processes: int = 256            # RLIMIT_NPROC for the unprivileged user (threads count)
    open_files: int = 256
    env: tuple[tuple[str, str], ...] = ()


@lru_cache(maxsize=1)
def fs_isolation() -> tuple[str, tuple[str, ...]]:
    """How compiled / node programs are kept from writing outside their directory (and off the
    network): `mountns-nobody` (root: read-only mounts, the run step drops to nobody),
    `mountns` (a user namespace: read-only mounts, our own uid), or `none`."""
    unshare, sh = shutil.which("unshare"), shutil.which("sh") or "/bin/sh"
    if not (unshare and sys.platform.startswith("linux")):
        return "none", ()
    probe = tempfile.mkdtemp(prefix="shoal-probe-")
    try:
        for name, prefix in (("mountns-nobody", (unshare, "-m", "-n", "--")),
                             ("mountns", (unshare, "-r", "-m", "-n", "--"))):
            if name == "mountns-nobody" and (os.getuid() != 0 or not shutil.which("setpriv")):
                continue
            try:
                r = subprocess.run([*prefix, sh, "-c", _READ_ONLY_SETUP, "sh", probe, sh, "-c",
                                    "touch ok && ! touch /tmp/.shoal-ro-probe 2>/dev/null"],
                                   cwd=probe, capture_output=True, timeout=20)
            except (OSError, subprocess.SubprocessError):
                continue
            if r.returncode == 0:
                return name, (*prefix, sh, "-c", _READ_ONLY_SETUP, "sh")
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return "none", ()


def _step_limits(step: Step):
    def apply() -> None:
        os.umask(0o022)
        mem = step.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS if step.memory_kind == "as" else resource.RLIMIT_DATA, (mem, mem))
        cpu = max(1, int(step.timeout) + 1)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (step.open_files, step.open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (step.processes, step.processes))  # binds once we are nobody
    return apply


def _command(step: Step, workdir: str, mode: str, prefix: tuple[str, ...]) -> list[str]:
    argv = list(step.argv)
    if mode == "none":
        return [*network_isolation()[1], *argv]
    if mode == "mountns-nobody" and step.phase == "run":
        argv = [shutil.which("setpriv") or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                "--clear-groups", "--no-new-privs", "--", *argv]
    return [*prefix, workdir, *argv]


def _run_step(step: Step, workdir: str, mode: str, prefix: tuple[str, ...]) -> tuple[str, int | None, bytes, bytes, float]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
           **dict(step.env)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(_command(step, workdir, mode, prefix), cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_step_limits(step),
                            start_new_session=True)
    out, err, timed_out = _wait(proc, step.timeout)
    seconds = time.perf_counter() - t0
    rc = proc.returncode
    tail = err[-4000:].decode("utf-8", "replace") + out[-1000:].decode("utf-8", "replace")
    if _out_of_time(timed_out, rc, seconds, step.timeout):
        status = "timeout"
    elif rc == 0:
        status = "ok"
    elif rc == _SETUP_FAILED and mode != "none" and not out and b"mount" in err:
        status = "killed"
    elif any(m in tail for m in _MEMORY_MARKERS):
        status = "memory"
    elif step.phase == "compile":
        status = "compile_error"
    elif rc is not None and rc < 0 and rc != -signal.SIGABRT:
        status = "killed"
    else:
        status = "error"
    return status, rc, out, err, seconds


def run_program(files: dict[str, str], steps: list[Step], language: str) -> SandboxResult:
    """Write `files` into a fresh directory and run `steps` in order (a compile step that fails
    stops there); never raises for what the program does."""
    mode, prefix = fs_isolation()
    net = {"mountns-nobody": "netns", "mountns": "userns"}.get(mode, network_isolation()[0])
    workdir = tempfile.mkdtemp(prefix="shoal-sandbox-")
    try:
        os.chmod(workdir, 0o755)
        for name, text in files.items():
            with open(os.path.join(workdir, name), "w", encoding="utf-8") as fh:
                fh.write(text)
        if mode == "mountns-nobody":
            os.chown(workdir, NOBODY, NOBODY)   # the run step (as nobody) may write here, nowhere else
        total = 0.0
        outs, errs = [], []
        status, phase = "ok", "none"
        rc: int | None = 0
        for step in steps:
            status, rc, out, err, seconds = _run_step(step, workdir, mode, prefix)
            total += seconds
            phase = step.phase
            outs.append(out)
            errs.append(err)
            if status != "ok":
                break
        here = workdir.encode()   # the random directory name would make identical runs differ
        return SandboxResult(status, rc, _decode(b"".join(outs).replace(here, b".")),
                             _decode(b"".join(errs).replace(here, b".")), round(total, 3), net, language, mode, phase)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def skipped(language: str, reason: str) -> SandboxResult:
    """The result for a program that was not run (no toolchain, a language we cannot run)."""
    return SandboxResult("skipped", None, "", reason, 0.0, "none", language, "none", "none")
