-- btree_gist lets one exclusion constraint compare ids (=) and time ranges (&&).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE practitioners (
    id              UUID PRIMARY KEY,
    hospital_id     UUID NOT NULL REFERENCES hospitals (id),
    name            TEXT NOT NULL,
    specialty       TEXT NOT NULL,
    working_hours   JSONB NOT NULL,
    daily_capacity  INTEGER NOT NULL CHECK (daily_capacity > 0),
    active          BOOLEAN NOT NULL,
    bookings        BIGINT NOT NULL DEFAULT 0,
    version         BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX practitioners_by_hospital ON practitioners (hospital_id, name);

-- Times are Unix seconds. The exclusion constraints are the last word on double booking: no
-- two active appointments of one practitioner, or of one patient, overlap.
CREATE TABLE appointments (
    id               UUID PRIMARY KEY,
    hospital_id      UUID NOT NULL REFERENCES hospitals (id),
    practitioner_id  UUID NOT NULL REFERENCES practitioners (id),
    patient_id       UUID NOT NULL REFERENCES patients (id),
    category         TEXT NOT NULL,
    starts_at        BIGINT NOT NULL,
    ends_at          BIGINT NOT NULL CHECK (ends_at > starts_at),
    local_date       DATE NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT,
    version          BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT appointments_practitioner_free EXCLUDE USING gist
        (practitioner_id WITH =, int8range(starts_at, ends_at) WITH &&)
        WHERE (status IN ('booked', 'arrived', 'checked_in')),
    CONSTRAINT appointments_patient_free EXCLUDE USING gist
        (patient_id WITH =, int8range(starts_at, ends_at) WITH &&)
        WHERE (status IN ('booked', 'arrived', 'checked_in'))
);
CREATE INDEX appointments_by_practitioner ON appointments (practitioner_id, starts_at);
CREATE INDEX appointments_by_patient ON appointments (patient_id, starts_at);
CREATE INDEX appointments_by_day ON appointments (practitioner_id, local_date);

-- Every booking, reschedule and status change, with who and when.
CREATE TABLE appointment_history (
    appointment_id  UUID NOT NULL REFERENCES appointments (id),
    version         BIGINT NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    by_user         UUID NOT NULL,
    status          TEXT NOT NULL,
    starts_at       BIGINT NOT NULL,
    ends_at         BIGINT NOT NULL,
    reason          TEXT,
    PRIMARY KEY (appointment_id, version)
);
CREATE TRIGGER appointment_history_append_only BEFORE UPDATE OR DELETE ON appointment_history
    FOR EACH ROW EXECUTE FUNCTION append_only();
