-- Refunds of premium payments: requested by one person, approved (and only then paid out) by
-- another, like the refunds of care payments.
CREATE TABLE premium_refunds (
    id                 BLOB PRIMARY KEY,
    insurer_id         BLOB NOT NULL,
    premium_payment_id BLOB NOT NULL REFERENCES premium_payments (id),
    premium_id         BLOB NOT NULL REFERENCES premiums (id),
    amount             INTEGER NOT NULL,
    from_credit        INTEGER NOT NULL,
    from_applied       INTEGER NOT NULL,
    reason             TEXT NOT NULL,
    status             TEXT NOT NULL,
    requested_by       BLOB NOT NULL,
    decided_by         BLOB,
    decision_note      TEXT,
    created_at         TEXT NOT NULL,
    decided_at         TEXT
);
CREATE INDEX premium_refunds_payment ON premium_refunds (premium_payment_id);
