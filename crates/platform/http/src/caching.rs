//! Response caching, for answers a service marks as cacheable, and the last good answer as a
//! fallback when a service cannot answer. One implementation, used twice: by the gateway for
//! what it forwards ([`Responses::answer`]), and by every service's router for its own answers
//! ([`ResponseCache`], which the kit puts around the service's routes), so a GET straight on a
//! service's port is answered from the cache as it is at the gateway.
//!
//! A service opts in per response:
//!
//! - `Cache-Control: max-age=<s>` with `Cache-Tag: <tag>, <tag>` on a 200 to a GET
//!   ([`cacheable`]): later identical GETs are served from the cache for up to `<s>` seconds,
//!   until the service invalidates one of the tags (every service and the gateway share the
//!   process's cache, or Redis). An answer is stored only once its tags are known *before* the
//!   call (from an earlier answer), so a write racing the call can never leave a stale entry:
//!   the first call of a URL only learns its tags. GETs are looked up only under a part of the
//!   API (the first path segment) that has marked an answer before, so unmarked routes cost no
//!   cache round trip.
//! - The same on a 200 to a POST that only asks a question (eligibility: [`cacheable_query`]),
//!   at the gateway: later POSTs of the same body by the same audience are served from the
//!   cache the same way. Its tags are learnt in the gateway's own memory only, never written to
//!   the shared cache, so questions that are never asked twice write nothing there.
//! - `Cache-Control: stale-if-error=<s>` (RFC 5861) on a 200 to a GET or a POST
//!   ([`stale_if_error`]): the gateway keeps the answer for `<s>` seconds, and serves it,
//!   marked `Warning: 110 - "Response is Stale"`, when the service is unreachable, times out,
//!   answers 502, 503 or 504, or its circuit breaker is open. A POST is matched on its body
//!   too. (A service has no one to stand in for it: its own router keeps only fresh GETs.)
//!   These last answers are kept in the gateway's own memory, bounded ([`LAST_ANSWERS_BYTES`]),
//!   never in Redis: one per distinct question for up to a day would grow Redis without
//!   bound under varied questions, and cost a write to Redis per answer.
//!
//! Identical cacheable GETs in flight at once (same audience, URL and tag versions) share one
//! call: the first goes on, the others wait for its answer and get a copy, marked
//! `X-Cache: SHARED`. So an entry expiring under heavy load costs one load, not one per
//! waiting client. A request that arrives after a write has other tag versions, so it never
//! shares an answer read before the write. If the first request is abandoned (its client went
//! away), the waiting ones make the call themselves.
//!
//! Entries are keyed by the caller's audience: its tenant scope and roles (and its own id for
//! `own`-scoped members; `medcov_security::Principal::audience`), so one tenant never receives
//! another's answer, nor a role one it may not see. Whoever answers from the cache has
//! verified the caller's token first (signature, expiry, revocation); the role and scope checks
//! the handler would make depend on nothing but the audience, and gave a 200 to this audience
//! for this request. Answers carry `X-Cache: HIT`, `MISS`, `SHARED` or `STALE`; hits carry
//! `Age`. Services mark only answers that depend on nothing but the audience and the request,
//! and never patient records (whose every read is audited by the service).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use medcov_cache::{Bytes, Cache};

use crate::problem::ApiError;

/// The header naming the tags an answer depends on; invalidating one drops the answer.
pub const CACHE_TAG: &str = "cache-tag";
/// Says where an answer came from: `HIT`, `MISS`, `SHARED` or `STALE`.
pub const X_CACHE: &str = "x-cache";
/// The largest answer kept (by its known length); larger ones, or ones of unknown length,
/// pass through uncached.
const MAX_KEPT: usize = 1024 * 1024;
/// How much of the last good answers (`stale-if-error`) a gateway keeps in its memory, at most;
/// the least useful go first.
pub const LAST_ANSWERS_BYTES: u64 = 16 * 1024 * 1024;
/// How long a last good answer is kept, at most, whatever the service allowed.
const LAST_ANSWERS_TTL: Duration = Duration::from_secs(24 * 3600);
/// How many URLs' tags a process remembers (see [`Marked`]).
const TAG_HINTS: u64 = 10_000;
/// How long a remembered URL's tags are trusted before they are read from the cache again.
const TAG_HINT_TTL: Duration = Duration::from_secs(600);

/// May be served from a cache (the service's own and the gateway's) for `max_age_s` seconds,
/// until one of `tags` is invalidated. Only for answers that depend on nothing but the caller's
/// scope and roles and the request, never for records whose reads are audited. Return the
/// headers with the answer: `Ok((caching::cacheable(300, &[tag]), Json(value)))`.
pub fn cacheable(max_age_s: u64, tags: &[String]) -> HeaderMap {
    tagged(&format!("private, max-age={max_age_s}"), tags)
}

