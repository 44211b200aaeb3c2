-- Users and service accounts. Never deleted: deactivated.
CREATE TABLE users (
    id             BLOB PRIMARY KEY,
    username       TEXT NOT NULL,
    username_key   TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'service')),
    roles          TEXT NOT NULL,
    scope          TEXT NOT NULL,
    active         INTEGER NOT NULL,
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until   TEXT,
    version        INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- Which tenants a user belongs to (`platform`, `hospital:<id>`, `insurer:<id>`, `own`), so
-- tenant administrators list only their own users.
CREATE TABLE user_tenants (
    user_id  BLOB NOT NULL REFERENCES users (id),
    tenant   TEXT NOT NULL,
    PRIMARY KEY (user_id, tenant)
);
CREATE INDEX user_tenants_by_tenant ON user_tenants (tenant, user_id);

-- Ed25519 signing keys. The newest active key signs; retired keys still verify until
-- their tokens have expired.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    private_key  BLOB NOT NULL,
    active       INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    retired_at   TEXT
);

-- Refresh tokens, stored as SHA-256 hashes; a family is one sign-in.
CREATE TABLE refresh_tokens (
    id           BLOB PRIMARY KEY,
    family_id    BLOB NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT,
    revoked_at   TEXT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

-- Append-only record of every authentication and administration event.
CREATE TABLE audit_log (
    id          BLOB PRIMARY KEY,
    at          TEXT NOT NULL,
    event       TEXT NOT NULL,
    user_id     BLOB,
    actor_id    BLOB,
    request_id  TEXT,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_log_by_user ON audit_log (user_id, id);
CREATE INDEX audit_log_by_event ON audit_log (event, id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
