"""Endpoint presets for the Generate page's Models panel, and the profile a panel choice makes.

A preset says where a kind of server usually listens, which variable its key is read from and
what it is known for (which Batch API it has, a response_format it takes); the endpoint's capabilities
record (core.llm.capabilities) then starts from that family's defaults. `profile_for_choice`
turns what the panel shows (preset, base URL, model, key variable) into the `Profile` the next
job uses; keys never enter it (a profile names its key's variable, see core.config).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from core.config import DEFAULT_KEY_ENV, OPENAI_BASE_URL, OPENAI_DEFAULT_MODEL, Profile, key_source, resolve_api_key
from core.errors import ShoalError
from core.llm.capabilities import defaults_for, family_of, load_capabilities
from core.llm.profiles import ROLE_DEFAULTS, judge_following, judge_set_apart, local_profile
from core.store import Store

__all__ = ["Preset", "PRESETS", "SAME", "SAME_NOTE", "preset_of", "presets_for", "preset_label", "default_preset",
           "key_env_for",
           "profile_for_choice", "profiles_for_choices", "list_models", "ModelList", "endpoint_summary",
           "batch_support", "LOCAL_DEMO_NOTE"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1/"
LOCAL_DEMO_NOTE = ("The embedded local model only demonstrates the flow: a 135M-parameter model on the CPU "
                   "writes weak examples and its judge passes almost nothing. Pick a real model for a "
                   "dataset you mean to train on.")


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    base_url: str                  # the usual address ("" for the embedded model)
    key_env: str | None = None     # the variable its key is read from; None: SHOAL_<ROLE>_API_KEY if set
    default_model: str = ""        # "" = the first model the server lists
    response_format: str = "auto"  # what to fix when the family needs it
    # "openai": OpenAI's Batch API; "anthropic": Anthropic's Message Batches; "maybe": OpenAI's if the
    # server has /v1/batches (found out when the job submits); "": none
    batch_api: str = ""
    note: str = ""


PRESETS: dict[str, Preset] = {p.key: p for p in (
    Preset("openai", "OpenAI", OPENAI_BASE_URL, DEFAULT_KEY_ENV, OPENAI_DEFAULT_MODEL, batch_api="openai",
           note="Reasoning models (o1, o3, o4-mini, gpt-5*) get max_completion_tokens and no temperature."),
    Preset("anthropic", "Anthropic", ANTHROPIC_BASE_URL, "ANTHROPIC_API_KEY", batch_api="anthropic",
           note="Online calls go through Anthropic's OpenAI-compatible endpoint, batch mode through its Message "
                "Batches API (half price). Anthropic has no response_format: the schema is described in the "
                "prompt and the reply validated here."),
    Preset("vllm", "vLLM", "http://127.0.0.1:8000/v1",
           note="vLLM constrains json_schema; the model name is the one `vllm serve` was started with."),
    Preset("ollama", "Ollama", "http://127.0.0.1:11434/v1", note="Model names as `ollama list` shows them."),
    Preset("llamacpp", "llama.cpp server", "http://127.0.0.1:8080/v1", response_format="json_object",
           note="llama.cpp constrains json_object with a schema (its json_schema support varies)."),
    Preset("local", "Embedded local model", "", note=LOCAL_DEMO_NOTE),
    Preset("custom", "Any OpenAI-compatible URL", "", batch_api="maybe",
           note="OpenRouter, LiteLLM, a proxy, ...: what it accepts is learned from its first errors."),
)}
# The judge's choice that follows the generator: its server, model and key (not a server of its own,
# so not a preset; the generator cannot pick it).
SAME = "same"
SAME_LABEL = "Same as the generator"
SAME_NOTE = ("The judge uses the generator's server, model and key, with its own temperature (0) and token "
             "budget.")


def presets_for(role: str) -> list[str]:
    """The choices a role's endpoint field offers: the judge may also follow the generator (its first)."""
    return [SAME, *PRESETS] if role == "judge" else list(PRESETS)


def preset_label(key: str) -> str:
    return SAME_LABEL if key == SAME else PRESETS[key].label


def default_preset(role: str, base: Profile) -> str:
    """The panel's first choice for a role: the judge follows the generator unless the environment
    set it apart (SHOAL_JUDGE_BASE_URL / SHOAL_JUDGE_MODEL)."""
    return SAME if role == "judge" and not judge_set_apart() else preset_of(base)


def preset_of(profile: Profile) -> str:
    """The preset a configured profile matches (by host and port), "custom" when none does."""
    if profile.source == "local" or not profile.base_url:
        return "local"
    parsed = urlparse(profile.base_url)
    host, port = (parsed.hostname or "").lower(), parsed.port
    if host == "api.openai.com":
        return "openai"
    if host == "api.anthropic.com":
        return "anthropic"
    for key in ("vllm", "ollama", "llamacpp"):
        if port is not None and port == urlparse(PRESETS[key].base_url).port:
            return key
    return "custom"


def key_env_for(preset: str, role: str) -> str:
    """The variable (in the environment or secrets.toml) a preset's key is read from and saved to."""
    return PRESETS[preset].key_env or f"SHOAL_{role.upper()}_API_KEY"


def _named_key_env(base: Profile, preset: str, url: str, session_name: str | None) -> str | None:
    """Which key variable the chosen profile names: the session key when one is typed, the
    preset's variable (OPENAI_API_KEY, ANTHROPIC_API_KEY), the variable the environment's
    profile named for this URL, or SHOAL_<ROLE>_API_KEY when it is set somewhere; else none
    (a custom server gets no key it was not given)."""
    if session_name:
        return session_name
    if PRESETS[preset].key_env:
        return PRESETS[preset].key_env
    if base.key_env_explicit and url == base.base_url:
        return base.api_key_env
    own = key_env_for(preset, base.role)
    probe = Profile.model_validate({"role": base.role, "base_url": "http://127.0.0.1/v1", "model": "",
                                    "api_key_env": own})   # only the name counts
    return own if not key_source(probe).startswith("none") else None


