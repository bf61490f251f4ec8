"""Batch mode against the OpenAI platform test server, driven through the real openai client."""
from __future__ import annotations

import json
import time

import pytest

import core.generate.jobs.batch as batch_module
import core.generate.jobs.batch_rows as batch_rows
from core.config import Profile
from core.errors import ShoalError
from core.generate.jobs import (
    batch_status,
    cancel_job,
    create_job,
    get_job,
    job_summary,
    run_job,
    start_worker,
    wait_for_worker,
)
from core.llm import LLMClient
from core.llm.batch.openai_route import openai_line_attempt, parse_openai_results
from core.llm.batch.routes import BatchAPIError, LineResult, chunk_lines
from core.llm.prices import batch_discount, estimate_batch_cost, estimate_cost, provider_of
from core.tasks import get_task
from tests.support.crash import run_until_crash
from tests.support.jobs import FAST, POLL, as_online_job_again, no_payload_answered_twice, one_generation_per_item
from tests.support.openai_platform import OpenAIPlatform
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets

N = 20


def profiles(server, judge_model: str = "gpt-4o-mini", **kw) -> dict:
    return {role: Profile(role=role, base_url=server.base_url, model="gpt-4o-mini" if role == "generator" else judge_model,
                          max_tokens=256, timeout_s=10, temperature=1.0 if role == "generator" else 0.0, **kw)
            for role in ("generator", "judge")}


def test_a_batch_job_finishes_in_two_rounds_without_one_chat_request_at_the_batch_price(store):
    ids = add_snippets(store, N)
    with OpenAIPlatform(shoal_responder, batch_timing=FAST) as srv:
        prof = profiles(srv)
        job = create_job(store, ids, profiles=prof, task="code_generation", batch=True)
        assert get_job(store, job)["params"]["batch"] is True
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        assert s["status"] == "done" and s["items"]["succeeded"] == N
        assert srv.chat_request_count == 0
        assert len(srv.batches) == 2                       # round 1: generator calls, round 2: judge calls
        gen_batch, judge_batch = sorted(srv.batches.values(), key=lambda b: b.created_at)[:2]
        assert len(gen_batch.lines) == N and len(judge_batch.lines) == s["judged"] == N - s["prefilter_rejected"]
        assert 0 < s["judged"] < N and 0 < s["judge_passed"] < s["judged"]
        assert one_generation_per_item(store, job) and no_payload_answered_twice(store)

        # every line is an llm_calls row like an online attempt; the cost is the batch price
        calls = store.rows("SELECT * FROM llm_calls ORDER BY id")
        assert len(calls) == N + s["judged"] == s["usage"]["calls"]
        assert all(c["error"] is None and c["response_text"] and c["response_format"] == "json_schema" for c in calls)
        online = sum(estimate_cost(c["model"], c["prompt_tokens"], c["completion_tokens"]) for c in calls)
        assert online > 0
        assert s["usage"]["cost_usd"] == pytest.approx(online * 0.5, abs=1e-6)   # the job rounds to 1e-6
        assert sum(c["cost_usd"] for c in calls) == pytest.approx(online * 0.5, rel=1e-6)
        status = batch_status(store, job)
        assert status["rounds"] == 2 and status["in_flight"] == []
        assert [b["request_completed"] for b in status["batches"]] == [N, s["judged"]]
        assert status["cost_usd"] == pytest.approx(s["usage"]["cost_usd"])

        # each line's body is exactly what the online client posts for that call
        line = gen_batch.lines[0]
        client = LLMClient(store, prof["generator"])
        logged = json.loads(store.scalar("SELECT request FROM llm_calls WHERE role = 'generator' LIMIT 1"))
        assert set(logged) - set(line["body"]) == {"transport_retry", "parse_retry", "batch_id"}
        spec = get_task("code_generation")
        messages = line["body"]["messages"]        # json_schema mode: the messages are sent as built
        assert line["body"] == client.request_body(messages, spec.schema)
        assert client.complete_sync(messages, spec.schema).cached      # the batch answer is the online cache
        assert srv.chat_request_count == 0
        client.close()


def test_a_line_body_is_what_the_online_path_posts(store):
    with OpenAIPlatform() as srv:                    # answers any schema with a valid object
        client = LLMClient(store, profiles(srv)["judge"])
        spec = get_task("code_generation")
        messages = [{"role": "user", "content": "Task: code_generation\nWrite a function that adds two numbers."}]
        result = client.complete_sync(messages, spec.schema, cache=False)
        assert result.attempts == 1
        assert srv.requests[-1] == client.request_body(messages, spec.schema)
        client.close()


