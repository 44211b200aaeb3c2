//! The hospital service's rules and records, free of I/O and of HTTP.
//!
//! - [`hospital`]: the tenant: code, timezone, currency, opening hours.
//! - [`patient`]: registration data and its validation, changes, medical record numbers, the
//!   search key, possible duplicates.
//! - [`access`]: the access log's entries.
//! - [`coverage`]: what insurers answered about member numbers.
//! - [`schedule`]: working hours, time zones, free slots.
//! - [`practitioner`]: who is booked, and their capacity.
//! - [`appointment`]: the status machine, slots, what a booking may take.
//! - [`encounter`]: diagnoses (ICD-10), services rendered, the catalog, what closing needs.
//! - [`preauth`]: the services insurers granted by pre-authorisations, and the check of care
//!   that cites one.

pub mod access;
pub mod appointment;
pub mod coverage;
pub mod encounter;
pub mod hospital;
pub mod patient;
pub mod practitioner;
pub mod preauth;
pub mod schedule;
