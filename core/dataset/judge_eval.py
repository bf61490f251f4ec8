"""Judge calibration: hold a judge prompt version and model against the verdicts people gave.

The gold set is every example a person accepted or rejected (`review_effective`, decided by a
human), judged as the person saw it (their edit, if any); `sample` draws a seeded subset of it, and
`draw_gold_candidates` proposes undecided examples for reviewers to decide when the set is small.

`evaluate_judge` runs the judge part of a prompt version (rules, judge template, judge system
prompt) with a judge model over the gold set through the normal client (cached, retried, logged
in `llm_calls`, paced like every other call) and the judge path of core.generate.items, stores the run
(`judge_evals`, `judge_eval_items`, migration 011) and reports accuracy, precision and recall of
"accept", and Cohen's kappa (core.review's one definition) overall, per task and per rule, with
the disagreeing examples. `compare_evals` puts runs side by side; `use_judge_version` makes a
version's judge part the one new jobs use (a new current prompt version, see core.generate.items).
"""
from __future__ import annotations

import asyncio
import json
import random
import threading
from dataclasses import dataclass
from typing import Iterable

from core.background import TaskKind
from core.dataset.judge_metrics import binary_stats, metrics
from core.errors import ShoalError
from core.generate.items import PromptVersion, content_hash, current_prompt_version, get_prompt_version, judge_example
from core.llm.concurrency import DEFAULT_CONCURRENCY
from core.progress import Cancelled, ProgressFn, check_cancel, report
from core.store import Store, returned
from core.tasks import get_task
from core.team import members as team

# the parts of a task's content that make up its judge (the rest belongs to the generator)
JUDGE_PARTS = ("rules", "judge_system", "judge_template")
JUDGE_EVAL = TaskKind("judge_eval", "A judge evaluation",
                      cancelled="Cancelled: the judge calls made so far are cached, so running again resumes cheaply.")
MAX_DISAGREEMENTS = 500


@dataclass(frozen=True)
class GoldExample:
    generation_id: int
    task: str
    human_verdict: str           # accepted | rejected
    fields: dict
    snippet: dict                # id, language, code
    target_language: str | None


# --------------------------------------------------------------------------- the gold set

_GOLD_SQL = """
SELECT e.generation_id, e.task, e.human_verdict, e.effective_fields, g.target_language,
       s.id AS snippet_id, s.language, s.code
FROM review_effective e
JOIN generations g ON g.id = e.generation_id
JOIN snippets s ON s.id = e.snippet_id
WHERE e.decided_by = 'human' AND e.human_verdict IN ('accepted', 'rejected')
  AND coalesce(g.parse_ok, TRUE) AND e.effective_fields IS NOT NULL {extra}
ORDER BY e.generation_id"""


def gold_set(store: Store, tasks: Iterable[str] | None = None, sample: int | None = None,
             seed: int = 0) -> list[GoldExample]:
    """Every example a person accepted or rejected (optionally a seeded sample of `sample`)."""
    tasks = sorted(set(tasks)) if tasks else None
    extra, params = ("AND e.task IN (SELECT unnest(?))", [tasks]) if tasks else ("", [])
    out = []
    for r in store.rows(_GOLD_SQL.format(extra=extra), params):
        fields = r["effective_fields"]
        fields = json.loads(fields) if isinstance(fields, str) else fields
        if not isinstance(fields, dict):
            continue
        out.append(GoldExample(int(r["generation_id"]), r["task"], r["human_verdict"], fields,
                               {"id": r["snippet_id"], "language": r["language"], "code": r["code"] or ""},
                               r["target_language"]))
    if sample is not None and sample < len(out):
        out = sorted(random.Random(seed).sample(out, sample), key=lambda g: g.generation_id)
    return out


