CREATE TABLE medcov_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO medcov_meta (key, value) VALUES ('service', 'hospital');
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counters (name, value) VALUES ('visits', 0);
