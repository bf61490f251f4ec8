"""`shoal generate` (create / resume / retry a generation job) and `shoal jobs` (list, show, pause, cancel,
run the queue). A new job starts through `core.generate.jobs.start.start_job`, the function the Generate page
calls: model names filled in from the server, the concurrency default and the embedded model's cap,
and one job at a time per server (core/generate/jobs/endpoint_queue.py)."""
from __future__ import annotations

from pathlib import Path

import typer

from core.cli.common import console, fail, print_json, progress_bar, store_from
from core.errors import ShoalError
from core.llm.concurrency import DEFAULT_CONCURRENCY
from core.llm.prices import apply_prices
from core.store import Store


def _parse_mix(value: str) -> dict[str, float]:
    from core.tasks import DEFAULT_MIX
    if value.strip().lower() == "default":
        return dict(DEFAULT_MIX)
    mix: dict[str, float] = {}
    for part in value.split(","):
        name, sep, share = part.partition("=")
        if not sep:
            raise ShoalError(f"--mix takes 'default' or task=share pairs (e.g. code_generation=0.6,code_repair=0.4), "
                             f"not {value!r}.")
        try:
            mix[name.strip()] = float(share)
        except ValueError:
            raise ShoalError(f"--mix share for {name.strip()!r} is not a number: {share!r}") from None
    return mix


