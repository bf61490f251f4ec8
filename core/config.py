"""LLM endpoint profiles (generator, judge) and where their API keys come from.

A profile names the variable that holds its key (`api_key_env`); the key itself is read at
call time from the environment or `.streamlit/secrets.toml` and is never stored in a
profile, DuckDB, a log or an export.

Key safety (the simonw/llm lesson): a custom base URL (vLLM, Ollama, OpenRouter, ...) never
receives the default `OPENAI_API_KEY` unless the profile names it explicitly. Loopback
servers get a dummy key.

A key typed on the Generate page is held in this process's memory under a session-only name
(`hold_session_key`), or written into secrets.toml on request (`write_secret`, merged with what
the file holds); either way the profile carries only the name.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
import threading
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import urlparse

import pydantic
from pydantic import Field, field_validator, model_serializer

from core.errors import ShoalError

ROLES = ("generator", "judge")
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


def is_loopback_url(url: str) -> bool:
    host = _host(url)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- keys


def secrets_paths() -> list[Path]:
    """Where Streamlit keeps secrets: the project's .streamlit/ first, then the user's."""
    paths = [Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"]
    if os.environ.get("SHOAL_SECRETS_FILE"):
        paths.insert(0, Path(os.environ["SHOAL_SECRETS_FILE"]).expanduser())
    return paths


def _read_secret(name: str, paths: list[Path] | None = None) -> str | None:
    for path in paths if paths is not None else secrets_paths():
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ShoalError(f"Cannot read secrets file {path}: {exc}") from None
        value = data.get(name)
        if value is None and isinstance(data.get("shoal"), dict):
            value = data["shoal"].get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _secrets_tables(paths: list[Path] | None) -> list[dict[str, Any]]:
    """Every secrets file that exists, parsed (project file first)."""
    out = []
    for path in paths if paths is not None else secrets_paths():
        if not path.is_file():
            continue
        try:
            out.append(tomllib.loads(path.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ShoalError(f"Cannot read secrets file {path}: {exc}") from None
    return out


def oidc_configured(paths: list[Path] | None = None) -> bool:
    """Whether Streamlit's `st.login` has an `[auth]` section to work with (redirect + cookie secret)."""
    for data in _secrets_tables(paths):
        auth = data.get("auth")
        if isinstance(auth, dict) and auth.get("redirect_uri") and auth.get("cookie_secret"):
            return True
    return False


LOCAL_SIGN_IN_ENV = "SHOAL_LOCAL_SIGN_IN"


def local_sign_in_env() -> bool:
    """SHOAL_LOCAL_SIGN_IN=1 (or true / yes / on) turns local sign-in on without a secrets file."""
    return (os.environ.get(LOCAL_SIGN_IN_ENV) or "").strip().lower() in ("1", "true", "yes", "on")


def local_sign_in_in_files(paths: list[Path] | None = None) -> bool:
    """`[shoal.local_sign_in] enabled = true` in a secrets file (core.team.local_accounts)."""
    for data in _secrets_tables(paths):
        shoal = data.get("shoal")
        section = shoal.get("local_sign_in") if isinstance(shoal, dict) else None
        if isinstance(section, dict) and section.get("enabled") is True:
            return True
    return False


def local_sign_in_configured(paths: list[Path] | None = None) -> bool:
    """Whether local sign-in (email + password, accounts in DuckDB) is on: env var or secrets file."""
    return local_sign_in_env() or local_sign_in_in_files(paths)


def sign_in_configured(paths: list[Path] | None = None) -> bool:
    """Whether a team is configured: sign-in through an OIDC provider (`[auth]`, Streamlit's
    `st.login`) or local sign-in (`[shoal.local_sign_in]` / SHOAL_LOCAL_SIGN_IN), or both. Then roles
    hold for everyone but this machine's own user, and the app may listen beyond loopback."""
    return oidc_configured(paths) or local_sign_in_configured(paths)


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    key = (os.environ.get(name) or "").strip() or _read_secret(name, secrets)
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
SESSION_KEY_PREFIX = "SHOAL_SESSION_KEY_"
_SESSION_KEYS: dict[str, str] = {}
_SESSION_KEYS_LOCK = threading.Lock()
_KEY_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    for path in secrets if secrets is not None else secrets_paths():
        try:
            if path.is_file() and _read_secret(name, [path]):
                return f"{name} in {path}"
        except ShoalError:
            return f"{path} cannot be read"
    return f"none yet ({name} is not set)"


