-- Price lists, invoices with their lines, payments and the journal.

-- One price of one service at one hospital over a period; periods of a code never overlap.
CREATE TABLE price_entries (
    id              UUID PRIMARY KEY,
    hospital_id     UUID NOT NULL,
    service_code    TEXT NOT NULL,
    category        TEXT NOT NULL,
    description     TEXT NOT NULL,
    unit_price      BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    effective_from  DATE NOT NULL,
    effective_to    DATE,
    created_by      UUID NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX price_entries_code ON price_entries (hospital_id, service_code, effective_from);

CREATE TABLE invoices (
    id               UUID PRIMARY KEY,
    hospital_id      UUID NOT NULL,
    number           TEXT NOT NULL UNIQUE,
    patient_id       UUID NOT NULL,
    encounter_id     UUID UNIQUE,
    member_number    TEXT,
    currency         TEXT NOT NULL,
    date_of_service  DATE NOT NULL,
    status           TEXT NOT NULL,
    lines            JSONB NOT NULL,
    total            BIGINT NOT NULL,
    insurer_share    BIGINT NOT NULL,
    patient_share    BIGINT NOT NULL,
    paid_patient     BIGINT NOT NULL,
    paid_insurer     BIGINT NOT NULL,
    claim_id         UUID,
    -- The insurer owing the insurer share, once a claim split the invoice.
    insurer_id       UUID,
    split_source     TEXT NOT NULL,
    void_reason      TEXT,
    version          BIGINT NOT NULL,
    created_by       UUID NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    issued_at        TIMESTAMPTZ
);
CREATE INDEX invoices_hospital ON invoices (hospital_id, status, created_at);

-- A payment is unique per hospital and Idempotency-Key: a repeat can never move money twice.
CREATE TABLE payments (
    id                  UUID PRIMARY KEY,
    hospital_id         UUID NOT NULL,
    invoice_id          UUID NOT NULL REFERENCES invoices (id),
    payer               TEXT NOT NULL,
    method              TEXT NOT NULL,
    amount              BIGINT NOT NULL,
    applied             BIGINT NOT NULL,
    credit              BIGINT NOT NULL,
    external_reference  TEXT,
    idempotency_key     TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    created_by          UUID NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    UNIQUE (hospital_id, idempotency_key)
);
CREATE INDEX payments_invoice ON payments (invoice_id);

-- The journal: entries and their postings; every entry balances.
CREATE TABLE journal_entries (
    id          UUID PRIMARY KEY,
    -- The hospital (care) or insurer (premiums, commissions) whose books it is in.
    tenant_id   UUID NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    memo        TEXT NOT NULL,
    invoice_id  UUID,
    payment_id  UUID
);
CREATE TABLE journal_postings (
    entry_id    UUID NOT NULL REFERENCES journal_entries (id),
    line_no     INTEGER NOT NULL,
    account     TEXT NOT NULL,
    party_id    UUID,
    debit       BIGINT NOT NULL,
    credit      BIGINT NOT NULL,
    PRIMARY KEY (entry_id, line_no)
);
CREATE INDEX journal_postings_account ON journal_postings (account);

