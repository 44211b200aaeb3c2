//! Wraps a service's API router in the kit and serves it.
//!
//! Every service answers the same way at the edge. Layers, outermost first:
//!
//! 1. [`observe`](crate::observe::observe): request id, trace, span, access log, metrics;
//! 2. `problem_for_bare_errors`: any 4xx/5xx that is not yet problem+json (405 from the
//!    router, 413 from the body limit, 503 from the timeout) becomes one;
//!    then `method_gate` (405 with `Allow` for a method a documented path does not have,
//!    before any token or header is read) and `query_must_be_utf8` (400);
//! 3. panic catcher: a panicking handler is a 500 problem, logged once;
//! 4. request timeout (503);
//! 5. body size limit (413);
//! 6. the routes: the service's API plus `/health/live`, `/health/ready`, `/metrics` and
//!    `/openapi.json`; anything else is a 404 problem.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::observe::{AccessLog, Edge, ObserveState, capture_route, observe};
use crate::problem::{ApiError, Problem};

/// Limits applied to every request, and what is logged of it.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    pub body_limit_bytes: usize,
    /// The largest total size of a request's header names and values; more is 431.
    pub header_limit_bytes: usize,
    pub request_timeout: Duration,
    /// Which requests get an access line at info (`log.access`).
    pub access_log: AccessLog,
}

impl From<&medcov_config::HttpConfig> for HttpSettings {
    fn from(config: &medcov_config::HttpConfig) -> Self {
        HttpSettings {
            body_limit_bytes: config.body_limit_bytes,
            header_limit_bytes: config.header_limit_bytes,
            request_timeout: config.request_timeout(),
            access_log: AccessLog::default(),
        }
    }
}

/// Everything the kit adds around one service's API.
#[derive(Clone)]
pub struct ServiceHttp {
    pub service: &'static str,
    pub metrics: Metrics,
    pub health: Health,
    pub settings: HttpSettings,
    /// Whether `/metrics` is served on the service's own port. The gateway's port is public:
    /// its metrics are on its internal listener ([`ServiceHttp::internal_router`]).
    pub metrics_on_port: bool,
    /// Whether requests enter MedCov here (the gateway) or may come through a proxy.
    pub edge: Edge,
    /// The service's own response cache (`caching`), around its routes; `None` for none (the
    /// gateway, which caches what it forwards itself).
    pub response_cache: Option<crate::caching::ResponseCache>,
}

/// State of the operational endpoints.
#[derive(Clone)]
struct Ops {
    health: Health,
    metrics: Metrics,
}

impl ServiceHttp {
    /// The service's complete router: its API wrapped in the kit. The OpenAPI document the
    /// API router carries, plus the operational endpoints, is served at `/openapi.json`.
    pub fn router(&self, api: OpenApiRouter) -> Router {
        let mut ops = OpenApiRouter::new().routes(routes!(live)).routes(routes!(ready));
        if self.metrics_on_port {
            ops = ops.routes(routes!(metrics));
        }
        let ops = ops.with_state(Ops { health: self.health.clone(), metrics: self.metrics.clone() });
        let (router, openapi) = api.merge(ops).split_for_parts();
        let mut document = serde_json::to_value(&openapi).unwrap_or_default();
        crate::contract::complete(&mut document);
        let routes = Arc::new(crate::contract::Routes::of(&document));
        let document = bytes::Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
        let observe_state = Arc::new(ObserveState {
            service: self.service,
            metrics: self.metrics.clone(),
            access: self.settings.access_log,
            edge: self.edge.clone(),
        });
        let router = router
            .route(
                "/openapi.json",
                get(move || async move { ([(header::CONTENT_TYPE, "application/json")], document.clone()) }),
            )
            .fallback(not_found);
        // Inside the route capture, so a cached answer is counted and logged under its route.
        let router = match &self.response_cache {
            Some(cache) => {
                router.route_layer(from_fn_with_state(Arc::new(cache.clone()), crate::caching::serve_cached))
            }
            None => router,
        };
        router
            .route_layer(from_fn(capture_route))
            .layer(DefaultBodyLimit::max(self.settings.body_limit_bytes))
            .layer(RequestBodyLimitLayer::new(self.settings.body_limit_bytes))
            .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, self.settings.request_timeout))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(from_fn(query_must_be_utf8))
            .layer(from_fn_with_state(routes, method_gate))
            .layer(from_fn(problem_for_bare_errors))
            .layer(from_fn_with_state(self.settings.header_limit_bytes, header_limit))
            .layer(from_fn_with_state(observe_state, observe))
    }

    /// The internal listener's router: `/metrics` and `/health/*`, for Prometheus and probes
    /// on a port the public cannot reach.
    pub fn internal_router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .fallback(not_found)
            .with_state(Ops { health: self.health.clone(), metrics: self.metrics.clone() })
    }
}