def secrets_file_for_writing() -> Path:
    """Where a key saved from the page goes: $SHOAL_SECRETS_FILE, else the project's
    .streamlit/secrets.toml (Streamlit's own place, ignored by git)."""
    return secrets_paths()[0]


def _toml_string(value: str) -> str:
    # JSON's escapes (\" \\ \n \uXXXX ...) are all valid in a TOML basic string
    return json.dumps(value, ensure_ascii=True)


def write_secret(name: str, value: str, path: Path | None = None) -> Path:
    """Set the top-level `name = "value"` in a secrets.toml, keeping everything else in it
    (other keys, tables such as [auth], comments). Refuses to touch a file that does not parse.
    Written atomically, readable by the owner only. Returns the file's path."""
    if not _KEY_NAME_RE.match(name) or name.startswith(SESSION_KEY_PREFIX):
        raise ShoalError(f"{name!r} cannot be a secrets.toml key name.")
    value = value.strip()
    if not value or "\n" in value or "\r" in value:
        raise ShoalError("The key to save is empty or spans lines.")
    path = Path(path or secrets_file_for_writing()).expanduser()
    text, before = "", {}
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        try:
            before = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ShoalError(f"{path} is not valid TOML ({exc}); fix it before saving a key into it.") from None
    new_text = _with_top_level_line(text, name, f"{name} = {_toml_string(value)}")
    try:
        after = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError:
        after = {}
    others_kept = {k: v for k, v in after.items() if k != name} == {k: v for k, v in before.items() if k != name}
    if after.get(name) != value or not others_kept:
        raise ShoalError(f"Could not set {name} in {path} without changing the rest of it; edit the file by hand.")
    _write_private(path, new_text)
    return path


