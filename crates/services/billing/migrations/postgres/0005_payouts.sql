-- Commission payouts to agents: each pays the agent's earned, unpaid commissions, less any
-- clawed back after they were paid.
CREATE TABLE commission_payouts (
    id                  UUID PRIMARY KEY,
    insurer_id          UUID NOT NULL,
    agent_id            UUID NOT NULL,
    amount              BIGINT NOT NULL,
    method              TEXT NOT NULL,
    external_reference  TEXT NOT NULL,
    idempotency_key     TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    created_by          UUID NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    UNIQUE (insurer_id, idempotency_key)
);
ALTER TABLE commissions ADD COLUMN payout_id UUID;
ALTER TABLE commissions ADD COLUMN recovered_by UUID;
