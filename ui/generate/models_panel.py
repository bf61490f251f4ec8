"""The Generate page's Models panel: per role (generator, judge) a preset, base URL, model, API key,
price and a connection test; its choice is the profile the next Start uses.

The preset, base URL and model are form fields (ui.persist: they survive a reload). The key is
not: it stays in this browser session (core.config.hold_session_key keeps it in the process's
memory for the jobs it starts), or is written to .streamlit/secrets.toml when asked. Prices go to
DuckDB (core.llm.prices) and from there into every cost figure of the app.
"""
from __future__ import annotations

import re
import secrets

import pandas as pd
import streamlit as st

from core.config import Profile, hold_session_key, key_source, session_key_name
from core.errors import ShoalError
from core.llm.local_model import resolve_model
from core.llm.presets import (
    LOCAL_DEMO_NOTE,
    PRESETS,
    SAME,
    SAME_NOTE,
    default_preset,
    endpoint_summary,
    key_env_for,
    list_models,
    preset_label,
    preset_of,
    presets_for,
    profiles_for_choices,
)
from core.llm.prices import apply_prices, price_of, set_model_price
from core.llm.profiles import local_profile
from core.secrets_file import secrets_file_for_writing, write_secret
from core.store import Store
from ui.persist import keep
from ui.text import plain, real_model_help

LOCAL_URL = "(embedded local model)"


# --------------------------------------------------------------------------- state: the form fields


def form_defaults(base_profiles: dict[str, Profile]) -> dict[str, str]:
    """The panel's persisted fields with their defaults, from the environment's profiles."""
    out: dict[str, str] = {}
    for role, prof in base_profiles.items():
        out[f"gen.{role}.preset"] = default_preset(role, prof)     # the judge follows the generator
        out[f"gen.{role}.base_url_in"] = prof.base_url or LOCAL_URL
        out[f"gen.{role}.model_in"] = prof.model
    return out


def allow_presets(form, roles) -> None:
    for role in roles:
        form.allow(f"gen.{role}.preset", presets_for(role))


def reconcile_presets(roles) -> None:
    """After the form is restored: a URL saved before presets existed (or typed for a preset since
    changed) is shown under the preset it matches, never silently replaced by the embedded model."""
    v = st.session_state
    for role in roles:
        url = str(v.get(f"gen.{role}.base_url_in", "")).strip()
        if v.get(f"gen.{role}.preset") == SAME:
            continue
        if v.get(f"gen.{role}.preset") == "local" and url and not url.startswith("("):
            try:
                v[f"gen.{role}.preset"] = preset_of(Profile(role=role, base_url=url, model=""))
            except ValueError:
                v[f"gen.{role}.preset"] = "custom"
        elif v.get(f"gen.{role}.preset") != "local" and url.startswith("("):
            v[f"gen.{role}.base_url_in"] = PRESETS[v[f"gen.{role}.preset"]].base_url


def _session_key_name(role: str) -> str | None:
    """The name this session's typed key for `role` is held under (None: no key typed)."""
    typed = str(st.session_state.get(f"gen.{role}.api_key", "") or "").strip()
    token = st.session_state.setdefault("gen.key_token", secrets.token_hex(8))
    name = session_key_name(role, token)
    hold_session_key(name, typed)
    return name if typed else None


def chosen_presets(roles) -> dict[str, str]:
    return {role: str(st.session_state.get(f"gen.{role}.preset", "custom")) for role in roles}


def chosen_profiles(base_profiles: dict[str, Profile]) -> dict[str, Profile]:
    """The profiles as the panel shows them now (the embedded model's without a URL until started)."""
    # a typed key is a widget's value: kept while the user is on another page (else it is dropped and
    # the next job would run without it)
    keep({f"gen.{role}.api_key": "" for role in base_profiles})
    return profiles_for_choices(base_profiles, _choices(base_profiles))   # a judge set to SAME follows the generator


def _choices(base_profiles: dict[str, Profile]) -> dict[str, tuple]:
    """Per role, what the panel shows: (preset, base URL, model, session key name)."""
    v = st.session_state
    choices = {}
    for role, base in base_profiles.items():
        url = str(v.get(f"gen.{role}.base_url_in", "")).strip()
        choices[role] = (str(v.get(f"gen.{role}.preset", "custom")), "" if url.startswith("(") else url,
                         str(v.get(f"gen.{role}.model_in", base.model)), _session_key_name(role))
    return choices