def gold_counts(store: Store) -> dict[str, dict[str, int]]:
    """task -> {accepted, rejected}: the size of the gold set (what `gold_set` would load)."""
    out: dict[str, dict[str, int]] = {}
    for r in store.rows("""SELECT e.task, e.human_verdict, count(*) AS n FROM review_effective e
                           JOIN generations g ON g.id = e.generation_id JOIN snippets s ON s.id = e.snippet_id
                           WHERE e.decided_by = 'human' AND e.human_verdict IN ('accepted', 'rejected')
                             AND coalesce(g.parse_ok, TRUE) AND e.effective_fields IS NOT NULL
                           GROUP BY ALL ORDER BY 1, 2"""):
        out.setdefault(r["task"], {"accepted": 0, "rejected": 0})[r["human_verdict"]] = int(r["n"])
    return out


def draw_gold_candidates(store: Store, n: int, seed: int = 0, tasks: Iterable[str] | None = None) -> list[int]:
    """Undecided, judged examples for reviewers to decide, spread over tasks and over the judge's
    own yes and no (round robin over those strata, seeded), so the gold set gets both kinds."""
    tasks = sorted(set(tasks)) if tasks else None
    extra, params = ("AND task IN (SELECT unnest(?))", [tasks]) if tasks else ("", [])
    rows = store.rows(f"""SELECT generation_id, task, judge_overall FROM review_effective
                          WHERE decided_by = 'judge' {extra} ORDER BY generation_id""", params)
    rng = random.Random(seed)
    strata: dict[tuple, list[int]] = {}
    for r in rows:
        strata.setdefault((r["task"], bool(r["judge_overall"])), []).append(int(r["generation_id"]))
    queues = [rng.sample(v, len(v)) for _, v in sorted(strata.items())]
    picked: list[int] = []
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop())
    return sorted(picked)


# --------------------------------------------------------------------------- versions

def resolve_versions(store: Store, version: int | str | None, tasks: Iterable[str]) -> dict[str, PromptVersion]:
    """task -> the prompt version to evaluate: number `version` of that task, or its current one
    (None / "current"). A task without that version number is left out."""
    out: dict[str, PromptVersion] = {}
    for task in sorted(set(tasks)):
        if version is None or str(version).strip().lower() == "current":
            out[task] = current_prompt_version(store, task)
            continue
        row = store.one("SELECT id FROM prompt_versions WHERE task = ? AND version = ?", [task, int(version)])
        if row is not None:
            out[task] = get_prompt_version(store, int(row["id"]))
    return out


def use_judge_version(store: Store, version: int, tasks: Iterable[str] | None = None,
                      actor: str | None = None) -> dict[str, dict]:
    """Make version `version`'s judge (rules, judge template and system prompt) the one new jobs use:
    for each task that has that version, the current content with those parts replaced becomes a new,
    current prompt version (jobs plan with each task's latest version). A task whose current version
    already has that judge is left as it is."""
    team.authorize(store, actor, "prompts", target=f"judge v{version}", audit_allowed=False)   # audited below
    tasks = sorted(set(tasks)) if tasks else [r["task"] for r in store.rows(
        "SELECT DISTINCT task FROM prompt_versions WHERE version = ? ORDER BY task", [int(version)])]
    chosen = resolve_versions(store, version, tasks)
    if not chosen:
        raise ShoalError(f"No task has a prompt version {version}.")
    out: dict[str, dict] = {}
    for task, source in chosen.items():
        current = current_prompt_version(store, task)
        content = {**current.content, **{k: source.content[k] for k in JUDGE_PARTS if k in source.content}}
        if content_hash(content) == current.content_hash:
            out[task] = {"version": current.version, "id": current.id, "changed": False}
            continue
        get_task(task).validate_content(content)
        new = _insert_current(store, task, content, f"judge from v{source.version}", actor)
        out[task] = {"version": new.version, "id": new.id, "changed": True, "judge_from": source.version}
    return out


def _insert_current(store: Store, task: str, content: dict, note: str, actor: str | None) -> PromptVersion:
    """A new latest version row (even when an older version has the same content: the latest is current)."""
    text, h = json.dumps(content, ensure_ascii=False), content_hash(content)

    def write(cur) -> int:
        version = int(cur.execute("SELECT coalesce(max(version), 0) + 1 FROM prompt_versions WHERE task = ?",
                                  [task]).fetchone()[0])
        new_id = cur.execute("INSERT INTO prompt_versions(task, version, content, content_hash, note) "
                             "VALUES (?, ?, ?, ?, ?) RETURNING id", [task, version, text, h, note]).fetchone()[0]
        store.audit("judge_version_used", "prompt_versions", new_id, after={"task": task, "version": version,
                    "note": note}, actor=actor)
        return int(new_id)

    return get_prompt_version(store, store.write(write))


