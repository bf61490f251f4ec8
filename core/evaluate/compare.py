"""Two runs on the same problems: is the difference real? (paired bootstrap + McNemar's exact test)."""
from __future__ import annotations

from core.errors import ShoalError
from core.evaluate import runs
from core.evaluate.stats import compare_scores
from core.store import Store


def run_label(run: dict) -> str:
    return f"run #{int(run['id'])} ({run['model']})"


def compare_runs(store: Store, run_a: int, run_b: int, seed: int = 0) -> dict:
    """The paired comparison of runs `run_a` and `run_b` over the problems both have answered
    (per problem: its pass@1 = c / n, and solved = at least half its samples pass)."""
    a, b = runs.get_run(store, run_a), runs.get_run(store, run_b)
    ra = {r["problem_id"]: r for r in runs.problem_results(store, run_a) if r["n"] + r["unscored"] > 0}
    rb = {r["problem_id"]: r for r in runs.problem_results(store, run_b) if r["n"] + r["unscored"] > 0}
    common = [p for p in ra if p in rb]
    if not common:
        raise ShoalError(f"Runs #{run_a} ({a['benchmark']}) and #{run_b} ({b['benchmark']}) share no answered "
                         "problem: compare two runs of the same benchmark.")

    def score(r: dict) -> float:
        return r["c"] / (r["n"] + r["unscored"])
    sa, sb = [score(ra[p]) for p in common], [score(rb[p]) for p in common]
    cmp = compare_scores(sa, sb, [s >= 0.5 for s in sa], [s >= 0.5 for s in sb],
                         label_a=run_label(a), label_b=run_label(b), seed=seed)
    only = [p for p in common if (score(ra[p]) >= 0.5) != (score(rb[p]) >= 0.5)]
    return {"run_a": int(run_a), "run_b": int(run_b), "model_a": a["model"], "model_b": b["model"],
            "benchmark_a": a["benchmark"], "benchmark_b": b["benchmark"],
            "left_out_a": len(ra) - len(common), "left_out_b": len(rb) - len(common),
            **cmp.as_dict(), "only_a_problems": [p for p in only if score(ra[p]) >= 0.5],
            "only_b_problems": [p for p in only if score(rb[p]) >= 0.5]}
