-- Refunds: requested by one person, approved (and only then paid out) by another.
CREATE TABLE refunds (
    id            BLOB PRIMARY KEY,
    hospital_id   BLOB NOT NULL,
    payment_id    BLOB NOT NULL REFERENCES payments (id),
    invoice_id    BLOB NOT NULL REFERENCES invoices (id),
    amount        INTEGER NOT NULL,
    -- Taken first from the payment's credit, then from what it paid on the invoice.
    from_credit   INTEGER NOT NULL,
    from_applied  INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    status        TEXT NOT NULL,
    requested_by  BLOB NOT NULL,
    decided_by    BLOB,
    decision_note TEXT,
    created_at    TEXT NOT NULL,
    decided_at    TEXT
);
CREATE INDEX refunds_payment ON refunds (payment_id);
