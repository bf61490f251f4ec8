"""`shoal generate` (create / resume / retry a generation job) and `shoal jobs` (list, show, pause, cancel)."""
from __future__ import annotations

from pathlib import Path

import typer

from core.commands.common import console, fail, print_json, progress_bar, store_from
from core.errors import ShoalError
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


def _selection_ids(store: Store, name: str) -> tuple[list[str], int]:
    row = store.one("SELECT id FROM selections WHERE name = ?", [name])
    if row is None:
        names = [r["name"] for r in store.rows("SELECT name FROM selections ORDER BY id DESC LIMIT 10")]
        raise ShoalError(f"No selection named {name!r}." + (f" Known: {', '.join(names)}" if names
                                                              else " Make one on the Map page or with `shoal select`."))
    ids = [r["snippet_id"] for r in store.rows(
        "SELECT snippet_id FROM selection_items WHERE selection_id = ? ORDER BY rank", [row["id"]])]
    return ids, int(row["id"])


def _run_with_bar(store: Store, job_id: int, quiet: bool, concurrency: int | None) -> dict:
    from core.jobs import run_job
    with progress_bar(f"Job {job_id}", enabled=not quiet) as bar:
        try:
            return run_job(store, job_id, progress=bar, concurrency=concurrency)
        except KeyboardInterrupt:
            from core.jobs import job_summary
            console.print(f"Interrupted: resume with `shoal generate --resume {job_id}`.")
            return job_summary(store, job_id)


def _batch_share(profiles: dict) -> float:
    """The batch price as a share of the online one (the larger of the two roles': an upper bound)."""
    from core.prices import batch_discount
    return max(batch_discount(p.model, p.base_url) for p in profiles.values())


def _print_batches(b: dict) -> None:
    """Which provider batch is in flight, with its request counts."""
    if not b["in_flight"]:
        console.print(f"batch mode: {b['rounds']} round(s), nothing in flight, ${b['cost_usd']:.4f} at the batch price",
                      highlight=False)
    for r in b["in_flight"]:
        console.print(f"batch in flight (round {r['round']}, {r['role']}): {r['provider_batch_id'] or 'not yet created'} "
                      f"{r['status']} · {r['request_completed'] or 0} completed, {r['request_failed'] or 0} failed of "
                      f"{r['request_total'] or r['n_lines']}", highlight=False)


def _with_batches(store: Store, s: dict) -> dict:
    from core.jobs import batch_status
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
    from core.jobs import get_job
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


