-- Insurers (the tenants), plans and their versions, policies and members, pre-authorisations,
-- claims, the accumulator ledger, and the outbox.

CREATE TABLE insurers (
    id          UUID PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    currency    TEXT NOT NULL,
    member_seq  BIGINT NOT NULL DEFAULT 0,
    policy_seq  BIGINT NOT NULL DEFAULT 0,
    active      BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE plans (
    id          UUID PRIMARY KEY,
    insurer_id  UUID NOT NULL REFERENCES insurers (id),
    code        TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (insurer_id, code)
);

-- A version is never changed once written: claims keep the rules they were adjudicated under.
CREATE TABLE plan_versions (
    id              UUID PRIMARY KEY,
    plan_id         UUID NOT NULL REFERENCES plans (id),
    version         INTEGER NOT NULL,
    effective_from  DATE NOT NULL,
    effective_to    DATE,
    rules           JSONB NOT NULL,
    created_by      UUID NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (plan_id, version)
);

-- A person covered by the insurer, across policy periods.
CREATE TABLE members (
    id              UUID PRIMARY KEY,
    insurer_id      UUID NOT NULL REFERENCES insurers (id),
    member_number   TEXT NOT NULL UNIQUE,
    given_name      TEXT NOT NULL,
    family_name     TEXT NOT NULL,
    date_of_birth   DATE NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

-- One policy period; a renewal is the next row, pointing back with renewal_of.
CREATE TABLE policies (
    id               UUID PRIMARY KEY,
    insurer_id       UUID NOT NULL REFERENCES insurers (id),
    number           TEXT NOT NULL UNIQUE,
    plan_id          UUID NOT NULL REFERENCES plans (id),
    plan_version_id  UUID NOT NULL REFERENCES plan_versions (id),
    holder_id        UUID NOT NULL REFERENCES members (id),
    agent_id         UUID,
    start_date       DATE NOT NULL,
    expiry_date      DATE NOT NULL,
    premium          BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL,
    ended_on         DATE,
    renewal_of       UUID REFERENCES policies (id),
    version          BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX policies_insurer ON policies (insurer_id, status);
CREATE UNIQUE INDEX policies_one_renewal ON policies (renewal_of) WHERE renewal_of IS NOT NULL;

CREATE TABLE policy_members (
    policy_id     UUID NOT NULL REFERENCES policies (id),
    member_id     UUID NOT NULL REFERENCES members (id),
    relationship  TEXT NOT NULL,
    enrolled_on   DATE NOT NULL,
    status        TEXT NOT NULL,
    status_on     DATE,
    PRIMARY KEY (policy_id, member_id)
);
CREATE INDEX policy_members_member ON policy_members (member_id);

-- Every status change of a policy or a member, with who and why.
CREATE TABLE policy_history (
    id          UUID PRIMARY KEY,
    policy_id   UUID NOT NULL REFERENCES policies (id),
    member_id   UUID,
    at          TIMESTAMPTZ NOT NULL,
    changed_by  UUID NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT,
    request_id  TEXT
);
CREATE INDEX policy_history_policy ON policy_history (policy_id, at);

CREATE TABLE preauths (
    id                UUID PRIMARY KEY,
    insurer_id        UUID NOT NULL REFERENCES insurers (id),
    hospital_id       UUID NOT NULL,
    policy_id         UUID NOT NULL REFERENCES policies (id),
    member_id         UUID NOT NULL REFERENCES members (id),
    visit_type        TEXT NOT NULL,
    planned_date      DATE NOT NULL,
    status            TEXT NOT NULL,
    lines             JSONB NOT NULL,
    requested_amount  BIGINT NOT NULL,
    approved_amount   BIGINT NOT NULL,
    reserved_inpatient   BIGINT NOT NULL,
    reserved_outpatient  BIGINT NOT NULL,
    valid_until       DATE,
    reason            TEXT,
    decided_by        UUID,
    decided_at        TIMESTAMPTZ,
    used_by_claim     UUID,
    requested_by      UUID NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX preauths_member ON preauths (policy_id, member_id, status);

CREATE TABLE claims (
    id                  UUID PRIMARY KEY,
    insurer_id          UUID NOT NULL REFERENCES insurers (id),
    hospital_id         UUID NOT NULL,
    reference           TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    policy_id           UUID REFERENCES policies (id),
    member_id           UUID NOT NULL REFERENCES members (id),
    plan_version_id     UUID REFERENCES plan_versions (id),
    visit_type          TEXT NOT NULL,
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL,
    outcome             TEXT,
    lines               JSONB NOT NULL,
    result              JSONB,
    adjudication_no     INTEGER NOT NULL,
    insurer_total       BIGINT NOT NULL,
    patient_total       BIGINT NOT NULL,
    version             BIGINT NOT NULL,
    submitted_by        UUID NOT NULL,
    submitted_at        TIMESTAMPTZ NOT NULL,
    adjudicated_at      TIMESTAMPTZ,
    UNIQUE (hospital_id, reference)
);
CREATE INDEX claims_insurer ON claims (insurer_id, status, submitted_at);
CREATE INDEX claims_member ON claims (member_id, status);

-- Every step of a claim: submitted, adjudicated, review, override, reversal, paid.
CREATE TABLE claim_history (
    id          UUID PRIMARY KEY,
    claim_id    UUID NOT NULL REFERENCES claims (id),
    at          TIMESTAMPTZ NOT NULL,
    actor       UUID NOT NULL,
    action      TEXT NOT NULL,
    detail      JSONB NOT NULL,
    request_id  TEXT
);
CREATE INDEX claim_history_claim ON claim_history (claim_id, at);

-- The accumulator ledger: append-only. One adjudication writes one row per category it
-- touched (category '' carries the deductible and ceilings); a reversal writes the negation.
CREATE TABLE accumulator_entries (
    id               UUID PRIMARY KEY,
    policy_id        UUID NOT NULL REFERENCES policies (id),
    member_id        UUID NOT NULL REFERENCES members (id),
    claim_id         UUID NOT NULL REFERENCES claims (id),
    adjudication_no  INTEGER NOT NULL,
    reversal         BOOLEAN NOT NULL,
    category         TEXT NOT NULL,
    deductible       BIGINT NOT NULL,
    inpatient        BIGINT NOT NULL,
    outpatient       BIGINT NOT NULL,
    count            BIGINT NOT NULL,
    amount           BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (claim_id, adjudication_no, reversal, category)
);
CREATE INDEX accumulator_entries_policy ON accumulator_entries (policy_id, member_id);

