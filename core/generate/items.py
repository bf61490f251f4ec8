"""Generator–discriminator pipeline for one item, prompt versions and the example pools.

What a task means (its prompts, pre-filter checks, code fields, export mapping) lives in its
spec, core.tasks; this module runs the loop (generate → parse → pre-filter → execute → judge)
and picks the few-shot examples. Execute: an example that carries tests (code generation, code
repair, OSS-Instruct) is run with them in the sandbox; a failing one gets up to
`core.llm.lifecycle.LIMITS.repair_rounds` repair rounds (the generator sees the failure and answers
again), and the judge is told the result. Each call is made inside its step (`core.llm.lifecycle.step`:
generate, repair N, judge), which batch mode counts its lines by. The prompt-assembly and pre-filter names are re-exported here for the
modules that import them from core.generate.items.

Prompt versions: a task's editable content (definition, requirements, rules, templates, built-in
examples) is stored in `prompt_versions`; saving changed content creates the next version and
every generation records the version it used.

Example pools are read at recorded snapshots (the highest generation id and the time), one per
block of `refresh_every` items in job order, so later items learn from the examples judged
before them while a resumed job still assembles byte-identical prompts (every call already
answered is then served from the LLM cache). A job's pools draw their judge-decided examples only
from its own generator and judge models (human verdicts from any model, first): `Pools.load`.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import AbstractSet, Any

from core.errors import ShoalError
from core.llm import parse_reply
from core.llm.lifecycle import GENERATE, JUDGE, LIMITS, repair_step, step
from core.store import Store
from core.tasks import Judgment, KeyedJudgment, TaskSpec, get_task, rule_keys
from core.tasks.prefilter import PrefilterResult
from core.tasks.prompts import fence
from core.tasks.schemas import match_rule_items
from core.team import members as team

__all__ = ["PromptVersion", "content_hash", "validate_content", "save_prompt_version", "current_prompt_version",
           "get_prompt_version", "list_prompt_versions", "build_generator_messages", "build_judge_messages",
           "fence", "prefilter", "PrefilterResult", "normalize_judgment", "JudgeOutcome", "judge_example",
           "PoolSnapshot", "PoolConfig", "Pools", "few_shot", "CallInfo", "ItemResult", "generate_one", "execution_line"]


# --------------------------------------------------------------------------- prompt versions

@dataclass(frozen=True)
class PromptVersion:
    id: int
    task: str
    version: int
    content: dict
    content_hash: str


def content_hash(content: dict) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def _pv_from_row(row: dict) -> PromptVersion:
    content = row["content"] if isinstance(row["content"], dict) else json.loads(row["content"])
    return PromptVersion(int(row["id"]), row["task"], int(row["version"]), content, row["content_hash"])


def validate_content(task: str, content: dict) -> None:
    """Refuse content that cannot render (missing parts, broken template) before it is saved."""
    get_task(task).validate_content(content)


def save_prompt_version(store: Store, task: str, content: dict, note: str | None = None, *,
                        actor: str | None = None) -> PromptVersion:
    """Store `content` as the next version of `task`, or return the existing version with the same content."""
    team.authorize(store, actor, "prompts", target=task)
    validate_content(task, content)
    h = content_hash(content)

    def insert_if_new(cur) -> None:
        row = cur.execute("SELECT * FROM prompt_versions WHERE task = ? AND content_hash = ? ORDER BY version DESC",
                          [task, h]).fetchone()
        if row is None:
            version = int(cur.execute("SELECT coalesce(max(version), 0) + 1 FROM prompt_versions WHERE task = ?",
                                      [task]).fetchone()[0])
            cur.execute("INSERT INTO prompt_versions(task, version, content, content_hash, note) VALUES (?, ?, ?, ?, ?)",
                        [task, version, json.dumps(content, ensure_ascii=False), h, note])

    store.write(insert_if_new)
    row = store.one_row("SELECT * FROM prompt_versions WHERE task = ? AND content_hash = ? ORDER BY version DESC",
                        [task, h])
    return _pv_from_row(row)


def current_prompt_version(store: Store, task: str) -> PromptVersion:
    """The latest version of `task`, creating version 1 from the built-in defaults when there is none."""
    row = store.one("SELECT * FROM prompt_versions WHERE task = ? ORDER BY version DESC LIMIT 1", [task])
    if row is None:
        return save_prompt_version(store, task, get_task(task).default_content(), note="built-in default")
    return _pv_from_row(row)


def get_prompt_version(store: Store, version_id: int) -> PromptVersion:
    row = store.one("SELECT * FROM prompt_versions WHERE id = ?", [version_id])
    if row is None:
        raise ShoalError(f"Prompt version {version_id} does not exist.")
    return _pv_from_row(row)


def list_prompt_versions(store: Store, task: str) -> list[dict]:
    return store.rows("SELECT id, version, content_hash, note, created_at FROM prompt_versions "
                      "WHERE task = ? ORDER BY version DESC", [task])


# --------------------------------------------------------------------------- the task spec's parts, by their old names

def build_generator_messages(spec: TaskSpec, content: dict, snippet: dict, target_language: str | None,
                             good: list[dict], bad: list[dict]) -> list[dict]:
    """Chat messages for the generator (TaskSpec.generator_messages)."""
    return spec.generator_messages(content, snippet, target_language, good, bad)


def build_judge_messages(spec: TaskSpec, content: dict, snippet: dict, target_language: str | None,
                         fields: dict) -> list[dict]:
    """Chat messages for the judge (TaskSpec.judge_messages)."""
    return spec.judge_messages(content, snippet, target_language, fields)


def prefilter(task: str, fields: dict, source_code: str | None = None) -> PrefilterResult:
    """The task's pre-filter checks on one reply (TaskSpec.prefilter): normalized fields and every failed rule."""
    return get_task(task).prefilter(fields, source_code)


