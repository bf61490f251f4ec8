"""The Dataset page's trust panels: semantic duplicates and leaks (run in the background, threshold
preview before it takes effect, another keeper, both texts side by side), and judge calibration
(two versions over 120 human verdicts through a loopback judge, side by side, "Use this version")."""
from __future__ import annotations

import os
import random
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.background import wait_for_tasks
from core.dataset.checks import semantic as S
from core.dataset.checks.results import blocking_checks
from core.generate.items import current_prompt_version
from core.store import open_store
from tests.support import semantic_planted as P
from tests.support.judge_gold import EXTRA_RULE, N_GOLD, TASKS, build_gold, scripted_judge
from tests.support.openai_server import FakeOpenAIServer
from tests.support.seed_data import add_example, wave
from ui.dataset.semantic import LEAKS_PER_PAGE

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "5_Dataset.py")


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _semantic_set() -> dict:
    """15 HumanEval paraphrases (5 generated, 10 hand-written), 8 clean stdlib examples, 2 paraphrased
    duplicates (one of an accepted example)."""
    store = open_store(os.environ["SHOAL_DB"])
    para = [add_example(store, wave(e["instruction"], e["solution"])) for e in P.humaneval_paraphrases(5, seed=1)]
    clean = P.stdlib_examples(8, seed=1)
    clean_ids = [add_example(store, wave(e["instruction"], e["solution"]), verdict="accepted" if i == 0 else None)
                 for i, e in enumerate(clean)]
    rng = random.Random(3)
    dups = {add_example(store, wave(**{k: d[k] for k in ("instruction", "solution")})): clean_ids[k]
            for k in (0, 1) for d in [P.duplicate_of(clean[k], rng)]}
    store.checkpoint()
    store.close()
    return {"para": para, "clean": clean_ids, "dups": dups}


def test_semantic_groups_and_leaks_with_a_preview_before_they_take_effect():
    info = _semantic_set()
    at = _run(AppTest.from_file(PAGE, default_timeout=300))
    at.button(key="ds_sem_run_both").click()
    _run(at)
    assert wait_for_tasks(600), "the semantic checks did not finish"
    _run(at)
    assert any("Semantic duplicates at 0.90" in s.value for s in at.success), [s.value for s in at.success]
    store = open_store(os.environ["SHOAL_DB"])
    try:
        blocked = blocking_checks(store)
        groups = {g["keep"]: [m["generation_id"] for m in g["members"]] for g in S.semantic_groups(store)}
    finally:
        store.close()
    for dup, original in info["dups"].items():
        assert dup in groups.get(original, []), (dup, original, groups)
        assert S.DUP_KIND in blocked[dup]
    leaked = {g for g, kinds in blocked.items() if S.LEAK_KIND in kinds}
    assert len(leaked & set(info["para"])) >= 0.7 * len(info["para"]) and not leaked & set(info["clean"])

    # both texts side by side, with the similarity, for every flagged example
    leak_expander = next(e for e in at.expander if e.label.startswith("Semantic benchmark leaks"))
    codes = [c.value for c in leak_expander.code]
    assert len(codes) == 2 * min(len(leaked), LEAKS_PER_PAGE) and any("def " in c for c in codes)
    if len(leaked) > LEAKS_PER_PAGE:                         # the rest on the next page
        at.number_input(key="ds_sem_leak_page").set_value(2)
        _run(at)
        leak_expander = next(e for e in at.expander if e.label.startswith("Semantic benchmark leaks"))
        assert len(leak_expander.code) == 2 * min(len(leaked) - LEAKS_PER_PAGE, LEAKS_PER_PAGE)
    assert any("cosine" in m.value and "humaneval" in m.value for m in leak_expander.markdown)

    # a stricter duplicate threshold: the preview says what it would change before anything is applied
    at.slider(key="ds_sem_dup_t").set_value(0.99)
    _run(at)
    preview = next(m.value for m in at.markdown if m.value.startswith("At **0.99**, "))
    assert "would leave **0** examples out of the export (now 2: 0 more, 2 back in)" in preview, preview
    # a looser leak threshold: more examples, counted from the stored nearest cosines
    at.slider(key="ds_sem_leak_t").set_value(0.40)
    _run(at)
    loose = next(m.value for m in at.markdown if m.value.startswith("At **0.40**, the leak check"))
    assert f"(now {len(leaked)}:" in loose and "accepted by a reviewer" in loose, loose
    store = open_store(os.environ["SHOAL_DB"])
    try:
        assert store.scalar("SELECT count(*) FROM check_runs WHERE kind = ?", [S.DUP_KIND]) == 1   # not applied
    finally:
        store.close()

    # keep the paraphrase instead of the accepted original: the page asks before rejecting an accepted one
    dup, original = next((d, o) for d, o in info["dups"].items() if o == info["clean"][0])
    at.selectbox(key=f"ds_sem_keep_{original}").set_value(dup)
    _run(at)
    assert at.button(key=f"ds_sem_keep_btn_{original}").disabled
    at.checkbox(key=f"ds_sem_sure_{original}").check()
    _run(at)
    at.button(key=f"ds_sem_keep_btn_{original}").click()
    _run(at)
    store = open_store(os.environ["SHOAL_DB"])
    try:
        assert store.scalar("SELECT verdict FROM reviews WHERE generation_id = ?", [original]) == "rejected"
        assert dup not in blocking_checks(store)
    finally:
        store.close()


