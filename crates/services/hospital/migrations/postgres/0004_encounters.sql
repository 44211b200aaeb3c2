-- The services a hospital renders, by code; encounters may only record these.
CREATE TABLE service_catalog (
    hospital_id  UUID NOT NULL REFERENCES hospitals (id),
    code         TEXT NOT NULL,
    category     TEXT NOT NULL,
    description  TEXT NOT NULL,
    active       BOOLEAN NOT NULL,
    PRIMARY KEY (hospital_id, code)
);

-- An encounter is open while care is recorded, then closed and frozen.
CREATE TABLE encounters (
    id               UUID PRIMARY KEY,
    hospital_id      UUID NOT NULL REFERENCES hospitals (id),
    patient_id       UUID NOT NULL REFERENCES patients (id),
    practitioner_id  UUID NOT NULL REFERENCES practitioners (id),
    appointment_id   UUID UNIQUE REFERENCES appointments (id),
    visit_type       TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    record           JSONB NOT NULL,
    version          BIGINT NOT NULL,
    opened_at        TIMESTAMPTZ NOT NULL,
    closed_at        TIMESTAMPTZ
);
CREATE INDEX encounters_by_patient ON encounters (patient_id, opened_at);