/// `Cache-Control: <control>` and `Cache-Tag: <tags>`.
fn tagged(control: &str, tags: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if let Ok(value) = HeaderValue::from_str(&tags.join(", ")) {
        headers.insert(CACHE_TAG, value);
    }
    headers
}

/// For the answer to a POST that only asks (it changes nothing, and depends on nothing but the
/// caller's scope and roles, the body, and `tags`): served from the gateway's cache to the same
/// question for `max_age_s` seconds until a tag is invalidated, as [`cacheable`] does for a GET,
/// and standing in, marked stale, for up to `stale_s` seconds when the service cannot answer.
pub fn cacheable_query(max_age_s: u64, tags: &[String], stale_s: u64) -> HeaderMap {
    tagged(&format!("private, max-age={max_age_s}, stale-if-error={stale_s}"), tags)
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

/// What a service said about caching its answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Directives {
    pub max_age: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub no_store: bool,
    pub tags: Vec<String>,
}

impl Directives {
    pub fn of(headers: &HeaderMap) -> Directives {
        let mut out = Directives::default();
        for value in headers.get_all(header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()) {
            for directive in value.split(',').map(str::trim) {
                let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
                match name.to_ascii_lowercase().as_str() {
                    "max-age" => out.max_age = arg.trim_matches('"').parse().ok(),
                    "stale-if-error" => out.stale_if_error = arg.trim_matches('"').parse().ok(),
                    "no-store" => out.no_store = true,
                    _ => {}
                }
            }
        }
        out.tags = headers
            .get_all(CACHE_TAG)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        out
    }
}

/// Marks the second layout of a stored answer, which also keeps the route template the service
/// matched (for the metrics). The first layout starts with the status, whose first byte is
/// never 0xFF or 0xFE, so entries stored by an older gateway still read.
const WITH_ROUTE: u8 = 0xFF;
/// Marks the third layout: any number of named headers (so `ETag` and `Cache-Tag` come back on
/// a hit too: a client still gets the version to send as `If-Match`, and a gateway in front of
/// a service still learns the tags of an answer the service gave from its cache).
const NAMED: u8 = 0xFE;

/// The headers a stored answer keeps.
const KEPT: [&str; 5] = ["content-type", "cache-control", crate::observe::ROUTE_HEADER, "etag", CACHE_TAG];

/// A stored answer: status, when it was stored, its kept headers, body.
fn encode(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(64 + body.len());
    out.push(NAMED);
    out.extend_from_slice(&status.as_u16().to_be_bytes());
    out.extend_from_slice(&now_secs().to_be_bytes());
    let kept: Vec<(&str, &[u8])> = KEPT
        .iter()
        .filter_map(|name| Some((*name, headers.get(*name)?.as_bytes())))
        .filter(|(_, value)| value.len() <= usize::from(u16::MAX))
        .collect();
    out.push(u8::try_from(kept.len()).unwrap_or(0));
    for (name, value) in kept {
        out.push(u8::try_from(name.len()).unwrap_or(0));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(body);
    Bytes::from(out)
}

fn decode(bytes: &[u8]) -> Option<(StatusCode, u64, HeaderMap, Bytes)> {
    if bytes.first() == Some(&NAMED) {
        let status = StatusCode::from_u16(u16::from_be_bytes(bytes.get(1..3)?.try_into().ok()?)).ok()?;
        let stored = u64::from_be_bytes(bytes.get(3..11)?.try_into().ok()?);
        let count = *bytes.get(11)?;
        let mut at = 12;
        let mut headers = HeaderMap::new();
        for _ in 0..count {
            let name_len = usize::from(*bytes.get(at)?);
            let name = HeaderName::from_bytes(bytes.get(at + 1..at + 1 + name_len)?).ok()?;
            at += 1 + name_len;
            let len = usize::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
            headers.insert(name, HeaderValue::from_bytes(bytes.get(at + 2..at + 2 + len)?).ok()?);
            at += 2 + len;
        }
        return Some((status, stored, headers, Bytes::copy_from_slice(bytes.get(at..)?)));
    }
    let (bytes, names): (&[u8], &[HeaderName]) = if bytes.first() == Some(&WITH_ROUTE) {
        (
            &bytes[1..],
            &[header::CONTENT_TYPE, header::CACHE_CONTROL, HeaderName::from_static(crate::observe::ROUTE_HEADER)],
        )
    } else {
        (bytes, &[header::CONTENT_TYPE, header::CACHE_CONTROL])
    };
    let status = StatusCode::from_u16(u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?)).ok()?;
    let stored = u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?);
    let mut at = 10;
    let mut headers = HeaderMap::new();
    for name in names {
        let len = usize::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        let value = bytes.get(at + 2..at + 2 + len)?;
        if !value.is_empty() {
            headers.insert(name.clone(), HeaderValue::from_bytes(value).ok()?);
        }
        at += 2 + len;
    }
    Some((status, stored, headers, Bytes::copy_from_slice(bytes.get(at..)?)))
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn respond(status: StatusCode, mut headers: HeaderMap, body: Bytes, how: &'static str) -> Response {
    headers.insert(X_CACHE, HeaderValue::from_static(how));
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// What a process has learnt about cacheable answers: the parts of the API (a namespace, the
/// method and the first segment of its paths) that have answered a request marked cacheable at
/// least once (only their requests are looked up in the cache, so every other one costs no
/// cache round trip), and the tags each cacheable URL (or question: a POST's body) answered
/// with, so a lookup need not read them from the cache first (a hint only: an entry is kept
/// under its tags, so a wrong hint finds nothing). A question's tags are known here only.
pub struct Marked {
    areas: std::sync::RwLock<std::collections::HashSet<String>>,
    tags: moka::sync::Cache<String, Arc<Vec<String>>>,
}

impl Default for Marked {
    fn default() -> Self {
        Marked {
            areas: std::sync::RwLock::default(),
            tags: moka::sync::Cache::builder().max_capacity(TAG_HINTS).time_to_live(TAG_HINT_TTL).build(),
        }
    }
}

impl std::fmt::Debug for Marked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marked").finish_non_exhaustive()
    }
}

