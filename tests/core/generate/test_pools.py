"""Few-shot pools keep to the models a job runs with: judge-decided examples only from generations
of the current generator judged by the current judge; human verdicts from any model, first."""
from __future__ import annotations

import itertools
import json

import core.review as rv
from core.config import Profile
from core.generate.items import ItemResult, PoolConfig, Pools
from core.generate.jobs import create_job, run_job
from core.generate.jobs.writer import write_batch
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder

GEN, JUDGE = "real-gen", "real-judge"             # the pair the job runs with
DEMO_GEN, DEMO_JUDGE = "demo-135m", "demo-judge"  # the pair whose output must not be reused
_item_ids = itertools.count(1_000_000)


def _fields(task: str, name: str) -> dict:
    return {"task_name": name, "instruction": f"Summarize what the {name} function does.",
            "information": "def f(x):\n    return x + 1\n", "solution": "It returns its argument plus one."}


def _stored(store, name: str, gen_model: str, judge_model: str, overall: bool, *,
            task: str = "code_summarization", review: str | None = None, note: str | None = None) -> int:
    """One generation and its judgment, written by the job writer (core.generate.jobs.writer.write_batch)
    exactly as a job stores an item run with `gen_model` and judged by `judge_model`; a person's
    verdict through core.review.decide."""
    store.execute("INSERT INTO snippets(id, kind, source, source_kind, language, code, n_chars) "
                  "VALUES ('pool-seed', 'function', 'test', 'stdlib', 'python', 'def f(x):\n    return x + 1\n', 26) "
                  "ON CONFLICT DO NOTHING")
    item_id = next(_item_ids)
    item = {"id": item_id, "snippet_id": "pool-seed", "task": task, "target_language": None,
            "prompt_version_id": None, "generator_model": gen_model, "judge_model": judge_model}
    fields = _fields(task, name)
    res = ItemResult(fields=fields, raw_text=json.dumps(fields), parse_ok=True, prefilter_ok=True, judged=True,
                     judge_parse_ok=True, judge_overall=overall,
                     judge_rules=[{"rule": "the summary describes what the code does",
                                   "answer": "yes" if overall else "no", "reason": f"{name}-REASON"}],
                     judge_analysis=f"{name}-ANALYSIS")
    store.write(lambda cur: write_batch(cur, None, [], [(item, res)]))
    gid = int(store.scalar("SELECT id FROM generations WHERE job_item_id = ?", [item_id]))
    if review:
        rv.decide(store, gid, review, reviewer="ann", expected_version=0, note=note)
    return gid


def _seed(store) -> dict[str, int]:
    """Generations of two generator models judged by two judge models, oldest first: the current
    pair's own examples are the oldest, so a pool that ignored the models would show the others first."""
    ids = {}
    ids["CUR-PASS"] = _stored(store, "CUR-PASS", GEN, JUDGE, True)
    ids["CUR-FAIL"] = _stored(store, "CUR-FAIL", GEN, JUDGE, False)
    ids["DEMO-PASS"] = _stored(store, "DEMO-PASS", DEMO_GEN, DEMO_JUDGE, True)            # the demo's junk
    ids["DEMO-FAIL"] = _stored(store, "DEMO-FAIL", DEMO_GEN, DEMO_JUDGE, False)
    ids["GEN-DEMOJUDGE-PASS"] = _stored(store, "GEN-DEMOJUDGE-PASS", GEN, DEMO_JUDGE, True)    # right generator, other judge
    ids["GEN-DEMOJUDGE-FAIL"] = _stored(store, "GEN-DEMOJUDGE-FAIL", GEN, DEMO_JUDGE, False)
    ids["DEMOGEN-JUDGE-PASS"] = _stored(store, "DEMOGEN-JUDGE-PASS", DEMO_GEN, JUDGE, True)    # other generator, right judge
    ids["DEMOGEN-JUDGE-FAIL"] = _stored(store, "DEMOGEN-JUDGE-FAIL", DEMO_GEN, JUDGE, False)
    # a person's verdicts on the demo model's output: they count whatever the model (and the judge said)
    ids["DEMO-HUMAN-OK"] = _stored(store, "DEMO-HUMAN-OK", DEMO_GEN, DEMO_JUDGE, False, review="accepted")
    ids["DEMO-HUMAN-BAD"] = _stored(store, "DEMO-HUMAN-BAD", DEMO_GEN, DEMO_JUDGE, True, review="rejected",
                                    note="DEMO-HUMAN-NOTE: the summary is vague")
    # the current pair, another task: never in this task's pools
    ids["CUR-OTHER-TASK"] = _stored(store, "CUR-OTHER-TASK", GEN, JUDGE, True, task="code_generation")
    return ids


def _ids(tier: list[dict]) -> list[int]:
    return [x["id"] for x in tier]


