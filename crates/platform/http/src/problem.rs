//! RFC 9457 problem details, and [`ApiError`]: the error every handler returns.
//!
//! Which error goes where: handlers and extractors return `ApiError`; each variant names its
//! status. A client error carries a message a person can act on. [`ApiError::Internal`] is a
//! bug or an outage: its cause is logged once, inside the request's span (so the log line has
//! the request id), and the client sees only the request id to quote.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::observe::RequestContext;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// `Retry-After` (seconds) on a 503: long enough for a restarted dependency, short enough
/// that a client does not give up.
pub const RETRY_UNAVAILABLE: &str = "2";

/// The problem type of a deliberate refusal under load ([`ApiError::Overloaded`]). The mesh
/// reads it: a healthy instance shedding work is neither ejected nor counted by a circuit
/// breaker, whose opening would turn a partial refusal into a whole outage.
pub const OVERLOADED: &str = "urn:medcov:problem:overloaded";

pub use medcov_domain::FieldError;
use medcov_domain::Rejection;
use medcov_store::StoreError;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request id to quote when asking for help.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Each field that failed validation, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: Option<String>) -> Problem {
        Problem {
            kind: kind.to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            request_id: RequestContext::current().map(|cx| cx.request_id),
            errors: Vec::new(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

/// The error type of every handler.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request cannot be read (malformed JSON, a bad query string).
    BadRequest { detail: String, errors: Vec<FieldError> },
    /// 422: the request was read, but fields are invalid.
    Validation(Vec<FieldError>),
    /// 401: no valid credentials.
    Unauthorized(String),
    /// 403: valid credentials, but not allowed.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 405: the path exists, but not with this method; `allow` lists those it has
    /// (`GET, HEAD, POST`), sent as `Allow`.
    MethodNotAllowed { allow: String },
    /// 409: conflicts with the current state.
    Conflict(String),
    /// 412: an `If-Match` that no longer matches.
    PreconditionFailed(String),
    /// 428: a change that must say which version it changes (`If-Match`) did not.
    PreconditionRequired(String),
    /// 413.
    PayloadTooLarge(String),
    /// 415.
    UnsupportedMediaType(String),
    /// 431: the request's headers are larger than the limit.
    HeadersTooLarge(String),
    /// 429: over a rate limit; `Retry-After` says when to try again.
    TooManyRequests { detail: String, retry_after: std::time::Duration },
    /// 502: another service answered badly or not at all.
    BadGateway(String),
    /// 503: a dependency is unavailable; retrying later may work.
    Unavailable(String),
    /// 503: the service is healthy but refuses new work it could not finish in time (load
    /// shedding), before writing anything; `Retry-After` says when to try again. Its problem
    /// type is [`OVERLOADED`].
    Overloaded { detail: String, retry_after: std::time::Duration },
    /// 504: another service did not answer in time.
    GatewayTimeout(String),
    /// 500: a bug. The cause is logged, never sent.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ApiError {
        ApiError::Internal(error.into())
    }

    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![FieldError::new(field, reason)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        match self {
            ApiError::BadRequest { detail, errors } => Problem {
                errors: errors.clone(),
                ..Problem::new(status, "urn:medcov:problem:malformed-request", Some(detail.clone()))
            },
            ApiError::Validation(errors) => Problem {
                errors: errors.clone(),
                ..Problem::new(status, "urn:medcov:problem:validation", Some(describe_fields(errors)))
            },
            ApiError::TooManyRequests { detail, .. } => Problem::new(status, "about:blank", Some(detail.clone())),
            ApiError::Overloaded { detail, .. } => Problem::new(status, OVERLOADED, Some(detail.clone())),
            ApiError::MethodNotAllowed { allow } => {
                Problem::new(status, "about:blank", Some(format!("this method is not allowed here; use {allow}")))
            }
            ApiError::Internal(_) => Problem::new(
                status,
                "about:blank",
                Some("An unexpected error occurred. Quote the request id when asking for help.".into()),
            ),
            ApiError::Unauthorized(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(d)
            | ApiError::PreconditionFailed(d)
            | ApiError::PreconditionRequired(d)
            | ApiError::PayloadTooLarge(d)
            | ApiError::UnsupportedMediaType(d)
            | ApiError::HeadersTooLarge(d)
            | ApiError::BadGateway(d)
            | ApiError::Unavailable(d)
            | ApiError::GatewayTimeout(d) => Problem::new(status, "about:blank", Some(d.clone())),
        }
    }
}

fn describe_fields(errors: &[FieldError]) -> String {
    match errors {
        [one] => format!("`{}` {}", one.field, one.reason),
        many => format!("{} fields are invalid; see `errors`", many.len()),
    }
}

/// A domain rule's refusal is the matching client error.
impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Invalid(errors) => ApiError::Validation(errors),
            Rejection::NotFound(what) => ApiError::NotFound(what),
            Rejection::Conflict(why) => ApiError::Conflict(why),
            Rejection::Forbidden(why) => ApiError::Forbidden(why),
            Rejection::Stale(why) => ApiError::PreconditionFailed(why),
        }
    }
}

