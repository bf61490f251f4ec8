"""`shoal embed --engine ray [--address ADDR]`: embedding on a Ray cluster (or a local Ray instance).

Ray Data runs the model: the texts to embed are one input block per shard, mapped by
`map_batches` over an actor pool (`ActorPoolStrategy`): one actor per GPU (``num_gpus=1``,
PyTorch float16) or per CPU worker (``num_cpus=cpus_per_actor``), each loading the model once.
The vectors stream back to the head, this process, which is the only writer of the DuckDB file
(and of the shard folder, so workers need no shared storage): each shard, once all of its rows
have arrived, is written as a Parquet file (core.embed.imported's format, atomically) and imported
at once, and recorded in `embedding_shards`.

Resume after a crash (of the head, or of the cluster): shard files in the folder that were
written but not imported are imported first; then only the texts still without a vector are
sent to the cluster, as new shards. An imported shard is never redone.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import MissingDependency, ShoalError
from core.progress import ProgressFn, check_cancel, report
from core.store import Store

SHARD_SIZE = 1024
SHARD_RE = re.compile(r"^shard-(\d{6})\.parquet$")


class RayEmbedder:
    """The Ray Data actor: loads the model once, then embeds one batch (a shard) per call."""

    def __init__(self, model: str | None, backend: str, device: str, batch_size: int, threads: int):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ["SHOAL_ONNX_THREADS"] = str(threads)
        import torch
        torch.set_num_threads(max(1, threads))
        from core.embed.run import load_model
        self.model = load_model(model, backend, device)
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        from core.embed.run import encode
        texts = [str(t) for t in batch["text"]]
        vectors = encode(self.model, texts, self.batch_size).astype(np.float32)
        return {"shard": np.asarray(batch["shard"]), "content_hash": np.asarray(batch["content_hash"]),
                "vector": vectors}


@dataclass
class RayPlan:
    n_actors: int
    num_cpus: float
    num_gpus: float
    device: str


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependency("The Ray engine", "shoal[ray]  (or: ray[data])") from None
    return ray


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the cluster at `address` (or start a local instance); True if this call started Ray."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
    except Exception as exc:  # noqa: BLE001 - connection failures become a user message
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ShoalError(f"Cannot start or join {where}: {type(exc).__name__}: {str(exc)[:300]}") from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return True


def plan_actors(device: str, cpus_per_actor: int) -> RayPlan:
    """One actor per GPU of the cluster, or one per `cpus_per_actor` CPUs."""
    ray = _import_ray()
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    wanted = (device or "auto").lower()
    if wanted.startswith("cuda") and gpus == 0:
        raise ShoalError(f"--device {device}: the Ray cluster has no GPU "
                         f"(resources: {int(res.get('CPU', 0))} CPUs). Use --device cpu or auto.")
    if gpus and wanted != "cpu":
        return RayPlan(gpus, 1, 1, "cuda")
    cpus = int(res.get("CPU", 1))
    return RayPlan(max(1, cpus // max(1, cpus_per_actor)), cpus_per_actor, 0, "cpu")


def shard_folder(store: Store, key: str, folder: str | Path | None) -> Path:
    base = Path(folder) if folder else Path(f"{Path(store.path).with_suffix('')}.shards")
    out = (base / re.sub(r"[^A-Za-z0-9._+-]+", "_", key)).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _imported_files(store: Store, folder: Path) -> set[str]:
    return {r[0] for r in store.execute("SELECT shard_file FROM embedding_shards WHERE folder = ?",
                                        [str(folder)]).fetchall()}


def _record_shard(store: Store, folder: Path, name: str, key: str, n_rows: int, n_imported: int) -> None:
    store.write(lambda cur: cur.execute(
        "INSERT OR REPLACE INTO embedding_shards(folder, shard_file, model, engine, n_rows, n_imported) "
        "VALUES (?, ?, ?, 'ray', ?, ?)", [str(folder), name, key, n_rows, n_imported]))


@dataclass
class RayEmbedResult:
    model_key: str
    backend: str
    device: str
    reason: str
    folder: str
    n_actors: int
    n_snippets: int
    n_unique_texts: int
    n_cached: int              # had a vector before this run (shards imported earlier included)
    n_embedded: int            # computed on the cluster in this run
    n_resumed: int             # vectors imported from shards a crashed run had written
    shards_resumed: int
    shards_written: int
    seconds: float
    engine: str = "ray"

    def summary(self) -> dict:
        from dataclasses import asdict
        return asdict(self)


def import_leftover_shards(store: Store, importer, folder: Path) -> tuple[int, int]:
    """Import shard files written by an earlier run but never imported; (shards, vectors added)."""
    done = _imported_files(store, folder)
    shards = added = 0
    for path in sorted(folder.iterdir()):
        if not SHARD_RE.match(path.name) or path.name in done:
            continue
        r = importer.import_file(path)
        _record_shard(store, folder, path.name, importer.key, r.n_rows, r.n_imported)
        shards, added = shards + 1, added + r.n_imported
    return shards, added


def _next_shard_number(folder: Path) -> int:
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := SHARD_RE.match(p.name))]
    return max(numbers, default=-1) + 1


def _dataset(todo: pd.DataFrame, first: int, shard_size: int):
    """One Ray Data block per shard: columns shard, content_hash, text."""
    import ray
    blocks = []
    for i, s in enumerate(range(0, len(todo), shard_size)):
        part = todo.iloc[s:s + shard_size][["content_hash", "text"]].copy()
        part.insert(0, "shard", first + i)
        blocks.append(part.reset_index(drop=True))
    return ray.data.from_pandas(blocks), {first + i: len(b) for i, b in enumerate(blocks)}


def _run_shards(store: Store, importer, folder: Path, todo: pd.DataFrame, choice, plan: RayPlan,
                model: str | None, batch_size: int, shard_size: int, progress: ProgressFn | None,
                cancel: threading.Event | None) -> tuple[int, int]:
    """Embed `todo` on the cluster; write and import each shard as soon as all its rows are back.

    Returns (shards written, vectors added)."""
    import ray

    from core.embed.imported import write_vectors_parquet
    ds, sizes = _dataset(todo, _next_shard_number(folder), shard_size)
    mapped = ds.map_batches(
        RayEmbedder, batch_size=shard_size, batch_format="numpy",
        fn_constructor_kwargs=dict(model=model, backend=choice.backend, device=plan.device,
                                   batch_size=batch_size, threads=int(max(1, plan.num_cpus))),
        compute=ray.data.ActorPoolStrategy(size=min(plan.n_actors, len(sizes))),
        num_cpus=plan.num_cpus, num_gpus=plan.num_gpus)
    pending: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    got: dict[int, int] = {}
    done = written = added = 0
    started = time.perf_counter()
    for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
        check_cancel(cancel)
        shards = np.asarray(batch["shard"])
        for shard in np.unique(shards):
            rows = shards == shard
            pending.setdefault(int(shard), []).append((np.asarray(batch["content_hash"])[rows],
                                                       np.asarray(batch["vector"], dtype=np.float32)[rows]))
            got[int(shard)] = got.get(int(shard), 0) + int(rows.sum())
            if got[int(shard)] < sizes[int(shard)]:
                continue
            parts = pending.pop(int(shard))
            hashes = np.concatenate([h for h, _ in parts]).tolist()
            path = write_vectors_parquet(folder / f"shard-{int(shard):06d}.parquet",
                                         np.concatenate([v for _, v in parts]), importer.key,
                                         content_hashes=hashes)
            r = importer.import_file(path)
            _record_shard(store, folder, path.name, importer.key, r.n_rows, r.n_imported)
            done, written, added = done + r.n_rows, written + 1, added + r.n_imported
            rate = done / max(time.perf_counter() - started, 1e-9)
            report(progress, done, len(todo), f"shard {int(shard)} imported · {rate:.0f} snippets/s")
    if pending:
        raise ShoalError(f"The Ray run ended with shards incomplete: {sorted(pending)}; run it again to resume.")
    return written, added


def embed_with_ray(store: Store, model: str | None = None, backend: str = "auto", device: str = "auto",
                   address: str | None = None, batch_size: int = 32, shard_size: int = SHARD_SIZE,
                   shard_dir: str | Path | None = None, cpus_per_actor: int = 1, num_cpus: int | None = None,
                   progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> RayEmbedResult:
    """Embed every snippet without a vector for this model on Ray, resuming by shard (module docstring)."""
    from core.embed.choice import BackendChoice, choose_backend
    from core.embed.imported import Importer
    from core.embed.run import model_key, pending_texts
    if batch_size < 1 or shard_size < 1:
        raise ShoalError("The batch size and the shard size must be at least 1.")
    t0 = time.perf_counter()
    started_ray = connect(address, num_cpus)
    try:
        plan = plan_actors(device, cpus_per_actor)
        if plan.device == "cuda":
            if backend == "fast":
                raise ShoalError("The fast backend (ONNX int8) runs on the CPU: use --backend torch or auto "
                                 "on GPU workers, or --device cpu.")
            choice = BackendChoice(backend, "torch", "cuda", f"torch float16 on the cluster's {plan.n_actors} GPU(s)")
        else:  # the head measures (once per model) what its CPU workers should run
            choice = choose_backend(model, backend, "cpu")
        key = model_key(model, choice.backend)
        folder = shard_folder(store, key, shard_dir)
        importer = Importer(store, key)
        shards_resumed, n_resumed = import_leftover_shards(store, importer, folder)
        plan_texts = pending_texts(store, key)
        todo = plan_texts.todo
        report(progress, 0, len(todo), f"{shards_resumed} shards resumed, {len(todo)} to embed on "
                                       f"{plan.n_actors} Ray actor(s)")
        written, added = _run_shards(store, importer, folder, todo, choice, plan, model, batch_size,
                                     shard_size, progress, cancel) if len(todo) else (0, 0)
        store.checkpoint()
        return RayEmbedResult(key, choice.backend, plan.device, choice.reason, str(folder), plan.n_actors,
                              plan_texts.n_snippets, plan_texts.n_unique, plan_texts.n_unique - len(todo),
                              added, n_resumed, shards_resumed, written, time.perf_counter() - t0)
    finally:
        if started_ray:
            _import_ray().shutdown()
