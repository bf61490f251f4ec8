"""End-to-end ingestion into a real DuckDB file: every source kind, bad input, dedup, cancel."""
from __future__ import annotations

import json
import threading

import pandas as pd
import pytest

from core.errors import ShoalError
from core.ingest import ingest_sources
from core.ingest.model import TREE_SITTER_LANGUAGES, normalize_code
from core.ingest.seeds import draw_seed
from core.progress import Cancelled
from tests.support.ingest_data import CSN_HF, CSN_ORIGINAL, STACK, csn_record, jsonl

SIX = {"go", "java", "javascript", "php", "python", "ruby"}


def _errors(store, **where) -> pd.DataFrame:
    df = store.df("SELECT * FROM ingest_errors")
    for k, v in where.items():
        df = df[df[k] == v]
    return df


# --------------------------------------------------------------------------- CodeSearchNet

def test_codesearchnet_original_schema_folder_of_shards(store):
    r = ingest_sources(store, [str(CSN_ORIGINAL)])
    assert (r.ingested, r.duplicates, r.filtered, r.errors) == (12, 0, 0, [])
    rows = store.df("SELECT * FROM snippets ORDER BY language")
    assert set(rows.language) == SIX and set(rows.source_kind) == {"codesearchnet"}
    gcd = rows[rows.func_name == "IntMath.gcd"].iloc[0]
    assert gcd.repo == "google/guava" and gcd.path.endswith("IntMath.java")
    assert (gcd.start_line, gcd.end_line) == (402, 411)          # parsed from the url's #L402-L411
    # The first line's indentation was stripped in the record; the body is re-aligned under it.
    assert gcd.code.splitlines()[1].startswith("  checkNonNegative") and gcd.code.endswith("\n}")
    assert gcd.docstring.startswith("Returns the greatest common divisor")
    assert gcd.n_chars == len(gcd.code)
    row = store.one("SELECT * FROM ingests WHERE id = ?", [r.ingest_id])
    assert row["status"] == "done" and row["ingested"] == 12 and row["finished_at"] is not None
    assert rows.groupby("language").size().to_dict() == {lang: 2 for lang in SIX}


def test_codesearchnet_hf_schema_jsonl_and_parquet(store, tmp_path):
    r = ingest_sources(store, [str(CSN_HF)])
    assert r.ingested == 6 and not r.errors
    py = store.one("SELECT * FROM snippets WHERE language = 'python'")
    assert py["func_name"] == "Config.get_namespace" and py["repo"] == "pallets/flask"
    assert py["url"].startswith("https://github.com/pallets/flask/blob/")
    compile(py["code"], "<method>", "exec")  # the method is valid Python once re-indented
    # The same records as Parquet (as the Hub serves them): all duplicates of the JSONL ones.
    pq = tmp_path / "train-00000-of-00001.parquet"
    pd.read_json(CSN_HF, lines=True).to_parquet(pq)
    r2 = ingest_sources(store, [str(pq)])
    assert (r2.read, r2.ingested, r2.duplicates) == (6, 0, 6)


# --------------------------------------------------------------------------- whole files

def test_wholefile_jsonl_yields_reproducible_seeds_and_functions(store):
    r = ingest_sources(store, [str(STACK)], seed=7)
    seeds = store.df("SELECT * FROM snippets WHERE kind = 'seed'")
    assert len(seeds) == 6  # one per file, including the Shell file tree-sitter cannot parse
    assert "shell" in set(seeds.language)
    assert set(store.df("SELECT language FROM snippets WHERE kind = 'function'").language) == \
        {"python", "typescript", "rust", "cpp", "go"}
    contents = {json.loads(l)["max_stars_repo_path"]: json.loads(l)["content"] for l in STACK.read_text().splitlines()}
    for s in seeds.itertuples():
        assert s.repo.startswith("acme/") and s.source_kind == "wholefile"
        lines = contents[s.path].split("\n")
        start, end = draw_seed(lines, int(s.seed_rng))
        assert 1 <= end - start <= 15
        assert (start + 1, end) == (s.start_line, s.end_line)
        assert s.code == normalize_code("\n".join(lines[start:end]), s.language)  # stored dedented
    assert r.ingested == len(store.df("SELECT id FROM snippets"))


