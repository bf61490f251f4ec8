"""Corpus page queries, uploads (zip safety) and the background runner."""
from __future__ import annotations

import io
import threading
import zipfile

import pytest

from core.errors import ShoalError
from core.ingest import browse, ingest_sources
from core.ingest.start import current_run, start_ingest
from core.ingest.upload import write_upload
from tests.support.ingest_data import CSN_HF, CSN_ORIGINAL, MULTILANG


def test_overview_histogram_search_and_rejections(store, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"nope\n")
    ingest_sources(store, [str(CSN_ORIGINAL), str(CSN_HF), str(bad)])
    ov = browse.overview(store)
    assert (ov["snippets"], ov["functions"], ov["seeds"], ov["languages"], ov["errors"]) == (18, 18, 0, 6, 1)
    hist = browse.length_histogram(store, 100)
    assert hist["n"].sum() == 18 and set(hist["n_chars"]) <= {0, 100, 200, 300, 400}
    assert browse.search(store, "gcd")["func_name"].tolist() == ["IntMath.gcd"]
    assert browse.search(store, "GET_NAMESPACE")["func_name"].tolist() == ["Config.get_namespace"]
    assert len(browse.search(store, "", languages=["go"])) == 3
    assert browse.search(store, "100%").empty                      # % is literal, not a wildcard
    # _ is literal too: as a wildcard "str_" would also match "strLen" in StringUtils.isBlank.
    assert set(browse.search(store, "str_")["func_name"]) == {"Php80.str_contains", "Str.startsWith"}
    rej = browse.rejections(store, ["malformed_json"])
    assert rej["location"].tolist() == ["bad.jsonl:1"]
    assert browse.snippet(store, browse.search(store, "Reverse")["id"][0])["language"] == "go"


def test_zip_upload_becomes_a_folder_and_unsafe_paths_are_refused(store, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in MULTILANG.rglob("*"):
            if p.is_file():
                zf.write(p, f"multilang/{p.relative_to(MULTILANG).as_posix()}")
    folder = write_upload("my repo.zip", buf.getvalue(), tmp_path / "uploads")
    assert folder.is_dir() and not (tmp_path / "uploads" / "my_repo.zip").exists()
    r = ingest_sources(store, [str(folder)])
    assert r.ingested > 20
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.py", "print('x')")
    with pytest.raises(ShoalError, match="unsafe path"):
        write_upload("evil.zip", evil.getvalue(), tmp_path / "uploads")
    assert not (tmp_path / "escape.py").exists()
    with pytest.raises(ShoalError, match="not a readable zip"):
        write_upload("broken.zip", b"PK\x03\x04 not really", tmp_path / "uploads")
    plain = write_upload("../../data.jsonl", b"{}", tmp_path / "uploads")
    assert plain == tmp_path / "uploads" / "data.jsonl"


def test_background_run_one_at_a_time(store, monkeypatch):
    import core.ingest.start as bg
    release = threading.Event()
    real = bg.ingest_sources

    def gated(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(bg, "ingest_sources", gated)
    run = start_ingest(store, [str(CSN_HF)])
    assert run.running
    with pytest.raises(ShoalError, match="already running"):
        start_ingest(store, [str(CSN_HF)])
    release.set()
    assert run.wait(30) and run.error is None
    assert current_run(store) is run and run.result.ingested == 6 and run.fraction == 1.0


def test_background_run_reports_errors_as_text(store):
    run = start_ingest(store, [], fmt="auto")
    assert run.wait(30) and "at least one source" in run.error and run.result is None
