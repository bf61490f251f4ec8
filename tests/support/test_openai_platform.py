"""The fake OpenAI platform, driven with the real openai client (nothing of openai is mocked)."""
from __future__ import annotations

import json
import time

import jsonschema
import openai
import pytest

from tests.support.openai_platform import OpenAIPlatform, format_duration, model_family

MSG = [{"role": "user", "content": "hello there"}]
STRICT = {"type": "object", "additionalProperties": False, "required": ["rules", "overall"], "properties": {
    "rules": {"type": "array", "items": {"$ref": "#/$defs/Rule"}},
    "overall": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}},
    "$defs": {"Rule": {"type": "object", "additionalProperties": False, "required": ["reason", "answer"],
                       "properties": {"reason": {"type": "string"}, "answer": {"enum": ["yes", "no"]}}}}}


def rf(schema: dict, strict: bool = True) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "verdict", "strict": strict, "schema": schema}}


@pytest.fixture(scope="module")
def platform():
    with OpenAIPlatform(api_key="sk-test-0123456789", context_window={"gpt-4o-mini": 50}) as server:
        yield server


@pytest.fixture()
def client(platform):
    return openai.OpenAI(base_url=platform.base_url, api_key="sk-test-0123456789", max_retries=0)


def error_of(call) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    return info.value


def test_families():
    assert [model_family(m) for m in ("o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-chat-latest",
                                      "gpt-4o-mini", "gpt-4.1")] == \
        ["reasoning"] * 5 + ["chat"] * 3
    assert [format_duration(s) for s in (0.644, 1.2, 9.816, 360)] == ["644ms", "1.2s", "9.816s", "6m0s"]


def test_reasoning_models_refuse_chat_parameters(client):
    e = error_of(lambda: client.chat.completions.create(model="gpt-5-mini", messages=MSG, max_tokens=100))
    assert e.status_code == 400 and e.body == {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                   "'max_completion_tokens' instead.",
        "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}
    e = error_of(lambda: client.chat.completions.create(model="o4-mini", messages=MSG, temperature=0.2))
    assert (e.body["param"], e.body["code"]) == ("temperature", "unsupported_value")
    assert e.body["message"] == ("Unsupported value: 'temperature' does not support 0.2 with this model. "
                                 "Only the default (1) value is supported.")
    e = error_of(lambda: client.chat.completions.create(model="o4-mini", messages=MSG, top_p=0.9))
    assert (e.body["param"], e.body["code"]) == ("top_p", "unsupported_value")
    r = client.chat.completions.create(model="o4-mini", messages=MSG, max_completion_tokens=50,
                                       temperature=1, reasoning_effort="low")
    assert r.choices[0].message.content == "OK"
    # chat models take max_tokens and temperature, and refuse reasoning_effort
    r = client.chat.completions.create(model="gpt-4.1-mini", messages=MSG, max_tokens=20, temperature=0.2)
    assert r.choices[0].finish_reason == "stop"
    e = error_of(lambda: client.chat.completions.create(model="gpt-4.1-mini", messages=MSG, reasoning_effort="low"))
    assert (e.body["param"], e.body["code"]) == ("reasoning_effort", "unsupported_parameter")


def test_reasoning_tokens_can_eat_a_small_output_limit():
    with OpenAIPlatform(reasoning_tokens=64) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        r = c.chat.completions.create(model="gpt-5-mini", messages=MSG, max_completion_tokens=50)
        assert (r.choices[0].message.content, r.choices[0].finish_reason) == ("", "length")
        assert r.usage.completion_tokens == 50 and r.usage.completion_tokens_details.reasoning_tokens == 50
        r = c.chat.completions.create(model="gpt-5-mini", messages=MSG, max_completion_tokens=500)
        assert r.choices[0].message.content == "OK"
        assert r.usage.completion_tokens == 65 and r.usage.completion_tokens_details.reasoning_tokens == 64


def test_strict_schemas_are_checked_and_answered_conformingly(client):
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, response_format=rf(STRICT))
    jsonschema.validate(json.loads(r.choices[0].message.content), STRICT)
    loose = json.loads(json.dumps(STRICT))
    del loose["$defs"]["Rule"]["additionalProperties"]
    e = error_of(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MSG, response_format=rf(loose)))
    assert e.status_code == 400 and e.body["code"] == "invalid_json_schema"
    assert e.body["message"] == ("Invalid schema for response_format 'verdict': In context=('$defs', 'Rule'), "
                                 "'additionalProperties' is required to be supplied and to be false.")
    partial = json.loads(json.dumps(STRICT))
    partial["required"] = ["rules"]
    e = error_of(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MSG, response_format=rf(partial)))
    assert e.body["message"] == ("Invalid schema for response_format 'verdict': In context=(), 'required' is "
                                 "required to be supplied and to be an array including every key in "
                                 "properties. Missing 'overall'.")
    # strict: false is not validated (and not enforced)
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, response_format=rf(partial, strict=False))
    assert "rules" in json.loads(r.choices[0].message.content)