# --------------------------------------------------------------------------- running the judge

def judge_profile(model: str | None = None, start_local: bool = False, store: Store | None = None):
    """The configured judge profile, with `model` instead of its own if given: the judge the newest job of
    `store` used (the Generate page's Models panel choice, a judge that follows the generator included),
    else the environment's (and secrets'); `start_local` starts the embedded local model where it is the one."""
    from core.generate.jobs.start import last_job_profiles
    from core.llm.profiles import load_profiles, local_profile
    last = last_job_profiles(store) if store is not None else None
    if last is None:
        profile = load_profiles(start_local=start_local)["judge"]
    elif last["judge"].source == "local":
        profile = local_profile("judge", start=start_local, model=last["judge"].model or None)
    else:
        profile = last["judge"]
    if not profile.base_url:
        raise ShoalError("No judge endpoint is configured: set SHOAL_JUDGE_BASE_URL (or start the local "
                         "model with `shoal llm serve`).")
    return profile.model_copy(update={"model": model}) if model else profile


async def _judge_all(client, gold: list[GoldExample], versions: dict[str, PromptVersion],
                     progress: ProgressFn | None, cancel: threading.Event | None = None) -> list[dict]:
    done = [0]

    async def one(g: GoldExample) -> dict:
        check_cancel(cancel)
        pv = versions[g.task]
        outcome = await judge_example(client, get_task(g.task), pv.content, g.snippet, g.target_language, g.fields)
        done[0] += 1
        report(progress, done[0], len(gold), f"#{g.generation_id}")
        call = outcome.call
        return {"generation_id": g.generation_id, "task": g.task, "prompt_version_id": pv.id,
                "human_verdict": g.human_verdict, "judge_overall": outcome.overall if outcome.parse_ok else None,
                "rules": outcome.rules, "analysis": outcome.analysis, "parse_ok": outcome.parse_ok,
                "error": outcome.error, "llm_call_id": outcome.call_id,
                "calls": 0 if call.cached else int(call.attempts or 0),
                "cost_usd": 0.0 if call.cached else float(call.cost_usd or 0.0)}

    try:
        return list(await asyncio.gather(*(one(g) for g in gold)))
    finally:
        await client.aclose()


def evaluate_judge(store: Store, prompt_version: int | str | None, model: str | None = None, *,
                   tasks: Iterable[str] | None = None, sample: int | None = None, seed: int = 0,
                   profile=None, concurrency: int = DEFAULT_CONCURRENCY, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None) -> dict:
    """Run prompt version `prompt_version` (a version number, or None / "current") of each task's
    judge with `model` (default: the judge profile's) over the gold set; store the run; return its
    report (see `eval_report`)."""
    from core.llm import LLMClient, run_sync

    gold = gold_set(store, tasks, sample, seed)
    if not gold:
        raise ShoalError("The gold set is empty: accept or reject some examples on the Review page first.")
    versions = resolve_versions(store, prompt_version, {g.task for g in gold})
    skipped = sorted({g.task for g in gold} - set(versions))
    gold = [g for g in gold if g.task in versions]
    if not gold:
        raise ShoalError(f"No task of the gold set has a prompt version {prompt_version}.")
    profile = profile or judge_profile(model, store=store)
    if model:
        profile = profile.model_copy(update={"model": model})
    client = LLMClient(store, profile, max_concurrency=concurrency)
    number = None if prompt_version is None or str(prompt_version).lower() == "current" else int(prompt_version)
    params = {"tasks": sorted(versions), "skipped_tasks": skipped, "sample": sample, "seed": seed}

    def insert_eval(cur) -> int:
        cur.execute("INSERT INTO judge_evals(version, prompt_version_ids, judge_model, base_url, params, n_gold) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    [number, json.dumps({t: pv.id for t, pv in versions.items()}), profile.model, profile.base_url,
                     json.dumps(params), len(gold)])
        return int(returned(cur))
    eval_id = store.write(insert_eval)
    try:
        items = run_sync(_judge_all(client, gold, versions, progress, cancel))
    except BaseException as exc:
        message = str(exc)[:500] or type(exc).__name__
        status = "cancelled" if isinstance(exc, Cancelled) else "failed"
        store.write(lambda cur: cur.execute("UPDATE judge_evals SET status = ?, error = ?, "
                                            "finished_at = current_timestamp WHERE id = ?",
                                            [status, message, eval_id]))
        raise
    finally:
        client.close()
    _store_items(store, int(eval_id), items, client.model)
    return eval_report(store, int(eval_id))


