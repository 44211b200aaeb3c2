-- Members linked to the hospital patients they are (the patient-registration saga links them
-- when it verifies a member number, and unlinks them when the saga is compensated).
CREATE TABLE member_links (
    member_id   UUID NOT NULL,
    patient_id  UUID NOT NULL,
    hospital_id UUID NOT NULL,
    linked_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (member_id, patient_id)
);
CREATE INDEX member_links_patient ON member_links (patient_id);
