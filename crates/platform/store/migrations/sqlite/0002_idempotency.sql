-- The answers to requests sent with an Idempotency-Key, written in the transaction of the
-- request's effect (see medcov_store::keyed): a record exists exactly when the effect does, so a
-- retry under the key whose first answer was lost gets that answer. `key` is the service, the
-- caller and the client's key; `answer` is the status, kept headers and body, or NULL while a
-- request that read its answer back after committing has not stored it yet.
CREATE TABLE idempotency_records (
    key          TEXT PRIMARY KEY,
    fingerprint  BLOB NOT NULL,
    answer       BLOB,
    created_at   TEXT NOT NULL
);
CREATE INDEX idempotency_records_created ON idempotency_records (created_at);
