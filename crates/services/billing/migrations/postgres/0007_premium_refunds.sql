-- Refunds of premium payments: requested by one person, approved (and only then paid out) by
-- another, like the refunds of care payments.
CREATE TABLE premium_refunds (
    id                 UUID PRIMARY KEY,
    insurer_id         UUID NOT NULL,
    premium_payment_id UUID NOT NULL REFERENCES premium_payments (id),
    premium_id         UUID NOT NULL REFERENCES premiums (id),
    amount             BIGINT NOT NULL,
    from_credit        BIGINT NOT NULL,
    from_applied       BIGINT NOT NULL,
    reason             TEXT NOT NULL,
    status             TEXT NOT NULL,
    requested_by       UUID NOT NULL,
    decided_by         UUID,
    decision_note      TEXT,
    created_at         TIMESTAMPTZ NOT NULL,
    decided_at         TIMESTAMPTZ
);
CREATE INDEX premium_refunds_payment ON premium_refunds (premium_payment_id);