impl Marked {
    fn contains(&self, area: &str) -> bool {
        self.areas.read().unwrap_or_else(PoisonError::into_inner).contains(area)
    }

    fn insert(&self, area: &str) {
        if !self.contains(area) {
            self.areas.write().unwrap_or_else(PoisonError::into_inner).insert(area.to_owned());
        }
    }
}

/// One request as the cache sees it.
pub struct Lookup {
    /// `namespace/method/segment`, for [`Marked`].
    area: String,
    /// The key of the request, without the tags (see [`Lookup::fresh_key`]).
    base: String,
    tags_key: String,
    last_key: String,
    /// Tags and their versions noted before the call, when the URL's tags are known.
    noted: Option<(Arc<Vec<String>>, Vec<u64>)>,
    method: Method,
    /// A POST with its body in the key: its tags are learnt in process only.
    question: bool,
}

impl Lookup {
    /// Keys for `method target` (a POST's body included) as `audience` asks it, in
    /// `namespace` (the gateway's `gateway:<service>`, or a service's own name). Only a GET, or
    /// a POST given with its body, is ever answered fresh from the cache.
    pub fn new(method: &Method, namespace: &str, target: &str, audience: &str, body: Option<&[u8]>) -> Lookup {
        let mut base = format!("{namespace}:{audience}:{method}:{target}");
        if let Some(body) = body {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
            base.push(':');
            base.extend(digest.as_ref().iter().map(|b| format!("{b:02x}")));
        }
        let segment = target.trim_start_matches('/').split(['/', '?']).next().unwrap_or("");
        Lookup {
            area: format!("{namespace}/{method}/{segment}"),
            question: *method == Method::POST && body.is_some(),
            tags_key: format!("{base}:tags"),
            last_key: format!("{base}:last"),
            base,
            noted: None,
            method: method.clone(),
        }
    }

    /// Where the fresh answer stored under `tags` is: the tags are part of the key, so an
    /// outdated idea of a URL's tags finds nothing rather than an answer of other tags.
    fn fresh_key(&self, tags: &[String]) -> String {
        format!("{}:fresh:{}", self.base, tags.join(","))
    }

    /// Whether the answer may be fresh from the cache: a GET, or a question.
    fn fresh_kind(&self) -> bool {
        self.method == Method::GET || self.question
    }

    /// The URL's tags: remembered in process, else as the cache has them (a question's only in
    /// process).
    async fn tags(&self, cache: &dyn Cache, marked: &Marked) -> Option<Arc<Vec<String>>> {
        if let Some(tags) = marked.tags.get(&self.tags_key) {
            return Some(tags);
        }
        if self.question {
            return None;
        }
        let tags: Vec<String> = cache.get(&self.tags_key, &[]).await.and_then(|b| serde_json::from_slice(&b).ok())?;
        let tags = Arc::new(tags);
        marked.tags.insert(self.tags_key.clone(), tags.clone());
        Some(tags)
    }