def register(app: typer.Typer) -> None:
    @app.command()
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
        concurrency: int = typer.Option(8, "--concurrency", "-c", min=1, help="Items in flight at once."),
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
        dry_run: bool = typer.Option(False, "--dry-run", help="Plan and estimate the cost; do not create the job."),
        as_json: bool = typer.Option(False, "--json", help="Print the job summary as JSON (no progress bar)."),
    ):
        """Generate and judge instruction examples (a persisted, resumable job)."""
        from core import jobs as J
        from core.generate import PoolConfig
        store = store_from(ctx)
        try:
            if resume is not None or retry_failed is not None:
                job_id = resume if resume is not None else retry_failed
                J.get_job(store, job_id)
                if retry_failed is not None:
                    n = J.retry_failed(store, job_id)
                    if not as_json:
                        console.print(f"{n} failed item(s) of job {job_id} put back to pending.")
                summary = _run_with_bar(store, job_id, as_json, None)
            else:
                sources = [x for x in (selection, ids, seeds or None) if x]
                if len(sources) != 1:
                    fail("Give exactly one of --selection NAME, --ids FILE or --seeds.")
                if task and mix:
                    fail("Give either --task or --mix, not both.")
                selection_id = None
                if selection:
                    snippet_ids, selection_id = _selection_ids(store, selection)
                elif ids:
                    snippet_ids = _read_ids(ids)
                else:
                    snippet_ids = [r["id"] for r in store.rows("SELECT id FROM snippets WHERE kind = 'seed' ORDER BY id")]
                    if not snippet_ids:
                        fail("There are no seed snippets: ingest a whole-file corpus first (`shoal ingest ...`).")
                if limit:
                    snippet_ids = snippet_ids[:limit]
                mix_map = _parse_mix(mix) if mix else (None if task else _parse_mix("default"))
                from core.config import load_profiles
                profiles = load_profiles()
                if dry_run:
                    plan = J.plan_items(store, snippet_ids, task=task, mix=mix_map, target_languages=target_language,
                                        generator_model=profiles["generator"].model,
                                        judge_model=profiles["judge"].model, seeds_only=seeds_only)
                    est = J.estimate_cost(store, plan, profiles)
                    if batch:
                        est["cost_usd"] = round(est["cost_usd"] * _batch_share(profiles), 4)
                        est["batch"] = True
                    out = {"items": plan.n_items, "tasks": plan.task_counts(), "unknown_ids": len(plan.unknown_ids),
                           "estimate": est}
                    if as_json:
                        print_json(out)
                    else:
                        console.print(out)
                    return
                job_id = J.create_job(
                    store, snippet_ids, profiles=profiles, task=task, mix=mix_map, target_languages=target_language,
                    concurrency=concurrency, max_calls=max_calls, max_cost=max_cost,
                    pool=PoolConfig(good=pool_good, bad=pool_bad, seed=pool_seed, refresh_every=pool_refresh), seeds_only=seeds_only,
                    name=name or (f"selection {selection}" if selection else None), selection_id=selection_id,
                    source=f"selection:{selection}" if selection else (f"ids:{ids}" if ids else "seeds"),
                    batch=batch)
                if not as_json:
                    job = J.get_job(store, job_id)
                    unknown = job["params"].get("unknown_ids", 0)
                    console.print(f"Job {job_id}: {job['n_items']} items" +
                                  (f" ({unknown} unknown snippet ids ignored)" if unknown else ""), highlight=False)
                summary = _run_with_bar(store, job_id, as_json, None)
            summary = _with_batches(store, summary)
        except ShoalError as exc:
            fail(str(exc))
        if as_json:
            print_json(summary)
        else:
            _print_summary(summary)

    @app.command()
    def jobs(
        ctx: typer.Context,
        show: int | None = typer.Option(None, "--show", help="Details of one job."),
        pause: int | None = typer.Option(None, "--pause", help="Mark a job paused (resume with generate --resume)."),
        cancel: int | None = typer.Option(None, "--cancel", help="Cancel a job (and its provider batch)."),
        resume: int | None = typer.Option(None, "--resume", help="Resume a job (as `generate --resume`)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ):
        """List generation jobs with their item counts."""
        from core import jobs as J
        store = store_from(ctx)
        try:
            if resume is not None:
                J.get_job(store, resume)
                s = _with_batches(store, _run_with_bar(store, resume, as_json, None))
                print_json(s) if as_json else _print_summary(s)
                return
            if pause is not None:
                J.pause_job(store, pause)
            if cancel is not None:
                J.cancel_job(store, cancel)
            if show is not None or pause is not None or cancel is not None:
                s = _with_batches(store, J.job_summary(store, show if show is not None else
                                                       (pause if pause is not None else cancel)))
                if show is not None:
                    s["pacing"] = _job_pacing(store, show)
                print_json(s) if as_json else _print_summary(s)
                if show is not None and not as_json:
                    _print_pacing(s["pacing"])
                return
            rows = J.list_jobs(store)
        except ShoalError as exc:
            fail(str(exc))
        if as_json:
            print_json(rows)
            return
        from rich.table import Table
        t = Table(title="generation jobs")
        for col in ("id", "name", "task", "status", "items", "succeeded", "failed", "pending", "skipped", "created"):
            t.add_column(col)
        for r in rows:
            status = "interrupted" if r["interrupted"] else r["status"]
            t.add_row(str(r["id"]), r["name"] or "", r["task"], status, str(r["n_items"]), str(r["succeeded"]),
                      str(r["failed"]), str(r["pending"]), str(r["skipped"]), str(r["created_at"])[:19])
        console.print(t)
