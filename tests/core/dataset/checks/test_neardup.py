"""MinHash LSH near-duplicates, ROUGE-L, duplicate groups and the keep-one action."""
from __future__ import annotations

import itertools
import random

from core.dataset.checks.neardup import (
    duplicate_groups,
    find_near_duplicates,
    jaccard,
    keep_one,
    rouge_l,
    rouge_pairs,
    rouge_tokens,
    run_near_duplicates,
    token_set,
)
from core.dataset.checks.results import blocking_checks, current_checks, set_override
from tests.support.seed_data import TOPICS, add_example, clean_python_solution, distinct_python_solution, wave


def _variant(text: str, rng: random.Random, n_changes: int) -> str:
    words = text.split(" ")
    for _ in range(n_changes):
        words[rng.randrange(len(words))] = f"tok{rng.randrange(10**6)}"
    return " ".join(words)


def test_minhash_pairs_match_brute_force_jaccard():
    rng = random.Random(1)
    base = [" ".join(f"w{rng.randrange(5000)}" for _ in range(60)) for _ in range(40)]
    texts = {}
    k = 0
    for b in base:
        texts[k] = b
        k += 1
        for changes in (3, 25):   # a near copy and a far one
            texts[k] = _variant(b, rng, changes)
            k += 1
    res = find_near_duplicates(texts, threshold=0.58)
    found = {(min(p.a, p.b), max(p.a, p.b)) for p in res.pairs}
    sets = {i: token_set(t) for i, t in texts.items()}
    truth = {(a, b) for a, b in itertools.combinations(sorted(texts), 2) if jaccard(sets[a], sets[b]) >= 0.58}
    assert found <= truth                           # verified exactly: no false positives
    assert len(found) >= 0.9 * len(truth)           # LSH recall at the threshold
    assert all(p.similarity >= 0.58 for p in res.pairs)


def test_rouge_l_matches_reference_values():
    assert rouge_l(rouge_tokens("the cat sat on the mat"), rouge_tokens("the cat sat on the mat")) == 1.0
    # LCS("a b c d", "a c d e") = 3 -> P = R = 3/4
    assert abs(rouge_l("a b c d".split(), "a c d e".split()) - 0.75) < 1e-9
    instr = {1: "Write a function that sorts a list of numbers in ascending order.",
             2: "Write a function that sorts a list of integers in ascending order.",
             3: "Explain how TCP congestion control works."}
    pairs = rouge_pairs(instr)
    assert [(p.a, p.b) for p in pairs] == [(1, 2)] and pairs[0].similarity > 0.7


def test_run_groups_keep_accepted_and_keep_one_rejects_the_rest(store):
    sol = clean_python_solution(3)
    a = add_example(store, wave("Write a Python function to merge overlapping intervals.", sol), judge=False)
    b = add_example(store, wave("Write a Python function to merge overlapping intervals.", sol + "\n# same\n"),
                    verdict="accepted")
    c = add_example(store, wave("Write a Python function to merge the overlapping intervals.", sol), judge=True)
    others = [add_example(store, wave(f"Write a Python function to {t}.", distinct_python_solution(i)))
              for i, t in enumerate(TOPICS)]
    rejected = add_example(store, wave("Write a Python function to merge overlapping intervals.", sol),
                           verdict="rejected")
    s = run_near_duplicates(store)
    assert s["n_groups"] == 1 and s["n_flagged"] == 2
    groups = duplicate_groups(store)
    assert len(groups) == 1
    g = groups[0]
    assert sorted(m["generation_id"] for m in g["members"]) == sorted([a, b, c])   # rejected one not considered
    assert g["keep"] == b                                   # the accepted one is kept
    assert set(blocking_checks(store)) == {a, c}
    assert rejected not in set(current_checks(store, "near_duplicate")["generation_id"])
    assert not (set(others) & set(blocking_checks(store)))

    # the reviewer prefers c: keep c, reject a and b with a note; c passes now
    out = keep_one(store, [a, b, c], keep=c, reviewer="bob")
    assert sorted(out["rejected"]) == sorted([a, b])
    rows = {r["generation_id"]: r for r in store.rows("SELECT * FROM reviews")}
    assert rows[a]["verdict"] == "rejected" and "near-duplicate of #%d" % c in rows[a]["note"]
    assert rows[b]["verdict"] == "rejected" and rows[b]["version"] == 2
    assert store.scalar("SELECT count(*) FROM audit_log WHERE entity_id IN (?, ?)", [str(a), str(b)]) >= 2
    cur = current_checks(store, "near_duplicate").set_index("generation_id")
    assert bool(cur.loc[c, "passed"])
    assert c not in blocking_checks(store)