def started_profiles(profiles: dict[str, Profile]) -> dict[str, Profile]:
    """The profiles with the embedded model started where it is chosen."""
    if all(p.base_url for p in profiles.values()):
        return profiles
    with st.spinner("Starting the embedded local model (first start can take a minute)…"):
        return {r: p if p.base_url else local_profile(r, start=True, model=p.model) for r, p in profiles.items()}


# --------------------------------------------------------------------------- callbacks


def _apply_preset(role: str) -> None:
    """A preset was picked: fill in its usual URL and model (a custom URL keeps what is typed)."""
    v = st.session_state
    if v[f"gen.{role}.preset"] == SAME:
        return
    preset = PRESETS[v[f"gen.{role}.preset"]]
    if preset.key == "local":
        v[f"gen.{role}.base_url_in"], v[f"gen.{role}.model_in"] = LOCAL_URL, resolve_model(None).name
    elif preset.base_url:
        v[f"gen.{role}.base_url_in"], v[f"gen.{role}.model_in"] = preset.base_url, preset.default_model
    elif str(v.get(f"gen.{role}.base_url_in", "")).startswith("("):
        v[f"gen.{role}.base_url_in"], v[f"gen.{role}.model_in"] = "", ""
    v.pop(f"gen.{role}.models", None)
    v.pop(f"gen.{role}.probe", None)


def _pick_model(role: str) -> None:
    picked = st.session_state.get(f"gen.{role}.model_pick")
    if picked:
        st.session_state[f"gen.{role}.model_in"] = picked


def _save_key(role: str) -> None:
    v = st.session_state
    typed = str(v.get(f"gen.{role}.api_key", "") or "").strip()
    name = key_env_for(v[f"gen.{role}.preset"], role)
    try:
        path = write_secret(name, typed)
    except ShoalError as exc:
        v[f"gen.{role}.key_flash"] = ("error", str(exc))
        return
    v[f"gen.{role}.api_key"] = ""          # from now on read from the file, not the session
    v[f"gen.{role}.key_flash"] = ("success", f"Saved as {name} in {path}.")


def _save_price(store: Store, role: str, model: str) -> None:
    v = st.session_state
    k = f"gen.{role}.price"
    try:
        set_model_price(store, model, float(v[f"{k}.in.{model}"]), float(v[f"{k}.out.{model}"]),
                        float(v[f"{k}.batch.{model}"]))
    except ShoalError as exc:
        v[f"gen.{role}.key_flash"] = ("error", str(exc))


# --------------------------------------------------------------------------- the panel


def models_panel(store: Store, base_profiles: dict[str, Profile], local: bool) -> None:
    apply_prices(store)
    with st.expander("Models", expanded=local, key="gen.models_open"):   # a key: open while edited
        for n, role in enumerate(base_profiles):
            if n:
                st.divider()
            _role_block(store, role, base_profiles)
        if local:
            st.info(real_model_help())


def _role_block(store: Store, role: str, base_profiles: dict[str, Profile]) -> None:
    v = st.session_state
    c1, c2, c3 = st.columns([2, 3, 2])
    c1.selectbox(f"{role} endpoint", presets_for(role), key=f"gen.{role}.preset", format_func=preset_label,
                 on_change=_apply_preset, args=(role,))
    if v[f"gen.{role}.preset"] == SAME:
        _follows_generator(c2, base_profiles)
        return
    preset = PRESETS[v[f"gen.{role}.preset"]]
    c2.text_input(f"{role} base URL", key=f"gen.{role}.base_url_in", disabled=preset.key == "local",
                  help="The server's OpenAI-compatible address, usually ending in /v1.")
    c3.text_input(f"{role} model", key=f"gen.{role}.model_in",
                  help="Empty: the first model the server lists (asked when the job starts).")
    if preset.key == "local":
        st.warning(LOCAL_DEMO_NOTE)
    elif preset.note:
        st.caption(preset.note)
    try:
        prof = chosen_profiles({role: base_profiles[role]})[role]
    except ShoalError as exc:
        st.error(plain(exc))
        return
    if preset.key != "local":
        _model_list(role, prof)
        _key_fields(role, prof)
    summary = endpoint_summary(store, prof)
    st.caption(f"Starts from the **{summary['family']}** defaults ({summary['known_from']}): "
               f"{summary['token_param']}, temperature {'sent' if summary['temperature'] else 'not sent'}"
               f"{', reasoning_effort' if summary['reasoning_effort'] else ''}, output {summary['mode']}"
               f"{' strict' if summary['strict'] else ''}.")
    _price_fields(store, role, prof)
    if st.button("Test connection", key=f"gen.{role}.test"):
        _run_test(store, role, prof)
    _show_test(role, prof)


