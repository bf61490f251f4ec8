"""A fake OpenAI-compatible chat server on loopback for tests and benchmarks.

Real HTTP (stdlib `ThreadingHTTPServer`, one thread per connection, keep-alive), so the
`openai` client runs unmodified against it. It speaks POST /v1/chat/completions and
GET /v1/models, reports usage token counts, answers through a `responder(body) -> str`
(default: a valid object for the requested JSON schema), and injects faults:

  429               status 429 with a `retry-after` header (seconds, or an HTTP date)
  503               status 503 with a `retry-after` header
  500               status 500
  timeout           sleeps `timeout_sleep_s` (past the client's timeout), then answers
  disconnect        closes the connection without an answer
  truncated         a reply cut in half, finish_reason "length"
  invalid_json      prose around broken JSON
  schema_violation  valid JSON that misses the schema's required fields
  slow              waits an extra `slow_s` before answering
  garbage           status 200 with an HTML body instead of JSON (a misconfigured proxy)

Faults are drawn with a seeded RNG (`fault_rate`, `faults`) or scripted exactly with
`queue(...)`. Every request body, its arrival time and the fault it got are recorded, as
is the highest number of requests in flight at once.

Standalone:
    python -m tests.support.openai_server --port 8011 --latency 0.5 --fault-rate 0.2 --responder shoal
"""
from __future__ import annotations

import argparse
import email.utils
import json
import random
import re
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

FAULTS = ("429", "503", "500", "timeout", "disconnect", "truncated", "invalid_json",
          "schema_violation", "slow", "garbage")
DEFAULT_FAULTS = ("429", "500", "timeout", "truncated", "invalid_json", "schema_violation")
OK = "ok"  # a scripted "no fault"

Responder = Callable[[dict], str]


# ---------------------------------------------------------------- schema -> example object


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return _resolve(node, root) if isinstance(node, dict) else {}
    return schema