    /// A fresh answer from the cache, or `None` (and the tag versions noted for storing).
    pub async fn fresh(&mut self, cache: &dyn Cache, marked: &Marked) -> Option<Response> {
        if !self.fresh_kind() || !marked.contains(&self.area) {
            return None;
        }
        let tags = self.tags(cache, marked).await?;
        let versions = cache.versions(&tags).await;
        if let Some(bytes) = cache.get(&self.fresh_key(&tags), &versions).await
            && let Some((status, stored, mut headers, body)) = decode(&bytes)
        {
            if let Ok(age) = HeaderValue::from_str(&now_secs().saturating_sub(stored).to_string()) {
                headers.insert(header::AGE, age);
            }
            return Some(respond(status, headers, body, "HIT"));
        }
        self.noted = Some((tags, versions));
        None
    }

    /// The key under which identical requests in flight share one call: only for GETs and
    /// questions whose answers are cached (the tags are known), with the tag versions seen
    /// before the call.
    pub fn flight_key(&self) -> Option<String> {
        let (tags, versions) = self.noted.as_ref()?;
        let versions: Vec<String> = versions.iter().map(u64::to_string).collect();
        Some(format!("{}@{}", self.fresh_key(tags), versions.join(",")))
    }

    /// Keeps what the service allowed of its answer; returns the answer for the client.
    /// `last` keeps the last good answers; without it (a service's own cache) none are kept.
    pub async fn store(
        &self,
        cache: &dyn Cache,
        last: Option<&dyn Cache>,
        marked: &Marked,
        response: Response,
        role: Role,
    ) -> Response {
        let mut directives = Directives::of(response.headers());
        if last.is_none() {
            directives.stale_if_error = None;
        }
        let (mut parts, body) = response.into_parts();
        if role.strips_tags {
            parts.headers.remove(CACHE_TAG);
        }
        let worth = parts.status == StatusCode::OK
            && !directives.no_store
            && (directives.stale_if_error.is_some_and(|s| s > 0)
                || (self.fresh_kind() && directives.max_age.is_some_and(|s| s > 0) && !directives.tags.is_empty()));
        // An answer too large to keep passes through untouched.
        let length = axum::body::HttpBody::size_hint(&body)
            .exact()
            .and_then(|l| usize::try_from(l).ok())
            .or_else(|| parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok()));
        if !worth || length.is_none_or(|l| l > MAX_KEPT) {
            return Response::from_parts(parts, body);
        }
        let Ok(bytes) = axum::body::to_bytes(body, MAX_KEPT).await else {
            return problem_too_large();
        };
        let stored = encode(parts.status, &parts.headers, &bytes);
        if let Some(seconds) = directives.stale_if_error.filter(|s| *s > 0)
            && let Some(last) = last
        {
            last.put(&self.last_key, &[], stored.clone(), Duration::from_secs(seconds)).await;
        }
        if self.fresh_kind()
            && let Some(seconds) = directives.max_age.filter(|s| *s > 0)
            && !directives.tags.is_empty()
        {
            marked.insert(&self.area);
            match &self.noted {
                // Versions noted before the call under the same tags: safe to store.
                Some((tags, versions)) if **tags == directives.tags => {
                    cache.put(&self.fresh_key(tags), versions, stored, Duration::from_secs(seconds)).await;
                }
                // First sight, or the tags changed: learn them; the next call stores. A
                // question's stay in process: one never asked again writes nothing shared.
                _ => {
                    if !self.question
                        && let Ok(json) = serde_json::to_vec(&directives.tags)
                    {
                        cache.put(&self.tags_key, &[], Bytes::from(json), Duration::from_secs(seconds.max(3600))).await;
                    }
                    marked.tags.insert(self.tags_key.clone(), Arc::new(directives.tags));
                }
            }
        }
        parts.headers.insert(X_CACHE, HeaderValue::from_static("MISS"));
        Response::from_parts(parts, Body::from(bytes))
    }

    /// The last good answer, marked stale, when the service allowed it and still within its time.
    pub async fn stale(&self, last: &dyn Cache) -> Option<Response> {
        let bytes = last.get(&self.last_key, &[]).await?;
        let (status, stored, mut headers, body) = decode(&bytes)?;
        headers.insert(header::WARNING, HeaderValue::from_static("110 - \"Response is Stale\""));
        if let Ok(age) = HeaderValue::from_str(&now_secs().saturating_sub(stored).to_string()) {
            headers.insert(header::AGE, age);
        }
        Some(respond(status, headers, body, "STALE"))
    }
}

/// An answer given to every request of a flight.
#[derive(Debug, Clone)]
pub struct Shared {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Shared {
    /// Reads `response` whole to share it (and gives it back, rebuilt); `None` for an answer
    /// larger than the cache keeps, which is given back streaming and not shared.
    pub async fn of(response: Response) -> (Response, Option<Shared>) {
        let length = axum::body::HttpBody::size_hint(response.body()).exact();
        if length.is_none_or(|l| l > MAX_KEPT as u64) {
            return (response, None);
        }
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, MAX_KEPT).await {
            Ok(bytes) => {
                let shared = Shared { status: parts.status, headers: parts.headers.clone(), body: bytes.clone() };
                (Response::from_parts(parts, Body::from(bytes)), Some(shared))
            }
            Err(_) => (problem_too_large(), None),
        }
    }

