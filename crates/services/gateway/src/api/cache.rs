//! Response caching at the gateway, for answers a service marks as cacheable, and the last
//! good answer as a fallback when the service cannot answer.
//!
//! A service opts in per response:
//!
//! - `Cache-Control: max-age=<s>` with `Cache-Tag: <tag>, <tag>` on a 200 to a GET: the
//!   gateway serves later identical GETs from its cache for up to `<s>` seconds, until the
//!   service invalidates one of the tags (the services and the gateway share the process's
//!   cache, or Redis). An answer is stored only once its tags are known *before* the call
//!   (from an earlier answer), so a write racing the call can never leave a stale entry: the
//!   first call of a URL only learns its tags. GETs are looked up only under a part of the
//!   API (service and first path segment) that has marked an answer before, so unmarked routes
//!   cost no cache round trip.
//! - `Cache-Control: stale-if-error=<s>` (RFC 5861) on a 200 to a GET or a POST: the gateway
//!   keeps the answer for `<s>` seconds, and serves it, marked `Warning: 110 - "Response is
//!   Stale"`, when the service is unreachable, times out, answers 502, 503 or 504, or its
//!   circuit breaker is open. A POST is matched on its body too.
//!
//! Identical cacheable GETs in flight at once (same audience, URL and tag versions) share one
//! call to the service: the first goes on, the others wait for its answer and get a copy,
//! marked `X-Cache: SHARED`. So an entry expiring under heavy load costs one load, not one per
//! waiting client. A request that arrives after a write has other tag versions, so it never
//! shares an answer read before the write. If the first request is abandoned (its client went
//! away), the waiting ones call the service themselves.
//!
//! Entries are keyed by the caller's audience: its tenant scope and roles (and its own id for
//! `own`-scoped members), so one tenant never receives another's answer, nor a role one it may
//! not see. Answers carry `X-Cache: HIT`, `MISS` or `STALE`; hits carry `Age`. Services mark
//! only answers that depend on nothing but the audience and the request, and never patient
//! records (whose every read is audited by the service).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use medcov_cache::{Bytes, Cache};
use medcov_security::{Principal, Scope};

const CACHE_TAG: &str = "cache-tag";
/// The largest answer kept (by its known length); larger ones, or ones of unknown length,
/// pass through uncached.
const MAX_KEPT: usize = 1024 * 1024;
const X_CACHE: &str = "x-cache";

