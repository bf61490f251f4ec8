"""What the Models panel stands on: presets and the profile a choice makes, keys kept in the session or
written into secrets.toml (merged), the server's model list, the connection report (modes, parameters,
rate limits, hints) against the OpenAI platform test server, and prices set per model."""
from __future__ import annotations

import os
import stat
import tomllib

import pytest

from core.config import DUMMY_KEY, Profile, hold_session_key, key_source, resolve_api_key, session_key_name
from core.errors import ShoalError
from core.llm import LLMClient, prices
from core.llm.presets import PRESETS, batch_support, key_env_for, list_models, preset_of, profile_for_choice
from core.llm.prices import apply_prices, batch_share, clear_model_price, price_of, set_model_price
from core.secrets_file import write_secret
from tests.support.openai_platform import OpenAIPlatform

KEY = "sk-test-Zq81-models-panel-key"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for k in list(os.environ):
        if k.startswith(("OPENAI_", "SHOAL_GENERATOR_", "SHOAL_JUDGE_", "ANTHROPIC_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("SHOAL_SECRETS_FILE", str(tmp_path / "secrets.toml"))
    monkeypatch.chdir(tmp_path)
    yield
    prices.set_price_overlay({})


def local_base(role: str = "generator") -> Profile:
    return Profile(role=role, base_url="", model="smollm2-135m", source="local", max_tokens=96, timeout_s=600)


# ---------------------------------------------------------------- presets


def test_presets_cover_the_providers_and_match_configured_urls():
    assert set(PRESETS) == {"openai", "anthropic", "vllm", "ollama", "llamacpp", "local", "custom"}
    assert PRESETS["anthropic"].base_url == "https://api.anthropic.com/v1/"
    cases = {"https://api.openai.com/v1": "openai", "https://api.anthropic.com/v1/": "anthropic",
             "http://gpu-box:8000/v1": "vllm", "http://127.0.0.1:11434/v1": "ollama",
             "http://127.0.0.1:8080/v1": "llamacpp", "https://openrouter.ai/api/v1": "custom"}
    for url, preset in cases.items():
        assert preset_of(Profile(role="generator", base_url=url, model="m")) == preset, url
    assert preset_of(local_base()) == "local"


def test_a_choice_makes_the_profile_the_next_job_uses():
    base = local_base()
    openai = profile_for_choice(base, "openai", "https://api.openai.com/v1", "gpt-4o-mini")
    # away from the tiny model: the role's defaults, not its 96-token budget and 600 s timeout
    assert openai.source == "explicit" and openai.max_tokens == 512 and openai.timeout_s == 60
    assert openai.key_env_explicit and openai.api_key_env == "OPENAI_API_KEY"
    anthropic = profile_for_choice(base, "anthropic", "https://api.anthropic.com/v1/", "claude-sonnet-4-5")
    assert anthropic.api_key_env == "ANTHROPIC_API_KEY"
    llamacpp = profile_for_choice(base, "llamacpp", "http://127.0.0.1:8080/v1", "qwen")
    assert llamacpp.response_format == "json_object"
    # a custom server gets no key it was not given (the OPENAI_API_KEY lesson)
    custom = profile_for_choice(base, "custom", "http://10.0.0.5:9000/v1", "m")
    assert not custom.key_env_explicit and resolve_api_key(custom) == DUMMY_KEY
    assert profile_for_choice(custom, "local", "", "smollm2-135m").source == "local"
    with pytest.raises(ShoalError, match="Type the generator server's base URL"):
        profile_for_choice(base, "custom", "", "m")          # never the embedded model in disguise
    with pytest.raises(ShoalError, match="base URL is not valid"):
        profile_for_choice(base, "custom", "10.0.0.5:9000/v1", "m")
    # the environment's profile keeps its own settings while its URL is chosen
    env = Profile(role="judge", base_url="http://127.0.0.1:8000/v1", model="q", max_tokens=900, tpm=5000,
                  api_key_env="MY_VLLM_KEY", source="env")
    same = profile_for_choice(env, "vllm", "http://127.0.0.1:8000/v1", "q")
    assert (same.source, same.max_tokens, same.tpm, same.api_key_env) == ("env", 900, 5000, "MY_VLLM_KEY")


def test_a_key_typed_for_the_session_is_used_and_never_outlives_the_process(monkeypatch):
    name = session_key_name("generator", "abc123")
    prof = profile_for_choice(local_base(), "custom", "http://10.0.0.5:9000/v1", "m", session_key_name=name)
    assert prof.api_key_env == name and KEY not in prof.model_dump_json()
    assert key_source(prof).startswith("none")
    hold_session_key(name, KEY)
    assert resolve_api_key(prof) == KEY and key_source(prof) == "typed here, kept for this session only"
    hold_session_key(name, "")                      # forgotten (a restart does the same)
    with pytest.raises(ShoalError, match="type the key again"):
        resolve_api_key(prof)


def test_saving_a_key_merges_it_into_secrets_toml(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('# my settings\nOTHER_KEY = "keep-me"\n\n[auth]\nredirect_uri = "http://x/oauth2callback"\n'
                    'cookie_secret = "c"\n', encoding="utf-8")
    assert write_secret("OPENAI_API_KEY", KEY) == path
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    assert data["OPENAI_API_KEY"] == KEY and data["OTHER_KEY"] == "keep-me"
    assert data["auth"] == {"redirect_uri": "http://x/oauth2callback", "cookie_secret": "c"}
    assert text.startswith("# my settings\n") and stat.S_IMODE(path.stat().st_mode) == 0o600
    write_secret("OPENAI_API_KEY", 'sk-"second"\\key')               # replaced in place, quotes escaped
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["OPENAI_API_KEY"] == 'sk-"second"\\key' and path.read_text().count("OPENAI_API_KEY") == 1
    prof = Profile(role="generator", base_url="https://api.openai.com/v1", model="gpt-4o-mini")
    assert resolve_api_key(prof) == 'sk-"second"\\key' and key_source(prof) == f"OPENAI_API_KEY in {path}"
    # a file that does not parse is left alone; a name that cannot be a key is refused
    path.write_text("OPENAI_API_KEY = \n", encoding="utf-8")
    with pytest.raises(ShoalError, match="not valid TOML"):
        write_secret("OPENAI_API_KEY", KEY)
    assert path.read_text() == "OPENAI_API_KEY = \n"
    with pytest.raises(ShoalError):
        write_secret("auth.redirect", KEY)
    fresh = tmp_path / "new" / ".streamlit" / "secrets.toml"
    write_secret("SHOAL_JUDGE_API_KEY", KEY, fresh)
    assert tomllib.loads(fresh.read_text()) == {"SHOAL_JUDGE_API_KEY": KEY}
    # the variable a custom preset saves to is picked up the next time that role is chosen
    assert key_env_for("vllm", "judge") == "SHOAL_JUDGE_API_KEY"


# ---------------------------------------------------------------- against the platform


def platform_profile(srv, role: str = "generator", model: str = "gpt-4o-mini", key: str | None = KEY) -> Profile:
    name = session_key_name(role, "t1")
    hold_session_key(name, key or "")
    return profile_for_choice(local_base(role), "openai", srv.base_url, model, session_key_name=name if key else None)


def test_the_model_list_comes_from_the_server_or_says_why_not():
    with OpenAIPlatform(api_key=KEY) as srv:
        got = list_models(platform_profile(srv))
        assert got.error is None and got.ids == sorted(srv.models)
        bad = list_models(platform_profile(srv, key="sk-wrong-key-0000"))
        assert bad.ids == [] and "refused the key" in bad.error and "Type the model name" in bad.error
    dead = list_models(Profile(role="judge", base_url=srv.base_url, model=""), timeout_s=2)
    assert dead.ids == [] and "/models failed" in dead.error


def test_the_connection_report_shows_modes_parameters_and_rate_limits(store):
    with OpenAIPlatform(api_key=KEY, rpm=500, tpm=200_000) as srv:
        client = LLMClient(store, platform_profile(srv))
        report = client.test_connection()
        client.close()
    assert report["ok"] and report["mode"] == "json_schema" and report["schema_enforced"] is True
    assert report["modes"] == {"json_schema": "enforced", "json_object": "enforced"}
    assert report["accepts"]["strict"] is True and report["accepts"]["token_param"] == "max_tokens"
    assert report["accepts"]["temperature"] is True and report["accepts"]["reasoning_effort"] is False
    assert report["rate_limits"]["limit_requests"] == 500 and report["rate_limits"]["limit_tokens"] == 200_000
    assert 0 < report["rate_limits"]["remaining_tokens"] < 200_000
    assert report["pacing"]["tpm_limit"] == 200_000 and "headers" in report["pacing"]["limits_from"]


def test_the_probe_learns_refused_parameters_once_and_reports_them(store):
    # "o3mini": the platform treats it as a reasoning model, its name does not tell Shoal so
    with OpenAIPlatform(models=["o3mini"]) as srv:
        prof = Profile(role="judge", base_url=srv.base_url, model="o3mini", temperature=0.0, max_tokens=64)
        client = LLMClient(store, prof)
        report = client.test_connection()
        client.close()
        assert report["ok"] and report["schema_enforced"] is True
        assert report["accepts"]["token_param"] == "max_completion_tokens"
        assert report["accepts"]["temperature"] is False
        assert {n["param"] for n in report["accepts"]["learned"]} == {"max_tokens", "temperature"}
        refused = [e["fault"] for e in srv.log if e["status"] not in (200, None)]
        # one refusal per parameter, never a blind retry
        assert refused == ["unsupported_parameter", "unsupported_value"]


def test_a_failed_connection_says_why_with_a_hint(store):
    with OpenAIPlatform(api_key=KEY) as srv:
        client = LLMClient(store, platform_profile(srv, key="sk-wrong-key-0000"))
        report = client.test_connection()
        client.close()
    assert not report["ok"] and "401" in report["error"] and "refused the API key" in report["hint"]
    with OpenAIPlatform() as srv:
        client = LLMClient(store, platform_profile(srv, model="gpt-9-none"))
        report = client.test_connection()
        client.close()
    assert not report["ok"] and "404" in report["error"] and "has no model 'gpt-9-none'" in report["hint"]


def test_batch_mode_is_offered_only_where_a_batch_api_exists(store):
    with OpenAIPlatform() as srv:
        openai = {r: platform_profile(srv, r) for r in ("generator", "judge")}
        assert batch_support(openai, {"generator": "openai", "judge": "openai"}) == (True, "")
        ok, why = batch_support(openai, {"generator": "openai", "judge": "ollama"})
        assert not ok and "Ollama" in why
        anthropic = {r: Profile(role=r, base_url="https://api.anthropic.com/v1/", model="claude-x")
                     for r in ("generator", "judge")}
        # Anthropic's Message Batches are the second route (core.llm.batch.anthropic_route), by preset or host
        assert batch_support(anthropic, {"generator": "anthropic", "judge": "anthropic"}) == (True, "")
        assert batch_support(anthropic, {"generator": "custom", "judge": "custom"}) == (True, "")
        ok, why = batch_support(anthropic, {"generator": "anthropic", "judge": "vllm"})
        assert not ok and "vLLM" in why


# ---------------------------------------------------------------- prices


def test_a_price_set_per_model_is_used_by_every_cost_figure(store):
    assert price_of(store, "gpt-4o-mini").source == "price table"
    assert price_of(store, "my-model").source == "unknown (free)"
    set_model_price(store, "my-model", 2.0, 8.0, 0.4)
    p = price_of(store, "my-model")
    assert (p.input_per_m, p.output_per_m, p.batch_discount, p.source) == (2.0, 8.0, 0.4, "set here")
    assert (p.batch_input_per_m, p.batch_output_per_m) == pytest.approx((0.8, 3.2))
    assert prices.estimate_cost("my-model", 1_000_000, 1_000_000) == pytest.approx(10.0)
    assert prices.estimate_batch_cost("my-model", 1_000_000, 1_000_000) == pytest.approx(4.0)
    prof = {r: Profile(role=r, base_url="http://127.0.0.1:1/v1", model="my-model") for r in ("generator", "judge")}
    assert batch_share(prof) == pytest.approx(0.4)
    # a price without its own batch share keeps the provider's
    set_model_price(store, "gpt-4o-mini", 1.0, 2.0)
    assert price_of(store, "gpt-4o-mini").batch_discount == 0.5
    # the overlay is the database's: another process (or a restart) gets it from there
    prices.set_price_overlay({})
    assert prices.estimate_cost("my-model", 1_000_000, 0) == 0
    apply_prices(store)
    assert prices.estimate_cost("my-model", 1_000_000, 0) == pytest.approx(2.0)
    clear_model_price(store, "my-model")
    assert prices.estimate_cost("my-model", 1_000_000, 0) == 0
    with pytest.raises(ShoalError):
        set_model_price(store, "my-model", 1.0, 1.0, 1.5)


def test_cli_estimates_with_the_prices_set_on_the_page(store, tmp_path, monkeypatch):
    """A price stored from the Models panel is the one `shoal generate --dry-run` estimates with."""
    import json

    from typer.testing import CliRunner

    from core.cli.main import app
    from tests.support.snippets import add_snippets
    ids = add_snippets(store, 4)
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    monkeypatch.setenv("SHOAL_GENERATOR_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SHOAL_GENERATOR_MODEL", "house-model-7b")

    def estimate() -> float:
        prices.set_price_overlay({})               # a new process: only what the database holds
        res = CliRunner().invoke(app, ["--db", str(store.path), "generate", "--ids", str(tmp_path / "ids.txt"),
                                       "--task", "code_generation", "--dry-run", "--json"])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)["estimate"]["cost_usd"]

    before = estimate()
    set_model_price(store, "house-model-7b", 1000.0, 1000.0)
    after = estimate()
    assert after > before and after > 0