# --------------------------------------------------------------------------- judge

MISSING_REASON = "the judge gave no answer for this rule"


def normalize_judgment(rules: list[str], judgment: Judgment | KeyedJudgment) -> tuple[list[dict], bool]:
    """Per-rule answers in our rule order, matched by key (the keyed schema) or by the rule each
    item names (the older list shape), never by position. A rule the judge did not answer is kept
    as {"answer": "no", "missing": true}: the example does not pass it, and agreement figures can
    leave it out. Overall is yes only if every rule holds (whatever the judge's own overall says)
    and the judge agrees."""
    if isinstance(judgment, KeyedJudgment):
        keys = rule_keys(rules)
        answers = [getattr(judgment, k, None) for k in keys]
    else:
        answers = match_rule_items(tuple(rules), list(judgment.rules))
    out = []
    for rule, answer in zip(rules, answers):
        if answer is None:
            out.append({"rule": rule, "answer": "no", "reason": MISSING_REASON, "missing": True})
        else:
            out.append({"rule": rule, "answer": answer.answer, "reason": answer.reason})
    overall = all(r["answer"] == "yes" for r in out) and judgment.overall == "yes"
    return out, overall


@dataclass
class JudgeOutcome:
    """One judge call on one example: the normalized answers, or why there are none."""
    call: Any                        # the client's CallResult (tokens, cost, cached)
    parse_ok: bool
    rules: list[dict] | None = None
    overall: bool | None = None
    analysis: str | None = None
    error: str | None = None

    @property
    def raw_text(self) -> str | None:
        return self.call.raw_text

    @property
    def call_id(self) -> int | None:
        return self.call.call_id


async def judge_example(judge_client: Any, spec: TaskSpec, content: dict, snippet: dict,
                        target_language: str | None, fields: dict, execution: str | None = None) -> JudgeOutcome:
    """The judge path: the version's judge messages (with the execution line, when the example was
    run), its keyed schema, the reply normalized. Used by generate_one and by judge calibration
    (core.dataset.judge_eval). Never raises for LLM errors."""
    schema = spec.judge_schema(content)
    jmessages = spec.judge_messages(content, snippet, target_language, fields, execution)
    jcall = await judge_client.complete(jmessages, schema, role="judge")
    judgment = jcall.parsed if jcall.ok else None
    if judgment is None and jcall.raw_text:
        judgment, _ = parse_reply(jcall.raw_text, schema)
    if judgment is None:
        return JudgeOutcome(jcall, False, error=jcall.error or "unparseable reply")
    rules, overall = normalize_judgment(content["rules"], judgment)
    return JudgeOutcome(jcall, True, rules, overall, judgment.analysis)


# --------------------------------------------------------------------------- example pools

@dataclass
class PoolSnapshot:
    """What the pools may draw from: generations up to an id, human reviews up to a time."""
    max_generation_id: int
    reviews_until: str   # ISO timestamp

    def to_json(self) -> dict:
        return {"max_generation_id": self.max_generation_id, "reviews_until": self.reviews_until}

    @classmethod
    def take(cls, store: Store) -> PoolSnapshot:
        gid = int(store.scalar("SELECT coalesce(max(id), 0) FROM generations") or 0)
        ts = str(store.scalar("SELECT CAST(current_timestamp AS TIMESTAMP)"))
        return cls(gid, ts)


