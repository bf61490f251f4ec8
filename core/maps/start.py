"""Embed + map as a background task (the Map page's build): the same core functions the CLI runs,
in a worker thread of core.background, so the page that started it can be left and the work goes on.
"""
from __future__ import annotations

from core.background import Task, TaskContext, TaskKind, start_task
from core.store import Store
from core.team import members as team

EMBED_MAP = TaskKind("embed_map", "An embed + map run",
                     cancelled="Cancelled. Embeddings finished so far are kept; running again continues from there.")
EMBEDDING, MAPPING = "embedding", "map"     # the stages of an embed + map run
FIRST_LOOK, THE_REST = "first look", "the rest"   # the notes of a two-pass run's stages
FIRST_MAP_SNIPPETS = 1_500  # a first map of a model comes from this many snippets when many more wait


def first_look_ids(store: Store, n: int, key: str) -> list[str]:
    """A seeded, spread-out sample of `n` of the snippets `key` has not embedded yet (the same on every
    run): on a mapped project the first look shows the new code beside what was mapped before."""
    from core.embed.run import missing_hashes, snippet_frame
    frame = snippet_frame(store)
    todo = set(frame["snippet_id"][frame["content_hash"].isin(
        missing_hashes(store, key, frame["content_hash"].unique().tolist()))])
    order = [r["id"] for r in store.rows("SELECT id FROM snippets ORDER BY hash(id), id")]
    return [i for i in order if i in todo][:n]


def needs_first_look(store: Store, key: str, first_map_at: int) -> bool:
    """True when embedding what is left would take much longer than a sample: a model's first map of a
    big corpus, or a big corpus added to a mapped project (its first look: the mapped snippets and a
    sample of the new ones)."""
    from core.embed.run import pending_texts
    if not first_map_at:
        return False
    return len(pending_texts(store, key).todo) > 2 * first_map_at


def start_embed_and_map(store: Store, model: str | None, backend: str, batch_size: int, n_clusters: int,
                        method: str, first_map_at: int | None = None, *, actor: str | None = None) -> Task:
    """Embed what is not cached yet, then build a map of every embedded snippet.

    A model's first map of a big corpus comes in two passes: `first_map_at` (FIRST_MAP_SNIPPETS)
    sampled snippets are embedded and mapped first (a map in a minute or two on a CPU), then the
    rest, then the full map. 0 makes one pass."""
    team.authorize(store, actor, "map", target=model or "default model")
    from core.embed.model import model_key
    from core.embed.run import corpus_choice, embed_corpus
    from core.maps.build import build_map

    def embed_and_map(ctx: TaskContext, ids: list[str] | None, name: str | None, note: str) -> tuple:
        def progress(done: int, total: int | None, text: str = "") -> None:
            ctx.progress(done, total, f"{note} · {text}" if note else text)

        ctx.stage(EMBEDDING, note)
        r = embed_corpus(store, model=model, backend=backend, batch_size=batch_size, snippet_ids=ids,
                         progress=progress, cancel=ctx.cancel)
        ctx.stage(MAPPING, note)
        m = build_map(store, model=r.model_key, n_clusters=n_clusters or None, method=method, name=name,
                      progress=progress, cancel=ctx.cancel)
        return r, m

    sample = FIRST_MAP_SNIPPETS if first_map_at is None else first_map_at

    def work(ctx: TaskContext) -> dict:
        ctx.stage(EMBEDDING, "choosing the backend")       # measured once per machine, then remembered
        chosen = corpus_choice(store, model, backend)[0].backend   # static embeds everything in seconds
        key = model_key(model, chosen)
        first = None
        if chosen != "static" and needs_first_look(store, key, sample):
            mapped = store.scalar("SELECT count(*) FROM maps WHERE model = ?", [key])
            _, first = embed_and_map(ctx, first_look_ids(store, sample, key),
                                     f"first look ({sample:,} sampled {'new ' if mapped else ''}snippets)",
                                     FIRST_LOOK)
        r, m = embed_and_map(ctx, None, None, THE_REST if first else "")
        before = (f"First look: map {first.map_id} of {first.n_points} sampled snippets, then the rest. "
                  if first else "")
        return {"map_id": m.map_id, "first_look_map_id": first.map_id if first else None,
                "summary": f"{before}Embedded {r.n_embedded} snippets ({r.n_cached} were cached) with {r.reason}; "
                           f"map {m.map_id}: {m.n_points} points in {m.n_clusters} clusters."}

    return start_task(store, EMBED_MAP, work, label=f"{model or 'default model'} · {method}",
                      describe=lambda result: result)
