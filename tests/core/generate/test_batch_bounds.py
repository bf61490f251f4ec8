"""Batch mode ends: the item life cycle of core.llm.lifecycle (repair rounds, line resends, cancelled
batches) is bounded and counted in batch mode as online, against the OpenAI platform test server
through the real openai client and real DuckDB files.

Every batch job here runs under a bounded wait (`run_bounded`): a regression that loops fails the
test with the rounds it sent instead of hanging the suite."""
from __future__ import annotations

import json
import re
import threading

import pytest
from typer.testing import CliRunner

import core.generate.jobs.batch as batch_module
from core.cli.main import app
from core.config import Profile
from core.generate.jobs import batch_status, create_job, retry_failed, run_job
from core.llm.lifecycle import LIMITS
from core.sandbox.languages import available_languages
from core.store import open_store
from tests.support.jobs import FAST, POLL
from tests.support.openai_platform import OpenAIPlatform
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets

N = 6
BROKEN = {1, 4}             # snippet indexes whose generated solution can never pass its tests
BOUND_S = 90.0              # a batch job that has not ended by then is looping
_NAME = re.compile(r"\bdef (func_function_(\d+))\(")


def profiles(server) -> dict:
    """test_batch's profiles, with room for a slow answer on a busy machine."""
    return {role: Profile(role=role, base_url=server.base_url, model="gpt-4o-mini", max_tokens=256, timeout_s=60,
                          temperature=1.0 if role == "generator" else 0.0) for role in ("generator", "judge")}


def _user_text(body: dict) -> str:
    return "\n".join(m.get("content") or "" for m in body.get("messages") or [] if m.get("role") == "user")


def _is_repair(body: dict) -> bool:
    return any(m.get("role") == "assistant" for m in body.get("messages") or [])


def _never_passes(body: dict) -> str:
    """A model whose solutions for BROKEN snippets use an undefined decorator `@rule` (copied from a
    source it saw), every time, repairs included; their run also prints a random seed first, so
    the failure the generator is shown differs between two runs of the same code (as a temp path,
    an object address or a seed in a sandbox's output does). The rest pass; the judge says yes."""
    prompt = _user_text(body)
    if "## Example to judge" in prompt:
        reply = json.loads(shoal_responder(body))
        return json.dumps({**reply, "rules": [{**r, "answer": "yes"} for r in reply["rules"]], "overall": "yes"})
    name, i = _NAME.search(prompt[prompt.find("## Input code"):]).groups()
    solution = f"def {name}(x, y):\n    return x + y\n"
    if int(i) in BROKEN:
        solution = ("import random, sys\nprint(f'randomized checks, seed {random.randrange(10**12)}', file=sys.stderr)\n"
                    f"\n\n@rule\n{solution}")
    return json.dumps({"task_name": f"Implement {name}",
                       "instruction": f"Write a Python function `{name}` that adds its two arguments.",
                       "information": "no input", "solution": solution,
                       "tests": f"assert {name}(1, 2) == 3\nassert {name}(0, 0) == 0\n"})


def run_bounded(store, job: int, bound_s: float = BOUND_S) -> dict:
    """Run a batch job in a thread; if it has not ended within `bound_s`, cancel it and fail with the
    rounds it sent (a loop fails the test instead of hanging it)."""
    cancel, out = threading.Event(), {}
    worker = threading.Thread(target=lambda: out.update(
        s=batch_module.run_batch_job(store, job, poll_s=POLL, cancel=cancel)), daemon=True)
    worker.start()
    worker.join(bound_s)
    if worker.is_alive():
        cancel.set()
        worker.join(60)
        rounds = [r["text"] for r in batch_status(store, job)["round_lines"]]
        pytest.fail(f"the batch job was still running after {bound_s:.0f}s: {len(rounds)} rounds\n" + "\n".join(rounds))
    return out["s"]