def _store_items(store: Store, eval_id: int, items: list[dict], model: str) -> None:
    rows = [[eval_id, it["generation_id"], it["task"], it["prompt_version_id"], it["human_verdict"],
             it["judge_overall"], None if it["rules"] is None else json.dumps(it["rules"]), it["analysis"],
             it["parse_ok"], it["error"], it["llm_call_id"]] for it in items]
    summary = metrics(items)

    def write(cur) -> None:
        cur.executemany("INSERT INTO judge_eval_items(eval_id, generation_id, task, prompt_version_id, "
                        "human_verdict, judge_overall, rules, analysis, parse_ok, error, llm_call_id) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        cur.execute("UPDATE judge_evals SET status = 'done', metrics = ?, judge_model = ?, calls = ?, cost_usd = ?, "
                    "finished_at = current_timestamp WHERE id = ?",
                    [json.dumps(summary), model, sum(it["calls"] for it in items),
                     round(sum(it["cost_usd"] for it in items), 6), eval_id])

    store.write(write)


# --------------------------------------------------------------------------- stored runs

def eval_report(store: Store, eval_id: int) -> dict:
    """A stored run: what was evaluated, its figures, and the examples where judge and human disagree."""
    run = store.one("SELECT * FROM judge_evals WHERE id = ?", [eval_id])
    if run is None:
        raise ShoalError(f"Judge evaluation {eval_id} does not exist.")
    for k in ("prompt_version_ids", "params", "metrics"):
        run[k] = json.loads(run[k]) if isinstance(run[k], str) else run[k]
    rows = store.rows("""SELECT generation_id, task, human_verdict, judge_overall, rules, analysis, error
                         FROM judge_eval_items WHERE eval_id = ?
                           AND (judge_overall IS NULL OR judge_overall <> (human_verdict = 'accepted'))
                         ORDER BY generation_id LIMIT ?""", [eval_id, MAX_DISAGREEMENTS])
    disagreements = []
    for r in rows:
        rules = json.loads(r["rules"]) if r["rules"] else []
        disagreements.append({
            "generation_id": int(r["generation_id"]), "task": r["task"], "human": r["human_verdict"],
            "judge": None if r["judge_overall"] is None else ("accepted" if r["judge_overall"] else "rejected"),
            "failed_rules": [x["rule"] for x in rules if x.get("answer") == "no" and not x.get("missing")],
            "missing_rules": [x["rule"] for x in rules if x.get("missing")],
            "analysis": r["analysis"], "error": r["error"]})
    return {"eval_id": int(run["id"]), "version": run["version"], "prompt_version_ids": run["prompt_version_ids"],
            "judge_model": run["judge_model"], "status": run["status"], "n_gold": run["n_gold"],
            "params": run["params"], "calls": run["calls"], "cost_usd": run["cost_usd"],
            "created_at": str(run["created_at"]), **(run["metrics"] or {}), "disagreements": disagreements}


def list_evals(store: Store, limit: int = 50) -> list[dict]:
    """Past runs, newest first, with their headline figures."""
    out = []
    for r in store.rows("SELECT id, version, judge_model, status, n_gold, metrics, created_at FROM judge_evals "
                        "ORDER BY id DESC LIMIT ?", [limit]):
        m = json.loads(r["metrics"]) if r["metrics"] else {}
        o = m.get("overall") or {}
        out.append({"eval_id": int(r["id"]), "version": r["version"], "judge_model": r["judge_model"],
                    "status": r["status"], "n_gold": r["n_gold"], "accuracy": o.get("accuracy"),
                    "kappa": o.get("kappa"), "created_at": str(r["created_at"])})
    return out


