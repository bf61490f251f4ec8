"""`shoal judge`: calibrate the judge against human verdicts, compare versions, use the better one."""
from __future__ import annotations

import typer

from core.cli.common import console, fail, print_json, progress_bar, store_from
from core.errors import ShoalError
from core.llm.concurrency import DEFAULT_CONCURRENCY

judge_app = typer.Typer(help="Judge calibration: evaluate judge prompt versions and models on the gold set.",
                        no_args_is_help=True)


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def _print_comparison(reports: list[dict]) -> None:
    """One line per figure (overall, per task, per rule), one column per run."""
    from core.dataset.judge_eval import compare_evals

    cmp = compare_evals(reports)
    width = 64
    console.print("[bold]Judge vs human (gold set)[/]: columns " +
                  "; ".join(f"[{i + 1}] {c}" for i, c in enumerate(cmp["columns"])), highlight=False)
    console.print(f"{'figure':<{width}}" + "".join(f"{f'[{i + 1}]':>9}" for i in range(len(cmp["columns"]))),
                  highlight=False, soft_wrap=True)
    for row in cmp["rows"]:
        name = row["key"] if row["scope"] == "overall" else f"kappa · {row['key']}"
        name = f"{row['scope']:<8}" + (name if len(name) <= width - 8 else name[:width - 9] + "…")
        console.print(f"{name:<{width}}" + "".join(f"{_fmt(row[c]):>9}" for c in cmp["columns"]),
                      highlight=False, soft_wrap=True)
    for r in reports:
        console.print(f"#{r['eval_id']} v{r['version'] if r['version'] is not None else 'current'}: "
                      f"{r['n_gold']} gold examples, {r['n_unreadable']} unreadable replies, judge gave no "
                      f"answer to {r.get('n_missing_rule_answers', 0)} rules (left out of the per-rule kappa), "
                      f"{len(r['disagreements'])} disagreements, {r['calls']} requests, ${r['cost_usd']:.4f}",
                      highlight=False, soft_wrap=True)
    best = cmp["best"]
    if best and len(reports) > 1 and best["version"] is not None:
        console.print(f"Best: v{best['version']} ({best['judge_model']}). Make it the judge for new jobs with "
                      f"`shoal judge use --version {best['version']}`.", highlight=False, soft_wrap=True)


def add_commands(app: typer.Typer) -> None:
    app.add_typer(judge_app, name="judge")


@judge_app.command("eval")
def judge_eval(ctx: typer.Context,
               versions: list[str] = typer.Option(..., "--version", "-v",
                                                  help="Prompt version number to evaluate (or 'current'); "
                                                       "repeat to compare versions side by side."),
               model: str | None = typer.Option(None, "--model", help="Judge model (default: the judge profile's)."),
               tasks: list[str] = typer.Option([], "--task", help="Only these tasks (repeatable)."),
               sample: int | None = typer.Option(None, "--sample", min=1,
                                                    help="Evaluate a seeded random sample of the gold set."),
               seed: int = typer.Option(0, "--seed"),
               concurrency: int = typer.Option(DEFAULT_CONCURRENCY, "--concurrency", min=1),
               show: int = typer.Option(10, "--show", help="Disagreeing examples to list per version."),
               as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Run judge prompt version(s) over the examples people accepted or rejected; report agreement."""
    from core.dataset.judge_eval import compare_evals, evaluate_judge

    store = store_from(ctx)
    reports = []
    try:
        for v in versions:
            with progress_bar(f"Judge v{v}", enabled=not as_json) as bar:
                reports.append(evaluate_judge(store, v, model, tasks=tasks or None, sample=sample, seed=seed,
                                              concurrency=concurrency, progress=bar))
    except (ShoalError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print_json({"evals": reports, "comparison": compare_evals(reports)})
        return
    _print_comparison(reports)
    for r in reports:
        for d in r["disagreements"][:show]:
            console.print(f"  v{r['version']} #{d['generation_id']} {d['task']}: human {d['human']}, judge "
                          f"{d['judge'] or 'unreadable'}; failed: {', '.join(d['failed_rules'])[:120] or '—'}",
                          highlight=False, soft_wrap=True)


@judge_app.command("use")
def judge_use(ctx: typer.Context,
              version: int = typer.Option(..., "--version", "-v", help="Prompt version whose judge new jobs use."),
              tasks: list[str] = typer.Option([], "--task", help="Only these tasks (default: every task with it)."),
              as_json: bool = typer.Option(False, "--json")):
    """Make a version's judge (rules, judge template) current: new jobs judge with it."""
    from core.dataset.judge_eval import use_judge_version

    store = store_from(ctx)
    try:
        out = use_judge_version(store, version, tasks or None)
    except ShoalError as exc:
        fail(str(exc))
    if as_json:
        print_json(out)
        return
    for task, r in out.items():
        state = f"now v{r['version']} (judge from v{r['judge_from']})" if r["changed"] else \
            f"already judges with v{version}'s rules (v{r['version']})"
        console.print(f"{task}: {state}")


@judge_app.command("history")
def judge_history(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")):
    """Past judge evaluations, newest first."""
    from core.dataset.judge_eval import list_evals

    rows = list_evals(store_from(ctx))
    if as_json:
        print_json(rows)
        return
    for r in rows:
        console.print(f"#{r['eval_id']} v{r['version']} {r['judge_model']} {r['status']}: n={r['n_gold']} "
                      f"accuracy {_fmt(r['accuracy'])} kappa {_fmt(r['kappa'])} ({r['created_at']})")


@judge_app.command("current")
def judge_current(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")):
    """The judge new jobs use, per task: the current prompt version and whose judge it has."""
    from core.dataset.judge_eval import current_judges, tasks_with_prompt_versions

    store = store_from(ctx)
    tasks = tasks_with_prompt_versions(store)
    if not tasks:
        fail("No prompt versions yet: every task judges with its built-in prompt.")
    out = current_judges(store, tasks)
    if as_json:
        print_json(out)
        return
    for task, r in out.items():
        console.print(f"{task}: v{r['version']} (judge of v{', v'.join(map(str, r['judge_of']))})", highlight=False)