def example_for_schema(schema: dict, root: dict | None = None, name: str = "value") -> Any:
    """A value that validates against a (pydantic-style) JSON schema."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [o for o in schema[key] if _resolve(o, root).get("type") != "null"] or schema[key]
            return example_for_schema(options[0], root, name)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: example_for_schema(v, root, k) for k, v in props.items()}
    if kind == "array":
        n = max(1, int(schema.get("minItems", 1)))
        return [example_for_schema(schema.get("items", {}), root, name) for _ in range(n)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = f"example {name}"
    min_len = int(schema.get("minLength", 0))
    if len(text) < min_len:
        text = text + "x" * (min_len - len(text))
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text


_FENCE_RE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)


def requested_schema(body: dict) -> tuple[dict | None, str]:
    """(JSON schema, mode) the request asks for: from response_format, else a fenced schema
    in the messages (how a client describes it in plain-text mode)."""
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        return (rf.get("json_schema") or {}).get("schema") or {}, "json_schema"
    if rf.get("type") == "json_object":
        return rf.get("schema"), "json_object"
    for msg in reversed(body.get("messages") or []):
        content = msg.get("content")
        if not isinstance(content, str):
            continue
        for block in _FENCE_RE.findall(content):
            try:
                cand = json.loads(block)
            except ValueError:
                continue
            if isinstance(cand, dict) and ("properties" in cand or "$defs" in cand):
                return cand, "text"
    return None, "text"


def default_responder(body: dict) -> str:
    """A valid object for the requested schema; in plain-text mode fenced with a preamble
    (as chat models tend to reply); "OK" when no schema is asked for."""
    schema, mode = requested_schema(body)
    if schema is None:
        return "OK"
    text = json.dumps(example_for_schema(schema))
    return text if mode != "text" else f"Here is the JSON you asked for:\n```json\n{text}\n```"


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: about 4 characters per token."""
    return max(1, (len(text) + 3) // 4) if text else 0


# ---------------------------------------------------------------- the server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256   # the default backlog of 5 stalls 32+ concurrent connects
    allow_reuse_address = True


class FakeOpenAIServer:
    """Real HTTP server on 127.0.0.1 (free port) in a background thread. See module doc."""

    handler_class: type | None = None   # a _Handler subclass with more routes (None: _Handler)

    def __init__(self, responder: Responder | None = None, latency_s: float = 0.0,
                 fault_rate: float = 0.0, faults: Sequence[str] = DEFAULT_FAULTS, seed: int = 0,
                 reject_json_schema: bool = False, timeout_sleep_s: float = 5.0, *,
                 reject_json_object: bool = False, retry_after: float = 0.2,
                 retry_after_http_date: bool = False, slow_s: float = 1.0, reject_status: int = 400,
                 model: str = "fake-model", port: int = 0, host: str = "127.0.0.1"):
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {FAULTS}")
        self.responder = responder or default_responder
        self.latency_s = latency_s
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.reject_json_schema = reject_json_schema
        self.reject_json_object = reject_json_object
        self.reject_status = reject_status   # llama-cpp-python's server answers 500, most others 400
        self.timeout_sleep_s = timeout_sleep_s
        self.retry_after = retry_after
        self.retry_after_http_date = retry_after_http_date
        self.slow_s = slow_s
        self.model = model
        self._host, self._port = host, port
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._script: deque[str] = deque()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._bound_port = 0
        self._thread: threading.Thread | None = None
        self.requests: list[dict] = []      # bodies of POST /chat/completions, in arrival order
        self.log: list[dict] = []           # {t, fault, status, auth} per chat request
        self.in_flight = 0
        self.max_in_flight = 0
        self._conns: set[socket.socket] = set()

    # -- lifecycle ----------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port (still known after stop(), for tests of a dead server)."""
        assert self._bound_port, "server not started"
        return self._bound_port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        handler = type("Handler", (self.handler_class or _Handler,), {"fake": self})
        self._httpd = _Server((self._host, self._port), handler)
        self._bound_port = self._httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-openai-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()          # wakes handlers sleeping in "timeout"/latency
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:              # keep-alive connections would otherwise still be served
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- scripting ----------------------------------------------------------
    def queue(self, *faults: str) -> None:
        """Script the next requests exactly: fault names, or "ok" for a normal reply.
        Scripted entries are used before any random fault is drawn."""
        for f in faults:
            if f != OK and f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}")
        with self._lock:
            self._script.extend(faults)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()
            self.max_in_flight = self.in_flight

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._script:
                f = self._script.popleft()
                return None if f == OK else f
            if self.fault_rate > 0 and self.faults and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.faults)
            return None

    def _enter(self, body: dict, auth: str | None) -> dict:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests.append(body)
            entry = {"t": time.monotonic(), "fault": None, "status": None, "auth": auth}
            self.log.append(entry)
            return entry

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def retry_after_header(self) -> str:
        if self.retry_after_http_date:
            return email.utils.formatdate(time.time() + self.retry_after, usegmt=True)
        return f"{self.retry_after:g}"

    @property
    def auth_headers(self) -> list[str | None]:
        """The Authorization header of every chat request (to check which key a server got)."""
        with self._lock:
            return [e["auth"] for e in self.log]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive: the client reuses connections
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK of the headers (up to 40 ms on Linux) -- a latency no real server adds.
    disable_nagle_algorithm = True
    fake: FakeOpenAIServer
    # Headers added to every reply of the current request (subclasses set them per request,
    # e.g. the rate-limit headers of tests.support.openai_platform); none here.
    reply_headers: dict = {}

    def log_message(self, *args) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._conns.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    # -- helpers ------------------------------------------------------------
    def _send_json(self, status: int, payload: Any, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self._leave_once()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in {**self.reply_headers, **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str, headers: dict | None = None,
               param: str | None = None) -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "param": param,
                                           "code": None}}, headers)

    # -- routes -------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [
                {"id": self.fake.model, "object": "model", "created": 0, "owned_by": "shoal-test"}]})
        else:
            self._error(404, f"no route {self.path}", "not_found")

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}", "not_found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if len(raw) < length:        # the client went away mid-request (an app killed with -9): no request came
            self.close_connection = True
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "request body is not JSON", "invalid_request_error")
            return
        fake = self.fake
        entry = fake._enter(body, self.headers.get("Authorization"))
        self._in_flight = True
        try:
            entry["status"] = self._chat(body, entry)
        finally:
            self._leave_once()

    def _leave_once(self) -> None:
        """A request stops counting as in flight when its reply starts, not after the reply is written:
        else the client's next request of the same slot can arrive first and count as a second one."""
        if getattr(self, "_in_flight", False):
            self._in_flight = False
            self.fake._leave()

    def _chat(self, body: dict, entry: dict) -> int:
        fake = self.fake
        rf_type = (body.get("response_format") or {}).get("type")
        if (rf_type == "json_schema" and fake.reject_json_schema) or \
                (rf_type == "json_object" and fake.reject_json_object):
            self._error(fake.reject_status, f"response_format type {rf_type!r} is not supported by this "
                        "server; ('body', 'response_format', 'type'): Input should be 'text' or 'json_object'",
                        "invalid_request_error", param="response_format")
            return fake.reject_status
        fault = fake._next_fault()
        entry["fault"] = fault
        fake.sleep(fake.latency_s)
        if fault in ("429", "503"):
            self._error(int(fault), "Rate limit reached, slow down" if fault == "429" else "overloaded",
                        "rate_limit_error" if fault == "429" else "server_error",
                        {"retry-after": fake.retry_after_header()})
            return int(fault)
        if fault == "500":
            self._error(500, "The server had an error while processing your request", "server_error")
            return 500
        if fault == "disconnect":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return 0
        if fault == "garbage":
            data = b"<html><body>502 Bad Gateway (nginx)</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return 200
        if fault == "timeout":
            fake.sleep(fake.timeout_sleep_s)
        elif fault == "slow":
            fake.sleep(fake.slow_s)

        try:
            content = fake.responder(body)
        except Exception as exc:  # a broken responder is a test bug: say so in a 500
            self._error(500, f"responder failed: {type(exc).__name__}: {exc}", "server_error")
            return 500
        finish = "stop"
        if fault == "truncated":
            content, finish = content[: max(1, len(content) // 2)], "length"
        elif fault == "invalid_json":
            content = 'Sure! Here is the answer: {"instruction": "Write a function", solution: oops}'
        elif fault == "schema_violation":
            content = json.dumps({"unexpected_field": "this object ignores the schema"})
        try:
            self._send_json(200, self._completion(body, content, finish))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) before we answered
        return 200

    def _completion(self, body: dict, content: str, finish: str) -> dict:
        """The chat.completion object for a reply (subclasses count usage their own way)."""
        fake = self.fake
        prompt_text = "".join(m.get("content") or "" for m in body.get("messages", [])
                              if isinstance(m.get("content"), str))
        p_tok, c_tok = count_tokens(prompt_text), count_tokens(content)
        return {
            "id": f"chatcmpl-fake-{len(fake.requests)}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model") or fake.model,
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok,
                      "total_tokens": p_tok + c_tok},
        }