    fn response(self) -> Response {
        respond(self.status, self.headers, self.body, "SHARED")
    }
}

/// The flights in progress: for each key, what its waiting requests will receive.
#[derive(Debug, Default)]
pub struct Flights(Mutex<HashMap<String, tokio::sync::watch::Receiver<Option<Shared>>>>);

/// A request's place in a flight.
pub enum Flight {
    /// First: it makes the call and hands its answer to the others.
    Leader(Leader),
    /// Another request is making the call: wait for its answer.
    Follower(tokio::sync::watch::Receiver<Option<Shared>>),
}

impl Flights {
    pub fn join(self: &Arc<Self>, key: String) -> Flight {
        let mut flights = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waiting) = flights.get(&key) {
            return Flight::Follower(waiting.clone());
        }
        let (answer, waiting) = tokio::sync::watch::channel(None);
        flights.insert(key.clone(), waiting);
        Flight::Leader(Leader { flights: self.clone(), key, answer })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// The first request of a flight. Dropping it (answered or abandoned) ends the flight; a
/// request that arrives later starts a new one.
pub struct Leader {
    flights: Arc<Flights>,
    key: String,
    answer: tokio::sync::watch::Sender<Option<Shared>>,
}

impl Leader {
    pub fn share(self, answer: Shared) {
        let _ = self.answer.send(Some(answer));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.flights.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
    }
}

/// The leader's answer, or `None` when the leader gave up without one (the caller then makes
/// the call itself).
pub async fn wait(mut waiting: tokio::sync::watch::Receiver<Option<Shared>>) -> Option<Response> {
    let shared = waiting.wait_for(Option::is_some).await.ok()?.clone()?;
    Some(shared.response())
}

fn problem_too_large() -> Response {
    ApiError::BadGateway("the service's answer is larger than the cache accepts".into()).into_response()
}

/// Whether an answer or error means the service could not answer (the stale answer may do).
pub fn unavailable(status: StatusCode) -> bool {
    matches!(status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT)
}

/// Counters of one response cache, by result (`hit`, `miss`, `shared`, `stale`).
#[derive(Clone)]
struct Counted {
    hit: metrics::Counter,
    miss: metrics::Counter,
    shared: metrics::Counter,
    stale: metrics::Counter,
}

/// Where a response cache stands.
#[derive(Debug, Clone, Copy, Default)]
pub struct Role {
    /// Takes the answers' `Cache-Tag` off (at the gateway: clients need not see it; a gateway
    /// in front of a service does).
    pub strips_tags: bool,
    /// Keeps last good answers (`stale-if-error`) to stand in for a service that cannot
    /// answer (the gateway; a service has no one to stand in for it).
    pub stands_in: bool,
}

impl Role {
    /// In front of services: the gateway.
    pub const GATEWAY: Role = Role { strips_tags: true, stands_in: true };
    /// Around a service's own routes.
    pub const SERVICE: Role = Role { strips_tags: false, stands_in: false };
}

/// A response cache: the shared cache, what this process learnt about cacheable answers, the
/// flights in progress, and the counters.
#[derive(Clone)]
pub struct Responses {
    pub cache: Arc<dyn Cache>,
    /// The last good answers, in process (only where the role stands in).
    last: Option<Arc<dyn Cache>>,
    marked: Arc<Marked>,
    flights: Arc<Flights>,
    counted: Counted,
    role: Role,
}

impl Responses {
    /// Counts its answers in `counter{result}` (made to exist at 0, and described) of `metrics`.
    pub fn new(
        cache: Arc<dyn Cache>,
        role: Role,
        metrics: &crate::Metrics,
        counter: &'static str,
        help: &'static str,
    ) -> Responses {
        metrics.describe_counter(counter, help);
        let results: &[&str] =
            if role.stands_in { &["hit", "miss", "shared", "stale"] } else { &["hit", "miss", "shared"] };
        for result in results {
            metrics.ensure_counter(counter, &[("result", result)]);
        }
        let count = |result| metrics.counter(counter, &[("result", result)]);
        let last = role
            .stands_in
            .then(|| Arc::new(medcov_cache::MemoryCache::new(LAST_ANSWERS_BYTES, LAST_ANSWERS_TTL)) as Arc<dyn Cache>);
        Responses {
            cache,
            last,
            marked: Arc::default(),
            flights: Arc::default(),
            counted: Counted { hit: count("hit"), miss: count("miss"), shared: count("shared"), stale: count("stale") },
            role,
        }
    }

