//! The hospital service's rules, free of I/O.
//!
//! - [`encounter`]: diagnoses (ICD-10), services rendered, what closing needs.
//! - [`hospital`]: the tenant: code, timezone, currency.
//! - [`patient`]: registration data and its validation, medical record numbers, the search key.
//! - [`schedule`]: working hours, time zones, free slots, the appointment status machine.

pub mod encounter;
pub mod hospital;
pub mod patient;
pub mod schedule;