/// Who is asking, as far as answers can differ.
pub fn audience(principal: &Principal) -> String {
    let roles: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
    let scope = match &principal.scope {
        Scope::Platform => "platform".to_owned(),
        Scope::Hospitals { hospitals } => {
            let mut ids: Vec<String> = hospitals.iter().map(ToString::to_string).collect();
            ids.sort();
            format!("hospitals={}", ids.join(","))
        }
        Scope::Insurer { insurer } => format!("insurer={insurer}"),
        Scope::Own => format!("own={}", principal.id),
    };
    format!("{scope};roles={}", roles.join(","))
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
/// matched (for the gateway's metrics). The first layout starts with the status, whose first
/// byte is never 0xFF, so entries stored by an older gateway still read.
const WITH_ROUTE: u8 = 0xFF;

/// A stored answer: status, when it was stored, content type, cache control, route, body.
fn encode(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Bytes {
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()).unwrap_or(b"");
    let cache_control = headers.get(header::CACHE_CONTROL).map(|v| v.as_bytes()).unwrap_or(b"");
    let route = headers.get(medcov_http::observe::ROUTE_HEADER).map(|v| v.as_bytes()).unwrap_or(b"");
    let mut out = Vec::with_capacity(20 + content_type.len() + cache_control.len() + route.len() + body.len());
    out.push(WITH_ROUTE);
    out.extend_from_slice(&status.as_u16().to_be_bytes());
    out.extend_from_slice(&now_secs().to_be_bytes());
    for part in [content_type, cache_control, route] {
        out.extend_from_slice(&u16::try_from(part.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(if part.len() <= usize::from(u16::MAX) { part } else { b"" });
    }
    out.extend_from_slice(body);
    Bytes::from(out)
}

fn decode(bytes: &[u8]) -> Option<(StatusCode, u64, HeaderMap, Bytes)> {
    let (bytes, names): (&[u8], &[header::HeaderName]) = if bytes.first() == Some(&WITH_ROUTE) {
        (
            &bytes[1..],
            &[
                header::CONTENT_TYPE,
                header::CACHE_CONTROL,
                header::HeaderName::from_static(medcov_http::observe::ROUTE_HEADER),
            ],
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

/// The parts of the API (a service and the first segment of its paths) that have answered a
/// GET marked cacheable at least once. Only their GETs are looked up in the cache, so every
/// other GET costs no cache round trip.
#[derive(Debug, Default)]
pub struct Marked(std::sync::RwLock<std::collections::HashSet<String>>);

impl Marked {
    fn contains(&self, area: &str) -> bool {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(area)
    }

    fn insert(&self, area: &str) {
        if !self.contains(area) {
            self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(area.to_owned());
        }
    }
}

/// One request as the cache sees it.
pub struct Lookup {
    /// `service/segment`, for [`Marked`].
    area: String,
    fresh_key: String,
    tags_key: String,
    last_key: String,
    /// Tag versions noted before the call, when the URL's tags are known.
    noted: Option<(Vec<String>, Vec<u64>)>,
    method: Method,
}

impl Lookup {
    /// Keys for `method target` (a POST's body included) as `audience` asks it.
    pub fn new(method: &Method, service: &str, target: &str, audience: &str, body: Option<&[u8]>) -> Lookup {
        let mut base = format!("gateway:{audience}:{method}:{service}{target}");
        if let Some(body) = body {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
            base.push(':');
            base.extend(digest.as_ref().iter().map(|b| format!("{b:02x}")));
        }
        let segment = target.trim_start_matches('/').split(['/', '?']).next().unwrap_or("");
        Lookup {
            area: format!("{service}/{segment}"),
            fresh_key: format!("{base}:fresh"),
            tags_key: format!("{base}:tags"),
            last_key: format!("{base}:last"),
            noted: None,
            method: method.clone(),
        }
    }

    /// A fresh answer from the cache, or `None` (and the tag versions noted for storing).
    pub async fn fresh(&mut self, cache: &dyn Cache, marked: &Marked) -> Option<Response> {
        if self.method != Method::GET || !marked.contains(&self.area) {
            return None;
        }
        let tags: Vec<String> = cache.get(&self.tags_key, &[]).await.and_then(|b| serde_json::from_slice(&b).ok())?;
        let versions = cache.versions(&tags).await;
        if let Some(bytes) = cache.get(&self.fresh_key, &versions).await
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

    /// The key under which identical requests in flight share one call: only for GETs whose
    /// answers are cached (the URL's tags are known), with the tag versions seen before the call.
    pub fn flight_key(&self) -> Option<String> {
        let (_, versions) = self.noted.as_ref()?;
        let versions: Vec<String> = versions.iter().map(u64::to_string).collect();
        Some(format!("{}@{}", self.fresh_key, versions.join(",")))
    }

    /// Keeps what the service allowed of its answer; returns the answer for the client.
    pub async fn store(&self, cache: &dyn Cache, marked: &Marked, response: Response) -> Response {
        let directives = Directives::of(response.headers());
        let (mut parts, body) = response.into_parts();
        parts.headers.remove(CACHE_TAG);
        let worth = parts.status == StatusCode::OK
            && !directives.no_store
            && (directives.stale_if_error.is_some_and(|s| s > 0)
                || (self.method == Method::GET
                    && directives.max_age.is_some_and(|s| s > 0)
                    && !directives.tags.is_empty()));
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
        if let Some(seconds) = directives.stale_if_error.filter(|s| *s > 0) {
            cache.put(&self.last_key, &[], stored.clone(), Duration::from_secs(seconds)).await;
        }
        if self.method == Method::GET
            && let Some(seconds) = directives.max_age.filter(|s| *s > 0)
            && !directives.tags.is_empty()
        {
            marked.insert(&self.area);
            match &self.noted {
                // Versions noted before the call under the same tags: safe to store.
                Some((tags, versions)) if *tags == directives.tags => {
                    cache.put(&self.fresh_key, versions, stored, Duration::from_secs(seconds)).await;
                }
                // First sight, or the tags changed: learn them; the next call stores.
                _ => {
                    if let Ok(json) = serde_json::to_vec(&directives.tags) {
                        cache.put(&self.tags_key, &[], Bytes::from(json), Duration::from_secs(seconds.max(3600))).await;
                    }
                }
            }
        }
        parts.headers.insert(X_CACHE, HeaderValue::from_static("MISS"));
        Response::from_parts(parts, Body::from(bytes))
    }

    /// The last good answer, marked stale, when the service allowed it and still within its time.
    pub async fn stale(&self, cache: &dyn Cache) -> Option<Response> {
        let bytes = cache.get(&self.last_key, &[]).await?;
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
    /// First: it calls the service and hands its answer to the others.
    Leader(Leader),
    /// Another request is calling the service: wait for its answer.
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

/// The leader's answer, or `None` when the leader gave up without one (the caller then asks
/// the service itself).
pub async fn wait(mut waiting: tokio::sync::watch::Receiver<Option<Shared>>) -> Option<Response> {
    let shared = waiting.wait_for(Option::is_some).await.ok()?.clone()?;
    Some(shared.response())
}

fn problem_too_large() -> Response {
    use axum::response::IntoResponse;
    medcov_http::ApiError::BadGateway("the service's answer is larger than the gateway accepts".into()).into_response()
}

/// Whether an answer or error means the service could not answer (the stale answer may do).
pub fn unavailable(status: StatusCode) -> bool {
    matches!(status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT)
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
        // The route template the service matched is kept, for the metrics of a hit.
        headers.insert(medcov_http::observe::ROUTE_HEADER, HeaderValue::from_static("/hospitals/{id}"));
        let (_, _, back, body) = decode(&encode(StatusCode::OK, &headers, b"{}")).expect("decodes");
        assert_eq!(
            (back[medcov_http::observe::ROUTE_HEADER].to_str().ok(), &body[..]),
            (Some("/hospitals/{id}"), &b"{}"[..])
        );
        // An entry an older gateway stored (no route) still reads.
        let mut old = Vec::new();
        old.extend_from_slice(&200u16.to_be_bytes());
        old.extend_from_slice(&7u64.to_be_bytes());
        old.extend_from_slice(&0u16.to_be_bytes());
        old.extend_from_slice(&0u16.to_be_bytes());
        old.extend_from_slice(b"[1]");
        let (status, stored, back, body) = decode(&old).expect("decodes");
        assert_eq!((status, stored, back.len(), &body[..]), (StatusCode::OK, 7, 0, &b"[1]"[..]));
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

    #[test]
    fn audiences_differ_by_scope_and_roles_and_members_by_person() {
        use medcov_security::Role;
        let principal = |roles: &[Role], scope: Scope| Principal {
            id: uuid::Uuid::now_v7(),
            kind: medcov_security::PrincipalKind::User,
            roles: roles.iter().copied().collect(),
            scope,
            session: uuid::Uuid::nil(),
            token: uuid::Uuid::nil(),
        };
        let h = |ids: &[u128]| Scope::Hospitals { hospitals: ids.iter().map(|i| uuid::Uuid::from_u128(*i)).collect() };
        let clerk_ab = audience(&principal(&[Role::HospitalClerk], h(&[1, 2])));
        assert_eq!(clerk_ab, audience(&principal(&[Role::HospitalClerk], h(&[2, 1]))), "order does not matter");
        assert_ne!(clerk_ab, audience(&principal(&[Role::HospitalClerk], h(&[1]))));
        assert_ne!(clerk_ab, audience(&principal(&[Role::Clinician], h(&[1, 2]))));
        assert_ne!(
            audience(&principal(&[Role::Member], Scope::Own)),
            audience(&principal(&[Role::Member], Scope::Own))
        );
    }
}
