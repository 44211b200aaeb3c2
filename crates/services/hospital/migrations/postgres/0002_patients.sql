-- Hospitals: the tenants of the hospital side. `mrn_seq` numbers their patients.
CREATE TABLE hospitals (
    id          UUID PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    currency    TEXT NOT NULL,
    address     JSONB NOT NULL,
    active      BOOLEAN NOT NULL,
    mrn_seq     BIGINT NOT NULL DEFAULT 0,
    version     BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Patients, scoped to a hospital. Never deleted: their status changes.
-- The search columns hold folded names (lower case, no accents) in byte order, so a prefix
-- search is an index range scan.
CREATE TABLE patients (
    id              UUID PRIMARY KEY,
    hospital_id     UUID NOT NULL REFERENCES hospitals (id),
    mrn             TEXT NOT NULL,
    given_name      TEXT NOT NULL,
    family_name     TEXT NOT NULL,
    search_given    TEXT COLLATE "C" NOT NULL,
    search_family   TEXT COLLATE "C" NOT NULL,
    date_of_birth   DATE NOT NULL,
    details         JSONB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'deceased')),
    version         BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (hospital_id, mrn)
);
CREATE INDEX patients_by_family ON patients (hospital_id, search_family, search_given);
CREATE INDEX patients_by_given ON patients (hospital_id, search_given);
CREATE INDEX patients_by_birth ON patients (hospital_id, date_of_birth);

-- Identifiers and member numbers, one row each, for lookups.
CREATE TABLE patient_keys (
    patient_id   UUID NOT NULL REFERENCES patients (id),
    hospital_id  UUID NOT NULL,
    kind         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (patient_id, kind, value)
);
CREATE INDEX patient_keys_lookup ON patient_keys (value, kind);

-- Every version of every patient record.
CREATE TABLE patient_history (
    patient_id  UUID NOT NULL REFERENCES patients (id),
    version     BIGINT NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL,
    changed_by  UUID NOT NULL,
    request_id  TEXT,
    record      JSONB NOT NULL,
    PRIMARY KEY (patient_id, version)
);

-- Who read or wrote which patient record, append-only.
CREATE TABLE access_log (
    id           UUID PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL,
    user_id      UUID NOT NULL,
    patient_id   UUID NOT NULL,
    hospital_id  UUID NOT NULL,
    action       TEXT NOT NULL,
    request_id   TEXT
);
CREATE INDEX access_log_by_patient ON access_log (patient_id, id);
CREATE INDEX access_log_by_user ON access_log (user_id, id);

CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER patient_history_append_only BEFORE UPDATE OR DELETE ON patient_history
    FOR EACH ROW EXECUTE FUNCTION append_only();