def _follows_generator(col, base_profiles: dict[str, Profile]) -> None:
    """The judge set to follow the generator: what it will use (no fields of its own)."""
    try:
        judge = profiles_for_choices(base_profiles, _choices(base_profiles))["judge"]
    except ShoalError as exc:
        col.caption(plain(exc))
        return
    where = "the embedded local model" if judge.source == "local" else judge.base_url
    col.caption(plain(f"{judge.model or 'the first model the server lists'} at {where}. {SAME_NOTE}"))


def _model_list(role: str, prof: Profile) -> None:
    v = st.session_state
    listed = v.get(f"gen.{role}.models")
    b, pick = st.columns([1, 4], vertical_alignment="bottom")
    if b.button("List models", key=f"gen.{role}.list_models", help="GET /v1/models on the server."):
        with st.spinner("Asking the server for its models…"):
            got = list_models(prof)
        listed = v[f"gen.{role}.models"] = {"url": prof.base_url, "ids": got.ids, "error": got.error}
    if not listed or listed["url"] != prof.base_url:
        return
    if listed["error"]:
        pick.error(f"{role}: cannot list the models: {listed['error']}")
        return
    pick.selectbox(f"{role}: the server's models ({len(listed['ids'])})", listed["ids"], index=None,
                   key=f"gen.{role}.model_pick", placeholder="Pick one (or type any name in the model field)",
                   on_change=_pick_model, args=(role,))


def _key_fields(role: str, prof: Profile) -> None:
    v = st.session_state
    k1, k2 = st.columns([3, 2], vertical_alignment="bottom")
    k1.text_input(f"{role} API key", key=f"gen.{role}.api_key", type="password",
                  live="500ms",   # a pasted key counts at once: Tab from here lands on "show password", no commit
                  help="Kept in this browser session only (never in the database, logs or exports). "
                       "To keep it, save it to .streamlit/secrets.toml.")
    name = key_env_for(v[f"gen.{role}.preset"], role)
    k2.button("Save key to secrets.toml", key=f"gen.{role}.save_key", on_click=_save_key, args=(role,),
              disabled=not str(v.get(f"gen.{role}.api_key", "") or "").strip(),
              help=f"Writes it as {name} into {secrets_file_for_writing()} (other entries are kept).")
    st.caption(f"Key: {key_source(prof)}")
    flash = v.pop(f"gen.{role}.key_flash", None)
    if flash:
        (st.success if flash[0] == "success" else st.error)(flash[1])


def _price_fields(store: Store, role: str, prof: Profile) -> None:
    model = prof.model.strip()
    if not model:
        st.caption("Price: set once the model is named.")
        return
    now = price_of(store, model, prof.base_url)
    k = f"gen.{role}.price"
    p1, p2, p3, p4 = st.columns([2, 2, 2, 3])
    p1.number_input(f"{role} input $ / 1M tokens", 0.0, 1000.0, value=float(now.input_per_m), step=0.05,
                    format="%.3f", key=f"{k}.in.{model}", on_change=_save_price, args=(store, role, model))
    p2.number_input(f"{role} output $ / 1M tokens", 0.0, 1000.0, value=float(now.output_per_m), step=0.05,
                    format="%.3f", key=f"{k}.out.{model}", on_change=_save_price, args=(store, role, model))
    p3.number_input(f"{role} batch price (share)", 0.0, 1.0, value=float(now.batch_discount), step=0.05,
                    key=f"{k}.batch.{model}", on_change=_save_price, args=(store, role, model),
                    help="A Batch API request costs this share of the online price (OpenAI, Anthropic: 0.5).")
    p4.caption(f"{model}: ${now.input_per_m:g} / ${now.output_per_m:g} per 1M tokens online, "
               f"${now.batch_input_per_m:g} / ${now.batch_output_per_m:g} in a batch ({now.source}).")


# --------------------------------------------------------------------------- Test connection


def _run_test(store: Store, role: str, prof: Profile) -> None:
    from core.llm import LLMClient
    try:
        prof = started_profiles({role: prof})[role]
        client = LLMClient(store, prof)
        try:
            with st.spinner("Calling the server…"):
                result = client.test_connection()
        finally:
            client.close()
    except ShoalError as exc:
        result = {"ok": False, "error": str(exc), "model": prof.model}
    st.session_state[f"gen.{role}.probe"] = {"for": (prof.base_url, prof.model), "report": result}