def test_wholefile_parquet_same_seeds_as_jsonl_and_seed_changes_draw(tmp_path):
    from core.store import open_store
    pq = tmp_path / "stack.parquet"
    pd.read_json(STACK, lines=True).to_parquet(pq)
    draws = {}
    for name, src, seed in (("jsonl", STACK, 0), ("parquet", pq, 0), ("other_seed", STACK, 1)):
        with open_store(tmp_path / f"{name}.duckdb") as s:
            ingest_sources(s, [str(src)], fmt="auto", seed=seed)
            draws[name] = set(map(tuple, s.df(
                "SELECT path, seed_rng, start_line, end_line FROM snippets WHERE kind = 'seed'").values.tolist()))
    assert draws["jsonl"] == draws["parquet"]
    assert {d[1] for d in draws["jsonl"]}.isdisjoint({d[1] for d in draws["other_seed"]})


# --------------------------------------------------------------------------- folders

def test_multilanguage_checkout(store, multilang_repo):
    r = ingest_sources(store, [str(multilang_repo)], min_chars=0)
    rows = store.df("SELECT * FROM snippets")
    assert set(rows.language) == set(TREE_SITTER_LANGUAGES)
    names = set(rows.func_name)
    expected = {"polygon_area", "distance", "Circle.__init__", "Circle.area", "Circle.contains", "Stack.push",
                "Stack.pop", "formatBytes", "debounce", "EventBus.on", "LRUCache.get", "chunk", "Mean",
                "Counter.Add", "Cart.add", "slugify", "Inventory.restock", "Inventory.from_hash", "word_counts",
                "Matrix.transpose", "gcd", "RingBuffer.push", "at", "intact_before_error", "intact_after_error"}
    assert expected <= names
    for skipped in ("helper_from_build", "secret_function_never_ingested", "leftPadVendored",
                    "Request.GetNameGenerated", "minifiedThing"):
        assert skipped not in names
    doc = dict(zip(rows.func_name, rows.docstring))
    assert doc["polygon_area"].startswith("Return the area of a simple polygon")
    assert doc["distance"] == "Distance between two points in the plane."       # leading comment
    assert doc["Stack.pop"].startswith("Removes the item at the top")             # Javadoc
    assert doc["word_counts"].startswith("Counts how often")                       # /// doc comment
    area = rows[rows.func_name == "Circle.area"].iloc[0]
    assert area.code.startswith("@property\ndef area(self):")                      # decorator kept, dedented
    assert (area.start_line, area.end_line) == (27, 30)
    assert area.repo == "acme/multilang"
    assert area.url == ("https://github.com/acme/multilang/blob/4b825dc642cb6eb9a060e54bf8d69288fbee4904/"
                        "src/geometry.py#L27-L30")
    skips = {(e.location, e.reason) for e in _errors(store).itertuples()}
    assert {("build/", "gitignored"), ("src/secret_notes.py", "gitignored"), ("debug.log", "gitignored"),
            ("web/node_modules/", "vendored"), ("cmd/api.pb.go", "generated"), ("web/bundle.min.js", "minified"),
            ("src/payroll.cob", "unsupported_language"), ("src/broken.py:6", "parse_error"),
            ("src/compiled.py", "binary_file"), ("src/latin1.py:1", "invalid_utf8")} <= skips
    not_src = _errors(store, reason="not_source_code").iloc[0]
    assert ".md ×1" in not_src.detail and ".png ×1" in not_src.detail
    assert sorted(e["reason"] for e in r.errors) == ["invalid_utf8", "parse_error"]
    assert "invalid UTF-8 byte 0xe9 at column 8" in _errors(store, reason="invalid_utf8").iloc[0].detail


def test_single_source_file(store, multilang_repo):
    r = ingest_sources(store, [str(multilang_repo / "lib" / "text.rs")])
    assert r.ingested == 3 and set(store.df("SELECT func_name FROM snippets").func_name) == \
        {"word_counts", "Matrix.zeros", "Matrix.transpose"}


# --------------------------------------------------------------------------- stdlib

