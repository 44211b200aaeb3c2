-- A database per service (MedCov would create them itself; made here so the role it connects
-- with needs no CREATEDB). Each service keeps its tables in a schema named after it.
CREATE DATABASE auth;
CREATE DATABASE hospital;
CREATE DATABASE insurance;
CREATE DATABASE billing;
