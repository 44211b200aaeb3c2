-- An insurer's own dates (today, for approvals and reservations; the day a policy ends) are its
-- local dates, in its IANA time zone.
ALTER TABLE insurers ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
