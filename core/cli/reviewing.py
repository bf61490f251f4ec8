"""`shoal review`: headless review — status, bulk accept/reject over a filter, single verdicts, undo; comments;
saved views."""
from __future__ import annotations

import getpass
import os
import sys

import typer

from core.cli.common import console, fail, print_json, store_from
from core.errors import ShoalError

FILTER_HELP = ("Restrict to a queue filter, KEY=VALUE, repeatable: task, language, cluster (latest map), "
               "map, selection (id or name), judge (passed|failed|unjudged|any), rule (judge rule that "
               "failed), status (todo|unreviewed|reviewed|accepted|rejected|skipped|edited|any), reviewer, "
               "search. Lists are comma-separated: --filter task=code_generation,code_repair")


def parse_filters(store, items: list[str], **defaults):
    """`--filter key=value` options -> QueueFilter (clear errors for unknown keys or values)."""
    from core.review import QueueFilter
    d: dict = dict(defaults)
    for item in items or []:
        if "=" not in item:
            raise ShoalError(f"--filter needs KEY=VALUE, got {item!r}.")
        key, value = (x.strip() for x in item.split("=", 1))
        values = [v.strip() for v in value.split(",") if v.strip()]
        if key in ("task", "tasks"):
            d["tasks"] = tuple(values)
        elif key in ("language", "languages", "lang"):
            d["languages"] = tuple(values)
        elif key in ("cluster", "clusters"):
            try:
                d["clusters"] = tuple(int(v) for v in values)
            except ValueError:
                raise ShoalError(f"cluster must be numbers, got {value!r}.") from None
        elif key == "map":
            d["map_id"] = int(value)
        elif key == "selection":
            from core.select.stored import selection_named_or_numbered
            sel = selection_named_or_numbered(store, value)
            if sel is None:
                raise ShoalError(f"No selection named or numbered {value!r}.")
            d["selection_id"] = int(sel)
        elif key in ("judge", "status", "reviewer", "search", "rule", "rule_answer"):
            d[key] = value
        else:
            raise ShoalError(f"Unknown filter key {key!r}. {FILTER_HELP}")
    return QueueFilter.from_dict(d)


