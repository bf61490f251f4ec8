"""`shoal eval` end to end against a loopback OpenAI-compatible server: real HTTP through Shoal's
client, real DuckDB, every sample executed in the sandbox."""
from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from typer.testing import CliRunner

from core.cli.main import app
from core.config import Profile
from core.evaluate import EvalSpec, compare_runs, problem_results, run_eval
from core.evaluate import runner as eval_runner
from core.evaluate import runs as eval_runs
from core.evaluate.sampling import SampleClient
from tests.support.crash import Crash
from tests.support.humaneval import PROBLEMS, SOLVED, canonical, humaneval_responder, problem_of, wrong
from tests.support.openai_server import FakeOpenAIServer
from tests.support.seed_data import add_example, wave
from tests.support.shared_folder import SHARED


def profile_for(server: FakeOpenAIServer) -> Profile:
    return Profile(role="generator", base_url=server.base_url, model="fake-model", max_tokens=512)


def test_pass_at_1_is_exactly_the_share_of_canonical_answers(store):
    with FakeOpenAIServer(humaneval_responder(SOLVED)) as server:
        out = run_eval(store, EvalSpec("humaneval", limit=20), profile_for(server))
        assert len(server.requests) == 20
        assert all("response_format" not in b for b in server.requests)     # plain text, no schema
        assert server.requests[0]["temperature"] == 0.0                     # greedy for one sample
        again = run_eval(store, EvalSpec("humaneval", limit=20), profile_for(server))
        assert len(server.requests) == 20                                   # the rerun came from the cache
    assert out["pass_at_1"] == pytest.approx(7 / 20)
    lo, hi = out["pass_at_1_ci"]
    assert lo < 0.35 < hi and 0.1 < lo and hi < 0.6
    assert out["statuses"]["ok"] == 7 and out["status"] == "done" and out["problems_solved"] == 7
    solved = {r["problem_id"] for r in problem_results(store, out["run_id"]) if r["c"]}
    assert solved == {PROBLEMS[i]["task_id"] for i in SOLVED}
    assert again["run_id"] != out["run_id"] and again["cache_hits"] == 20 and again["requests"] == 0
    assert again["pass_at_1"] == out["pass_at_1"] and again["pass_at_1_ci"] == out["pass_at_1_ci"]


def test_pass_at_k_with_n_samples_per_problem(store):
    passing = {0: 0, 1: 1, 2: 3, 3: 5}        # problem index -> how many of its 5 samples are right
    seen: Counter = Counter()
    lock = threading.Lock()

    def respond(body: dict) -> str:
        p = problem_of(body)
        i = PROBLEMS.index(p)
        with lock:
            seen[i] += 1
            right = seen[i] <= passing[i]
        return canonical(p) if right else wrong(p)

    with FakeOpenAIServer(respond) as server:
        out = run_eval(store, EvalSpec("humaneval", limit=4, n_samples=5, ks=[1, 2]), profile_for(server))
        assert len(server.requests) == 20 and server.requests[0]["temperature"] == 0.8
    assert out["pass_at_1"] == pytest.approx((0 + 0.2 + 0.6 + 1) / 4)
    pass2 = (0 + (1 - 6 / 10) + (1 - 1 / 10) + 1) / 4                      # 1 - C(n-c,2)/C(5,2) per problem
    assert out["pass_at_k"]["2"]["value"] == pytest.approx(pass2)
    assert [(r["n"], r["c"]) for r in problem_results(store, out["run_id"])] == [(5, 0), (5, 1), (5, 3), (5, 5)]


def test_a_killed_run_resumes_without_redoing_samples(store, monkeypatch):
    real_record = eval_runs.record_sample
    recorded = [0]

    def record_then_die(*args, **kwargs):
        if recorded[0] >= 8:
            raise Crash()                     # the process "dies" here: nothing after it is written
        recorded[0] += 1
        return real_record(*args, **kwargs)

    with FakeOpenAIServer(humaneval_responder(SOLVED)) as server:
        monkeypatch.setattr(eval_runs, "record_sample", record_then_die)
        with pytest.raises(Crash):
            run_eval(store, EvalSpec("humaneval", limit=20, concurrency=2), profile_for(server))
        monkeypatch.setattr(eval_runs, "record_sample", real_record)
        crashed = store.one_row("SELECT id, status FROM eval_runs")
        assert crashed["status"] == "running"                              # as a kill -9 leaves it
        assert store.scalar("SELECT count(*) FROM eval_samples") == 8
        first_requests = len(server.requests)

        executed = []
        real_execute = eval_runner._SandboxWorkers.run

        async def counted(self, program):
            executed.append(program)
            return await real_execute(self, program)
        monkeypatch.setattr(eval_runner._SandboxWorkers, "run", counted)
        out = run_eval(store, EvalSpec("humaneval", limit=20, concurrency=2), profile_for(server))
    assert out["run_id"] == crashed["id"] and out["resumed"] and out["samples_before"] == 8
    assert len(executed) == 12                                              # only the missing samples ran
    # a reply logged before the crash is not asked again (only requests cut off in flight may be)
    assert out["requests"] + out["cache_hits"] == 12 and len(server.requests) <= 20 + 2
    assert out["cache_hits"] >= first_requests - 8 - 2
    assert out["pass_at_1"] == pytest.approx(7 / 20) and out["status"] == "done"
    assert store.scalar("SELECT count(*) FROM eval_samples") == 20