# What to do after a failed test, said in this panel's terms (the core's hints name SHOAL_<ROLE>_*
# variables, which the command line sets); keyed by core.llm.failures.Failure.reason.
PAGE_HINTS = {
    "context_length": "the prompt plus the reply's token limit is over {model}'s context window: use shorter "
                      "snippets or fewer few-shot examples, or pick a model with a larger window",
    "auth": "the server refused the API key: type the {role} API key again above (or save it to secrets.toml)",
    "model_not_found": "the server has no model {model!r} for this key: press “List models” and pick one, or "
                       "type a name it serves in the {role} model field",
    "quota": "the account's quota is used up: check its plan and billing (waiting does not help)",
    "too_large": "one request is larger than the tokens-per-minute limit: use shorter snippets or fewer "
                 "few-shot examples",
    "not_found": "no chat-completions route there: check the {role} base URL above (it usually ends in /v1)",
    "bad_request": "the server refused the request; its message says why",
}
_SETTING_WORDS = {"MODEL": "the {role} model field", "BASE_URL": "the {role} base URL field",
                  "API_KEY_ENV": "the {role} API key field", "API_KEY": "the {role} API key field",
                  "MAX_TOKENS": "the {role}'s output token limit (set when the app starts)",
                  "REASONING_EFFORT": "the {role}'s reasoning effort (set when the app starts)"}
_SETTING_RE = re.compile(r"\b(?:set |raise |lower )?SHOAL_(GENERATOR|JUDGE|<ROLE>)_([A-Z_]+)\b")


def page_words(text: str, role: str) -> str:
    """`text` with each SHOAL_<ROLE>_* variable named as what it is on this page."""
    def named(m: re.Match) -> str:
        verb = m.group(0).split("SHOAL_")[0]
        who = role if m.group(1) == "<ROLE>" else m.group(1).lower()
        return verb + _SETTING_WORDS.get(m.group(2), "the {role}'s " + m.group(2).lower().replace("_", " ")
                                         + " setting").format(role=who)
    return _SETTING_RE.sub(named, text)


def page_hint(report: dict, role: str) -> str | None:
    """The hint for a failed connection test in the panel's terms (never an environment variable)."""
    template = PAGE_HINTS.get(report.get("reason") or "")
    if template:
        return template.format(role=role, model=report.get("model") or "")
    return page_words(report["hint"], role) if report.get("hint") else None


def _show_test(role: str, prof: Profile) -> None:
    held = st.session_state.get(f"gen.{role}.probe")
    if not held or (held["for"][0] != prof.base_url and prof.source != "local"):
        return
    r = held["report"]
    if not r.get("ok"):
        hint = page_hint(r, role)
        st.error(f"{role}: ok=False · " + plain(page_words(f"{r.get('error')}", role)
                                               + (f" (hint: {hint})" if hint else "")))
        return
    st.success(f"{role}: ok=True · " + plain(f"model {r.get('model')} · {r.get('latency_ms')} ms · output mode "
                                             f"{r.get('mode')}" + (" (schema enforced)" if r.get("schema_enforced") else "")))
    st.dataframe(pd.DataFrame(probe_rows(r)), hide_index=True, width="stretch")


def probe_rows(r: dict) -> list[dict]:
    """The connection report as (what, answer) rows: output modes, parameters, rate limits."""
    a, modes, lim, gate = r.get("accepts") or {}, r.get("modes") or {}, r.get("rate_limits") or {}, r.get("pacing") or {}

    def mode(m: str) -> str:
        state = modes.get(m)
        return {"enforced": "yes, enforced", "accepted": "accepted, not enforced", "refused": "refused"}.get(
            state or "", "not tried")

    def num(x) -> str:
        return "not reported" if x is None else f"{x:,.0f}"

    strict = "strict" if a.get("strict") else "not strict"
    rows = [("json_schema", f"{mode('json_schema')} ({strict})" if modes.get("json_schema") else mode("json_schema")),
            ("json_object", mode("json_object")),
            ("token parameter", a.get("token_param") or "?"),
            ("temperature", "accepted" if a.get("temperature") else "not accepted (default only)"),
            ("reasoning_effort", "accepted" if a.get("reasoning_effort") else "not sent"),
            ("family", a.get("family") or "?"),
            ("requests / min limit", num(lim.get("limit_requests", gate.get("rpm_limit")))),
            ("tokens / min limit", num(lim.get("limit_tokens", gate.get("tpm_limit")))),
            ("remaining now", f"{num(lim.get('remaining_requests'))} requests, {num(lim.get('remaining_tokens'))} tokens"),
            ("limits from", "x-ratelimit headers" if lim else (gate.get("limits_from") or "none"))]
    rows += [(f"learned: {n.get('param')}", n.get("message") or n.get("code") or "") for n in a.get("learned") or []]
    return [{"what": k, "answer": str(val)} for k, val in rows]
