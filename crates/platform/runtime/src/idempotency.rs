//! The Idempotency-Key middleware every service's mutating endpoints go through (POST, PUT,
//! PATCH, DELETE), after the IETF draft `draft-ietf-httpapi-idempotency-key-header`:
//!
//! - a request carrying `Idempotency-Key` (1 to 255 visible ASCII characters) runs as that
//!   key's request ([`medcov_store::keyed`]): the key's record (the request's fingerprint and
//!   its answer) is written in the same transaction as the request's effect, in the service's
//!   own database, so the record exists exactly when the effect does;
//! - a repeat of the same request (method, path, query and body) gets the first answer again,
//!   marked `Idempotency-Replayed: true`, for 24 hours, from any instance, even when the
//!   first answer never reached the client (a dropped connection, a killed instance, a
//!   database that went away during the commit);
//! - a repeat while the first still runs waits for it (two seconds at most: then 409);
//!   another request under the same key, 422;
//! - a request that committed nothing (a refusal, a failure, a read) leaves no record: a
//!   retry runs again; nor does one that failed (5xx) after its commit, which rolls back;
//! - a key is held only by a transaction in progress: PostgreSQL releases it when its
//!   request ends or its instance dies, so a crashed request never blocks a retry;
//! - a handler that reads back what it committed reads it in the same transaction, so the
//!   record is committed with its answer; a request whose record was committed before its
//!   answer was known (the last resort, [`Keyed::answered_after_commit`]) is counted in
//!   `idempotency_answers_after_commit_total`, which stays at 0.
//!
//! Keys belong to the verified caller: another caller's key of the same name is another key.
//! Requests without a key, or without a valid token (the handler answers those), pass
//! untouched.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use medcov_http::{ApiError, FieldError};
use medcov_security::Verifier;
use medcov_store::keyed::{self, Keyed, Record};
use medcov_store::{Database, StoreError};

pub const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotency-replayed";
/// Headers kept with an answer for its replays.
const KEPT: [HeaderName; 4] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG, header::CACHE_CONTROL];

#[derive(Clone)]
pub struct Idempotency {
    pub service: &'static str,
    /// The service's database, where the keys' records are kept.
    pub database: Database,
    pub verifier: Arc<Verifier>,
    pub body_limit: usize,
    /// `idempotency_answers_after_commit_total`: requests whose record was committed before
    /// their answer was known ([`Keyed::answered_after_commit`]).
    pub answers_after_commit: metrics::Counter,
}

/// The counter of [`Idempotency::answers_after_commit`].
pub const ANSWERS_AFTER_COMMIT: &str = "idempotency_answers_after_commit_total";

pub async fn middleware(State(state): State<Idempotency>, request: Request, next: Next) -> Response {
    let mutating = matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let Some(value) = request.headers().get(HEADER).filter(|_| mutating).cloned() else {
        return next.run(request).await;
    };
    let key = match value.to_str() {
        Ok(key) if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => key.to_owned(),
        _ => {
            return ApiError::Validation(vec![FieldError::new(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters (a UUID, say)",
            )])
            .into_response();
        }
    };
    let (parts, body) = request.into_parts();
    let principal = match medcov_security::verify::bearer(&parts) {
        Ok(token) => state.verifier.verify(token).await.ok(),
        Err(_) => None,
    };
    let Some(principal) = principal else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let Ok(bytes) = axum::body::to_bytes(body, state.body_limit).await else {
        return ApiError::PayloadTooLarge("the request body is larger than the configured limit".into())
            .into_response();
    };
    let fingerprint = fingerprint(&parts.method, parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"), &bytes);
    let stored_key = format!("{}:{}:{key}", state.service, principal.id);
    let request = Request::from_parts(parts, Body::from(bytes));

    // A repeat of a request that committed: its record answers.
    match keyed::find(&state.database, &stored_key).await {
        Ok(Some(record)) => return replay(&record, &fingerprint),
        Ok(None) => {}
        Err(error) => return ApiError::from(error).into_response(),
    }
    let keyed = Keyed::new(stored_key, fingerprint.to_vec());
    let response = keyed.scope(next.run(request)).await;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(_) => {
            // Nothing is kept: what the request wrote rolls back.
            drop(keyed);
            return ApiError::Internal("the answer could not be read".into()).into_response();
        }
    };
    let encoded = worth_keeping(status).then(|| encode(&fingerprint, status, &parts.headers, &body));
    let answer = match &encoded {
        Some(encoded) => keyed::Answer::Keep(encoded),
        None if status.is_server_error() => keyed::Answer::Failed,
        None => keyed::Answer::Refused,
    };
    let finished = keyed.finish(&state.database, answer).await;
    if keyed.answered_after_commit() {
        state.answers_after_commit.increment(1);
    }
    match finished {
        Ok(_) => match keyed.answered() {
            // Another request under the key committed while this one ran: this one wrote
            // nothing, and its answer is the other's.
            Some(record) => replay(&record, &fingerprint),
            None => Response::from_parts(parts, Body::from(body)),
        },
        Err(StoreError::Answered) => match keyed.answered() {
            Some(record) => replay(&record, &fingerprint),
            None => ApiError::from(StoreError::Answered).into_response(),
        },
        // The commit's outcome is unknown: a retry under the key finds out.
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The answer to a repeat of a request that committed under the key.
fn replay(record: &Record, fingerprint: &[u8; 32]) -> Response {
    if record.fingerprint != fingerprint {
        return ApiError::Validation(vec![FieldError::new(
            "Idempotency-Key",
            "was already used for a different request; use a new key for a new request",
        )])
        .into_response();
    }
    let Some(answer) = &record.answer else {
        return ApiError::Conflict(
            "the request under this Idempotency-Key took effect, but its answer was not kept; look up the result rather than retrying"
                .into(),
        )
        .into_response();
    };
    match decode(answer) {
        Some((first, _, _, _)) if first != *fingerprint => ApiError::Validation(vec![FieldError::new(
            "Idempotency-Key",
            "was already used for a different request; use a new key for a new request",
        )])
        .into_response(),
        Some((_, status, headers, body)) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
            response
        }
        // Unreadable (written by another version): running it again could repeat its effect.
        None => ApiError::Conflict(
            "the first answer under this Idempotency-Key cannot be read back; check the outcome before retrying with a new key"
                .into(),
        )
        .into_response(),
    }
}

/// Whether an answer is the request's final word: not a server error, and not one that says
/// "try again" (timeout, conflict, too early, too many requests).
fn worth_keeping(status: StatusCode) -> bool {
    !status.is_server_error()
        && !matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_EARLY | StatusCode::TOO_MANY_REQUESTS
        )
}