def _items(store, job: int) -> dict[str, dict]:
    """snippet id -> the item's outcome: status, error, execution (passed, repair rounds, output)."""
    out = {}
    for r in store.rows("""SELECT i.snippet_id, i.status, i.error, j.overall, c.passed, c.detail
                           FROM job_items i LEFT JOIN generations g ON g.id = i.generation_id
                           LEFT JOIN judgments j ON j.generation_id = g.id
                           LEFT JOIN checks c ON c.generation_id = g.id AND c.kind = 'execution'
                           WHERE i.job_id = ? ORDER BY i.snippet_id""", [job]):
        detail = json.loads(r["detail"]) if r["detail"] else {}
        out[r["snippet_id"]] = {"status": r["status"], "error": r["error"], "judged_yes": r["overall"],
                                "passed": r["passed"], "repair_rounds": detail.get("repair_rounds"),
                                "repaired": detail.get("repaired"), "status_run": detail.get("status"),
                                "output": (detail.get("stderr") or "") + (detail.get("first_output") or "")}
    return out


@pytest.fixture
def python_sandbox():
    why = available_languages().get("python")
    if why:
        pytest.skip(f"no Python sandbox here: {why}")


def test_items_that_never_pass_end_after_the_same_repair_rounds_online_and_in_batch(tmp_path, python_sandbox):
    online, batch = open_store(tmp_path / "online.duckdb"), open_store(tmp_path / "batch.duckdb")
    try:
        ids = add_snippets(online, N)
        assert add_snippets(batch, N) == ids
        broken = {ids[i] for i in BROKEN}
        with OpenAIPlatform(_never_passes, batch_timing=FAST) as srv:
            # the same items, the same server and model: online ...
            on_job = create_job(online, ids, profiles=profiles(srv), task="code_generation")
            on = run_job(online, on_job)
            # distinct bodies: a request timed out on a busy machine is sent again as it was
            online_repairs = {json.dumps(b, sort_keys=True) for b in srv.requests if _is_repair(b)}
            chat_requests = srv.chat_request_count
            assert not srv.batches
            # ... and in batch mode
            b_job = create_job(batch, ids, profiles=profiles(srv), task="code_generation", batch=True)
            bs = run_bounded(batch, b_job)
            batch_repairs = [line for b in srv.batches.values() for line in b.lines if _is_repair(line["body"])]
            assert srv.chat_request_count == chat_requests        # no chat request from the batch job

        # side by side: both jobs end, every item the same way
        assert on["status"] == bs["status"] == "done"
        on_items, b_items = _items(online, on_job), _items(batch, b_job)
        def outcome(items: dict) -> dict:   # the output differs run to run (its seed): compared below
            return {sid: {k: v for k, v in it.items() if k != "output"} for sid, it in items.items()}
        assert outcome(on_items) == outcome(b_items) and set(on_items) == set(ids)
        for mode, items in (("online", on_items), ("batch", b_items)):
            for sid in broken:   # ran out of repair rounds: kept with the execution failed, and why
                it = items[sid]
                assert it["passed"] is False and it["repaired"] is False, (mode, it)
                assert it["repair_rounds"] == LIMITS.repair_rounds == 1, (mode, it)
                assert "NameError: name 'rule' is not defined" in it["output"], (mode, it)
            for sid in set(ids) - broken:
                assert items[sid]["passed"] is True and items[sid]["repair_rounds"] == 0, (mode, items[sid])
        # the same number of repair requests, one per broken item and round
        assert len(online_repairs) == len(batch_repairs) == len(broken) * LIMITS.repair_rounds
        assert bs["usage"]["calls"] == 2 * N + len(broken) * LIMITS.repair_rounds <= on["usage"]["calls"]

        # batch rounds: generate; judge + repair 1; the repaired examples' judge -- then nothing
        status = batch_status(batch, b_job)
        rounds = status["round_lines"]
        assert [r["round"] for r in rounds] == [1, 2, 3], [r["text"] for r in rounds]
        assert rounds[0]["sent"] == {"generate": N} and rounds[0]["why"] == {"first call": N}
        assert rounds[1]["sent"] == {"judge": N - len(broken), "repair 1": len(broken)}
        assert rounds[1]["why"] == {"first call": N - len(broken), "tests failed": len(broken)}
        assert rounds[2]["sent"] == {"judge": len(broken)}
        assert all(r["outcome"] == {"answered": r["lines"]} for r in rounds)
        assert "sent: judge ×4, repair 1 ×2 · why: first call ×4, tests failed ×2" in rounds[1]["text"]

        # `shoal jobs --show` prints each round: its lines, what and why
        batch.checkpoint()
        batch.close()
        res = CliRunner().invoke(app, ["--db", str(tmp_path / "batch.duckdb"), "jobs", "--show", str(b_job)])
        assert res.exit_code == 0, res.output
        printed = " ".join(res.output.split())       # rich wraps long lines
        for r in rounds:
            assert r["text"] in printed, res.output
    finally:
        online.close()
        batch.close()


