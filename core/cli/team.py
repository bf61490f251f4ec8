"""`shoal team`: the Team page on the command line — members and roles, assignment with overlap,
agreement between reviewers, the reviewer guidelines per task (`shoal team guidelines TASK [--set FILE]`),
local sign-in passwords (`shoal team passwd EMAIL [--password-stdin] [--remove]`).

Who is acting: `--as IDENTITY` (or $SHOAL_IDENTITY) names a team member, and every command checks
that member's role exactly as the app does (core.team.members.require: members, roles and assignment are
the owner's; the agreement between reviewers is for owners and curators; the member list for any
member). Without `--as` the CLI is the owner's tool on this machine: whoever can open the DuckDB
file can change anything in it anyway, so it acts as the owner and the audit log names $USER.
"""
from __future__ import annotations

import os
import sys

import typer

from core.cli.common import console, fail, print_json, store_from
from core.errors import ShoalError

AS_HELP = ("Act as this team member (email or OIDC subject); their role is checked like in the app. "
           "Without it the CLI acts as the owner of this machine's database.")


def _identity(value: str | None) -> str | None:
    value = (value or "").strip()
    return (value.lower() if "@" in value else value) or None


def acting(ctx: typer.Context, store, action: str) -> tuple[str, str | None]:
    """(actor for the audit log, their role) after checking that the role allows `action`."""
    from core.team import members as team
    identity = _identity(ctx.ensure_object(dict).get("identity"))
    if identity is None:
        return os.environ.get("USER") or "cli", "owner"
    role = team.role_of(store, identity)
    team.authorize(store, identity, action, role=role, audit_allowed=False)     # a refusal is audited
    return identity, role


def _stdout():
    from rich.console import Console
    return Console()


def _members_table(people) -> None:
    from rich.table import Table
    t = Table(title="Team members")
    for c in ("member", "role", "name", "set in"):
        t.add_column(c)
    for m in people:
        t.add_row(m.identity, m.role, m.name or "", "secrets file" if m.from_config else "Team page / CLI")
    _stdout().print(t)


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _agreement_tables(res: dict) -> None:
    from rich.table import Table
    out = _stdout()
    fl = res["fleiss"]
    out.print(f"[bold]{len(res['reviewers'])} reviewers[/] · {fl['n_examples']} examples with 2+ verdicts · "
                  f"split {fl['split']} · Fleiss' kappa {_fmt(fl['kappa'])}", highlight=False)
    if res["pairs"]:
        t = Table(title="Cohen's kappa per pair (on the examples both reviewed)")
        for c in ("a", "b", "n", "both accepted", "a acc / b rej", "a rej / b acc", "both rejected", "agreement",
                  "kappa"):
            t.add_column(c)
        for p in res["pairs"]:
            t.add_row(p["a"], p["b"], str(p["n"]), str(p["both_accepted"]), str(p["a_accepted_b_rejected"]),
                      str(p["a_rejected_b_accepted"]), str(p["both_rejected"]), _fmt(p["agreement"]), _fmt(p["kappa"]))
        out.print(t)
    for title, key, label in (("Per task (Fleiss' kappa)", "per_task", "task"),
                              ("Per reject reason (cited it or not; Fleiss' kappa)", "per_reason", "reason")):
        if res[key]:
            t = Table(title=title)
            for c in (label, "examples", "kappa", "split" if key == "per_task" else "cited"):
                t.add_column(c)
            for k, b in res[key].items():
                t.add_row(k, str(b["n_examples"]), _fmt(b["kappa"]), str(b["split"] if key == "per_task" else b["cited"]))
            out.print(t)
    if res["per_rule"]:
        t = Table(title="Every reviewer's verdict against the judge's rules (rule failed vs rejected)")
        for c in ("rule", "n", "failed & rejected", "failed & accepted", "passed & rejected", "passed & accepted",
                  "agreement", "kappa"):
            t.add_column(c)
        for r, b in res["per_rule"].items():
            t.add_row(r, str(b["n"]), str(b["failed_rejected"]), str(b["failed_accepted"]), str(b["passed_rejected"]),
                      str(b["passed_accepted"]), _fmt(b["agreement"]), _fmt(b["kappa"]))
        out.print(t)
    if not res["pairs"]:
        out.print("No example has verdicts from two reviewers yet: assign with --overlap 2 or more.")


def team_options(ctx: typer.Context,
                 as_identity: str | None = typer.Option(None, "--as", envvar="SHOAL_IDENTITY", help=AS_HELP)):
    ctx.ensure_object(dict)["identity"] = as_identity

