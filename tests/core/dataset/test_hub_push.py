"""Pushing an export to the Hugging Face Hub (core.dataset.hub, core.dataset.export.push_export, `shoal export --push-to-hub`),
against a loopback Hub (tests/support/hf_hub_server.py) that huggingface_hub's own client talks to."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli.main import app
from core.dataset.export import export_dataset, push_export, pushable_exports
from core.errors import ShoalError
from core.redact import MARK
from core.store import open_store
from tests.support.hf_hub_server import FakeHub, point_hub_client_at
from tests.support.seed_data import add_example, distinct_python_solution, wave

TYPED = "typed-secret-7f3a9c21e8d4"      # not shaped like any known key: only the registry can hide it


@pytest.fixture
def hub(monkeypatch):
    with FakeHub() as h:
        point_hub_client_at(h, monkeypatch)
        yield h


def _accepted(store, n: int = 3) -> None:
    for i in range(n):
        add_example(store, wave(f"Write a Python function number {i}.", distinct_python_solution(100 + i)),
                    verdict="accepted", judge=True)


def _local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("fmt", ["alpaca", "parquet", "hf"])
def test_pushed_export_lands_byte_identical(store, hub, tmp_path, fmt):
    _accepted(store)
    out = tmp_path / f"ds-{fmt}"
    res = export_dataset(store, fmt, out, push_to_hub="me/ds", hub_token=hub.token)
    url = f"{hub.url}/datasets/me/ds"
    assert res.pushed_to == url
    remote, local = hub.files("me/ds"), _local_files(out)
    assert remote == local                      # every file, byte for byte: data file(s) and the card
    assert "README.md" in remote and remote["README.md"].startswith(b"---\n")
    assert {"alpaca": "train.jsonl", "parquet": "train.parquet"}.get(fmt, "dataset_info.json") in remote
    assert hub.repos["me/ds"]["type"] == "dataset" and hub.repos["me/ds"]["private"] is False
    assert hub.repos["me/ds"]["commits"][0]["summary"].startswith(f"Shoal export #{res.export_id}: 3 examples")
    params = json.loads(store.scalar("SELECT params FROM exports WHERE id = ?", [res.export_id]))
    assert params["pushed_to"] == url and params["pushed_private"] is False
    assert res.as_dict()["pushed_to"] == url


def test_push_an_earlier_export_again_private_and_to_an_existing_repo(store, hub, tmp_path):
    _accepted(store)
    res = export_dataset(store, "messages", tmp_path / "m")
    assert res.pushed_to is None and hub.requests == []
    assert [e["id"] for e in pushable_exports(store)] == [res.export_id]
    assert push_export(store, res.export_id, "team/private-set", token=hub.token, private=True) \
        == f"{hub.url}/datasets/team/private-set"
    assert hub.repos["team/private-set"]["private"] is True
    push_export(store, res.export_id, "team/private-set", token=hub.token)     # exists: 409, exist_ok goes on
    assert len(hub.repos["team/private-set"]["commits"]) == 2
    assert hub.files("team/private-set") == _local_files(tmp_path / "m")
    assert pushable_exports(store)[0]["pushed_to"] == f"{hub.url}/datasets/team/private-set"


def test_wrong_token_is_a_clear_error_without_the_token(store, hub, tmp_path):
    _accepted(store)
    out = tmp_path / "w"
    with pytest.raises(ShoalError) as err:
        export_dataset(store, "alpaca", out, push_to_hub="me/ds", hub_token=TYPED)
    msg = str(err.value)
    assert "refused the token (401" in msg and "me/ds" in msg
    assert f"The local export was written to {out}" in msg
    assert TYPED not in msg
    assert (out / "train.jsonl").exists() and "me/ds" not in hub.repos
    row = store.one("SELECT path, params FROM exports")
    assert row is not None and json.loads(row["params"])["pushed_to"] is None   # the version stays recorded


def test_a_refusal_that_echoes_the_token_is_redacted(store, hub, tmp_path):
    """A proxy or server that puts the request's token into its error text: the message hides it."""
    _accepted(store)
    res = export_dataset(store, "alpaca", tmp_path / "e")
    hub.token = TYPED
    hub.fail_next("commit", 400, {"error": f"Bad request signed with {TYPED}"})
    with pytest.raises(ShoalError) as err:
        push_export(store, res.export_id, "me/ds", token=TYPED)
    assert "the Hub answered 400" in str(err.value) and MARK in str(err.value)
    assert TYPED not in str(err.value)


def test_offline_missing_token_and_bad_repo_id_are_refused(store, hub, tmp_path, monkeypatch):
    _accepted(store)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ShoalError, match=r"offline here \(HF_HUB_OFFLINE is set\).*local export was written"):
        export_dataset(store, "alpaca", tmp_path / "off", push_to_hub="me/ds", hub_token=hub.token)
    assert (tmp_path / "off" / "train.jsonl").exists()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ShoalError, match="needs a Hub token with write access"):
        export_dataset(store, "alpaca", tmp_path / "notoken", push_to_hub="me/ds")
    with pytest.raises(ShoalError, match="is not a Hub repository id"):
        export_dataset(store, "alpaca", tmp_path / "bad", push_to_hub="no slash", hub_token=hub.token)
    assert not (tmp_path / "bad").exists()          # refused before anything was written
    assert hub.requests == []                       # none of them reached the Hub


def test_cli_push_to_hub_with_hf_token(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub.token)
    s = open_store(os.environ["SHOAL_DB"])
    _accepted(s, 2)
    s.checkpoint()
    s.close()
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["export", "--format", "alpaca", "--out", str(out), "--push-to-hub", "me/ds",
                                   "--private"])
    assert res.exit_code == 0, res.output
    assert f"Pushed to {hub.url}/datasets/me/ds" in res.output
    assert hub.files("me/ds") == _local_files(out) and hub.repos["me/ds"]["private"] is True
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)     # a token the Hub does not know
    bad = CliRunner().invoke(app, ["export", "--format", "alpaca", "--out", str(tmp_path / "cli2"),
                                   "--push-to-hub", "me/other"])
    assert bad.exit_code == 1 and "refused the token" in bad.output and "x" * 34 not in bad.output