def profile_for_choice(base: Profile, preset: str, base_url: str, model: str,
                       session_key_name: str | None = None) -> Profile:
    """The profile the Models panel's choice makes for `base.role`.

    `base` is the environment's profile (load_profiles): its settings (token budget, timeout,
    limits, reasoning effort) are kept while the choice is a server; a switch away from the
    embedded model starts from the role's defaults instead of the tiny model's. The embedded
    choice gives a profile without base URL (started when a job starts)."""
    if preset not in PRESETS:
        raise ShoalError(f"Unknown endpoint preset {preset!r}; choose one of: {', '.join(presets_for(base.role))}.")
    role = base.role
    url = base_url.strip()
    if preset == "local":
        return base if base.source == "local" else local_profile(role, start=False, model=model.strip() or None)
    if not url:
        raise ShoalError(f"Type the {role} server's base URL (it usually ends in /v1), or choose the embedded "
                         "local model.")
    data: dict[str, Any] = base.model_dump() if base.source != "local" else {"role": role, **ROLE_DEFAULTS[role]}
    data.pop("api_key_env", None)
    data.update(base_url=url, model=model.strip())
    data["source"] = base.source if (url == base.base_url and base.source != "local") else "explicit"
    fixed = PRESETS[preset].response_format
    if fixed != "auto" and data.get("response_format", "auto") == "auto":
        data["response_format"] = fixed
    route = PRESETS[preset].batch_api
    if route in ("openai", "anthropic"):
        data["batch_api"] = route          # also for a gateway or test server at another URL
    elif url != base.base_url:
        data["batch_api"] = "auto"
    key_env = _named_key_env(base, preset, url, session_key_name)
    if key_env:
        data["api_key_env"] = key_env
    try:
        return Profile(**data)
    except ValueError as exc:   # pydantic's ValidationError: a URL without http(s)://
        first = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        raise ShoalError(f"The {role} base URL is not valid: {first}") from None


def profiles_for_choices(base: dict[str, Profile], choices: dict[str, tuple]) -> dict[str, Profile]:
    """The profiles for the panel's choices (role -> profile_for_choice's preset, base URL, model, session
    key name), for the roles given: a judge whose choice is SAME follows the generator's
    (core.llm.profiles.judge_following), so it needs the generator's choice too."""
    out = {role: profile_for_choice(base[role], *choice) for role, choice in choices.items() if choice[0] != SAME}
    if choices.get("judge", ("",))[0] == SAME:
        if "generator" not in out:
            raise ShoalError("The judge follows the generator: choose the generator's endpoint first.")
        out["judge"] = judge_following(out["generator"])
    return {role: out[role] for role in choices}


# ---------------------------------------------------------------- the server's models


@dataclass
class ModelList:
    ids: list[str]
    error: str | None = None       # why the list could not be read (with what to do)


def list_models(profile: Profile, timeout_s: float = 10.0) -> ModelList:
    """The model ids the server lists (GET {base_url}/models, with the profile's key)."""
    import openai

    from core.llm.transport import short_error
    if not profile.base_url:
        return ModelList([], "the embedded model is not started yet; its model is the one shown")
    try:
        client = openai.OpenAI(base_url=profile.base_url, api_key=resolve_api_key(profile),
                               max_retries=0, timeout=timeout_s)
        if not profile.is_openai:
            client.organization = client.project = None
        ids = sorted(str(m.id) for m in client.models.list())
    except ShoalError as exc:
        return ModelList([], str(exc))
    except openai.APIError as exc:
        status = getattr(exc, "status_code", None)
        why = {401: "the server refused the key", 403: "the key may not list models",
               404: "no /models route there (check the URL; it usually ends in /v1)"}.get(status or 0, "")
        return ModelList([], f"GET {profile.base_url.rstrip('/')}/models failed: {short_error(exc)}"
                             + (f" ({why})" if why else "") + ". Type the model name instead.")
    if not ids:
        return ModelList([], "the server lists no models: type the model name")
    return ModelList(ids)


# ---------------------------------------------------------------- what is known before a test


def endpoint_summary(store: Store, profile: Profile) -> dict[str, Any]:
    """The family an endpoint starts from and what it is known to accept (remembered from
    earlier calls when there were any, else the family's defaults)."""
    family = family_of(profile.base_url, profile.model, profile.source)
    stored = load_capabilities(store, profile.base_url, profile.model) if profile.base_url and profile.model else None
    caps = stored or defaults_for(family)
    return {"family": family, "known_from": "earlier calls" if stored else "family defaults",
            "token_param": caps.token_param, "temperature": caps.sampling,
            "reasoning_effort": caps.reasoning_effort, "mode": caps.current,
            "strict": caps.strict and caps.current == "json_schema", "key": key_source(profile)}


def batch_support(profiles: dict[str, Profile], presets: dict[str, str]) -> tuple[bool, str]:
    """Whether a job on these profiles can run in batch mode, and why not."""
    from core.llm.batch.routes import check_batch_profiles
    for role in profiles:
        key = presets.get(role, "custom")
        key = presets.get("generator", "custom") if key == SAME else key     # it follows the generator's
        preset = PRESETS.get(key, PRESETS["custom"])
        if not preset.batch_api:
            return False, f"the {role}'s endpoint ({preset.label}) has no Batch API"
    try:
        check_batch_profiles(profiles)
    except ShoalError as exc:
        return False, str(exc)
    return True, ""
