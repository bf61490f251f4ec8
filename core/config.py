"""LLM endpoint profiles (generator, judge) and where their API keys come from.

A profile names the variable that holds its key (`api_key_env`); the key itself is read at
call time from the environment or `.streamlit/secrets.toml` and is never stored in a
profile, DuckDB, a log or an export.

Key safety (the simonw/llm lesson): a custom base URL (vLLM, Ollama, OpenRouter, ...) never
receives the default `OPENAI_API_KEY` unless the profile names it explicitly. Loopback
servers get a dummy key.

A key typed on the Generate page is held in this process's memory under a session-only name
(`hold_session_key`), or written into secrets.toml on request (core.secrets_file.write_secret,
merged with what the file holds); either way the profile carries only the name.
"""
from __future__ import annotations

import ipaddress
import os
import threading
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import pydantic
from pydantic import Field, field_validator, model_serializer

from core import secrets_file
from core.errors import ShoalError
from core.secrets_file import SESSION_KEY_PREFIX

LLM_ROLES = ("generator", "judge")
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"
DUMMY_KEY = "sk-no-key-needed"  # the openai package refuses an empty key; local servers ignore it
ResponseFormat = Literal["auto", "json_schema", "json_object", "text"]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]
BatchAPI = Literal["auto", "openai", "anthropic"]


class Profile(pydantic.BaseModel):
    """One OpenAI-compatible endpoint for one role. Holds the key's *name*, never the key."""
    role: str                      # "generator" | "judge"
    base_url: str                  # e.g. http://127.0.0.1:8000/v1
    model: str                     # "" = ask the server (GET /models) and use its first model
    api_key_env: str = DEFAULT_KEY_ENV
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    response_format: ResponseFormat = "auto"
    # sent to models that take it (OpenAI's reasoning models); None: the server's default
    reasoning_effort: ReasoningEffort | None = None
    # the account's limits for this endpoint, when known; else learned from x-ratelimit-* headers
    rpm: float | None = Field(None, gt=0)
    tpm: float | None = Field(None, gt=0)
    source: str = "explicit"       # where the profile came from, for display: env | openai | local
    # the Batch API batch jobs use (core.llm.batch.routes.route_of); auto: Anthropic's on api.anthropic.com, else OpenAI's
    batch_api: BatchAPI = "auto"

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (got {value!r})")
        return value

    @model_serializer(mode="wrap")
    def _omit_default_key_env(self, handler):
        # Dropping an *implicit* api_key_env from dumps keeps it implicit after a round trip
        # (Profile(**p.model_dump())), so a stored profile can never start sending
        # OPENAI_API_KEY to a custom server.
        data = handler(self)
        if isinstance(data, dict) and "api_key_env" not in self.model_fields_set:
            data.pop("api_key_env", None)
        return data

    @property
    def key_env_explicit(self) -> bool:
        return "api_key_env" in self.model_fields_set

    @property
    def is_openai(self) -> bool:
        return is_openai_url(self.base_url)

    @property
    def is_local(self) -> bool:
        return is_loopback_url(self.base_url)

    def public(self) -> dict[str, Any]:
        """What may be shown or stored (job params, UI): everything but secrets (there are none)."""
        return self.model_dump()


# ---------------------------------------------------------------- URLs


def _host(url: str) -> str:
    return (urlparse(url).hostname or "").lower()


def is_openai_url(url: str) -> bool:
    return _host(url) == "api.openai.com"


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(_host(url))


# ---------------------------------------------------------------- keys (files: core.secrets_file)


