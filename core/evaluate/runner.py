"""`run_eval`: sample every problem n times through the LLM client, execute each sample in the
sandbox, record it at once, and score the run.

Resumable: a sample is written to `eval_samples` as soon as it has been executed, and the same
evaluation started again (same benchmark, problems, endpoint, model and settings) continues the
unfinished run with only the samples still missing. A sample that was answered but not yet
executed when the process died is served from the LLM call log (no second request).
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.config import Profile
from core.errors import ShoalError
from core.evaluate import runs
from core.evaluate.problems import HELDOUT_SHARE, PROMPT_VERSION, Problem, build_program, load_problems
from core.evaluate.sampling import SampleClient, endpoint_id
from core.llm.client import run_sync
from core.llm.concurrency import DEFAULT_CONCURRENCY
from core.progress import Cancelled, ProgressFn, check_cancel, report
from core.sandbox.isolation import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, SandboxResult
from core.store import Store

STDERR_KEPT = 1500
PASS_AT_1_TEMPERATURE = 0.0      # greedy for one sample per problem
PASS_AT_K_TEMPERATURE = 0.8      # the Codex paper's temperature for pass@k with many samples


@dataclass
class EvalSpec:
    benchmark: str                    # humaneval | mbpp | heldout
    path: str | None = None           # the MBPP file
    limit: int | None = None
    n_samples: int = 1
    ks: list[int] = field(default_factory=lambda: [1])
    temperature: float | None = None  # None: 0 for one sample, 0.8 for several
    max_tokens: int | None = None     # None: the profile's
    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    concurrency: int = DEFAULT_CONCURRENCY  # requests in flight
    workers: int = 0                  # sandboxes at once (0: two per CPU this process may use)
    share: float = HELDOUT_SHARE      # held-out split
    seed: int = 0                     # held-out split and bootstrap
    stuck_after_s: float | None = None  # stop waiting for a sandbox run after this (None: 3 × timeout + 60 s)


def eval_profile(profile: Profile, spec: EvalSpec) -> Profile:
    """The profile as sampled: the evaluation's temperature and token budget."""
    temp = spec.temperature if spec.temperature is not None else \
        (PASS_AT_1_TEMPERATURE if spec.n_samples == 1 else PASS_AT_K_TEMPERATURE)
    return profile.model_copy(update={"temperature": temp, "max_tokens": spec.max_tokens or profile.max_tokens})


def _model_name(profile: Profile) -> str:
    if profile.model:
        return profile.model
    from core.llm.profiles import list_server_models
    names = list_server_models(profile)
    if not names:
        raise ShoalError(f"No model name given and {profile.base_url} lists none: pass --model.")
    return names[0]


def _identity(spec: EvalSpec, profile: Profile, problems: list[Problem]) -> runs.RunIdentity:
    source = spec.path if spec.benchmark == "mbpp" else \
        (f"share={spec.share},seed={spec.seed}" if spec.benchmark == "heldout" else None)
    params = {"timeout": spec.timeout, "memory_mb": spec.memory_mb, "prompt_version": PROMPT_VERSION,
              "limit": spec.limit}
    return runs.RunIdentity(spec.benchmark, source, profile.base_url, profile.model, spec.n_samples,
                            profile.temperature, profile.max_tokens, tuple(p.problem_id for p in problems),
                            tuple(sorted(params.items())), endpoint_id(profile))


def run_eval(store: Store, spec: EvalSpec, profile: Profile, progress: ProgressFn | None = None,
             cancel: threading.Event | None = None) -> dict:
    """Evaluate `profile`'s model on `spec`; the run's report (see `report_of`)."""
    if spec.n_samples < 1:
        raise ShoalError("--n-samples must be at least 1.")
    bad = [k for k in spec.ks if k < 1 or k > spec.n_samples]
    if bad:
        raise ShoalError(f"pass@k needs 1 <= k <= n-samples ({spec.n_samples}); got k = {bad}.")
    problems = load_problems(store, spec.benchmark, spec.path, spec.limit, spec.share, spec.seed)
    profile = eval_profile(profile, spec)
    profile = profile.model_copy(update={"model": _model_name(profile)})
    run_id, resumed = runs.open_run(store, _identity(spec, profile, problems), spec.ks)
    done = runs.done_samples(store, run_id)
    todo = [(p, s) for p in problems for s in range(spec.n_samples) if (p.problem_id, s) not in done]
    client = SampleClient(store, profile, max_concurrency=max(1, spec.concurrency))
    t0 = time.perf_counter()
    try:
        run_sync(_sample_all(store, run_id, client, todo, spec, len(done), progress, cancel))
    except (Exception, KeyboardInterrupt) as exc:   # a kill -9 leaves the run `running`: resumed alike
        status = "cancelled" if isinstance(exc, (Cancelled, KeyboardInterrupt)) else "failed"
        runs.finish_run(store, run_id, status, None, client.counters["requests"], time.perf_counter() - t0,
                        f"{type(exc).__name__}: {exc}"[:500])
        raise
    finally:
        client.close()
    seconds = time.perf_counter() - t0
    metrics = runs.run_metrics(store, run_id, spec.ks, spec.seed)
    status = "incomplete" if metrics["n_unscored"] else "done"
    runs.finish_run(store, run_id, status, metrics, client.counters["requests"], seconds)
    out = report_of(store, run_id)
    out.update(resumed=resumed, samples_before=len(done), samples_now=len(todo), session_seconds=round(seconds, 3),
               problems_per_second=round(len(problems) / seconds, 3) if seconds > 0 else None,
               requests=client.counters["requests"], cache_hits=client.counters["cache_hits"])
    return out


