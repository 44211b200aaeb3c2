-- Events this service handled (a premium paid activates its policy), recorded with their
-- effect: a repeated delivery has no second effect.
CREATE TABLE inbox (
    consumer    TEXT NOT NULL,
    event_id    UUID NOT NULL,
    handled_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
