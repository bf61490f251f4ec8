"""Throughput of core.llm.LLMClient alone against the loopback fake server.

N structured calls (pydantic-validated, each logged in a DuckDB file) go to a fake OpenAI
server that answers after a fixed latency L, at most C in flight. The limit is C / L calls
per second; with N calls the best any client can do is the wave bound N / (ceil(N/C) * L).
A second pass over the same N payloads must be served from the cache with zero requests.

The server runs in its own process by default (like a real one: it does not compete with
the client for the GIL); --in-process runs it in a thread of the benchmark instead.

    python -m bench.bench_llm_client [--calls 400] [--latency 0.5] [--concurrency 32] [--in-process]
Writes bench/results/llm_client.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import Profile  # noqa: E402
from core.llm import LLMClient  # noqa: E402
from core.store import open_store  # noqa: E402
from tests.support.openai_server import FakeOpenAIServer  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "llm_client.json"


class Exercise(BaseModel):
    task_name: str
    instruction: str
    information: str
    solution: str


def _messages(i: int) -> list[dict]:
    return [{"role": "system", "content": "You turn code into instruction-tuning examples."},
            {"role": "user", "content": f"Write a code_generation example for snippet {i}:\n"
                                        f"```python\ndef f_{i}(x):\n    return x * {i}\n```"}]


class _Subprocess:
    """`python -m tests.support.openai_server` on a free port."""

    def __init__(self, latency: float):
        probe = FakeOpenAIServer().start()
        self.port = probe.port
        probe.stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.openai_server",
                                      "--port", str(self.port), "--latency", str(latency)],
                                     cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.proc.stdout.readline()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def _pass(client: LLMClient, n: int):
    t0, cpu0 = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*[client.complete(_messages(i), Exercise) for i in range(n)])
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await client.aclose()
    return results, wall, cpu


def run(calls: int, latency: float, concurrency: int, in_process: bool) -> dict:
    server = FakeOpenAIServer(latency_s=latency).start() if in_process else _Subprocess(latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(Path(tmp) / "bench.duckdb")
            profile = Profile(role="generator", base_url=server.base_url, model="fake-model", timeout_s=30)
            client = LLMClient(store, profile, max_concurrency=concurrency)
            results, wall, cpu = asyncio.run(_pass(client, calls))
            sent = int(store.scalar("SELECT count(*) FROM llm_calls"))
            http_ms = store.one("SELECT avg(latency_ms) AS mean, quantile_cont(latency_ms, 0.95) AS p95 "
                                "FROM llm_calls")
            cached, cached_wall, _ = asyncio.run(_pass(LLMClient(store, profile, max_concurrency=concurrency), calls))
            sent_again = int(store.scalar("SELECT count(*) FROM llm_calls")) - sent
            store.close()
    finally:
        server.stop()
    limit = concurrency / latency
    wave_bound = calls / (math.ceil(calls / concurrency) * latency)
    rate = calls / wall
    return {
        "calls": calls, "latency_s": latency, "concurrency": concurrency,
        "server": "in-process thread" if in_process else "subprocess",
        "ok": sum(r.ok for r in results), "requests_sent": sent,
        "wall_s": round(wall, 3), "calls_per_s": round(rate, 2),
        "client_cpu_ms_per_call": round(cpu / calls * 1000, 2),   # includes the in-process server
        "http_latency_ms": {"mean": round(http_ms["mean"], 1), "p95": round(http_ms["p95"], 1)},
        "limit_C_over_L": round(limit, 2), "ratio_to_limit": round(rate / limit, 3),
        "wave_bound": round(wave_bound, 2), "ratio_to_wave_bound": round(rate / wave_bound, 3),
        "cached_rerun": {"ok": sum(r.ok and r.cached for r in cached), "requests_sent": sent_again,
                         "wall_s": round(cached_wall, 3), "calls_per_s": round(calls / cached_wall, 1)},
        "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--in-process", action="store_true", help="run the fake server in a thread")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.latency <= 0:
        ap.error("--latency must be > 0 (the limit C/L is undefined otherwise)")
    report = run(args.calls, args.latency, args.concurrency, args.in_process)
    print(json.dumps(report, indent=2))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
