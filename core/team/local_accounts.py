"""Local sign-in for a small team that needs no identity provider: email + password accounts in DuckDB.

Turned on by `[shoal.local_sign_in] enabled = true` in .streamlit/secrets.toml (or
SHOAL_LOCAL_SIGN_IN=1); it works beside OIDC sign-in ([auth]) or without it (core.team.members.sign_in_on).

* Passwords are hashed with argon2id (argon2-cffi's `PasswordHasher`, its RFC 9106 defaults, a
  random salt per hash); only the PHC hash string is stored, never the password, and the password
  goes to no log and no audit row. A hash made with older parameters is replaced on the next
  successful sign-in.
* After `MAX_FAILURES` wrong passwords in a row the account is locked for `LOCK_FOR`; a success
  resets the count. Every failure and every lock is in the audit log (`account.sign_in_failed`,
  `account.locked`).
* An account says who someone is, not what they may do: the role still comes from the team
  (core.team.members: team_members or the secrets file). An account without a role is "not a member", as
  with OIDC.
* Only the owner sets or removes passwords (core.team.members.authorize, action "team"); the CLI
  (`shoal team passwd`) is this machine's owner.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.errors import ShoalError
from core.store import Store
from core.team import members as team

MIN_LENGTH = 12
MAX_LENGTH = 1024            # longer input is refused before hashing (no hashing megabytes on request)
MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against when there is no such account, so that an unknown email takes as long
    as a wrong password (no telling which accounts exist by timing)."""
    return hasher().hash("shoal: no such account")


def utcnow() -> datetime:
    """Naive UTC, as DuckDB's TIMESTAMP columns hold it."""
    return datetime.now(UTC).replace(tzinfo=None)


def normalize_identity(identity: str | None) -> str:
    """The account's identity as core.team.members spells members: an email, stripped and lower-cased."""
    value = (identity or "").strip().lower()
    if not _EMAIL.match(value):
        raise ShoalError(f"{identity!r} is not an email address: a local account is named by its email.")
    return value


def _audit(cur, actor: str, action: str, identity: str, after: dict[str, Any] | None = None) -> None:
    cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, after) VALUES (?, ?, 'account', ?, ?)",
                [actor, action, identity, None if after is None else json.dumps(after, default=str)])


def check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise ShoalError(f"The password is too short: use at least {MIN_LENGTH} characters "
                         "(a few unrelated words make a good one).")
    if len(password) > MAX_LENGTH:
        raise ShoalError(f"The password is too long: at most {MAX_LENGTH} characters.")


def set_password(store: Store, identity: str, password: str, *, actor: str | None) -> None:
    """Create the account or change its password (owner only; audited as `account.password_set`,
    without the password or its hash). Clears a lock and the count of failures."""
    authorize_owner(store, actor, identity)
    identity = normalize_identity(identity)
    check_password(password)
    digest = hasher().hash(password)

    def write(cur) -> None:
        existed = cur.execute("SELECT 1 FROM local_accounts WHERE identity = ?", [identity]).fetchone()
        stamp = utcnow()
        cur.execute("INSERT INTO local_accounts(identity, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (identity) DO UPDATE SET password_hash = excluded.password_hash, "
                    "updated_at = excluded.updated_at, failed_attempts = 0, locked_until = NULL",
                    [identity, digest, stamp, stamp])
        _audit(cur, _who(actor), "account.password_set", identity, {"created": not existed})

    store.write(write)


def remove_account(store: Store, identity: str, *, actor: str | None) -> None:
    """Delete the account (owner only; audited as `account.removed`). Team membership is untouched."""
    authorize_owner(store, actor, identity)
    identity = normalize_identity(identity)

    def write(cur) -> None:
        if not cur.execute("SELECT 1 FROM local_accounts WHERE identity = ?", [identity]).fetchone():
            raise ShoalError(f"{identity} has no local account.")
        cur.execute("DELETE FROM local_accounts WHERE identity = ?", [identity])
        _audit(cur, _who(actor), "account.removed", identity)

    store.write(write)


def authorize_owner(store: Store, actor: str | None, identity: str) -> None:
    team.authorize(store, actor, "team", target=f"account:{(identity or '').strip().lower()}", audit_allowed=False)


