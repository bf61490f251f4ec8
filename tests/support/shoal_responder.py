"""Answers Shoal's generator and judge prompts the way a cooperative model would (for the fake server).

Generator prompts get a plausible, valid example for their task derived from the snippet in the
prompt (so every snippet gives a different output); about one in twelve breaks the two-sentence
instruction rule so the pre-filter has work. Judge prompts get one reason + answer per rule,
mostly "yes", with deterministic "no"s chosen by hashing the prompt.
"""
from __future__ import annotations

import hashlib
import json
import re

_TASK_RE = re.compile(r"^Task: (\w+)(?: \(target language: ([^)]+)\))?", re.M)
_RULE_RE = re.compile(r"^\d+\. (.+)$", re.M)
_NAME_RES = [re.compile(p) for p in (r"\bdef\s+(\w+)", r"\bfunction\s+(\w+)", r"\bfunc\s+(?:\([^)]*\)\s*)?(\w+)",
                                     r"\bfn\s+(\w+)", r"\b(?:public|private|protected|static)\b[^(=]*?\b(\w+)\s*\(",
                                     r"\bclass\s+(\w+)", r"(\w+)\s*\(")]
_LANG_NAMES = {"python": "Python", "java": "Java", "javascript": "JavaScript", "go": "Go", "php": "PHP",
               "ruby": "Ruby", "rust": "Rust", "cpp": "C++", "c++": "C++", "typescript": "TypeScript"}


def _hash(text: str, salt: str = "") -> int:
    return int(hashlib.sha256((salt + text).encode()).hexdigest()[:12], 16)


def _fenced_after(prompt: str, header: str) -> tuple[str, str] | None:
    """(info string, body) of the fenced block that follows `header`."""
    at = prompt.find(header)
    if at < 0:
        return None
    m = re.compile(r"^(`{3,})([^\n`]*)\n", re.M).search(prompt, at)
    if not m:
        return None
    fence = m.group(1)
    end = re.compile(r"^" + fence + r"[ \t]*$", re.M).search(prompt, m.end())
    if not end:
        return None
    return m.group(2).strip(), prompt[m.end():end.start()].rstrip("\n")


def _lang(name: str) -> str:
    return _LANG_NAMES.get(name.lower(), name.capitalize() or "Python")


def _func_name(code: str) -> str:
    for rx in _NAME_RES:
        m = rx.search(code)
        if m and m.group(1) not in ("if", "for", "while", "return", "print"):
            return m.group(1)
    return "snippet"


def _docline(code: str) -> str:
    m = re.search(r'"""\s*(.+?)(?:\n|""")', code) or re.search(r"(?:#|//)\s*(.+)", code)
    if m:
        line = m.group(1).strip().rstrip(".")
        if line:
            return line[0].lower() + line[1:]
    return "does the same job as the given code"


def _break(code: str) -> str:
    """A small realistic bug: flip the first comparison or arithmetic operator found."""
    for a, b in (("<=", "<"), (">=", ">"), ("==", "!="), (" + 1", " - 1"), (" < ", " <= "), (" > ", " >= "),
                 (" + ", " - "), ("True", "False"), ("return ", "return None  # ")):
        if a in code:
            return code.replace(a, b, 1)
    return code + "\n# (last line removed)"


def _generator_reply(prompt: str, task: str, target: str | None) -> dict:
    block = _fenced_after(prompt, "## Input code")
    lang_id, code = block if block else ("python", "pass")
    lang = _lang(lang_id or "python")
    name = _func_name(code)
    doc = _docline(code)
    h = _hash(code, task)
    verbose = h % 12 == 0   # breaks the two-sentence rule on purpose
    extra = " Keep it short. Make it readable. Add tests too." if verbose else ""
    if task == "code_generation":
        return {"task_name": f"Implement {name}",
                "instruction": f"Write a {lang} function `{name}` that {doc}.{extra}",
                "information": "no input" if h % 3 else "none",
                "solution": code}
    if task == "code_summarization":
        lines = code.count("\n") + 1
        return {"task_name": f"Explain {name}",
                "instruction": f"Explain what the following {lang} function `{name}` does.{extra}",
                "information": code,
                "solution": (f"`{name}` {doc}. It is a {lines}-line {lang} function; it takes its arguments, "
                             f"computes the result described above and returns it.")}
    if task == "code_translation":
        tgt = _lang(target or "java")
        comment = "#" if tgt in ("Python", "Ruby") else "//"
        body = "\n".join(f"{comment} {line}" for line in code.splitlines()[:6])
        return {"task_name": f"Translate {name} to {tgt}",
                "instruction": f"Translate this {lang} function `{name}` into {tgt}.{extra}",
                "information": code,
                "solution": f"{comment} {tgt} version of {name}\n{body}\n"}
    if task == "code_repair":
        return {"task_name": f"Fix {name}",
                "instruction": f"The {lang} function `{name}` below has a bug; fix it.{extra}",
                "information": _break(code),
                "solution": f"{code}\n\nThe buggy version changed one operator, which altered the result."}
    if task == "oss_instruct":
        return {"problem": (f"Write a {lang} function `{name}` that {doc}. Describe its inputs and outputs, "
                            f"handle empty input, and include everything needed to run it."),
                "solution": f"```{lang_id or 'python'}\n{code}\n```"}
    return {"task_name": name, "instruction": f"Write {name}.", "information": "no input", "solution": code}


def _judge_reply(prompt: str) -> dict:
    at = prompt.find("## Rules")
    rules = _RULE_RE.findall(prompt[at:]) if at >= 0 else []
    verdicts = []
    for i, rule in enumerate(rules):
        no = _hash(prompt, f"rule{i}") % 100 < 4
        verdicts.append({"rule": str(i + 1),
                         "reason": ("The example does not satisfy this: " if no else "This holds: ") + rule[:80],
                         "answer": "no" if no else "yes"})
    failed = [v for v in verdicts if v["answer"] == "no"]
    return {"rules": verdicts,
            "analysis": (f"Rule {failed[0]['rule']} fails; the example should be rewritten." if failed
                         else "The example follows every rule."),
            "overall": "no" if failed else "yes"}


def shoal_responder(body: dict) -> str:
    """The assistant message content for a chat-completions request body."""
    messages = body.get("messages") or []
    prompt = "\n".join(m.get("content") or "" for m in messages if m.get("role") == "user"
                       and isinstance(m.get("content"), str))
    m = _TASK_RE.search(prompt)
    if "## Example to judge" in prompt:
        return json.dumps(_judge_reply(prompt))
    if m and "## Input code" in prompt:
        return json.dumps(_generator_reply(prompt, m.group(1), m.group(2)))
    return json.dumps({"answer": "OK"})