# ---------------------------------------------------------------- standalone


def _load_responder(name: str) -> Responder | None:
    if name in ("echo", "default"):
        return None
    if name == "shoal":
        from tests.support.shoal_responder import shoal_responder
        return shoal_responder
    module, _, attr = name.partition(":")
    import importlib
    return getattr(importlib.import_module(module), attr)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Fake OpenAI-compatible chat server for tests and benches.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--faults", default=",".join(DEFAULT_FAULTS), help=f"comma list of {FAULTS}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reject-json-schema", action="store_true")
    ap.add_argument("--timeout-sleep", type=float, default=5.0)
    ap.add_argument("--retry-after", type=float, default=0.2)
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--responder", default="echo",
                    help="echo (valid object for the schema) | shoal | module:function")
    args = ap.parse_args(argv)
    server = FakeOpenAIServer(_load_responder(args.responder), latency_s=args.latency,
                              fault_rate=args.fault_rate, faults=[f for f in args.faults.split(",") if f],
                              seed=args.seed, reject_json_schema=args.reject_json_schema,
                              timeout_sleep_s=args.timeout_sleep, retry_after=args.retry_after,
                              model=args.model, port=args.port, host=args.host)
    server.start()
    print(f"fake OpenAI server on {server.base_url} (latency {args.latency}s, "
          f"fault rate {args.fault_rate}, responder {args.responder}); Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
