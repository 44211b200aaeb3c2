-- The services a hospital renders, by code; encounters may only record these.
CREATE TABLE service_catalog (
    hospital_id  BLOB NOT NULL REFERENCES hospitals (id),
    code         TEXT NOT NULL,
    category     TEXT NOT NULL,
    description  TEXT NOT NULL,
    active       INTEGER NOT NULL,
    PRIMARY KEY (hospital_id, code)
);

-- An encounter is open while care is recorded, then closed and frozen.
CREATE TABLE encounters (
    id               BLOB PRIMARY KEY,
    hospital_id      BLOB NOT NULL REFERENCES hospitals (id),
    patient_id       BLOB NOT NULL REFERENCES patients (id),
    practitioner_id  BLOB NOT NULL REFERENCES practitioners (id),
    appointment_id   BLOB UNIQUE REFERENCES appointments (id),
    visit_type       TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    record           TEXT NOT NULL,
    version          INTEGER NOT NULL,
    opened_at        TEXT NOT NULL,
    closed_at        TEXT
);
CREATE INDEX encounters_by_patient ON encounters (patient_id, opened_at);
