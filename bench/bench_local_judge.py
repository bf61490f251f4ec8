"""How completely each embedded local model judges Shoal's real judge prompts; writes
bench/results/local_judge.json.

The app's own pipeline pieces, on the demo corpus: snippets from a few stdlib modules, tasks by the
CodeOcean mix, the generator prompt of each task (the default local model writes the examples, at
the generator's 512 tokens), the pre-filter, then the task's judge prompt (every rule of the task)
sent to each candidate model with a large `max_tokens`. Every model judges the same examples.

Per judge reply: completion tokens, whether the server cut it (`max_tokens` reached), whether it
parsed, and how many of the task's rules it answered. "Complete at N" = parsed, every rule
answered, and under N completion tokens (so the figures at 512 are what the old default gave).

    python -m bench.bench_local_judge [--models smollm2-135m gemma3-270m] [--examples 8] [--max-tokens 1536]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import Profile  # noqa: E402
from core.generate.items import current_prompt_version  # noqa: E402
from core.generate.jobs.plan import DEFAULT_TARGETS, assign_tasks, choose_target  # noqa: E402
from core.ingest.run import ingest_sources  # noqa: E402
from core.llm import LLMClient  # noqa: E402
from core.llm import local_model as local_llm  # noqa: E402
from core.llm.parsing import parse_reply  # noqa: E402
from core.store import open_store  # noqa: E402
from core.tasks import DEFAULT_MIX, Judgment, get_task  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "local_judge.json"
DEMO = "stdlib:json,csv,textwrap,string,shlex"
LIMITS = (512, 768, 1024, 1536)


def _client(store, server, role: str, max_tokens: int) -> LLMClient:
    prof = Profile(role=role, base_url=server.base_url, model=server.model, max_tokens=max_tokens,
                   temperature=1.0 if role == "generator" else 0.0, timeout_s=900.0)
    return LLMClient(store, prof, max_concurrency=1, max_parse_retries=0)


def make_examples(store, n_examples: int, max_snippets: int) -> list[dict]:
    """Examples written by the default local model that pass the pre-filter (what a judge sees)."""
    ids = [r["id"] for r in store.rows("SELECT id FROM snippets ORDER BY id LIMIT ?", [max_snippets])]
    tasks = assign_tasks(ids, DEFAULT_MIX, 0)
    server = local_llm.start_server(local_llm.DEFAULT_LOCAL_MODEL, record_state=False)
    out: list[dict] = []
    try:
        gen = _client(store, server, "generator", 512)
        for sid, task in zip(ids, tasks):
            if len(out) >= n_examples:
                break
            spec = get_task(task)
            snippet = store.one("SELECT * FROM snippets WHERE id = ?", [sid])
            target = choose_target(snippet["language"], DEFAULT_TARGETS, sid) if spec.needs_target_language else None
            content = current_prompt_version(store, task).content
            call = gen.complete_sync(spec.generator_messages(content, snippet, target, [], []), spec.schema,
                                     role="generator")
            if not call.ok:
                continue
            pf = spec.prefilter(call.parsed.model_dump(), source_code=snippet["code"])
            if pf.ok:
                out.append({"snippet_id": sid, "task": task, "target": target, "fields": pf.fields})
            print(f"  generated {sid[:10]} {task}: {'kept' if pf.ok else pf.reasons}", flush=True)
        gen.close()
    finally:
        local_llm.stop_server(server)
    return out


def judge_all(store, model: str, examples: list[dict], max_tokens: int) -> dict:
    t0 = time.perf_counter()
    server = local_llm.start_server(model, record_state=False)
    load_s = time.perf_counter() - t0
    replies = []
    try:
        judge = _client(store, server, "judge", max_tokens)
        for ex in examples:
            spec = get_task(ex["task"])
            snippet = store.one("SELECT * FROM snippets WHERE id = ?", [ex["snippet_id"]])
            content = current_prompt_version(store, ex["task"]).content
            call = judge.complete_sync(spec.judge_messages(content, snippet, ex["target"], ex["fields"]),
                                       Judgment, role="judge")
            rules = content["rules"]
            judgment = call.parsed if call.ok else None
            if judgment is None and call.raw_text:   # what the pipeline salvages (core.generate.items)
                judgment, _ = parse_reply(call.raw_text, Judgment)
            answered = min(len(judgment.rules), len(rules)) if judgment is not None else 0
            replies.append({"task": ex["task"], "rules": len(rules), "answered": answered, "parsed": judgment is not None,
                            "error": call.error, "completion_tokens": call.completion_tokens,
                            "cut": call.completion_tokens >= max_tokens, "latency_s": round(call.latency_ms / 1000, 1)})
            print(f"  {model} judged {ex['task']}: {answered}/{len(rules)} rules, "
                  f"{call.completion_tokens} tokens, {call.error or 'ok'}", flush=True)
        judge.close()
    finally:
        local_llm.stop_server(server)
    n = len(replies)

    def complete_under(limit: int) -> int:
        return sum(1 for r in replies if r["parsed"] and r["answered"] == r["rules"] and r["completion_tokens"] < limit)

    tokens = sorted(r["completion_tokens"] for r in replies)
    return {"model": model, "max_tokens": max_tokens, "replies": n, "load_s": round(load_s, 1),
            "complete_under": {str(lim): complete_under(lim) for lim in LIMITS if lim <= max_tokens},
            "cut": sum(r["cut"] for r in replies), "parsed": sum(r["parsed"] for r in replies),
            "rules_answered": sum(r["answered"] for r in replies), "rules_asked": sum(r["rules"] for r in replies),
            "completion_tokens_max": tokens[-1] if tokens else 0,
            "completion_tokens_median": tokens[n // 2] if tokens else 0,
            "seconds": round(sum(r["latency_s"] for r in replies), 1), "items": replies}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(local_llm.MODELS))
    ap.add_argument("--examples", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=1536)
    args = ap.parse_args(argv)
    load_avg = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "bench.duckdb"))
        ingest_sources(store, [DEMO])
        examples = make_examples(store, args.examples, max_snippets=4 * args.examples)
        results = [judge_all(store, m, examples, args.max_tokens) for m in args.models]
        store.close()
    out = {"load_average_1m_at_start": load_avg, "examples": len(examples), "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    for r in results:
        print(json.dumps({k: v for k, v in r.items() if k != "items"}))
    return out


if __name__ == "__main__":
    main()
