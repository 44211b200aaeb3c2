-- Insurers (the tenants), plans and their versions, policies and members, pre-authorisations,
-- claims, the accumulator ledger, and the outbox.

CREATE TABLE insurers (
    id          BLOB PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    currency    TEXT NOT NULL,
    member_seq  INTEGER NOT NULL DEFAULT 0,
    policy_seq  INTEGER NOT NULL DEFAULT 0,
    active      INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE plans (
    id          BLOB PRIMARY KEY,
    insurer_id  BLOB NOT NULL REFERENCES insurers (id),
    code        TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (insurer_id, code)
);

-- A version is never changed once written: claims keep the rules they were adjudicated under.
CREATE TABLE plan_versions (
    id              BLOB PRIMARY KEY,
    plan_id         BLOB NOT NULL REFERENCES plans (id),
    version         INTEGER NOT NULL,
    effective_from  TEXT NOT NULL,
    effective_to    TEXT,
    rules           TEXT NOT NULL,
    created_by      BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    UNIQUE (plan_id, version)
);

-- A person covered by the insurer, across policy periods.
CREATE TABLE members (
    id              BLOB PRIMARY KEY,
    insurer_id      BLOB NOT NULL REFERENCES insurers (id),
    member_number   TEXT NOT NULL UNIQUE,
    given_name      TEXT NOT NULL,
    family_name     TEXT NOT NULL,
    date_of_birth   TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

-- One policy period; a renewal is the next row, pointing back with renewal_of.
CREATE TABLE policies (
    id               BLOB PRIMARY KEY,
    insurer_id       BLOB NOT NULL REFERENCES insurers (id),
    number           TEXT NOT NULL UNIQUE,
    plan_id          BLOB NOT NULL REFERENCES plans (id),
    plan_version_id  BLOB NOT NULL REFERENCES plan_versions (id),
    holder_id        BLOB NOT NULL REFERENCES members (id),
    agent_id         BLOB,
    start_date       TEXT NOT NULL,
    expiry_date      TEXT NOT NULL,
    premium          INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL,
    ended_on         TEXT,
    renewal_of       BLOB REFERENCES policies (id),
    version          INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX policies_insurer ON policies (insurer_id, status);
CREATE UNIQUE INDEX policies_one_renewal ON policies (renewal_of) WHERE renewal_of IS NOT NULL;

CREATE TABLE policy_members (
    policy_id     BLOB NOT NULL REFERENCES policies (id),
    member_id     BLOB NOT NULL REFERENCES members (id),
    relationship  TEXT NOT NULL,
    enrolled_on   TEXT NOT NULL,
    status        TEXT NOT NULL,
    status_on     TEXT,
    PRIMARY KEY (policy_id, member_id)
);
CREATE INDEX policy_members_member ON policy_members (member_id);

-- Every status change of a policy or a member, with who and why.
CREATE TABLE policy_history (
    id          BLOB PRIMARY KEY,
    policy_id   BLOB NOT NULL REFERENCES policies (id),
    member_id   BLOB,
    at          TEXT NOT NULL,
    changed_by  BLOB NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT,
    request_id  TEXT
);
CREATE INDEX policy_history_policy ON policy_history (policy_id, at);

CREATE TABLE preauths (
    id                BLOB PRIMARY KEY,
    insurer_id        BLOB NOT NULL REFERENCES insurers (id),
    hospital_id       BLOB NOT NULL,
    policy_id         BLOB NOT NULL REFERENCES policies (id),
    member_id         BLOB NOT NULL REFERENCES members (id),
    visit_type        TEXT NOT NULL,
    planned_date      TEXT NOT NULL,
    status            TEXT NOT NULL,
    lines             TEXT NOT NULL,
    requested_amount  INTEGER NOT NULL,
    approved_amount   INTEGER NOT NULL,
    reserved_inpatient   INTEGER NOT NULL,
    reserved_outpatient  INTEGER NOT NULL,
    valid_until       TEXT,
    reason            TEXT,
    decided_by        BLOB,
    decided_at        TEXT,
    used_by_claim     BLOB,
    requested_by      BLOB NOT NULL,
    created_at        TEXT NOT NULL
);
CREATE INDEX preauths_member ON preauths (policy_id, member_id, status);

CREATE TABLE claims (
    id                  BLOB PRIMARY KEY,
    insurer_id          BLOB NOT NULL REFERENCES insurers (id),
    hospital_id         BLOB NOT NULL,
    reference           TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    policy_id           BLOB REFERENCES policies (id),
    member_id           BLOB NOT NULL REFERENCES members (id),
    plan_version_id     BLOB REFERENCES plan_versions (id),
    visit_type          TEXT NOT NULL,
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL,
    outcome             TEXT,
    lines               TEXT NOT NULL,
    result              TEXT,
    adjudication_no     INTEGER NOT NULL,
    insurer_total       INTEGER NOT NULL,
    patient_total       INTEGER NOT NULL,
    version             INTEGER NOT NULL,
    submitted_by        BLOB NOT NULL,
    submitted_at        TEXT NOT NULL,
    adjudicated_at      TEXT,
    UNIQUE (hospital_id, reference)
);
CREATE INDEX claims_insurer ON claims (insurer_id, status, submitted_at);
CREATE INDEX claims_member ON claims (member_id, status);

-- Every step of a claim: submitted, adjudicated, review, override, reversal, paid.
CREATE TABLE claim_history (
    id          BLOB PRIMARY KEY,
    claim_id    BLOB NOT NULL REFERENCES claims (id),
    at          TEXT NOT NULL,
    actor       BLOB NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    request_id  TEXT
);
CREATE INDEX claim_history_claim ON claim_history (claim_id, at);

-- The accumulator ledger: append-only. One adjudication writes one row per category it
-- touched (category '' carries the deductible and ceilings); a reversal writes the negation.
CREATE TABLE accumulator_entries (
    id               BLOB PRIMARY KEY,
    policy_id        BLOB NOT NULL REFERENCES policies (id),
    member_id        BLOB NOT NULL REFERENCES members (id),
    claim_id         BLOB NOT NULL REFERENCES claims (id),
    adjudication_no  INTEGER NOT NULL,
    reversal         INTEGER NOT NULL,
    category         TEXT NOT NULL,
    deductible       INTEGER NOT NULL,
    inpatient        INTEGER NOT NULL,
    outpatient       INTEGER NOT NULL,
    count            INTEGER NOT NULL,
    amount           INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    UNIQUE (claim_id, adjudication_no, reversal, category)
);
CREATE INDEX accumulator_entries_policy ON accumulator_entries (policy_id, member_id);

