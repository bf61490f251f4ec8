"""Pre-filter rules, prompt versions, judge normalization, example pools feeding prompts."""
from __future__ import annotations

import json

import pytest

from core.errors import ShoalError
from core.generate.items import (
    PoolConfig,
    Pools,
    PoolSnapshot,
    build_generator_messages,
    current_prompt_version,
    few_shot,
    list_prompt_versions,
    normalize_judgment,
    prefilter,
    save_prompt_version,
)
from core.tasks import Judgment, get_task, judgment_schema, rule_keys

# --------------------------------------------------------------------------- pre-filter


def _ex(**kw):
    base = {"task_name": "t", "instruction": "Write a Python function that adds two numbers.",
            "information": "no input", "solution": "def add(a, b):\n    return a + b\n"}
    base.update(kw)
    return base


@pytest.mark.parametrize("placeholder", ["None", "N/A", "no additional information is required.", "  none  ",
                                         "No additional input", "", "-", "null", "Not applicable."])
def test_placeholders_are_normalized_to_no_input(placeholder):
    r = prefilter("code_generation", _ex(information=placeholder))
    assert r.ok, r.reasons
    assert r.fields["information"] == "no input"


def test_real_information_is_kept():
    r = prefilter("code_generation", _ex(information="a = [3, 1, 2]"))
    assert r.ok and r.fields["information"] == "a = [3, 1, 2]"


def test_more_than_one_empty_field_fails():
    assert prefilter("code_generation", _ex(task_name="")).ok          # one empty field is allowed
    r = prefilter("code_generation", _ex(task_name="", information=" ", solution="x"))
    assert not r.ok and r.reasons == ["empty_fields: task_name, information"]


def test_instruction_of_three_sentences_fails():
    r = prefilter("code_generation", _ex(instruction="Write a function. Make it fast. Add tests."))
    assert not r.ok and r.reasons == ["instruction_too_long: 3 sentences (at most 2)"]
    assert prefilter("code_generation", _ex(instruction="Write a Python function. Make it fast.")).ok


def test_task_specific_rules():
    assert prefilter("code_repair", _ex(information="none")).reasons == [
        "information_missing_code: this task needs the code in information"]
    # an input with no code in it (a small model's "sample information") is stopped before the judge
    for task in ("code_repair", "code_translation", "code_summarization"):
        assert prefilter(task, _ex(information="sample information")).reasons == [
            "information_missing_code: information holds no code"], task
        assert prefilter(task, _ex(information="The function adds two numbers.")).reasons, task
    assert prefilter("code_generation", _ex(information="sample information")).ok   # its information is optional
    r = prefilter("oss_instruct", {"problem": "One. Two. Three. Four sentences are fine in a problem.",
                                   "solution": "x = 1"})
    assert r.ok
    assert prefilter("oss_instruct", {"problem": "p", "solution": ""}).reasons == ["empty_solution"]
    assert prefilter("oss_instruct", {"problem": "p"}).reasons[0] == "missing_fields: solution"


SNIPPET = ('def open(filename, flag="c", protocol=None, writeback=False):\n'
           '    """Open a persistent dictionary for reading and writing."""\n'
           '    return DbfilenameShelf(filename, flag, protocol, writeback)\n')


def test_information_must_come_from_the_snippet():
    copied = "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n"   # a few-shot example, not the snippet
    r = prefilter("code_translation", _ex(information=copied), source_code=SNIPPET)
    assert r.reasons == ["information_not_from_snippet: 0% of its 3 identifiers are in the snippet"]
    assert prefilter("code_summarization", _ex(information=copied), source_code=SNIPPET).reasons
    # the snippet itself, without its docstring, or with a bug planted: all fine
    body = SNIPPET.replace('    """Open a persistent dictionary for reading and writing."""\n', "")
    assert prefilter("code_translation", _ex(information=body), source_code=SNIPPET).ok
    buggy = SNIPPET.replace("flag, protocol", "protocol, flag")
    assert prefilter("code_repair", _ex(information=buggy), source_code=SNIPPET).ok
    # too few identifiers to judge, other tasks, or no snippet given: the rule stays out of it
    assert prefilter("code_repair", _ex(information="x = y"), source_code=SNIPPET).ok
    assert prefilter("code_generation", _ex(information=copied), source_code=SNIPPET).ok
    assert prefilter("code_translation", _ex(information=copied)).ok