class _NeverFinishing(OpenAIPlatform):
    """The platform, where `fate(line)` says what becomes of each batch line: "expire" (left for the
    batch's end: batch_expired), "fail" (a 500 in the error file) or "ok"."""

    def __init__(self, responder, fate, **kw):
        super().__init__(responder, **kw)
        self.fate = fate

    def create_batch(self, body: dict):
        b = super().create_batch(body)
        with self._platform_lock:
            b.lines.sort(key=lambda line: self.fate(line) == "expire")    # the lines that run come first
            b.runs = sum(self.fate(line) != "expire" for line in b.lines)
        return b

    def _advance(self, b):
        runs = getattr(b, "runs", len(b.lines))
        self.batch_expire_after = runs if runs < len(b.lines) else None
        return super()._advance(b)

    def _run_line(self, line: dict) -> dict:
        if self.fate(line) != "fail":
            return super()._run_line(line)
        self.batch_lines_processed += 1
        return {"id": "batch_req_x", "custom_id": line["custom_id"], "error": None,
                "response": {"status_code": 500, "request_id": "req_x", "body": {"error": {
                    "message": "The server had an error while processing your request.", "type": "server_error",
                    "param": None, "code": None}}}}


def test_lines_expired_or_failed_for_ever_end_their_items_within_the_bound(store, python_sandbox):
    """The judge lines of the two items whose tests never pass never come back: one's always expire,
    the other's always fail (500). Each ends failed with its reason after 1 + transport_retries
    lines, every line counted; the other items are done and the job ends. (Those two items' repair
    prompts differ between rounds: bounds count an item's step, not one payload.)"""
    ids = add_snippets(store, N)
    expire_id, fail_id = ids[min(BROKEN)], ids[max(BROKEN)]
    with _NeverFinishing(_never_passes, lambda line: "ok", batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        item_of = {int(r["id"]): r["snippet_id"] for r in store.rows(
            "SELECT id, snippet_id FROM job_items WHERE job_id = ?", [job])}

        def fate(line: dict) -> str:
            item, role = line["custom_id"].split("-")
            sid = item_of[int(item)]
            return "ok" if role != "judge" else "expire" if sid == expire_id else "fail" if sid == fail_id else "ok"
        srv.fate = fate
        s = run_bounded(store, job)

        sends = 1 + LIMITS.transport_retries
        assert s["status"] == "done" and s["items"]["failed"] == 2 and s["items"]["succeeded"] == N - 2, s
        items = _items(store, job)
        assert items[expire_id]["error"].startswith("judge: batch_expired"), items[expire_id]
        assert items[fail_id]["error"].startswith("judge: http 500"), items[fail_id]
        for sid in (expire_id, fail_id):
            assert items[sid]["status"] == "failed" and items[sid]["passed"] is False
            assert items[sid]["error"].endswith(f"(gave up: {sends} lines expired or failed)"), items[sid]
        # each line counted: a batch_requests row and an llm_calls row per line sent, none answered
        lines = store.rows("""SELECT i.snippet_id, r.status, r.reason, c.error FROM batch_requests r
                              JOIN job_items i ON i.id = r.job_item_id LEFT JOIN llm_calls c ON c.id = r.llm_call_id
                              WHERE r.step = 'judge' ORDER BY r.batch_id""")
        for sid in (expire_id, fail_id):
            mine = [r for r in lines if r["snippet_id"] == sid]
            assert len(mine) == sends and {r["status"] for r in mine} == {"retry"} and all(r["error"] for r in mine)
            assert [r["reason"] for r in mine] == ["first call"] + ["line expired or failed"] * LIMITS.transport_retries
        assert store.scalar("SELECT count(*) FROM batch_requests WHERE step = 'repair 1'") == len(BROKEN)
        rounds = batch_status(store, job)["round_lines"]
        # 1 generate, 2 judge + the repairs, 3 the repaired examples' judge, then the resends
        assert len(rounds) == 2 + sends, [r["text"] for r in rounds]
        assert sum(r["why"].get("line expired or failed", 0) for r in rounds) == 2 * LIMITS.transport_retries
        assert sum(r["outcome"].get("expired or failed", 0) for r in rounds) == 2 * sends

        # retried by hand, the two items start their counts again (and end the same way here): only
        # their judge lines are sent, the steps answered before keep their answers
        before = len(srv.batches)
        assert retry_failed(store, job) == 2
        s = run_bounded(store, job)
        assert s["status"] == "done" and s["items"]["failed"] == 2 and len(srv.batches) - before == sends
        assert all(f"(gave up: {sends} lines expired or failed)" in f["reason"] for f in s["failures"])


def test_batches_the_provider_cancels_for_ever_end_their_items(store):
    """A provider that cancels every batch before it runs a line (not the user): each line is sent
    1 + cancelled_resends times, then its item fails with the reason; the job ends."""
    ids = add_snippets(store, 3)

    class _Cancelling(OpenAIPlatform):
        def create_batch(self, body: dict):
            b = super().create_batch(body)
            b.cancel_t = b.t0
            return b

    with _Cancelling(shoal_responder, batch_timing=FAST) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        s = run_bounded(store, job)
        sends = 1 + LIMITS.cancelled_resends
        assert s["status"] == "done" and s["items"]["failed"] == 3, s
        assert len(srv.batches) == sends and srv.batch_lines_processed == 0
    assert all(f"(gave up: {sends} batches cancelled before the line ran)" in f["reason"] for f in s["failures"])
    assert store.scalar("SELECT count(*) FROM batch_requests WHERE status = 'cancelled'") == 3 * sends
    rounds = batch_status(store, job)["round_lines"]
    assert [r["outcome"] for r in rounds] == [{"cancelled by the provider": 3}] * sends


def test_a_batch_the_provider_never_finishes_is_cancelled_when_overdue_and_its_items_end(store):
    """A provider that keeps every batch "in progress" (past its 24 h window): once a batch is
    `batch_overdue_s` old Shoal cancels it, its lines count as expired (1 + transport_retries sends),
    then the items fail with the reason and the job ends."""
    ids = add_snippets(store, 2)
    overdue_s = 0.5
    with OpenAIPlatform(shoal_responder, batch_timing=(0.05, 10**9, 0.05)) as srv:   # in progress for ever
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", batch=True)
        cancel, out = threading.Event(), {}
        worker = threading.Thread(target=lambda: out.update(s=batch_module.run_batch_job(
            store, job, poll_s=POLL, cancel=cancel, client_options={"batch_overdue_s": overdue_s})), daemon=True)
        worker.start()
        worker.join(BOUND_S)
        if worker.is_alive():
            cancel.set()
            worker.join(60)
            pytest.fail(f"the job did not end within {BOUND_S:.0f} s: {len(srv.batches)} batches sent")
        s = out["s"]
        sends = 1 + LIMITS.transport_retries
        assert s["status"] == "done" and s["items"]["failed"] == 2, s
        assert len(srv.batches) == sends and srv.batch_lines_processed == 0
        assert all(b.cancel_t is not None for b in srv.batches.values())     # each one cancelled by Shoal
    assert all(f["reason"].startswith(f"generator: batch_overdue: cancelled, not ended {overdue_s} s after")
               and f"(gave up: {sends} lines expired or failed)" in f["reason"] for f in s["failures"]), s["failures"]
    assert store.scalar("SELECT count(*) FROM batches WHERE overdue") == sends
    assert store.scalar("SELECT count(*) FROM batch_requests WHERE status = 'retry'") == 2 * sends
