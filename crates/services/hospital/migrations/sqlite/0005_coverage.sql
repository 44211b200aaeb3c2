-- What the insurers answered about each member number on a patient's record (the
-- `insurance.member_verified.v1` event): covered, or why not. The desk reads it with the record.
CREATE TABLE patient_coverage (
    patient_id     BLOB NOT NULL REFERENCES patients (id),
    member_number  TEXT NOT NULL,
    status         TEXT NOT NULL,
    reason         TEXT,
    insurer_id     BLOB,
    policy_id      BLOB,
    checked_on     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (patient_id, member_number)
);

