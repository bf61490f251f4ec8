"""Real teachers at real volume: OpenAI's reasoning models, strict schemas, refusals read from the
error body, vLLM- and llama.cpp-style servers, and a job paced under a TPM limit -- all with the
real openai client against tests.support.openai_platform (nothing of openai is mocked)."""
from __future__ import annotations

import json
import time
from collections import Counter

import jsonschema
import openai
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from core.config import Profile
from core.generate.items import Judgment
from core.generate.jobs import create_job, run_job
from core.llm import LLMClient, chat_request, defaults_for, family_of, gates, strict_schema
from core.llm.capabilities import load_capabilities, reset_endpoints
from core.llm.formats import schema_of
from core.tasks import TASKS
from tests.support.openai_platform import OpenAIPlatform, check_params, strict_schema_problem
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Each test starts as a new process would: no gates, no endpoint records in memory."""
    gates.reset_gates()
    reset_endpoints()
    yield
    gates.reset_gates()
    reset_endpoints()


def profiles(base_url: str, gen_model: str, judge_model: str | None = None, **kw) -> dict:
    judge_kw = {k[6:]: v for k, v in kw.items() if k.startswith("judge_")}
    common = {k: v for k, v in kw.items() if not k.startswith("judge_")}
    return {"generator": Profile(role="generator", base_url=base_url, model=gen_model, temperature=1.0,
                                 **{"max_tokens": 256, "timeout_s": 10.0, **common}),
            "judge": Profile(role="judge", base_url=base_url, model=judge_model or gen_model, temperature=0.0,
                             **{"max_tokens": 256, "timeout_s": 10.0, **common, **judge_kw})}


def refused(server, model: str | None = None) -> int:
    """Chat requests the server answered with a 4xx/5xx other than a rate-limit 429."""
    with server._lock:
        pairs = list(zip(server.requests, server.log))
    return sum(1 for body, e in pairs if (model is None or body.get("model") == model)
               and e["status"] not in (200, None) and e["fault"] != "rate_limit_exceeded")


def run(store, server_url: str, prof: dict, n: int, concurrency: int = 4, **kw) -> dict:
    ids = add_snippets(store, n, kind=kw.pop("kind", "function"))
    job = create_job(store, ids, profiles=prof, task=kw.pop("task", "code_generation"), concurrency=concurrency)
    return run_job(store, job, **kw)


# ---------------------------------------------------------------- families and schemas


def test_known_families_start_from_their_defaults():
    assert family_of("https://api.openai.com/v1", "gpt-5-mini") == "openai-reasoning"
    assert family_of("https://api.openai.com/v1", "o4-mini-2025-04-16") == "openai-reasoning"
    assert family_of("https://openrouter.ai/api/v1", "openai/o3") == "openai-reasoning"
    assert family_of("https://api.openai.com/v1", "gpt-5-chat-latest") == "openai-chat"
    assert family_of("https://api.openai.com/v1", "gpt-4.1-mini") == "openai-chat"
    assert family_of("https://api.anthropic.com/v1", "claude-sonnet-4-5") == "anthropic"
    assert family_of("http://localhost:11434/v1", "qwen2.5-coder") == "ollama"
    assert family_of("http://127.0.0.1:39001/v1", "smollm2", source="local") == "llamacpp"
    assert family_of("http://gpu-box:8000/v1", "Qwen/Qwen2.5-Coder-7B-Instruct") == "generic"
    r = defaults_for("openai-reasoning")
    assert (r.token_param, r.sampling, r.reasoning_effort, r.current, r.strict) == \
        ("max_completion_tokens", False, True, "json_schema", True)
    assert defaults_for("llamacpp").modes == ("json_object", "text")        # never json_schema
    assert defaults_for("anthropic").modes == ("text",)                     # response_format is ignored there
    assert defaults_for("openai-chat").token_param == "max_tokens" and defaults_for("vllm").sampling


def test_every_schema_sent_strict_is_one_openai_accepts():
    class Loose(BaseModel):          # pydantic's default: open objects, a field with a default
        name: str
        tags: list[str] = []
        inner: Judgment | None = None
    for schema in [Judgment, Loose] + [spec.schema for spec in TASKS.values()]:
        sent = strict_schema(schema_of(schema))
        assert strict_schema_problem(sent) is None, schema.__name__
    prof = Profile(role="judge", base_url="https://api.openai.com/v1", model="o4-mini", reasoning_effort="low")
    body = chat_request(prof, "o4-mini", defaults_for("openai-reasoning"), "json_schema", [
        {"role": "user", "content": "judge this"}], Judgment, schema_of(Judgment))
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["max_completion_tokens"] > prof.max_tokens and "max_tokens" not in body
    assert "temperature" not in body and body["reasoning_effort"] == "low"
    check_params(body)                  # what OpenAI's reasoning models accept


# ---------------------------------------------------------------- OpenAI's reasoning models


def test_gpt5_mini_generator_and_o4_mini_judge_finish_every_item(store):
    with OpenAIPlatform(shoal_responder) as server:
        prof = profiles(server.base_url, "gpt-5-mini", "o4-mini", judge_reasoning_effort="low")
        summary = run(store, server.base_url, prof, 20, concurrency=6)
        assert summary["items"]["succeeded"] == 20 and summary["judged"] > 0
        rejected = {m: refused(server, m) for m in ("gpt-5-mini", "o4-mini")}
        bodies = list(server.requests)
    print(f"\nrejected calls per profile: {rejected}")
    assert all(n <= 1 for n in rejected.values())
    for body in bodies:
        assert "max_tokens" not in body and "temperature" not in body and body["max_completion_tokens"] > 256
        assert body["response_format"]["json_schema"]["strict"] is True
        assert ("reasoning_effort" in body) == (body["model"] == "o4-mini")
    caps = load_capabilities(store, server.base_url, "o4-mini")
    assert caps.family == "openai-reasoning" and caps.confirmed and not caps.sampling


class ThinkingPlatform(OpenAIPlatform):
    """A provider Shoal has no defaults for whose model behaves like OpenAI's reasoning models."""

    def check_request(self, body: dict) -> int:
        if body.get("model") == "acme-think":
            check_params({**body, "model": "o4-mini"})
        return super().check_request(body)


