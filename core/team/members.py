"""A team on one Shoal: who may do what (roles), who is a member, and who the signed-in user is.

Roles:
* **owner** — everything, including the team (members, roles, assignment and overlap);
* **curator** — prompts, jobs, checks, export, bulk review actions, adjudication and the reviewer
  guidelines;
* **reviewer** — review only (their own queue).

Members live in `team_members` (migration 012). The owner can also name roles in the secrets file
(`[shoal.roles]` "alice@example.com" = "owner", or `[shoal.team] owner = "..."`): a role from the
file always wins and cannot be changed on the Team page. With sign-in configured the team must
have a named owner before the app starts (`require_owner`); nobody becomes owner by signing in
first. Anyone else must be added by the owner first: signing in through the identity provider (or
with a local account, core.team.local_accounts) is not enough to see the corpus.

Every action checks the acting user's role where it begins, in core (`authorize`), not only on the
page: the check, its refusals and the allowed actions go to the audit log. Without sign-in
configured (the app is private to 127.0.0.1) there is one user, and that user is the owner; the
CLI without `--as` is this machine's own user too (`Local`).
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from core.errors import NotAllowed, ShoalError
from core.store import Store

ROLES = ("owner", "curator", "reviewer")

# action -> roles allowed. Pages and CLI-equivalent actions ask `require(role, action)`.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "review": ("owner", "curator", "reviewer"),
    "comment": ("owner", "curator", "reviewer"),    # comment on an example (a reviewer: their own queue)
    "moderate_comments": ("owner", "curator"),      # delete someone else's comment
    "corpus": ("owner", "curator"),        # ingest, embed, map, selections
    "prompts": ("owner", "curator"),
    "jobs": ("owner", "curator"),
    "generate": ("owner", "curator"),      # the Generate page: prompts and jobs
    "checks": ("owner", "curator"),
    "export": ("owner", "curator"),
    "bulk_review": ("owner", "curator"),
    "adjudicate": ("owner", "curator"),
    "guidelines": ("owner", "curator"),     # write the reviewer guidelines per task
    "team": ("owner",),                    # members, roles, assignment and overlap
    "ingest": ("owner", "curator"),
    "embed": ("owner", "curator"),
    "map": ("owner", "curator"),           # embed and build a map (the Map page's build button)
    "select": ("owner", "curator"),
}

ACTION_WORDS = {
    "review": "review examples", "comment": "comment on examples",
    "moderate_comments": "delete other people's comments", "corpus": "change the corpus", "prompts": "edit prompts",
    "jobs": "start or stop generation jobs", "generate": "use the Generate page", "checks": "run checks",
    "export": "export the dataset", "bulk_review": "apply bulk review actions",
    "adjudicate": "resolve conflicts between reviewers", "team": "manage the team",
    "guidelines": "edit the reviewer guidelines",
    "ingest": "add to the corpus", "embed": "embed the corpus", "map": "build maps", "select": "make selections",
}


def allowed(role: str | None, action: str) -> bool:
    if action not in PERMISSIONS:
        raise ShoalError(f"Unknown action {action!r}; known: {', '.join(PERMISSIONS)}.")
    return role in PERMISSIONS[action]


def require(role: str | None, action: str) -> None:
    """Raise NotAllowed with a clear message unless `role` may do `action`."""
    if not allowed(role, action):
        who = f"a {role}" if role else "someone who is not a team member"
        need = " or ".join(PERMISSIONS[action])
        raise NotAllowed(f"As {who} you cannot {ACTION_WORDS.get(action, action)}; that needs the role "
                         f"{need}. Ask the team's owner to change your role on the Team page.")


# --------------------------------------------------------------------------- who is acting, and the check

class Local(str):
    """An identity acting as this machine's own user: the CLI without `--as` (whoever can open the
    DuckDB file can change it anyway) or the app without sign-in. Allowed everything; the string
    still signs the audit log."""


def local(name: str | None = None) -> Local:
    return Local((name or "").strip() or os.environ.get("USER") or "local")


_stamped: dict[str, tuple[tuple, Any]] = {}


def _from_secrets(what: str, read) -> Any:
    """`read(paths)` of the secrets files, read again only when one of them changed."""
    from core.secrets_file import secrets_paths
    paths = secrets_paths()
    stamp = tuple((str(p), p.stat().st_mtime_ns if p.is_file() else None) for p in paths)
    if what not in _stamped or _stamped[what][0] != stamp:
        _stamped[what] = (stamp, read(paths))
    return _stamped[what][1]


def sign_in_on() -> bool:
    """Whether sign-in is configured — through an OIDC provider ([auth] in a secrets file), local
    accounts (`local_sign_in_on`), or both: then roles hold for everyone but this machine's own user."""
    from core.secrets_file import oidc_configured
    return local_sign_in_on() or bool(_from_secrets("auth", oidc_configured))