def _who(actor: str | None) -> str:
    return str(team.local()) if actor is None else str(actor)


def has_account(store: Store, identity: str) -> bool:
    try:
        identity = normalize_identity(identity)
    except ShoalError:
        return False
    return bool(store.scalar("SELECT count(*) FROM local_accounts WHERE identity = ?", [identity]))


def accounts(store: Store) -> list[dict]:
    """Every account without its hash: identity, created_at, updated_at, failed_attempts, locked_until."""
    return store.rows("SELECT identity, created_at, updated_at, failed_attempts, locked_until "
                      "FROM local_accounts ORDER BY identity")


def verify(store: Store, identity: str, password: str, *, now: datetime | None = None) -> bool:
    """Whether `password` is `identity`'s. argon2 compares in constant time; an unknown email is
    checked against a dummy hash so it takes as long. A locked account is refused without looking at
    the password; the `MAX_FAILURES`-th wrong password in a row locks it for `LOCK_FOR`."""
    now = now or utcnow()
    try:
        identity = normalize_identity(identity)
    except ShoalError:
        identity = ""
    row = store.execute("SELECT password_hash, failed_attempts, locked_until FROM local_accounts "
                        "WHERE identity = ?", [identity]).fetchone() if identity else None
    if row is None:
        _matches(_dummy_hash(), password)
        if identity:
            store.write(lambda cur: _audit(cur, identity, "account.sign_in_failed", identity,
                                           {"reason": "no such account"}))
        return False
    digest, _, locked_until = row
    if locked_until is not None and now < locked_until:
        store.write(lambda cur: _audit(cur, identity, "account.sign_in_failed", identity,
                                       {"reason": "locked", "locked_until": locked_until}))
        return False
    if not _matches(digest, password):
        _count_failure(store, identity, now, lock_expired=locked_until is not None)
        return False
    new_digest = hasher().hash(password) if hasher().check_needs_rehash(digest) else None
    store.write(lambda cur: cur.execute(
        "UPDATE local_accounts SET failed_attempts = 0, locked_until = NULL, password_hash = coalesce(?, "
        "password_hash), updated_at = CASE WHEN ? IS NULL THEN updated_at ELSE ? END WHERE identity = ?",
        [new_digest, new_digest, utcnow(), identity]))
    return True


def _matches(digest: str, password: str) -> bool:
    if not isinstance(password, str) or not password or len(password) > MAX_LENGTH:
        return False
    try:
        return hasher().verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False


def _count_failure(store: Store, identity: str, now: datetime, *, lock_expired: bool) -> None:
    """One more wrong password in a row (a count from before an expired lock starts again at 0);
    the MAX_FAILURES-th locks the account until now + LOCK_FOR. Counted in SQL, so two sessions
    guessing at once cannot both slip under the limit."""
    until = now + LOCK_FOR

    def write(cur) -> None:
        if lock_expired:
            cur.execute("UPDATE local_accounts SET failed_attempts = 0, locked_until = NULL "
                        "WHERE identity = ? AND locked_until <= ?", [identity, now])
        failures, locked = cur.execute(
            "UPDATE local_accounts SET failed_attempts = failed_attempts + 1, locked_until = CASE WHEN "
            "failed_attempts + 1 >= ? THEN ? ELSE locked_until END WHERE identity = ? "
            "RETURNING failed_attempts, locked_until", [MAX_FAILURES, until, identity]).fetchone()
        _audit(cur, identity, "account.sign_in_failed", identity, {"reason": "wrong password",
                                                                    "failed_attempts": failures})
        if failures >= MAX_FAILURES and locked == until:   # this failure locked it
            _audit(cur, identity, "account.locked", identity, {"failed_attempts": failures, "locked_until": until})

    store.write(write)


def locked_until(store: Store, identity: str, *, now: datetime | None = None) -> datetime | None:
    """When the account's lock ends, None when it is not locked (or there is no such account)."""
    now = now or utcnow()
    try:
        identity = normalize_identity(identity)
    except ShoalError:
        return None
    until = store.scalar("SELECT locked_until FROM local_accounts WHERE identity = ?", [identity])
    return until if until is not None and now < until else None
