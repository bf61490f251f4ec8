"""`shoal train validate`: every refused example counted by reason and located by line, the keys a
target does not read left out of the upload file, Shoal's export formats read as the pair they stand for."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core.cli.main import app
from core.dataset.formats import format_row
from core.errors import ShoalError
from core.train.validate import validate_file, write_training_file


def _row(i: int) -> dict:
    return {"instruction": f"Write a function number {i}.", "input": "", "output": f"def f{i}():\n    return {i}\n",
            "task": "code_generation", "language": "python", "seed": "", "provenance": {"generation_id": i}}


GOOD = [format_row("messages", _row(i)) for i in range(12)]
BAD = [  # (line content, the reason it is refused)
    ("{not json", "invalid_json"),
    (json.dumps([1, 2]), "not_an_object"),
    (json.dumps({"messages": []}), "no_messages"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}]}), "no_assistant_turn"),
    (json.dumps({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}),
     "last_turn_not_assistant"),
    (json.dumps({"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]}),
     "unknown_role"),
    (json.dumps({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]}),
     "empty_content"),
    (json.dumps({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]}),
     "content_not_text"),
    (json.dumps({"messages": [{"role": "user", "content": "q", "mood": "x"}, {"role": "assistant", "content": "a"}]}),
     "unknown_message_key"),
    (json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 2}]}),
     "weight_not_0_or_1"),
    (json.dumps({"messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "a"}]}),
     "too_long"),
]


@pytest.fixture
def training(tmp_path):
    lines = [json.dumps(g) for g in GOOD[:6]] + [b for b, _ in BAD] + [""] + [json.dumps(g) for g in GOOD[6:]]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_refused_example_is_counted_by_reason_at_its_line(training):
    v = validate_file(training, "openai", max_tokens=300)
    assert v.lines == len(GOOD) + len(BAD) and len(v.valid) == len(GOOD) and v.ok
    assert v.reasons == {reason: 1 for _, reason in BAD}
    assert {r: lines[0] for r, lines in v.where.items()} == {reason: 7 + i for i, (_, reason) in enumerate(BAD)}
    assert v.dropped_keys == {"provenance": len(GOOD)}      # Shoal's provenance: left out, not refused
    assert v.token_method and max(v.tokens) <= 300


def test_the_upload_file_holds_the_good_examples_with_the_targets_keys_only(training, tmp_path):
    v = validate_file(training, "openai", max_tokens=300)
    out = tmp_path / "upload.jsonl"
    assert write_training_file(training, v, out) == len(GOOD)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [{"messages": g["messages"]} for g in GOOD]
    again = validate_file(out, "openai", max_tokens=300)
    assert again.ok and not again.reasons and not again.dropped_keys


def test_shoals_other_formats_are_read_as_the_pair_they_stand_for(tmp_path):
    for fmt in ("alpaca", "sharegpt", "oss-instruct"):
        path = tmp_path / f"{fmt}.jsonl"
        path.write_text("".join(json.dumps(format_row(fmt, _row(i))) + "\n" for i in range(10)))
        v = validate_file(path, "openai")
        assert v.ok and len(v.valid) == 10 and not v.reasons, (fmt, v.summary())
        out = tmp_path / f"{fmt}.upload.jsonl"
        write_training_file(path, v, out)
        first = json.loads(out.read_text().splitlines()[0])
        assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
        assert first["messages"][1]["content"] == _row(0)["output"]


def test_too_few_examples_and_unknown_targets_are_said(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(g) + "\n" for g in GOOD[:3]))
    v = validate_file(path, "openai")
    assert not v.ok and v.problems == ["3 valid examples; openai needs at least 10."]
    assert validate_file(path, "trl").ok
    with pytest.raises(ShoalError, match="Unknown target"):
        validate_file(path, "nope")
    with pytest.raises(ShoalError, match="No training file"):
        validate_file(tmp_path / "missing", "openai")


def test_cli_prints_one_json_object_and_fails_when_nothing_may_be_uploaded(training, tmp_path):
    out = tmp_path / "up.jsonl"
    res = CliRunner().invoke(app, ["train", "validate", str(training.parent), "--max-tokens", "300",
                                   "--write", str(out), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert (s["valid"], s["refused"], s["written"]) == (len(GOOD), len(BAD), len(GOOD))
    assert s["lines_by_reason"]["too_long"] == [17] and s["dropped_keys"] == {"provenance": len(GOOD)}
    text = CliRunner().invoke(app, ["train", "validate", str(training), "--max-tokens", "300"])
    assert text.exit_code == 0 and "12 of 23 examples fit openai" in text.output and "too_long" in text.output
    few = tmp_path / "few.jsonl"
    few.write_text(json.dumps(GOOD[0]) + "\n")
    bad = CliRunner().invoke(app, ["train", "validate", str(few)])
    assert bad.exit_code == 1 and "needs at least 10" in bad.output


@pytest.mark.parametrize("fmt", ["messages", "alpaca", "sharegpt"])
def test_a_real_shoal_export_passes_and_uploads_without_provenance(store, tmp_path, fmt):
    """Accepted examples exported by Shoal itself (shoal export), then `shoal train validate` on the folder."""
    from core.dataset.export import export_dataset
    from tests.support.seed_data import add_example, distinct_python_solution, wave
    for i in range(11):
        add_example(store, wave(f"Write a Python function number {i}.", distinct_python_solution(i)),
                    verdict="accepted", judge=True)
    out = tmp_path / f"export-{fmt}"
    assert export_dataset(store, fmt, out).n_rows == 11
    upload = tmp_path / "upload.jsonl"
    res = CliRunner().invoke(app, ["train", "validate", str(out), "--write", str(upload), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert (s["valid"], s["refused"], s["ok"]) == (11, 0, True) and s["dropped_keys"]["provenance"] == 11
    rows = [json.loads(line) for line in upload.read_text().splitlines()]
    assert len(rows) == 11 and all(list(r) == ["messages"] for r in rows)
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)


def test_keys_from_the_file_are_printed_as_text(tmp_path):
    """A key of the user's file is data: printed as written, never read as console markup."""
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({**GOOD[0], "[/bad]": 1}) + "\n")
    res = CliRunner().invoke(app, ["train", "validate", str(path), "--target", "trl"])
    assert res.exit_code == 0 and "[/bad] (1)" in res.output, res.output