def local_sign_in_on() -> bool:
    """Whether local sign-in (email + password, core.team.local_accounts) is on: SHOAL_LOCAL_SIGN_IN=1 or
    `[shoal.local_sign_in] enabled = true` in a secrets file. Needs no [auth] section."""
    from core.secrets_file import local_sign_in_env, local_sign_in_in_files
    return local_sign_in_env() or bool(_from_secrets("local_sign_in", local_sign_in_in_files))


def acting_role(store: Store, actor: str | None) -> str | None:
    """The role `actor` acts with: owner for this machine's own user (None, a `Local` identity, or
    any name while no sign-in is configured), else their role in the team (None: not a member)."""
    if actor is None or isinstance(actor, Local) or not sign_in_on():
        return "owner"
    return role_of(store, actor, config=_from_secrets("roles", config_roles))


_LOOKUP: Any = object()


def authorize(store: Store, actor: str | None, action: str, *, target: Any = None, role: str | None = _LOOKUP,
              check=None, audit_allowed: bool = True) -> str | None:
    """The check every action makes where it begins, in core: raise NotAllowed (a message a page
    shows as it is) unless `actor` may do `action`; returns their role.

    `actor`: the signed-in identity a page passes (see `acting_role` for this machine's own user).
    `target`: what the action is on; for "review" and "comment" the example id, since a reviewer
    decides (and comments on) only the examples assigned to them. `role`: the role when the caller
    holds it already (the Team page).
    `check()`: a further condition that raises ShoalError (ingest: the data roots).
    Every refusal goes to the audit log as `<action>.refused`; an allowed action with a named actor
    (the app always names one) as `<action>.allowed`, unless `audit_allowed` is False because the
    action writes its own audit row."""
    role = acting_role(store, actor) if role is _LOOKUP else role
    try:
        require(role, action)
        if action in ("review", "comment") and role == "reviewer" and target is not None:
            _require_assigned(store, str(actor), int(target))
        if check is not None:
            check()
    except ShoalError as exc:
        _audit_action(store, actor, f"{action}.refused", target, {"role": role, "reason": str(exc)})
        raise
    if audit_allowed and actor is not None:
        _audit_action(store, actor, f"{action}.allowed", target, {"role": role})
    return role


def _require_assigned(store: Store, identity: str, gid: int) -> None:
    if not store.scalar("SELECT count(*) FROM assignments WHERE generation_id = ? AND reviewer = ?", [gid, identity]):
        raise NotAllowed(f"Example #{gid} is not in your review queue: as a reviewer you decide only the examples "
                         "assigned to you. A curator or the owner can change its verdict.")


def _audit_action(store: Store, actor: str | None, action: str, target: Any, after: dict) -> None:
    who = str(local()) if actor is None else (str(actor) or "(no identity)")
    what = None if target is None else str(target)[:500]
    store.write(lambda cur: cur.execute(
        "INSERT INTO audit_log(actor, action, entity, entity_id, after) VALUES (?, ?, 'permission', ?, ?)",
        [who, action, what, json.dumps(after, default=str)]))