def test_a_sample_without_a_reply_is_retried_by_the_next_run(store, monkeypatch):
    class QuickToGiveUp(SampleClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "max_retries": 1, "backoff_base_s": 0.01})

    monkeypatch.setattr(eval_runner, "SampleClient", QuickToGiveUp)
    spec = EvalSpec("humaneval", limit=1)
    with FakeOpenAIServer(humaneval_responder(SOLVED)) as server:
        server.queue("503", "503")             # the first request fails, and so does its one retry
        first = run_eval(store, spec, profile_for(server))
        second = run_eval(store, spec, profile_for(server))
    assert first["status"] == "incomplete" and first["n_unscored"] == 1
    assert first["pass_at_1"] == 0.0                                        # a sample without a reply counts as failed
    assert second["run_id"] == first["run_id"] and second["status"] == "done" and second["n_unscored"] == 0
    assert second["pass_at_1"] == 1.0                                       # problem 0 gets its canonical answer
    assert second["requests"] == 1 and second["cache_hits"] == 0


def test_a_sandbox_that_never_returns_does_not_hold_up_the_run(store):
    def respond(body: dict) -> str:
        p = problem_of(body)
        slow = "import time\ntime.sleep(25)\n" if PROBLEMS.index(p) == 0 else ""
        return f"```python\n{slow}{p['prompt']}{p['canonical_solution']}```"

    with FakeOpenAIServer(respond) as server:
        # the watchdog gives up on a run after 12 s while the program takes 25 (as a sandbox that never
        # returns); the others take a second or two, with room for a loaded machine
        first = run_eval(store, EvalSpec("humaneval", limit=3, timeout=30, stuck_after_s=12.0), profile_for(server))
        second = run_eval(store, EvalSpec("humaneval", limit=3, timeout=30), profile_for(server))
        assert len(server.requests) == 3                                   # the rerun's reply came from the log
    assert first["status"] == "incomplete" and first["n_unscored"] == 1
    assert first["statuses"] == {"sandbox_stuck": 1, "ok": 2} and first["pass_at_1"] == pytest.approx(2 / 3)
    assert second["run_id"] == first["run_id"] and second["status"] == "done" and second["n_unscored"] == 0
    assert second["pass_at_1"] == 1.0 and second["cache_hits"] == 1 and second["requests"] == 0


def _cli(db, *args: str):
    return CliRunner().invoke(app, ["--db", str(db), *args])


def test_cli_json_and_compare(tmp_path):
    db = tmp_path / "cli.duckdb"
    with FakeOpenAIServer(humaneval_responder(SOLVED)) as weak, \
            FakeOpenAIServer(humaneval_responder(set(range(16))), model="strong") as strong:
        a = _cli(db, "eval", "--benchmark", "humaneval", "--limit", "20", "--base-url", weak.base_url,
                 "--model", "fake-model", "--json")
        b = _cli(db, "eval", "--benchmark", "humaneval", "--limit", "20", "--base-url", strong.base_url,
                 "--model", "strong", "--json")
    assert a.exit_code == 0, a.output
    ra, rb = json.loads(a.stdout), json.loads(b.stdout)
    assert ra["pass_at_1"] == pytest.approx(0.35) and len(ra["pass_at_1_ci"]) == 2
    assert rb["pass_at_1"] == pytest.approx(0.8) and rb["model"] == "strong"
    cmp = _cli(db, "eval", "compare", str(ra["run_id"]), str(rb["run_id"]), "--json")
    assert cmp.exit_code == 0, cmp.output
    c = json.loads(cmp.stdout)
    assert (c["only_a"], c["only_b"]) == (1, 10)                        # 19 only A; 1, 4, 6, 7, 9-12, 14, 15 only B
    assert c["mcnemar_p"] == pytest.approx(2 * (1 + 11) / 2 ** 11)
    assert c["significant"] and "The difference is real" in c["verdict"]
    listing = _cli(db, "eval", "runs", "--json")
    assert [r["id"] for r in json.loads(listing.stdout)] == [rb["run_id"], ra["run_id"]]
    words = _cli(db, "eval", "compare", str(ra["run_id"]), str(rb["run_id"]))
    assert "real" in words.output
    bad = _cli(db, "eval", "--benchmark", "nope")
    assert bad.exit_code == 1 and "Unknown benchmark" in bad.output


MBPP = SHARED / "data" / "benchmarks" / "mbpp.jsonl"


