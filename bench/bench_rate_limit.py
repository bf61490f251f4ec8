"""Tokens per minute a job achieves under a TPM limit, as a ratio of the limit; writes
bench/results/rate_limit.json.

A generation job (generator call -> pre-filter -> judge call per item, everything written to
DuckDB) runs at concurrency C against the fake OpenAI platform (tests.support.openai_platform),
which limits tokens like OpenAI does: a bucket of `--tpm` tokens per window refilled
continuously, a request charged prompt + max output tokens at admission and the unused output
refunded, `x-ratelimit-*` headers on every reply, 429s with "try again in". The window is
`--window` seconds instead of a minute so the run takes seconds; the ratio is the same.

Reported: real usage (prompt + completion tokens of the replies, as the server counted them)
per window in steady state -- after the first window, which starts with a full bucket -- over
the limit (target >= 0.9, and never above ~1: the server would answer 429s), the number of
429s, and the job's outcome. The ratios the throughput benches last wrote
(bench/results/generate.json, llm_client.json) are printed alongside.

    python -m bench.bench_rate_limit [--items 200] [--concurrency 32] [--tpm 200000] [--window 8]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core.llm  # noqa: E402,F401  (imports openai before the clock runs)
from bench.common import RESULTS, write_result  # noqa: E402
from core.config import Profile  # noqa: E402
from core.generate.items import PoolConfig  # noqa: E402
from core.generate.jobs import create_job, run_job  # noqa: E402
from core.llm import gates, tokens  # noqa: E402
from core.store import open_store  # noqa: E402
from core.tasks import DEFAULT_MIX  # noqa: E402
from tests.support.openai_platform import OpenAIPlatform  # noqa: E402
from tests.support.shoal_responder import shoal_responder  # noqa: E402

MODEL = "gpt-4.1-mini"   # tiktoken-counted, as the platform counts


def long_function(i: int, lines: int = 80) -> str:
    """A function of about `lines` lines (real snippets are tens of lines, not three)."""
    body = "".join(f"    if kind == 'k{j}':\n        total += value * {j + i % 7} - offset_{j % 5}\n"
                   for j in range(lines // 2))
    return (f"def accumulate_{i}(records, offset_0=0, offset_1=1, offset_2=2, offset_3=3, offset_4=4):\n"
            f"    \"\"\"Sum the weighted values of the records by their kind (variant {i}).\"\"\"\n"
            f"    total = 0\n    for kind, value in records:\n" + body.replace("\n    ", "\n        ")
            .replace("    if kind", "        if kind", 1) + "    return total\n")


def _snippets(store, n: int) -> list[str]:
    rows = []
    for i in range(n):
        rows.append((f"r{i:06d}", long_function(i)))
    store.executemany("INSERT INTO snippets(id, kind, source, source_kind, language, code, n_chars) "
                      "VALUES (?, 'function', 'bench', 'stdlib', 'python', ?, 100)", rows)
    return [r[0] for r in rows]


def _steady_ratio(log: list[tuple[float, int]], start: float, end: float, window: float, limit: float) -> float:
    used = sum(n for t, n in log if start <= t <= end)
    return used / (end - start) * window / limit if end > start else 0.0


def run(items: int, concurrency: int, tpm: float, window: float, latency: float, max_tokens: int) -> dict:
    tokens.available_encodings()          # load the tokenizers before the clock runs
    gates.reset_gates()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, \
            OpenAIPlatform(shoal_responder, tpm=tpm, rpm=1_000_000, window_s=window, latency_s=latency) as server:
        store = open_store(Path(tmp) / "bench.duckdb")
        ids = _snippets(store, items)
        profiles = {r: Profile(role=r, base_url=server.base_url, model=MODEL, timeout_s=60, max_tokens=max_tokens,
                               temperature=1.0 if r == "generator" else 0.0) for r in ("generator", "judge")}
        job = create_job(store, ids, profiles=profiles, mix=DEFAULT_MIX, concurrency=concurrency,
                         target_languages=["go", "java"], pool=PoolConfig(refresh_every=items))
        t0 = time.monotonic()
        summary = run_job(store, job)
        t1 = time.monotonic()
        log = list(server.usage_log)
        calls = int(store.scalar("SELECT count(*) FROM llm_calls"))
        store.close()
        n429 = server.rate_limited
    gate = gates.gate_for(gates.gate_key(profiles["generator"].base_url, MODEL)).stats()
    last_reply = max(t for t, _ in log)
    ratio = _steady_ratio(log, t0 + window, last_reply, window, tpm)
    used = sum(n for _, n in log)
    return {
        "items": items, "concurrency": concurrency, "tpm_limit": tpm, "window_s": window, "latency_s": latency,
        "max_tokens": max_tokens, "succeeded": summary["items"]["succeeded"], "failed": summary["items"]["failed"],
        "calls": calls, "replies": len(log), "rate_limited_429": n429, "wall_s": round(t1 - t0, 2),
        "tokens_used": used, "tokens_per_window_overall": round(used / (t1 - t0) * window, 1),
        "tokens_per_minute_ratio_to_limit": round(ratio, 3),
        "gate": {"tpm_limit": gate.tpm_limit, "limits_from": gate.limits_from, "total_wait_s": round(gate.total_wait_s, 1), "concurrency_limit": gate.concurrency_limit,
                 "rate_limited": gate.rate_limited},
        "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "target": "tokens_per_minute_ratio_to_limit >= 0.9 with at most a handful of 429s",
        "meets_target": ratio >= 0.9 and n429 <= 5 and summary["items"]["failed"] == 0,
        "alongside": _throughput_ratios(),
    }


def _throughput_ratios() -> dict:
    """The ratios the throughput benches wrote last (they run separately: bench_generate, bench_llm_client)."""
    out = {}
    for name in ("generate", "llm_client"):
        path = RESULTS / f"{name}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            out[name] = {k: v for k, v in data.items() if "ratio" in k}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--tpm", type=float, default=200_000, help="tokens per window")
    ap.add_argument("--window", type=float, default=8.0, help="seconds the limit refills over (60 on OpenAI)")
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--max-tokens", type=int, default=2048)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    write_result("rate_limit", run(args.items, args.concurrency, args.tpm, args.window, args.latency, args.max_tokens))


if __name__ == "__main__":
    main()
