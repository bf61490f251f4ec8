"""Batch mode through Anthropic's Message Batches, against the Anthropic platform test server (real
HTTP on loopback), jobs run end to end through the store."""
from __future__ import annotations

import json
import time

import httpx
import pytest

import core.generate.jobs.batch as batch_module
import core.generate.jobs.batch_rows as batch_rows
from core.config import Profile
from core.generate.jobs import batch_status, cancel_job, create_job, job_summary, run_job, start_worker, wait_for_worker
from core.llm.batch.anthropic_route import (
    AnthropicBatches,
    anthropic_line_attempt,
    messages_params,
    parse_anthropic_results,
)
from core.llm.batch.openai_route import OpenAIBatches
from core.llm.batch.routes import BatchAPIError, provider_for, route_of
from core.llm.failures import classify
from core.llm.presets import profile_for_choice
from core.llm.prices import estimate_cost
from tests.support.anthropic_platform import AnthropicPlatform
from tests.support.crash import run_until_crash
from tests.support.jobs import as_online_job_again, no_payload_answered_twice, one_generation_per_item
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets

N = 20
KEY = "sk-ant-api03-shoal-batch-test-Zx81"
MODEL = "claude-haiku-4-5"
PRICES = {MODEL: (1.0, 5.0)}
FAST = (0.1, 0.02)
POLL = 0.02
ROLES = ("generator", "judge")


@pytest.fixture(autouse=True)
def anthropic_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


def profiles(server, **kw) -> dict:
    return {role: Profile(role=role, base_url=server.base_url, model=MODEL, api_key_env="ANTHROPIC_API_KEY",
                          batch_api="anthropic", max_tokens=256, timeout_s=10,
                          temperature=1.0 if role == "generator" else 0.0, **kw) for role in ROLES}


def item_ids(store, job: int) -> list[int]:
    return [int(r["id"]) for r in store.rows("SELECT id FROM job_items WHERE job_id = ? ORDER BY id", [job])]


def by_creation(srv) -> list:
    return sorted(srv.message_batches.values(), key=lambda b: b.created_at)


