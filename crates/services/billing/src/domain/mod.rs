//! The billing service's rules and records, free of I/O and of HTTP.
//!
//! - [`ledger`]: accounts and balanced journal entries for every money movement, and the
//!   reconciliation of the journal with the records.
//! - [`invoice`]: invoice statuses (the status ladder), lines split between insurer and
//!   patient, drafting, issuing, voiding, payments applied and refunds reopening.
//! - [`prices`]: price lists (periods of a code never overlap) and lines priced from them.
//! - [`premium`]: premiums, their payments, voiding an unpaid one.
//! - [`commission`]: agents' commissions, the clawback rule, payouts.
//! - [`refund`]: refunds of care and of premium payments: credit first, never more than is
//!   left, approved by someone other than who asked.
//! - [`reports`]: cash by day, receivables by age, statements.
//! - [`csv`]: reading and writing the CSV of price lists.

pub mod commission;
pub mod csv;
pub mod invoice;
pub mod ledger;
pub mod premium;
pub mod prices;
pub mod refund;
pub mod reports;
