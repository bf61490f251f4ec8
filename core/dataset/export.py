"""Export the curated set: accepted examples (edits applied, failing checks left out unless
overridden) in the formats trainers read (core.dataset.formats), each with a dataset card (core.dataset.card)
and per-row provenance.

Every export is a folder: the data file(s) plus README.md (the dataset card). It is built in
a temporary sibling folder and renamed into place, so a crash never leaves half a dataset.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.dataset.card import dataset_card
from core.dataset.formats import DATA_FILE, EXPORT_FORMATS, format_row
from core.dataset.hub import WRITTEN, check_repo_id, push_folder
from core.dataset.versions import record_export_items
from core.errors import ShoalError
from core.ingest.roots import check_team_target
from core.review.effective import effective_verdicts
from core.review.items import prefilter_reasons
from core.store import Store, returned
from core.team import members as team


@dataclass
class ExportSelection:
    rows: list[dict]                        # neutral rows: instruction, input, output, ... provenance
    excluded: Counter = field(default_factory=Counter)   # reason -> count
    n_candidates: int = 0
    n_overridden: int = 0
    include_judged: bool = False
    apply_checks: bool = True
    include_failed_execution: bool = False
    n_failed_execution_included: int = 0


@dataclass
class ExportResult:
    format: str
    path: str
    n_rows: int
    excluded: dict
    card: str
    export_id: int | None = None
    pushed_to: str | None = None

    def as_dict(self) -> dict:
        return {"format": self.format, "path": self.path, "n_rows": self.n_rows,
                "excluded": self.excluded, "export_id": self.export_id, "pushed_to": self.pushed_to}


def _s(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return None
    return str(v)


def _judge_verdict(v: Any) -> str | None:
    try:
        if v is None or pd.isna(v):
            return None
    except (TypeError, ValueError):
        return None
    return "passed" if bool(v) else "failed"


def _left_out_by_verdict(effective: str | None, decided_by: str | None, include_judged: bool) -> str | None:
    """Why the effective verdict (core.review.effective: human over judge) keeps an example out,
    or None when it may leave: accepted by a reviewer, or — with `include_judged` — passed by the judge."""
    if effective == "accepted" and (decided_by == "human" or include_judged):
        return None
    if decided_by == "human":
        return "rejected by reviewer"
    return "not accepted (and judge did not pass it)" if include_judged else "not accepted by a reviewer"


def _execution_outcomes(cur: pd.DataFrame) -> dict[int, str]:
    """generation_id -> pass | fail | error of its current execution check."""
    out: dict[int, str] = {}
    for g, kind, passed, detail in zip(cur["generation_id"], cur["kind"], cur["passed"], cur["detail"]):
        if kind == "execution":
            try:
                d = json.loads(detail) if isinstance(detail, str) else {}
            except ValueError:
                d = {}
            out[int(g)] = d.get("outcome") or ("pass" if bool(passed) else "fail")
    return out


def _sandbox_violations(cur: pd.DataFrame) -> dict[int, str]:
    """generation_id -> why the sandbox stopped its current execution run (a limit, an attempt to
    leave it, processes left behind: core.sandbox.isolation.VIOLATIONS)."""
    out: dict[int, str] = {}
    for g, kind, detail in zip(cur["generation_id"], cur["kind"], cur["detail"]):
        if kind == "execution" and isinstance(detail, str) and '"violation"' in detail:
            try:
                why = json.loads(detail).get("violation")
            except ValueError:
                continue
            if why:
                out[int(g)] = str(why)
    return out


def _team_view(store: Store) -> tuple[dict[int, list[dict]], dict[int, tuple[str, int, str | None]]]:
    """Every reviewer's response per example, and (status, needed, adjudicator) of examples that
    have responses or assignments (the others are plain one-reviewer examples)."""
    responses: dict[int, list[dict]] = {}
    for gid, reviewer, verdict in store.execute(
            "SELECT generation_id, reviewer, verdict FROM review_responses ORDER BY generation_id, updated_at, reviewer"
    ).fetchall():
        responses.setdefault(int(gid), []).append({"reviewer": reviewer, "verdict": verdict})
    status = {int(g): (st, int(n), adj) for g, st, n, adj in store.execute(
        "SELECT generation_id, status, needed, adjudicator FROM review_team_status "
        "WHERE needed > 1 OR generation_id IN (SELECT generation_id FROM review_responses)").fetchall()}
    return responses, status


_WAITING = {"conflict": "reviewers disagree (waiting for adjudication)",
            "pending": "waiting for more reviewers (overlap)"}


def select_rows(store: Store, include_judged: bool = False, apply_checks: bool = True,
                include_failed_execution: bool = False) -> ExportSelection:
    """Which examples leave Shoal, with the reason every other one stays. An example whose solution
    failed its tests in the sandbox stays unless a person overrode that check, or
    `include_failed_execution` lets every such example through. An example that needs several
    reviewers leaves only with their agreed or adjudicated verdict, never on the judge's."""
    from core.dataset.checks.examples import load_examples
    from core.dataset.checks.results import blocking_checks, current_checks
    from core.tasks import get_task

    ex = load_examples(store)
    sel = ExportSelection([], Counter(), len(ex), include_judged=include_judged, apply_checks=apply_checks,
                          include_failed_execution=include_failed_execution)
    blocked = blocking_checks(store) if apply_checks else {}
    cur = current_checks(store)
    executed = _execution_outcomes(cur) if not cur.empty else {}
    stopped = _sandbox_violations(cur) if not cur.empty else {}
    if not cur.empty:
        sel.n_overridden = int((cur["overridden"].fillna(False).astype(bool) & ~cur["passed"].astype(bool)).sum())
    effective = effective_verdicts(store)
    responses, team = _team_view(store)
    for r in ex.itertuples(index=False):
        verdict = r.verdict if isinstance(r.verdict, str) else None
        judge = _judge_verdict(r.judge_overall)
        eff, by = effective.get(int(r.generation_id), (None, None))
        status, needed, adjudicator = team.get(int(r.generation_id), (None, 1, None))
        reason = _left_out_by_verdict(eff, by, include_judged)
        if not reason and needed > 1 and by != "human":
            reason = _WAITING.get(status or "", "waiting for more reviewers (overlap)")
        if reason:
            sel.excluded[reason] += 1
            continue
        if not r.solution.strip() or not r.instruction.strip():
            sel.excluded["empty instruction or solution"] += 1
            continue
        kinds = blocked.get(int(r.generation_id)) or []
        if int(r.generation_id) in stopped:   # never exported: not with an override, not with the flag below
            sel.excluded[f"stopped by the sandbox: {stopped[int(r.generation_id)]}"] += 1
            continue
        if include_failed_execution and "execution" in kinds:
            kinds = [k for k in kinds if k != "execution"]
            sel.n_failed_execution_included += 1
        if kinds:
            for k in kinds:
                sel.excluded[f"failed check: {k}"] += 1
            continue
        spec = get_task(r.task)
        prompt = f"{r.prompt_task}@v{int(r.prompt_version)}" if isinstance(r.prompt_task, str) else None
        sel.rows.append({
            "instruction": r.instruction, "input": r.input, "output": r.solution,
            "task": r.task, "language": r.language, "seed": _s(r.seed) or "",
            "provenance": {
                "generation_id": int(r.generation_id), "snippet_id": _s(r.snippet_id),
                "source": _s(r.source), "repo": _s(r.repo), "path": _s(r.path), "url": _s(r.url),
                "func_name": _s(r.func_name), "task": r.task, "language": _s(r.language),
                "generator_model": _s(r.generator_model), "judge_model": _s(r.judge_model),
                "judge_verdict": judge, "review_verdict": verdict, "reviewer": _s(r.reviewer),
                "edited": r.edited_fields is not None and not (isinstance(r.edited_fields, float)),
                "prompt_version": prompt,
                "tests": spec.tests_of(r.fields_eff) or None,
                "execution": executed.get(int(r.generation_id)),
                "reviews": responses.get(int(r.generation_id), []),
                "review_status": status or ("decided" if verdict in ("accepted", "rejected") else "judge only"),
                "adjudicator": adjudicator,
                # accepted by a person although the pre-filter stopped it (never judged): its reasons
                "prefilter_failed": _prefilter_failed(r.prefilter_ok, r.prefilter_reasons),
            },
        })
    _attach_comments(store, sel.rows)
    return sel


