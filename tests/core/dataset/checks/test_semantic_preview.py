"""What a semantic threshold would exclude, shown before it takes effect; the reasons and the card rows.

Vectors are written into the cache by hand (a made-up model key), so the geometry is exact and no
model is loaded: A ~ B (cosine 0.95), C ~ D (0.92), every other pair orthogonal; A and B were both
accepted by a reviewer.
"""
from __future__ import annotations

import numpy as np

from core.dataset.card import dataset_card
from core.dataset.checks import semantic as S
from core.dataset.checks import semantic_preview as P
from core.dataset.checks.exclusions import automatic_exclusions, unconfirmed
from core.dataset.checks.results import record_run, set_override
from core.dataset.export import select_rows
from core.embed import run as embed
from core.embed.vectors import store_vectors
from tests.support.seed_data import add_example, wave

KEY = "hand-made-vectors"


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs + (0.0,) * (4 - len(xs)), dtype=np.float32)
    return v / np.linalg.norm(v)


def _setup(store) -> dict:
    ids = {name: add_example(store, wave(f"Write function {name} for the ledger.", f"def {name.lower()}():\n    pass\n"),
                             verdict="accepted" if name in "AB" else None)
           for name in "ABCD"}
    vectors = {"A": _unit(1), "B": _unit(0.95, np.sqrt(1 - 0.95 ** 2)),
               "C": _unit(0, 0, 1), "D": _unit(0, 0, 0.92, np.sqrt(1 - 0.92 ** 2))}
    ex = S.duplicate_candidates(store).set_index("generation_id")
    hashes = [embed.text_hash(ex.loc[ids[n], "text"][:S.EMBED_CHARS]) for n in "ABCD"]
    store_vectors(store, KEY, hashes, np.stack([vectors[n] for n in "ABCD"]))
    return ids


def test_duplicate_preview_counts_what_a_threshold_would_leave_out_and_records_nothing(store):
    ids = _setup(store)
    assert store.one("SELECT id FROM generations ORDER BY id")      # leaves this thread's result open
    p = P.preview_duplicates(store, 0.90, model_key=KEY)            # ... which the vector read does not mind
    assert p["missing"] == 0 and p["n_groups"] == 2
    assert p["n_excluded"] == 2 and p["newly_excluded"] == sorted([ids["B"], ids["D"]])
    assert p["n_excluded_accepted"] == 1                      # B: accepted, the older A is kept
    assert p["n_excluded_now"] == 0 and p["no_longer_excluded"] == []
    strict = P.preview_duplicates(store, 0.94, model_key=KEY)
    assert (strict["n_groups"], strict["newly_excluded"]) == (1, [ids["B"]])
    assert store.scalar("SELECT count(*) FROM check_runs") == 0

    # once a run flags B and a person overrides it, the override carries over: the preview says so
    record_run(store, S.DUP_KIND, {"threshold": 0.9, "model_key": KEY}, {"n_flagged": 2},
               [(ids["A"], True, {}), (ids["B"], False, {"group": ids["A"], "keep": ids["A"], "size": 2,
                                                          "similarity": 0.95}),
                (ids["C"], True, {}), (ids["D"], False, {"group": ids["C"], "keep": ids["C"], "size": 2,
                                                         "similarity": 0.92})])
    set_override(store, ids["B"], S.DUP_KIND, True, actor="ann")
    p = P.preview_duplicates(store, 0.90)                      # the run's model key
    assert p["model_key"] == KEY and p["n_excluded"] == 1 and p["n_excluded_now"] == 1
    loose = P.preview_duplicates(store, 0.99)
    assert loose["n_excluded"] == 0 and loose["no_longer_excluded"] == [ids["D"]]
    # a new example without a cached vector: no preview until the check has embedded it
    add_example(store, wave("Write function E.", "def e():\n    pass\n"))
    assert P.preview_duplicates(store, 0.9)["missing"] == 1


def test_leak_preview_from_the_stored_nearest_cosines(store):
    ids = _setup(store)
    best = {"A": 0.70, "B": 0.50, "C": 0.30, "D": 0.66}
    record_run(store, S.LEAK_KIND, {"threshold": 0.65, "model_key": KEY, "benchmarks": ["humaneval"]},
               {"n_flagged": 2, "n_problems": 164},
               [(ids[n], s < 0.65, {"nearest": [{"benchmark": "humaneval", "item": f"HumanEval/{i}", "similarity": s}],
                                    "benchmark_text": "def task():\n    pass\n" if s >= 0.65 else None})
                for i, (n, s) in enumerate(best.items())])
    p = P.preview_leaks(store, 0.45)
    assert p["n_excluded"] == 3 and p["newly_excluded"] == [ids["B"]] and p["n_excluded_accepted"] == 2
    assert p["n_excluded_now"] == 2 and p["n_unchecked"] == 0
    p = P.preview_leaks(store, 0.68)
    assert p["n_excluded"] == 1 and p["no_longer_excluded"] == [ids["D"]]
    # the reason in the exclusions table, and the accepted one waits for a confirmation
    table = automatic_exclusions(store)
    row = table[table["example"] == ids["A"]].iloc[0]
    assert row["excluded by"] == "semantic benchmark leak" and row["reason"] == "close to humaneval HumanEval/0 (cosine 0.70)"
    assert ids["A"] in set(unconfirmed(store)["example"])


def test_card_lists_duplicates_and_leaks_removed_per_check(store):
    ids = _setup(store)
    record_run(store, S.DUP_KIND, {"threshold": 0.9, "model_key": KEY}, {"n_flagged": 1},
               [(ids["A"], True, {}), (ids["B"], False, {"group": ids["A"], "keep": ids["A"], "size": 2,
                                                          "similarity": 0.95})])
    record_run(store, S.DUP_KIND, {"action": "keep_one", "keep": ids["A"]}, {}, [(ids["A"], True, {})])
    card = dataset_card(store, "alpaca", select_rows(store))
    section = card.split("## Duplicates and leaks removed", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| semantic duplicates"))
    # the settings of the real run (not the keep-one record), 1 flagged, 1 left out (B, accepted)
    assert "threshold 0.9; model_key hand-made-vectors" in row and row.endswith("| 1 | 0 | 1 |"), row
    assert next(line for line in section.splitlines() if line.startswith("| semantic benchmark leaks")) \
        .startswith("| semantic benchmark leaks (embedding cosine) | not run |")
    reason = automatic_exclusions(store).set_index("example").loc[ids["B"], "reason"]
    assert reason == f"semantic duplicate of #{ids['A']}, which is kept (cosine 0.95); group of 2"
