-- Idempotency-Keys in flight or done, per tenant: a request holds its key while it runs, so a
-- concurrent repeat is told 409 instead of waiting; the key is marked done in the transaction
-- that moves the money.
CREATE TABLE idempotency_keys (
    tenant_id     UUID NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    state         TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
