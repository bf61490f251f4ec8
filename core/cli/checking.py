"""`shoal check`: decontamination, near-duplicates (MinHash, optionally semantic) and the execution sandbox."""
from __future__ import annotations

import typer

from core.cli.common import console, fail, print_json, progress_bar, store_from
from core.errors import ShoalError


def add_commands(app: typer.Typer) -> None:
    @app.command("check")
    def check(ctx: typer.Context,
              benchmarks: str = typer.Option(
                  "humaneval", "--benchmarks",
                  help="Comma-separated: humaneval (built in), mbpp=PATH, apps=PATH, ds1000=PATH, gsm8k=PATH "
                       "(JSONL/Parquet); a name without PATH loads it from the Hugging Face hub when online."),
              ngram: int | None = typer.Option(None, "--ngram", min=4, max=64,
                                                  help="Also flag shared N-grams of words (datatrove uses 12)."),
              dedup: bool = typer.Option(True, "--dedup/--no-dedup", help="Run the MinHash near-duplicate check."),
              threshold: float = typer.Option(0.58, "--threshold", help="Near-duplicate Jaccard threshold."),
              rouge: bool = typer.Option(False, "--rouge", help="Also group instructions with ROUGE-L > 0.7."),
              semantic: bool = typer.Option(False, "--semantic",
                                            help="Also embed the examples: semantic duplicates and semantic leaks."),
              semantic_threshold: float = typer.Option(0.90, "--semantic-threshold",
                                                       help="Cosine at or above which two examples are duplicates."),
              leak_threshold: float = typer.Option(0.62, "--leak-threshold",
                                                   help="Cosine to a benchmark problem at or above which an example "
                                                        "is flagged as a semantic leak."),
              run_exec: bool = typer.Option(False, "--exec", help="Run solutions with their tests in the OS sandbox."),
              exec_sample: int | None = typer.Option(None, "--exec-sample", min=1,
                                                        help="Execute only a seeded random sample of N."),
              timeout: float = typer.Option(10.0, "--timeout", help="Sandbox wall-time limit per example (s)."),
              memory_mb: int = typer.Option(512, "--memory-mb", help="Sandbox memory limit (MB)."),
              as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
        """Check the generated examples: benchmark contamination, near-duplicates, execution."""
        from core.dataset.checks.decontam import run_decontamination
        from core.dataset.checks.execution import run_execution_checks
        from core.dataset.checks.neardup import run_near_duplicates

        store = store_from(ctx)
        out: dict = {}
        try:
            with progress_bar("Decontamination", enabled=not as_json) as bar:
                out["decontamination"] = run_decontamination(store, benchmarks, ngram, progress=bar)
            if dedup:
                with progress_bar("Near-duplicates", enabled=not as_json) as bar:
                    out["near_duplicate"] = run_near_duplicates(store, threshold, rouge, progress=bar)
            if semantic:
                from core.dataset.checks.semantic import run_semantic_decontamination, run_semantic_duplicates
                with progress_bar("Semantic duplicates", enabled=not as_json) as bar:
                    out["semantic_duplicate"] = run_semantic_duplicates(store, semantic_threshold, progress=bar)
                with progress_bar("Semantic leaks", enabled=not as_json) as bar:
                    out["semantic_decontamination"] = run_semantic_decontamination(store, benchmarks, leak_threshold,
                                                                                   progress=bar)
            if run_exec:
                with progress_bar("Execution (sandbox)", enabled=not as_json) as bar:
                    out["execution"] = run_execution_checks(store, exec_sample, timeout, memory_mb, progress=bar)
        except ShoalError as exc:
            fail(str(exc))
        if as_json:
            print_json(out)
            return
        d = out["decontamination"]
        console.print(f"[bold]Decontamination[/]: {d['n_flagged']} of {d['n_examples']} examples contain benchmark "
                      f"text {d['flagged_per_benchmark'] or ''} (strings: {d['strings_per_benchmark']})")
        if "near_duplicate" in out:
            n = out["near_duplicate"]
            console.print(f"[bold]Near-duplicates[/]: {n['n_groups']} groups, {n['n_flagged']} examples flagged "
                          f"(of {n['n_examples']})")
        if "semantic_duplicate" in out:
            n = out["semantic_duplicate"]
            console.print(f"[bold]Semantic duplicates[/] (cosine >= {n['threshold']}): {n['n_groups']} groups, "
                          f"{n['n_flagged']} examples flagged (of {n['n_examples']})")
            d = out["semantic_decontamination"]
            console.print(f"[bold]Semantic leaks[/] (cosine >= {d['threshold']} to one of {d['n_problems']} problems): "
                          f"{d['n_flagged']} of {d['n_examples']} examples {d['flagged_per_benchmark'] or ''}")
        if "execution" in out:
            e = out["execution"]
            console.print(f"[bold]Execution[/]: {e['n_passed']} of {e['n_examples']} Python solutions ran cleanly "
                          f"{e['statuses']} (sandbox: {e['sandbox']})")
            for reason, n in (e.get("skipped_reasons") or {}).items():
                console.print(f"[bold yellow]Not run[/]: {n} examples: {reason}", highlight=False)
        console.print("Failing examples are left out of `shoal export` unless overridden on the Dataset page.")
