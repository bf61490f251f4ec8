"""`shoal eval`: pass@k of a model on HumanEval, MBPP or the held-out split, and `shoal eval compare`."""
from __future__ import annotations

import typer

from core.cli.common import console, fail, print_json, progress_bar, store_from
from core.errors import ShoalError


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        fail(f"--k takes comma-separated whole numbers (got {text!r}).")
    return ks or [1]


def _pct(v) -> str:
    return "–" if v is None else f"{v:.1%}"


def _print_report(out: dict) -> None:
    ci = out["pass_at_1_ci"] or [None, None]
    console.print(f"[bold]Run #{out['run_id']}[/] {out['benchmark']} · {out['model']} · {out['n_problems']} problems "
                  f"× {out['n_samples']} sample(s) · status {out['status']}"
                  + (f" (resumed with {out['samples_before']} samples done)" if out.get("resumed") else ""))
    console.print(f"pass@1 [bold]{_pct(out['pass_at_1'])}[/] (95% bootstrap interval {_pct(ci[0])}–{_pct(ci[1])})")
    for k, v in out["pass_at_k"].items():
        if k != "1":
            console.print(f"pass@{k} {_pct(v['value'])} ({_pct(v['ci'][0])}–{_pct(v['ci'][1])})")
    console.print(f"sandbox statuses {out['statuses']}; {out.get('requests', 0)} requests, "
                  f"{out.get('cache_hits', 0)} from the cache")
    if out["n_unscored"]:
        console.print(f"[yellow]{out['n_unscored']} samples were not scored[/] (no reply, or the sandbox never returned; counted as failures): run the same "
                      "command again to retry them.")


def _run(ctx: typer.Context, benchmark: str, limit: int | None, n_samples: int, k: str, base_url: str | None,
         model: str | None, api_key_env: str | None, temperature: float | None, max_tokens: int | None,
         concurrency: int | None, timeout: float, share: float, seed: int, as_json: bool) -> None:
    from core.evaluate import EvalSpec, parse_benchmark, run_eval
    from core.evaluate.tasks import concurrency_for, target_profile
    store = store_from(ctx)
    try:
        name, path = parse_benchmark(benchmark)
        profile = target_profile(base_url, model, api_key_env, start_local=True)
        spec = EvalSpec(name, path, limit, n_samples, _ks(k), temperature, max_tokens, timeout=timeout,
                        concurrency=concurrency_for(profile, concurrency), share=share, seed=seed)
        with progress_bar(f"Evaluating on {name}", enabled=not as_json) as bar:
            out = run_eval(store, spec, profile, progress=bar)
    except ShoalError as exc:
        fail(str(exc))
    if as_json:
        print_json(out)
    else:
        _print_report(out)


def add_commands(app: typer.Typer) -> None:
    ev = typer.Typer(help="Evaluate a model on code benchmarks (pass@k, every sample run in the sandbox).",
                     no_args_is_help=False)
    app.add_typer(ev, name="eval")

    @ev.callback(invoke_without_command=True)
    def evaluate(ctx: typer.Context,
                 benchmark: str | None = typer.Option(None, "--benchmark", "-b",
                                                      help="humaneval | mbpp=PATH (MBPP JSONL) | heldout."),
                 limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N problems."),
                 n_samples: int = typer.Option(1, "--n-samples", "-n", min=1, help="Samples per problem."),
                 k: str = typer.Option("1", "--k", help="pass@k to report, comma-separated (k <= n-samples)."),
                 base_url: str | None = typer.Option(None, "--base-url",
                                                     help="OpenAI-compatible endpoint (default: the generator's)."),
                 model: str | None = typer.Option(None, "--model", help="Model name at the endpoint."),
                 api_key_env: str | None = typer.Option(None, "--api-key-env",
                                                        help="Environment variable holding the key for --base-url."),
                 temperature: float | None = typer.Option(None, "--temperature",
                                                          help="Default 0 with one sample, 0.8 with several."),
                 max_tokens: int | None = typer.Option(None, "--max-tokens", min=16, help="Reply budget."),
                 concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Requests in flight."),
                 timeout: float = typer.Option(10.0, "--timeout", help="Sandbox wall-time limit per sample (s)."),
                 share: float = typer.Option(0.1, "--heldout-share", min=0.001, max=1.0,
                                             help="Share of the accepted examples held out (heldout)."),
                 seed: int = typer.Option(0, "--seed", help="Held-out split and bootstrap seed."),
                 as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
        """Evaluate a model: `shoal eval --benchmark humaneval --limit 20 --json`. Rerunning the same
        command resumes an interrupted run; `shoal eval runs` lists runs, `shoal eval compare A B` compares two."""
        if ctx.invoked_subcommand is not None:
            return
        if benchmark is None:
            fail("Give --benchmark humaneval, mbpp=PATH or heldout (or a subcommand: runs, compare).")
        _run(ctx, benchmark, limit, n_samples, k, base_url, model, api_key_env, temperature, max_tokens,
             concurrency, timeout, share, seed, as_json)

    @ev.command("runs")
    def list_eval_runs(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
        """The evaluation runs, newest first, with pass@1 and its interval."""
        from core.evaluate import list_runs
        rows = list_runs(store_from(ctx))
        if as_json:
            print_json(rows)
            return
        for r in rows:
            m = r["metrics"] or {}
            ci = m.get("pass_at_1_ci") or [None, None]
            console.print(f"#{r['id']} {r['benchmark']} {r['model']} {r['n_problems']}×{r['n_samples']} {r['status']}: "
                          f"pass@1 {_pct(m.get('pass_at_1'))} ({_pct(ci[0])}–{_pct(ci[1])})")

    @ev.command("compare")
    def compare(ctx: typer.Context, run_a: int = typer.Argument(..., help="The baseline run."),
                run_b: int = typer.Argument(..., help="The run compared with it."),
                seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
                as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
        """Is the difference between two runs on the same problems real? Paired bootstrap + McNemar."""
        from core.evaluate import compare_runs
        try:
            out = compare_runs(store_from(ctx), run_a, run_b, seed=seed)
        except ShoalError as exc:
            fail(str(exc))
        if as_json:
            print_json(out)
        else:
            console.print(out["verdict"], highlight=False)