@dataclass
class PoolConfig:
    good: int = 2
    bad: int = 1
    seed: int = 0
    strategy: str = "random"      # random | recent
    refresh_every: int = 50       # a job re-reads the pools every this many items (in job order)

    def to_json(self) -> dict:
        return {"good": self.good, "bad": self.bad, "seed": self.seed, "strategy": self.strategy,
                "refresh_every": self.refresh_every}


@dataclass
class Pools:
    """Good and bad candidates for one task, each list in priority tiers (human first, then judge)."""
    task: str
    good_human: list[dict] = field(default_factory=list)
    good_judge: list[dict] = field(default_factory=list)
    bad_human: list[dict] = field(default_factory=list)
    bad_judge: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, store: Store, task: str, snapshot: PoolSnapshot | None = None, limit: int = 500, *,
             generator_model: str | None = None, judge_model: str | None = None) -> Pools:
        """The pools of `task` at `snapshot` (now when None), newest first in each tier.

        Human verdicts (good_human: accepted, with the reviewer's edits; bad_human: rejected with a
        note) come from any model: a person's verdict is the strongest signal. The judge tiers
        (good_judge, bad_judge: no human verdict yet) hold only what passed or failed under the models
        the caller runs with: `generator_model` keeps generations made by that generator, `judge_model`
        those whose judgment (the newest, as everywhere) that judge made -- so one model's judge "pass"
        on another model's output (a tiny demo model's, say) never becomes a few-shot example for a
        different pair. Either left None: not filtered on (what callers got before models were given).

        A model is identified by its name as the store records it (`generations.generator_model`,
        `judgments.judge_model`: the job's profile model, the same name a job item's key holds), not
        by base URL: the embedded server's URL changes from run to run, and a job plans its items by
        model name too. Rows with no recorded model never count under a given model."""
        snap = snapshot or PoolSnapshot.take(store)
        params = [task, snap.max_generation_id]
        base = """
            FROM generations g
            LEFT JOIN reviews r ON r.generation_id = g.id AND r.updated_at <= CAST(? AS TIMESTAMP)
            LEFT JOIN latest_judgments j ON j.generation_id = g.id
            WHERE g.task = ? AND g.id <= ? AND g.parse_ok AND g.prefilter_ok"""
        p = [snap.reviews_until, *params]
        judged, jp = "", list(p)   # the judge tiers: only under the given models
        if generator_model is not None:
            judged += " AND g.generator_model = ?"
            jp.append(generator_model)
        if judge_model is not None:
            judged += " AND j.judge_model = ?"
            jp.append(judge_model)
        pools = cls(task)
        for row in store.rows(f"SELECT g.id, coalesce(r.edited_fields, g.fields) AS fields {base} "
                              f"AND r.verdict = 'accepted' ORDER BY g.id DESC LIMIT {limit}", p):
            pools.good_human.append({"id": row["id"], "fields": json.loads(row["fields"])})
        for row in store.rows(f"SELECT g.id, g.fields {base}{judged} AND r.verdict IS NULL AND j.overall "
                              f"ORDER BY g.id DESC LIMIT {limit}", jp):
            pools.good_judge.append({"id": row["id"], "fields": json.loads(row["fields"])})
        for row in store.rows(f"SELECT g.id, g.fields, r.note {base} AND r.verdict = 'rejected' "
                              f"AND coalesce(trim(r.note), '') <> '' ORDER BY g.id DESC LIMIT {limit}", p):
            pools.bad_human.append({"id": row["id"], "fields": json.loads(row["fields"]), "analysis": row["note"]})
        for row in store.rows(f"SELECT g.id, g.fields, j.analysis, j.rules {base}{judged} AND r.verdict IS NULL "
                              f"AND NOT j.overall ORDER BY g.id DESC LIMIT {limit}", jp):
            pools.bad_judge.append({"id": row["id"], "fields": json.loads(row["fields"]),
                                    "analysis": _judge_analysis(row["analysis"], row["rules"])})
        return pools

    def sample(self, config: PoolConfig, key: str, exclude_ids: AbstractSet[int] = frozenset()) -> tuple[list[dict], list[dict]]:
        """Few-shot examples for one prompt, seeded by (config.seed, key): deterministic per item."""
        rng = random.Random(f"{config.seed}:{key}")

        def pick(tiers: list[list[dict]], n: int) -> list[dict]:
            chosen: list[dict] = []
            for tier in tiers:
                tier = [x for x in tier if x["id"] not in exclude_ids]
                need = n - len(chosen)
                if need <= 0:
                    break
                if config.strategy == "recent":
                    chosen.extend(tier[:need])
                else:
                    chosen.extend(rng.sample(tier, min(need, len(tier))))
            return chosen

        return pick([self.good_human, self.good_judge], config.good), pick([self.bad_human, self.bad_judge], config.bad)

    def sizes(self) -> dict:
        return {"good_human": len(self.good_human), "good_judge": len(self.good_judge),
                "bad_human": len(self.bad_human), "bad_judge": len(self.bad_judge)}


