"""Planted HumanEval / MBPP examples are flagged by `shoal check`; clean ones are not."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core.cli.main import app
from core.dataset.checks.benchmarks import (
    HUMANEVAL_ALLOWED,
    humaneval_problems,
    humaneval_strings,
    mbpp_strings,
    parse_spec,
    read_records,
)
from core.dataset.checks.decontam import Matcher, find_contamination
from core.errors import ShoalError
from tests.support.seed_data import TOPICS, add_example, clean_python_solution, oss, wave
from tests.support.shared_folder import SHARED

MBPP = SHARED / "data" / "benchmarks" / "mbpp.jsonl"


def _mbpp_rows() -> dict[int, dict]:
    return {int(r["task_id"]): r for r in read_records(MBPP)}


def test_humaneval_strings_offline_and_allow_list():
    strings = humaneval_strings()
    problems = humaneval_problems()
    assert len(problems) == 164
    docs = {s.item for s in strings if s.field == "docstring"}
    sols = {s.item for s in strings if s.field == "solution"}
    assert len(docs) == 164
    assert len(sols) == 164 - len(HUMANEVAL_ALLOWED)
    assert not any(s.text in HUMANEVAL_ALLOWED for s in strings)


def test_mbpp_only_ids_11_to_510():
    items = {int(s.item) for s in mbpp_strings(MBPP)}
    assert items == set(range(11, 511))


def test_bad_benchmark_inputs_are_clear(tmp_path):
    with pytest.raises(ShoalError, match="Unknown benchmark"):
        parse_spec("humaneval,nosuch=x")
    with pytest.raises(ShoalError, match="not found"):
        mbpp_strings(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": 11, "text": "a", "code": "b"}\n{oops\n')
    with pytest.raises(ShoalError, match=r"bad.jsonl:2"):
        mbpp_strings(bad)
    with pytest.raises(ShoalError, match="offline"):
        from core.dataset.checks.benchmarks import load_benchmarks
        load_benchmarks("gsm8k")


def test_cli_check_flags_every_planted_example_and_no_clean_one(tmp_path):
    from core.store import open_store
    db = tmp_path / "planted.duckdb"
    store = open_store(db)
    store.execute("BEGIN TRANSACTION")   # one commit for ~400 inserts
    planted: dict[int, str] = {}
    clean: set[int] = set()
    allowed: set[int] = set()
    problems = humaneval_problems()
    for n, (task_id, p) in enumerate(sorted(problems.items())):
        # a generated solution that copies the canonical body inside other code
        sol = f"import math\n\ndef solve_{n}(*args):\n{p['canonical_solution']}\n\nprint('done')\n"
        gid = add_example(store, wave(f"Write a Python function for problem {n}.", sol),
                          verdict="accepted", judge=True)
        (allowed.add(gid) if p["canonical_solution"].strip() in HUMANEVAL_ALLOWED else
         planted.__setitem__(gid, task_id))
    for _n, (task_id, p) in enumerate(sorted(problems.items())[:30]):  # docstring copied into the instruction
        doc = p["prompt"].split('"""')[1] if '"""' in p["prompt"] else p["prompt"].split("'''")[1]
        gid = add_example(store, oss("Solve this problem:\n" + doc.upper(), "def f():\n    return 1\n"),
                          task="oss_instruct")
        planted[gid] = task_id
    mbpp = _mbpp_rows()
    for tid in range(11, 511, 5):   # 100 problems: text into the instruction or CRLF-free code into the solution
        r = mbpp[tid]
        if tid % 2:
            gid = add_example(store, wave("Task: " + r["text"] + " Use Python.", clean_python_solution(tid)))
        else:
            gid = add_example(store, wave("Write a helper.", r["code"].replace("\r\n", "\n") + "\n# end\n"))
        planted[gid] = f"mbpp {tid}"
    for tid in list(range(1, 11)) + [520, 600, 700]:  # MBPP items outside 11-510 are not benchmark strings
        r = mbpp[tid]
        clean.add(add_example(store, wave(r["text"], r["code"])))
    for i in range(80):
        topic = TOPICS[i % len(TOPICS)]
        clean.add(add_example(store, wave(f"Write a Python function to {topic} (case {i}).",
                                          clean_python_solution(i)), judge=bool(i % 2)))
    store.execute("COMMIT")
    store.close()

    res = CliRunner().invoke(app, ["--db", str(db), "check", "--benchmarks", f"humaneval,mbpp={MBPP}",
                                   "--no-dedup", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)["decontamination"]
    flagged = set(summary["flagged"])
    missed = {g: planted[g] for g in planted if g not in flagged}
    assert not missed, f"planted but not flagged: {missed}"
    assert not (flagged & clean), f"clean but flagged: {sorted(flagged & clean)}"
    assert not (flagged & allowed), "allow-listed one-liners must not be flagged"
    assert summary["n_flagged"] == len(planted)

    store = open_store(db)
    # every example got a checks row; a hit names benchmark, item and matched text
    assert store.scalar("SELECT count(*) FROM checks WHERE kind='decontamination'") == summary["n_examples"]
    some = next(iter(planted))
    detail = json.loads(store.scalar("SELECT detail FROM checks WHERE generation_id=? AND kind='decontamination'",
                                     [some]))
    hit = detail["hits"][0]
    assert hit["benchmark"] == "humaneval" and hit["item"] == planted[some] and hit["matched"]
    assert store.scalar("SELECT count(*) FROM check_runs WHERE kind='decontamination'") == 1
    store.close()


def test_ngram_mode_catches_near_copies():
    p = humaneval_problems()["HumanEval/0"]
    doc = p["prompt"].split('"""')[1]
    near = doc.replace(",", " ;").replace(".", "!")  # punctuation changed: no exact substring
    strings = humaneval_strings()
    assert find_contamination({1: near}, strings)[1] == []
    hits = find_contamination({1: near}, strings, ngram=12)[1]
    assert hits and hits[0].method == "ngram" and hits[0].item == "HumanEval/0"


def test_matcher_without_aho_corasick_gives_same_hits(monkeypatch):
    import builtins
    strings = humaneval_strings()[:200]
    texts = [s.text.upper() + " tail" for s in strings[::7]] + ["nothing here"]
    fast = [{(h.item, h.field) for h in Matcher(strings).hits(t)} for t in texts]
    real_import = builtins.__import__

    def no_ac(name, *a, **k):
        if name == "ahocorasick":
            raise ImportError(name)
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_ac)
    slow = [{(h.item, h.field) for h in Matcher(strings).hits(t)} for t in texts]
    assert fast == slow and fast[-1] == set() and all(fast[:-1])
