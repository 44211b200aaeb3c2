-- A hospital's opening hours: a week of stretches in its time zone; none means always open.
ALTER TABLE hospitals ADD COLUMN opening_hours JSONB NOT NULL DEFAULT '[]';
