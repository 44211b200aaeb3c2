//! The auth service's rules, free of I/O: what a username and a password must be, when an
//! account locks, and how refresh tokens are made and recognised.

pub mod credentials;
pub mod lockout;
pub mod sessions;
