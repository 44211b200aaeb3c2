-- Price lists, invoices with their lines, payments and the journal.

-- One price of one service at one hospital over a period; periods of a code never overlap.
CREATE TABLE price_entries (
    id              BLOB PRIMARY KEY,
    hospital_id     BLOB NOT NULL,
    service_code    TEXT NOT NULL,
    category        TEXT NOT NULL,
    description     TEXT NOT NULL,
    unit_price      INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    effective_from  TEXT NOT NULL,
    effective_to    TEXT,
    created_by      BLOB NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX price_entries_code ON price_entries (hospital_id, service_code, effective_from);

CREATE TABLE invoices (
    id               BLOB PRIMARY KEY,
    hospital_id      BLOB NOT NULL,
    number           TEXT NOT NULL UNIQUE,
    patient_id       BLOB NOT NULL,
    encounter_id     BLOB UNIQUE,
    member_number    TEXT,
    currency         TEXT NOT NULL,
    date_of_service  TEXT NOT NULL,
    status           TEXT NOT NULL,
    lines            TEXT NOT NULL,
    total            INTEGER NOT NULL,
    insurer_share    INTEGER NOT NULL,
    patient_share    INTEGER NOT NULL,
    paid_patient     INTEGER NOT NULL,
    paid_insurer     INTEGER NOT NULL,
    claim_id         BLOB,
    -- The insurer owing the insurer share, once a claim split the invoice.
    insurer_id       BLOB,
    split_source     TEXT NOT NULL,
    void_reason      TEXT,
    version          INTEGER NOT NULL,
    created_by       BLOB NOT NULL,
    created_at       TEXT NOT NULL,
    issued_at        TEXT
);
CREATE INDEX invoices_hospital ON invoices (hospital_id, status, created_at);

-- A payment is unique per hospital and Idempotency-Key: a repeat can never move money twice.
CREATE TABLE payments (
    id                  BLOB PRIMARY KEY,
    hospital_id         BLOB NOT NULL,
    invoice_id          BLOB NOT NULL REFERENCES invoices (id),
    payer               TEXT NOT NULL,
    method              TEXT NOT NULL,
    amount              INTEGER NOT NULL,
    applied             INTEGER NOT NULL,
    credit              INTEGER NOT NULL,
    external_reference  TEXT,
    idempotency_key     TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    created_by          BLOB NOT NULL,
    created_at          TEXT NOT NULL,
    UNIQUE (hospital_id, idempotency_key)
);
CREATE INDEX payments_invoice ON payments (invoice_id);

-- The journal: entries and their postings; every entry balances.
CREATE TABLE journal_entries (
    id          BLOB PRIMARY KEY,
    -- The hospital (care) or insurer (premiums, commissions) whose books it is in.
    tenant_id   BLOB NOT NULL,
    at          TEXT NOT NULL,
    memo        TEXT NOT NULL,
    invoice_id  BLOB,
    payment_id  BLOB
);
CREATE TABLE journal_postings (
    entry_id    BLOB NOT NULL REFERENCES journal_entries (id),
    line_no     INTEGER NOT NULL,
    account     TEXT NOT NULL,
    party_id    BLOB,
    debit       INTEGER NOT NULL,
    credit      INTEGER NOT NULL,
    PRIMARY KEY (entry_id, line_no)
);
CREATE INDEX journal_postings_account ON journal_postings (account);

