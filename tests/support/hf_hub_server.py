"""A small Hugging Face Hub on loopback: just what `HfApi.create_repo` + `HfApi.upload_folder` call
(huggingface_hub 2.x), over real HTTP (stdlib `ThreadingHTTPServer`), so the client runs unmodified.

  GET  /api/whoami-v2                                  the token's user
  POST /api/repos/create                               200 {"url"}; 409 {"error", "url"} when it exists
                                                       (what `exist_ok=True` expects)
  POST /api/validate-yaml                              README.md front matter must be a YAML mapping
  GET  /api/{type}s/{owner}/{name}[/revision/{rev}]    repo info (repo_info)
  POST /api/{type}s/{owner}/{name}/preupload/{rev}     every file "regular": its bytes come inline in
                                                       the commit (no LFS, no xet storage here)
  POST /api/{type}s/{owner}/{name}/commit/{rev}        NDJSON: a header line, then one line per file
                                                       (base64 content) or deletion; stored per repo

Every request needs `Authorization: Bearer <token>`; anything else gets 401, as the Hub answers.
Requests (method, path) are recorded; `repos[repo_id]` holds type, private, files and commits.
`fail_next(route, status, body)` scripts one refusal of a route ("create", "preupload", "commit").
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REPO = re.compile(r"^/api/(model|dataset|space)s/([^/]+/[^/]+?)(?:/(preupload|commit|revision)/([^/]+))?/?$")


class FakeHub:
    def __init__(self, token: str = "hf_loopbackTestToken0123456789abcdef", user: str = "me"):
        self.token, self.user = token, user
        self.repos: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: dict[str, tuple[int, dict]] = {}
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(self, route: str, status: int, body: dict) -> None:
        with self.lock:
            self.faults[route] = (status, body)

    def _fault(self, route: str) -> tuple[int, dict] | None:
        with self.lock:
            return self.faults.pop(route, None)

    def files(self, repo_id: str) -> dict[str, bytes]:
        with self.lock:
            return dict(self.repos[repo_id]["files"])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as httpx expects
    hub: FakeHub

    def log_message(self, *args) -> None:    # quiet
        pass

    # ------------------------------------------------------------ plumbing
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.hub.token}"

    def _handle(self, method: str) -> None:
        body = self._body() if method == "POST" else b""
        path = self.path.split("?", 1)[0]
        with self.hub.lock:
            self.hub.requests.append((method, path))
        if not self._authorized():
            self._send(401, {"error": "Invalid credentials in Authorization header"})
            return
        route = "create" if path == "/api/repos/create" else path.rsplit("/", 2)[-2] if _REPO.match(path) else path
        if method == "POST" and (fault := self.hub._fault(route)):
            self._send(*fault)
        elif method == "GET" and path == "/api/whoami-v2":
            self._send(200, {"type": "user", "name": self.hub.user, "auth": {"accessToken": {"role": "write"}}})
        elif method == "POST" and path == "/api/repos/create":
            self._create(json.loads(body or b"{}"))
        elif method == "POST" and path == "/api/validate-yaml":
            self._validate_yaml(json.loads(body or b"{}"))
        elif m := _REPO.match(path):
            self._repo_route(method, m.group(1), m.group(2), m.group(3), body)
        else:
            self._send(404, {"error": f"no route {method} {path}"})

    def do_GET(self) -> None:   # noqa: N802 (http.server's names)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    # ------------------------------------------------------------ routes
    def _repo_link(self, kind: str, repo_id: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{'' if kind == 'model' else kind + 's/'}{repo_id}"

    def _create(self, req: dict) -> None:
        kind = req.get("type") or "model"
        repo_id = f"{req.get('organization') or self.hub.user}/{req['name']}"
        url = self._repo_link(kind, repo_id)
        with self.hub.lock:
            if repo_id in self.hub.repos:
                self._send(409, {"error": f"You already created this {kind} repo", "url": url})
                return
            self.hub.repos[repo_id] = {"type": kind, "private": req.get("visibility") == "private",
                                       "files": {}, "commits": []}
        self._send(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, req: dict) -> None:
        import yaml
        text = str(req.get("content", ""))
        errors = []
        if text.startswith("---"):
            front = text.split("---", 2)[1] if text.count("---") >= 2 else None
            try:
                if front is None or not isinstance(yaml.safe_load(front), dict):
                    errors.append({"message": "metadata must be a YAML mapping between '---' lines"})
            except yaml.YAMLError as exc:
                errors.append({"message": f"invalid YAML: {exc}"})
        self._send(400 if errors else 200, {"errors": errors, "warnings": []})

    def _repo_route(self, method: str, kind: str, repo_id: str, action: str | None, body: bytes) -> None:
        with self.hub.lock:
            repo = self.hub.repos.get(repo_id)
        if repo is None or repo["type"] != kind:
            self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        elif method == "GET" and action in (None, "revision"):
            sha = repo["commits"][-1]["oid"] if repo["commits"] else "0" * 40
            self._send(200, {"id": repo_id, "sha": sha, "private": repo["private"],
                             "siblings": [{"rfilename": f} for f in sorted(repo["files"])]})
        elif method == "POST" and action == "preupload":
            files = json.loads(body or b"{}").get("files", [])
            self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                        "oid": None} for f in files]})
        elif method == "POST" and action == "commit":
            self._commit(repo, repo_id, kind, body)
        else:
            self._send(404, {"error": f"no route {method} {self.path}"})

    def _commit(self, repo: dict, repo_id: str, kind: str, body: bytes) -> None:
        if not self.headers.get("Content-Type", "").startswith("application/x-ndjson"):
            self._send(400, {"error": "commit payload must be application/x-ndjson"})
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            self._send(400, {"error": "the first NDJSON line must be the commit header"})
            return
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for item in lines[1:]:
            key, value = item.get("key"), item.get("value") or {}
            if key == "file" and value.get("encoding") == "base64":
                added[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                deleted.append(value["path"])
            else:     # lfsFile and the rest: this server never asked for them
                self._send(400, {"error": f"unsupported commit operation {key!r}"})
                return
        oid = hashlib.sha1(body).hexdigest()
        with self.hub.lock:
            for p in deleted:
                repo["files"].pop(p, None)
            repo["files"].update(added)
            repo["commits"].append({"oid": oid, "summary": lines[0]["value"].get("summary"),
                                    "paths": sorted(added)})
        self._send(200, {"commitUrl": f"{self._repo_link(kind, repo_id)}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None})


def point_hub_client_at(hub: FakeHub, monkeypatch, token: str | None = None) -> None:
    """Make this process a client of `hub`, as if it had started with HF_ENDPOINT=hub.url, HF_HUB_OFFLINE
    unset and HF_HUB_DISABLE_TELEMETRY=1: the environment core.dataset.hub reads at push time, and the copies
    huggingface_hub took of those variables when it was first imported (tests/conftest.py sets
    HF_HUB_OFFLINE=1 for every test; its telemetry fetches {ENDPOINT}/api/agent-harnesses). Nothing
    then leaves loopback. `token`: also set HF_TOKEN."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    if token is not None:
        monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
