"""Compare the two embedded local models on Shoal-like work; writes bench/results/local_llm.json.

For each candidate: time to assemble/locate the .gguf, time until the llama.cpp server answers,
then 5 generator prompts (write an instruction + solution for a small Python function, JSON with
a schema) and 5 judge prompts (one rule, yes/no + reason, with a known right answer), all through
the `openai` package with `response_format={"type": "json_object", "schema": ...}` as core/llm.py
sends it. Measures JSON validity (parses and validates with pydantic), plausibility (generator:
instruction of 6+ words and a solution that parses as Python with a def; judge: the right answer),
and completion tokens per second.

    python -m bench.bench_local_llm [--models smollm2-135m gemma3-270m] [--max-tokens 384]
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import local_llm  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "local_llm.json"


class Example(BaseModel):
    """The shape of a WaveCoder code_generation example (see core/tasks)."""
    instruction: str = Field(min_length=1)
    information: str
    solution: str = Field(min_length=1)


class Verdict(BaseModel):
    answer: Literal["yes", "no"]
    reason: str


SNIPPETS = [
    "def is_palindrome(s):\n    s = ''.join(c.lower() for c in s if c.isalnum())\n    return s == s[::-1]\n",
    "def chunks(items, size):\n    for i in range(0, len(items), size):\n        yield items[i:i + size]\n",
    "def word_counts(text):\n    counts = {}\n    for word in text.split():\n        counts[word] = counts.get(word, 0) + 1\n"
    "    return counts\n",
    "def clamp(value, low, high):\n    return max(low, min(value, high))\n",
    "def flatten(nested):\n    out = []\n    for item in nested:\n        if isinstance(item, list):\n"
    "            out.extend(flatten(item))\n        else:\n            out.append(item)\n    return out\n",
]

GEN_SYSTEM = ("You write training data for a coding assistant. Given a Python function, write a task "
              "that a programmer could ask for, and a correct solution. Reply with one JSON object with "
              "keys instruction (the task in plain English), information (extra input, or \"no input\") and "
              "solution (complete Python code).")

# (rule, instruction, solution, right answer)
JUDGE_CASES = [
    ("The solution is valid Python code.", "Write a function that adds two numbers.",
     "def add(a, b):\n    return a + b", "yes"),
    ("The solution is valid Python code.", "Write a function that adds two numbers.",
     "def add(a, b)\n    return a +", "no"),
    ("The solution defines a function named `reverse`.", "Reverse a list.",
     "def reverse(xs):\n    return xs[::-1]", "yes"),
    ("The solution defines a function named `reverse`.", "Reverse a list.",
     "def total(xs):\n    return sum(xs)", "no"),
    ("The instruction is written in English.", "Escribe una función que sume dos números.",
     "def sumar(a, b):\n    return a + b", "no"),
]

JUDGE_SYSTEM = ("You check training examples for a coding assistant against one rule. Reply with one JSON "
                "object: answer (\"yes\" if the example follows the rule, else \"no\") and reason (one sentence).")


def schema_of(model: type[BaseModel]) -> dict:
    return model.model_json_schema()


def _call(client, model: str, system: str, user: str, schema: type[BaseModel], max_tokens: int) -> dict:
    t0 = time.perf_counter()
    reply = client.chat.completions.create(
        model=model, max_tokens=max_tokens, temperature=0.2, seed=7,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        response_format={"type": "json_object", "schema": schema_of(schema)})
    latency = time.perf_counter() - t0
    text = reply.choices[0].message.content or ""
    parsed, error = None, None
    try:
        parsed = schema.model_validate_json(text)
    except ValidationError as exc:
        error = "invalid json" if "json_invalid" in str(exc) else f"schema: {exc.errors()[0]['msg']}"
    return {"latency_s": round(latency, 3), "completion_tokens": reply.usage.completion_tokens,
            "prompt_tokens": reply.usage.prompt_tokens, "finish_reason": reply.choices[0].finish_reason,
            "valid": parsed is not None, "error": error, "parsed": parsed, "raw": text[:600]}


def _python_with_def(code: str) -> bool:
    code = code.strip().removeprefix("```python").removeprefix("```").removesuffix("```")
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.FunctionDef) for n in ast.walk(tree))


def bench_model(name: str, max_tokens: int) -> dict:
    import openai
    t0 = time.perf_counter()
    path = local_llm.model_file(name)
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    server = local_llm.start_server(name, record_state=False)
    load_s = time.perf_counter() - t0
    items = []
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", timeout=600, max_retries=0)
        for snippet in SNIPPETS:
            r = _call(client, server.model, GEN_SYSTEM, f"Function:\n```python\n{snippet}```", Example, max_tokens)
            ex = r.pop("parsed")
            r["kind"] = "generate"
            r["plausible"] = bool(ex and len(ex.instruction.split()) >= 6 and _python_with_def(ex.solution))
            items.append(r)
        for rule, instruction, solution, truth in JUDGE_CASES:
            user = (f"Rule: {rule}\n\nInstruction:\n{instruction}\n\nSolution:\n```python\n{solution}\n```")
            r = _call(client, server.model, JUDGE_SYSTEM, user, Verdict, 128)
            v = r.pop("parsed")
            r["kind"] = "judge"
            r["expected"] = truth
            r["plausible"] = bool(v and v.answer == truth)
            items.append(r)
    finally:
        local_llm.stop_server(server)

    def rate(kind: str, key: str) -> float:
        sel = [i for i in items if i["kind"] == kind]
        return round(sum(bool(i[key]) for i in sel) / len(sel), 2)

    tokens = sum(i["completion_tokens"] for i in items)
    seconds = sum(i["latency_s"] for i in items)
    return {
        "model": name, "file": str(path), "file_mb": round(path.stat().st_size / 2**20, 1),
        "prepare_s": round(prepare_s, 2), "load_s": round(load_s, 2),
        "json_valid_rate": round(sum(i["valid"] for i in items) / len(items), 2),
        "generate_json_valid_rate": rate("generate", "valid"),
        "generate_plausible_rate": rate("generate", "plausible"),
        "judge_json_valid_rate": rate("judge", "valid"),
        "judge_accuracy": rate("judge", "plausible"),
        "truncated": sum(i["finish_reason"] == "length" for i in items),
        "completion_tokens": tokens, "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0,
        "mean_latency_s": round(seconds / len(items), 2),
        "items": items,
    }


def choose(results: list[dict]) -> str:
    """Quality first (valid JSON + plausible generations + right verdicts), speed breaks near-ties."""
    def quality(r: dict) -> float:
        return r["json_valid_rate"] + r["generate_plausible_rate"] + r["judge_accuracy"]
    best = max(quality(r) for r in results)
    close = [r for r in results if quality(r) >= best - 0.2]
    return max(close, key=lambda r: (quality(r) == best, r["tokens_per_s"]))["model"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(local_llm.MODELS))
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    for name in args.models:
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        r = bench_model(name, args.max_tokens)
        print(f"  load {r['load_s']} s, JSON valid {r['json_valid_rate']:.0%}, plausible generations "
              f"{r['generate_plausible_rate']:.0%}, judge accuracy {r['judge_accuracy']:.0%}, "
              f"{r['tokens_per_s']} tok/s", file=sys.stderr, flush=True)
        results.append(r)
    report = {"bench": "local_llm", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "threads": local_llm.threads(), "n_ctx": local_llm.N_CTX, "max_tokens": args.max_tokens,
              "chosen": choose(results), "default_in_code": local_llm.DEFAULT_MODEL, "models": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "models"}
                     | {"summary": [{k: v for k, v in r.items() if k != "items"} for r in results]}, indent=2))
    return report


if __name__ == "__main__":
    main()
