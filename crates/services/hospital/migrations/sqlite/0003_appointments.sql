CREATE TABLE practitioners (
    id              BLOB PRIMARY KEY,
    hospital_id     BLOB NOT NULL REFERENCES hospitals (id),
    name            TEXT NOT NULL,
    specialty       TEXT NOT NULL,
    working_hours   TEXT NOT NULL,
    daily_capacity  INTEGER NOT NULL CHECK (daily_capacity > 0),
    active          INTEGER NOT NULL,
    bookings        INTEGER NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX practitioners_by_hospital ON practitioners (hospital_id, name);

-- Times are Unix seconds. SQLite has no exclusion constraints: a booking checks and inserts
-- in one BEGIN IMMEDIATE transaction, which no other writer can interleave with.
CREATE TABLE appointments (
    id               BLOB PRIMARY KEY,
    hospital_id      BLOB NOT NULL REFERENCES hospitals (id),
    practitioner_id  BLOB NOT NULL REFERENCES practitioners (id),
    patient_id       BLOB NOT NULL REFERENCES patients (id),
    category         TEXT NOT NULL,
    starts_at        INTEGER NOT NULL,
    ends_at          INTEGER NOT NULL CHECK (ends_at > starts_at),
    local_date       TEXT NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT,
    version          INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX appointments_by_practitioner ON appointments (practitioner_id, starts_at);
CREATE INDEX appointments_by_patient ON appointments (patient_id, starts_at);
CREATE INDEX appointments_by_day ON appointments (practitioner_id, local_date);

-- Every booking, reschedule and status change, with who and when.
CREATE TABLE appointment_history (
    appointment_id  BLOB NOT NULL REFERENCES appointments (id),
    version         INTEGER NOT NULL,
    at              TEXT NOT NULL,
    by_user         BLOB NOT NULL,
    status          TEXT NOT NULL,
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER NOT NULL,
    reason          TEXT,
    PRIMARY KEY (appointment_id, version)
);
CREATE TRIGGER appointment_history_no_update BEFORE UPDATE ON appointment_history
BEGIN SELECT RAISE(ABORT, 'appointment_history is append-only'); END;
CREATE TRIGGER appointment_history_no_delete BEFORE DELETE ON appointment_history
BEGIN SELECT RAISE(ABORT, 'appointment_history is append-only'); END;