def test_a_job_runs_through_message_batches_end_to_end_at_the_batch_price(store):
    ids = add_snippets(store, N)
    with AnthropicPlatform(shoal_responder, api_key=KEY, batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        s = batch_module.run_batch_job(store, job, poll_s=POLL, prices=PRICES)
        assert s["status"] == "done" and s["items"]["succeeded"] == N
        assert srv.chat_request_count == 0 and srv.create_attempts == 2     # generator round, judge round
        gen, judge = by_creation(srv)
        assert len(gen.requests) == N and len(judge.requests) == s["judged"] == N - s["prefilter_rejected"]
        assert 0 < s["judged"] < N and 0 < s["judge_passed"] < s["judged"]

        # each request is Messages params: system on top, the schema described in the prompt, no OpenAI params
        params = gen.requests[0]["params"]
        assert set(params) == {"model", "max_tokens", "messages", "system", "temperature"}
        assert [m["role"] for m in params["messages"]] == ["user"]
        assert "matches this JSON schema" in params["messages"][0]["content"]
        assert (params["model"], params["max_tokens"], params["temperature"]) == (MODEL, 256, 1.0)
        assert {r["params"]["temperature"] for r in judge.requests} == {0.0}

        rows = store.rows("SELECT * FROM batches ORDER BY id")
        assert [(r["provider"], r["provider_batch_id"]) for r in rows] == [("anthropic", gen.id), ("anthropic", judge.id)]
        assert all(r["submitted_at"] and r["status"] == "collected" for r in rows)

        # every answer is an llm_calls row like an online attempt, at half the online price
        calls = store.rows("SELECT * FROM llm_calls ORDER BY id")
        assert len(calls) == N + s["judged"] == s["usage"]["calls"]
        assert all(c["error"] is None and c["response_text"] and c["response_format"] == "text" for c in calls)
        logged = json.loads(calls[0]["request"])
        assert {"system", "messages", "max_tokens", "batch_id"} <= set(logged) and "response_format" not in logged
        assert logged["batch_id"] == gen.id
        online = sum(estimate_cost(c["model"], c["prompt_tokens"], c["completion_tokens"], PRICES) for c in calls)
        assert online > 0 and s["usage"]["cost_usd"] == pytest.approx(online * 0.5, abs=1e-6)
        status = batch_status(store, job)
        assert status["rounds"] == 2 and status["in_flight"] == []
        assert [b["request_completed"] for b in status["batches"]] == [N, s["judged"]]
        assert status["cost_usd"] == pytest.approx(s["usage"]["cost_usd"])
        assert one_generation_per_item(store, job) and no_payload_answered_twice(store)


def test_a_rerun_online_is_served_from_the_message_batch_answers(store):
    """A line asks exactly what the online route asks Anthropic's OpenAI-compatible endpoint: one cache key."""
    ids = add_snippets(store, 8)
    with AnthropicPlatform(shoal_responder, api_key=KEY, batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        assert batch_module.run_batch_job(store, job, poll_s=POLL)["items"]["succeeded"] == 8
        as_online_job_again(store)
        s = run_job(store, job)                          # the online runner now
        assert s["items"]["succeeded"] == 8 and srv.chat_request_count == 0 and srv.create_attempts == 2


def test_mixed_results_fail_items_with_their_reasons_and_keep_every_good_answer(store):
    ids = add_snippets(store, N)
    with AnthropicPlatform(shoal_responder, api_key=KEY, batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        items = item_ids(store, job)
        for item in items[:2]:
            srv.queue_outcomes(f"{item}-generator", "too_long")          # no retry can fix it
        srv.queue_outcomes(f"{items[2]}-generator", "overloaded")        # transient: sent again
        srv.queue_outcomes(f"{items[3]}-generator", "expired")           # never ran: sent again
        srv.queue_outcomes(f"{items[4]}-generator", "api_error", "api_error")   # over max_retries=1
        s = batch_module.run_batch_job(store, job, poll_s=POLL, prices=PRICES, client_options={"max_retries": 1})
        assert s["status"] == "done"
        assert (s["items"]["failed"], s["items"]["succeeded"]) == (3, N - 3)
        reasons = {f["reason"]: f["n"] for f in s["failures"]}           # grouped by reason
        too_long, server = sorted(reasons)
        assert reasons == {too_long: 2, server: 1}
        assert too_long.startswith("generator: http 400: prompt is too long: 212514 tokens > 200000 maximum "
                                   "(invalid_request_error) (hint: ") and "context window" in too_long
        # the bound it reached (core.llm.lifecycle: 1 + max_retries lines) is part of the reason
        assert server == "generator: http 500: Internal server error (api_error) (gave up: 2 lines expired or failed)"
        failed = store.rows("SELECT id FROM job_items WHERE job_id = ? AND status = 'failed' ORDER BY id", [job])
        assert [r["id"] for r in failed] == [items[0], items[1], items[4]]
        assert store.scalar("SELECT count(*) FROM generations g JOIN job_items i ON i.id = g.job_item_id "
                            "WHERE i.job_id = ?", [job]) == N - 3
        assert no_payload_answered_twice(store)

        # each outcome is recorded as what it means for the next round, with the provider's reason
        outcomes = store.rows("""SELECT r.custom_id, r.status, c.error FROM batch_requests r
                                 LEFT JOIN llm_calls c ON c.id = r.llm_call_id
                                 WHERE c.error IS NOT NULL ORDER BY r.batch_id, r.custom_id""")
        by_id = {}
        for o in outcomes:
            by_id.setdefault(o["custom_id"], []).append((o["status"], o["error"]))
        assert [st for st, _ in by_id[f"{items[0]}-generator"]] == ["fatal"]
        assert by_id[f"{items[2]}-generator"] == [("retry", "http 529: Overloaded (overloaded_error)")]
        assert by_id[f"{items[3]}-generator"][0][0] == "retry"
        assert by_id[f"{items[3]}-generator"][0][1].startswith("expired: the batch ended")
        assert [st for st, _ in by_id[f"{items[4]}-generator"]] == ["retry", "retry"]
        # retried lines went out again as new lines of later batches, and were answered there
        later = [b for b in by_creation(srv)[1:]]
        resent = {r["custom_id"] for b in later for r in b.requests}
        assert {f"{items[i]}-generator" for i in (2, 3, 4)} <= resent
        assert not {f"{items[i]}-generator" for i in (0, 1)} & resent
        good = store.rows("SELECT cost_usd FROM llm_calls WHERE error IS NULL")
        assert len(good) == srv.requests_run and all(c["cost_usd"] > 0 for c in good)
        # a call is a request the provider ran (errored ones too); an expired request is none
        assert s["usage"]["calls"] == store.scalar("SELECT count(*) FROM llm_calls") - 1
        assert store.scalar("SELECT sum(cost_usd) FROM llm_calls WHERE error IS NOT NULL") == 0


def test_a_crash_while_the_batch_runs_resumes_polling_the_same_batch(store, monkeypatch):
    ids = add_snippets(store, 6)
    with AnthropicPlatform(shoal_responder, api_key=KEY, batch_timing=(0.3, 0.02)) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        run_until_crash(monkeypatch, batch_module.BatchJobRunner, "_collect",
                        lambda: batch_module.run_batch_job(store, job, poll_s=POLL))
        row = store.one("SELECT * FROM batches")
        assert row["provider_batch_id"] == by_creation(srv)[0].id and row["status"] == "ended"
        assert store.scalar("SELECT count(*) FROM llm_calls") == 0          # nothing collected yet
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        assert s["status"] == "done" and s["items"]["succeeded"] == 6
        assert srv.create_attempts == 2 and srv.chat_request_count == 0      # never sent again
        assert store.scalar("SELECT provider_batch_id FROM batches WHERE id = ?", [row["id"]]) == row["provider_batch_id"]
        assert one_generation_per_item(store, job) and no_payload_answered_twice(store)


def test_a_batch_created_just_before_a_crash_is_adopted_not_sent_again(store, monkeypatch):
    ids = add_snippets(store, 6)
    with AnthropicPlatform(shoal_responder, api_key=KEY, batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        run_until_crash(monkeypatch, batch_rows, "note_info",
                        lambda: batch_module.run_batch_job(store, job, poll_s=POLL))
        row = store.one("SELECT * FROM batches")
        assert row["status"] == "submitting" and row["provider_batch_id"] is None and row["submitted_at"]
        (ours,) = srv.message_batches
        # another client's batch, created since, of another size: never taken for ours
        other = {"custom_id": "other-1", "params": {"model": MODEL, "max_tokens": 16,
                                                    "messages": [{"role": "user", "content": "hi"}]}}
        srv.create_batch(json.dumps({"requests": [other]}).encode())
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        assert s["status"] == "done" and s["items"]["succeeded"] == 6
        assert store.scalar("SELECT provider_batch_id FROM batches WHERE id = ?", [row["id"]]) == ours
        assert srv.create_attempts == 3                  # ours once, the other client's, the judge round
        assert one_generation_per_item(store, job) and no_payload_answered_twice(store)


def test_cancel_cancels_the_message_batch_and_keeps_what_it_finished(store, monkeypatch):
    monkeypatch.setenv("SHOAL_BATCH_POLL_S", str(POLL))
    ids = add_snippets(store, N)
    with AnthropicPlatform(shoal_responder, api_key=KEY, batch_timing=(3.0, 0.05)) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        start_worker(store, job)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(len(b.results) >= 5 for b in srv.message_batches.values()
                                                      if srv.status(b) == "in_progress"):
            time.sleep(0.05)
        cancel_job(store, job)
        assert wait_for_worker(store, job, timeout=30)
        first = by_creation(srv)[0]
        assert first.cancel_initiated_at is not None and first.ended
        s = job_summary(store, job)
        assert s["status"] == "cancelled"
        kept = store.scalar("SELECT count(*) FROM llm_calls WHERE error IS NULL")
        assert 5 <= kept < N and s["usage"]["calls"] == kept
        not_run = store.rows("SELECT error FROM batch_requests WHERE status = 'not_run'")
        assert len(not_run) == N - kept and {r["error"] for r in not_run} == {
            "the batch was canceled before this request ran"}
        # resuming sends only what the canceled batch did not run
        srv.batch_timing = FAST
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        assert s["status"] == "done" and s["items"]["succeeded"] == N
        second = by_creation(srv)[1]
        assert sum(r["custom_id"].endswith("-generator") for r in second.requests) == N - kept
        assert srv.create_attempts == 3 and srv.chat_request_count == 0
        assert one_generation_per_item(store, job) and no_payload_answered_twice(store)


def _post(srv, body, **headers) -> httpx.Response:
    sent = {"x-api-key": KEY, "anthropic-version": "2023-06-01", **headers}
    return httpx.post(f"{srv.base_url}/messages/batches", json=body, headers={k: v for k, v in sent.items() if v})


def test_openai_shaped_requests_are_refused_the_way_anthropic_refuses_them():
    chat = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "system", "content": "Be brief."},
                                                           {"role": "user", "content": "hi"}]}
    good = messages_params(chat)
    with AnthropicPlatform(api_key=KEY) as srv:
        cases = [
            ({"input_file_id": "file-abc", "endpoint": "/v1/chat/completions", "completion_window": "24h"},
             "requests: Field required"),
            ({"requests": [{"custom_id": "1-generator", "method": "POST", "url": "/v1/chat/completions",
                            "body": chat}]}, "requests.0.body: Extra inputs are not permitted"),
            ({"requests": [{"custom_id": "1-generator", "params": chat}]},
             'requests.0.params.messages.0: Unexpected role "system"'),
            ({"requests": [{"custom_id": "1-generator", "params": {**good, "response_format": {"type": "json_object"}}}]},
             "requests.0.params.response_format: Extra inputs are not permitted"),
            ({"requests": [{"custom_id": "1-generator", "params": {k: v for k, v in good.items() if k != "max_tokens"}}]},
             "requests.0.params.max_tokens: Field required"),
            ({"requests": [{"custom_id": "1 generator", "params": good}]}, "requests.0.custom_id: String should match"),
            ({"requests": [{"custom_id": "a", "params": good}, {"custom_id": "a", "params": good}]},
             "requests.1.custom_id: custom_id 'a' is used by more than one request"),
        ]
        for body, message in cases:
            r = _post(srv, body)
            assert r.status_code == 400, body
            assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
            assert r.json()["error"]["message"].startswith(message), r.json()
        r = _post(srv, {"requests": [{"custom_id": "a", "params": good}]}, **{"anthropic-version": ""})
        assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]
        r = _post(srv, {"requests": [{"custom_id": "a", "params": good}]}, **{"x-api-key": "sk-wrong"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert srv.message_batches == {}

        # the client: what the builder writes is accepted; a refusal is the provider's message, not retried
        profile = profiles(srv)["generator"]
        client = AnthropicBatches(profile)
        row = {"id": 1, "status": "preparing", "n_lines": 1, "submitted_at": None}
        written: list[dict] = []
        info = client.submit(row, lambda: [("1-generator", good)], lambda **c: written.append(c), lambda _: False)
        assert info.id in srv.message_batches and info.status == "in_progress" and info.total == 1
        assert written[0]["status"] == "submitting" and written[0]["submitted_at"] > 0
        with pytest.raises(BatchAPIError) as refused:
            client.submit(row, lambda: [("1-generator", chat)], lambda **c: None, lambda _: False)
        assert not refused.value.retryable and 'Unexpected role "system"' in str(refused.value)
        client.close()


def test_the_request_builder_reshapes_a_chat_body_into_messages_params():
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    chat = {"model": MODEL, "max_completion_tokens": 300, "temperature": 1.7, "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema, "strict": True}},
            "messages": [{"role": "system", "content": "You write tests."}, {"role": "user", "content": "one"},
                         {"role": "assistant", "content": "{}"}, {"role": "user", "content": "two"},
                         {"role": "user", "content": [{"type": "text", "text": "three"}]}]}
    p = messages_params(chat)
    assert set(p) == {"model", "max_tokens", "system", "messages", "temperature"}
    assert (p["max_tokens"], p["temperature"], p["system"]) == (300, 1.0, "You write tests.")
    assert [m["role"] for m in p["messages"]] == ["user", "assistant", "user"]
    assert p["messages"][2]["content"].startswith("two\n\nthree\n\nReply with only one JSON object")
    assert json.dumps(schema) in p["messages"][2]["content"]


def test_result_lines_become_the_attempts_an_online_call_would_give():
    from pydantic import BaseModel

    class Reply(BaseModel):
        answer: str

    text = "\n".join(json.dumps(line) for line in [
        {"custom_id": "1-generator", "result": {"type": "succeeded", "message": {
            "type": "message", "content": [{"type": "text", "text": 'Sure: {"answer": "ok"}'}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 24}}}},
        {"custom_id": "2-generator", "result": {"type": "succeeded", "message": {
            "type": "message", "content": [{"type": "text", "text": '{"answer": "cut'}], "stop_reason": "max_tokens",
            "usage": {"input_tokens": 10, "output_tokens": 5}}}},
        {"custom_id": "3-judge", "result": {"type": "errored", "error": {"type": "error", "error": {
            "type": "rate_limit_error", "message": "Number of request tokens has exceeded your rate limit"}}}},
        {"custom_id": "4-judge", "result": {"type": "errored", "error": {"type": "error", "error": {
            "type": "invalid_request_error", "message": "prompt is too long: 250000 tokens > 200000 maximum"}}}},
        {"custom_id": "5-judge", "result": {"type": "expired"}},
        {"custom_id": "6-judge", "result": {"type": "canceled"}}])
    r = {x.custom_id: x for x in parse_anthropic_results(text)}
    ok = anthropic_line_attempt(r["1-generator"], Reply, MODEL, prices=PRICES)
    assert (ok.kind, ok.parsed.answer, ok.prompt_tokens, ok.completion_tokens) == ("ok", "ok", 1024, 200)
    assert ok.cost_usd == pytest.approx((1024 * 1.0 + 200 * 5.0) / 1e6 * 0.5)
    cut = anthropic_line_attempt(r["2-generator"], Reply, MODEL)
    assert (cut.kind, cut.finish_reason, cut.error) == ("parse", "length", "truncated json")
    limited = anthropic_line_attempt(r["3-judge"], Reply, MODEL)
    assert limited.status == 429 and classify(limited, "text").kind == "rate_limited"
    too_long = anthropic_line_attempt(r["4-judge"], Reply, MODEL)
    assert too_long.status == 400 and classify(too_long, "text").reason == "context_length"
    expired = anthropic_line_attempt(r["5-judge"], Reply, MODEL)
    assert expired.status is None and classify(expired, "text").kind == "transient"
    assert r["6-judge"].not_run and not r["5-judge"].not_run


def test_the_route_follows_the_profile_or_the_host():
    def p(url: str, **kw) -> Profile:
        return Profile(role="generator", base_url=url, model="m", **kw)
    assert route_of(p("https://api.anthropic.com/v1/")) == "anthropic"
    assert route_of(p("https://api.openai.com/v1")) == "openai"
    assert route_of(p("http://127.0.0.1:9/v1")) == "openai"
    assert route_of(p("http://127.0.0.1:9/v1", batch_api="anthropic")) == "anthropic"
    assert route_of(p("https://api.anthropic.com/v1/", batch_api="openai")) == "openai"
    assert isinstance(provider_for(p("https://api.anthropic.com/v1/")), AnthropicBatches)
    assert isinstance(provider_for(p("http://127.0.0.1:9/v1")), OpenAIBatches)
    # the Models panel's Anthropic preset keeps its route at any URL (a gateway, this test server)
    base = p("http://127.0.0.1:9/v1")
    chosen = profile_for_choice(base, "anthropic", "http://127.0.0.1:7/v1", MODEL)
    assert (chosen.batch_api, route_of(chosen), chosen.api_key_env) == ("anthropic", "anthropic", "ANTHROPIC_API_KEY")
    assert profile_for_choice(chosen, "custom", "http://127.0.0.1:8/v1", "m").batch_api == "auto"
    assert profile_for_choice(chosen, "openai", "http://127.0.0.1:8/v1", "m").batch_api == "openai"


@pytest.mark.slow
def test_kill_minus_nine_of_the_cli_then_resume_polls_the_same_message_batch(tmp_path):
    """`shoal generate --batch` on an Anthropic profile set by environment variables, killed while its
    batch runs; `--resume` polls that batch, never creates it again, and pays each request once."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from core.store import open_store
    root = Path(__file__).resolve().parents[3]
    db = tmp_path / "batch.duckdb"
    store = open_store(db)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(add_snippets(store, N)) + "\n")
    store.checkpoint()
    store.close()
    prices_file = tmp_path / "prices.json"
    prices_file.write_text(json.dumps({MODEL: {"input": 1.0, "output": 5.0}}))

    def cli(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "core.cli.main", "--db", str(db), *args], cwd=str(root), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    with AnthropicPlatform(shoal_responder, api_key=KEY, batch_timing=(4.0, 0.05)) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SHOAL_", "ANTHROPIC_"))}
        env.update(SHOAL_GENERATOR_BASE_URL=srv.base_url, SHOAL_GENERATOR_MODEL=MODEL, ANTHROPIC_API_KEY=KEY,
                   SHOAL_GENERATOR_API_KEY_ENV="ANTHROPIC_API_KEY", SHOAL_GENERATOR_BATCH_API="anthropic",
                   SHOAL_DB=str(db), SHOAL_BATCH_POLL_S="0.05", SHOAL_PRICES_FILE=str(prices_file), HF_HUB_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
        proc = cli("generate", "--ids", str(ids_file), "--task", "code_generation", "--batch", "--json")
        deadline = time.time() + 60
        while not srv.message_batches and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.5)                            # the runner is polling the batch now
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        (first,) = srv.message_batches.values()
        assert not first.ended                     # killed between submission and the end of processing
        store = open_store(db)
        row = store.one("SELECT * FROM batches")
        assert (row["provider"], row["provider_batch_id"], row["status"]) == ("anthropic", first.id, "in_progress")
        job_id = store.scalar("SELECT max(id) FROM jobs")
        store.close()

        srv.batch_timing = FAST
        proc = cli("generate", "--resume", str(job_id), "--json")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        summary = json.loads(out)
        assert summary["status"] == "done" and summary["items"]["succeeded"] == N
        assert srv.create_attempts == 2 and srv.chat_request_count == 0      # the first batch polled, not resent
        assert summary["batch"]["batches"][0]["provider_batch_id"] == first.id
    store = open_store(db, read_only=True)
    calls = store.rows("SELECT model, prompt_tokens, completion_tokens FROM llm_calls")
    assert len(calls) == N + summary["judged"] == summary["usage"]["calls"]       # each request paid once
    online = sum(estimate_cost(c["model"], c["prompt_tokens"], c["completion_tokens"], PRICES) for c in calls)
    assert online > 0 and summary["usage"]["cost_usd"] == pytest.approx(online / 2, abs=1e-6)
    store.close()