def _read_ids(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ShoalError(f"Cannot read the ids file {path}: {exc}") from None
    ids = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not ids:
        raise ShoalError(f"The ids file {path} holds no snippet ids (one per line).")
    return ids


def _run_with_bar(store: Store, job_id: int, quiet: bool, concurrency: int | None) -> dict:
    from core.generate.jobs import run_job
    with progress_bar(f"Job {job_id}", enabled=not quiet) as bar:
        try:
            return run_job(store, job_id, progress=bar, concurrency=concurrency)
        except KeyboardInterrupt:
            from core.generate.jobs import job_summary
            console.print(f"Interrupted: resume with `shoal generate --resume {job_id}`.")
            return job_summary(store, job_id)


def _batch_share(profiles: dict) -> float:
    """The batch price as a share of the online one (the larger of the two roles': an upper bound)."""
    from core.llm.prices import batch_discount
    return max(batch_discount(p.model, p.base_url) for p in profiles.values())


def _print_batches(b: dict) -> None:
    """Which provider batch is in flight, with its request counts; then each round's lines."""
    if not b["in_flight"]:
        console.print(f"batch mode: {b['rounds']} round(s), nothing in flight, ${b['cost_usd']:.4f} at the batch price",
                      highlight=False)
    for r in b["in_flight"]:
        console.print(f"batch in flight (round {r['round']}, {r['role']}): {r['provider_batch_id'] or 'not yet created'} "
                      f"{r['status']} · {r['request_completed'] or 0} completed, {r['request_failed'] or 0} failed of "
                      f"{r['request_total'] or r['n_lines']}", highlight=False)
    for r in b.get("round_lines") or []:     # each round: lines sent, what and why, how they came back
        console.print(r["text"], highlight=False)


def _with_batches(store: Store, s: dict) -> dict:
    from core.generate.jobs import batch_status
    b = batch_status(store, s["job_id"])
    return {**s, "batch": b} if b["batch"] else s


def _print_summary(s: dict) -> None:
    from rich.table import Table
    items = s["items"]
    console.print(f"[bold]Job {s['job_id']}[/] {s['status']}: {items['succeeded']} succeeded, {items['failed']} failed, "
                  f"{items['pending'] + items['running']} pending, {items['skipped']} skipped of {s['n_items']} · "
                  f"{s['judged']} judged, {s['judge_passed']} passed the judge, {s['prefilter_rejected']} stopped by the "
                  f"pre-filter · {s['usage'].get('calls', 0)} calls, ${s['usage'].get('cost_usd', 0):.4f}",
                  highlight=False)
    if s.get("stop_reason"):
        console.print(f"stopped: {s['stop_reason']}", highlight=False)
    if s.get("batch"):
        _print_batches(s["batch"])
    if s["failures"]:
        t = Table(title="failed items by reason")
        t.add_column("reason"); t.add_column("n", justify="right")
        for f in s["failures"]:
            t.add_row(str(f["reason"]), str(f["n"]))
        console.print(t)
    if items["failed"]:
        console.print(f"Retry them with `shoal generate --retry-failed {s['job_id']}`.")


def _job_pacing(store: Store, job_id: int) -> list[dict]:
    from core.generate.jobs import get_job
    from core.llm.endpoint import pacing_report
    return pacing_report(store, get_job(store, job_id)["params"].get("profiles") or {})


def _print_pacing(rows: list[dict]) -> None:
    """Per role, one line: the endpoint's limits, tokens per minute used, waiting, 429s, and
    what it is known to accept."""
    def num(v, unit: str = "") -> str:
        return "?" if v is None else f"{v:,.0f}{unit}"
    console.print("[bold]pacing per endpoint[/]", highlight=False)
    for r in rows:
        c = r["capabilities"] or {}
        accepts = [x for x in (c.get("token_param"),
                               c.get("mode") and c["mode"] + (" strict" if c.get("strict") and c["mode"] == "json_schema" else ""),
                               "no temperature" if c and not c.get("sampling") else None,
                               "reasoning_effort" if c.get("reasoning_effort") else None) if x]
        conc = r["concurrency_limit"]
        window = r.get("window_s")
        per = "" if not window or abs(window - 60) < 1 else f" per {window:g}s"
        share = f" ({r['tpm_used']:.0%} of the token limit)" if r.get("tpm_used") is not None else ""
        console.print(
            f"  {r['role']} {r['model'] or '(server default)'}: limits {num(r['rpm_limit'])} RPM / "
            f"{num(r['tpm_limit'])} TPM{per} (from {r['limits_from'] or 'nothing yet'}) · used "
            f"{num(r['tokens_per_minute'])} tokens/min{share}, {num(r['requests_per_minute'])} requests/min · waited "
            f"{(r['total_wait_s'] or 0):.1f}s · {r['rate_limited'] or 0} x 429 · concurrency "
            f"{'unbounded' if conc is None else conc} · accepts {', '.join(accepts) or 'unknown yet'} "
            f"({r['source']})", highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- the page's rules, on the CLI

def _refs(ids) -> str:
    return ", ".join(f"#{j}" for j in ids)


def _run_queue(store: Store, quiet: bool, until: int | None = None) -> list[dict]:
    """Run queued jobs in this process, each as soon as its servers are free (first come first
    served per server), until none is queued or job `until` has run; their summaries. Ctrl-C stops
    the job running (it stays resumable) and leaves the others queued."""
    from core.generate.jobs import job_summary, record_stop_reason, run_job
    from core.generate.jobs.endpoint_queue import blocking_jobs, run_queued
    summaries: list[dict] = []

    def run(job_id: int) -> None:
        if not quiet:
            console.print(f"Starting queued job {job_id}.", highlight=False)
        try:
            with progress_bar(f"Job {job_id}", enabled=not quiet) as bar:
                run_job(store, job_id, progress=bar)
        except ShoalError as exc:   # as the app's worker does: the job stays resumable, the queue goes on
            record_stop_reason(store, job_id, f"error: {exc}"[:500], status="paused")
            console.print(f"Job {job_id} stopped: {exc}", highlight=False)
        summaries.append(job_summary(store, job_id))

    def waiting(queue: dict) -> None:
        if not quiet:
            ahead = sorted({b for j in queue for b in blocking_jobs(store, j) if b not in queue})
            console.print(f"Waiting for job {_refs(ahead)} (running in another process) before queued job "
                          f"{_refs(queue)}.", highlight=False)

    try:
        run_queued(store, run, until=until, on_wait=waiting)
    except KeyboardInterrupt:
        console.print("Interrupted: resume the job that was running with `shoal generate --resume JOB`; "
                      "the jobs still queued stay queued (`shoal jobs --run-queued` runs them).")
    return summaries


def _say_queued(store: Store, job_id: int, busy: list[int]) -> None:
    from core.generate.jobs import get_job
    from core.generate.jobs.endpoint_queue import QUEUED
    queued_first = [j for j in busy if get_job(store, j)["status"] == QUEUED]
    console.print(f"Job {job_id} queued after job {_refs(busy)}: one job at a time per server. It runs here as "
                  "soon as the server is free" + (f" (job {_refs(queued_first)}, queued before it, runs first)"
                                                  if queued_first else "") +
                  "; pass --allow-parallel to start it now alongside.", highlight=False)


def _run_or_wait(store: Store, job_id: int, busy: list[int], quiet: bool) -> dict:
    """Run the job here now; or, queued behind `busy`, work the queue here until it has run."""
    from core.generate.jobs import job_summary
    if not busy:
        return _run_with_bar(store, job_id, quiet, None)
    if not quiet:
        _say_queued(store, job_id, busy)
    _run_queue(store, quiet, until=job_id)
    return job_summary(store, job_id)


def _start_or_queue(store: Store, job_id: int, *, allow_parallel: bool, quiet: bool) -> dict:
    """An existing job (resume): run it now; or, when another job runs (or waits) on one of its servers
    and the user did not ask for parallel runs, queue it (a 'queued' row) and work the queue here."""
    from core.generate.jobs.endpoint_queue import blocking_jobs, queue_job
    busy = [] if allow_parallel else blocking_jobs(store, job_id)
    if busy:
        queue_job(store, job_id, busy)
    return _run_or_wait(store, job_id, busy, quiet)


# --------------------------------------------------------------------------- shoal generate

def _check_sources(selection: str | None, ids: Path | None, seeds: bool, task: str | None, mix: str | None) -> None:
    if len([x for x in (selection, ids, seeds or None) if x]) != 1:
        fail("Give exactly one of --selection NAME, --ids FILE or --seeds.")
    if task and mix:
        fail("Give either --task or --mix, not both.")


def _snippet_ids(store: Store, selection: str | None, ids: Path | None,
                 limit: int | None) -> tuple[list[str], int | None]:
    """The snippets a new job uses (from a selection, an ids file or every seed), and the selection's id."""
    selection_id = None
    if selection:
        from core.select.stored import find_selection, selection_items
        selection_id = find_selection(store, selection)
        snippet_ids = selection_items(store, selection_id)
    elif ids:
        snippet_ids = _read_ids(ids)
    else:
        from core.ingest.snippets import seed_snippet_ids
        snippet_ids = seed_snippet_ids(store)
        if not snippet_ids:
            fail("There are no seed snippets: ingest a whole-file corpus first (`shoal ingest ...`).")
    return (snippet_ids[:limit] if limit else snippet_ids), selection_id


def _dry_run(store: Store, snippet_ids: list[str], *, task: str | None, mix: dict | None, targets: list[str],
             seeds_only: bool, batch: bool, as_json: bool) -> None:
    """Plan and estimate the cost of a job without creating it."""
    from core.generate import jobs as J
    from core.llm.profiles import load_profiles
    profiles = load_profiles()
    plan = J.plan_items(store, snippet_ids, task=task, mix=mix, target_languages=targets,
                        generator_model=profiles["generator"].model,
                        judge_model=profiles["judge"].model, seeds_only=seeds_only)
    est = J.estimate_job_cost(store, plan, profiles)
    if batch:
        est["cost_usd"] = round(est["cost_usd"] * _batch_share(profiles), 4)
        est["batch"] = True
    out = {"items": plan.n_items, "tasks": plan.task_counts(), "unknown_ids": len(plan.unknown_ids), "estimate": est}
    if as_json:
        print_json(out)
    else:
        console.print(out)


def _start_new(store: Store, request, *, allow_parallel: bool, quiet: bool) -> dict:
    """Create and run (or queue) a new job by the page's rules (core.generate.jobs.start.start_job)."""
    from core.generate import jobs as J
    from core.generate.jobs.start import start_job
    from core.llm.profiles import load_profiles
    started = start_job(store, request, load_profiles(), allow_parallel=allow_parallel, run_in="caller")
    if not quiet:
        job = J.get_job(store, started.job_id)
        unknown = job["params"].get("unknown_ids", 0)
        console.print(f"Job {started.job_id}: {job['n_items']} items" +
                      (f" ({unknown} unknown snippet ids ignored)" if unknown else ""), highlight=False)
        console.print(started.settings.describe(), highlight=False, soft_wrap=True)
    return _run_or_wait(store, started.job_id, started.queued_after, quiet)


def _resume(store: Store, job_id: int, retry: bool, allow_parallel: bool, quiet: bool) -> dict:
    """`--resume JOB` / `--retry-failed JOB`: run the job's pending (or failed) items."""
    from core.generate import jobs as J
    J.get_job(store, job_id)
    if retry:
        n = J.retry_failed(store, job_id)
        if not quiet:
            console.print(f"{n} failed item(s) of job {job_id} put back to pending.")
    return _start_or_queue(store, job_id, allow_parallel=allow_parallel, quiet=quiet)


def _report(summary: dict, as_json: bool) -> None:
    print_json(summary) if as_json else _print_summary(summary)


def generate(
    ctx: typer.Context,
    selection: str | None = typer.Option(None, "--selection", "-s", help="Name of a saved selection."),
    ids: Path | None = typer.Option(None, "--ids", help="File with one snippet id per line."),
    seeds: bool = typer.Option(False, "--seeds", help="Use every OSS-Instruct seed snippet (kind='seed')."),
    task: str | None = typer.Option(None, "--task", "-t", help="One task: code_generation, code_summarization, "
                                       "code_translation, code_repair or oss_instruct."),
    mix: str | None = typer.Option(None, "--mix", help="'default' (CodeOcean 57/16/16/11) or task=share,..."),
    target_language: list[str] = typer.Option([], "--target-language", "-l",
                                              help="Target language(s) for code_translation (repeatable)."),
    seeds_only: bool = typer.Option(False, "--seeds-only", help="Keep only seed snippets of the selection."),
    concurrency: int = typer.Option(DEFAULT_CONCURRENCY, "--concurrency", "-c", min=1,
                                    help="Items in flight at once (the embedded local model: 1)."),
    max_calls: int | None = typer.Option(None, "--max-calls", min=1, help="Stop after this many LLM calls."),
    max_cost: float | None = typer.Option(None, "--max-cost", min=0.0, help="Stop at this estimated cost (USD)."),
    pool_good: int = typer.Option(2, "--pool-good", min=0, help="Good few-shot examples per prompt."),
    pool_bad: int = typer.Option(1, "--pool-bad", min=0, help="Bad few-shot examples per prompt."),
    pool_seed: int = typer.Option(0, "--pool-seed", help="Seed of the few-shot sampling."),
    pool_refresh: int = typer.Option(50, "--pool-refresh", min=1,
                                     help="Re-read the example pools every N items of the job."),
    name: str | None = typer.Option(None, "--name", help="A name for the job."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use only the first N snippets."),
    resume: int | None = typer.Option(None, "--resume", help="Resume job JOB (pending and interrupted items)."),
    retry_failed: int | None = typer.Option(None, "--retry-failed", help="Re-run the failed items of job JOB."),
    batch: bool = typer.Option(False, "--batch", help="Send the calls through the provider's Batch API: half "
                               "price, answers within 24h (resume with --resume JOB after an interruption)."),
    allow_parallel: bool = typer.Option(False, "--allow-parallel", help="Start now even when another job runs "
                                        "(or is queued) on the same server; by default the job waits its turn."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan and estimate the cost; do not create the job."),
    as_json: bool = typer.Option(False, "--json", help="Print the job summary as JSON (no progress bar)."),
):
    """Generate and judge instruction examples (a persisted, resumable job; one job at a time per server)."""
    from core.generate.items import PoolConfig
    from core.generate.jobs.start import JobRequest
    store = store_from(ctx)
    apply_prices(store)                  # prices set on the Generate page count here too
    try:
        existing = resume if resume is not None else retry_failed
        if existing is not None:
            summary = _resume(store, existing, retry_failed is not None, allow_parallel, as_json)
        else:
            _check_sources(selection, ids, seeds, task, mix)
            snippet_ids, selection_id = _snippet_ids(store, selection, ids, limit)
            mix_map = _parse_mix(mix) if mix else (None if task else _parse_mix("default"))
            if dry_run:
                return _dry_run(store, snippet_ids, task=task, mix=mix_map, targets=target_language,
                                seeds_only=seeds_only, batch=batch, as_json=as_json)
            request = JobRequest(
                snippet_ids, task=task, mix=mix_map, targets=target_language, concurrency=concurrency,
                max_calls=max_calls, max_cost=max_cost, seeds_only=seeds_only, batch=batch,
                pool=PoolConfig(good=pool_good, bad=pool_bad, seed=pool_seed, refresh_every=pool_refresh),
                name=name or (f"selection {selection}" if selection else None), selection_id=selection_id,
                source=f"selection:{selection}" if selection else (f"ids:{ids}" if ids else "seeds"))
            summary = _start_new(store, request, allow_parallel=allow_parallel, quiet=as_json)
        summary = _with_batches(store, summary)
    except ShoalError as exc:
        fail(str(exc))
    _report(summary, as_json)


# --------------------------------------------------------------------------- shoal jobs

def _print_jobs(store: Store, rows: list[dict]) -> None:
    from rich.table import Table

    from core.generate.jobs.endpoint_queue import queued_jobs
    queued = queued_jobs(store)
    t = Table(title="generation jobs")
    for col in ("id", "name", "task", "status", "items", "succeeded", "failed", "pending", "skipped", "created"):
        t.add_column(col)
    for r in rows:
        status = "interrupted" if r["interrupted"] else r["status"]
        if r["id"] in queued:
            status = f"queued after {_refs(queued[r['id']])}" if queued[r["id"]] else "queued"
        t.add_row(str(r["id"]), r["name"] or "", r["task"], status, str(r["n_items"]), str(r["succeeded"]),
                  str(r["failed"]), str(r["pending"]), str(r["skipped"]), str(r["created_at"])[:19])
    console.print(t)


def _control(store: Store, job_id: int, show: bool, as_json: bool) -> None:
    """After --pause / --cancel (or for --show): the job's summary, with its pacing for --show."""
    from core.generate import jobs as J
    s = _with_batches(store, J.job_summary(store, job_id))
    if show:
        s["pacing"] = _job_pacing(store, job_id)
    _report(s, as_json)
    if show and not as_json:
        _print_pacing(s["pacing"])


def _print_queue_run(summaries: list[dict], as_json: bool) -> None:
    if as_json:
        print_json(summaries)
        return
    if not summaries:
        console.print("No job is queued.")
    for s in summaries:
        _print_summary(s)


def jobs(
    ctx: typer.Context,
    show: int | None = typer.Option(None, "--show", help="Details of one job."),
    pause: int | None = typer.Option(None, "--pause", help="Mark a job paused (resume with generate --resume)."),
    cancel: int | None = typer.Option(None, "--cancel", help="Cancel a job (and its provider batch)."),
    resume: int | None = typer.Option(None, "--resume", help="Resume a job (as `generate --resume`)."),
    run_queued: bool = typer.Option(False, "--run-queued", help="Run the queued jobs here, each as soon as its "
                                    "server is free (jobs queued on the page wait in the database)."),
    allow_parallel: bool = typer.Option(False, "--allow-parallel", help="With --resume: start even when another "
                                        "job runs on the same server."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """List generation jobs with their item counts."""
    from core.generate import jobs as J
    store = store_from(ctx)
    apply_prices(store)
    try:
        if resume is not None:
            J.get_job(store, resume)
            return _report(_with_batches(store, _start_or_queue(store, resume, allow_parallel=allow_parallel,
                                                                quiet=as_json)), as_json)
        if run_queued:
            return _print_queue_run([_with_batches(store, s) for s in _run_queue(store, as_json)], as_json)
        if pause is not None:
            J.pause_job(store, pause)
        if cancel is not None:
            J.cancel_job(store, cancel)
        target = next((j for j in (show, pause, cancel) if j is not None), None)
        if target is not None:
            return _control(store, target, show is not None, as_json)
        rows = J.list_jobs(store)
    except ShoalError as exc:
        fail(str(exc))
    if as_json:
        print_json(rows)
    else:
        _print_jobs(store, rows)


def add_commands(app: typer.Typer) -> None:
    app.command()(generate)
    app.command()(jobs)
