-- The dead letters of this service's consumer groups, kept here beside the inbox, and the
-- discard log: a bus that loses its data (Redis restarted empty) loses neither. The bus keeps a
-- copy of each dead letter, where operators list, retry and discard them; the consumer puts
-- back what the bus lost (see medcov_bus::dead). `epoch` is the stream's epoch on the bus when
-- the bus last had the copy.
CREATE TABLE dead_letters (
    stream      TEXT NOT NULL,
    grp         TEXT NOT NULL,
    event_id    BLOB NOT NULL,
    entry       TEXT NOT NULL,
    envelope    TEXT NOT NULL,
    error       TEXT NOT NULL,
    deliveries  INTEGER NOT NULL,
    died_at     TEXT NOT NULL,
    epoch       TEXT NOT NULL,
    PRIMARY KEY (stream, grp, event_id)
);

-- Dead letters an operator discarded, with the reason.
CREATE TABLE dead_letter_discards (
    id            BLOB PRIMARY KEY,
    stream        TEXT NOT NULL,
    grp           TEXT NOT NULL,
    event_id      BLOB NOT NULL,
    entry         TEXT NOT NULL,
    envelope      TEXT NOT NULL,
    error         TEXT NOT NULL,
    deliveries    INTEGER NOT NULL,
    died_at       TEXT NOT NULL,
    reason        TEXT NOT NULL,
    discarded_at  TEXT NOT NULL
);
CREATE INDEX dead_letter_discards_event ON dead_letter_discards (stream, grp, event_id);