def _attach_comments(store: Store, rows: list[dict]) -> None:
    """Each row's review comments (author, time, text; oldest first) into its provenance."""
    from core.review.comments import comments_for
    notes = comments_for(store, [r["provenance"]["generation_id"] for r in rows])
    for r in rows:
        r["provenance"]["comments"] = [{"author": c["author"], "at": str(c["created_at"]), "text": c["body"]}
                                       for c in notes.get(r["provenance"]["generation_id"], [])]


def _prefilter_failed(ok: Any, reasons: Any) -> list[str] | None:
    """The pre-filter's reasons when it stopped this example, else None."""
    if ok is None or pd.isna(ok) or bool(ok):
        return None
    return prefilter_reasons(reasons) or ["stopped by the pre-filter"]


# --------------------------------------------------------------------------- writers

def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _write_into(folder: Path, fmt: str, rows: list[dict], card: str) -> None:
    shaped = [format_row(fmt, r) for r in rows]
    if fmt in ("alpaca", "messages", "sharegpt", "oss-instruct"):
        _write_jsonl(folder / DATA_FILE[fmt], shaped)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.Table.from_pylist(shaped, schema=_arrow_schema()), folder / DATA_FILE[fmt])
    elif fmt == "hf":
        _hf_dataset(shaped).save_to_disk(str(folder))
    else:
        raise ShoalError(f"Unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}.")
    (folder / "README.md").write_text(card, encoding="utf-8")


