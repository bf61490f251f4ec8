"""The throughput measures of core.llm / core.generate.jobs and the fake server keep their guarantees."""
from __future__ import annotations

import asyncio
import socket
import time

import pytest
from pydantic import BaseModel

from core.config import Profile
from core.generate import jobs
from core.llm import LLMClient, _BadBody, _read_completion
from tests.support.openai_server import FakeOpenAIServer


class Example(BaseModel):
    instruction: str
    solution: str


def _client(store, server, **kw) -> LLMClient:
    prof = Profile(role="generator", base_url=server.base_url, model="fake-model", timeout_s=5.0)
    return LLMClient(store, prof, backoff_base_s=0.01, seed=1, **kw)


def _msgs(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Write an exercise about snippet {i}."}]


def test_deferred_log_reserves_ids_and_flush_commits_every_row(store):
    with FakeOpenAIServer() as server:
        c = _client(store, server, defer_log=True, max_concurrency=4)

        async def go():
            results = await asyncio.gather(*[c.complete(_msgs(i), Example) for i in range(12)])
            await c.flush_log()   # after this every row must be readable
            rows = store.rows("SELECT id, payload_hash, error, response_text FROM llm_calls ORDER BY id")
            await c.aclose()
            return results, rows

        results, rows = asyncio.run(go())
        c.close()
    assert all(r.ok and not r.cached for r in results)
    ids = [r.call_id for r in results]
    assert len(set(ids)) == 12 and sorted(ids) == [row["id"] for row in rows]
    assert all(row["error"] is None and row["response_text"] for row in rows)
    by_id = {row["id"]: row["response_text"] for row in rows}
    assert all(by_id[r.call_id] == r.raw_text for r in results)


def test_deferred_log_rows_serve_the_cache_and_failures_are_reported(store):
    with FakeOpenAIServer() as server:
        c = _client(store, server, defer_log=True)

        async def go():
            first = await c.complete(_msgs(1), Example)
            again = await c.complete(_msgs(1), Example)   # the row may not be committed yet
            await c.flush_log()
            await c.aclose()
            return first, again

        first, again = asyncio.run(go())
        assert again.cached and again.call_id == first.call_id and len(server.requests) == 1

        # a row that cannot be written is counted and raised by flush_log, not lost silently
        store.execute("INSERT INTO llm_calls (id, payload_hash) VALUES (?, 'taken')", [first.call_id + 1])

        async def clash():
            res = await c.complete(_msgs(2), Example)
            with pytest.raises(RuntimeError, match="not written"):
                await c.flush_log()
            await c.aclose()
            return res

        res = asyncio.run(clash())
        c.close()
    assert res.call_id == first.call_id + 1
    assert store.scalar("SELECT count(*) FROM llm_calls WHERE payload_hash = 'taken'") == 1


def test_read_completion_takes_the_four_values_and_rejects_other_bodies():
    class R:
        def __init__(self, body: bytes, ctype="application/json"):
            self.content, self.headers, self.text = body, {"content-type": ctype}, body.decode()

    body = (b'{"choices":[{"finish_reason":"length","message":{"role":"assistant","content":"hi"}}],'
            b'"usage":{"prompt_tokens":3,"completion_tokens":1}}')
    assert _read_completion(R(body)) == ("hi", "length", 3, 1)
    assert _read_completion(R(b'{"choices":[]}')) == (None, None, 0, 0)
    for bad in (R(b"<html>502</html>", "text/html"), R(b'{"detail":"x"}'), R(b"{not json")):
        with pytest.raises(_BadBody) as exc:
            _read_completion(bad)
        assert exc.value.text == bad.text


def test_fake_server_answers_without_nagle_delay():
    """Headers and body are two writes: with Nagle on, each answer waited for a delayed ACK."""
    with FakeOpenAIServer() as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n")
            body = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
            times = []
            for _ in range(8):
                t = time.perf_counter()
                sock.sendall(req % len(body) + body)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += sock.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0]
                             .split(b":")[1])
                while len(rest) < length:
                    rest += sock.recv(65536)
                times.append(time.perf_counter() - t)
            conns = list(server._conns)   # the handler's side of this live connection
            assert conns and all(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in conns)
    assert sorted(times)[len(times) // 2] < 0.035   # 40 ms delayed ACKs made this ~0.04 s


def test_job_clients_defer_their_logs(store):
    prof = Profile(role="generator", base_url="http://127.0.0.1:9/v1", model="m")
    gen, judge = jobs._make_clients({"generator": prof, "judge": prof.model_copy(update={"role": "judge"})},
                                    store, 4, None, None)
    assert gen._defer_log and judge._defer_log
    gen2, _ = jobs._make_clients({"generator": prof, "judge": prof}, store, 4, None, {"defer_log": False})
    assert not gen2._defer_log
