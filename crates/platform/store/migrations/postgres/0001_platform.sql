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
    id              UUID PRIMARY KEY,
    event_type      TEXT NOT NULL,
    aggregate_type  TEXT NOT NULL,
    aggregate_id    UUID NOT NULL,
    tenant_id       UUID,
    occurred_at     TIMESTAMPTZ NOT NULL,
    correlation_id  TEXT,
    causation_id    TEXT,
    traceparent     TEXT,
    payload         JSONB NOT NULL,
    published_at    TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Events and commands this service handled, recorded with their effect: a repeated delivery
-- has no second effect.
CREATE TABLE inbox (
    consumer    TEXT NOT NULL,
    event_id    UUID NOT NULL,
    handled_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Sagas this service orchestrates, with their transitions.
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
