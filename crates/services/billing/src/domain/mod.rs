//! The billing service's rules, free of I/O.
//!
//! - [`ledger`]: accounts and balanced journal entries for every money movement.
//! - [`invoice`]: invoice statuses, splitting lines between insurer and patient, applying
//!   payments.

pub mod invoice;
pub mod ledger;