def test_an_unknown_model_is_learned_from_the_error_body_once_and_remembered(store):
    with ThinkingPlatform(shoal_responder, models=("acme-think",)) as server:
        prof = profiles(server.base_url, "acme-think")
        first = run(store, server.base_url, prof, 12, concurrency=1)
        learned = refused(server)
        statuses = [e["status"] for e in server.log]
        server.reset()
        reset_endpoints()                                   # a new process: read from DuckDB
        second = run(store, server.base_url, prof, 12, concurrency=4, kind="method")
        again = refused(server)
    assert first["items"]["succeeded"] == 12 and second["items"]["succeeded"] == 12
    # one refusal per parameter (max_tokens, then the judge's temperature 0), nothing retried blindly
    assert learned == 2 and statuses[:2] == [400, 200]
    assert again == 0
    caps = load_capabilities(store, server.base_url, "acme-think")
    assert (caps.token_param, caps.sampling, caps.source) == ("max_completion_tokens", False, "stored")
    assert [n["param"] for n in caps.learned] == ["max_tokens", "temperature"]


def test_context_auth_model_and_quota_errors_fail_at_once_with_a_hint(store, monkeypatch):
    class Example(BaseModel):
        answer: str
    msgs = [{"role": "user", "content": "word " * 80}]
    cases = [({"context_window": 50}, "gpt-4.1-mini", "maximum context length", "context window"),
             ({"api_key": "sk-right-key-0000"}, "gpt-4.1-mini", "Incorrect API key", "API key"),
             ({}, "gpt-9", "does not exist", "set SHOAL_GENERATOR_MODEL"),
             ({"quota_exhausted": True}, "gpt-4.1-mini", "exceeded your current quota", "billing")]
    monkeypatch.setenv("ACME_KEY", "sk-wrong-key-1234")
    for settings, model, message, hint in cases:
        with OpenAIPlatform(**settings) as server:
            prof = Profile(role="generator", base_url=server.base_url, model=model, api_key_env="ACME_KEY")
            res = LLMClient(store, prof).complete_sync(msgs, Example)
            assert len(server.requests) == 1, message       # no fallback, no retry
        assert not res.ok and res.attempts == 1
        assert message in res.error and "hint: " in res.error and hint in res.error, res.error


