//! What never changes once written, kept in process after its first read: the rules of a plan
//! version (a change is written as a new version) and an insurer's time zone (an insurer is
//! never updated). Nothing here is ever invalidated, so no instance can hold a stale copy, and
//! a lookup costs no decoding and no round trip; the hot paths (eligibility) read them here.

use std::sync::Arc;

use medcov_cache::memo::Memo;
use uuid::Uuid;

use crate::domain::plan::PlanRules;

/// The service's memos.
#[derive(Debug, Default)]
pub struct Known {
    /// A plan version's rules, by version id.
    pub rules: Memo<Uuid, Arc<PlanRules>>,
    /// An insurer's time zone, by insurer id.
    pub zones: Memo<Uuid, Arc<str>>,
    /// An insurer's time zone, by insurer code (the prefix of its member numbers).
    pub zones_by_code: Memo<String, Arc<str>>,
}
