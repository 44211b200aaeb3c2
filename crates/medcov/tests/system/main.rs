//! End-to-end tests of the whole system: MedCov started in process on port 0 with either
//! backend, called over real HTTP; and the binary itself, started as processes.
//!
//! - `appointments`: practitioners, bookings, double-booking refusal under concurrency, the
//!   status machine, rescheduling and free slots.
//! - `auth_flow`: sign-in, tokens, sessions, lockout, key rotation and tenant scopes, through
//!   the gateway, on both backends.
//! - `insurance`: plans, policies, eligibility, pre-authorisation, claims adjudicated to the
//!   cent, reversal and review, tenant scope, concurrent claims against one ceiling.
//! - `events`: outbox to bus with correlation, the event log by tenant, dead letters, retry,
//!   discard and replay through the gateway.
//! - `faults_postgres`: PostgreSQL stopped and started again under load (a private cluster):
//!   only 503s, readiness within a second, no write lost or doubled under keyed retries; an
//!   instance SIGKILLed under keyed writes: no request failed, the restart serving in seconds.
//! - `keys_per_caller`: one clerk's Idempotency-Key never replays another clerk's payment.
//! - `keyed_answers`: keyed writes that read their answer back (payments, refunds, invoices,
//!   premiums, claims, pre-authorisations, users, hospitals, practitioners) replay it whole, and
//!   no key's record is ever committed before its answer.
//! - `mesh`: the gateway's calls to the services: a killed instance of two costs no request
//!   and rejoins when restarted; a failing upstream opens its circuit breaker; the policy file
//!   reloaded while running.
//! - `edge`: rate limits (one instance, and two sharing Redis), CORS, security headers.
//! - `serving`: every service is ready, answers problems for bad input, counts its traffic;
//!   run against both backends.
//! - `split`: the gateway and the services in separate runtimes, meeting over HTTP.
//! - `patients`: hospitals and patients: registration, duplicates, search, changes, history,
//!   access log, outbox, tenant scope and concurrency.
//! - `readiness`: PostgreSQL going away and coming back, seen through `/health/ready`.
//! - `faults_redis`: a Redis of the test's own killed under load (no latency, no failed
//!   request) and brought back empty (groups created again, lost events relayed again, one
//!   invoice per encounter); the `events` command's output and errors; PostgreSQL without
//!   Redis refusing to split the services that exchange events.
//! - `authorization`: every route × every kind of caller, against docs/authorization.md.
//! - `billing`: encounters invoiced through the bus (once), payments under Idempotency-Keys
//!   (also in parallel), credit, reconciliation, and the insurer's adjudication splitting an
//!   invoice.
//! - `revocation`: logout, reuse, deactivation, password and role changes end tokens everywhere.
//! - `secrets`: the data folder's modes and the signing keys sealed at rest.
//! - `browser`: Swagger UI in headless Chromium, under its Content-Security-Policy.
//! - `contract`: every OpenAPI document valid under an independent validator, one schema name
//!   one meaning in the merged document, the bearer requirement and problem answers declared.
//! - `binary`: the `medcov` binary: CLI, start-up, SIGTERM.
//! - `backup`: `medcov admin backup` under write load and `restore` into a new folder.
//! - `observability`: every `/metrics` through promtool in both modes, dashboards and alerts
//!   reading only what MedCov exposes, the alert rules' unit tests, and an encounter closing
//!   as one trace across the services, received by a collector of the test's own.
//! - `parity`: the PostgreSQL and SQLite migrations give the same schema.
//!
//! `support` starts MedCov and waits for it (the settle barrier for the event bus, a deadline
//! on a real condition for the rest); `world` makes hospitals, insurers, users, plans and
//! policies in a line each.

mod appointments;
mod auth_flow;
mod authorization;
mod backup;
mod billing;
mod binary;
mod browser;
mod contract;
mod edge;
mod events;
mod faults_postgres;
mod faults_redis;
mod insurance;
mod keyed_answers;
mod keys_per_caller;
mod mesh;
mod observability;
mod parity;
mod patients;
mod readiness;
mod revocation;
mod secrets;
mod serving;
mod split;
mod support;
mod world;