# ---------------------------------------------------------------- vLLM and llama.cpp style servers


@pytest.mark.parametrize("style", ["vllm", "llamacpp"])
def test_self_hosted_servers_still_work_and_the_fallback_is_remembered(store, style):
    server = FakeOpenAIServer(shoal_responder, reject_json_schema=style == "llamacpp", reject_status=500)
    model = "Qwen/Qwen2.5-Coder-7B-Instruct"
    with server:
        prof = profiles(server.base_url, model)
        first = run(store, server.base_url, prof, 20, concurrency=4)
        rejected_first = refused(server)
        modes = Counter((b.get("response_format") or {}).get("type") for b, e in zip(server.requests, server.log)
                        if e["status"] == 200)
        server.reset()
        reset_endpoints()
        second = run(store, server.base_url, prof, 20, concurrency=4, kind="method")
        rejected_second = refused(server)
    print(f"\n{style}: rejected {rejected_first} in the first job, {rejected_second} in the second; modes {dict(modes)}")
    assert first["items"]["succeeded"] == 20 and second["items"]["succeeded"] == 20
    if style == "vllm":
        assert rejected_first == 0 and set(modes) == {"json_schema"}
    else:
        assert 1 <= rejected_first <= 4 and set(modes) == {"json_object"}   # at most the first wave
        assert load_capabilities(store, server.base_url, model).modes == ("json_object", "text")
    assert rejected_second == 0


# ---------------------------------------------------------------- pacing under a TPM limit


