//! The billing service's rules, free of I/O.
//!
//! - [`ledger`]: accounts and balanced journal entries for every money movement.
//! - [`csv`]: reading and writing the CSV of price lists.
//! - [`invoice`]: invoice statuses, splitting lines between insurer and patient, applying
//!   payments.

pub mod csv;
pub mod invoice;
pub mod ledger;
