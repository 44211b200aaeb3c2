-- Patients' accounts, opened by the patient-registration saga.
CREATE TABLE patient_accounts (
    patient_id  UUID PRIMARY KEY,
    hospital_id UUID NOT NULL,
    opened_at   TIMESTAMPTZ NOT NULL
);