/// Refuses (431) a request whose headers together are larger than the limit, before any work
/// is done for it.
async fn header_limit(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let size: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if size > limit {
        return ApiError::HeadersTooLarge(format!("the request's headers are {size} bytes; the limit is {limit}"))
            .into_response();
    }
    next.run(request).await
}

/// What `/health/live` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct Liveness {
    #[schema(example = "hospital")]
    service: String,
    /// Always `live`.
    #[schema(example = "live")]
    status: String,
}

/// Answers 405 with `Allow` for a method a documented path does not have, before anything
/// else looks at the request (its token, its `Idempotency-Key`, its query). A CORS preflight
/// passes, for the CORS layer to answer.
async fn method_gate(State(routes): State<Arc<crate::contract::Routes>>, request: Request, next: Next) -> Response {
    let preflight = request.method() == axum::http::Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !preflight
        && let Some(allowed) = routes.allowed(request.uri().path())
        && !allowed.contains(request.method())
    {
        let allow = allowed.iter().map(axum::http::Method::as_str).collect::<Vec<_>>().join(", ");
        return ApiError::MethodNotAllowed { allow }.into_response();
    }
    next.run(request).await
}

/// Refuses (400) a request whose query string, once percent-decoded, is not UTF-8: no
/// handler sees a parameter with its bytes replaced. After the method gate: a method the
/// path does not have is 405 first.
async fn query_must_be_utf8(request: Request, next: Next) -> Response {
    if let Some(query) = request.uri().query()
        && std::str::from_utf8(&percent_decode(query)).is_err()
    {
        return ApiError::BadRequest {
            detail: "the query string is not valid UTF-8 once percent-decoded".to_owned(),
            errors: vec![crate::FieldError::new("(query)", "must be valid UTF-8")],
        }
        .into_response();
    }
    next.run(request).await
}

/// `%XX` sequences as bytes (`+` is a space, as in a form); a `%` not followed by two hex
/// digits stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    out
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "operations", security(()),
    responses((status = 200, description = "The process answers.", body = Liveness)))]
async fn live(State(ops): State<Ops>) -> Response {
    ops.health.live_response()
}

/// Readiness: every dependency answers. 503 names the ones that do not.
#[utoipa::path(get, path = "/health/ready", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready (or degraded: a non-critical dependency is down).", body = crate::health::ReadinessReport),
        (status = 503, description = "A critical dependency is down, or the service is shutting down.", body = crate::health::ReadinessReport),
    ))]
async fn ready(State(ops): State<Ops>) -> Response {
    ops.health.ready_response().await
}

/// Prometheus metrics of this service, in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format.", content_type = "text/plain")))]
async fn metrics(State(ops): State<Ops>) -> Response {
    let mut response = ops.metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".to_owned())
}

fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a handler panicked".to_owned());
    ApiError::internal(format!("panic: {message}")).into_response()
}

