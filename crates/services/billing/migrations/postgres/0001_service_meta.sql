-- Which service owns this database. The runtime refuses to start a service on a database
-- that names another one, so two services never share tables by mistake.
CREATE TABLE medcov_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

INSERT INTO medcov_meta (key, value) VALUES ('service', 'billing');