def test_stdlib_subset(store):
    r = ingest_sources(store, ["stdlib:json,textwrap"], fmt="stdlib")  # as `shoal app --demo` calls it
    rows = store.df("SELECT * FROM snippets")
    assert r.ingested == len(rows) > 10 and not r.errors
    assert set(rows.language) == {"python"} and set(rows.source_kind) == {"stdlib"}
    assert set(p.split("/")[0] for p in rows.path) == {"json", "textwrap.py"}
    funcs, seeds = rows[rows.kind == "function"], rows[rows.kind == "seed"]
    assert "JSONDecoder.decode" in set(funcs.func_name)
    assert any(n.startswith("TextWrapper.") for n in funcs.func_name)
    # the demo also offers OSS-Instruct seeds: 1-15 lines per file, reproducible from seed_rng
    assert len(seeds) >= 1 and seeds.seed_rng.notna().all()
    assert ((seeds.end_line - seeds.start_line + 1).between(1, 15)).all()
    assert all(u.startswith("https://github.com/python/cpython/blob/v") for u in rows.url)
    assert rows.n_chars.between(50, 800).all()
    assert r.filtered_by_reason["too_long"] > 0


def test_stdlib_wrong_module_is_an_error(store):
    r = ingest_sources(store, ["stdlib:no_such_module_xyz"])
    assert r.nothing_read and r.errors[0]["reason"] == "not_found"


# --------------------------------------------------------------------------- bad input

def test_bad_input_folder_every_case_counted_good_records_kept(store, bad_data, multilang_repo):
    r = ingest_sources(store, [str(bad_data), str(multilang_repo)])
    errs = _errors(store)
    by_loc = {(e.location, e.reason) for e in errs.itertuples()}
    assert ("binary.jsonl", "binary_file") in by_loc
    assert ("empty.jsonl", "empty_file") in by_loc
    assert ("invalid_utf8.jsonl:2", "invalid_utf8") in by_loc
    assert {("malformed.jsonl:1", "malformed_json"), ("malformed.jsonl:3", "not_an_object"),
            ("malformed.jsonl:4", "malformed_json")} <= by_loc
    assert {("fields.jsonl:1", "missing_field"), ("fields.jsonl:2", "wrong_type"), ("fields.jsonl:3", "wrong_type"),
            ("fields.jsonl:4", "unsupported_language")} <= by_loc
    assert ("huge_line.jsonl:2", "line_too_long") in by_loc
    trunc = errs[errs.reason == "truncated_gzip"]
    assert len(trunc) == 1 and trunc.iloc[0].location.startswith("truncated.jsonl.gz:")
    assert {("src/broken.py:6", "parse_error"), ("src/latin1.py:1", "invalid_utf8"),
            ("src/compiled.py", "binary_file"), ("src/payroll.cob", "unsupported_language")} <= by_loc
    # Every good record around the bad ones is in.
    names = set(store.df("SELECT func_name FROM snippets").func_name)
    assert {"shout_1", "shout_2", "shout_3", "shout_4", "shout_8", "shout_9", "shout_10"} <= names
    survivors = {n for n in names if n.startswith("shout_") and 20 <= int(n.split("_")[1]) < 60}
    assert 5 <= len(survivors) < 40          # the records before the truncation point
    assert {"intact_before_error", "intact_after_error", "polygon_area"} <= names
    assert len(r.errors) == len(errs[errs.kind == "error"])
    assert all(e["location"] and e["reason"] and e["source"] for e in r.errors)


