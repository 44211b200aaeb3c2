//! Extractors whose rejections are problems that name the field at fault.
//!
//! axum's own `Json`, `Query` and `Path` answer bad input with plain text. These wrappers read
//! the same things but answer with [`ApiError`]: unreadable input is 400, input that reads but
//! does not fit the expected shape is 422 with the JSON path of the field (for example
//! `members[1].date_of_birth`) and the reason.

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError};

/// A JSON body in, or a JSON body out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a JSON body with `Content-Type: application/json`".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    let text = rejection.body_text();
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the request body is larger than the configured limit".into())
    } else {
        ApiError::BadRequest { detail: format!("the request body could not be read: {text}"), errors: vec![] }
    }
}

/// Reads a JSON document, naming the field at fault when it does not fit `T`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error(&path, &inner)
    })?;
    de.end().map_err(|inner| json_error(".", &inner))?;
    Ok(value)
}

fn json_error(path: &str, inner: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    // A number too large for any type (`1e400`) is well-formed JSON with a bad value: name it.
    if inner.classify() == Category::Syntax && inner.to_string().starts_with("number out of range") {
        let field = if path == "." || path.is_empty() { "(body)" } else { path };
        return ApiError::Validation(vec![FieldError::new(field, "is a number out of range")]);
    }
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::BadRequest { detail: format!("the request body is not valid JSON: {inner}"), errors: vec![] }
        }
        Category::Data => {
            let message = strip_position(&inner.to_string());
            ApiError::Validation(vec![field_error(path, &message)])
        }
    }
}

/// serde reports a missing field at its parent; point at the field itself.
fn field_error(path: &str, message: &str) -> FieldError {
    let parent = if path == "." { "" } else { path };
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(name) = rest.split('`').next()
    {
        let field = if parent.is_empty() { name.to_owned() } else { format!("{parent}.{name}") };
        return FieldError::new(field, "is required");
    }
    // An unknown field is reported at the field itself.
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((_, expected)) = rest.split_once('`')
    {
        let field = if parent.is_empty() { "(body)" } else { parent };
        return FieldError::new(field, format!("is not a known field{expected}"));
    }
    let field = if parent.is_empty() { "(body)".to_owned() } else { parent.to_owned() };
    FieldError::new(field, message.to_owned())
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Query string parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|err| {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            let field = field_error(&path, &message);
            ApiError::BadRequest {
                detail: format!("query parameter `{}` {}", field.field, field.reason),
                errors: vec![field],
            }
        })
    }
}

/// Path parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                use axum::extract::path::ErrorKind;
                let field = match err.kind() {
                    ErrorKind::ParseErrorAtKey { key, expected_type, .. } => {
                        FieldError::new(key.clone(), format!("must be a valid {}", friendly(expected_type)))
                    }
                    ErrorKind::ParseError { expected_type, .. }
                    | ErrorKind::ParseErrorAtIndex { expected_type, .. } => {
                        FieldError::new("(path)", format!("must be a valid {}", friendly(expected_type)))
                    }
                    ErrorKind::DeserializeError { key, message, .. } => FieldError::new(key.clone(), message.clone()),
                    ErrorKind::InvalidUtf8InPathParam { key } => FieldError::new(key.clone(), "must be valid UTF-8"),
                    other => FieldError::new("(path)", other.to_string()),
                };
                Err(ApiError::BadRequest {
                    detail: format!("path parameter `{}` {}", field.field, field.reason),
                    errors: vec![field],
                })
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

fn friendly(type_name: &str) -> &str {
    if type_name.ends_with("Uuid") { "UUID" } else { type_name.rsplit("::").next().unwrap_or(type_name) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Member {
        name: String,
        age: u8,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Policy {
        members: Vec<Member>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Account {
        #[serde(deserialize_with = "medcov_domain::unique::set")]
        roles: std::collections::BTreeSet<String>,
        #[serde(default, deserialize_with = "medcov_domain::unique::optional_set")]
        extra: Option<std::collections::BTreeSet<String>>,
    }

    #[test]
    fn a_unique_list_refuses_a_repeat() {
        let (status, error) = field_of(parse_json::<Account>(br#"{"roles":["admin","clerk","admin"]}"#).unwrap_err());
        assert_eq!((status, error.field.as_str()), (422, "roles"));
        assert!(error.reason.contains("repeats"), "{}", error.reason);
        let (status, error) = field_of(parse_json::<Account>(br#"{"roles":["admin"],"extra":["a","a"]}"#).unwrap_err());
        assert_eq!((status, error.field.as_str()), (422, "extra"));
        let account = parse_json::<Account>(br#"{"roles":["admin","clerk"]}"#).unwrap();
        assert_eq!(account.roles.len(), 2);
        assert!(account.extra.is_none());
        assert!(parse_json::<Account>(br#"{"roles":["a"],"extra":null}"#).unwrap().extra.is_none());
    }

    fn field_of(error: ApiError) -> (u16, FieldError) {
        let status = error.status().as_u16();
        let problem = error.to_problem();
        (status, problem.errors.into_iter().next().expect("a field error"))
    }

    #[test]
    fn syntax_errors_are_400() {
        let err = parse_json::<Policy>(b"{\"members\": [").unwrap_err();
        assert_eq!(err.status().as_u16(), 400);
        let err = parse_json::<Policy>(br#"{"members":[]} trailing"#).unwrap_err();
        assert_eq!(err.status().as_u16(), 400);
    }

    #[test]
    fn shape_errors_are_422_and_name_the_field() {
        let table: [(&str, &str, &str); 4] = [
            (r#"{"members":[{"name":"A","age":1},{"name":"B","age":"x"}]}"#, "members[1].age", "invalid type"),
            (r#"{"members":[{"name":"A"}]}"#, "members[0].age", "is required"),
            (r#"{"members":[{"name":"A","age":1,"nmae":"x"}]}"#, "members[0].nmae", "is not a known field"),
            (r#"{"members":[{"name":"A","age":300}]}"#, "members[0].age", "invalid value"),
        ];
        for (body, field, reason) in table {
            let (status, error) = field_of(parse_json::<Policy>(body.as_bytes()).unwrap_err());
            assert_eq!(status, 422, "{body}");
            assert_eq!(error.field, field, "{body}");
            assert!(error.reason.starts_with(reason), "{body}: {}", error.reason);
            assert!(!error.reason.contains("at line"), "{}", error.reason);
        }
        let (_, error) = field_of(parse_json::<Policy>(b"{}").unwrap_err());
        assert_eq!(error.field, "members");
        // Out of range for any number: still the field's fault.
        for body in [r#"{"members":[{"name":"A","age":1e400}]}"#, r#"{"members":[{"name":"A","age":-1e400}]}"#] {
            let (status, error) = field_of(parse_json::<Policy>(body.as_bytes()).unwrap_err());
            assert_eq!((status, error.field.as_str()), (422, "members[0].age"), "{body}");
        }
    }
}
