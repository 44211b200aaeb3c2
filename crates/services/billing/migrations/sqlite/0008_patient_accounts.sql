-- Patients' accounts, opened by the patient-registration saga.
CREATE TABLE patient_accounts (
    patient_id  BLOB PRIMARY KEY,
    hospital_id BLOB NOT NULL,
    opened_at   TEXT NOT NULL
);
