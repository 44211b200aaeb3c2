-- Idempotency-Keys are kept by the platform now, in idempotency_records, written in the
-- transaction of the request's effect (see medcov_store::keyed); the money tables' unique keys
-- stay as the last guard. This table held keys in a transaction of their own.
DROP TABLE idempotency_keys;
