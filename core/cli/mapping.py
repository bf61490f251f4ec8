"""`shoal embed`, `shoal map`, `shoal select`: embeddings, the corpus map, diverse selections."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from core.cli.common import console, fail, print_json, progress_bar, store_from
from core.errors import ShoalError

if TYPE_CHECKING:   # the embedding modules load lazily (the CLI starts without torch)
    from core.embed.imported import ImportResult
    from core.embed.ray_route import RayEmbedResult
    from core.embed.run import EmbedResult


def _parse_clusters(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return sorted({int(p) for p in text.replace(" ", "").split(",") if p != ""})
    except ValueError:
        fail(f"--clusters takes cluster numbers separated by commas (e.g. 0,3,7), not {text!r}.")


def _read_ids(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    try:
        ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        fail(f"Cannot read the id file {path}: {exc}")
    if not ids:
        fail(f"The id file {path} has no snippet ids (one per line).")
    return ids


def _import_lines(result: ImportResult) -> list[str]:
    return [f"model key [bold]{result.model_key}[/]: {result.n_imported} vectors imported "
            f"({result.dim}-d), {result.n_already_cached} already cached, {result.n_unknown} rows for "
            f"snippets not in this corpus, {result.n_bad} bad rows of {result.n_rows}"] + [
        f"  {n} bad: {reason}" for reason, n in sorted(result.bad_reasons.items(), key=lambda kv: -kv[1])]


def _embed_lines(result: EmbedResult | RayEmbedResult, extra: str = "") -> list[str]:
    return [f"model key [bold]{result.model_key}[/]: {result.n_embedded} embedded, "
            f"{result.n_cached} already cached, {result.n_snippets} snippets{extra} "
            f"({result.seconds:.1f} s, {result.device})", f"backend {result.reason}"]


def embed(ctx: typer.Context,
          model: str | None = typer.Option(None, "--model", help="sentence-transformers model name or "
                                              "local folder (default: built-in all-MiniLM-L6-v2, offline). "
                                              "With --import: the model the file's vectors belong to."),
          batch_size: int = typer.Option(32, "--batch-size", min=1, help="Texts per forward pass."),
          backend: str = typer.Option("auto", "--backend", help="auto (static when the model would take "
                                      "over an hour on this CPU, else fast where it agrees with torch, measured "
                                      "once per model), torch, fast (ONNX int8, CPU) or static (a model2vec "
                                      "table distilled from the model; its own cache key)."),
          device: str = typer.Option("auto", "--device", help="auto (a GPU if PyTorch sees one, fp16), "
                                     "cpu, or cuda."),
          import_file: Path | None = typer.Option(None, "--import", help="Import vectors computed "
                                                     "elsewhere from a Parquet file (snippet_id or "
                                                     "content_hash, vector)."),
          engine: str = typer.Option("local", "--engine", help="local (this process) or ray."),
          address: str | None = typer.Option(None, "--address", help="Ray cluster address (--engine "
                                                "ray; default: start a local Ray instance)."),
          shard_size: int = typer.Option(1024, "--shard-size", min=1, help="Texts per shard (--engine ray)."),
          shard_dir: Path | None = typer.Option(None, "--shard-dir", help="Folder of the shard files "
                                                   "(--engine ray; default: beside the database)."),
          as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Embed every snippet not embedded yet under this model (cached by text hash and model)."""
    store = store_from(ctx)
    if engine not in ("local", "ray"):
        fail(f"Unknown --engine {engine!r}: use local or ray.")
    try:
        with progress_bar("Importing" if import_file else "Embedding", enabled=not as_json) as bar:
            if import_file is not None:
                from core.embed.imported import import_vectors
                imported = import_vectors(store, import_file, model=model, progress=bar)
                summary, lines = imported.summary(), _import_lines(imported)
            elif engine == "ray":
                from core.embed.ray_route import embed_with_ray
                on_ray = embed_with_ray(store, model=model, backend=backend, device=device, address=address,
                                        batch_size=batch_size, shard_size=shard_size, shard_dir=shard_dir,
                                        progress=bar)
                summary, lines = on_ray.summary(), _embed_lines(
                    on_ray, f", {on_ray.n_resumed} from {on_ray.shards_resumed} resumed shards, "
                            f"{on_ray.shards_written} shards on {on_ray.n_actors} Ray actors")
            else:
                from core.embed.run import embed_corpus
                local = embed_corpus(store, model=model, backend=backend, device=device,
                                     batch_size=batch_size, progress=bar)
                summary, lines = local.summary(), _embed_lines(local)
    except ShoalError as exc:
        fail(str(exc))
    if as_json:
        print_json(summary)
    else:
        for line in lines:
            console.print(line, highlight=False)

