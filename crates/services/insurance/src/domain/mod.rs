//! The insurance service's rules and records, free of I/O and of HTTP.
//!
//! - [`plan`]: the rules a plan version carries, with their validation.
//! - [`versions`]: plans and their versions, and where a new version goes.
//! - [`insurer`]: the tenants.
//! - [`policy`]: policy periods and members: lifecycle, cover on a date, premiums, numbers.
//! - [`enrolment`]: selling, renewing, and adding dependants.
//! - [`verification`]: what the insurer says of a member number a hospital holds.
//! - [`adjudication`]: the adjudication engine (claim + plan + accumulators → lines).
//! - [`claim`]: claims, their states, and how a claim meets the engine.
//! - [`ledger`]: the accumulator ledger's entries and what they add up to.
//! - [`eligibility`]: what a member is covered for, built on the same engine.
//! - [`preauth`]: pre-authorisations: the rules' automatic decisions and a claims officer's.

pub mod adjudication;
pub mod claim;
pub mod eligibility;
pub mod enrolment;
pub mod insurer;
pub mod ledger;
pub mod plan;
pub mod policy;
pub mod preauth;
pub mod verification;
pub mod versions;

#[cfg(test)]
mod golden;