def compare_evals(reports: list[dict]) -> dict:
    """Runs side by side: one row per figure (overall, each task, each rule), one column per run,
    and the run with the highest overall kappa (accuracy breaks ties)."""
    def label(r: dict) -> str:
        return f"v{r['version'] if r['version'] is not None else 'current'} · {r['judge_model']} (#{r['eval_id']})"

    columns = [label(r) for r in reports]
    rows: list[dict] = []
    for name in ("accuracy", "precision_accept", "recall_accept", "kappa"):
        rows.append({"scope": "overall", "key": name, **{c: r["overall"].get(name) for c, r in zip(columns, reports)}})
    for scope in ("per_task", "per_rule"):
        keys = sorted({k for r in reports for k in r.get(scope, {})})
        for k in keys:
            rows.append({"scope": scope.removeprefix("per_"), "key": k,
                         **{c: (r[scope].get(k) or {}).get("kappa") for c, r in zip(columns, reports)}})

    def rank(r: dict) -> tuple:
        o = r["overall"]
        return (o.get("kappa") if o.get("kappa") is not None else -2.0, o.get("accuracy") or 0.0)

    best = max(reports, key=rank) if reports else None
    return {"columns": columns, "rows": rows, "best": None if best is None else
            {"eval_id": best["eval_id"], "version": best["version"], "judge_model": best["judge_model"]}}


# --------------------------------------------------------------------------- which judge is which

def judge_hash(content: dict) -> str:
    """The identity of a version's judge: its rules, judge system prompt and judge template."""
    return content_hash({k: content.get(k) for k in JUDGE_PARTS})


def version_choices(store: Store) -> list[dict]:
    """Every prompt version number with the tasks that have it, newest first: what can be evaluated."""
    rows = store.rows("SELECT version, list(task ORDER BY task) AS tasks FROM prompt_versions "
                      "GROUP BY version ORDER BY version DESC")
    return [{"version": int(r["version"]), "tasks": list(r["tasks"])} for r in rows]


def tasks_with_prompt_versions(store: Store) -> list[str]:
    """The tasks that have a stored prompt version, by name (the others judge with their built-in prompt)."""
    return [r["task"] for r in store.rows("SELECT DISTINCT task FROM prompt_versions ORDER BY task")]


def current_judges(store: Store, tasks: Iterable[str]) -> dict[str, dict]:
    """task -> the current version and the version numbers whose judge it has (oldest first)."""
    out = {}
    for task in sorted(set(tasks)):
        cur = current_prompt_version(store, task)
        h = judge_hash(cur.content)
        same = [int(r["version"]) for r in store.rows(
            "SELECT version, content FROM prompt_versions WHERE task = ? ORDER BY version", [task])
            if judge_hash(json.loads(r["content"]) if isinstance(r["content"], str) else r["content"]) == h]
        out[task] = {"version": cur.version, "id": cur.id, "judge_of": same, "judge_hash": h}
    return out


