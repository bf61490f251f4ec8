"""Which profiles a job uses: the environment's (SHOAL_<ROLE>_*, then OPENAI_*, else the embedded
model), a judge that follows the generator unless set apart, the embedded model's own profile, and
profiles readied for a job (the embedded server started, model names read from the server).

What a profile is, and where its key comes from, is core.config.
"""
from __future__ import annotations

from typing import Any

import pydantic

from core.config import (
    DEFAULT_KEY_ENV,
    LLM_ROLES,
    OPENAI_BASE_URL,
    OPENAI_DEFAULT_MODEL,
    Profile,
    env_value,
    is_openai_url,
    resolve_api_key,
    role_settings,
)
from core.errors import ShoalError
from core.llm import local_model as local_llm

# Teacher settings from the papers: generator temperature 1 / 512 tokens; a judge answers
# deterministically and needs room for one reason per rule.
ROLE_DEFAULTS = {"generator": {"temperature": 1.0, "max_tokens": 512},
                 "judge": {"temperature": 0.0, "max_tokens": 768}}


LOCAL_TIMEOUT_S = 600.0


def _local_max_tokens(role: str) -> int:
    return local_llm.MAX_TOKENS[role]


def endpoint_configured() -> bool:
    """True when some remote/explicit endpoint is set (else the embedded local model is used)."""
    return any(env_value(f"SHOAL_{r.upper()}_BASE_URL") for r in LLM_ROLES) \
        or bool(env_value("OPENAI_BASE_URL") or env_value("OPENAI_API_KEY"))


def load_profiles(start_local: bool = True) -> dict[str, Profile]:
    """{"generator": Profile, "judge": Profile} from the environment.

    Per role, in order: SHOAL_<ROLE>_BASE_URL / _MODEL / _API_KEY_ENV / _TEMPERATURE /
    _MAX_TOKENS / _TIMEOUT / _RESPONSE_FORMAT / _REASONING_EFFORT / _RPM / _TPM / _BATCH_API; a judge without
    its own base URL uses the generator's endpoint (and its RPM/TPM limits); then OPENAI_BASE_URL + OPENAI_API_KEY (+ OPENAI_MODEL); else the
    embedded llama.cpp server (`core.llm.local_model.ensure_server()`, started only when
    start_local is true; otherwise base_url is "" until it is started).
    """
    gen = role_settings("generator")
    out: dict[str, Profile] = {}
    for role in LLM_ROLES:
        own = role_settings(role)
        settings: dict[str, Any] = dict(ROLE_DEFAULTS[role])
        if role == "judge" and "base_url" not in own and "base_url" in gen:
            settings.update({k: gen[k] for k in FOLLOWED_BY_JUDGE if k in gen})
        settings.update(own)
        source = "env"
        if "base_url" not in settings:
            if env_value("OPENAI_BASE_URL") or env_value("OPENAI_API_KEY"):
                settings["base_url"] = env_value("OPENAI_BASE_URL") or OPENAI_BASE_URL
                # the user set OPENAI_* for this URL themselves: the key is meant for it
                settings.setdefault("api_key_env", DEFAULT_KEY_ENV)
                default_model = OPENAI_DEFAULT_MODEL if is_openai_url(settings["base_url"]) else ""
                settings.setdefault("model", env_value("OPENAI_MODEL") or default_model)
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
    return bool(env_value("SHOAL_JUDGE_BASE_URL") or env_value("SHOAL_JUDGE_MODEL"))


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
    settings.update({k: v for k, v in role_settings("judge").items() if k not in ("base_url", "model", "api_key_env")})
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
    own = role_settings(role)
    name = model if model and (model in local_llm.MODELS or model.endswith(".gguf")) else None
    settings: dict[str, Any] = dict(ROLE_DEFAULTS[role])
    settings.update({k: v for k, v in own.items() if k in ("temperature", "reasoning_effort")})
    settings.update(_local_settings(role, own, start, name))
    return Profile(role=role, source="local", **settings)


def _local_endpoint(start: bool, model: str | None) -> dict[str, Any]:
    if not start:
        return {"base_url": "", "model": model or local_llm.resolve_model(None).name}
    server = local_llm.ensure_server(model or None)
    return {"base_url": server.base_url, "model": server.model}


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
