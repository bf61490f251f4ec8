"""The export formats: their names, the data file each writes, and the row a neutral export row
(core.dataset.export.select_rows) becomes in each."""
from __future__ import annotations

from core.errors import ShoalError

EXPORT_FORMATS = {
    "alpaca": "Alpaca JSONL (instruction, input, output)",
    "messages": "Chat messages JSONL (OpenAI / TRL SFT)",
    "sharegpt": "ShareGPT JSONL (conversations)",
    "oss-instruct": "OSS-Instruct JSONL (problem, solution, seed, lang)",
    "parquet": "Parquet (instruction, input, output + provenance)",
    "hf": "Hugging Face datasets folder (save_to_disk)",
}
DATA_FILE = {"alpaca": "train.jsonl", "messages": "train.jsonl", "sharegpt": "train.jsonl",
             "oss-instruct": "train.jsonl", "parquet": "train.parquet"}


def _prompt(row: dict) -> str:
    return row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")


def format_row(fmt: str, row: dict) -> dict:
    """One neutral row in the shape of `fmt` (provenance travels along in every format)."""
    prov = row["provenance"]
    if fmt == "alpaca":
        return {"instruction": row["instruction"], "input": row["input"], "output": row["output"], "provenance": prov}
    if fmt == "messages":
        return {"messages": [{"role": "user", "content": _prompt(row)},
                             {"role": "assistant", "content": row["output"]}], "provenance": prov}
    if fmt == "sharegpt":
        return {"conversations": [{"from": "human", "value": _prompt(row)},
                                  {"from": "gpt", "value": row["output"]}], "provenance": prov}
    if fmt == "oss-instruct":
        return {"problem": _prompt(row), "solution": row["output"], "seed": row["seed"],
                "lang": row["language"], "provenance": prov}
    if fmt in ("parquet", "hf"):
        return {"instruction": row["instruction"], "input": row["input"], "output": row["output"],
                "task": row["task"], "language": row["language"], "provenance": prov}
    raise ShoalError(f"Unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}.")
