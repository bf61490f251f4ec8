"""The fake OpenAI server itself: concurrency, faults, schema echo, standalone mode."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.openai_server import FakeOpenAIServer, example_for_schema


def post(url: str, body: dict, timeout: float = 10) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url + "/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}


def test_sustains_40_concurrent_slow_requests():
    with FakeOpenAIServer(latency_s=0.4) as server:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(40) as pool:
            results = list(pool.map(lambda _: post(server.base_url, BODY), range(40)))
        elapsed = time.perf_counter() - t0
        assert server.max_in_flight >= 32
    assert all(status == 200 for status, _, _ in results)
    assert elapsed < 0.4 * 3          # concurrent, not 40 x 0.4 s in a row
    usage = results[0][1]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_faults_are_seeded_and_scriptable():
    def draw(seed):
        with FakeOpenAIServer(fault_rate=0.5, faults=["500", "429", "schema_violation"], seed=seed) as s:
            for _ in range(12):
                post(s.base_url, BODY)
            return [e["fault"] for e in s.log]
    assert draw(3) == draw(3) != draw(4)
    with FakeOpenAIServer(retry_after=7) as s:
        s.queue("429", "ok", "500")
        (a, _, ha), (b, _, _), (c, body, _) = [post(s.base_url, BODY) for _ in range(3)]
    assert (a, b, c) == (429, 200, 500) and ha["retry-after"] == "7"
    assert body["error"]["type"] == "server_error"
    with pytest.raises(ValueError):
        FakeOpenAIServer(faults=["meteor"])


def test_default_reply_matches_the_requested_schema_and_json_schema_can_be_refused():
    schema = {"type": "object", "required": ["rules"], "properties": {
        "rules": {"type": "array", "items": {"$ref": "#/$defs/R"}},
        "overall": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}},
        "$defs": {"R": {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]},
                                                          "why": {"type": "string", "minLength": 20}}}}}
    assert example_for_schema(schema)["rules"][0]["answer"] == "yes"
    assert len(example_for_schema(schema)["rules"][0]["why"]) >= 20
    rf = {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}
    with FakeOpenAIServer() as s:
        status, body, _ = post(s.base_url, {**BODY, "response_format": rf})
        assert status == 200
        assert json.loads(body["choices"][0]["message"]["content"]) == example_for_schema(schema)
    with FakeOpenAIServer(reject_json_schema=True) as s:
        status, body, _ = post(s.base_url, {**BODY, "response_format": rf})
        assert status == 400 and body["error"]["param"] == "response_format"


def test_runs_standalone():
    port_probe = FakeOpenAIServer().start()
    port = port_probe.port
    port_probe.stop()
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.openai_server", "--port", str(port),
                             "--latency", "0.01", "--model", "standalone"], stdout=subprocess.PIPE, text=True)
    try:
        assert "fake OpenAI server on" in proc.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as r:
            assert json.loads(r.read())["data"][0]["id"] == "standalone"
        assert post(f"http://127.0.0.1:{port}/v1", BODY)[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