def add_long_snippets(store, n: int, lines: int = 80) -> list[str]:
    """Functions of `lines` lines: real snippets, so that 100 items need more than one window."""
    ids = []
    for i in range(n):
        body = "".join(f"        if kind == 'k{j}':\n            total += value * {j + i % 7} - offset\n"
                       for j in range(lines // 2))
        code = (f"def accumulate_{i}(records, offset=0):\n    \"\"\"Sum the weighted values by kind ({i}).\"\"\"\n"
                f"    total = 0\n    for kind, value in records:\n{body}    return total\n")
        store.execute("INSERT INTO snippets(id, kind, source, source_kind, language, code, n_chars) "
                      "VALUES (?, 'function', 'test', 'stdlib', 'python', ?, ?)", [f"L{i:05d}", code, len(code)])
        ids.append(f"L{i:05d}")
    return ids


def test_a_100_item_job_at_concurrency_32_under_200k_tpm(store):
    """200k tokens per window (8 s here instead of a minute): the window and the limits are
    learned from the headers; the job is paced, not refused."""
    from core.llm import tokens
    tokens.available_encodings()
    window, limit = 8.0, 200_000
    with OpenAIPlatform(shoal_responder, tpm=limit, rpm=1_000_000, window_s=window, latency_s=0.1) as server:
        prof = profiles(server.base_url, "gpt-4.1-mini", max_tokens=2048)
        job = create_job(store, add_long_snippets(store, 100), profiles=prof, task="code_generation", concurrency=32)
        t0 = time.monotonic()
        summary = run_job(store, job)
        wall = time.monotonic() - t0
        n429 = server.rate_limited
        log = list(server.usage_log)
        stats = gates.gate_for(gates.gate_key(server.base_url, "gpt-4.1-mini")).stats()
    used = sum(n for _, n in log)
    span = log[-1][0] - t0
    # what the server lets through in `span`: its full bucket, then its refill
    ratio = used / (limit + span * limit / window)
    print(f"\nTPM job: {summary['items']['succeeded']} succeeded in {wall:.1f}s, {used} tokens, {n429} x 429, "
          f"{ratio:.2f} x what the limit allows in that time, gate waited {stats.total_wait_s:.0f}s in all, window "
          f"{stats.window_s:.2f}s, limits from {stats.limits_from}")
    assert summary["items"]["succeeded"] == 100 and summary["items"]["failed"] == 0
    assert n429 <= 5
    assert stats.tpm_limit == limit and "headers" in stats.limits_from and stats.window_s == pytest.approx(window, rel=0.1)
    assert used > 2 * limit and stats.total_wait_s > 0          # the limit really bound the job
    assert 0.5 <= ratio <= 1.02          # (bench/bench_rate_limit.py measures the steady state)


def test_a_429_never_fails_an_item(store):
    """Someone else on the same key has just used the whole RPM bucket, so the job meets 429s
    before any header of its own tells it the limit: waited out, no failures although
    transport retries are off."""
    with OpenAIPlatform(shoal_responder, rpm=10, window_s=5.0) as server:
        other = openai.OpenAI(base_url=server.base_url, api_key="sk-other", max_retries=0)
        for _ in range(10):                      # the bucket is 10; it refills 2 per second
            other.chat.completions.create(model="gpt-4.1-mini", max_tokens=16,
                                          messages=[{"role": "user", "content": "hello"}])
        prof = profiles(server.base_url, "gpt-4.1-mini")
        summary = run(store, server.base_url, prof, 16, concurrency=16, client_options={"max_retries": 0})
        n429 = server.rate_limited
    assert n429 > 0 and summary["items"]["succeeded"] == 16 and summary["items"]["failed"] == 0


def test_jobs_show_prints_the_pacing(store, tmp_path):
    from core.cli.main import app
    with OpenAIPlatform(shoal_responder, tpm=500_000, rpm=5_000) as server:
        prof = profiles(server.base_url, "gpt-5-mini")
        ids = add_snippets(store, 4)
        job = create_job(store, ids, profiles=prof, task="code_generation", concurrency=2)
        run_job(store, job)
    db = store.path
    store.close()
    gates.reset_gates()                       # another process: what the job wrote
    res = CliRunner().invoke(app, ["--db", str(db), "jobs", "--show", str(job), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["pacing"]
    assert [r["role"] for r in rows] == ["generator", "judge"]
    gen = rows[0]
    assert gen["tpm_limit"] == 500_000 and gen["rpm_limit"] == 5_000 and gen["limits_from"] == "headers"
    assert gen["requests_total"] >= 4 and gen["rate_limited"] == 0 and gen["source"].startswith("saved")
    assert gen["capabilities"]["token_param"] == "max_completion_tokens"
    assert gen["window_s"] == 60 and 0 < gen["tpm_used"] < 1
    text = CliRunner().invoke(app, ["--db", str(db), "jobs", "--show", str(job)]).output
    assert "pacing per endpoint" in text and "500,000" in text


def test_pacing_snapshot_lists_every_gate(store):
    with OpenAIPlatform(tpm=300_000) as server:
        class Example(BaseModel):
            answer: str
        c = LLMClient(store, Profile(role="generator", base_url=server.base_url, model="gpt-4.1-mini"))
        assert c.complete_sync([{"role": "user", "content": "hi"}], Example).ok
        snap = gates.pacing_snapshot()
        assert c.pacing()["tpm_limit"] == 300_000
    assert len(snap) == 1 and snap[0]["tpm_limit"] == 300_000 and snap[0]["requests_total"] == 1
    assert snap[0]["tokens_per_minute"] > 0
    jsonschema.validate({"answer": "x"}, strict_schema(schema_of(Example)))