def test_override_is_kept_across_runs(store):
    sol = clean_python_solution(5)
    add_example(store, wave("Write a Python function to cache Fibonacci numbers.", sol))
    b = add_example(store, wave("Write a Python function to cache Fibonacci numbers.", sol))
    run_near_duplicates(store)
    assert b in blocking_checks(store)
    set_override(store, b, "near_duplicate", True, actor="carol")
    assert b not in blocking_checks(store)
    run_near_duplicates(store)
    assert b not in blocking_checks(store)
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'check_override'") == 1


def test_check_filter_sql_selects_by_state(store):
    from core.dataset.checks.results import check_filter_sql
    sol = clean_python_solution(9)
    a = add_example(store, wave("Write a Python function to walk a directory tree.", sol))
    b = add_example(store, wave("Write a Python function to walk a directory tree.", sol))
    c = add_example(store, wave("Write a Python function to encode run-length strings.", distinct_python_solution(9)))
    run_near_duplicates(store)

    def ids(kind, state):
        sql, p = check_filter_sql(kind, state)
        return {r[0] for r in store.execute(f"SELECT g.id FROM generations g WHERE {sql}", p).fetchall()}
    assert ids("near_duplicate", "failed") == {b} and ids(None, "failed") == {b}
    assert ids("near_duplicate", "passed") == {a, c} and ids("execution", "unchecked") == {a, b, c}
    set_override(store, b, "near_duplicate")
    assert ids("near_duplicate", "overridden") == {b} and ids("near_duplicate", "failed") == set()


def test_groups_do_not_chain_every_member_is_similar_to_the_kept_one():
    from core.dataset.checks.neardup import Pair, group_pairs, star_groups
    # a chain 1~2~3~4~5 where only neighbours are similar (as ROUGE-L on templated instructions)
    chain = [Pair(i, i + 1, 0.8, "rouge_l") for i in range(1, 5)]
    assert star_groups(chain) == [(1, [1, 2]), (3, [3, 4])]   # 5 is like 4 only, and 4 is not kept: 5 stays
    # the preferred example (an accepted one) is the centre: its neighbours join it, not each other
    assert star_groups(chain, rank=lambda g: 0 if g == 3 else 1) == [(3, [2, 3, 4])]
    assert group_pairs([Pair(1, 2, 0.9, "minhash"), Pair(1, 3, 0.9, "minhash")]) == [[1, 2, 3]]


def test_templated_instructions_no_longer_chain_into_one_big_group(store):
    # 12 examples whose instructions differ a little more at each step: a chain, not one cluster
    words = [f"w{i}" for i in range(40)]
    ids = []
    for i in range(12):
        text = " ".join(words[i:i + 12])
        ids.append(add_example(store, wave(f"Write a function that does {text}.", distinct_python_solution(i))))
    s = run_near_duplicates(store, rouge=True)
    groups = duplicate_groups(store)
    assert s["n_rouge_pairs"] >= 11 and groups
    sims = {}
    for g in groups:
        for m in g["members"]:
            if m["generation_id"] != g["keep"]:
                assert m["similar_to"] == g["keep"] and m["similarity"] > 0.7     # similar to the kept one
                sims[m["generation_id"]] = m["similarity"]
    assert len(groups) >= 2 and max(len(g["members"]) for g in groups) < len(ids)   # not all 12 chained
    assert s["n_flagged"] == sum(len(g["members"]) - 1 for g in groups)