def _with_top_level_line(text: str, name: str, line: str) -> str:
    """`text` with the top-level assignment of `name` replaced by `line` (or `line` added before
    the first [table], where top-level keys must be)."""
    lines = text.splitlines()
    assign = re.compile(rf"^\s*(?:{re.escape(name)}|\"{re.escape(name)}\")\s*=")
    first_table = next((i for i, raw in enumerate(lines) if raw.lstrip().startswith("[")), len(lines))
    for i in range(first_table):
        if assign.match(lines[i]):
            lines[i] = line
            break
    else:
        lines.insert(first_table, line)
        if first_table < len(lines) - 1 and lines[first_table + 1].strip():
            lines.insert(first_table + 1, "")
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secrets-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- profiles from the environment


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def _number(name: str, kind: type, default):
    raw = _env(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ShoalError(f"{name}={raw!r} is not a valid {kind.__name__}.") from None


def _role_settings(role: str) -> dict[str, Any]:
    """SHOAL_<ROLE>_* variables that are set (without defaults)."""
    p = f"SHOAL_{role.upper()}_"
    out: dict[str, Any] = {}
    for field, kind in (("base_url", str), ("model", str), ("api_key_env", str),
                        ("temperature", float), ("max_tokens", int), ("timeout_s", float),
                        ("response_format", str), ("reasoning_effort", str), ("rpm", float),
                        ("tpm", float), ("batch_api", str)):
        env_name = p + ("TIMEOUT" if field == "timeout_s" else field.upper())
        if _env(env_name) is not None:
            out[field] = _number(env_name, kind, None)
    return out


# Teacher settings from the papers: generator temperature 1 / 512 tokens; a judge answers
# deterministically and needs room for one reason per rule.
ROLE_DEFAULTS = {"generator": {"temperature": 1.0, "max_tokens": 512},
                 "judge": {"temperature": 0.0, "max_tokens": 768}}


LOCAL_TIMEOUT_S = 600.0


def _local_max_tokens(role: str) -> int:
    from core.llm import local_model as local_llm
    return local_llm.MAX_TOKENS[role]


def endpoint_configured() -> bool:
    """True when some remote/explicit endpoint is set (else the embedded local model is used)."""
    return any(_env(f"SHOAL_{r.upper()}_BASE_URL") for r in ROLES) \
        or bool(_env("OPENAI_BASE_URL") or _env("OPENAI_API_KEY"))


def load_profiles(start_local: bool = True) -> dict[str, Profile]:
    """{"generator": Profile, "judge": Profile} from the environment.

    Per role, in order: SHOAL_<ROLE>_BASE_URL / _MODEL / _API_KEY_ENV / _TEMPERATURE /
    _MAX_TOKENS / _TIMEOUT / _RESPONSE_FORMAT / _REASONING_EFFORT / _RPM / _TPM / _BATCH_API; a judge without
    its own base URL uses the generator's endpoint (and its RPM/TPM limits); then OPENAI_BASE_URL + OPENAI_API_KEY (+ OPENAI_MODEL); else the
    embedded llama.cpp server (`core.llm.local_model.ensure_server()`, started only when
    start_local is true; otherwise base_url is "" until it is started).
    """
    gen = _role_settings("generator")
    out: dict[str, Profile] = {}
    for role in ROLES:
        own = _role_settings(role)
        settings: dict[str, Any] = dict(ROLE_DEFAULTS[role])
        if role == "judge" and "base_url" not in own and "base_url" in gen:
            settings.update({k: gen[k] for k in FOLLOWED_BY_JUDGE if k in gen})
        settings.update(own)
        source = "env"
        if "base_url" not in settings:
            if _env("OPENAI_BASE_URL") or _env("OPENAI_API_KEY"):
                settings["base_url"] = _env("OPENAI_BASE_URL") or OPENAI_BASE_URL
                # the user set OPENAI_* for this URL themselves: the key is meant for it
                settings.setdefault("api_key_env", DEFAULT_KEY_ENV)
                default_model = OPENAI_DEFAULT_MODEL if is_openai_url(settings["base_url"]) else ""
                settings.setdefault("model", _env("OPENAI_MODEL") or default_model)
                source = "openai"
            else:
                settings.update(_local_settings(role, own, start_local, settings.get("model")))
                source = "local"
        settings.setdefault("model", "")
        try:
            out[role] = Profile(role=role, source=source, **settings)
        except pydantic.ValidationError as exc:
            raise ShoalError(f"Invalid {role} LLM settings: {exc.errors()[0]['msg']} "
                             f"({'.'.join(map(str, exc.errors()[0]['loc']))})") from None
    return out


# What a judge that was not configured apart takes from the generator: its server, model, key and
# limits. Temperature and token budget stay the judge's own (it answers deterministically and needs
# room for one reason per rule).
FOLLOWED_BY_JUDGE = ("base_url", "model", "api_key_env", "timeout_s", "response_format", "rpm", "tpm", "batch_api")


def judge_set_apart() -> bool:
    """Whether the environment names the judge's own server or model (SHOAL_JUDGE_BASE_URL /
    SHOAL_JUDGE_MODEL); else the judge follows whatever the generator is set to."""
    return bool(_env("SHOAL_JUDGE_BASE_URL") or _env("SHOAL_JUDGE_MODEL"))


def judge_following(generator: Profile) -> Profile:
    """The judge's profile when it follows the generator: the generator's endpoint, model and key
    (the embedded model included), with the judge's own defaults and SHOAL_JUDGE_* settings for
    temperature, token budget and reasoning effort. One rule for the environment's profiles, the
    Models panel's choice, the job and the judge calibration."""
    if generator.source == "local":
        prof = local_profile("judge", start=False, model=generator.model or None)
        return prof.model_copy(update={"base_url": generator.base_url}) if generator.base_url else prof
    gen = generator.model_dump()          # an implicit key variable stays implicit (see Profile)
    settings: dict[str, Any] = dict(ROLE_DEFAULTS["judge"])
    settings.update({k: gen[k] for k in FOLLOWED_BY_JUDGE if k in gen})
    settings.update({k: v for k, v in _role_settings("judge").items() if k not in ("base_url", "model", "api_key_env")})
    return Profile(role="judge", source=generator.source, **settings)


def resolve_profiles(generator: Profile, judge: Profile | None = None) -> dict[str, Profile]:
    """Both roles' profiles: `judge` when it was configured apart, else the judge follows the generator."""
    return {"generator": generator, "judge": judge if judge is not None else judge_following(generator)}


def _local_settings(role: str, own: dict[str, Any], start: bool, model: str | None) -> dict[str, Any]:
    settings = _local_endpoint(start, model)
    # a 135M model on 2 CPU cores: ~15 tokens/s, one request at a time
    settings["timeout_s"] = own.get("timeout_s", LOCAL_TIMEOUT_S)
    settings["max_tokens"] = own.get("max_tokens", _local_max_tokens(role))
    return settings


def local_profile(role: str, start: bool = False, model: str | None = None) -> Profile:
    """The embedded model's profile for `role`, also when an endpoint is configured (the Models
    panel's "embedded local model" choice); base_url is "" until the server is started."""
    from core.llm import local_model as local_llm
    own = _role_settings(role)
    name = model if model and (model in local_llm.MODELS or model.endswith(".gguf")) else None
    settings: dict[str, Any] = dict(ROLE_DEFAULTS[role])
    settings.update({k: v for k, v in own.items() if k in ("temperature", "reasoning_effort")})
    settings.update(_local_settings(role, own, start, name))
    return Profile(role=role, source="local", **settings)


def _local_endpoint(start: bool, model: str | None) -> dict[str, Any]:
    from core.llm import local_model as local_llm
    if not start:
        return {"base_url": "", "model": model or local_llm.resolve_model(None).name}
    server = local_llm.ensure_server(model or None)
    return {"base_url": server.base_url, "model": server.model}


# ---------------------------------------------------------------- how many calls at once

# Items a generation job keeps in flight (and requests a judge calibration sends at once) unless
# asked otherwise: the page's field, `shoal generate --concurrency` and the clients all start here.
DEFAULT_CONCURRENCY = 8


def uses_local_model(profiles: Mapping[str, Any]) -> bool:
    """Whether any role runs on the embedded model (a Profile or a stored profile dict)."""
    return any((p.get("source") if isinstance(p, dict) else getattr(p, "source", "")) == "local"
               for p in profiles.values())


def job_concurrency(profiles: Mapping[str, Any], asked: int | None = None) -> int:
    """The concurrency a job on these profiles runs at: what was asked (else DEFAULT_CONCURRENCY),
    capped for the embedded model, which answers one request at a time (more would only queue there
    and time out). The one place this rule is applied: page, CLI and runner all ask here."""
    n = max(1, int(asked or DEFAULT_CONCURRENCY))
    if uses_local_model(profiles):
        from core.llm.local_model import RECOMMENDED_CONCURRENCY
        n = min(n, RECOMMENDED_CONCURRENCY)
    return n


# ---------------------------------------------------------------- model names


def list_server_models(profile: Profile, timeout: float = 5.0) -> list[str] | None:
    """Model ids from GET {base_url}/models (with the profile's key), or None when it cannot be read."""
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(profile.base_url.rstrip("/") + "/models",
                                 headers={"Authorization": f"Bearer {resolve_api_key(profile)}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = json.loads(resp.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    items = data.get("data") if isinstance(data, dict) else None
    return [str(m["id"]) for m in items or [] if isinstance(m, dict) and m.get("id")]


def with_model_names(profiles: dict[str, Profile], list_models=list_server_models) -> dict[str, Profile]:
    """The profiles with every model name filled in, so what a job records (and the dataset card
    shows) never has an empty model. A profile with a server URL but no model takes the first
    model the server lists; when the server lists none or cannot be asked, a clear refusal."""
    out = {}
    for role, prof in profiles.items():
        if prof.model.strip() or not prof.base_url:
            out[role] = prof
            continue
        models = list_models(prof)
        if not models:
            why = "does not answer GET /models" if models is None else "lists no models"
            raise ShoalError(f"No {role} model name is set and the server at {prof.base_url} {why}: "
                             f"type the model name in the {role} model field (or set SHOAL_{role.upper()}_MODEL).")
        data = prof.model_dump()
        data["model"] = models[0]
        out[role] = Profile(**data)
    return out


def ready_profiles(profiles: dict[str, Profile], list_models=list_server_models) -> dict[str, Profile]:
    """The profiles a new job records: the embedded model started where a role uses it (its URL known),
    and every model name filled in (`with_model_names`)."""
    started = {role: p if p.base_url or p.source != "local" else local_profile(role, start=True, model=p.model or None)
               for role, p in profiles.items()}
    return with_model_names(started, list_models)
