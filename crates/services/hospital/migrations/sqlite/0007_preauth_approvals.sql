-- The pre-authorisations insurers granted for care at a hospital (the
-- `insurance.preauth_decided.v1` event), one row per granted service: care that cites one is
-- checked against it when it is recorded.
CREATE TABLE preauth_approvals (
    preauth_id     BLOB NOT NULL,
    service_code   TEXT NOT NULL,
    hospital_id    BLOB NOT NULL,
    member_number  TEXT NOT NULL,
    valid_until    TEXT,
    PRIMARY KEY (preauth_id, service_code)
);