@pytest.mark.skipif(not MBPP.is_file(), reason="the team's MBPP file is not here")
def test_mbpp_from_a_user_file(store):
    rows = [json.loads(line) for line in MBPP.read_text().splitlines() if line.strip()]
    by_id = {r["task_id"]: r for r in rows}
    right = {11, 13, 16, 19}

    def respond(body: dict) -> str:
        text = body["messages"][-1]["content"]
        tid = next(t for t in range(11, 21) if by_id[t]["test_list"][0] in text)
        return f"```python\n{by_id[tid]['code']}\n```" if tid in right else "```python\npass\n```"

    with FakeOpenAIServer(respond) as server:
        out = run_eval(store, EvalSpec("mbpp", str(MBPP), limit=10), profile_for(server))
    assert out["pass_at_1"] == pytest.approx(0.4)
    assert {r["problem_id"] for r in problem_results(store, out["run_id"]) if r["c"]} == {f"MBPP/{t}" for t in right}


def _accepted_examples(store, n: int) -> None:
    """n accepted Python code-generation examples with their generated tests."""
    for i in range(n):
        add_example(store, {**wave(f"Write add_{i}(a, b) returning a + b + {i}.",
                                   f"def add_{i}(a, b):\n    return a + b + {i}\n"),
                            "tests": f"assert add_{i}(1, 2) == {3 + i}\nassert add_{i}(0, 0) == {i}\n"},
                    verdict="accepted")


def test_heldout_split_of_the_users_own_set(store):
    from core.evaluate import held_out_ids
    _accepted_examples(store, 60)
    ids = held_out_ids(store, share=0.2)
    assert 4 <= len(ids) <= 24 and ids == held_out_ids(store, share=0.2)    # stable

    def respond(body: dict) -> str:
        text = body["messages"][-1]["content"]
        i = int(text.split("Write add_")[1].split("(")[0])
        return f"```python\ndef add_{i}(a, b):\n    return a + b + {i if i % 2 == 0 else i + 1}\n```"

    with FakeOpenAIServer(respond) as server:
        out = run_eval(store, EvalSpec("heldout", share=0.2), profile_for(server))
    indexes = [int(store.scalar("SELECT json_extract_string(fields, '$.instruction') FROM generations WHERE id = ?",
                                [g]).split("add_")[1].split("(")[0]) for g in ids]
    assert out["n_problems"] == len(ids)
    assert out["pass_at_1"] == pytest.approx(sum(1 for i in indexes if i % 2 == 0) / len(ids))


def test_two_runs_compared_from_stored_rows(store):
    with FakeOpenAIServer(humaneval_responder(SOLVED)) as s1:
        a = run_eval(store, EvalSpec("humaneval", limit=20), profile_for(s1))
    with FakeOpenAIServer(humaneval_responder(SOLVED | {1, 4, 6}), model="b") as s2:
        b = run_eval(store, EvalSpec("humaneval", limit=20),
                     Profile(role="generator", base_url=s2.base_url, model="b"))
    c = compare_runs(store, a["run_id"], b["run_id"])
    assert (c["only_a"], c["only_b"], c["both"], c["neither"]) == (0, 3, 7, 10)
    assert c["mcnemar_p"] == pytest.approx(0.25) and not c["significant"]
    assert sorted(c["only_b_problems"]) == sorted(PROBLEMS[i]["task_id"] for i in (1, 4, 6))


@pytest.mark.llama
@pytest.mark.slow
def test_shoal_eval_of_the_embedded_model(tmp_path, monkeypatch):
    """`shoal eval` with no endpoint configured: the embedded llama.cpp model (SmolLM2-135M) on 5 HumanEval
    problems, every sample executed in the sandbox (about 1.5 minutes on 2 cores, the server's start included)."""
    from core.errors import MissingDependency, ShoalError
    from core.llm import local_model as local_llm
    for var in ("SHOAL_GENERATOR_BASE_URL", "SHOAL_JUDGE_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    models = local_llm.models_dir()
    monkeypatch.setenv("SHOAL_CACHE_DIR", str(tmp_path / "cache"))     # never a user's running server
    monkeypatch.setenv("SHOAL_MODELS_DIR", str(models))
    try:
        local_llm.check_server_package()
        local_llm.model_file()
    except (MissingDependency, ShoalError) as exc:
        pytest.skip(str(exc))
    db = tmp_path / "llama.duckdb"
    try:
        first = _cli(db, "eval", "--benchmark", "humaneval", "--limit", "5", "--json")
        assert first.exit_code == 0, first.output
        out = json.loads(first.stdout)
        local_llm.stop_all()        # the next start gets another port: the samples must still be found
        again = json.loads(_cli(db, "eval", "--benchmark", "humaneval", "--limit", "5", "--json").stdout)
    finally:
        local_llm.stop_all()
    assert out["model"] == local_llm.DEFAULT_LOCAL_MODEL and out["status"] == "done" and out["n_unscored"] == 0
    assert sum(out["statuses"].values()) == 5 and out["requests"] == 5           # five samples, all executed
    assert 0.0 <= out["pass_at_1"] <= 1.0 and out["pass_at_1_ci"][0] <= out["pass_at_1"] <= out["pass_at_1_ci"][1]
    assert again["base_url"] != out["base_url"]
    assert again["requests"] == 0 and again["cache_hits"] == 5 and again["pass_at_1"] == out["pass_at_1"]
