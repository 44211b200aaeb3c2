//! The insurance service's rules, free of I/O.
//!
//! - [`plan`]: plan versions and the rules they carry, with their validation.
//! - [`policy`]: policy lifecycle, cover on a date, premiums, member numbers.
//! - [`adjudication`]: the adjudication engine (claim + plan + accumulators → lines).
//! - [`eligibility`]: what a member is covered for, built on the same engine.
//! - [`preauth`]: which pre-authorisation requests the rules decide alone.

pub mod adjudication;
pub mod eligibility;
pub mod plan;
pub mod policy;
pub mod preauth;

#[cfg(test)]
mod golden;
