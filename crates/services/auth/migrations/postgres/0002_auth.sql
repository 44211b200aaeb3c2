-- Users and service accounts. Never deleted: deactivated.
CREATE TABLE users (
    id             UUID PRIMARY KEY,
    username       TEXT NOT NULL,
    username_key   TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'service')),
    roles          JSONB NOT NULL,
    scope          JSONB NOT NULL,
    active         BOOLEAN NOT NULL,
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    locked_until   TIMESTAMPTZ,
    version        BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- Which tenants a user belongs to (`platform`, `hospital:<id>`, `insurer:<id>`, `own`), so
-- tenant administrators list only their own users.
CREATE TABLE user_tenants (
    user_id  UUID NOT NULL REFERENCES users (id),
    tenant   TEXT NOT NULL,
    PRIMARY KEY (user_id, tenant)
);
CREATE INDEX user_tenants_by_tenant ON user_tenants (tenant, user_id);

-- Ed25519 signing keys. The newest active key signs; retired keys still verify until
-- their tokens have expired.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    private_key  BYTEA NOT NULL,
    active       BOOLEAN NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    retired_at   TIMESTAMPTZ
);

-- Refresh tokens, stored as SHA-256 hashes; a family is one sign-in.
CREATE TABLE refresh_tokens (
    id           UUID PRIMARY KEY,
    family_id    UUID NOT NULL,
    user_id      UUID NOT NULL REFERENCES users (id),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

-- Append-only record of every authentication and administration event.
CREATE TABLE audit_log (
    id          UUID PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    event       TEXT NOT NULL,
    user_id     UUID,
    actor_id    UUID,
    request_id  TEXT,
    detail      JSONB NOT NULL
);
CREATE INDEX audit_log_by_user ON audit_log (user_id, id);
CREATE INDEX audit_log_by_event ON audit_log (event, id);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