def calibration_of(store: Store, prompt_version_ids: Iterable[int]) -> list[dict]:
    """For each judge (task + judge parts) among `prompt_version_ids`: the newest finished judge
    evaluation of that same judge (any prompt version sharing its judge parts), and its figures."""
    ids = sorted({int(i) for i in prompt_version_ids if i is not None})
    if not ids:
        return []
    pvs = {pid: get_prompt_version(store, pid) for pid in ids}
    judges: dict[tuple[str, str], list[PromptVersion]] = {}
    for pv in pvs.values():
        judges.setdefault((pv.task, judge_hash(pv.content)), []).append(pv)
    evals = store.rows("SELECT id, judge_model, prompt_version_ids, metrics, created_at FROM judge_evals "
                       "WHERE status = 'done' ORDER BY id DESC")
    hash_of: dict[int, str] = {}
    out = []
    for (task, h), used in sorted(judges.items()):
        found = None
        for e in evals:
            pid = (json.loads(e["prompt_version_ids"] or "{}")).get(task)
            if pid is None:
                continue
            if int(pid) not in hash_of:
                hash_of[int(pid)] = judge_hash(get_prompt_version(store, int(pid)).content)
            metrics = json.loads(e["metrics"] or "{}")
            per_task = (metrics.get("per_task") or {}).get(task)
            if hash_of[int(pid)] == h and per_task:
                found = {"eval_id": int(e["id"]), "judge_model": e["judge_model"], "created_at": str(e["created_at"]),
                         **{k: per_task.get(k) for k in ("n", "accuracy", "precision_accept", "recall_accept",
                                                         "kappa")}}
                break
        same = [int(r["id"]) for r in store.rows("SELECT id, content FROM prompt_versions WHERE task = ?", [task])
                if judge_hash(json.loads(r["content"]) if isinstance(r["content"], str) else r["content"]) == h]
        out.append({"task": task, "versions": sorted(pv.version for pv in used), "judge_hash": h,
                    "prompt_version_ids": sorted(same), "evaluation": found})
    return out


def production_agreement(store: Store, task: str, prompt_version_ids: Iterable[int]) -> dict:
    """Judge vs final human verdict on the examples of `task` whose current judgment was made with
    one of `prompt_version_ids` (the judge at work, next to its calibration on the gold set)."""
    rows = store.rows("""SELECT j.overall AS judge_yes, r.verdict = 'accepted' AS human_yes, count(*) AS n
                         FROM latest_judgments j JOIN generations g ON g.id = j.generation_id
                         JOIN reviews r ON r.generation_id = j.generation_id
                         WHERE g.task = ? AND j.prompt_version_id IN (SELECT unnest(?))
                           AND j.overall IS NOT NULL AND r.verdict IN ('accepted', 'rejected')
                         GROUP BY ALL""", [task, sorted(int(i) for i in prompt_version_ids)])
    cells = {(bool(r["judge_yes"]), bool(r["human_yes"])): int(r["n"]) for r in rows}
    return binary_stats(cells.get((True, True), 0), cells.get((False, True), 0), cells.get((True, False), 0),
                        cells.get((False, False), 0))


# --------------------------------------------------------------------------- as a background task (Dataset page)

def start_judge_eval(store: Store, versions: list[int | str], model: str | None = None, *,
                     tasks: Iterable[str] | None = None, sample: int | None = None, seed: int = 0,
                     concurrency: int = DEFAULT_CONCURRENCY, actor: str | None = None):
    """`evaluate_judge` for each version, one after the other, in a worker thread (core.background):
    leaving the page does not stop it; a cancel stops at the next example (calls made are cached)."""
    team.authorize(store, actor, "checks", target=f"judge eval {versions}")
    from core.background import TaskContext, start_task

    if not versions:
        raise ShoalError("Choose a judge prompt version to evaluate.")
    tasks = sorted(set(tasks)) if tasks else None

    def work(ctx: TaskContext) -> dict:
        profile = judge_profile(model, start_local=True, store=store)
        reports = []
        for v in versions:
            ctx.stage(f"v{v}")
            reports.append(evaluate_judge(store, v, model, tasks=tasks, sample=sample, seed=seed, profile=profile,
                                          concurrency=concurrency, progress=ctx.progress, cancel=ctx.cancel))
        parts = [f"v{r['version'] if r['version'] is not None else 'current'}: kappa "
                 f"{'—' if r['overall']['kappa'] is None else format(r['overall']['kappa'], '.2f')}, accuracy "
                 f"{'—' if r['overall']['accuracy'] is None else format(r['overall']['accuracy'], '.0%')} "
                 f"on {r['n_gold']}" for r in reports]
        return {"summary": "Judge evaluated (" + "; ".join(parts) + ").",
                "eval_ids": [r["eval_id"] for r in reports]}

    return start_task(store, JUDGE_EVAL, work, label=", ".join(f"v{v}" for v in versions) + f" · {model or 'judge'}",
                      describe=lambda result: result)