impl ApiError {
    /// The answer while the database is unavailable (an outage: 503 with Retry-After), for
    /// each of several requests that one failure ended (the failure is logged once, where it
    /// is converted).
    pub fn database_unavailable() -> ApiError {
        ApiError::Unavailable("the database is unavailable; try again shortly".into())
    }
}

/// A store's failure: an unavailable database is an outage (503 with Retry-After), a unique
/// key the caller did not expect a conflict (409); anything else is a bug (500, logged).
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "the database is unavailable");
                ApiError::database_unavailable()
            }
            StoreError::Duplicate(_) => ApiError::Conflict("this conflicts with a record that already exists".into()),
            StoreError::KeyHeld => ApiError::Conflict(
                "a request with this Idempotency-Key is still being processed; retry once it has finished".into(),
            ),
            // The Idempotency-Key middleware answers with the record instead.
            StoreError::Answered => {
                ApiError::Conflict("a request with this Idempotency-Key was answered meanwhile; retry it".into())
            }
            other => ApiError::internal(other),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Internal(e) => write!(f, "internal error: {e}"),
            other => write!(f, "{}", other.to_problem().detail.unwrap_or_default()),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            // The one place an internal error is logged; the span adds the request id.
            tracing::error!(error = %cause, "internal error");
        }
        let mut response = self.to_problem().into_response();
        match &self {
            ApiError::Unauthorized(_) => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after, .. } | ApiError::Overloaded { retry_after, .. } => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            ApiError::Unavailable(_) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_UNAVAILABLE));
            }
            ApiError::MethodNotAllowed { allow } => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_their_variants() {
        let table = [
            (ApiError::Validation(vec![]), 422),
            (ApiError::BadRequest { detail: String::new(), errors: vec![] }, 400),
            (ApiError::NotFound(String::new()), 404),
            (ApiError::Conflict(String::new()), 409),
            (ApiError::PreconditionFailed(String::new()), 412),
            (ApiError::Unavailable(String::new()), 503),
            (ApiError::Overloaded { detail: String::new(), retry_after: std::time::Duration::from_secs(1) }, 503),
            (ApiError::internal("boom"), 500),
        ];
        for (error, status) in table {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.to_problem().status, status);
        }
    }

    #[test]
    fn a_refusal_under_load_says_so_and_when_to_come_back() {
        let error = ApiError::Overloaded { detail: "busy".into(), retry_after: std::time::Duration::from_millis(1500) };
        assert_eq!(error.to_problem().kind, OVERLOADED);
        let response = error.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2", "rounded up, never 0");
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let problem = ApiError::internal("password=hunter2 at db:5432").to_problem();
        let text = serde_json::to_string(&problem).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn validation_problems_name_each_field() {
        let problem = ApiError::Validation(vec![
            FieldError::new("name", "must not be empty"),
            FieldError::new("date_of_birth", "must not be in the future"),
        ])
        .to_problem();
        let value = serde_json::to_value(&problem).unwrap();
        assert_eq!(value["type"], "urn:medcov:problem:validation");
        assert_eq!(value["errors"][1]["field"], "date_of_birth");
        assert_eq!(
            ApiError::field("name", "must not be empty").to_problem().detail.as_deref(),
            Some("`name` must not be empty")
        );
    }
}
