"""Compare the two embedded local models on Shoal-like work; writes bench/results/local_llm.json.

For each candidate: time to assemble/locate the .gguf, time until the llama.cpp server answers,
then 5 generator prompts (write an instruction + solution for a small Python function, JSON with
a schema) and 5 judge prompts (one rule, yes/no + reason, with a known right answer), all through
the `openai` package with `response_format={"type": "json_object", "schema": ...}` as core/llm.py
sends it. Measures JSON validity (parses and validates with pydantic), plausibility (generator:
a sentence-long instruction about the given function and a solution that parses as Python with a def; judge: the right answer),
and completion tokens per second.

    python -m bench.bench_local_llm [--models smollm2-135m gemma3-270m] [--max-tokens 256]
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

from core.llm import local_model as local_llm  # noqa: E402

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

GEN_TASK = ("You write training data for a coding assistant. Given a Python function, write a task that a "
            "programmer could ask for, and a correct solution. Reply with one JSON object with keys instruction "
            "(the task in plain English), information (extra input, or \"no input\") and solution (complete "
            "Python code).")
GEN_SHOT = ("def mean(xs):\n    return sum(xs) / len(xs)\n",
            {"instruction": "Write a Python function `mean(xs)` that returns the arithmetic mean of a non-empty "
                            "list of numbers.", "information": "no input",
             "solution": "def mean(xs):\n    return sum(xs) / len(xs)\n"})

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
JUDGE_TASK = ("You check training examples for a coding assistant against one rule. Reply with one JSON object: "
              "answer (\"yes\" if the example follows the rule, else \"no\") and reason (one sentence).")
JUDGE_SHOT = (("The solution returns a value.", "Write a function that prints a greeting.",
               "def greet(name):\n    print('Hello', name)"),
              {"answer": "no", "reason": "greet only prints and has no return statement."})


def judge_case(rule: str, instruction: str, solution: str) -> str:
    return f"Rule: {rule}\n\nInstruction:\n{instruction}\n\nSolution:\n```python\n{solution}\n```"


def one_shot(task: str, shot_input: str, shot_output: dict, user: str) -> list[dict]:
    """Task text + one worked example + the real input, all in user/assistant turns (no system role:
    llama-cpp-python's `gemma` chat format silently drops system messages)."""
    return [{"role": "user", "content": f"{task}\n\n{shot_input}"},
            {"role": "assistant", "content": json.dumps(shot_output)},
            {"role": "user", "content": user}]


def schema_of(model: type[BaseModel]) -> dict:
    return model.model_json_schema()


def _call(client, model: str, messages: list[dict], schema: type[BaseModel], max_tokens: int) -> dict:
    t0 = time.perf_counter()
    reply = client.chat.completions.create(
        model=model, max_tokens=max_tokens, temperature=0.2, seed=7, messages=messages,
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


def _strip_fence(code: str) -> str:
    return code.strip().removeprefix("```python").removeprefix("```").removesuffix("```")


def generation_score(ex: Example | None, snippet: str) -> float:
    """0..1, the share of four checks a usable code_generation example passes."""
    if ex is None:
        return 0.0
    code = _strip_fence(ex.solution)
    try:
        tree = ast.parse(code)
        has_def = any(isinstance(n, ast.FunctionDef) for n in ast.walk(tree))
    except SyntaxError:
        has_def = False
    name = snippet.split("(")[0].removeprefix("def ").strip()
    checks = [len(ex.instruction.split()) >= 6,           # a sentence, not an identifier
              "def " in code or "return" in code,          # looks like code
              has_def,                                     # is Python with a function
              name in ex.instruction or name in code]      # about the given function
    return sum(checks) / len(checks)


def text_speed(client, model: str) -> dict:
    """Unconstrained decoding speed (no grammar), one short reply."""
    t0 = time.perf_counter()
    reply = client.chat.completions.create(
        model=model, max_tokens=64, temperature=0.0,
        messages=[{"role": "user", "content": "Explain in three sentences what a Python generator is."}])
    dt = time.perf_counter() - t0
    return {"completion_tokens": reply.usage.completion_tokens, "seconds": round(dt, 2),
            "tokens_per_s": round(reply.usage.completion_tokens / dt, 1), "text": reply.choices[0].message.content}


def bench_model(name: str, max_tokens: int) -> dict:
    import openai
    load_avg = round(os.getloadavg()[0], 2)  # 2 shared cores: speed figures depend on what else runs
    t0 = time.perf_counter()
    path = local_llm.model_file(name)
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    server = local_llm.start_server(name, record_state=False)
    load_s = time.perf_counter() - t0
    items = []
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", timeout=600, max_retries=0)
        plain = text_speed(client, server.model)
        for snippet in SNIPPETS:
            messages = one_shot(GEN_TASK, f"Function:\n```python\n{GEN_SHOT[0]}```", GEN_SHOT[1],
                                f"Function:\n```python\n{snippet}```")
            r = _call(client, server.model, messages, Example, max_tokens)
            r["kind"] = "generate"
            r["plausible"] = generation_score(r.pop("parsed"), snippet)
            items.append(r)
        for rule, instruction, solution, truth in JUDGE_CASES:
            messages = one_shot(JUDGE_TASK, judge_case(*JUDGE_SHOT[0]), JUDGE_SHOT[1],
                                judge_case(rule, instruction, solution))
            r = _call(client, server.model, messages, Verdict, 128)
            v = r.pop("parsed")
            r["kind"] = "judge"
            r["expected"] = truth
            r["plausible"] = float(bool(v and v.answer == truth))
            items.append(r)
    finally:
        local_llm.stop_server(server)

    def rate(kind: str, key: str) -> float:
        sel = [i for i in items if i["kind"] == kind]
        return round(sum(float(i[key]) for i in sel) / len(sel), 2)

    tokens = sum(i["completion_tokens"] for i in items)
    seconds = sum(i["latency_s"] for i in items)
    return {
        "model": name, "file": str(path), "file_mb": round(path.stat().st_size / 2**20, 1),
        "load_average_1m_at_start": load_avg, "prepare_s": round(prepare_s, 2), "load_s": round(load_s, 2),
        "json_valid_rate": round(sum(i["valid"] for i in items) / len(items), 2),
        "generate_json_valid_rate": rate("generate", "valid"),
        "generate_plausibility": rate("generate", "plausible"),
        "judge_json_valid_rate": rate("judge", "valid"),
        "judge_accuracy": rate("judge", "plausible"),
        "truncated": sum(i["finish_reason"] == "length" for i in items),
        "completion_tokens": tokens, "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0,
        "mean_latency_s": round(seconds / len(items), 2),
        "text_tokens_per_s": plain["tokens_per_s"], "text_sample": plain["text"],
        "items": items,
    }


def choose(results: list[dict]) -> str:
    """Quality first (valid JSON + plausible generations + right verdicts), speed breaks near-ties."""
    def quality(r: dict) -> float:
        return r["json_valid_rate"] + r["generate_plausibility"] + r["judge_accuracy"]
    best = max(quality(r) for r in results)
    close = [r for r in results if quality(r) >= best - 0.2]
    return max(close, key=lambda r: (quality(r) == best, r["tokens_per_s"]))["model"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(local_llm.MODELS))
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    for name in args.models:
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        r = bench_model(name, args.max_tokens)
        print(f"  load {r['load_s']} s, JSON valid {r['json_valid_rate']:.0%}, generation plausibility "
              f"{r['generate_plausibility']:.0%}, judge accuracy {r['judge_accuracy']:.0%}, "
              f"{r['tokens_per_s']} tok/s with grammar, {r['text_tokens_per_s']} tok/s plain", file=sys.stderr, flush=True)
        results.append(r)
    report = {"bench": "local_llm", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "threads": local_llm.threads(),
              "load_average_1m": round(os.getloadavg()[0], 2), "n_ctx": local_llm.N_CTX, "max_tokens": args.max_tokens,
              "chosen": choose(results), "default_in_code": local_llm.DEFAULT_LOCAL_MODEL, "models": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "models"}
                     | {"summary": [{k: v for k, v in r.items() if k != "items"} for r in results]}, indent=2))
    return report


if __name__ == "__main__":
    main()
