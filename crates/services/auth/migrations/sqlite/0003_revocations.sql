-- Revocations of access tokens before they expire: a session (logout, a reused refresh token)
-- or every token a user was issued before an instant (deactivation, new password, new roles).
-- Every process polls the recent ones (GET /revocations); a row is kept until every token it
-- can refuse has expired.
CREATE TABLE revocations (
    id       BLOB PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('session', 'user')),
    subject  BLOB NOT NULL,
    before   TEXT,
    at       TEXT NOT NULL,
    until    TEXT NOT NULL
);
CREATE INDEX revocations_by_time ON revocations (at);