def test_judge_calibration_two_versions_side_by_side_and_use_the_better(monkeypatch):
    store = open_store(os.environ["SHOAL_DB"])
    verdicts = build_gold(store)
    store.checkpoint()
    store.close()
    with FakeOpenAIServer(scripted_judge(verdicts)) as srv:
        monkeypatch.setenv("SHOAL_JUDGE_BASE_URL", srv.base_url)
        monkeypatch.setenv("SHOAL_JUDGE_MODEL", "fake-judge")
        monkeypatch.setenv("SHOAL_JUDGE_TIMEOUT", "10")
        at = _run(AppTest.from_file(PAGE, default_timeout=240))
        assert {m.label: m.value for m in at.metric}["Gold examples"] == str(N_GOLD)
        at.multiselect(key="ds_judge_versions").set_value([1, 2])
        at.button(key="FormSubmitter:ds_judge_form-Evaluate judge").click()
        _run(at)
        assert wait_for_tasks(240), "the judge evaluation did not finish"
        _run(at)
    assert any("Judge evaluated (v1: kappa" in s.value for s in at.success), [s.value for s in at.success]
    kappas = [m.value for m in at.metric if m.label == "Cohen's κ (gold set)"]
    assert len(kappas) == 2 and float(kappas[0]) > 0.8 and float(kappas[1]) < 0.3
    frames = [d.value for d in at.dataframe]
    compare = next(f for f in frames if list(f.columns[:2]) == ["scope", "key"])
    assert EXTRA_RULE in set(compare["key"]) and len(compare.columns) == 4        # scope, key, two runs
    rules = [f for f in frames if "rule" in f.columns and "tp" in f.columns]
    assert len(rules) == 2
    assert all("judge_no_answer" in r.columns for r in rules)
    assert any(r["judge_no_answer"].sum() == 1 for r in rules)     # the reply that skipped a rule
    use = next(b for b in at.button if b.key and b.key.startswith("ds_judge_use_") and "v1" in b.label)
    use.click()
    _run(at)
    assert any("New jobs now judge with that version" in s.value for s in at.success)
    store = open_store(os.environ["SHOAL_DB"])
    try:
        assert all(current_prompt_version(store, t).content["rules"][-1] == EXTRA_RULE for t in TASKS)
    finally:
        store.close()
    assert next(b for b in at.button if b.key == use.key).disabled       # now in use