def check_role(role: str) -> str:
    role = (role or "").strip().lower()
    if role not in ROLES:
        raise ShoalError(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
    return role


# --------------------------------------------------------------------------- identity

def identity_of(user: Mapping[str, Any] | None) -> str | None:
    """The reviewer identity of a signed-in user: their email, else their OIDC subject."""
    if not user:
        return None
    for key in ("email", "sub"):
        value = user.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower() if key == "email" else value.strip()
    return None


# --------------------------------------------------------------------------- config file

def config_roles(paths: list[Path] | None = None) -> dict[str, str]:
    """identity -> role named in the secrets file(s): `[shoal.roles]` and `[shoal.team] owner`.
    The first file that names a role for an identity wins (project file before the user's)."""
    from core.secrets_file import secrets_paths

    out: dict[str, str] = {}
    for path in paths if paths is not None else secrets_paths():
        if not path.is_file():
            continue
        try:
            shoal = tomllib.loads(path.read_text(encoding="utf-8")).get("shoal") or {}
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ShoalError(f"Cannot read secrets file {path}: {exc}") from None
        found: dict[str, str] = {}
        for ident, role in (shoal.get("roles") or {}).items():
            found[str(ident).strip().lower() if "@" in str(ident) else str(ident).strip()] = check_role(str(role))
        owner = (shoal.get("team") or {}).get("owner")
        for ident in ([owner] if isinstance(owner, str) else owner or []):
            found[ident.strip().lower() if "@" in ident else ident.strip()] = "owner"
        for ident, role in found.items():
            out.setdefault(ident, role)
    return out


# --------------------------------------------------------------------------- members

@dataclass(frozen=True)
class Member:
    identity: str
    role: str
    name: str | None = None
    from_config: bool = False


def members(store: Store, config: dict[str, str] | None = None) -> list[Member]:
    """Every member: the database's, with roles from the config file winning, plus config-only ones."""
    config = config_roles() if config is None else config
    rows = store.rows("SELECT identity, role, name FROM team_members ORDER BY created_at, identity")
    out = [Member(r["identity"], config.get(r["identity"], r["role"]), r["name"], r["identity"] in config)
           for r in rows]
    known = {m.identity for m in out}
    out += [Member(i, role, None, True) for i, role in config.items() if i not in known]
    return out


def role_of(store: Store, identity: str | None, config: dict[str, str] | None = None) -> str | None:
    """The member's role (config file first), None when they are not a member."""
    if not identity:
        return None
    config = config_roles() if config is None else config
    if identity in config:
        return config[identity]
    return store.scalar("SELECT role FROM team_members WHERE identity = ?", [identity])


def _audit(cur, actor: str | None, action: str, identity: str, before: Any, after: Any) -> None:
    cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after) "
                "VALUES (?, ?, 'member', ?, ?, ?)",
                [actor, action, identity, None if before is None else json.dumps(before),
                 None if after is None else json.dumps(after)])


def sign_in(store: Store, identity: str, name: str | None = None,
            config: dict[str, str] | None = None) -> str | None:
    """Record that `identity` signed in and return their role; None when they are not a member.
    Nobody becomes owner by signing in (the owner is named first: `require_owner`)."""
    if not identity:
        raise ShoalError("Signed in without an email or subject: cannot tell who you are.")
    config = config_roles() if config is None else config

    def write(cur) -> str | None:
        row = cur.execute("SELECT role FROM team_members WHERE identity = ?", [identity]).fetchone()
        if row is None and identity in config:
            cur.execute("INSERT INTO team_members(identity, name, role, added_by) VALUES (?, ?, ?, 'config')",
                        [identity, name, config[identity]])
            _audit(cur, identity, "team.join", identity, None, {"role": config[identity], "by": "config"})
            row = (config[identity],)
        if row is None:
            return None
        cur.execute("UPDATE team_members SET last_seen_at = current_timestamp, name = coalesce(?, name) "
                    "WHERE identity = ?", [name, identity])
        return config.get(identity, row[0])

    return store.write(write)


NO_OWNER = ("Sign-in is configured ([auth] or [shoal.local_sign_in] in .streamlit/secrets.toml) but the team has no owner, so Shoal will "
            "not start: add `owner = \"you@example.com\"` under `[shoal.team]` in .streamlit/secrets.toml (or run "
            "`shoal team add you@example.com --role owner`), then start the app again.")


def require_owner(store: Store, config: dict[str, str] | None = None) -> None:
    """With sign-in configured the app starts only once the team has an owner (in the secrets file
    or the database): else the first account to sign in could take the team."""
    if not any(m.role == "owner" for m in members(store, config)):
        raise ShoalError(NO_OWNER)