# --------------------------------------------------------------------------- judge


def test_overall_is_yes_only_when_every_rule_holds():
    rules = ["r1", "r2", "r3"]
    ok = Judgment.model_validate({"rules": [{"rule": str(i), "reason": "fine", "answer": "yes"} for i in range(3)],
                                  "analysis": "good", "overall": "yes"})
    out, overall = normalize_judgment(rules, ok)
    assert overall and [r["rule"] for r in out] == rules
    one_no = ok.model_copy(deep=True)
    one_no.rules[1].answer = "no"
    assert normalize_judgment(rules, one_no)[1] is False          # the judge's own "yes" does not override
    short = Judgment.model_validate({"rules": [{"rule": "1", "reason": "x", "answer": "yes"}],
                                     "analysis": "", "overall": "yes"})
    out, overall = normalize_judgment(rules, short)
    assert not overall and out[2]["answer"] == "no" and "no answer" in out[2]["reason"]


# --------------------------------------------------------------------------- judge keyed by rule

RULES3 = ["The instruction names the programming language.", "The solution is only code.",
          "The solution imports what it needs."]


def test_judge_schema_has_one_strict_property_per_rule_in_order():
    from tests.support.openai_platform import strict_schema_problem
    schema = judgment_schema(RULES3)
    sent = schema.model_json_schema()
    assert list(sent["properties"]) == [*rule_keys(RULES3), "analysis", "overall"]
    assert sent["required"] == list(sent["properties"]) and sent["additionalProperties"] is False
    assert [sent["properties"][k]["description"] for k in rule_keys(RULES3)] == RULES3
    assert strict_schema_problem(sent) is None                     # OpenAI strict mode accepts it
    assert rule_keys(RULES3)[0] == "rule_1_the_instruction_names_the_programming"
    assert judgment_schema(list(RULES3)) is schema                   # one class per rule list (stable cache key)
    assert judgment_schema(RULES3[:2]) is not schema


def test_a_skipped_or_reordered_rule_does_not_shift_later_answers():
    k1, k2, k3 = rule_keys(RULES3)
    schema = judgment_schema(RULES3)
    # rule 2 skipped, rule 3 before rule 1: each answer stays on its own rule, rule 2 is missing
    reply = {k3: {"reason": "no import of re", "answer": "no"}, k1: {"reason": "says Python", "answer": "yes"},
             "analysis": "missing import", "overall": "no"}
    out, overall = normalize_judgment(RULES3, schema.model_validate(reply))
    assert [r["rule"] for r in out] == RULES3 and not overall
    assert out[0] == {"rule": RULES3[0], "answer": "yes", "reason": "says Python"}
    assert out[1]["missing"] is True and "no answer" in out[1]["reason"]
    assert out[2] == {"rule": RULES3[2], "answer": "no", "reason": "no import of re"}
    # the old list shape, with the same skip and reorder, is matched by the rule each item names
    legacy = {"rules": [{"rule": "3", "reason": "no import of re", "answer": "no"},
                        {"rule": "Rule 1", "reason": "says Python", "answer": "yes"}],
              "analysis": "missing import", "overall": "no"}
    assert normalize_judgment(RULES3, schema.model_validate(legacy))[0] == out
    assert normalize_judgment(RULES3, Judgment.model_validate(legacy))[0] == out
    # keys that name a rule by number only, and rule text as the label, are matched too
    by_number = {"rule_3": {"reason": "x", "answer": "yes"}, "rules": [{"rule": RULES3[1], "reason": "y",
                 "answer": "no"}], "analysis": "", "overall": "no"}
    got = schema.model_validate(by_number).answers()
    assert got[0] is None and got[1].answer == "no" and got[2].answer == "yes"


