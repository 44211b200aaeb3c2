//! The inbox: a consumer records each event it handled (the platform's `inbox` table) with
//! [`record_once`] in the same transaction as its effect, and does nothing when the event was
//! already recorded, so a repeated delivery has no second effect.

pub use medcov_store::inbox::record_once;