def add_commands(app: typer.Typer) -> None:
    review_app = typer.Typer(help="Review generated examples without the app: status, bulk accept/reject over a "
                                  "filter, undo; comments on an example (`shoal review comment`, `comments`); "
                                  "the Review queue's saved views (`shoal review views`).")
    app.add_typer(review_app, name="review")
    register_comments(review_app)
    register_views(review_app)

    @review_app.callback(invoke_without_command=True)
    def review(
        ctx: typer.Context,
        status: bool = typer.Option(False, "--status", help="Review progress, effective verdicts and judge-human agreement."),
        as_json: bool = typer.Option(False, "--json", help="With --status: print one JSON object."),
        accept_judged: bool = typer.Option(False, "--accept-judged", help="Accept every judge-passed example in the filter that has no human verdict yet."),
        reject_judged_failed: bool = typer.Option(False, "--reject-judged-failed", help="Reject every judge-failed example in the filter that has no human verdict yet."),
        filters: list[str] = typer.Option([], "--filter", "-f", help=FILTER_HELP),
        overwrite: bool = typer.Option(False, "--overwrite", help="Bulk: also change examples that already have a human verdict."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Bulk: only print how many examples would change."),
        accept: int | None = typer.Option(None, "--accept", help="Accept one example by id."),
        reject: int | None = typer.Option(None, "--reject", help="Reject one example by id."),
        note: str | None = typer.Option(None, "--note", help="Note stored with the verdict."),
        undo: bool = typer.Option(False, "--undo", help="Undo this reviewer's last decision or bulk action."),
        reviewer: str | None = typer.Option(None, "--reviewer", envvar="SHOAL_REVIEWER",
                                               help="Name recorded in the audit log (default: $USER)."),
    ):
        """Review generated examples without the app: status, bulk accept/reject over a filter, undo."""
        if ctx.invoked_subcommand is not None:     # `shoal review comment ...`: the subcommand acts
            return
        from core import review as rv
        store = store_from(ctx)
        from core.team.members import local
        who = local(reviewer or os.environ.get("USER") or _login() or "cli")   # this machine's own user: any role
        chosen = sum(bool(x) for x in (status, accept_judged, reject_judged_failed, accept is not None,
                                        reject is not None, undo))
        if chosen != 1:
            fail("Choose exactly one of --status, --accept-judged, --reject-judged-failed, --accept ID, "
                 "--reject ID, --undo.")
        try:
            if status:
                data = rv.review_status(store)
                if as_json:
                    print_json(data)
                else:
                    _print_status(data)
                return
            gid = accept if accept is not None else reject
            if gid is not None:
                verdict = "accepted" if accept is not None else "rejected"
                decided = rv.decide(store, gid, verdict, reviewer=who, note=note,
                                    expected_version=rv.current_version(store, gid))
                console.print(f"#{gid} {verdict} by {who} (version {decided['version']}).")
                return
            if undo:
                undone = rv.undo_last(store, who)
                console.print(f"Undid {undone.action} ({undone.restored} restored"
                              + (f", {undone.not_restored} changed since and left as they are"
                                 if undone.not_restored else "")
                              + ").")
                return
            verdict, judge = ("accepted", "passed") if accept_judged else ("rejected", "failed")
            f = parse_filters(store, filters, status="any", judge=judge)
            if f.judge != judge:
                fail(f"--{'accept-judged' if accept_judged else 'reject-judged-failed'} already sets judge={judge}.")
            pre = rv.bulk_preview(store, f, verdict, overwrite)
            console.print(f"{pre.matching} examples match; {pre.to_change} would be {verdict}"
                          + (f" ({pre.overriding} overriding a human verdict)" if pre.overriding else "")
                          + (f"; {pre.already} already {verdict}" if pre.already else "") + ".")
            if dry_run or pre.to_change == 0:
                return
            bulk = rv.bulk_decide(store, f, verdict, reviewer=who, note=note, overwrite=overwrite)
            console.print(f"{bulk.changed} examples {verdict} by {who} as one action "
                          f"(undo: shoal review --undo --reviewer {who}).")
        except ShoalError as exc:
            fail(str(exc))


def register_comments(review_app: typer.Typer) -> None:
    """`shoal review comment GID TEXT`, `shoal review comments GID`, `shoal review uncomment CID`: comments
    on an example (core.review.comments), as this machine's own user (any role) named by --reviewer or $USER."""
    def actor(reviewer: str | None):
        from core.team.members import local
        return local(reviewer) if (reviewer or "").strip() else None    # None: this machine's own user ($USER)

    reviewer_opt = typer.Option(None, "--reviewer", envvar="SHOAL_REVIEWER",
                                help="Name recorded as the author and in the audit log (default: $USER).")

    @review_app.command("comment")
    def comment(ctx: typer.Context,
                generation_id: int = typer.Argument(..., help="The example's id (#id on the Review page)."),
                text: str = typer.Argument(..., help="The comment (plain text, at most 4,000 characters)."),
                reviewer: str | None = reviewer_opt):
        """Add a comment to one example."""
        from core import review as rv
        store = store_from(ctx)
        try:
            c = rv.add_comment(store, generation_id, text, actor=actor(reviewer))
        except ShoalError as exc:
            fail(str(exc))
        console.print(f"Comment #{c['id']} added to example #{generation_id} by {c['author']}.", markup=False,
                      highlight=False)

    @review_app.command("comments")
    def comments(ctx: typer.Context,
                 generation_id: int = typer.Argument(..., help="The example's id."),
                 as_json: bool = typer.Option(False, "--json", help="Print a JSON list.")):
        """List an example's comments, oldest first."""
        from core import review as rv
        store = store_from(ctx)
        if not rv.generation_exists(store, generation_id):
            fail(f"There is no generated example #{generation_id}.")
        rows = rv.list_comments(store, generation_id)
        if as_json:
            print_json(rows)
            return
        if not rows:
            sys.stdout.write(f"No comments on example #{generation_id}.\n")
        for c in rows:
            body = "\n".join("    " + line for line in c["body"].splitlines())
            sys.stdout.write(f"#{c['id']} · {c['author']} · {str(c['created_at'])[:19]}\n{body}\n")

    @review_app.command("uncomment")
    def uncomment(ctx: typer.Context,
                  comment_id: int = typer.Argument(..., help="The comment's id (from `shoal review comments`)."),
                  reviewer: str | None = reviewer_opt):
        """Delete a comment."""
        from core import review as rv
        store = store_from(ctx)
        try:
            c = rv.delete_comment(store, comment_id, actor=actor(reviewer))
        except ShoalError as exc:
            fail(str(exc))
        console.print(f"Comment #{comment_id} on example #{c['generation_id']} deleted.", markup=False)


def register_views(review_app: typer.Typer) -> None:
    """`shoal review views`: the saved views of the Review queue (core.review.views) that a person
    sees: their own, then the team's shared ones; `--all` every person's."""

    @review_app.command("views")
    def views(ctx: typer.Context,
              as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
              reviewer: str | None = typer.Option(None, "--reviewer", envvar="SHOAL_REVIEWER",
                                                  help="Whose views to list (default: $USER)."),
              everyone: bool = typer.Option(False, "--all", help="Every person's views, personal ones included.")):
        """List the saved views of the Review queue (set on the Review page: "Save this view")."""
        from core import review as rv
        from core.team.members import local
        store = store_from(ctx)
        who = local(reviewer) if (reviewer or "").strip() else None     # None: this machine's own user ($USER)
        try:
            rows = rv.list_views(store, who, everyone=everyone)
        except ShoalError as exc:
            fail(str(exc))
        if as_json:
            print_json([{**v, "filter": v["filter"].to_dict()} for v in rows])
            return
        if not rows:
            sys.stdout.write("No saved views yet (save one on the Review page: \"Save this view\").\n")
        me = str(who if who is not None else local())
        for v in rows:           # plain text: a name is shown as typed
            label = rv.view_label(v, me) if v["shared"] else f"{v['name']} (personal, {v['owner']})"
            sys.stdout.write(f"#{v['id']} · {label} · sort {v['sort']}"
                             + (f" (seed {v['seed']})" if v["sort"] == "random" else "")
                             + f"\n    {_filter_words(v['filter'])}\n")


def _filter_words(f) -> str:
    """A QueueFilter as KEY=VALUE words (its status, and what else differs from no filter), as `--filter`
    takes them."""
    from core.review import QueueFilter
    none = QueueFilter().to_dict()
    names = {"tasks": "task", "languages": "language", "clusters": "cluster", "map_id": "map",
             "selection_id": "selection"}
    words = []
    for key, value in f.to_dict().items():
        if key == "rule_answer" and not f.rule:
            continue
        if (value != none[key] or key == "status") and key != "assigned_to":
            shown = ",".join(map(str, value)) if isinstance(value, list) else value
            words.append(f"{names.get(key, key)}={shown}")
    return " ".join(words)


def _login() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def _print_status(data: dict) -> None:
    from rich.table import Table

    from core.cli.common import Console
    out = Console()
    if not data["per_task"]:
        out.print("No generated examples yet.")
        return
    cols = {"total": "total", "unreviewed": "unrev", "accepted": "acc", "rejected": "rej", "skipped": "skip",
            "edited": "edit", "judge_passed": "J pass", "judge_failed": "J fail", "effective_accepted": "eff acc",
            "effective_rejected": "eff rej"}
    t = Table(title="Review status per task", caption="acc/rej/skip/edit: human; J: judge; "
              "eff: what counts (human verdict, else judge)")
    t.add_column("task", overflow="fold")
    for c in cols.values():
        t.add_column(c, justify="right")
    for r in data["per_task"] + [{"task": "all", **data["totals"]}]:
        t.add_row(r["task"], *[str(r.get(c, 0)) for c in cols])
    out.print(t)
    t2 = Table(title="Judge vs human (examples with both)",
               caption="J+/J-: judge pass/fail; H+/H-: human accepted/rejected")
    t2.add_column("scope", overflow="fold")
    for c in ("n", "agree", "kappa", "J+H+", "J-H+", "J+H-", "J-H-"):
        t2.add_column(c, justify="right")

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"
    rows = [("all", data["agreement"]["overall"])] + list(data["agreement"]["per_task"].items())
    for scope, s in rows:
        t2.add_row(scope, str(s["n"]), fmt(s["agreement"]), fmt(s["kappa"]), str(s["judge_yes_accepted"]),
                   str(s["judge_no_accepted"]), str(s["judge_yes_rejected"]), str(s["judge_no_rejected"]))
    out.print(t2)
    if data["reviewers"]:
        out.print("Reviewers: " + ", ".join(f"{r['reviewer']} ({r['n']})" for r in data["reviewers"]))
