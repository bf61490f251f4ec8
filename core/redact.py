"""One redaction function for everything Shoal stores or sends.

`redact(text)` replaces key-shaped strings (OpenAI / Anthropic `sk-…`, `Bearer …` tokens, GitHub,
Hugging Face, AWS, Google, Slack tokens, `api_key=…`-style assignments) and the keys this process
is configured with (the environment's OPENAI_API_KEY, ANTHROPIC_API_KEY, HF_TOKEN, any `*_API_KEY`,
`SHOAL_*_KEY` / `*_TOKEN` / `*_SECRET`, the keys typed into the Models panel, the keys in
secrets.toml) with `[REDACTED]`. `redact_obj` does the same through dicts and lists.

It is called at the boundaries, not at every use: what the sandbox's output becomes (check details,
repair prompts: core.dataset.checks.execution), every request body sent to an LLM (core.llm.transport) and
every `llm_calls` row (core.llm.calllog), the error an LLM call ends with (core.llm.transport, which
`job_items` and the CLI then carry), the job writer's failures and the CLI's error line.
"""
from __future__ import annotations

import os
import re
from typing import Any, overload

MARK = "[REDACTED]"
MIN_KEY = 8     # configured values shorter than this are not treated as secrets (they would match everywhere)

_B = r"(?<![A-Za-z0-9_\-])"      # a token starts at a word boundary ("task-…" holds no "sk-" key)
_DIGIT = r"(?=[A-Za-z_\-]*\d)"    # and, being random, has a digit somewhere ("sk-your-key-here" has none)
_PATTERNS = [
    _B + r"sk-ant-" + _DIGIT + r"[A-Za-z0-9_\-]{16,}",                       # Anthropic
    _B + r"sk-(?:proj-|svcacct-|admin-)?" + _DIGIT + r"[A-Za-z0-9_\-]{20,}",  # OpenAI and servers of its shape
    r"(?<=Bearer )[A-Za-z0-9._~+/=\-]{12,}",      # Authorization headers echoed back
    _B + r"gh[pousr]_[A-Za-z0-9]{30,}", _B + r"github_pat_[A-Za-z0-9_]{40,}",
    _B + r"hf_[A-Za-z0-9]{30,}",
    _B + r"AKIA[0-9A-Z]{16}",
    _B + r"AIza[0-9A-Za-z_\-]{35}",
    _B + r"xox[abprs]-[A-Za-z0-9\-]{10,}",
]
_KEY_SHAPED = re.compile("|".join(f"(?:{p})" for p in _PATTERNS))
# api_key = "…", "token": "…", password=…: the value only, when it looks random (a digit, no dots)
_ASSIGNED = re.compile(r"(?i)((?:api[_-]?key|apikey|secret|token|password|passwd)[\"']?\s*[:=]\s*[\"']?)"
                       r"(?=[A-Za-z_\-+/=]*\d)([A-Za-z0-9_\-+/=]{16,})")
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|TOKEN|SECRET|PASSWORD)$|^(?:SHOAL_.*_KEY)$", re.I)

_files_cache: dict[str, tuple[float, tuple[str, ...]]] = {}


def _file_values(path: str) -> tuple[str, ...]:
    """String values in a secrets.toml (cached by modification time)."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return ()
    hit = _files_cache.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    import tomllib
    values: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, str):
            values.append(obj.strip())
    try:
        with open(path, "rb") as fh:
            walk(tomllib.load(fh))
    except (OSError, ValueError):
        pass
    _files_cache[path] = (mtime, tuple(values))
    return tuple(values)


def configured_secrets() -> list[str]:
    """The key values this process holds now: environment, session keys, secrets.toml; longest first."""
    found = {v.strip() for k, v in os.environ.items() if _SECRET_NAME.search(k) and v}
    try:
        from core import config, secrets_file
        with config._SESSION_KEYS_LOCK:   # keys typed into the Models panel (this process's memory only)
            found.update(config._SESSION_KEYS.values())
        for path in secrets_file.secrets_paths():
            found.update(_file_values(str(path)))
        found.discard(config.DUMMY_KEY)
    except Exception:   # redaction must never be the thing that fails
        pass
    return sorted((v for v in found if len(v) >= MIN_KEY), key=len, reverse=True)


@overload
def redact(text: str, secrets: list[str] | None = None) -> str: ...
@overload
def redact(text: None, secrets: list[str] | None = None) -> None: ...


def redact(text: str | None, secrets: list[str] | None = None) -> str | None:
    """`text` with every key-shaped string and configured key replaced by [REDACTED]."""
    if not text or not isinstance(text, str):
        return text
    for value in configured_secrets() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, MARK)
    text = _KEY_SHAPED.sub(MARK, text)
    return _ASSIGNED.sub(lambda m: m.group(1) + MARK, text)


def redact_obj(obj: Any, secrets: list[str] | None = None) -> Any:
    """`obj` (dicts, lists, strings) with every string redacted; a new object where anything changed."""
    secrets = configured_secrets() if secrets is None else secrets
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, dict):
        return {k: redact_obj(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v, secrets) for v in obj)
    return obj
