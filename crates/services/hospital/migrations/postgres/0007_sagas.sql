-- Sagas this service orchestrates (patient registration), with their transitions.
CREATE TABLE sagas (
    id           UUID PRIMARY KEY,
    kind         TEXT NOT NULL,
    subject_id   UUID NOT NULL,
    tenant_id    UUID,
    state        TEXT NOT NULL,
    step         TEXT NOT NULL,
    deadline_at  TIMESTAMPTZ,
    data         JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (kind, subject_id)
);
CREATE INDEX sagas_due ON sagas (deadline_at) WHERE state IN ('running', 'compensating');

CREATE TABLE saga_transitions (
    id          UUID PRIMARY KEY,
    saga_id     UUID NOT NULL REFERENCES sagas (id),
    at          TIMESTAMPTZ NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    step        TEXT NOT NULL,
    note        TEXT
);
CREATE INDEX saga_transitions_saga ON saga_transitions (saga_id, at);
