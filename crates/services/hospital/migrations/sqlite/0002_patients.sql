-- Hospitals: the tenants of the hospital side. `mrn_seq` numbers their patients.
CREATE TABLE hospitals (
    id          BLOB PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    currency    TEXT NOT NULL,
    address     TEXT NOT NULL,
    active      INTEGER NOT NULL,
    mrn_seq     INTEGER NOT NULL DEFAULT 0,
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Patients, scoped to a hospital. Never deleted: their status changes.
-- The search columns hold folded names (lower case, no accents); SQLite compares bytes, so a
-- prefix search is an index range scan.
CREATE TABLE patients (
    id              BLOB PRIMARY KEY,
    hospital_id     BLOB NOT NULL REFERENCES hospitals (id),
    mrn             TEXT NOT NULL,
    given_name      TEXT NOT NULL,
    family_name     TEXT NOT NULL,
    search_given    TEXT NOT NULL,
    search_family   TEXT NOT NULL,
    date_of_birth   TEXT NOT NULL,
    details         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'deceased')),
    version         INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (hospital_id, mrn)
);
CREATE INDEX patients_by_family ON patients (hospital_id, search_family, search_given);
CREATE INDEX patients_by_given ON patients (hospital_id, search_given);
CREATE INDEX patients_by_birth ON patients (hospital_id, date_of_birth);

-- Identifiers and member numbers, one row each, for lookups.
CREATE TABLE patient_keys (
    patient_id   BLOB NOT NULL REFERENCES patients (id),
    hospital_id  BLOB NOT NULL,
    kind         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (patient_id, kind, value)
);
CREATE INDEX patient_keys_lookup ON patient_keys (value, kind);

-- Every version of every patient record.
CREATE TABLE patient_history (
    patient_id  BLOB NOT NULL REFERENCES patients (id),
    version     INTEGER NOT NULL,
    changed_at  TEXT NOT NULL,
    changed_by  BLOB NOT NULL,
    request_id  TEXT,
    record      TEXT NOT NULL,
    PRIMARY KEY (patient_id, version)
);

-- Who read or wrote which patient record, append-only.
CREATE TABLE access_log (
    id           BLOB PRIMARY KEY,
    at           TEXT NOT NULL,
    user_id      BLOB NOT NULL,
    patient_id   BLOB NOT NULL,
    hospital_id  BLOB NOT NULL,
    action       TEXT NOT NULL,
    request_id   TEXT
);
CREATE INDEX access_log_by_patient ON access_log (patient_id, id);
CREATE INDEX access_log_by_user ON access_log (user_id, id);

CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END;
CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END;
CREATE TRIGGER patient_history_no_update BEFORE UPDATE ON patient_history
BEGIN SELECT RAISE(ABORT, 'patient_history is append-only'); END;
CREATE TRIGGER patient_history_no_delete BEFORE DELETE ON patient_history
BEGIN SELECT RAISE(ABORT, 'patient_history is append-only'); END;