def _arrow_schema():
    import pyarrow as pa
    s = pa.string()
    prov = pa.struct([("generation_id", pa.int64()), ("snippet_id", s), ("source", s), ("repo", s),
                      ("path", s), ("url", s), ("func_name", s), ("task", s), ("language", s),
                      ("generator_model", s), ("judge_model", s), ("judge_verdict", s),
                      ("review_verdict", s), ("reviewer", s), ("edited", pa.bool_()), ("prompt_version", s),
                      ("tests", s), ("execution", s),
                      ("reviews", pa.list_(pa.struct([("reviewer", s), ("verdict", s)]))),
                      ("review_status", s), ("adjudicator", s)])
    return pa.schema([("instruction", s), ("input", s), ("output", s), ("task", s), ("language", s),
                      ("provenance", prov)])


def _hf_dataset(shaped: list[dict]):
    import datasets
    import pyarrow as pa
    table = pa.Table.from_pylist(shaped, schema=_arrow_schema())
    return datasets.Dataset(table)


def _owner_only(folder: Path) -> None:
    """An export is readable by its owner only (0700 folders, 0600 files), whatever the umask."""
    folder.chmod(0o700)
    for p in folder.rglob("*"):
        if not p.is_symlink():
            p.chmod(0o700 if p.is_dir() else 0o600)


def _swap_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    if out.exists():
        if not overwrite and (out.is_file() or any(out.iterdir())):
            raise ShoalError(f"{out} already exists; choose another --out or pass --overwrite.")
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            old.rename(out)
            raise
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        tmp.rename(out)


