-- Premiums of policies, their payments, agents and their commissions.

-- One premium per policy period, from `insurance.policy_created.v1`.
CREATE TABLE premiums (
    id           BLOB PRIMARY KEY,
    insurer_id   BLOB NOT NULL,
    policy_id    BLOB NOT NULL UNIQUE,
    plan_id      BLOB NOT NULL,
    holder_id    BLOB NOT NULL,
    agent_id     BLOB,
    number       TEXT NOT NULL UNIQUE,
    amount       INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL,
    paid         INTEGER NOT NULL,
    due_date     TEXT NOT NULL,
    void_reason  TEXT,
    version      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    paid_at      TEXT
);
CREATE INDEX premiums_insurer ON premiums (insurer_id, status);

CREATE TABLE premium_payments (
    id                  BLOB PRIMARY KEY,
    insurer_id          BLOB NOT NULL,
    premium_id          BLOB NOT NULL REFERENCES premiums (id),
    method              TEXT NOT NULL,
    amount              INTEGER NOT NULL,
    applied             INTEGER NOT NULL,
    credit              INTEGER NOT NULL,
    external_reference  TEXT,
    idempotency_key     TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    created_by          BLOB NOT NULL,
    created_at          TEXT NOT NULL,
    UNIQUE (insurer_id, idempotency_key)
);

-- An agent's tier decides their commission rate on each plan.
-- Per insurer: one insurer's administrators never change another's agents.
CREATE TABLE agents (
    agent_id    BLOB NOT NULL,
    insurer_id  BLOB NOT NULL,
    tier        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (agent_id, insurer_id)
);

CREATE TABLE commission_rates (
    insurer_id  BLOB NOT NULL,
    plan_id     BLOB NOT NULL,
    tier        TEXT NOT NULL,
    rate_bp     INTEGER NOT NULL,
    PRIMARY KEY (insurer_id, plan_id, tier)
);

-- One commission per paid premium; a clawback changes its status and reverses its entry.
CREATE TABLE commissions (
    id               BLOB PRIMARY KEY,
    insurer_id       BLOB NOT NULL,
    agent_id         BLOB NOT NULL,
    policy_id        BLOB NOT NULL,
    premium_id       BLOB NOT NULL UNIQUE,
    premium_amount   INTEGER NOT NULL,
    rate_bp          INTEGER NOT NULL,
    amount           INTEGER NOT NULL,
    status           TEXT NOT NULL,
    earned_at        TEXT NOT NULL,
    clawed_back_at   TEXT,
    clawback_reason  TEXT
);
CREATE INDEX commissions_agent ON commissions (agent_id, earned_at);
