-- The tables every service has, owned by the platform and applied to each service's schema by
-- the runtime before the service's own migrations (tracked in _medcov_platform_migrations).

-- Which service owns this database. The runtime writes the row on the first start and refuses
-- to start a service on a database that names another one.
CREATE TABLE medcov_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Domain events, written in the same transaction as the change (the transactional outbox); a
-- relay publishes them and sets published_at. The rows stay: this is the service's event log.
CREATE TABLE outbox (
    id              BLOB PRIMARY KEY,
    event_type      TEXT NOT NULL,
    aggregate_type  TEXT NOT NULL,
    aggregate_id    BLOB NOT NULL,
    tenant_id       BLOB,
    occurred_at     TEXT NOT NULL,
    correlation_id  TEXT,
    causation_id    TEXT,
    traceparent     TEXT,
    payload         TEXT NOT NULL,
    published_at    TEXT
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Events and commands this service handled, recorded with their effect: a repeated delivery
-- has no second effect.
CREATE TABLE inbox (
    consumer    TEXT NOT NULL,
    event_id    BLOB NOT NULL,
    handled_at  TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Sagas this service orchestrates, with their transitions.
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