def _judge_analysis(analysis: str | None, rules_json: str | None) -> str:
    failed = []
    if rules_json:
        try:
            failed = [f"{r['rule']} — {r.get('reason', '')}" for r in json.loads(rules_json) if r.get("answer") == "no"]
        except (ValueError, TypeError, KeyError):
            failed = []
    text = (analysis or "").strip()
    if failed:
        text = (text + " Failed rules: " + "; ".join(failed)).strip()
    return text or "The judge rejected this example."


def few_shot(content: dict, pools: Pools | None, config: PoolConfig, key: str) -> tuple[list[dict], list[dict]]:
    """Pool samples topped up with the task's built-in examples when the pools are still small."""
    good, bad = (pools.sample(config, key) if pools else ([], []))
    good_fields = [g["fields"] for g in good]
    bad_items = [{"fields": b["fields"], "analysis": b["analysis"]} for b in bad]
    builtin = content.get("examples") or {}
    for g in builtin.get("good", []):
        if len(good_fields) >= config.good:
            break
        good_fields.append(g)
    for b in builtin.get("bad", []):
        if len(bad_items) >= config.bad:
            break
        bad_items.append(b)
    return good_fields, bad_items


# --------------------------------------------------------------------------- one item, end to end

@dataclass
class CallInfo:
    ok: bool
    raw_text: str | None
    error: str | None
    call_id: int | None
    cached: bool
    cost_usd: float


@dataclass
class ItemResult:
    """Everything the job writes for one item; `error` set means the item failed (retryable)."""
    fields: dict | None = None
    raw_text: str | None = None
    parse_ok: bool = False
    prefilter_ok: bool | None = None
    prefilter_reasons: list[str] = field(default_factory=list)
    gen_call_id: int | None = None
    judge_rules: list[dict] | None = None
    judge_overall: bool | None = None
    judge_analysis: str | None = None
    judge_raw: str | None = None
    judge_parse_ok: bool | None = None
    judge_call_id: int | None = None
    error: str | None = None
    calls: int = 0           # requests that were not served from the cache
    cost_usd: float = 0.0
    judged: bool = False
    execution: dict | None = None   # the sandbox run of solution + tests (a `checks` row when it ran)
    repairs: int = 0                # repair rounds after a failed execution (at most LIMITS.repair_rounds)

    @property
    def has_generation(self) -> bool:
        return self.raw_text is not None or self.fields is not None


def _account(result: ItemResult, call: Any) -> None:
    """Count the HTTP requests a call really sent (0 when served from the cache) and their cost."""
    if not getattr(call, "cached", False):
        result.calls += int(getattr(call, "attempts", 1) or 0)
        result.cost_usd += float(getattr(call, "cost_usd", 0.0) or 0.0)


# Sandbox runs are processes, not coroutines: a small pool keeps them off the event loop and
# bounds how many run at once (the machine's cores), whatever the job's LLM concurrency.
_SANDBOX_POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="shoal-sandbox")


async def _execute(spec: TaskSpec, snippet: dict, target_language: str | None, fields: dict):
    """The sandbox run of the example's solution + tests; None when the task or example has no tests."""
    from core.sandbox.example import execute_example
    language = spec.solution_language(snippet.get("language"), target_language)
    if not spec.tests_key or language is None or not spec.tests_of(fields).strip():
        return None
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_SANDBOX_POOL, execute_example, language, fields, fields.get("solution", ""))


def execution_line(run) -> str:
    """What the judge is told about the execution (one line; nothing that varies between runs, such
    as timings, so that a resumed job's judge prompts stay identical and come from the cache)."""
    from core.sandbox.example import failure_report
    where = run.language
    if run.outcome == "pass":
        return f"passed: the solution ran with its tests and every test passed ({where})."
    if run.outcome == "skipped":
        return f"not run: {run.stderr.strip()}."
    tail = " | ".join(line.strip() for line in failure_report(run).splitlines()[1:][-3:])[:300]
    what = "error: the solution with its tests did not compile" if run.outcome == "error" else \
        f"failed: the solution did not pass its tests ({run.status})"
    return f"{what} ({where}); last output: {tail or '(none)'}"


