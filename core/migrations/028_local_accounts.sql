-- 028_local_accounts: local sign-in for a small team without an identity provider (core.local_accounts).
-- One row per account: the identity (an email, the same string core.team's members use), its argon2id
-- hash (never the password), and the count of wrong passwords in a row with the time until which the
-- account is locked after too many. An account grants nothing by itself: the role comes from
-- team_members / the secrets file, as for OIDC sign-in. Frozen.

CREATE TABLE IF NOT EXISTS local_accounts (
    identity VARCHAR PRIMARY KEY,           -- email-like, lower case
    password_hash VARCHAR NOT NULL,         -- argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash)
    created_at TIMESTAMP DEFAULT current_timestamp,   -- core writes both times in UTC
    updated_at TIMESTAMP DEFAULT current_timestamp,
    failed_attempts INTEGER NOT NULL DEFAULT 0,   -- wrong passwords in a row since the last success or lock
    locked_until TIMESTAMP                  -- UTC; NULL when not locked
);
