"""The dataset card (README.md) an export writes: the mix of tasks, languages, models and prompt
versions, the filters, what each check removed, execution pass rates, reviewer agreement and judge
calibration."""
from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.dataset.formats import DATA_FILE, EXPORT_FORMATS
from core.store import Store

if TYPE_CHECKING:
    from core.dataset.export import ExportSelection


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
           f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} as **{EXPORT_FORMATS[fmt]}**.", "",
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