def test_generate_one_records_a_missing_rule_without_shifting(store):
    """A real judge call through the client: the judge skips rule 2 and answers rule 3 first."""
    from core.config import Profile
    from core.generate.items import generate_one
    from core.llm import LLMClient, run_sync
    from tests.support.openai_server import FakeOpenAIServer
    from tests.support.shoal_responder import shoal_responder

    spec = get_task("code_generation")
    content = current_prompt_version(store, "code_generation").content
    keys = rule_keys(content["rules"])

    def responder(body):
        prompt = body["messages"][-1]["content"]
        if "## Example to judge" not in prompt:
            return shoal_responder(body)
        answers = {k: {"reason": f"reason {i + 1}", "answer": "yes"} for i, k in enumerate(keys) if i != 1}
        answers[keys[-1]]["answer"] = "no"
        ordered = dict(reversed(list(answers.items())))                # last rule first
        return json.dumps({**ordered, "analysis": "a", "overall": "no"})

    snippet = {"id": "s1", "language": "python", "code": "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n"
               "    return a + b\n"}
    with FakeOpenAIServer(responder) as srv:
        clients = [LLMClient(store, Profile(role=r, base_url=srv.base_url, model="fake-model", timeout_s=10))
                   for r in ("generator", "judge")]
        result = run_sync(generate_one(*clients, spec, content, snippet, None, [], []))
        for c in clients:
            c.close()
        sent = [b for b in srv.requests if "Example to judge" in b["messages"][-1]["content"]][0]
    assert result.judge_parse_ok, result.error
    assert list(sent["response_format"]["json_schema"]["schema"]["properties"])[:len(keys)] == keys
    rules = result.judge_rules
    assert rules[1]["missing"] is True
    assert [r["reason"] for i, r in enumerate(rules) if i != 1] == [f"reason {i + 1}" for i in range(len(keys)) if i != 1]
    assert rules[-1]["answer"] == "no" and all(r["answer"] == "yes" for r in rules[:-1] if not r.get("missing"))
    assert result.judge_overall is False


# --------------------------------------------------------------------------- prompt versions


def test_prompt_versions_are_created_on_edit_and_reused_when_unchanged(store):
    v1 = current_prompt_version(store, "code_generation")
    assert v1.version == 1 and v1.content["rules"] == get_task("code_generation").rules
    assert current_prompt_version(store, "code_generation").id == v1.id
    edited = dict(v1.content, rules=v1.content["rules"] + ["The solution has a docstring."])
    v2 = save_prompt_version(store, "code_generation", edited, note="more rules")
    assert v2.version == 2 and v2.id != v1.id and v2.content_hash != v1.content_hash
    assert save_prompt_version(store, "code_generation", edited).id == v2.id      # same content: same version
    assert current_prompt_version(store, "code_generation").id == v2.id
    assert [r["version"] for r in list_prompt_versions(store, "code_generation")] == [2, 1]
    with pytest.raises(ShoalError, match="does not render"):
        save_prompt_version(store, "code_generation", dict(edited, generator_template="{{ nonsense_var }}"))
    with pytest.raises(ShoalError, match="rules"):
        save_prompt_version(store, "code_generation", dict(edited, rules=[]))


# --------------------------------------------------------------------------- pools


def _snippet(store, sid="s1"):
    store.execute("INSERT INTO snippets(id, kind, source, source_kind, language, code, n_chars) "
                  "VALUES (?, 'function', 'test', 'stdlib', 'python', 'def f():\n    return 1\n', 20) "
                  "ON CONFLICT DO NOTHING", [sid])


def _gen(store, fields, overall=None, analysis=None, review=None, note=None, edited=None, task="code_generation"):
    _snippet(store)
    gid = store.scalar("INSERT INTO generations(snippet_id, task, fields, raw_text, parse_ok, prefilter_ok) "
                       "VALUES ('s1', ?, ?, ?, TRUE, TRUE) RETURNING id", [task, json.dumps(fields), json.dumps(fields)])
    if overall is not None:
        store.execute("INSERT INTO judgments(generation_id, rules, overall, analysis, parse_ok) VALUES (?, ?, ?, ?, TRUE)",
                      [gid, json.dumps([{"rule": "The solution imports what it needs.", "answer": "yes" if overall else "no",
                                         "reason": "uses re without importing it"}]), overall, analysis])
    if review:
        store.execute("INSERT INTO review_records(generation_id, verdict, note, edited_fields, reviewer) VALUES (?, ?, ?, ?, 'ann')",
                      [gid, review, note, None if edited is None else json.dumps(edited)])
    return gid


