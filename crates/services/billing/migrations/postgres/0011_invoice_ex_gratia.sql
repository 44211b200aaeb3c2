-- What of an invoice's insurer share the insurer pays ex gratia, beyond the plan's limits (the
-- sum of its lines' `ex_gratia`): journaled on its own account, never care revenue from
-- covered benefit.
ALTER TABLE invoices ADD COLUMN ex_gratia BIGINT NOT NULL DEFAULT 0;