def resolve_api_key(profile: Profile, secrets: list[Path] | None = None) -> str:
    """The key to send for this profile (read now, never cached on disk).

    * A custom (non-OpenAI) base URL whose profile did not name a key variable gets no real key.
    * A key typed on the Generate page for this session only (`hold_session_key`) is read from
      this process's memory; once the process has restarted it is gone, and the call is refused.
    * Loopback servers get a dummy key when their variable is unset.
    * api.openai.com without a key is a configuration error with the fix in its message.
    """
    if not profile.is_openai and not profile.key_env_explicit:
        return DUMMY_KEY
    name = profile.api_key_env
    if name.startswith(SESSION_KEY_PREFIX):
        held = session_key(name)
        if held is None:
            raise ShoalError(
                f"The {profile.role} profile's API key was typed on the Generate page for that session only, "
                "and the app has restarted since: type the key again in the Models panel (or save it to "
                ".streamlit/secrets.toml there).")
        return held
    key = (os.environ.get(name) or "").strip() or secrets_file.read_secret(name, secrets)
    if key:
        return key
    if profile.is_openai:
        raise ShoalError(
            f"The {profile.role} profile uses {profile.base_url} but no API key was found: "
            f"set the environment variable {name} or add `{name} = \"...\"` to .streamlit/secrets.toml.")
    return DUMMY_KEY


# ---------------------------------------------------------------- keys typed on the page

# A key typed on the Generate page lives here, in this process's memory only, under a name no
# environment variable has (a profile names it like any key variable: job records hold the
# name, never the key). Each page session has its own names, so sessions never share keys.
_SESSION_KEYS: dict[str, str] = {}       # names start with SESSION_KEY_PREFIX (core.secrets_file)
_SESSION_KEYS_LOCK = threading.Lock()


def session_key_name(role: str, token: str) -> str:
    """The key variable name of `role`'s session key in the page session `token`."""
    return f"{SESSION_KEY_PREFIX}{role.upper()}_{token}"


def hold_session_key(name: str, key: str) -> None:
    """Keep `key` in memory under `name` (an empty key forgets it)."""
    if not name.startswith(SESSION_KEY_PREFIX):
        raise ValueError(f"{name!r} is not a session key name")
    with _SESSION_KEYS_LOCK:
        if key.strip():
            _SESSION_KEYS[name] = key.strip()
        else:
            _SESSION_KEYS.pop(name, None)


def session_key(name: str) -> str | None:
    with _SESSION_KEYS_LOCK:
        return _SESSION_KEYS.get(name)


def key_source(profile: Profile, secrets: list[Path] | None = None) -> str:
    """Where this profile's key would come from, for display (never the key itself)."""
    if not profile.base_url:
        return "no key needed (embedded model)"
    if not profile.is_openai and not profile.key_env_explicit:
        return "no key sent (a custom server gets one only when you give it one)"
    name = profile.api_key_env
    if name.startswith(SESSION_KEY_PREFIX):
        return "typed here, kept for this session only" if session_key(name) else "none (the session key is gone)"
    if (os.environ.get(name) or "").strip():
        return f"environment variable {name}"
    for path in secrets if secrets is not None else secrets_file.secrets_paths():
        try:
            if path.is_file() and secrets_file.read_secret(name, [path]):
                return f"{name} in {path}"
        except ShoalError:
            return f"{path} cannot be read"
    return f"none yet ({name} is not set)"


# ---------------------------------------------------------------- SHOAL_<ROLE>_* settings


def env_value(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def _number(name: str, kind: type, default):
    raw = env_value(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ShoalError(f"{name}={raw!r} is not a valid {kind.__name__}.") from None


def role_settings(role: str) -> dict[str, Any]:
    """SHOAL_<ROLE>_* variables that are set (without defaults)."""
    p = f"SHOAL_{role.upper()}_"
    out: dict[str, Any] = {}
    for field, kind in (("base_url", str), ("model", str), ("api_key_env", str),
                        ("temperature", float), ("max_tokens", int), ("timeout_s", float),
                        ("response_format", str), ("reasoning_effort", str), ("rpm", float),
                        ("tpm", float), ("batch_api", str)):
        env_name = p + ("TIMEOUT" if field == "timeout_s" else field.upper())
        if env_value(env_name) is not None:
            out[field] = _number(env_name, kind, None)
    return out
