"""Every export format is read back by the library its users would use."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from core.cli.main import app
from core.dataset.checks.benchmarks import humaneval_problems
from core.dataset.checks.decontam import run_decontamination
from core.dataset.checks.results import set_override
from core.dataset.export import export_dataset, export_zip, select_rows
from core.dataset.formats import EXPORT_FORMATS
from core.errors import ShoalError
from tests.support.seed_data import add_example, distinct_python_solution, oss, wave


@pytest.fixture
def curated(store):
    """Accepted, rejected, unreviewed, judge-passed, edited and contaminated examples."""
    ids = {}
    ids["acc"] = add_example(store, wave("Write a Python function that doubles a number.",
                                         distinct_python_solution(1)), verdict="accepted", judge=True)
    ids["edited"] = add_example(store, wave("Write a Python function that triples.", distinct_python_solution(2),
                                            information="def g(x): pass"), verdict="accepted", judge=False,
                                edited={"instruction": "Write a Python function that triples a number (edited)."})
    ids["oss"] = add_example(store, oss("Implement a rate limiter class in Python.", "```python\n"
                                        + distinct_python_solution(3) + "```"), task="oss_instruct",
                             verdict="accepted", seed_code="limiter = Limiter(5)\n")
    ids["java"] = add_example(store, wave("Write a Java method summing an array.",
                                          "int sum(int[] a){int s=0;for(int x:a)s+=x;return s;}"),
                              language="java", verdict="accepted", judge=True)
    ids["rejected"] = add_example(store, wave("Write a bad function.", "pass"), verdict="rejected", judge=True)
    ids["unreviewed"] = add_example(store, wave("Write a Python function to parse dates.",
                                                distinct_python_solution(4)), judge=True)
    ids["judge_failed"] = add_example(store, wave("Write a Python function to zip lists.",
                                                  distinct_python_solution(5)), judge=False)
    canon = humaneval_problems()["HumanEval/10"]["canonical_solution"]
    ids["contaminated"] = add_example(store, wave("Write a palindrome helper.", "def f(string):\n" + canon),
                                      verdict="accepted", judge=True)
    run_decontamination(store, "humaneval")
    return ids


def test_selection_applies_verdicts_edits_and_checks(store, curated):
    sel = select_rows(store)
    got = {r["provenance"]["generation_id"]: r for r in sel.rows}
    assert set(got) == {curated[k] for k in ("acc", "edited", "oss", "java")}
    assert got[curated["edited"]]["instruction"].endswith("(edited).")
    assert got[curated["edited"]]["provenance"]["edited"] is True
    assert got[curated["edited"]]["input"] == "def g(x): pass"
    assert got[curated["acc"]]["input"] == ""                   # "no input" becomes empty
    assert sel.excluded["failed check: decontamination"] == 1
    assert sel.excluded["rejected by reviewer"] == 1
    with_judged = {r["provenance"]["generation_id"] for r in select_rows(store, include_judged=True).rows}
    assert curated["unreviewed"] in with_judged and curated["judge_failed"] not in with_judged
    set_override(store, curated["contaminated"], "decontamination", True, actor="dana")
    assert curated["contaminated"] in {r["provenance"]["generation_id"] for r in select_rows(store).rows}


def test_every_format_reads_back(store, curated, tmp_path):
    import datasets
    n = len(select_rows(store).rows)
    for fmt in EXPORT_FORMATS:
        out = tmp_path / f"out-{fmt}"
        res = export_dataset(store, fmt, out)
        assert res.n_rows == n
        card = (out / "README.md").read_text()
        assert f"**{n} examples.**" in card and "## Decontamination" in card and "humaneval" in card
        assert "failed check: decontamination: 1" in card
        if fmt == "hf":
            ds = datasets.load_from_disk(str(out))
        elif fmt == "parquet":
            df = pd.read_parquet(out / "train.parquet")
            assert len(df) == n and {"instruction", "input", "output", "provenance"} <= set(df.columns)
            assert df["provenance"].iloc[0]["generation_id"] > 0
            ds = datasets.Dataset.from_pandas(df)
        else:
            ds = datasets.load_dataset("json", data_files=str(out / "train.jsonl"), split="train",
                                       cache_dir=str(tmp_path / "hf-cache"))
        assert len(ds) == n
        row = ds[0]
        assert row["provenance"]["reviewer"] == "alice" and row["provenance"]["task"]
        if fmt == "alpaca":
            assert set(row) == {"instruction", "input", "output", "provenance"}
        elif fmt == "messages":
            assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        elif fmt == "sharegpt":
            assert [m["from"] for m in row["conversations"]] == ["human", "gpt"]
        elif fmt == "oss-instruct":
            rows = {r["provenance"]["generation_id"]: r for r in ds}
            assert rows[curated["oss"]]["seed"] == "limiter = Limiter(5)\n" and rows[curated["oss"]]["lang"] == "python"
            assert rows[curated["java"]]["lang"] == "java"
    assert store.scalar("SELECT count(*) FROM exports") == len(EXPORT_FORMATS)


def test_export_is_atomic_and_refuses_to_overwrite(store, curated, tmp_path, monkeypatch):
    out = tmp_path / "alp"
    export_dataset(store, "alpaca", out)
    before = (out / "train.jsonl").read_text()
    with pytest.raises(ShoalError, match="already exists"):
        export_dataset(store, "alpaca", out)
    import core.dataset.export as ex

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(ex, "_write_jsonl", boom)
    with pytest.raises(RuntimeError):
        export_dataset(store, "alpaca", out, overwrite=True)
    assert (out / "train.jsonl").read_text() == before                  # the old export is intact
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp left over


def test_nothing_to_export_is_a_clear_error(store, tmp_path):
    add_example(store, wave("Write x.", "x = 1"), judge=True)
    with pytest.raises(ShoalError, match="Nothing to export.*--include-judged"):
        export_dataset(store, "alpaca", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_export_and_zip(store, curated, tmp_path):
    db = store.path
    store.checkpoint()
    store.close()
    out = tmp_path / "cli-out"
    res = CliRunner().invoke(app, ["--db", str(db), "export", "--format", "messages", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["n_rows"] == 4 and (out / "train.jsonl").exists()
    bad = CliRunner().invoke(app, ["--db", str(db), "export", "--format", "csv", "--out", str(tmp_path / "z")])
    assert bad.exit_code == 1 and "Unknown export format" in bad.output
    from core.store import open_store
    s = open_store(db)
    data, r = export_zip(s, "parquet")
    import io
    import zipfile
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "shoal-parquet/train.parquet" in names and "shoal-parquet/README.md" in names
    s.close()
