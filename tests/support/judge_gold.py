"""A gold set for judge calibration: 120 human verdicts over two tasks and two judge prompt versions,
and a scripted judge that agrees with the humans under version 1 (but for about 5%) and guesses under
version 2."""
from __future__ import annotations

import hashlib
import json
import re

from core.config import Profile
from core.generate.items import save_prompt_version
from core.tasks import get_task
from tests.support.seed_data import add_example, wave

TASKS = ("code_generation", "code_repair")
EXTRA_RULE = "The solution handles empty and edge-case inputs."
EXTRA_REQUIREMENT = "Prefer the standard library."
N_GOLD = 120
_INSTR = re.compile(r'"instruction": "([^"]+)"')


def _h(text: str, salt: str) -> int:
    return int(hashlib.sha256((salt + text).encode()).hexdigest()[:8], 16)


def flipped(instruction: str) -> bool:
    """The calibrated judge's mistakes: about 5% of the examples, fixed by the text."""
    return _h(instruction, "flip") % 100 < 5


def build_gold(store) -> dict[str, str]:
    """120 decided examples over two tasks (about 60% accepted), plus undecided and skipped ones;
    version 1 of each task adds a rule, version 2 (current) a generator requirement instead."""
    verdicts: dict[str, str] = {}
    for i in range(N_GOLD + 12):
        task = TASKS[i % 3 == 2]
        instruction = f"Write a Python function number {i} that sums the even values of a list."
        fields = wave(instruction, f"def f{i}(xs):\n    return sum(x for x in xs if x % 2 == 0)\n",
                      information="def f(xs):\n    return 0\n" if task == TASKS[1] else "no input", task=task)
        verdict = ("accepted" if _h(instruction, "human") % 10 < 6 else "rejected") if i < N_GOLD else \
            ("skipped" if i % 2 else None)
        add_example(store, fields, task=task, verdict=verdict, judge=bool(i % 2), seed_code=f"def seed_{i}(xs):\n"
                    f"    return sum(xs)\n")
        if verdict in ("accepted", "rejected"):
            verdicts[instruction] = verdict
    for task in TASKS:
        base = get_task(task).default_content()
        save_prompt_version(store, task, {**base, "rules": base["rules"] + [EXTRA_RULE]}, note="calibrated")
        save_prompt_version(store, task, {**base, "requirements": base["requirements"] + [EXTRA_REQUIREMENT]})
    return verdicts


def scripted_judge(verdicts: dict[str, str]):
    """A judge that answers under the schema it is sent: with version 1's extra rule it agrees with
    the human (failing that rule on rejects) except for the flipped 5%; under version 2 it guesses.
    One example gets a reply that skips a rule, one an unreadable reply."""
    def responder(body: dict) -> str:
        prompt = next(m["content"] for m in body["messages"] if "## Example to judge" in (m.get("content") or ""))
        instruction = _INSTR.search(prompt[prompt.index("## Example to judge"):]).group(1)
        keys = [k for k in body["response_format"]["json_schema"]["schema"]["properties"]
                if k not in ("analysis", "overall")]
        if EXTRA_RULE in prompt:
            yes = (verdicts[instruction] == "accepted") != flipped(instruction)
            failing = {len(keys) - 1} if not yes else set()
        else:
            if "number 7 " in instruction:
                return "I cannot judge this."
            yes = _h(instruction, "guess") % 2 == 0
            failing = set() if yes else {_h(instruction, "rule") % len(keys)}
        reply = {k: {"reason": f"checked {k}", "answer": "no" if i in failing else "yes"} for i, k in enumerate(keys)}
        if "number 5 " in instruction and EXTRA_RULE not in prompt:
            reply.pop(keys[1])
        return json.dumps({**reply, "analysis": "ok" if yes else "fails a rule", "overall": "yes" if yes else "no"})
    return responder


def judge_profile(srv) -> Profile:
    return Profile(role="judge", base_url=srv.base_url, model="fake-judge", timeout_s=10, temperature=0.0)
