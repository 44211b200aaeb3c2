-- Refunds of payments: of care (a payment of an invoice, in a hospital's books) or of a premium
-- (a premium payment, in an insurer's books). Requested by one person, approved (and only then
-- paid out) by another.
CREATE TABLE refunds (
    id            UUID PRIMARY KEY,
    -- `care` or `premium`: what was refunded.
    kind          TEXT NOT NULL,
    -- The hospital (care) or the insurer (premium).
    tenant_id     UUID NOT NULL,
    -- The payment (`payments.id`) or premium payment (`premium_payments.id`).
    payment_id    UUID NOT NULL,
    -- What that payment settled: the invoice or the premium.
    owed_id       UUID NOT NULL,
    amount        BIGINT NOT NULL,
    -- Taken first from the payment's credit, then from what it paid on the invoice or premium.
    from_credit   BIGINT NOT NULL,
    from_applied  BIGINT NOT NULL,
    reason        TEXT NOT NULL,
    status        TEXT NOT NULL,
    requested_by  UUID NOT NULL,
    decided_by    UUID,
    decision_note TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    decided_at    TIMESTAMPTZ
);
CREATE INDEX refunds_payment ON refunds (payment_id);