fn fingerprint(method: &Method, target: &str, body: &[u8]) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(method.as_str().as_bytes());
    context.update(b" ");
    context.update(target.as_bytes());
    context.update(b"\n");
    context.update(body);
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// fingerprint (32) · status (2) · header count (1) · (name len, name, value len, value)* · body
fn encode(fingerprint: &[u8; 32], status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + body.len());
    out.extend_from_slice(fingerprint);
    out.extend_from_slice(&status.as_u16().to_be_bytes());
    let kept: Vec<(&HeaderName, &HeaderValue)> =
        KEPT.iter().filter_map(|name| headers.get(name).map(|value| (name, value))).collect();
    out.push(u8::try_from(kept.len()).unwrap_or(0));
    for (name, value) in kept {
        for part in [name.as_str().as_bytes(), value.as_bytes()] {
            out.extend_from_slice(&u16::try_from(part.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out.extend_from_slice(body);
    out
}

fn decode(bytes: &[u8]) -> Option<([u8; 32], StatusCode, HeaderMap, Bytes)> {
    let fingerprint: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    let status = StatusCode::from_u16(u16::from_be_bytes(bytes.get(32..34)?.try_into().ok()?)).ok()?;
    let count = *bytes.get(34)?;
    let mut at = 35;
    let mut headers = HeaderMap::new();
    for _ in 0..count {
        let mut take = || {
            let len = usize::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
            let part = bytes.get(at + 2..at + 2 + len)?;
            at += 2 + len;
            Some(part)
        };
        let name = HeaderName::from_bytes(take()?).ok()?;
        let value = HeaderValue::from_bytes(take()?).ok()?;
        headers.insert(name, value);
    }
    Some((fingerprint, status, headers, Bytes::copy_from_slice(bytes.get(at..)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_whole() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::LOCATION, HeaderValue::from_static("/patients/1"));
        headers.insert("x-request-id", HeaderValue::from_static("not kept"));
        let print = fingerprint(&Method::POST, "/patients", b"{}");
        let record = encode(&print, StatusCode::CREATED, &headers, b"{\"id\":1}");
        let (back, status, kept, body) = decode(&record).expect("decodes");
        assert_eq!((back, status, &body[..]), (print, StatusCode::CREATED, &b"{\"id\":1}"[..]));
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[header::LOCATION], "/patients/1");
        assert_eq!(decode(&record[..20]), None);
    }

    #[test]
    fn the_fingerprint_covers_method_target_and_body() {
        let base = fingerprint(&Method::POST, "/patients", b"{}");
        assert_ne!(base, fingerprint(&Method::PUT, "/patients", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/patients?x=1", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/patients", b"{ }"));
        assert_eq!(base, fingerprint(&Method::POST, "/patients", b"{}"));
    }
}
