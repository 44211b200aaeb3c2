-- Every journal entry is in one currency: that of the invoice or premium it is about (a
-- commission payout's: that of the premiums whose commissions it pays). Reconciliation sums per
-- currency and never adds two.
ALTER TABLE journal_entries ADD COLUMN currency TEXT NOT NULL DEFAULT '';
UPDATE journal_entries SET currency = COALESCE(
    (SELECT i.currency FROM invoices i WHERE i.id = journal_entries.invoice_id),
    (SELECT p.currency FROM premiums p WHERE p.id = journal_entries.invoice_id),
    (SELECT pr.currency FROM commissions c JOIN premiums pr ON pr.id = c.premium_id
      WHERE c.payout_id = journal_entries.payment_id OR c.recovered_by = journal_entries.payment_id LIMIT 1),
    '');

-- A payout pays commissions of one currency, and says which.
ALTER TABLE commission_payouts ADD COLUMN currency TEXT NOT NULL DEFAULT '';
UPDATE commission_payouts SET currency = COALESCE(
    (SELECT pr.currency FROM commissions c JOIN premiums pr ON pr.id = c.premium_id
      WHERE c.payout_id = commission_payouts.id OR c.recovered_by = commission_payouts.id LIMIT 1),
    '');
