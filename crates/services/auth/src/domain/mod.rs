//! The auth service's rules and records, free of I/O: what a username and a password must be,
//! when an account locks, how refresh tokens are made and recognised, and the account, token,
//! key and audit records themselves.

pub mod audit;
pub mod credentials;
pub mod lockout;
pub mod sessions;
pub mod user;