def test_non_strict_schemas_are_not_enforced_when_asked():
    with OpenAIPlatform(loose_schema_fault_rate=1.0) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        loose = c.chat.completions.create(model="gpt-4o-mini", messages=MSG, response_format=rf(STRICT, strict=False))
        strict = c.chat.completions.create(model="gpt-4o-mini", messages=MSG, response_format=rf(STRICT))
    assert "rules" not in json.loads(loose.choices[0].message.content)
    jsonschema.validate(json.loads(strict.choices[0].message.content), STRICT)


def test_context_auth_model_and_quota_errors(platform, client):
    long = [{"role": "user", "content": "word " * 60}]
    e = error_of(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=long))
    assert e.status_code == 400 and (e.body["code"], e.body["param"]) == ("context_length_exceeded", "messages")
    assert e.body["message"].startswith("This model's maximum context length is 50 tokens. However, your "
                                        "messages resulted in 68 tokens.")
    e = error_of(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=45))
    assert "you requested 54 tokens (9 in the messages, 45 in the completion)" in e.body["message"]
    bad = openai.OpenAI(base_url=platform.base_url, api_key="sk-wrong-key-4321", max_retries=0)
    e = error_of(lambda: bad.chat.completions.create(model="gpt-4o-mini", messages=MSG))
    assert isinstance(e, openai.AuthenticationError) and e.body["code"] == "invalid_api_key"
    assert "sk-**********4321" in e.body["message"]
    e = error_of(lambda: client.chat.completions.create(model="gpt-9", messages=MSG))
    assert isinstance(e, openai.NotFoundError) and e.body["code"] == "model_not_found"
    assert [m.id for m in client.models.list()] == platform.models
    with OpenAIPlatform(quota_exhausted=True) as broke:
        c = openai.OpenAI(base_url=broke.base_url, api_key="k", max_retries=0)
        e = error_of(lambda: c.chat.completions.create(model="gpt-4o-mini", messages=MSG))
    assert e.status_code == 429 and (e.body["type"], e.body["code"]) == ("insufficient_quota", "insufficient_quota")


def test_rate_limits_send_openai_headers_and_429s():
    with OpenAIPlatform(rpm=3, tpm=1000, window_s=600) as server:      # slow refill: steady numbers
        c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG, max_tokens=100)
        h = raw.headers
        usage = raw.parse().usage
        assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-limit-tokens"]) == ("3", "1000")
        assert h["x-ratelimit-remaining-requests"] == "2"
        # charged prompt + max_tokens, then the unused output refunded
        assert int(h["x-ratelimit-remaining-tokens"]) == 1000 - usage.total_tokens
        assert h["x-ratelimit-reset-requests"] == "3m20s" and h["x-ratelimit-reset-tokens"].endswith("s")
        e = error_of(lambda: c.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=990))
        assert e.status_code == 429 and (e.body["type"], e.body["code"]) == ("tokens", "rate_limit_exceeded")
        assert e.body["message"].startswith(
            f"Rate limit reached for gpt-4o-mini in organization org-shoaltest on tokens per min (TPM): "
            f"Limit 1000, Used {usage.total_tokens}, Requested 999. Please try again in ")
        assert float(e.response.headers["retry-after-ms"]) > 0 and int(e.response.headers["retry-after"]) >= 1
        e = error_of(lambda: c.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=5000))
        assert e.body["message"].startswith("Request too large for gpt-4o-mini")
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=10)
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=10)
        e = error_of(lambda: c.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=10))
        assert e.body["type"] == "requests" and "on requests per min (RPM): Limit 3, Used 3, Requested 1" \
            in e.body["message"]
        assert server.rate_limited == 3          # "Request too large" is a rate-limit 429 too