def test_judge_tiers_hold_only_the_current_pair_and_human_verdicts_from_any_model_come_first(store):
    ids = _seed(store)
    pools = Pools.load(store, "code_summarization", generator_model=GEN, judge_model=JUDGE)
    assert _ids(pools.good_judge) == [ids["CUR-PASS"]]
    assert _ids(pools.bad_judge) == [ids["CUR-FAIL"]]
    assert _ids(pools.good_human) == [ids["DEMO-HUMAN-OK"]]
    assert _ids(pools.bad_human) == [ids["DEMO-HUMAN-BAD"]]
    assert "CUR-FAIL-ANALYSIS" in pools.bad_judge[0]["analysis"]

    # a prompt's examples: the person's accept / reject of the other model first, then the current pair's
    good, bad = pools.sample(PoolConfig(good=3, bad=3, strategy="recent"), "item")
    assert _ids(good) == [ids["DEMO-HUMAN-OK"], ids["CUR-PASS"]]
    assert _ids(bad) == [ids["DEMO-HUMAN-BAD"], ids["CUR-FAIL"]]
    good, bad = pools.sample(PoolConfig(good=3, bad=3, seed=7), "item")        # random picks: same members
    assert _ids(good) == [ids["DEMO-HUMAN-OK"], ids["CUR-PASS"]]
    assert _ids(bad) == [ids["DEMO-HUMAN-BAD"], ids["CUR-FAIL"]]

    # each model on its own narrows only by that model
    only_gen = Pools.load(store, "code_summarization", generator_model=GEN)
    assert _ids(only_gen.good_judge) == [ids["GEN-DEMOJUDGE-PASS"], ids["CUR-PASS"]]
    assert _ids(only_gen.bad_judge) == [ids["GEN-DEMOJUDGE-FAIL"], ids["CUR-FAIL"]]
    only_judge = Pools.load(store, "code_summarization", judge_model=JUDGE)
    assert _ids(only_judge.good_judge) == [ids["DEMOGEN-JUDGE-PASS"], ids["CUR-PASS"]]
    assert _ids(only_judge.bad_judge) == [ids["DEMOGEN-JUDGE-FAIL"], ids["CUR-FAIL"]]
    # the demo pair sees its own passes, not the real pair's
    demo = Pools.load(store, "code_summarization", generator_model=DEMO_GEN, judge_model=DEMO_JUDGE)
    assert _ids(demo.good_judge) == [ids["DEMO-PASS"]] and _ids(demo.bad_judge) == [ids["DEMO-FAIL"]]
    assert _ids(demo.good_human) == [ids["DEMO-HUMAN-OK"]]

    # no model given (the prompt preview, older callers): every judged example, as before
    every = Pools.load(store, "code_summarization")
    assert _ids(every.good_judge) == [ids[k] for k in ("DEMOGEN-JUDGE-PASS", "GEN-DEMOJUDGE-PASS", "DEMO-PASS", "CUR-PASS")]
    assert _ids(every.good_human) == [ids["DEMO-HUMAN-OK"]] and _ids(every.bad_human) == [ids["DEMO-HUMAN-BAD"]]


def test_a_job_prompts_only_with_examples_its_own_models_passed_or_a_person_judged(store):
    ids = _seed(store)
    snippets = []
    for i in range(3):
        code = f"def add_{i}(x, y):\n    \"\"\"Add x and y, then {i}.\"\"\"\n    return x + y + {i}\n"
        store.execute("INSERT INTO snippets(id, kind, source, source_kind, language, code, n_chars, func_name) "
                      "VALUES (?, 'function', 'test', 'stdlib', 'python', ?, ?, ?)", [f"p{i}", code, len(code), f"add_{i}"])
        snippets.append(f"p{i}")
    with FakeOpenAIServer(shoal_responder) as srv:
        prof = {role: Profile(role=role, base_url=srv.base_url, model=GEN if role == "generator" else JUDGE,
                              timeout_s=10.0, max_tokens=256, temperature=1.0 if role == "generator" else 0.0)
                for role in ("generator", "judge")}
        job = create_job(store, snippets, profiles=prof, task="code_summarization", concurrency=1,
                         pool=PoolConfig(good=12, bad=12))      # room for every pool example in each prompt
        assert run_job(store, job)["items"]["succeeded"] == 3
    prompts = [json.loads(r["request"])["messages"][-1]["content"] for r in store.rows(
        "SELECT request FROM llm_calls WHERE role = 'generator' AND model = ? ORDER BY id", [GEN])]
    assert len(prompts) == 3
    markers = [k for k in ids if k != "CUR-OTHER-TASK"]
    for prompt in prompts:
        shown = {k for k in markers if f'"task_name": "{k}"' in prompt}
        assert shown == {"CUR-PASS", "CUR-FAIL", "DEMO-HUMAN-OK", "DEMO-HUMAN-BAD"}
        assert "DEMO-HUMAN-NOTE: the summary is vague" in prompt and "CUR-FAIL-ANALYSIS" in prompt
        for junk in ("DEMO-FAIL-ANALYSIS", "GEN-DEMOJUDGE-FAIL-ANALYSIS", "DEMOGEN-JUDGE-FAIL-ANALYSIS"):
            assert junk not in prompt
        # the person's verdicts come before the judge's in each list
        assert prompt.index('"task_name": "DEMO-HUMAN-OK"') < prompt.index('"task_name": "CUR-PASS"')
        assert prompt.index('"task_name": "DEMO-HUMAN-BAD"') < prompt.index('"task_name": "CUR-FAIL"')