def members_command(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print one JSON list.")):
    """Every member and their role (the database's and the secrets file's)."""
    from core.team import members as team
    store = store_from(ctx)
    try:
        acting(ctx, store, "review")
        people = team.members(store)
    except ShoalError as exc:
        fail(str(exc))
    if as_json:
        print_json([{"identity": m.identity, "role": m.role, "name": m.name, "from_config": m.from_config}
                    for m in people])
    elif people:
        _members_table(people)
    else:
        console.print("No members yet. Add one with `shoal team add EMAIL --role owner`.")

def add(ctx: typer.Context, identity: str = typer.Argument(..., help="The member's email (or OIDC subject)."),
        role: str = typer.Option("reviewer", "--role", help="owner | curator | reviewer"),
        name: str | None = typer.Option(None, "--name", help="Display name.")):
    """Add a member, or change a member's role (owner only)."""
    from core.team import members as team
    store = store_from(ctx)
    try:
        actor, actor_role = acting(ctx, store, "team")
        team.set_member(store, identity, role, actor=actor, actor_role=actor_role, name=name)
    except ShoalError as exc:
        fail(str(exc))
    console.print(f"{_identity(identity)} is now {team.check_role(role)}.", highlight=False)

def remove(ctx: typer.Context, identity: str = typer.Argument(..., help="The member's email (or OIDC subject).")):
    """Remove a member (owner only). Their verdicts stay; assignments they have not started go."""
    from core.team import members as team
    store = store_from(ctx)
    try:
        actor, actor_role = acting(ctx, store, "team")
        team.remove_member(store, _identity(identity) or "", actor=actor, actor_role=actor_role)
    except ShoalError as exc:
        fail(str(exc))
    console.print(f"{_identity(identity)} was removed from the team.", highlight=False)

def assign_command(ctx: typer.Context,
                   overlap: int = typer.Option(1, "--overlap", min=1,
                                               help="Reviewers per example (2-3 to measure agreement)."),
                   share: float = typer.Option(1.0, "--share", help="Share (0-1) of the examples that get that overlap; "
                                                                    "the others get one reviewer."),
                   reviewers: list[str] = typer.Option([], "--reviewer", "-r",
                                                       help="Assign to these (repeatable; default: the team's reviewers)."),
                   include_reviewed: bool = typer.Option(False, "--include-reviewed",
                                                         help="Also assign examples that already have a human verdict."),
                   reset: bool = typer.Option(False, "--reset", help="First redistribute assignments nobody has started."),
                   seed: int = typer.Option(0, "--seed", help="Seed of the random order examples are dealt in."),
                   as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Assign every unassigned example to reviewers, with overlap (owner only; as the Team page)."""
    from core import review as rv
    from core.team import members as team
    store = store_from(ctx)
    try:
        actor, actor_role = acting(ctx, store, "team")
        chosen = [_identity(r) or "" for r in reviewers] or team.default_reviewers(team.members(store))
        if not chosen:
            raise ShoalError("Nobody to assign to: add reviewers with `shoal team add EMAIL` or name them "
                             "with --reviewer.")
        res = rv.assign_examples(store, chosen, per_example=overlap, overlap_share=share, actor=actor,
                                 actor_role=actor_role, include_reviewed=include_reviewed, reset_open=reset,
                                 seed=seed)
    except ShoalError as exc:
        fail(str(exc))
    out = {"examples": res.examples, "overlap_examples": res.overlap_examples, "rows": res.rows,
           "per_reviewer": res.per_reviewer, "batch_id": res.batch_id}
    if as_json:
        print_json(out)
        return
    console.print(f"Assigned {res.examples} examples ({res.overlap_examples} with overlap) to {len(chosen)} "
                  "reviewers: " + ", ".join(f"{k} {v}" for k, v in sorted(res.per_reviewer.items())), highlight=False)

def agreement_command(ctx: typer.Context, task: str | None = typer.Option(None, "--task", help="Only this task."),
                      as_json: bool = typer.Option(False, "--json", help="Print one JSON object (with the examples "
                                                                          "behind every cell).")):
    """Agreement between reviewers: Cohen's kappa per pair, Fleiss' kappa over everyone, per task,
    per reject reason and against the judge's rules; with every reviewer's progress."""
    from core import review as rv
    store = store_from(ctx)
    try:
        acting(ctx, store, "adjudicate")
        res = rv.people_agreement(store, task)
    except ShoalError as exc:
        fail(str(exc))
    if as_json:
        print_json(res)
        return
    _agreement_tables(res)


def _read_guidelines(source: str) -> str:
    """The text of `--set`: a file, or standard input for '-'."""
    if source == "-":
        return sys.stdin.read()
    try:
        return open(source, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ShoalError(f"Cannot read the guidelines from {source}: {exc}") from None


def _print_guidelines(task: str, current: dict | None) -> None:
    from core import review as rv
    if current is None:
        sys.stdout.write(f"No guidelines for {rv.scope_title(task)} yet. A curator or the owner writes them on the "
                         f"Team page, or: shoal team guidelines {task} --set FILE\n")
        return
    for label, row in (("All tasks", current["general"]), (rv.scope_title(task), current["own"])):
        if row is not None:
            sys.stdout.write(f"== {label} · version {row['version']} · {row['author']} · "
                             f"{str(row['created_at'])[:19]}\n{row['body']}\n\n")


def guidelines(ctx: typer.Context,
               task: str = typer.Argument(..., help="A task name, or '*' (or 'all') for the general guidelines."),
               set_from: str | None = typer.Option(None, "--set", metavar="FILE|-",
                                                   help="Save this file's text ('-': standard input) as the next "
                                                        "version (curators and the owner); an empty one clears them."),
               history: bool = typer.Option(False, "--history", help="Every version, newest first."),
               as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Reviewer guidelines per task: show the latest (with the general ones), their history, or save a
    new version (as the Team page does)."""
    from core import review as rv
    store = store_from(ctx)
    identity = _identity(ctx.ensure_object(dict).get("identity"))
    try:
        scope = rv.check_scope(rv.ALL_TASKS if task.strip().lower() == "all" else task)
        if set_from is not None:
            if identity is not None:
                acting(ctx, store, "guidelines")             # their role in the team, as the other commands
            saved = rv.set_guidelines(store, scope, _read_guidelines(set_from), actor=identity)
        else:
            acting(ctx, store, "review")
            versions = rv.guideline_history(store, scope) if history else []
            current = None if history else rv.current_guidelines(store, scope)
    except ShoalError as exc:
        fail(str(exc))
    if set_from is not None:
        what = "unchanged at" if not saved["changed"] else "cleared as" if not saved["body"] else "saved as"
        if as_json:
            print_json(saved)
        else:
            console.print(f"{rv.scope_title(scope)} guidelines {what} version {saved['version']}.", markup=False,
                          highlight=False)
    elif as_json:
        print_json(versions if history else current)
    elif history:
        for row in versions:
            sys.stdout.write(f"== version {row['version']} · {row['author']} · {str(row['created_at'])[:19]}\n"
                             f"{row['body'] or '(cleared)'}\n\n")
        if not versions:
            sys.stdout.write(f"No guidelines for {rv.scope_title(scope)} yet.\n")
    else:
        _print_guidelines(scope, current)


def _read_password(from_stdin: bool) -> str:
    """The new password: one line of standard input (`--password-stdin`, for scripts), else asked
    twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("New password", hide_input=True, confirmation_prompt="Repeat it")


def passwd(ctx: typer.Context, identity: str = typer.Argument(..., help="The account's email."),
           password_stdin: bool = typer.Option(False, "--password-stdin",
                                               help="Read the password from the first line of standard input."),
           remove: bool = typer.Option(False, "--remove", help="Delete the local account instead.")):
    """Set a local sign-in password (creates the account), or --remove it (owner only). The role still
    comes from the team: add the member with `shoal team add`."""
    from core.team import local_accounts
    from core.team import members as team
    store = store_from(ctx)
    as_identity = _identity(ctx.ensure_object(dict).get("identity"))
    actor = as_identity or team.local()        # without --as: this machine's owner
    try:
        if remove:
            local_accounts.remove_account(store, identity, actor=actor)
            console.print(f"The local account {local_accounts.normalize_identity(identity)} was removed.", highlight=False)
            return
        local_accounts.authorize_owner(store, actor, identity)      # refuse before asking for a password
        local_accounts.normalize_identity(identity)
        local_accounts.set_password(store, identity, _read_password(password_stdin), actor=actor)
    except ShoalError as exc:
        fail(str(exc))
    ident = local_accounts.normalize_identity(identity)
    console.print(f"Password set for {ident}.", highlight=False)
    if team.role_of(store, ident) is None:
        console.print(f"{ident} is not a team member yet: `shoal team add {ident} --role reviewer` gives them a "
                      "role; until then signing in shows only \"not a member\".", highlight=False)
    if not team.local_sign_in_on():
        console.print("Local sign-in is off: set `[shoal.local_sign_in] enabled = true` in "
                      ".streamlit/secrets.toml (or SHOAL_LOCAL_SIGN_IN=1) for the app to offer it.", highlight=False)


def add_commands(app: typer.Typer) -> None:
    team_app = typer.Typer(help="The team: members and roles, assignment with overlap, agreement between reviewers, "
                                "reviewer guidelines.",
                           no_args_is_help=True)
    app.add_typer(team_app, name="team")

    team_app.callback()(team_options)
    team_app.command("members")(members_command)
    team_app.command("add")(add)
    team_app.command("remove")(remove)
    team_app.command("assign")(assign_command)
    team_app.command("agreement")(agreement_command)
    team_app.command("guidelines")(guidelines)
    team_app.command("passwd")(passwd)