def export_dataset(store: Store, fmt: str, out: str | os.PathLike, include_judged: bool = False,
                   apply_checks: bool = True, overwrite: bool = False, name: str = "Shoal dataset",
                   push_to_hub: str | None = None, allow_empty: bool = False,
                   include_failed_execution: bool = False, *, actor: str | None = None,
                   hub_private: bool = False, hub_token: str | None = None) -> ExportResult:
    """Write the selected examples in `fmt` to the folder `out` (atomically); record an `exports` row.
    With `push_to_hub` (a Hub dataset repo id), then push the folder there (`push_export`)."""
    team.authorize(store, actor, "export", target=out, check=lambda: check_team_target(store, actor, out))
    if fmt not in EXPORT_FORMATS:
        raise ShoalError(f"Unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}.")
    if push_to_hub:
        check_repo_id(push_to_hub)      # a bad repo id stops the export before anything is written
    out = Path(out).expanduser()
    if out.exists() and not overwrite and (out.is_file() or any(out.iterdir())):
        raise ShoalError(f"{out} already exists; choose another --out or pass --overwrite.")
    sel = select_rows(store, include_judged, apply_checks, include_failed_execution)
    if not sel.rows and not allow_empty:
        why = ", ".join(f"{k}: {v}" for k, v in sel.excluded.most_common()) or "there are no generated examples"
        raise ShoalError(f"Nothing to export ({why}). Accept examples on the Review page first"
                         + ("" if include_judged else ", or include judge-passed ones (--include-judged)") + ".")
    card = dataset_card(store, fmt, sel, name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        _write_into(tmp, fmt, sel.rows, card)
        _owner_only(tmp)
        _swap_into_place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    params = {"include_judged": include_judged, "apply_checks": apply_checks,
              "include_failed_execution": include_failed_execution, "excluded": dict(sel.excluded),
              "n_candidates": sel.n_candidates, "pushed_to": None, "name": name}

    def record(cur) -> int:   # the exports row and its items (the version: core.dataset.versions), together
        cur.execute("INSERT INTO exports(format, path, n_rows, params, card) VALUES (?, ?, ?, ?, ?) RETURNING id",
                    [fmt, str(out.resolve()), len(sel.rows), json.dumps(params), card])
        export_id = int(returned(cur))
        record_export_items(cur, export_id, sel.rows)
        return export_id
    export_id = store.write(record)
    res = ExportResult(fmt, str(out), len(sel.rows), dict(sel.excluded), card, int(export_id))
    if push_to_hub:   # the export is written and recorded first: a failed push loses nothing
        res.pushed_to = push_export(store, int(export_id), push_to_hub, token=hub_token, private=hub_private,
                                    actor=actor)
    return res


def pushable_exports(store: Store, limit: int = 20) -> list[dict]:
    """Folder exports whose folder is still on this machine, newest first (what `push_export` can push)."""
    rows = store.rows("SELECT id, created_at, format, n_rows, path, params FROM exports "
                      "WHERE path NOT LIKE 'download:%' ORDER BY id DESC LIMIT ?", [limit * 5])
    out = []
    for r in rows:
        if Path(r["path"]).is_dir():
            params = json.loads(r["params"]) if isinstance(r["params"], str) else (r["params"] or {})
            out.append({**r, "params": params, "pushed_to": params.get("pushed_to")})
    return out[:limit]


def push_export(store: Store, export_id: int, repo_id: str, *, token: str | None = None, private: bool = False,
                actor: str | None = None) -> str:
    """Push the folder of export `export_id` (data file(s) + README.md card) to the Hub dataset repo
    `repo_id` (core.dataset.hub); record where in the export's params; the repo's URL. The token (typed on
    a page, else HF_TOKEN) is used for this push only, never stored."""
    row = store.one("SELECT format, path, n_rows, params FROM exports WHERE id = ?", [int(export_id)])
    if row is None:
        raise ShoalError(f"There is no export #{export_id}.")
    folder = str(row["path"])
    team.authorize(store, actor, "export", target=folder)
    if folder.startswith("download:") or not Path(folder).is_dir():
        raise ShoalError(f"Export #{export_id} has no folder on this machine any more ({folder}): "
                         "export to a folder again, then push that.")
    message = f"Shoal export #{export_id}: {row['n_rows']} examples ({EXPORT_FORMATS.get(row['format'], row['format'])})"
    try:
        url = push_folder(folder, repo_id, token=token, private=private, commit_message=message)
    except ShoalError as exc:
        text = str(exc).replace(f"{WRITTEN}.", f"{WRITTEN} to {folder} (dataset version #{export_id}).")
        raise ShoalError(text) from None
    params = json.loads(row["params"]) if isinstance(row["params"], str) else dict(row["params"] or {})
    params.update(pushed_to=url, pushed_private=bool(private), pushed_at=datetime.now(UTC).isoformat(timespec="seconds"))
    store.execute("UPDATE exports SET params = ? WHERE id = ?", [json.dumps(params), int(export_id)])
    return url


def export_zip(store: Store, fmt: str, include_judged: bool = False, apply_checks: bool = True,
               name: str = "Shoal dataset", include_failed_execution: bool = False,
               *, actor: str | None = None) -> tuple[bytes, ExportResult]:
    """The export as a zip archive in memory (for the app's download button)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="shoal-export-") as tmp:
        folder = Path(tmp) / f"shoal-{fmt}"
        res = export_dataset(store, fmt, folder, include_judged, apply_checks, name=name,
                             include_failed_execution=include_failed_execution, actor=actor)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    zf.write(p, f"{folder.name}/{p.relative_to(folder)}")
        store.execute("UPDATE exports SET path = ? WHERE id = ?", [f"download:{folder.name}.zip", res.export_id])
        res.path = f"{folder.name}.zip"
        return buf.getvalue(), res


def recent_exports(store: Store, limit: int = 10) -> pd.DataFrame:
    """The newest exports: when, which format, how many rows, where."""
    return store.df("SELECT created_at, format, n_rows, path FROM exports ORDER BY id DESC LIMIT ?", [limit])