def _parse(call: Any, spec: TaskSpec):
    parsed = call.parsed if call.ok else None
    if parsed is None and call.raw_text:
        parsed, _ = parse_reply(call.raw_text, spec.schema)
    return parsed


async def _execute_and_repair(result: ItemResult, gen_client: Any, spec: TaskSpec, messages: list[dict],
                              snippet: dict, target_language: str | None, repair: bool,
                              rounds: int | None = None) -> str | None:
    """Run the example; while it fails, up to `rounds` (LIMITS.repair_rounds) repair rounds, each
    kept only if the new reply passes the pre-filter (a reply that does not ends the rounds). The
    example that is still failing after the last round is kept with its execution failed and the
    failure as its reason. Sets result.execution / result.repairs; returns the judge's execution line."""
    from core.sandbox.example import execution_detail, failure_report
    run = await _execute(spec, snippet, target_language, result.fields or {})
    if run is None:
        return "not run: the example has no tests." if spec.tests_key else None
    first = None
    limit = LIMITS.repair_rounds if rounds is None else rounds
    while repair and result.repairs < limit and run.outcome in ("fail", "error") and result.raw_text:
        first = first or run
        result.repairs += 1
        with step(repair_step(result.repairs)):
            rcall = await gen_client.complete(spec.repair_messages(messages, result.raw_text, failure_report(run)),
                                              spec.schema, role="generator")
        _account(result, rcall)
        reparsed = _parse(rcall, spec)
        pf = spec.prefilter(reparsed.model_dump(), source_code=snippet.get("code")) if reparsed else None
        if pf is None or not pf.ok:
            break
        result.fields, result.raw_text, result.gen_call_id = pf.fields, rcall.raw_text, rcall.call_id
        again = await _execute(spec, snippet, target_language, result.fields)
        if again is None:
            break
        run = again
    extra: dict[str, Any] = {"repair_rounds": result.repairs}
    if first is not None:
        extra.update(first_status=first.status, first_output=failure_report(first, 800),
                     repaired=result.repairs >= 1 and run is not first and run.ok)
    if run.outcome != "skipped":
        result.execution = {"passed": run.ok, **execution_detail(run, **extra)}
    return execution_line(run)


async def generate_one(gen_client: Any, judge_client: Any, spec: TaskSpec, content: dict, snippet: dict,
                       target_language: str | None, good: list[dict], bad: list[dict],
                       execute: bool = True, repair: bool = True) -> ItemResult:
    """Generator call → parse → pre-filter → sandboxed execution of solution + tests (repair rounds
    while it fails, `core.llm.lifecycle.LIMITS.repair_rounds` at most) → judge call, told the execution
    result. Each call inside its step (generate, repair N, judge). Never raises for LLM or parse errors."""
    result = ItemResult()
    messages = spec.generator_messages(content, snippet, target_language, good, bad)
    with step(GENERATE):
        call = await gen_client.complete(messages, spec.schema, role="generator")
    _account(result, call)
    result.gen_call_id = call.call_id
    result.raw_text = call.raw_text
    parsed = _parse(call, spec)
    if parsed is None:
        if call.raw_text is None:   # nothing came back: transport failure, no generation to store
            result.error = f"generator: {call.error or 'no reply'}"
        else:
            result.error = f"generator: {call.error or 'unparseable reply'}"
            result.prefilter_ok = False
            result.prefilter_reasons = [f"unparseable: {call.error or 'invalid reply'}"]
        return result
    result.parse_ok = True
    pf = spec.prefilter(parsed.model_dump(), source_code=snippet.get("code"))
    result.fields, result.prefilter_ok, result.prefilter_reasons = pf.fields, pf.ok, pf.reasons
    if not pf.ok:
        return result   # stored with its reasons; no judge call
    line = await _execute_and_repair(result, gen_client, spec, messages, snippet, target_language, repair) \
        if execute else None
    with step(JUDGE):
        judged = await judge_example(judge_client, spec, content, snippet, target_language, result.fields, line)
    _account(result, judged.call)
    result.judged = True
    result.judge_call_id = judged.call_id
    result.judge_raw = judged.raw_text
    result.judge_parse_ok = judged.parse_ok
    if not judged.parse_ok:
        result.error = f"judge: {judged.error}"
        return result
    result.judge_rules, result.judge_overall, result.judge_analysis = judged.rules, judged.overall, judged.analysis
    return result
