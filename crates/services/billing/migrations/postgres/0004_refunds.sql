-- Refunds: requested by one person, approved (and only then paid out) by another.
CREATE TABLE refunds (
    id            UUID PRIMARY KEY,
    hospital_id   UUID NOT NULL,
    payment_id    UUID NOT NULL REFERENCES payments (id),
    invoice_id    UUID NOT NULL REFERENCES invoices (id),
    amount        BIGINT NOT NULL,
    -- Taken first from the payment's credit, then from what it paid on the invoice.
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