def test_a_rerun_online_is_served_from_the_batch_answers(store):
    ids = add_snippets(store, 8)
    with OpenAIPlatform(shoal_responder, batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        assert batch_module.run_batch_job(store, job, poll_s=POLL)["items"]["succeeded"] == 8
        as_online_job_again(store)
        s = run_job(store, job)                         # the online runner now
        assert s["items"]["succeeded"] == 8 and srv.chat_request_count == 0 and len(srv.batches) == 2


def test_expired_lines_are_retried_as_new_lines_until_every_item_is_done(store):
    ids = add_snippets(store, N)
    with OpenAIPlatform(shoal_responder, batch_timing=FAST, batch_expire_after=12) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        assert s["status"] == "done" and s["items"]["succeeded"] == N and srv.chat_request_count == 0
        expired = store.rows("SELECT r.status, c.error FROM batch_requests r JOIN llm_calls c ON c.id = r.llm_call_id "
                             "WHERE c.error LIKE 'batch_expired%'")
        assert len(expired) == 8 + 7 and {r["status"] for r in expired} == {"retry"}
        rounds = batch_status(store, job)["batches"]
        assert len(rounds) == len(srv.batches) == 4 and [b["round"] for b in rounds] == [1, 2, 3, 4]
        assert rounds[1]["role"] == "generator,judge"          # retries and judge calls share a round
        assert one_generation_per_item(store, job) and no_payload_answered_twice(store)
        assert s["usage"]["calls"] == srv.batch_lines_processed  # expired lines are not billed calls


def _flaky_json_responder(body: dict) -> str:
    """Invalid JSON for a few generator prompts until the client sends the correction."""
    last = body["messages"][-1]["content"]
    if "That reply was not valid" in last:
        return shoal_responder({**body, "messages": body["messages"][:-2]})
    reply = shoal_responder(body)
    if "## Example to judge" not in last and ("func_function_3(" in last or "func_function_7(" in last):
        return reply[: len(reply) // 2]
    return reply


def test_a_reply_that_does_not_parse_is_asked_again_with_the_correction(store):
    ids = add_snippets(store, 10)
    with OpenAIPlatform(_flaky_json_responder, batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        assert s["items"]["succeeded"] == 10 and srv.chat_request_count == 0
        bad = store.rows("SELECT payload_hash, request FROM llm_calls WHERE error IS NOT NULL")
        assert len(bad) == 2
        for row in bad:
            again = store.rows("SELECT request, error FROM llm_calls WHERE payload_hash = ? ORDER BY id",
                               [row["payload_hash"]])
            assert len(again) == 2 and again[1]["error"] is None
            retry = json.loads(again[1]["request"])
            assert retry["parse_retry"] == 1 and "That reply was not valid" in retry["messages"][-1]["content"]
        assert len(srv.batches) == 3      # generator, then judge calls + the two corrections, then their judges


def test_an_error_no_retry_can_fix_fails_the_item_at_once(store):
    ids = add_snippets(store, 8)
    with OpenAIPlatform(shoal_responder, batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv, judge_model="gpt-9"), task="code_generation", batch=True)
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        judged = s["generations"] - s["prefilter_rejected"]
        assert s["items"]["failed"] == judged > 0 and s["items"]["succeeded"] == 8 - judged
        assert all(f["reason"].startswith("judge: http 404") for f in s["failures"])
        assert store.scalar("SELECT count(*) FROM batch_requests WHERE role = 'judge'") == judged   # asked once each
        assert len(srv.batches) == 2


def test_a_batch_created_before_a_crash_is_found_again_not_resubmitted(store, monkeypatch):
    ids = add_snippets(store, 6)
    with OpenAIPlatform(shoal_responder, batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        # a kill -9 right after the provider created the batch, before its id was recorded
        run_until_crash(monkeypatch, batch_rows, "note_info",
                        lambda: batch_module.run_batch_job(store, job, poll_s=POLL))
        row = store.one("SELECT * FROM batches")
        assert row["status"] == "uploaded" and row["provider_batch_id"] is None and len(srv.batches) == 1
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        assert s["items"]["succeeded"] == 6 and len(srv.batches) == 2 and srv.chat_request_count == 0
        assert store.scalar("SELECT provider_batch_id FROM batches WHERE id = ?", [row["id"]]) in srv.batches
        assert one_generation_per_item(store, job)


def test_cancel_cancels_the_provider_batch_and_keeps_what_it_finished(store, monkeypatch):
    monkeypatch.setenv("SHOAL_BATCH_POLL_S", str(POLL))
    ids = add_snippets(store, N)
    with OpenAIPlatform(shoal_responder, batch_timing=(0.02, 3.0, 0.05)) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        start_worker(store, job)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not store.scalar(
                "SELECT count(*) FROM batches WHERE status = 'in_progress' AND request_completed >= 5"):
            time.sleep(0.05)
        assert batch_status(store, job)["in_flight"][0]["provider_batch_id"] in srv.batches
        cancel_job(store, job)
        assert wait_for_worker(store, job, timeout=30)
        provider = next(iter(srv.batches.values()))
        assert provider.final == "cancelled" and provider.cancel_t is not None
        s = job_summary(store, job)
        assert s["status"] == "cancelled"
        kept = store.scalar("SELECT count(*) FROM llm_calls WHERE error IS NULL")
        assert 5 <= kept < N and s["usage"]["calls"] == kept
        assert store.scalar("SELECT count(*) FROM batch_requests WHERE status = 'not_run'") == N - kept
        # resuming sends only what the cancelled batch did not finish
        srv.batch_timing = FAST
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        assert s["status"] == "done" and s["items"]["succeeded"] == N
        second = sorted(srv.batches.values(), key=lambda b: b.t0)[1]
        assert sum(line["custom_id"].endswith("-generator") for line in second.lines) == N - kept
        assert len(srv.batches) == 3 and srv.chat_request_count == 0
        assert one_generation_per_item(store, job) and no_payload_answered_twice(store)


def test_budget_caps_the_lines_a_round_sends(store):
    ids = add_snippets(store, 10)
    with OpenAIPlatform(shoal_responder, batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True, max_calls=6)
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        assert s["status"] == "paused" and s["stop_reason"].startswith("budget: call cap 6")
        assert s["usage"]["calls"] == 6 and srv.batch_lines_processed == 6


def test_batch_mode_refuses_the_embedded_model_and_reports_a_server_without_batches(store):
    ids = add_snippets(store, 2)
    local = {r: Profile(role=r, base_url="http://127.0.0.1:9/v1", model="m", source="local")
             for r in ("generator", "judge")}
    with pytest.raises(ShoalError, match="no Batch API"):
        create_job(store, ids, profiles=local, task="code_generation", batch=True)
    from tests.support.openai_server import FakeOpenAIServer
    with FakeOpenAIServer(shoal_responder) as plain:        # chat completions only
        prof = {r: Profile(role=r, base_url=plain.base_url, model="fake-model") for r in ("generator", "judge")}
        job = create_job(store, ids, profiles=prof, task="code_generation", batch=True)
        s = batch_module.run_batch_job(store, job, poll_s=POLL)
        assert s["status"] == "paused" and "batch upload: http 404" in s["stop_reason"]
        assert "without --batch" in s["stop_reason"] and plain.requests == []


def test_batch_prices_and_line_results():
    assert batch_discount("gpt-4o-mini") == batch_discount("claude-sonnet-4") == 0.5
    assert batch_discount("my-model", "https://api.openai.com/v1") == 0.5
    assert batch_discount("qwen2.5-coder") == 1.0 and provider_of("qwen2.5-coder") is None
    assert estimate_batch_cost("gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.075)
    lines = parse_openai_results(
        '{"id":"b1","custom_id":"7-judge","response":{"status_code":400,"request_id":"r","body":'
        '{"error":{"message":"bad thing","type":"invalid_request_error","param":null,"code":null}}},"error":null}\n'
        '{"id":"b2","custom_id":"8-judge","response":null,"error":{"code":"batch_expired","message":"too late"}}\n')
    assert [(r.custom_id, r.status_code) for r in lines] == [("7-judge", 400), ("8-judge", None)]
    refused = openai_line_attempt(lines[0], None, "gpt-4o-mini")
    assert (refused.kind, refused.status, refused.error) == ("http", 400, "http 400: bad thing")
    expired = openai_line_attempt(lines[1], None, "gpt-4o-mini")
    assert expired.status is None and expired.error == "batch_expired: too late"
    odd = openai_line_attempt(LineResult("x", 200, {"object": "not a completion"}), None, "gpt-4o-mini")
    assert odd.kind == "http" and odd.retryable
    assert [len(c) for c in chunk_lines([{"custom_id": str(i)} for i in range(5)], max_lines=2)] == [2, 2, 1]
    assert issubclass(BatchAPIError, ShoalError)


def test_batch_discount_comes_from_the_price_file(tmp_path, monkeypatch):
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"my-model": {"input": 1, "output": 2, "batch_discount": 0.4},
                             "batch_discount": {"openai": 0.6}}))
    monkeypatch.setenv("SHOAL_PRICES_FILE", str(f))
    assert batch_discount("my-model") == 0.4 and batch_discount("gpt-4o") == 0.6
    assert batch_discount("claude-3-haiku") == 0.5
    assert estimate_batch_cost("my-model", 1_000_000, 0) == pytest.approx(0.4)
    f.write_text(json.dumps({"my-model": {"input": 1, "output": 2, "batch_discount": 3}}))
    with pytest.raises(ShoalError, match="between 0 and 1"):
        batch_discount("my-model")