def test_pools_prefer_human_verdicts_and_feed_the_prompt(store):
    human_good = _gen(store, _ex(task_name="HUMAN-GOOD"), overall=False, review="accepted",
                      edited=_ex(task_name="HUMAN-EDITED"))
    judge_good = _gen(store, _ex(task_name="JUDGE-GOOD"), overall=True)
    human_bad = _gen(store, _ex(task_name="HUMAN-BAD"), overall=True, review="rejected", note="REVIEWER-NOTE: vague")
    judge_bad = _gen(store, _ex(task_name="JUDGE-BAD"), overall=False, analysis="JUDGE-ANALYSIS: no import")
    _gen(store, _ex(task_name="OTHER-TASK"), overall=True, task="code_repair")
    pools = Pools.load(store, "code_generation")
    assert pools.sizes() == {"good_human": 1, "good_judge": 1, "bad_human": 1, "bad_judge": 1}
    # human verdicts override the judge: the accepted one (judge said no) is good, the rejected one bad
    good, bad = pools.sample(PoolConfig(good=1, bad=1), "item")
    assert good[0]["id"] == human_good and good[0]["fields"]["task_name"] == "HUMAN-EDITED"
    assert bad[0]["id"] == human_bad and bad[0]["analysis"] == "REVIEWER-NOTE: vague"
    good, bad = pools.sample(PoolConfig(good=2, bad=2), "item")
    assert [g["id"] for g in good] == [human_good, judge_good]
    assert [b["id"] for b in bad] == [human_bad, judge_bad]
    assert "JUDGE-ANALYSIS: no import" in bad[1]["analysis"] and "uses re without" in bad[1]["analysis"]

    spec = get_task("code_generation")
    pv = current_prompt_version(store, "code_generation")
    g, b = few_shot(pv.content, pools, PoolConfig(good=2, bad=2), "item")
    user = build_generator_messages(spec, pv.content, {"code": "def g(): pass\n", "language": "python"},
                                    None, g, b)[1]["content"]
    for marker in ("HUMAN-EDITED", "JUDGE-GOOD", "HUMAN-BAD", "REVIEWER-NOTE: vague", "JUDGE-BAD"):
        assert marker in user
    assert "OTHER-TASK" not in user and "HUMAN-GOOD" not in user
    assert user.index("JUDGE-GOOD") < user.index("## Bad examples") < user.index("REVIEWER-NOTE")


def test_pool_sampling_is_seeded_and_topped_up_with_builtins(store):
    ids = [_gen(store, _ex(task_name=f"G{i}"), overall=True) for i in range(10)]
    pools = Pools.load(store, "code_generation")
    a = [g["id"] for g in pools.sample(PoolConfig(good=3, seed=1), "k1")[0]]
    assert a == [g["id"] for g in pools.sample(PoolConfig(good=3, seed=1), "k1")[0]]
    others = {tuple(g["id"] for g in pools.sample(PoolConfig(good=3, seed=s), k)[0])
              for s in range(3) for k in ("k1", "k2", "k3")}
    assert len(others) > 1 and set(a) <= set(ids)
    assert [g["id"] for g in pools.sample(PoolConfig(good=3, strategy="recent"), "k")[0]] == ids[::-1][:3]
    # an empty pool: the task's built-in examples fill the prompt
    content = get_task("code_repair").default_content()
    g, b = few_shot(content, Pools.load(store, "code_repair"), PoolConfig(good=2, bad=1), "k")
    assert g == content["examples"]["good"][:2] and b == content["examples"]["bad"][:1]


def test_pool_snapshot_freezes_what_a_job_sees(store):
    first = _gen(store, _ex(task_name="BEFORE"), overall=True)
    snap = PoolSnapshot.take(store)
    _gen(store, _ex(task_name="AFTER"), overall=True)
    later_rejected = store.scalar("SELECT max(id) FROM generations")
    pools = Pools.load(store, "code_generation", snap)
    assert [g["id"] for g in pools.good_judge] == [first]
    assert later_rejected not in [g["id"] for g in pools.good_judge]
    assert len(Pools.load(store, "code_generation").good_judge) == 2