def set_member(store: Store, identity: str, role: str, *, actor: str, actor_role: str | None,
               name: str | None = None, config: dict[str, str] | None = None) -> None:
    """Add a member or change their role (owner only; audited). Refuses to leave the team without
    an owner, and to change a role the config file fixes."""
    authorize(store, actor, "team", target=identity, role=actor_role, audit_allowed=False)
    identity = (identity or "").strip()
    identity = identity.lower() if "@" in identity else identity
    if not identity:
        raise ShoalError("Give the member's email (or OIDC subject).")
    role = check_role(role)
    config = config_roles() if config is None else config
    if identity in config and config[identity] != role:
        raise ShoalError(f"{identity}'s role ({config[identity]}) is set in the secrets file; change it there.")

    def write(cur) -> None:
        before = cur.execute("SELECT role FROM team_members WHERE identity = ?", [identity]).fetchone()
        if before and before[0] == "owner" and role != "owner":
            _refuse_last_owner(cur, identity, config)
        cur.execute("INSERT INTO team_members(identity, name, role, added_by) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (identity) DO UPDATE SET role = excluded.role, name = coalesce(excluded.name, "
                    "team_members.name)", [identity, name, role, actor])
        _audit(cur, actor, "team.role", identity, None if before is None else {"role": before[0]}, {"role": role})

    store.write(write)


def remove_member(store: Store, identity: str, *, actor: str, actor_role: str | None,
                  config: dict[str, str] | None = None) -> None:
    """Remove a member (owner only; audited). Their responses stay; their open assignments go."""
    authorize(store, actor, "team", target=identity, role=actor_role, audit_allowed=False)
    config = config_roles() if config is None else config
    if identity in config:
        raise ShoalError(f"{identity} is named in the secrets file; remove them there.")

    def write(cur) -> None:
        before = cur.execute("SELECT role FROM team_members WHERE identity = ?", [identity]).fetchone()
        if before is None:
            raise ShoalError(f"{identity} is not a member.")
        if before[0] == "owner":
            _refuse_last_owner(cur, identity, config)
        cur.execute("DELETE FROM team_members WHERE identity = ?", [identity])
        cur.execute("""DELETE FROM assignments WHERE reviewer = ? AND generation_id NOT IN
                       (SELECT generation_id FROM review_responses WHERE reviewer = ?)""", [identity, identity])
        _audit(cur, actor, "team.remove", identity, {"role": before[0]}, None)

    store.write(write)


def _refuse_last_owner(cur, identity: str, config: dict[str, str]) -> None:
    others = cur.execute("SELECT count(*) FROM team_members WHERE role = 'owner' AND identity <> ?",
                         [identity]).fetchone()[0]
    if not others and "owner" not in config.values():
        raise ShoalError("The team needs an owner: make someone else owner first.")


# --------------------------------------------------------------------------- settings

DEFAULT_SETTINGS = {"reviewers_per_example": 1, "overlap_share": 1.0}


def get_settings(store: Store) -> dict:
    out = dict(DEFAULT_SETTINGS)
    for k, v in store.execute("SELECT key, value FROM team_settings").fetchall():
        out[k] = json.loads(v)
    return out


def set_settings(store: Store, *, actor: str, actor_role: str | None, **values) -> dict:
    authorize(store, actor, "team", target="settings", role=actor_role, audit_allowed=False)
    unknown = set(values) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ShoalError(f"Unknown team setting(s): {', '.join(sorted(unknown))}.")

    def write(cur) -> None:
        for k, v in values.items():
            cur.execute("INSERT INTO team_settings(key, value, updated_by, updated_at) VALUES (?, ?, ?, now()) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, "
                        "updated_at = excluded.updated_at", [k, json.dumps(v), actor])
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, after) VALUES (?, 'team.settings', "
                    "'team', 'settings', ?)", [actor, json.dumps(values)])

    store.write(write)
    return get_settings(store)


# --------------------------------------------------------------------------- assignment

def default_reviewers(people: list[Member]) -> list[str]:
    """Who an assignment goes to unless the owner says otherwise: the reviewers, else every member."""
    return [m.identity for m in people if m.role == "reviewer"] or [m.identity for m in people]
