"""Export the curated set: accepted examples (edits applied, failing checks left out unless
overridden) in the formats trainers read, each with a dataset card and per-row provenance.

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
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import pandas as pd

from core.team import members as team
from core.dataset.versions import record_items
from core.errors import ShoalError
from core.dataset.hub import WRITTEN, check_repo_id, push_folder
from core.ingest.roots import check_team_target
from core.review.effective import effective_verdicts
from core.store import Store, returned

FORMATS = {
    "alpaca": "Alpaca JSONL (instruction, input, output)",
    "messages": "Chat messages JSONL (OpenAI / TRL SFT)",
    "sharegpt": "ShareGPT JSONL (conversations)",
    "oss-instruct": "OSS-Instruct JSONL (problem, solution, seed, lang)",
    "parquet": "Parquet (instruction, input, output + provenance)",
    "hf": "Hugging Face datasets folder (save_to_disk)",
}
DATA_FILE = {"alpaca": "train.jsonl", "messages": "train.jsonl", "sharegpt": "train.jsonl",
             "oss-instruct": "train.jsonl", "parquet": "train.parquet"}


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
    leave it, processes left behind: core.dataset.checks.sandbox.VIOLATIONS)."""
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
    from core.dataset.checks.exclusions import prefilter_reasons
    if ok is None or pd.isna(ok) or bool(ok):
        return None
    return prefilter_reasons(reasons) or ["stopped by the pre-filter"]


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
    raise ShoalError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")


# --------------------------------------------------------------------------- dataset card

def _table(counter: Counter, head: str) -> str:
    if not counter:
        return "_none_\n"
    lines = [f"| {head} | examples | share |", "|---|---:|---:|"]
    total = sum(counter.values())
    for k, v in counter.most_common():
        lines.append(f"| {k} | {v} | {v / total:.1%} |")
    return "\n".join(lines) + "\n"


def dataset_card(store: Store, fmt: str, sel: ExportSelection, name: str = "Shoal dataset") -> str:
    from core.dataset.checks.results import latest_run

    rows = sel.rows
    n = len(rows)
    size = "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "n>100K"
    front = ["---", "tags:", "- code", "- instruction-tuning", "- shoal", "task_categories:",
             "- text-generation", "language:", "- en", "size_categories:", f"- {size}"]
    if fmt in DATA_FILE:
        front += ["configs:", "- config_name: default", "  data_files:", "  - split: train",
                  f"    path: {DATA_FILE[fmt]}"]
    front.append("---")
    out = ["\n".join(front), f"# {name}", "",
           f"Instruction-tuning data for code LLMs curated with Shoal "
           f"(CodeOcean/WaveCoder and Magicoder/OSS-Instruct recipes), exported "
           f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} as **{FORMATS[fmt]}**.", "",
           f"**{n} examples.**", "", "## Task mix", "", _table(Counter(r["task"] for r in rows), "task"),
           "## Language mix", "", _table(Counter(r["language"] for r in rows), "language"),
           "## Models", "", _table(Counter(r["provenance"]["generator_model"] or "unknown" for r in rows),
                                   "generator model"),
           _table(Counter(r["provenance"]["judge_model"]
                         or ("unknown" if r["provenance"]["judge_verdict"] else "not judged") for r in rows),
                 "judge model"),
           "## Prompt versions", "",
           _table(Counter(r["provenance"]["prompt_version"] or "unknown" for r in rows), "task@version"),
           "## Filters", "",
           "- Included: " + ("examples a reviewer accepted, plus unreviewed examples the judge passed"
                             if sel.include_judged else "examples a reviewer accepted (a human verdict always "
                             "overrides the judge)") + ".",
           f"- Reviewer edits applied: {sum(1 for r in rows if r['provenance']['edited'])} edited examples.",
           f"- Accepted by a reviewer although the pre-filter stopped them (not judged; "
           f"`provenance.prefilter_failed` gives the reasons): {sum(1 for r in rows if r['provenance'].get('prefilter_failed'))}.",
           "- Failing checks (decontamination, near-duplicates, execution, semantic duplicates and leaks) "
           + ("exclude an example unless a reviewer overrode them" if sel.apply_checks else "were NOT applied")
           + f"; overridden check failures: {sel.n_overridden}.",
           f"- Candidates: {sel.n_candidates}; left out:", ""]
    out += [f"  - {k}: {v}" for k, v in sel.excluded.most_common()] or ["  - none"]
    out += ["", "## Decontamination", ""]
    dec = latest_run(store, "decontamination")
    if dec:
        s, p = dec["summary"], dec["params"]
        out += ["Method: case-insensitive, whitespace-normalized substring match"
                + (f" plus {p.get('ngram')}-gram overlap" if p.get("ngram") else "")
                + f" (bigcode / Magicoder). Benchmarks: {', '.join(b.split('=')[0] for b in p.get('benchmarks', []))}.",
                f"Checked {s.get('n_examples')} examples on {str(dec['created_at'])[:19]}; "
                f"flagged {s.get('n_flagged')} ({json.dumps(s.get('flagged_per_benchmark', {}))}); "
                f"flagged examples left out of this export: {sel.excluded.get('failed check: decontamination', 0)}."]
    else:
        out.append("**Not run.** Run `shoal check` before publishing this set.")
    for kind, title in (("near_duplicate", "Near-duplicates"), ("execution", "Execution check")):
        run = latest_check_run(store, kind)
        out += ["", f"## {title}", ""]
        if run:
            out.append(f"Last run {str(run['created_at'])[:19]}: parameters {json.dumps(run['params'])}; "
                       f"result {json.dumps({k: v for k, v in run['summary'].items() if k != 'flagged'})}.")
        elif kind == "near_duplicate":
            out.append("Not run.")
        else:
            out.append("No separate run (`shoal check`); the generation loop's runs are below.")
    out += ["", "## Duplicates and leaks removed", ""] + _removed_section(store, sel)
    out += ["", "## Execution pass rates", ""] + _execution_section(store, sel)
    out += ["", "## Reviewers and agreement", ""] + _review_section(store)
    out += ["", "## Judge calibration", ""] + _calibration_section(store, sel)
    out += ["", "## Provenance", "",
            "Every row carries `provenance`: generation_id, snippet_id, source, repo, path, url, func_name, "
            "task, language, generator_model, judge_model, judge_verdict, review_verdict (the final human "
            "verdict), reviewer (who it is signed by), edited, prompt_version, tests (the generator's own tests, "
            "in the solution's language), execution (pass / fail / error of solution + tests in the sandbox; "
            "empty when not run), reviews (every reviewer's own verdict), review_status (decided / agreed / "
            "resolved), adjudicator, prefilter_failed (the pre-filter's reasons when a person accepted "
            "an example it had stopped) and comments (the reviewers' comments: author, at, text).", ""]
    return "\n".join(out)


