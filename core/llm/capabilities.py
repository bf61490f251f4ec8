"""What one endpoint (base URL + model) accepts, started from its family and learned from its errors.

A `Capabilities` record says how to ask this server and model for a reply:

* `token_param`: "max_tokens" or "max_completion_tokens" (OpenAI's reasoning models refuse the first);
* `sampling`: whether temperature / top_p may be sent (reasoning models take only the default 1);
* `reasoning_effort`: whether the parameter exists for this model;
* `modes`: the structured-output modes still worth trying, best first (`current` is the one new
  calls start with), and `strict`: whether json_schema goes with `"strict": true`;
* `max_temperature`: Anthropic's endpoint takes 0..1 (higher is clamped there anyway).

Known families start from their right defaults (`family_of`, `defaults_for`); anything else
starts from the generic defaults and learns from the first error body that names a parameter
(`Capabilities.adapt`): one adaptation per parameter, never a blind retry. The record is kept
per process (shared by every client of the endpoint, both roles, every job) and in DuckDB
(`endpoint_capabilities`, migration 007), so a second job starts right.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlparse

from core.llm.formats import MODES

__all__ = ["Capabilities", "family_of", "defaults_for", "Endpoint", "endpoint_for", "reset_endpoints",
           "load_capabilities", "save_capabilities", "FAMILIES", "REASONING_MODEL_RE"]

# o1, o3, o4-mini, gpt-5 and their dated / sized variants; gpt-5*-chat* is a chat model
REASONING_MODEL_RE = re.compile(r"^(o1|o3|o4|gpt-5)([-.].*)?$")
OPENAI_CHAT_RE = re.compile(r"^(gpt-3\.5|gpt-35|gpt-4|chatgpt-4o|gpt-5.*-chat)")
FAMILIES = ("openai-reasoning", "openai-chat", "vllm", "ollama", "llamacpp", "anthropic", "generic")


@dataclass
class Capabilities:
    family: str = "generic"
    token_param: str = "max_tokens"
    sampling: bool = True
    reasoning_effort: bool = False
    modes: tuple[str, ...] = MODES
    strict: bool = True
    max_temperature: float = 2.0
    source: str = "defaults"           # defaults | learned | stored
    learned: list[dict] = field(default_factory=list)   # what each adaptation was learned from
    confirmed: bool = False            # a request built from this record was answered

    @property
    def current(self) -> str:
        return self.modes[0] if self.modes else "text"

    def without_mode(self, mode: str) -> Capabilities:
        """The record once `mode` is refused: the modes after it (text always remains)."""
        rest = tuple(m for m in self.modes if MODES.index(m) > MODES.index(mode)) or ("text",)
        return replace(self, modes=rest, learned=self.learned + [{"mode": mode, "refused": True}],
                       source="learned", confirmed=False)

    def adapt(self, param: str | None, code: str | None, message: str = "") -> Capabilities | None:
        """The record after the server refused `param` (OpenAI's error body: param and code), or
        None when that refusal is not about something this record decides."""
        param = (param or "").strip()
        note = {"param": param, "code": code, "message": message[:200]}
        change: dict[str, Any] | None = None
        if param == "max_tokens" and self.token_param == "max_tokens":
            change = {"token_param": "max_completion_tokens"}
        elif param == "max_completion_tokens" and self.token_param == "max_completion_tokens":
            change = {"token_param": "max_tokens"}
        elif param in ("temperature", "top_p") and self.sampling:
            change = {"sampling": False}
        elif param == "reasoning_effort" and self.reasoning_effort:
            change = {"reasoning_effort": False}
        elif param.startswith("response_format") and code == "invalid_json_schema" and self.strict:
            change = {"strict": False}
        if change is None:
            return None
        return replace(self, **change, learned=self.learned + [note], source="learned", confirmed=False)

    def to_row(self) -> dict:
        d = asdict(self)
        d["modes"] = list(self.modes)
        return d

    @classmethod
    def from_row(cls, row: dict) -> Capabilities:
        learned = row.get("learned")
        modes = row.get("modes")
        if isinstance(learned, str):
            learned = json.loads(learned)
        if isinstance(modes, str):
            modes = json.loads(modes)
        modes = tuple(m for m in (modes or MODES) if m in MODES) or ("text",)
        return cls(family=row.get("family") or "generic", token_param=row.get("token_param") or "max_tokens",
                   sampling=bool(row.get("sampling", True)), reasoning_effort=bool(row.get("reasoning_effort")),
                   modes=modes, strict=bool(row.get("strict", True)),
                   max_temperature=float(row.get("max_temperature") or 2.0), source="stored",
                   learned=list(learned or []), confirmed=bool(row.get("confirmed")))


# ---------------------------------------------------------------- families


def _model_name(model: str | None) -> str:
    return (model or "").strip().lower().rsplit("/", 1)[-1]


def family_of(base_url: str, model: str | None, source: str | None = None) -> str:
    """The family whose defaults an endpoint starts from: by host and port where they say it
    (api.openai.com, api.anthropic.com, Ollama's 11434, Shoal's embedded llama.cpp server), else
    by the model name (OpenAI's model names behind any OpenAI-compatible proxy), else generic."""
    parsed = urlparse(base_url or "")
    host, port = (parsed.hostname or "").lower(), parsed.port
    name = _model_name(model)
    if source == "local":
        return "llamacpp"
    if host == "api.anthropic.com" or name.startswith("claude"):
        return "anthropic"
    if REASONING_MODEL_RE.match(name) and "-chat" not in name:
        return "openai-reasoning"
    if host == "api.openai.com" or OPENAI_CHAT_RE.match(name):
        return "openai-chat"
    if port == 11434 or "ollama" in host:
        return "ollama"
    if "vllm" in host or "vllm" in (parsed.path or ""):
        return "vllm"
    return "generic"


def defaults_for(family: str) -> Capabilities:
    if family == "openai-reasoning":
        return Capabilities(family, token_param="max_completion_tokens", sampling=False, reasoning_effort=True)
    if family == "llamacpp":      # llama.cpp servers constrain json_object + schema; json_schema fails
        return Capabilities(family, modes=("json_object", "text"), strict=False)
    if family == "anthropic":     # response_format is ignored there: describe the schema in the prompt
        return Capabilities(family, modes=("text",), strict=False, max_temperature=1.0)
    return Capabilities(family if family in FAMILIES else "generic")


# ---------------------------------------------------------------- one record per endpoint


def _norm_url(url: str) -> str:
    return (url or "").strip().rstrip("/")


class Endpoint:
    """The capabilities of one (base URL, model), shared by every client of it in this process.

    `version` counts changes, so that a client whose request was built from an older record
    knows a refusal it gets was already learned from (and just sends again)."""

    def __init__(self, base_url: str, model: str, caps: Capabilities):
        self.base_url, self.model = base_url, model
        self._lock = threading.Lock()
        self.caps = caps
        self.version = 0
        self.saved_version = -1 if caps.source != "stored" else 0
        self.loaded = False

    def replace(self, new: Capabilities, seen_version: int | None = None) -> bool:
        """Install `new` unless another client changed the record since `seen_version`."""
        with self._lock:
            if seen_version is not None and seen_version != self.version:
                return False
            self.caps = new
            self.version += 1
            return True

    def confirm(self, version: int) -> bool:
        """A request built from record `version` was answered; True when that is news."""
        with self._lock:
            if version != self.version or self.caps.confirmed:
                return False
            self.caps = replace(self.caps, confirmed=True)
            self.version += 1
            return True

    def snapshot(self) -> tuple[Capabilities, int]:
        with self._lock:
            return self.caps, self.version


_ENDPOINTS: dict[tuple[str, str, str], Endpoint] = {}
_ENDPOINTS_LOCK = threading.Lock()


def endpoint_for(store_key: str, base_url: str, model: str, source: str | None = None) -> Endpoint:
    """The process's record for (store, base URL, model), created from the family defaults."""
    key = (store_key, _norm_url(base_url), model or "")
    with _ENDPOINTS_LOCK:
        ep = _ENDPOINTS.get(key)
        if ep is None:
            ep = _ENDPOINTS[key] = Endpoint(_norm_url(base_url), model or "",
                                            defaults_for(family_of(base_url, model, source)))
        return ep


def reset_endpoints() -> None:
    with _ENDPOINTS_LOCK:
        _ENDPOINTS.clear()


# ---------------------------------------------------------------- DuckDB

_COLUMNS = ("family", "token_param", "sampling", "reasoning_effort", "modes", "strict", "max_temperature",
            "learned", "confirmed")


def load_capabilities(store, base_url: str, model: str) -> Capabilities | None:
    row = store.one(f"SELECT {', '.join(_COLUMNS)} FROM endpoint_capabilities WHERE base_url = ? AND model = ?",
                    [_norm_url(base_url), model or ""])
    return Capabilities.from_row(row) if row else None


def save_capabilities(store, base_url: str, model: str, caps: Capabilities) -> None:
    d = caps.to_row()
    values = [_norm_url(base_url), model or ""] + [
        json.dumps(d[c]) if c in ("modes", "learned") else d[c] for c in _COLUMNS]
    cols = ", ".join(_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS)
    store.write(lambda cur: cur.execute(
        f"INSERT INTO endpoint_capabilities (base_url, model, {cols}) VALUES ({', '.join(['?'] * (len(_COLUMNS) + 2))}) "
        f"ON CONFLICT (base_url, model) DO UPDATE SET {updates}, updated_at = now()", values))
