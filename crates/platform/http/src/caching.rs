//! How a service marks an answer for the gateway's response cache (the gateway's
//! `api/cache.rs` says what it does with them). Return the headers with the answer:
//! `Ok((caching::cacheable(300, &[tag]), Json(value)))`.

use axum::http::{HeaderMap, HeaderValue, header};

/// The header naming the tags an answer depends on; invalidating one drops the answer.
pub const CACHE_TAG: &str = "cache-tag";

/// May be served from the gateway's cache for `max_age_s` seconds, until one of `tags` is
/// invalidated. Only for answers that depend on nothing but the caller's scope and roles and
/// the request, never for records whose reads are audited.
pub fn cacheable(max_age_s: u64, tags: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("private, max-age={max_age_s}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if let Ok(value) = HeaderValue::from_str(&tags.join(", ")) {
        headers.insert(CACHE_TAG, value);
    }
    headers
}

/// Never served from a cache while the service answers, but the last answer may stand in,
/// marked stale, for up to `seconds` when it cannot (RFC 5861 `stale-if-error`).
pub fn stale_if_error(seconds: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("private, no-cache, stale-if-error={seconds}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    headers
}