def batch_file(client, n: int, model: str = "gpt-4o-mini", **body) -> str:
    lines = [{"custom_id": f"item-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": model, "messages": [{"role": "user", "content": f"question {i}"}],
                       "response_format": rf(STRICT), **body}} for i in range(n)]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    f = client.files.create(file=("requests.jsonl", data), purpose="batch")
    assert client.files.content(f.id).content == data
    return f.id


def wait_batch(client, batch_id: str, seen: list | None = None):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        b = client.batches.retrieve(batch_id)
        if seen is not None and (not seen or seen[-1] != b.status):
            seen.append(b.status)
        if b.status in ("completed", "failed", "expired", "cancelled"):
            return b
        time.sleep(0.02)
    raise AssertionError("batch did not finish")


def read_lines(client, file_id: str | None) -> list[dict]:
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()] if file_id else []


def test_a_batch_runs_through_its_states_without_per_call_requests():
    with OpenAIPlatform(batch_timing=(0.1, 0.4, 0.1)) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        batch = c.batches.create(input_file_id=batch_file(c, 20), endpoint="/v1/chat/completions",
                                 completion_window="24h", metadata={"job": "7"})
        assert batch.status == "validating" and batch.request_counts.total == 20
        seen = []
        done = wait_batch(c, batch.id, seen)
        assert seen == ["validating", "in_progress", "finalizing", "completed"]
        assert (done.request_counts.completed, done.request_counts.failed) == (20, 0)
        assert done.error_file_id is None and done.metadata == {"job": "7"}
        lines = read_lines(c, done.output_file_id)
        assert sorted(line["custom_id"] for line in lines) == sorted(f"item-{i}" for i in range(20))
        assert [line["custom_id"] for line in lines] != [f"item-{i}" for i in range(20)]   # any order
        for line in lines:
            assert line["error"] is None and line["response"]["status_code"] == 200
            body = line["response"]["body"]
            jsonschema.validate(json.loads(body["choices"][0]["message"]["content"]), STRICT)
            assert body["usage"]["prompt_tokens"] > 0
        assert server.chat_request_count == 0 and server.batch_lines_processed == 20
        assert [b.id for b in c.batches.list()] == [batch.id]


def test_batch_lines_fail_like_calls_and_expired_lines_are_reported():
    with OpenAIPlatform(batch_timing=(0.02, 0.05, 0.02), batch_expire_after=3) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        done = wait_batch(c, c.batches.create(input_file_id=batch_file(c, 5, model="o4-mini", max_tokens=50),
                                              endpoint="/v1/chat/completions", completion_window="24h").id)
        assert done.status == "expired" and (done.request_counts.completed, done.request_counts.failed) == (0, 5)
        errors = {line["custom_id"]: line for line in read_lines(c, done.error_file_id)}
        assert len(errors) == 5 and done.output_file_id is None
        refused = errors["item-0"]["response"]
        assert refused["status_code"] == 400 and refused["body"]["error"]["code"] == "unsupported_parameter"
        assert errors["item-4"]["response"] is None and errors["item-4"]["error"]["code"] == "batch_expired"
        assert server.chat_request_count == 0


def test_bad_batch_input_fails_validation_and_cancel_stops_a_batch():
    with OpenAIPlatform(batch_timing=(0.05, 5.0, 0.05)) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        good = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": MSG}}
        data = (json.dumps(good) + "\n" + json.dumps(good) + "\nnot json\n").encode()
        f = c.files.create(file=("bad.jsonl", data), purpose="batch")
        failed = wait_batch(c, c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                                completion_window="24h").id)
        assert failed.status == "failed"
        assert [(e.code, e.line) for e in failed.errors.data] == [("duplicate_custom_id", 2), ("invalid_json_line", 3)]
        e = error_of(lambda: c.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions",
                                              completion_window="24h"))
        assert e.status_code == 404
        running = c.batches.create(input_file_id=batch_file(c, 50), endpoint="/v1/chat/completions",
                                   completion_window="24h")
        time.sleep(0.6)
        assert c.batches.cancel(running.id).status == "cancelling"
        done = wait_batch(c, running.id)
        assert done.status == "cancelled" and 0 < done.request_counts.completed < 50
        assert len(read_lines(c, done.output_file_id)) == done.request_counts.completed
        c.files.delete(f.id)
        assert f.id not in [x.id for x in c.files.list()]