def test_huge_single_line_source_file_is_skipped(store, tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    (d / "blob.js").write_text("var x = '" + "y" * (10 * 1024 * 1024) + "';\n")
    (d / "ok.py").write_text("def kept_function(a, b):\n    \"\"\"Add.\"\"\"\n    return a + b + 1000000\n")
    r = ingest_sources(store, [str(d)])
    assert r.ingested == 1 and r.filtered_by_reason["huge_file"] == 1


def test_unreadable_inputs_nothing_read(store, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    r = ingest_sources(store, [str(tmp_path / "missing.jsonl"), str(tmp_path / "notes.txt")])
    assert r.nothing_read
    assert [e["reason"] for e in r.errors] == ["not_found", "unsupported_file_type"]


def test_unknown_schema_is_one_error_not_one_per_line(store, tmp_path):
    f = tmp_path / "chat.jsonl"
    f.write_bytes(jsonl([{"messages": [{"role": "user", "content": "hi"}]}] * 50))
    r = ingest_sources(store, [str(f)])
    assert [e["reason"] for e in r.errors] == ["unknown_schema"]


def test_bad_arguments_raise_clear_errors(store):
    with pytest.raises(ShoalError, match="Unknown format"):
        ingest_sources(store, ["stdlib"], fmt="xml")
    with pytest.raises(ShoalError, match="length window"):
        ingest_sources(store, ["stdlib"], min_chars=900, max_chars=800)
    with pytest.raises(ShoalError, match="at least one source"):
        ingest_sources(store, [])


# --------------------------------------------------------------------------- filters and dedup

def test_filters_length_blacklist_and_dedup_within_run(store, tmp_path):
    f = tmp_path / "mix.jsonl"
    same = csn_record(1)
    reindented = dict(same, code=same["code"].replace("\n    ", "\n        "))  # same code, other indent
    f.write_bytes(jsonl([
        same, reindented,
        csn_record(2, code="def f(): pass"),                                            # too short
        csn_record(3, code="def g(x):\n    # FIXME: wrong for negatives\n    return x * x * x * x * 2"),
        csn_record(4, code="def h(x):\n    return x" + " + x" * 300),                    # too long
        csn_record(5, code="def stub(self, value, other):\n    raise NotImplementedError('subclasses do it')"),
    ]))
    r = ingest_sources(store, [str(f)])
    assert (r.read, r.ingested, r.duplicates) == (6, 1, 1)
    assert dict(r.filtered_by_reason) == {"too_short": 1, "blacklisted_word": 2, "too_long": 1}
    detail = _errors(store, reason="blacklisted_word").detail.tolist()
    assert any("FIXME" in d for d in detail) and any("NotImplementedError" in d for d in detail)
    # A custom blacklist replaces the default; an empty one turns it off.
    from core.store import open_store
    with open_store(tmp_path / "other.duckdb") as s2:
        r2 = ingest_sources(s2, [str(f)], blacklist=[], min_chars=5, max_chars=5000)
        assert r2.ingested == 5 and r2.filtered == 0


def test_reingest_adds_nothing_twice(store, multilang_repo):
    first = ingest_sources(store, [str(multilang_repo), str(CSN_ORIGINAL)])
    n_snippets = store.scalar("SELECT count(*) FROM snippets")
    n_errors = store.scalar("SELECT count(*) FROM ingest_errors")
    second = ingest_sources(store, [str(multilang_repo), str(CSN_ORIGINAL)])
    assert second.ingested == 0 and second.duplicates == first.ingested + first.duplicates
    assert second.filtered == first.filtered  # still counted in the run ...
    assert store.scalar("SELECT count(*) FROM snippets") == n_snippets
    assert store.scalar("SELECT count(*) FROM ingest_errors") == n_errors  # ... but not stored twice
    assert store.scalar("SELECT count(*) FROM ingests WHERE status = 'done'") == 2


def test_cancel_keeps_what_was_read(store, tmp_path):
    f = tmp_path / "many.jsonl"
    f.write_bytes(jsonl([csn_record(i) for i in range(3000)]))
    cancel = threading.Event()
    seen = []

    def progress(done, total, note):
        seen.append(done)
        if len(seen) == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        ingest_sources(store, [str(f)], progress=progress, cancel=cancel)
    row = store.one("SELECT * FROM ingests")
    assert row["status"] == "cancelled"
    n = store.scalar("SELECT count(*) FROM snippets")
    assert 0 < n < 3000 and row["ingested"] == n


def test_progress_reports_bytes_to_total(store, multilang_repo):
    calls = []
    ingest_sources(store, [str(multilang_repo)], progress=lambda d, t, n: calls.append((d, t)))
    total = calls[0][1]
    assert total and total > 0 and calls[-1][0] == total
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
