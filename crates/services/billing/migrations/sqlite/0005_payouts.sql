-- Commission payouts to agents: each pays the agent's earned, unpaid commissions, less any
-- clawed back after they were paid.
CREATE TABLE commission_payouts (
    id                  BLOB PRIMARY KEY,
    insurer_id          BLOB NOT NULL,
    agent_id            BLOB NOT NULL,
    amount              INTEGER NOT NULL,
    method              TEXT NOT NULL,
    external_reference  TEXT NOT NULL,
    idempotency_key     TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    created_by          BLOB NOT NULL,
    created_at          TEXT NOT NULL,
    UNIQUE (insurer_id, idempotency_key)
);
ALTER TABLE commissions ADD COLUMN payout_id BLOB;
ALTER TABLE commissions ADD COLUMN recovered_by BLOB;
