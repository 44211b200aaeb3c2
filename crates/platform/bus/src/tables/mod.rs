//! The platform tables the bus works on in each service's database (`sagas`,
//! `saga_transitions`, `outbox`, `dead_letters`, `dead_letter_discards`): their SQL is in
//! `sql/`, written once and compiled per backend by [`sqlite`] and [`postgres`].

pub(crate) mod postgres;
pub(crate) mod sqlite;