    /// Answers `lookup` from the cache, or from `call` (shared with identical requests in
    /// flight, and stored as the answer allows); the last good answer stands in for a call
    /// that finds the service unable to answer, when it allowed that.
    pub async fn answer<F>(&self, mut lookup: Lookup, call: F) -> Result<Response, ApiError>
    where
        F: std::future::Future<Output = Result<Response, ApiError>>,
    {
        let cache = self.cache.as_ref();
        if let Some(hit) = lookup.fresh(cache, &self.marked).await {
            self.counted.hit.increment(1);
            return Ok(hit);
        }
        let mut leader = None;
        match lookup.flight_key().map(|key| self.flights.join(key)) {
            Some(Flight::Follower(waiting)) => {
                if let Some(shared) = wait(waiting).await {
                    self.counted.shared.increment(1);
                    return Ok(shared);
                }
                // The first request gave up: call for ourselves.
            }
            Some(Flight::Leader(first)) => {
                // A flight that ended between our look in the cache and now may have stored
                // the answer: look again before calling.
                if let Some(hit) = lookup.fresh(cache, &self.marked).await {
                    self.counted.hit.increment(1);
                    let (hit, shared) = Shared::of(hit).await;
                    if let Some(shared) = shared {
                        first.share(shared);
                    }
                    return Ok(hit);
                }
                leader = Some(first);
            }
            None => {}
        }
        let mut response = match call.await {
            Ok(answer) if unavailable(answer.status()) && self.last.is_some() => match self.stale(&lookup).await {
                Some(stale) => {
                    self.counted.stale.increment(1);
                    stale
                }
                None => answer,
            },
            Ok(answer) => {
                let answer = lookup.store(cache, self.last.as_deref(), &self.marked, answer, self.role).await;
                if answer.headers().contains_key(X_CACHE) {
                    self.counted.miss.increment(1);
                }
                answer
            }
            Err(error @ (ApiError::BadGateway(_) | ApiError::Unavailable(_) | ApiError::GatewayTimeout(_)))
                if self.last.is_some() =>
            {
                match self.stale(&lookup).await {
                    Some(stale) => {
                        self.counted.stale.increment(1);
                        stale
                    }
                    None => return Err(error),
                }
            }
            Err(error) => return Err(error),
        };
        if let Some(leader) = leader {
            let (back, shared) = Shared::of(response).await;
            response = back;
            if let Some(shared) = shared {
                leader.share(shared);
            }
        }
        Ok(response)
    }
}

impl Responses {
    /// The last good answer to `lookup`, when one is kept.
    async fn stale(&self, lookup: &Lookup) -> Option<Response> {
        lookup.stale(self.last.as_deref()?).await
    }
}

/// Who is asking, as far as answers can differ. Implemented by the token verifier
/// (`medcov_security`), which this kit cannot name.
pub trait Audiences: Send + Sync {
    /// Verifies the request's credentials and, when they are valid, leaves the verified caller
    /// in `parts`' extensions (so the handler does not verify again) and returns its audience:
    /// its tenant scope and roles. `None` when there are none or they are invalid: the request
    /// then goes on uncached, and its handler refuses it.
    fn audience<'a>(&'a self, parts: &'a mut Parts) -> BoxFuture<'a, Option<String>>;
}

/// A service's own response cache, around its routes (see the module's header): GETs only,
/// since a service has no one to stand in for it.
#[derive(Clone)]
pub struct ResponseCache {
    /// The service's name: its entries' namespace.
    pub namespace: &'static str,
    pub responses: Responses,
    pub audiences: Arc<dyn Audiences>,
}

/// What a service's response cache counts.
pub const RESPONSE_CACHE_TOTAL: &str = "http_response_cache_total";

impl ResponseCache {
    pub fn new(
        namespace: &'static str,
        cache: Arc<dyn Cache>,
        audiences: Arc<dyn Audiences>,
        metrics: &crate::Metrics,
    ) -> ResponseCache {
        let responses = Responses::new(
            cache,
            Role::SERVICE,
            metrics,
            RESPONSE_CACHE_TOTAL,
            "GETs the service answered from its own response cache (hit), stored in it (miss), or shared between identical requests in flight (shared).",
        );
        ResponseCache { namespace, responses, audiences }
    }
}

/// The route layer of a service's response cache.
pub async fn serve_cached(State(state): State<Arc<ResponseCache>>, request: Request, next: Next) -> Response {
    if request.method() != Method::GET || !request.headers().contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Some(audience) = state.audiences.audience(&mut parts).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let lookup = Lookup::new(&parts.method, state.namespace, target, &audience, None);
    let request = Request::from_parts(parts, body);
    state
        .responses
        .answer(lookup, async { Ok(next.run(request).await) })
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_read_from_cache_control_and_cache_tag() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=60, stale-if-error=\"300\""));
        headers.append(CACHE_TAG, HeaderValue::from_static("hospital:1, hospitals"));
        headers.append(CACHE_TAG, HeaderValue::from_static("x"));
        assert_eq!(
            Directives::of(&headers),
            Directives {
                max_age: Some(60),
                stale_if_error: Some(300),
                no_store: false,
                tags: vec!["hospital:1".into(), "hospitals".into(), "x".into()]
            }
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        assert!(Directives::of(&headers).no_store);
    }

    #[test]
    fn stored_answers_come_back_whole() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let bytes = encode(StatusCode::OK, &headers, b"{\"a\":1}");
        let (status, stored, back, body) = decode(&bytes).expect("decodes");
        assert_eq!(
            (status, &back[header::CONTENT_TYPE], &body[..]),
            (StatusCode::OK, &headers[header::CONTENT_TYPE], &b"{\"a\":1}"[..])
        );
        assert!(stored > 0);
        assert_eq!(decode(&bytes[..5]), None);
        // The route template the service matched, the version and the tags are kept.
        headers.insert(crate::observe::ROUTE_HEADER, HeaderValue::from_static("/hospitals/{id}"));
        headers.insert(header::ETAG, HeaderValue::from_static("\"3\""));
        headers.insert(CACHE_TAG, HeaderValue::from_static("hospital:directory"));
        headers.insert(header::DATE, HeaderValue::from_static("not kept"));
        let (_, _, back, body) = decode(&encode(StatusCode::OK, &headers, b"{}")).expect("decodes");
        assert_eq!(back[crate::observe::ROUTE_HEADER], "/hospitals/{id}");
        assert_eq!((&back[header::ETAG], &back[CACHE_TAG]), (&headers[header::ETAG], &headers[CACHE_TAG]));
        assert!(!back.contains_key(header::DATE));
        assert_eq!(&body[..], b"{}");
        // Entries an older gateway stored (with and without the route) still read.
        let mut old = Vec::new();
        old.extend_from_slice(&200u16.to_be_bytes());
        old.extend_from_slice(&7u64.to_be_bytes());
        old.extend_from_slice(&0u16.to_be_bytes());
        old.extend_from_slice(&0u16.to_be_bytes());
        old.extend_from_slice(b"[1]");
        let (status, stored, back, body) = decode(&old).expect("decodes");
        assert_eq!((status, stored, back.len(), &body[..]), (StatusCode::OK, 7, 0, &b"[1]"[..]));
        let mut routed = vec![WITH_ROUTE];
        routed.extend_from_slice(&old[..14]);
        routed.extend_from_slice(&3u16.to_be_bytes());
        routed.extend_from_slice(b"/hi");
        routed.extend_from_slice(b"[2]");
        let (_, stored, back, body) = decode(&routed).expect("decodes");
        assert_eq!(
            (stored, back[crate::observe::ROUTE_HEADER].to_str().ok(), &body[..]),
            (7, Some("/hi"), &b"[2]"[..])
        );
    }

    #[tokio::test]
    async fn a_flight_gives_its_answer_to_every_waiting_request_and_ends_with_its_leader() {
        let flights = Arc::new(Flights::default());
        let Flight::Leader(leader) = flights.join("k@1".into()) else { panic!("the first leads") };
        let Flight::Follower(first) = flights.join("k@1".into()) else { panic!("the second waits") };
        let Flight::Follower(second) = flights.join("k@1".into()) else { panic!("the third waits") };
        // Other tag versions (a write happened): another flight.
        let Flight::Leader(other) = flights.join("k@2".into()) else { panic!("another key leads") };
        drop(other);
        let waiting = tokio::spawn(async move { (wait(first).await, wait(second).await) });
        let answer = Response::new(Body::from("{\"a\":1}"));
        let (back, shared) = Shared::of(answer).await;
        assert_eq!(axum::body::to_bytes(back.into_body(), 100).await.unwrap(), &b"{\"a\":1}"[..]);
        leader.share(shared.expect("a small answer is shared"));
        let (first, second) = waiting.await.unwrap();
        for response in [first.expect("an answer"), second.expect("an answer")] {
            assert_eq!(response.headers()[X_CACHE], "SHARED");
            assert_eq!(axum::body::to_bytes(response.into_body(), 100).await.unwrap(), &b"{\"a\":1}"[..]);
        }
        assert_eq!(flights.len(), 0, "the flight ended with its leader");

        // An abandoned leader: the waiting request is told to ask for itself.
        let Flight::Leader(leader) = flights.join("k@1".into()) else { panic!("a new flight") };
        let Flight::Follower(waiting) = flights.join("k@1".into()) else { panic!("waits") };
        drop(leader);
        assert!(wait(waiting).await.is_none());
        assert_eq!(flights.len(), 0);
    }

    /// Answers `lookup` from `responses`, or from a call whose answer is `{"n": <calls so far>}`
    /// marked with `headers`; returns `X-Cache` and the body.
    async fn ask_numbered(
        responses: &Responses,
        lookup: Lookup,
        calls: &std::sync::atomic::AtomicUsize,
        headers: HeaderMap,
    ) -> (Option<String>, Bytes) {
        let answer = responses
            .answer(lookup, async {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut response = Response::new(Body::from(format!("{{\"n\":{n}}}")));
                *response.headers_mut() = headers;
                Ok(response)
            })
            .await
            .unwrap();
        let how = answer.headers().get(X_CACHE).map(|v| v.to_str().unwrap().to_owned());
        (how, axum::body::to_bytes(answer.into_body(), 100).await.unwrap())
    }

    /// The whole cycle on an in-process cache: learn the tags, store, hit, invalidate, per
    /// audience.
    #[tokio::test]
    async fn answers_are_stored_after_their_tags_are_known_and_dropped_by_a_write() {
        let cache: Arc<dyn Cache> = Arc::new(medcov_cache::MemoryCache::new(100, Duration::from_secs(60)));
        let responses =
            Responses::new(cache.clone(), Role::SERVICE, &crate::Metrics::new("test"), "test_cache_total", "test");
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let ask = async |audience: &'static str| {
            let lookup = Lookup::new(&Method::GET, "svc", "/things/1", audience, None);
            ask_numbered(&responses, lookup, &calls, cacheable(60, &["thing:1".to_owned()])).await
        };
        assert_eq!(ask("a").await, (Some("MISS".into()), Bytes::from("{\"n\":0}")), "first sight learns the tags");
        assert_eq!(ask("a").await, (Some("MISS".into()), Bytes::from("{\"n\":1}")), "then stores");
        assert_eq!(ask("a").await, (Some("HIT".into()), Bytes::from("{\"n\":1}")));
        assert_eq!(ask("b").await.0, Some("MISS".into()), "another audience has its own entries");
        cache.invalidate(&["thing:1".to_owned()]).await;
        assert_eq!(ask("a").await, (Some("MISS".into()), Bytes::from("{\"n\":3}")), "a write drops the entry");
        assert_eq!(ask("a").await, (Some("HIT".into()), Bytes::from("{\"n\":3}")));
    }

    /// A POST marked as a cacheable question: the same body is answered from the cache, another
    /// body is not, a write drops it, and its tags are never written to the shared cache.
    #[tokio::test]
    async fn questions_are_cached_by_their_body_with_their_tags_kept_in_process() {
        let cache: Arc<dyn Cache> = Arc::new(medcov_cache::MemoryCache::new(100, Duration::from_secs(60)));
        let responses =
            Responses::new(cache.clone(), Role::GATEWAY, &crate::Metrics::new("test"), "test_cache_total", "test");
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let ask = async |body: &'static str| {
            let lookup = Lookup::new(&Method::POST, "gw", "/eligibility", "a", Some(body.as_bytes()));
            ask_numbered(&responses, lookup, &calls, cacheable_query(60, &["member:1".to_owned()], 3600)).await
        };
        assert_eq!(ask("{\"q\":1}").await, (Some("MISS".into()), Bytes::from("{\"n\":0}")), "learns the tags");
        assert_eq!(ask("{\"q\":1}").await, (Some("MISS".into()), Bytes::from("{\"n\":1}")), "then stores");
        assert_eq!(ask("{\"q\":1}").await, (Some("HIT".into()), Bytes::from("{\"n\":1}")));
        assert_eq!(ask("{\"q\":2}").await.0, Some("MISS".into()), "another question is asked");
        cache.invalidate(&["member:1".to_owned()]).await;
        assert_eq!(ask("{\"q\":1}").await, (Some("MISS".into()), Bytes::from("{\"n\":3}")), "a write drops it");
        assert_eq!(ask("{\"q\":1}").await, (Some("HIT".into()), Bytes::from("{\"n\":3}")));
        for body in ["{\"q\":1}", "{\"q\":2}"] {
            let lookup = Lookup::new(&Method::POST, "gw", "/eligibility", "a", Some(body.as_bytes()));
            assert_eq!(cache.get(&lookup.tags_key, &[]).await, None, "a question's tags stay in process");
        }
        // A POST without its body in the key is never answered fresh.
        let mut blind = Lookup::new(&Method::POST, "gw", "/eligibility", "a", None);
        assert!(blind.fresh(cache.as_ref(), &responses.marked).await.is_none());
    }
}