/// Turns an error response without a structured body (none, or plain text, as the router, the
/// body limit and the timeout answer) into problem+json, keeping short text as its detail.
/// Structured answers (problem+json, or JSON such as a readiness report) pass untouched.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let is_text = content_type.is_some_and(|v| v.starts_with("text/plain"));
    if status.as_u16() < 400 || !(content_type.is_none() || is_text) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let detail = if is_text {
        axum::body::to_bytes(body, 1024)
            .await
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .filter(|s| !s.is_empty())
    } else {
        None
    };
    let detail = detail.or_else(|| default_detail(status).map(str::to_owned));
    let mut problem = Problem::new(status, "about:blank", detail).into_response();
    // Keep headers such as `Allow` on a 405.
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

fn default_detail(status: StatusCode) -> Option<&'static str> {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => Some("this method is not allowed here; see the Allow header"),
        StatusCode::PAYLOAD_TOO_LARGE => Some("the request body is larger than the configured limit"),
        StatusCode::SERVICE_UNAVAILABLE => Some("the request did not finish in time; retry later"),
        _ => None,
    }
}

/// How many connections may wait to be accepted. tokio's default (1024) overflows when
/// thousands of clients connect at once: the kernel then drops their handshakes and they wait
/// a second or more to retry. The kernel caps it at `net.core.somaxconn` (4096 on current
/// Linux); raise that sysctl to let more wait.
pub const LISTEN_BACKLOG: u32 = 65_535;