def report_of(store: Store, run_id: int) -> dict:
    """A run as `shoal eval --json` prints it."""
    r = runs.get_run(store, run_id)
    m = r["metrics"] or {}
    return {"run_id": int(r["id"]), "status": r["status"], "benchmark": r["benchmark"], "source": r["source"],
            "model": r["model"], "base_url": r["base_url"], "n_problems": int(r["n_problems"]),
            "n_samples": int(r["n_samples"]), "temperature": r["temperature"], "max_tokens": r["max_tokens"],
            "pass_at_1": m.get("pass_at_1"), "pass_at_1_ci": m.get("pass_at_1_ci"),
            "pass_at_k": m.get("pass_at_k", {}), "problems_solved": m.get("problems_solved"),
            "n_unscored": m.get("n_unscored"), "statuses": m.get("statuses", {}), "calls": int(r["calls"] or 0),
            "cost_usd": float(r["cost_usd"] or 0.0), "seconds": float(r["seconds"] or 0.0), "error": r["error"]}


def _workers(spec: EvalSpec) -> int:
    if spec.workers > 0:
        return spec.workers
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(2, 2 * cpus)   # a sandbox run is mostly process start-up and waiting: two per CPU


def _watchdog_s(spec: EvalSpec) -> float:
    """How long a sandbox run may take before the evaluation stops waiting for it (its own limit
    kills the program long before; this only guards against a sandbox that never returns)."""
    return spec.stuck_after_s if spec.stuck_after_s is not None else 3 * spec.timeout + 60


class _SandboxWorkers:
    """`workers` single-threaded helper processes (core.evaluate.sandbox_worker), each running one
    program at a time; a worker whose sandbox does not return within the watchdog's time is killed
    and replaced by a fresh one."""

    def __init__(self, workers: int, spec: EvalSpec):
        self.spec = spec
        self.idle: asyncio.Queue = asyncio.Queue()
        for _ in range(workers):
            self.idle.put_nowait(None)           # a slot; its process starts on first use
        self.procs: set[asyncio.subprocess.Process] = set()

    async def _spawn(self) -> asyncio.subprocess.Process:
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "core.evaluate.sandbox_worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env, limit=2 ** 24)
        self.procs.add(proc)
        return proc

    async def run(self, program: str) -> SandboxResult | None:
        """The program's result, or None when the sandbox did not return in time."""
        proc = await self.idle.get()
        try:
            if proc is None or proc.returncode is not None:
                proc = await self._spawn()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write((json.dumps({"program": program, "timeout": self.spec.timeout,
                                          "memory_mb": self.spec.memory_mb}) + "\n").encode())
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), _watchdog_s(self.spec))
            if not line:
                raise ShoalError("the sandbox worker exited")
            return SandboxResult(**json.loads(line))
        except TimeoutError:
            self._kill(proc)
            proc = None
            return None
        finally:
            self.idle.put_nowait(proc)

    def _kill(self, proc: asyncio.subprocess.Process | None) -> None:
        if proc is not None and proc.returncode is None:
            proc.kill()

    async def close(self) -> None:
        for proc in self.procs:
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.close()               # the worker ends at the end of its input
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                self._kill(proc)
                await proc.wait()


async def _sample_all(store: Store, run_id: int, client: SampleClient, todo: list[tuple[Problem, int]],
                      spec: EvalSpec, already: int, progress: ProgressFn | None,
                      cancel: threading.Event | None) -> None:
    total = already + len(todo)
    count = [already]
    pool = _SandboxWorkers(_workers(spec), spec)
    queued = asyncio.Semaphore(max(1, spec.concurrency) * 2)   # problems started ahead of the sandboxes
    report(progress, already, total, "resuming" if already else "")

    async def one(problem: Problem, sample: int) -> None:
        async with queued:
            check_cancel(cancel)
            res = await client.sample(problem.messages(), sample)
            row = {"problem_id": problem.problem_id, "sample": sample, "completion": res.raw_text,
                   "llm_call_id": res.call_id, "cached": res.cached, "exec_seconds": None}
            if not res.ok:
                row.update(status="no_reply", passed=None, error=(res.error or "no reply")[:500])
            else:
                r = await pool.run(build_program(problem, res.raw_text))
                if r is None:
                    row.update(status="sandbox_stuck", passed=None,
                               error=f"the sandbox did not return within {_watchdog_s(spec):.0f} s")
                else:
                    row.update(status=r.status, passed=r.ok, exec_seconds=r.seconds,
                               error=None if r.ok else (r.stderr or r.stdout)[-STDERR_KEPT:])
            await asyncio.to_thread(runs.record_sample, store, run_id, row)
            count[0] += 1
            report(progress, count[0], total, f"{problem.problem_id}#{sample}: {row['status']}")

    try:
        await asyncio.gather(*(one(p, s) for p, s in todo))
    finally:
        await pool.close()
        await client.aclose()
        await client.flush_log()
