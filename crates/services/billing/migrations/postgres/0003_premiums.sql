-- Premiums of policies, their payments, agents and their commissions.

-- One premium per policy period, from `insurance.policy_created.v1`.
CREATE TABLE premiums (
    id           UUID PRIMARY KEY,
    insurer_id   UUID NOT NULL,
    policy_id    UUID NOT NULL UNIQUE,
    plan_id      UUID NOT NULL,
    holder_id    UUID NOT NULL,
    agent_id     UUID,
    number       TEXT NOT NULL UNIQUE,
    amount       BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL,
    paid         BIGINT NOT NULL,
    due_date     DATE NOT NULL,
    void_reason  TEXT,
    version      BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    paid_at      TIMESTAMPTZ
);
CREATE INDEX premiums_insurer ON premiums (insurer_id, status);

CREATE TABLE premium_payments (
    id                  UUID PRIMARY KEY,
    insurer_id          UUID NOT NULL,
    premium_id          UUID NOT NULL REFERENCES premiums (id),
    method              TEXT NOT NULL,
    amount              BIGINT NOT NULL,
    applied             BIGINT NOT NULL,
    credit              BIGINT NOT NULL,
    external_reference  TEXT,
    idempotency_key     TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    created_by          UUID NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    UNIQUE (insurer_id, idempotency_key)
);

-- An agent's tier decides their commission rate on each plan.
-- Per insurer: one insurer's administrators never change another's agents.
CREATE TABLE agents (
    agent_id    UUID NOT NULL,
    insurer_id  UUID NOT NULL,
    tier        TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, insurer_id)
);

CREATE TABLE commission_rates (
    insurer_id  UUID NOT NULL,
    plan_id     UUID NOT NULL,
    tier        TEXT NOT NULL,
    rate_bp     INTEGER NOT NULL,
    PRIMARY KEY (insurer_id, plan_id, tier)
);

-- One commission per paid premium; a clawback changes its status and reverses its entry.
CREATE TABLE commissions (
    id               UUID PRIMARY KEY,
    insurer_id       UUID NOT NULL,
    agent_id         UUID NOT NULL,
    policy_id        UUID NOT NULL,
    premium_id       UUID NOT NULL UNIQUE,
    premium_amount   BIGINT NOT NULL,
    rate_bp          INTEGER NOT NULL,
    amount           BIGINT NOT NULL,
    status           TEXT NOT NULL,
    earned_at        TIMESTAMPTZ NOT NULL,
    clawed_back_at   TIMESTAMPTZ,
    clawback_reason  TEXT
);
CREATE INDEX commissions_agent ON commissions (agent_id, earned_at);