def _execution_section(store: Store, sel: ExportSelection) -> list[str]:
    """Pass rates of solution + tests in the sandbox, per task and language, over every example
    with a current execution verdict; and what that means for this export."""
    from core.dataset.checks.execution import execution_stats
    stats = execution_stats(store)
    if stats.empty:
        return ["No example has been executed (no tests were generated, or no execution check ran)."]
    lines = ["Every example that carries tests was run (solution, then its tests) in the sandbox; a failing one "
             "got one repair round. Pass rate = passed / executed, over all generated examples.", "",
             "| task | language | executed | passed | failed | did not compile | repaired | pass rate |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in stats.itertuples(index=False):
        lines.append(f"| {r.task} | {r.language} | {r.executed} | {r.passed} | {r.failed} | {r.error} | "
                     f"{r.repaired} | {r.passed / r.executed:.1%} |")
    tot = stats[["executed", "passed"]].sum()
    lines.append(f"| all | all | {int(tot.executed)} | {int(tot.passed)} | {int(stats.failed.sum())} | "
                 f"{int(stats.error.sum())} | {int(stats.repaired.sum())} | {tot.passed / tot.executed:.1%} |")
    shipped = Counter(r["provenance"]["execution"] or "not run" for r in sel.rows)
    rule = ("failing examples were included on request" if sel.include_failed_execution
            else "failing examples are left out unless a reviewer overrode the check" if sel.apply_checks
            else "checks were NOT applied")
    lines += ["", f"In this export ({rule}): " + ", ".join(f"{k}: {v}" for k, v in sorted(shipped.items()))
              + f"; left out for failing: {sel.excluded.get('failed check: execution', 0)}."]
    return lines


REMOVAL_CHECKS = (("decontamination", "benchmark text (exact substring / n-gram)"),
                  ("near_duplicate", "near-duplicates (MinHash / ROUGE-L)"),
                  ("semantic_duplicate", "semantic duplicates (embedding cosine)"),
                  ("semantic_decontamination", "semantic benchmark leaks (embedding cosine)"))


def _removed_section(store: Store, sel: ExportSelection) -> list[str]:
    """One row per duplicate / leak check: its last run, what it flags now, and what it removed here."""
    from core.dataset.checks.results import current_checks

    cur = current_checks(store)
    lines = ["| check | last run | settings | flagged now | overridden | left out of this export |",
             "|---|---|---|---:|---:|---:|"]
    for kind, title in REMOVAL_CHECKS:
        run = latest_check_run(store, kind)
        mine = cur[cur["kind"] == kind] if not cur.empty else cur
        failed = mine[~mine["passed"].astype(bool)] if not mine.empty else mine
        overridden = int(failed["overridden"].fillna(False).astype(bool).sum()) if not failed.empty else 0
        p = (run or {}).get("params") or {}
        settings = "; ".join(f"{k} {p[k]}" for k in ("threshold", "ngram", "model_key") if p.get(k) is not None) \
            or ("default" if run else "")
        lines.append(f"| {title} | {str(run['created_at'])[:19] if run else 'not run'} | {settings or '—'} | "
                     f"{len(failed)} | {overridden} | {sel.excluded.get(f'failed check: {kind}', 0)} |")
    lines += ["", "An example a reviewer accepted is left out by a check only after a person confirmed it on "
              "the Dataset page (or overrode the check to keep it)."]
    return lines


def _calibration_section(store: Store, sel: ExportSelection) -> list[str]:
    """Judge–human agreement of the judge versions that judged the exported examples: the newest
    `shoal judge eval` of each on the gold set, and the agreement on the examples it judged."""
    from core.dataset.judge_eval import calibration_of, production_agreement

    ids = [r["provenance"]["generation_id"] for r in sel.rows]
    used = [int(r["prompt_version_id"]) for r in store.rows(
        "SELECT DISTINCT prompt_version_id FROM latest_judgments WHERE prompt_version_id IS NOT NULL "
        "AND generation_id IN (SELECT unnest(?))", [ids])] if ids else []
    cal = calibration_of(store, used)
    if not cal:
        return ["No exported example was judged with a recorded prompt version."]
    lines = ["| task | judge of prompt versions | gold-set kappa | accuracy | precision / recall of accept | "
             "gold examples | evaluation | kappa on the examples it judged |", "|---|---|---:|---:|---:|---:|---|---:|"]
    for c in cal:
        e, live = c["evaluation"], production_agreement(store, c["task"], c["prompt_version_ids"])
        live_txt = f"{_fmt(live['kappa'])} (n={live['n']})"
        if e is None:
            lines.append(f"| {c['task']} | v{', v'.join(map(str, c['versions']))} | not evaluated | | | | "
                         f"run `shoal judge eval` | {live_txt} |")
            continue
        pr = f"{_fmt(e['precision_accept'])} / {_fmt(e['recall_accept'])}"
        lines.append(f"| {c['task']} | v{', v'.join(map(str, c['versions']))} | {_fmt(e['kappa'])} | "
                     f"{_fmt(e['accuracy'])} | {pr} | {e['n']} | #{e['eval_id']} {e['judge_model']} "
                     f"({e['created_at'][:10]}) | {live_txt} |")
    return lines


def latest_check_run(store: Store, kind: str) -> dict | None:
    """The newest run of a check (not a person's keep-one record)."""
    from core.dataset.checks.semantic import latest_semantic_run
    return latest_semantic_run(store, kind)


def _fmt(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.3f}"


def _review_section(store: Store) -> list[str]:
    """Who reviewed, with how much overlap, and how well people (and the judge) agreed."""
    from core.review.agreement import agreement
    from core.review.assign import overlap_summary
    from core.review.people import people_agreement
    from core.review.responses import status_counts

    ov, ppl, st = overlap_summary(store), people_agreement(store), status_counts(store)
    lines = [f"- Reviewers: {len(ppl['reviewers'])}" + (f" ({', '.join(ppl['reviewers'])})" if ppl["reviewers"] else "")
             + ".",
             f"- Overlap: {ov['overlap_examples']} of {ov['assigned']} assigned examples "
             f"({ov['overlap_share']:.0%}) were given to more than one reviewer"
             + (" (" + ", ".join(f"{n} reviewer(s): {k}" for n, k in sorted(ov["by_needed"].items())) + ")"
                if ov["by_needed"] else "") + ".",
             f"- Status: agreed {st['agreed']}, resolved by adjudication {st['resolved']}, in conflict "
             f"{st['conflict']}, pending {st['pending']}, decided by one reviewer {st['decided']}."]
    f = ppl["fleiss"]
    lines.append(f"- Agreement between reviewers (accept/reject): Fleiss' kappa {_fmt(f['kappa'])} over "
                 f"{f['n_examples']} examples with two or more verdicts ({f['split']} split).")
    for pair in ppl["pairs"]:
        lines.append(f"  - {pair['a']} vs {pair['b']}: Cohen's kappa {_fmt(pair['kappa'])}, "
                     f"agreement {pair['agreement']:.1%} on {pair['n']} examples.")
    judge = agreement(store)["overall"]
    lines.append(f"- Judge vs final human verdict (agreed or adjudicated): Cohen's kappa {_fmt(judge['kappa'])} "
                 f"on {judge['n']} examples.")
    return lines


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
        raise ShoalError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
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
    if fmt not in FORMATS:
        raise ShoalError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
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
        record_items(cur, export_id, sel.rows)
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
    message = f"Shoal export #{export_id}: {row['n_rows']} examples ({FORMATS.get(row['format'], row['format'])})"
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
