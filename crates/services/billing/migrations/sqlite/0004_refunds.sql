-- Refunds of payments: of care (a payment of an invoice, in a hospital's books) or of a premium
-- (a premium payment, in an insurer's books). Requested by one person, approved (and only then
-- paid out) by another.
CREATE TABLE refunds (
    id            BLOB PRIMARY KEY,
    -- `care` or `premium`: what was refunded.
    kind          TEXT NOT NULL,
    -- The hospital (care) or the insurer (premium).
    tenant_id     BLOB NOT NULL,
    -- The payment (`payments.id`) or premium payment (`premium_payments.id`).
    payment_id    BLOB NOT NULL,
    -- What that payment settled: the invoice or the premium.
    owed_id       BLOB NOT NULL,
    amount        INTEGER NOT NULL,
    -- Taken first from the payment's credit, then from what it paid on the invoice or premium.
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