/// Listens on `address` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as tokio's own `bind`
/// sets it, so a restart can listen while old connections linger in `TIME_WAIT`).
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Json;
    use crate::problem::PROBLEM_JSON;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_listener_serves_and_a_taken_port_is_refused() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).expect("a free port");
        let address = listener.local_addr().expect("bound");
        let again = bind(address).expect_err("the port is taken");
        assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse);
        let accepting = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
        tokio::net::TcpStream::connect(address).await.expect("connects");
        accepting.await.expect("task").expect("accepts");
    }

    #[derive(serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
    struct Hospital {
        name: String,
    }

    fn app(body_limit_bytes: usize, request_timeout: Duration) -> Router {
        let kit = ServiceHttp {
            service: "test",
            metrics: Metrics::new("test"),
            health: Health::new("test", vec![]),
            settings: HttpSettings {
                body_limit_bytes,
                header_limit_bytes: 16 * 1024,
                request_timeout,
                access_log: AccessLog::Edge,
            },
            metrics_on_port: true,
            edge: Edge::UnlessForwardedBy(Vec::new()),
            response_cache: None,
        };
        let api = OpenApiRouter::new()
            .routes(routes!(create_hospital))
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(60)).await }))
            .route(
                "/panic",
                get(|| async {
                    panic!("boom");
                    #[allow(unreachable_code)]
                    ()
                }),
            );
        kit.router(api)
    }

    /// A documented route: the method gate knows it.
    #[utoipa::path(post, path = "/hospitals", responses((status = 200, description = "Echoed.")))]
    async fn create_hospital(Json(h): Json<Hospital>) -> Json<Hospital> {
        Json(h)
    }

    async fn call(app: Router, request: Request) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, value)
    }

    fn post_json(path: &str, body: &str) -> Request {
        Request::post(path).header("content-type", "application/json").body(Body::from(body.to_owned())).unwrap()
    }

    #[tokio::test]
    async fn bad_input_is_a_problem_never_a_500() {
        let table: [(Request, u16); 6] = [
            (post_json("/hospitals", "{not json"), 400),
            (post_json("/hospitals", r#"{"name": 5}"#), 422),
            (post_json("/hospitals", r#"{}"#), 422),
            (Request::post("/hospitals").body(Body::from("{}")).unwrap(), 415),
            (Request::get("/nowhere").body(Body::empty()).unwrap(), 404),
            (Request::delete("/hospitals").body(Body::empty()).unwrap(), 405),
        ];
        for (request, expected) in table {
            let (status, headers, body) = call(app(1024, Duration::from_secs(5)), request).await;
            assert_eq!(status.as_u16(), expected, "{body}");
            assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
            assert_eq!(body["status"], expected);
            assert!(body["request_id"].is_string(), "{body}");
        }
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a=%41+b%2"), b"a=A b%2");
        assert_eq!(percent_decode("name=%C3%A9"), "name=é".as_bytes());
        assert!(std::str::from_utf8(&percent_decode("name=%FF")).is_err());
    }

    #[tokio::test]
    async fn a_query_that_is_not_utf8_is_400_after_405() {
        let request = Request::post("/hospitals?name=%FF%FE")
            .header("content-type", "application/json")
            .body(Body::from("{\"name\":\"a\"}"))
            .unwrap();
        let (status, headers, body) = call(app(1024, Duration::from_secs(5)), request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body["errors"][0]["field"], "(query)");
        // Valid UTF-8, escaped or not, passes.
        let request = Request::post("/hospitals?name=%C3%A9")
            .header("content-type", "application/json")
            .body(Body::from("{\"name\":\"a\"}"))
            .unwrap();
        assert_eq!(call(app(1024, Duration::from_secs(5)), request).await.0, StatusCode::OK);
        // A method the path does not have is 405, with Allow, whatever the query.
        let request = Request::put("/hospitals?name=%FF").body(Body::empty()).unwrap();
        let (status, headers, _) = call(app(1024, Duration::from_secs(5)), request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(headers[header::ALLOW].to_str().unwrap().contains("POST"));
    }

    #[tokio::test]
    async fn a_validation_problem_names_the_field() {
        let (_, _, body) = call(app(1024, Duration::from_secs(5)), post_json("/hospitals", "{}")).await;
        assert_eq!(body["errors"][0]["field"], "name");
        assert_eq!(body["errors"][0]["reason"], "is required");
    }

    #[tokio::test]
    async fn oversized_headers_are_431() {
        let mut request = Request::get("/hospitals").body(Body::empty()).unwrap();
        request.headers_mut().insert("x-padding", axum::http::HeaderValue::from_str(&"a".repeat(100 * 1024)).unwrap());
        let (status, headers, body) = call(app(1024, Duration::from_secs(5)), request).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert!(body["detail"].as_str().unwrap().contains("limit"), "{body}");
        // Ordinary headers, a bearer token among them, pass.
        let mut request = Request::get("/nowhere").body(Body::empty()).unwrap();
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, axum::http::HeaderValue::from_str(&"t".repeat(2000)).unwrap());
        assert_eq!(call(app(1024, Duration::from_secs(5)), request).await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn oversized_bodies_are_413() {
        let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(2048));
        let (status, headers, _) = call(app(1024, Duration::from_secs(5)), post_json("/hospitals", &big)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_requests_time_out_as_503() {
        let request = Request::get("/slow").body(Body::empty()).unwrap();
        let (status, headers, _) = call(app(1024, Duration::from_millis(50)), request).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[tokio::test]
    async fn a_panic_is_a_500_problem_without_details() {
        let request = Request::get("/panic").body(Body::empty()).unwrap();
        let (status, _, body) = call(app(1024, Duration::from_secs(5)), request).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("boom"), "{body}");
    }

    #[tokio::test]
    async fn request_ids_are_echoed_or_made() {
        let request = Request::get("/health/live").header("x-request-id", "abc-123").body(Body::empty()).unwrap();
        let (_, headers, _) = call(app(1024, Duration::from_secs(5)), request).await;
        assert_eq!(headers["x-request-id"], "abc-123");
        let request = Request::get("/health/live").body(Body::empty()).unwrap();
        let (_, headers, _) = call(app(1024, Duration::from_secs(5)), request).await;
        let made = headers["x-request-id"].to_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(made).unwrap().get_version_num(), 7);
    }
}
