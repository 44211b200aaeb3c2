CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counters (name, value) VALUES ('visits', 0);
CREATE TABLE labels (name TEXT PRIMARY KEY, kind TEXT NOT NULL);
