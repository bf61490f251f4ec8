"""Starting a job (core.generate.jobs.start): one default concurrency, one place for the embedded model's cap,
and one model choice for both roles -- a judge not configured apart follows the generator, in the
environment's profiles, the Models panel's choice, the job and the judge calibration."""
from __future__ import annotations

import os

import pytest

from core.config import Profile
from core.generate.jobs.start import JobRequest, job_params, job_settings, last_job_profiles, start_job
from core.llm.concurrency import DEFAULT_CONCURRENCY, job_concurrency
from core.llm.presets import SAME, batch_support, default_preset, presets_for, profiles_for_choices
from core.llm.profiles import ROLE_DEFAULTS, judge_following, load_profiles
from core.store import open_store
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for k in list(os.environ):
        if k.startswith(("OPENAI_", "SHOAL_GENERATOR_", "SHOAL_JUDGE_", "ANTHROPIC_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("SHOAL_SECRETS_FILE", str(tmp_path / "secrets.toml"))


def server(role: str, url: str = "http://127.0.0.1:8000/v1", model: str = "qwen-coder") -> Profile:
    return Profile(role=role, base_url=url, model=model, source="env")


def local(role: str) -> Profile:
    return Profile(role=role, base_url="", model="smollm2-135m", source="local")


# --------------------------------------------------------------------------- concurrency

def test_one_default_concurrency_and_one_local_cap():
    real = {r: server(r) for r in ("generator", "judge")}
    assert job_concurrency(real) == DEFAULT_CONCURRENCY == 8
    assert job_concurrency(real, 3) == 3
    mixed = {"generator": server("generator"), "judge": local("judge")}
    assert job_concurrency(mixed) == job_concurrency(mixed, 32) == 1
    assert job_concurrency({"generator": {"source": "local"}}, 8) == 1      # a stored profile (a job's params)
    s = job_settings(mixed, 8)
    assert (s.concurrency, s.asked) == (1, 8) and "one request at a time" in (s.note or "")
    assert job_settings(real).concurrency == DEFAULT_CONCURRENCY and job_settings(real).note is None


def test_the_settings_line_names_each_roles_model_and_the_concurrency():
    line = job_settings({"generator": server("generator"), "judge": server("judge", model="judge-model")}, 5).describe()
    assert "generator: qwen-coder at http://127.0.0.1:8000/v1" in line
    assert "judge: judge-model at http://127.0.0.1:8000/v1" in line and line.endswith("concurrency 5")
    assert "embedded local model" in job_settings({"generator": local("generator"),
                                                   "judge": local("judge")}).describe()


def test_job_params_carry_the_request_and_the_settings():
    profiles = {r: server(r) for r in ("generator", "judge")}
    req = JobRequest(["a", "b"], mix={"code_generation": 1.0}, targets=["go"], concurrency=None, max_calls=10)
    params = job_params(req, job_settings(profiles, req.concurrency))
    assert params["concurrency"] == DEFAULT_CONCURRENCY and params["target_languages"] == ["go"]
    assert params["profiles"] == profiles and params["max_calls"] == 10 and params["mix"] == {"code_generation": 1.0}


def test_start_job_runs_it_in_a_worker_or_queues_it_behind_the_job_on_its_server(tmp_path):
    from core.generate import jobs as J
    store = open_store(tmp_path / "s.duckdb")
    ids = add_snippets(store, 4)
    with FakeOpenAIServer(shoal_responder, latency_s=0.2) as srv:
        profiles = {r: Profile(role=r, base_url=srv.base_url, model="fake-model") for r in ("generator", "judge")}
        first = start_job(store, JobRequest(ids[:2], task="code_generation", concurrency=1), profiles)
        second = start_job(store, JobRequest(ids[2:], task="code_generation"), profiles)
        assert not first.queued and second.queued_after == [first.job_id]
        assert second.settings.concurrency == DEFAULT_CONCURRENCY
        assert J.get_job(store, second.job_id)["params"]["concurrency"] == DEFAULT_CONCURRENCY
        deadline = 60
        import time
        t0 = time.time()
        while time.time() - t0 < deadline and J.get_job(store, second.job_id)["status"] != "done":
            time.sleep(0.2)
        assert J.get_job(store, first.job_id)["status"] == J.get_job(store, second.job_id)["status"] == "done"
        J.wait_for_worker(store, second.job_id, 10)
    store.close()


# --------------------------------------------------------------------------- one model choice

def test_a_judge_not_set_apart_follows_the_generator_with_its_own_sampling():
    gen = server("generator").model_copy(update={"temperature": 0.9, "max_tokens": 300, "rpm": 100.0})
    judge = judge_following(gen)
    assert (judge.role, judge.base_url, judge.model, judge.rpm) == ("judge", gen.base_url, gen.model, 100.0)
    assert (judge.temperature, judge.max_tokens) == (ROLE_DEFAULTS["judge"]["temperature"],
                                                      ROLE_DEFAULTS["judge"]["max_tokens"])
    assert not judge.key_env_explicit                     # a custom server still gets no key it was not given
    loc = judge_following(local("generator"))
    assert loc.source == "local" and loc.role == "judge" and loc.model == "smollm2-135m"


def test_the_environment_judge_follows_the_generator_by_the_same_rule(monkeypatch):
    monkeypatch.setenv("SHOAL_GENERATOR_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("SHOAL_GENERATOR_MODEL", "qwen-coder")
    env = load_profiles(start_local=False)
    assert env["judge"] == judge_following(env["generator"])
    assert default_preset("judge", env["judge"]) == SAME and SAME in presets_for("judge")
    assert SAME not in presets_for("generator")
    monkeypatch.setenv("SHOAL_JUDGE_MODEL", "big-judge")              # set apart: the panel shows its own
    assert default_preset("judge", load_profiles(start_local=False)["judge"]) != SAME


def test_switching_the_generator_moves_a_following_judge_off_the_demo_model():
    base = {"generator": local("generator"), "judge": local("judge")}      # nothing configured: both embedded
    before = profiles_for_choices(base, {"generator": ("local", "", "smollm2-135m", None),
                                         "judge": (SAME, "", "", None)})
    assert before["judge"].source == "local"
    after = profiles_for_choices(base, {"generator": ("vllm", "http://127.0.0.1:8000/v1", "qwen-coder", None),
                                        "judge": (SAME, "", "", None)})
    assert (after["judge"].base_url, after["judge"].model) == ("http://127.0.0.1:8000/v1", "qwen-coder")
    assert after["judge"].source != "local" and after["judge"].temperature == 0.0
    apart = profiles_for_choices(base, {"generator": ("vllm", "http://127.0.0.1:8000/v1", "qwen-coder", None),
                                        "judge": ("local", "", "smollm2-135m", None)})
    assert apart["judge"].source == "local"                              # chosen apart: kept
    ok, _ = batch_support(after, {"generator": "openai", "judge": SAME})
    assert ok == batch_support(after, {"generator": "openai", "judge": "openai"})[0]


def test_the_judge_calibration_uses_the_judge_the_newest_job_used(tmp_path):
    from core.dataset.judge_eval import judge_profile
    from core.generate import jobs as J
    store = open_store(tmp_path / "c.duckdb")
    ids = add_snippets(store, 2)
    assert last_job_profiles(store) is None
    gen = server("generator", model="panel-model")
    J.create_job(store, ids, profiles={"generator": gen, "judge": judge_following(gen)}, task="code_generation")
    assert last_job_profiles(store)["judge"].model == "panel-model"
    picked = judge_profile(None, store=store)
    assert (picked.base_url, picked.model, picked.role) == (gen.base_url, "panel-model", "judge")
    assert judge_profile("other", store=store).model == "other"
    store.close()
