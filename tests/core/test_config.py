"""Profiles from the environment, key resolution (never leaking OPENAI_API_KEY), price table."""
from __future__ import annotations

import json

import pytest

from core.config import DUMMY_KEY, Profile, resolve_api_key
from core.errors import ShoalError
from core.llm.prices import estimate_cost, load_prices, price_for
from core.llm.profiles import endpoint_configured, load_profiles

ENV = ["OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "SHOAL_PRICES_FILE", "SHOAL_SECRETS_FILE"] + [
    f"SHOAL_{r}_{f}" for r in ("GENERATOR", "JUDGE")
    for f in ("BASE_URL", "MODEL", "API_KEY_ENV", "TEMPERATURE", "MAX_TOKENS", "TIMEOUT", "RESPONSE_FORMAT")]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)                      # no project .streamlit/secrets.toml
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no user one either


def test_profiles_from_shoal_env_and_the_judge_inherits_the_generator_endpoint(monkeypatch):
    monkeypatch.setenv("SHOAL_GENERATOR_BASE_URL", "http://gpu-box:8000/v1")
    monkeypatch.setenv("SHOAL_GENERATOR_MODEL", "Qwen2.5-Coder-7B")
    monkeypatch.setenv("SHOAL_GENERATOR_TEMPERATURE", "0.7")
    monkeypatch.setenv("SHOAL_GENERATOR_MAX_TOKENS", "1024")
    monkeypatch.setenv("SHOAL_JUDGE_MODEL", "Qwen2.5-Coder-32B")
    profiles = load_profiles(start_local=False)
    gen, judge = profiles["generator"], profiles["judge"]
    assert (gen.base_url, gen.model, gen.temperature, gen.max_tokens) == \
        ("http://gpu-box:8000/v1", "Qwen2.5-Coder-7B", 0.7, 1024)
    assert (judge.base_url, judge.model, judge.temperature) == ("http://gpu-box:8000/v1", "Qwen2.5-Coder-32B", 0.0)
    assert gen.source == judge.source == "env" and endpoint_configured()


def test_openai_env_fallback_and_invalid_numbers(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    profiles = load_profiles(start_local=False)
    assert profiles["generator"].base_url == "https://api.openai.com/v1"
    assert profiles["generator"].model == "gpt-4o-mini" and profiles["judge"].source == "openai"
    assert resolve_api_key(profiles["judge"]) == "sk-x"
    monkeypatch.setenv("SHOAL_JUDGE_MAX_TOKENS", "lots")
    with pytest.raises(ShoalError, match="SHOAL_JUDGE_MAX_TOKENS"):
        load_profiles(start_local=False)
    monkeypatch.setenv("SHOAL_JUDGE_MAX_TOKENS", "0")
    with pytest.raises(ShoalError, match="max_tokens"):
        load_profiles(start_local=False)
    monkeypatch.delenv("SHOAL_JUDGE_MAX_TOKENS")
    monkeypatch.setenv("SHOAL_GENERATOR_BASE_URL", "localhost:8000/v1")
    with pytest.raises(ShoalError, match="http://"):
        load_profiles(start_local=False)


def test_without_configuration_the_local_model_is_used():
    assert not endpoint_configured()
    profiles = load_profiles(start_local=False)   # start_local=True would start llama.cpp
    assert {p.source for p in profiles.values()} == {"local"}
    assert profiles["generator"].model and profiles["generator"].base_url == ""
    from core.llm import LLMClient
    with pytest.raises(ShoalError, match="no server URL"):
        LLMClient(None, profiles["generator"])


def test_custom_url_never_gets_the_default_openai_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    custom = Profile(role="generator", base_url="https://openrouter.ai/api/v1", model="m")
    assert resolve_api_key(custom) == DUMMY_KEY
    named = Profile(role="generator", base_url="https://openrouter.ai/api/v1", model="m",
                    api_key_env="OPENAI_API_KEY")
    assert resolve_api_key(named) == "sk-default"      # only when named explicitly
    # a stored profile (model_dump) keeps the key variable implicit after a round trip
    dumped = custom.model_dump()
    assert "api_key_env" not in dumped and json.dumps(dumped)
    assert resolve_api_key(Profile(**dumped)) == DUMMY_KEY
    assert Profile(**named.model_dump()).key_env_explicit


def test_key_from_streamlit_secrets_and_missing_openai_key(tmp_path, monkeypatch):
    openai_profile = Profile(role="judge", base_url="https://api.openai.com/v1", model="gpt-4o")
    with pytest.raises(ShoalError, match="OPENAI_API_KEY"):
        resolve_api_key(openai_profile)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('OPENAI_API_KEY = "sk-from-secrets"\n'
                                                          '[shoal]\nVLLM_KEY = "vllm-secret"\n')
    assert resolve_api_key(openai_profile) == "sk-from-secrets"
    vllm = Profile(role="generator", base_url="http://10.0.0.5:8000/v1", model="m", api_key_env="VLLM_KEY")
    assert resolve_api_key(vllm) == "vllm-secret"
    local = Profile(role="generator", base_url="http://127.0.0.1:9/v1", model="m", api_key_env="UNSET_KEY")
    assert resolve_api_key(local) == DUMMY_KEY and local.is_local
    (tmp_path / ".streamlit" / "secrets.toml").write_text("not = [valid")
    with pytest.raises(ShoalError, match="secrets"):
        resolve_api_key(openai_profile)


def test_price_table_lookup_and_overrides(tmp_path, monkeypatch):
    assert price_for("gpt-4o") == (2.50, 10.00)
    assert price_for("gpt-4o-mini-2024-07-18") == (0.15, 0.60)     # longest prefix wins
    assert price_for("openai/gpt-4.1-mini") == (0.40, 1.60)
    assert price_for("smollm2-135m") == (0.0, 0.0)
    assert estimate_cost("gpt-4o", 2_000_000, 1_000_000) == pytest.approx(15.0)
    toml = tmp_path / "prices.toml"
    toml.write_text('[smollm2-135m]\ninput = 0.01\noutput = 0.02\n')
    monkeypatch.setenv("SHOAL_PRICES_FILE", str(toml))
    assert price_for("smollm2-135m") == (0.01, 0.02) and load_prices()["gpt-4o"] == (2.50, 10.00)
    js = tmp_path / "prices.json"
    js.write_text(json.dumps({"gpt-4o": [1, 2]}))
    assert load_prices(js)["gpt-4o"] == (1.0, 2.0)
    js.write_text(json.dumps({"gpt-4o": "cheap"}))
    with pytest.raises(ShoalError, match="gpt-4o"):
        load_prices(js)
