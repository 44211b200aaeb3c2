-- Sagas this service orchestrates (patient registration), with their transitions.
CREATE TABLE sagas (
    id           BLOB PRIMARY KEY,
    kind         TEXT NOT NULL,
    subject_id   BLOB NOT NULL,
    tenant_id    BLOB,
    state        TEXT NOT NULL,
    step         TEXT NOT NULL,
    deadline_at  TEXT,
    data         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (kind, subject_id)
);
CREATE INDEX sagas_due ON sagas (deadline_at) WHERE state IN ('running', 'compensating');

CREATE TABLE saga_transitions (
    id          BLOB PRIMARY KEY,
    saga_id     BLOB NOT NULL REFERENCES sagas (id),
    at          TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    step        TEXT NOT NULL,
    note        TEXT
);
CREATE INDEX saga_transitions_saga ON saga_transitions (saga_id, at);