def map_cmd(ctx: typer.Context,
            clusters: int = typer.Option(0, "--clusters", min=0, help="Number of clusters (0 = from the "
                                         "corpus size); for hdbscan, the minimum cluster size."),
            model: str | None = typer.Option(None, "--model", help="Model key of the embeddings "
                                                "(default: the most recently used)."),
            method: str = typer.Option("kmeans", "--method", help="kmeans or hdbscan."),
            seed: int = typer.Option(42, "--seed", help="Seed for UMAP and k-means."),
            name: str | None = typer.Option(None, "--name", help="A name for this map."),
            as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Project the embeddings to 2D (UMAP), cluster them, name the clusters; store the map."""
    from core.maps.build import build_map, map_clusters
    store = store_from(ctx)
    try:
        with progress_bar("Building the map", enabled=not as_json) as bar:
            result = build_map(store, model=model, n_clusters=clusters or None, method=method, seed=seed,
                               name=name, progress=bar)
    except ShoalError as exc:
        fail(str(exc))
    cl = map_clusters(store, result.map_id)
    if as_json:
        out = result.summary()
        out["clusters"] = [{"cluster": int(r.cluster), "label": r.label, "size": int(r.size)}
                           for r in cl.itertuples()]
        print_json(out)
        return
    from rich.table import Table
    t = Table(title=f"map {result.map_id} ({result.name}): {result.n_points} points, model {result.model}")
    t.add_column("cluster", justify="right"); t.add_column("size", justify="right"); t.add_column("label")
    for r in cl.itertuples():
        t.add_row(str(r.cluster), str(r.size), r.label)
    console.print(t)
    if result.n_missing:
        console.print(f"{result.n_missing} snippets have no embedding under this model and are not on "
                      "the map: run `shoal embed` first.", highlight=False)

def select_command(ctx: typer.Context,
                   budget: int = typer.Option(..., "--budget", min=1, help="How many snippets to pick."),
                   name: str = typer.Option(..., "--name", help="Name of the stored selection."),
                   method: str = typer.Option("kcenter", "--method",
                                              help="kcenter (exact greedy), kcenter_fast ((1+eps)-relaxed greedy, "
                                              "eps=0.05), random or stratified."),
                   clusters: str | None = typer.Option(None, "--clusters", help="Only these clusters, e.g. 0,3,7."),
                   map_id: int | None = typer.Option(None, "--map", help="Map id for --clusters / stratified "
                                                        "(default: the latest map)."),
                   ids_file: Path | None = typer.Option(None, "--ids-file", help="Only these snippet ids "
                                                           "(one per line)."),
                   model: str | None = typer.Option(None, "--model", help="Model key of the embeddings."),
                   extend: str | None = typer.Option(None, "--extend", help="Start from this stored selection "
                                                        "(its items are kept and act as centres)."),
                   seed: int = typer.Option(0, "--seed", help="Seed for the first pick and the baselines."),
                   replace: bool = typer.Option(False, "--replace", help="Overwrite a selection with this name."),
                   baselines: bool = typer.Option(True, "--baselines/--no-baselines",
                                                  help="Also measure random and stratified picks of the same budget "
                                                  "(one pass over the pool each; exact k-center too when cheap) and "
                                                  "the spread of 5 random draws."),
                   as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Pick the most diverse snippets (k-center greedy) or a baseline sample; store it by name."""
    from core.select.run import SPREAD_WORK
    from core.select.run import select as run_select
    store = store_from(ctx)
    wanted = _parse_clusters(clusters)
    if wanted and map_id is None:
        from core.maps.build import get_map
        try:
            map_id = int(get_map(store)["id"])
        except ShoalError as exc:
            fail(str(exc))
    try:
        with progress_bar("Selecting", enabled=not as_json) as bar:
            result = run_select(store, name=name, budget=budget, method=method, model=model, map_id=map_id,
                                clusters=wanted, ids=_read_ids(ids_file), extend=extend, seed=seed,
                                replace=replace, baselines=baselines, progress=bar)
    except ShoalError as exc:
        fail(str(exc))
    if as_json:
        print_json(result.summary())
        return
    console.print(f"selection [bold]{result.name}[/] (id {result.id}): {result.n_items} snippets by "
                  f"{result.method} from {result.n_candidates} candidates in {result.seconds:.2f} s",
                  highlight=False)
    from rich.table import Table
    t = Table(title="coverage: distance from each candidate to its nearest pick (lower is better)")
    t.add_column("method"); t.add_column("mean", justify="right"); t.add_column("max", justify="right")
    t.add_row(result.method, f"{result.coverage_mean:.4f}", f"{result.coverage_max:.4f}")
    for m, c in result.baselines.items():
        t.add_row(f"{m} (baseline)", f"{c['coverage_mean']:.4f}", f"{c['coverage_max']:.4f}")
    console.print(t)
    if result.spread:
        _print_spread(result.spread)
    elif result.baselines:
        console.print("The spread of random draws was not measured (the pool times the budget is above "
                      f"{SPREAD_WORK:,}); the Map page measures it on request.", highlight=False)


def _print_spread(spread: dict) -> None:
    """The spread of random draws stored with the selection: the Map page's table."""
    from rich.table import Table

    from core.select.spread import gain_verdict, spread_rows
    t = Table(title=f"spread over {spread['draws']} random draws of the same budget "
                    f"({spread['budget']:,} of {spread['candidates']:,}): mean (min–max)")
    t.add_column("method"); t.add_column("max distance", justify="right"); t.add_column("mean distance", justify="right")
    for row in spread_rows(spread):
        t.add_row(row["method"], row["max distance"], row["mean distance"])
    console.print(t)
    console.print(gain_verdict(spread), highlight=False)


def warmup() -> None:
    """Prepare this machine once (run by `make run`'s set-up): export the embedding model for the fast
    backend, measure which backend `auto` uses, distil the static table, and compile UMAP's kernels,
    so the first map does not."""
    from core.maps.warmup import warm_up
    r = warm_up()
    typer.echo(f"Backend auto: {r['reason']} ({r['backend_seconds']} s); static table distilled "
               f"({r['static_seconds']} s); UMAP kernels compiled ({r['umap_seconds']} s).", err=True)


def add_commands(app: typer.Typer) -> None:
    app.command()(warmup)
    app.command()(embed)
    app.command("map")(map_cmd)
    app.command("select")(select_command)
