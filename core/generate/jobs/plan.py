"""Planning a job: which items it runs (idempotent keys, the task mix, target languages) and what
it would cost. Nothing here writes to the database."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from core.errors import ShoalError
from core.generate.items import (
    PoolConfig,
    build_generator_messages,
    build_judge_messages,
    current_prompt_version,
    few_shot,
    get_prompt_version,
)
from core.store import Store
from core.tasks import TASKS, get_task

DEFAULT_TARGETS = ["java", "python", "go", "javascript", "rust", "cpp"]


def _h(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:32]


def item_key(snippet_id: str, task: str, target: str | None, prompt_version_id: int,
             generator_model: str, judge_model: str) -> str:
    return _h(snippet_id, task, target, prompt_version_id, generator_model, judge_model)


def assign_tasks(snippet_ids: Sequence[str], mix: dict[str, float], seed: int = 0) -> list[str]:
    """Deterministic task per snippet with counts matching the shares (largest remainder), spread
    evenly over the snippets by smooth weighted round robin in hash order (so a prefix keeps the mix)."""
    unknown = [t for t in mix if t not in TASKS]
    if unknown:
        raise ShoalError(f"Unknown task(s) in the mix: {', '.join(unknown)}")
    total_w = sum(max(0.0, w) for w in mix.values())
    if total_w <= 0:
        raise ShoalError("The task mix needs at least one positive share.")
    n = len(snippet_ids)
    exact = {t: n * max(0.0, w) / total_w for t, w in mix.items()}
    quota = {t: int(v) for t, v in exact.items()}
    for t in sorted(exact, key=lambda t: (-(exact[t] - quota[t]), t))[: n - sum(quota.values())]:
        quota[t] += 1
    order = sorted(range(n), key=lambda i: _h(seed, snippet_ids[i]))
    current = {t: 0 for t in quota}
    left = dict(quota)
    out = [""] * n
    for i in order:
        for t in current:
            if left[t] > 0:
                current[t] += quota[t]
        t = max((t for t in current if left[t] > 0), key=lambda t: (current[t], quota[t], t))
        current[t] -= n
        left[t] -= 1
        out[i] = t
    return out


def choose_target(source_language: str, targets: Sequence[str], key: str) -> str:
    """A target language different from the source, picked deterministically from `targets`."""
    src = (source_language or "").lower()
    options = [t for t in targets if t.lower() != src] or [t for t in DEFAULT_TARGETS if t != src]
    return options[int(_h(key), 16) % len(options)]


@dataclass
class JobPlan:
    items: list[dict]
    unknown_ids: list[str]
    prompt_versions: dict[str, int]
    skipped_kind: int = 0

    @property
    def n_items(self) -> int:
        return len(self.items)

    def task_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items:
            out[it["task"]] = out.get(it["task"], 0) + 1
        return out


def plan_items(store: Store, snippet_ids: Sequence[str], *, task: str | None = None,
               mix: dict[str, float] | None = None, target_languages: Sequence[str] | None = None,
               generator_model: str = "", judge_model: str = "", seeds_only: bool = False,
               mix_seed: int = 0) -> JobPlan:
    """The items a job would run (not stored). Exactly one of `task` / `mix`."""
    if (task is None) == (mix is None):
        raise ShoalError("Choose either one task or a task mix.")
    if task is not None:
        get_task(task)
    ids = list(dict.fromkeys(snippet_ids))
    if not ids:
        raise ShoalError("No snippets given: pick a selection or a file of snippet ids.")
    found: dict[str, dict] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        for r in store.rows("SELECT id, language, kind FROM snippets WHERE list_contains(?, id)", [chunk]):
            found[r["id"]] = r
    unknown = [i for i in ids if i not in found]
    ids = [i for i in ids if i in found]
    skipped_kind = 0
    if seeds_only:
        before = len(ids)
        ids = [i for i in ids if found[i]["kind"] == "seed"]
        skipped_kind = before - len(ids)
    if not ids:
        raise ShoalError("None of the given snippet ids is in the database"
                         + (" (or none is an OSS-Instruct seed)" if seeds_only else "") + ".")
    if mix is not None:
        tasks = assign_tasks(ids, mix, mix_seed)
    else:
        assert task is not None   # exactly one of the two (checked above)
        tasks = [task] * len(ids)
    targets = list(target_languages or [])
    versions = {t: current_prompt_version(store, t).id for t in sorted(set(tasks))}
    items = []
    for sid, t in zip(ids, tasks):
        target = None
        if get_task(t).needs_target_language:
            target = choose_target(found[sid]["language"], targets or DEFAULT_TARGETS, f"{sid}:{mix_seed}")
        items.append({"snippet_id": sid, "task": t, "target_language": target,
                      "prompt_version_id": versions[t], "generator_model": generator_model,
                      "judge_model": judge_model,
                      "item_key": item_key(sid, t, target, versions[t], generator_model, judge_model)})
    return JobPlan(items, unknown, versions, skipped_kind)


def estimate_job_cost(store: Store, plan: JobPlan, profiles: dict, prices: dict | None = None) -> dict:
    """Calls, tokens and cost before running: prompt length from the real templates (≈4 chars per
    token), completions at their max_tokens (an upper bound)."""
    from core.llm import estimate_cost as price  # imports openai: only when an estimate is asked for
    sample = plan.items[: min(20, plan.n_items)]
    codes = {r["id"]: r for r in store.rows("SELECT id, code, language FROM snippets WHERE list_contains(?, id)",
                                           [[it["snippet_id"] for it in sample]])}
    gen_chars = judge_chars = 0
    for it in sample:
        pv = get_prompt_version(store, it["prompt_version_id"])
        spec = get_task(it["task"])
        good, bad = few_shot(pv.content, None, PoolConfig(), it["item_key"])
        sn = codes[it["snippet_id"]]
        gen_chars += sum(len(m["content"]) for m in
                         build_generator_messages(spec, pv.content, sn, it["target_language"], good, bad))
        judge_chars += sum(len(m["content"]) for m in
                           build_judge_messages(spec, pv.content, sn, it["target_language"], good[0] if good else {}))
    n = plan.n_items
    k = max(1, len(sample))
    gen, judge = profiles["generator"], profiles["judge"]
    gen_pt = int(gen_chars / k / 4) * n
    gen_ct = int(gen.max_tokens) * n
    judge_pt = int(judge_chars / k / 4 + gen.max_tokens) * n
    judge_ct = int(judge.max_tokens) * n
    cost = price(gen.model, gen_pt, gen_ct, prices) + price(judge.model, judge_pt, judge_ct, prices)
    return {"items": n, "calls": 2 * n, "prompt_tokens": gen_pt + judge_pt,
            "completion_tokens": gen_ct + judge_ct, "cost_usd": round(cost, 4)}
