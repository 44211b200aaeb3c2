-- Events this service handled (a premium paid activates its policy), recorded with their
-- effect: a repeated delivery has no second effect.
CREATE TABLE inbox (
    consumer    TEXT NOT NULL,
    event_id    BLOB NOT NULL,
    handled_at  TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
