//! The binary's spans, received by a collector of the test's own (OTLP over HTTP, protobuf).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use medcov_testkit::{TestBackend, TestEnv};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

use super::flow::{Api, settle_an_insured_encounter};
use crate::support::{App, PATIENCE, Process, medcov, sample, until};

/// A span as received, with the `service.name` of its resource.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: Span,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }
    fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }
    fn id(&self) -> String {
        hex(&self.span.span_id)
    }
    fn parent(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).map(|v: &AnyValue| match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    })
}

/// Everything the collector received.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    async fn start() -> (Collector, String) {
        let collector = Collector::default();
        let app = axum::Router::new().route("/v1/traces", axum::routing::post(receive)).with_state(collector.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (collector, url)
    }

    fn all(&self) -> Vec<Received> {
        self.spans.lock().expect("lock").clone()
    }

    fn trace(&self, trace_id: &str) -> Vec<Received> {
        self.all().into_iter().filter(|r| hex(&r.span.trace_id) == trace_id).collect()
    }
}

async fn receive(State(collector): State<Collector>, body: Bytes) -> impl axum::response::IntoResponse {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut spans = collector.spans.lock().expect("lock");
    for resource in request.resource_spans {
        let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
        let service = attribute(&attributes, "service.name").unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(Received { service: service.clone(), span });
            }
        }
    }
    ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
}

/// The spans a settled encounter must have produced, by (service, kind, name).
const EXPECTED: [(&str, SpanKind, &str); 9] = [
    ("gateway", SpanKind::Server, "POST /api/hospital/encounters/{id}/close"),
    ("hospital", SpanKind::Server, "POST /encounters/{id}/close"),
    ("hospital", SpanKind::Producer, "publish hospital"),
    ("billing", SpanKind::Consumer, "process hospital"),
    ("billing", SpanKind::Producer, "publish billing"),
    ("insurance", SpanKind::Consumer, "process billing"),
    ("insurance", SpanKind::Producer, "publish insurance"),
    ("billing", SpanKind::Consumer, "process insurance"),
    ("hospital", SpanKind::Client, "UPDATE encounters"),
];

fn lacking(trace: &[Received], root_parent: &str) -> Vec<String> {
    let mut lacking: Vec<String> = EXPECTED
        .iter()
        .filter(|(service, kind, name)| {
            !trace.iter().any(|r| r.service == *service && r.kind() == *kind && r.span.name == *name)
        })
        .map(|(service, kind, name)| format!("{service} {kind:?} {name}"))
        .collect();
    for service in ["hospital", "billing", "insurance"] {
        if !trace.iter().any(|r| r.service == service && r.attribute("db.system").is_some()) {
            lacking.push(format!("a database span of {service}"));
        }
    }
    let ids: BTreeSet<String> = trace.iter().map(Received::id).collect();
    for r in trace {
        if r.parent() != root_parent && !ids.contains(&r.parent()) {
            lacking.push(format!("the parent of {} {}", r.service, r.span.name));
        }
    }
    lacking
}

async fn an_encounter_closing_is_one_trace_through_the_services_the_bus_and_the_databases(env: TestEnv) {
    let (collector, endpoint) = Collector::start().await;
    let mut command = medcov(&[]);
    command.env("MEDCOV__DATA_DIR", env.data_dir());
    // A saga completing is logged at debug (one line per registration would double the log).
    command.env("MEDCOV__LOG__LEVEL", "info,medcov_hospital::workers=debug");
    let (bus, database) = match env.backend {
        TestBackend::Embedded => ("sqlite", "sqlite"),
        TestBackend::Distributed | TestBackend::RedisCluster => {
            command.env("MEDCOV__DATABASE__URL", env.postgres_url().expect("a database"));
            command.env("MEDCOV__REDIS__URL", env.config.redis.url.as_ref().expect("redis").expose());
            command.env("MEDCOV__REDIS__KEY_PREFIX", env.redis_prefix().expect("a prefix"));
            command.env("MEDCOV__AUTH__KEY_ENCRYPTION_KEY", env.config.auth.key_encryption_key.expose());
            ("redis", "postgresql")
        }
    };
    for service in ["GATEWAY", "AUTH", "HOSPITAL", "INSURANCE", "BILLING"] {
        command.env(format!("MEDCOV__SERVICES__{service}__PORT"), "0");
    }
    command.env("MEDCOV__GATEWAY__INTERNAL_PORT", "0");
    command.env("MEDCOV__TELEMETRY__OTLP_ENDPOINT", &endpoint);
    // Export batches every 200 ms rather than every 5 s.
    command.env("OTEL_BSP_SCHEDULE_DELAY", "200");
    let process = Process::spawn(command, 5);

    // Probes and scrapes: counted, never traced nor logged at info. (The gateway's metrics are
    // not on its public port once it has an internal listener: scrape the services'.)
    let client = reqwest::Client::new();
    for (service, path) in [
        ("gateway", "/health/live"),
        ("gateway", "/health/ready"),
        ("hospital", "/health/ready"),
        ("hospital", "/metrics"),
        ("billing", "/health/live"),
        ("billing", "/metrics"),
    ] {
        let status = client.get(process.url(service, path)).send().await.expect("sent").status();
        assert!(status.is_success(), "{service} {path}: {status}");
    }

    let (user, password) = App::initial_admin(env.data_dir());
    let trace_id = format!("{:032x}", u128::from(rand_u64()) << 64 | u128::from(rand_u64()));
    let caller = format!("{:016x}", rand_u64());
    let traceparent = format!("00-{trace_id}-{caller}-01");
    let settled = settle_an_insured_encounter(
        &Api::new(process.url("gateway", "")),
        (&user, &password),
        &[("x-request-id", "obs-registration")],
        &[("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(settled.invoice["status"], "issued");

    let deadline = Instant::now() + Duration::from_secs(60);
    let trace = loop {
        let trace = collector.trace(&trace_id);
        let lacking = lacking(&trace, &caller);
        if lacking.is_empty() {
            break trace;
        }
        let seen: Vec<String> = trace.iter().map(|r| format!("{} {:?} {}", r.service, r.kind(), r.span.name)).collect();
        assert!(Instant::now() < deadline, "after 60 s the trace still lacks {lacking:?}; it has {seen:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let find = |service: &str, kind: SpanKind, name: &str| {
        trace
            .iter()
            .find(|r| r.service == service && r.kind() == kind && r.span.name == name)
            .unwrap_or_else(|| panic!("{service} {kind:?} {name}"))
            .clone()
    };
    // HTTP: SERVER spans named after the route template, with the conventions' attributes,
    // the gateway's under the caller's span and the hospital's under the gateway's.
    let at_gateway = find("gateway", SpanKind::Server, "POST /api/hospital/encounters/{id}/close");
    let at_hospital = find("hospital", SpanKind::Server, "POST /encounters/{id}/close");
    assert_eq!(at_gateway.parent(), caller);
    assert_eq!(at_hospital.parent(), at_gateway.id());
    for (span, route) in
        [(&at_gateway, "/api/hospital/encounters/{id}/close"), (&at_hospital, "/encounters/{id}/close")]
    {
        assert_eq!(span.attribute("http.request.method").as_deref(), Some("POST"));
        assert_eq!(span.attribute("http.route").as_deref(), Some(route));
        assert_eq!(span.attribute("http.response.status_code").as_deref(), Some("200"));
    }
    assert!(!format!("{:?}", trace).contains(&settled.encounter), "no path (with its ids) in any span");

    // Events: the relay's PRODUCER span under the request, each consumer under a producer.
    let publish = find("hospital", SpanKind::Producer, "publish hospital");
    assert_eq!(publish.attribute("messaging.destination.name").as_deref(), Some("hospital"));
    assert_eq!(publish.attribute("messaging.operation.type").as_deref(), Some("send"));
    let by_id: BTreeMap<String, &Received> = trace.iter().map(|r| (r.id(), r)).collect();
    for (service, stream) in [("billing", "hospital"), ("insurance", "billing"), ("billing", "insurance")] {
        let consumer = find(service, SpanKind::Consumer, &format!("process {stream}"));
        assert_eq!(consumer.attribute("messaging.system").as_deref(), Some(bus));
        assert_eq!(consumer.attribute("messaging.destination.name").as_deref(), Some(stream));
        assert_eq!(consumer.attribute("messaging.consumer.group.name").as_deref(), Some(service));
        assert_eq!(consumer.attribute("messaging.operation.type").as_deref(), Some("process"));
        let parent = by_id.get(&consumer.parent()).expect("the consumer's parent is in the trace");
        assert_eq!((parent.kind(), parent.service.as_str()), (SpanKind::Producer, stream), "{consumer:?}");
    }

    // Databases: CLIENT spans named by statement kind and table, never with the statement.
    let statements: Vec<&Received> = trace.iter().filter(|r| r.attribute("db.system").is_some()).collect();
    for span in &statements {
        assert_eq!(span.kind(), SpanKind::Client, "{span:?}");
        assert_eq!(span.attribute("db.system").as_deref(), Some(database));
        let operation = span.attribute("db.operation.name").expect("an operation");
        match span.attribute("db.collection.name") {
            Some(table) => assert_eq!(span.span.name, format!("{operation} {table}")),
            None => assert_eq!(span.span.name, operation),
        }
    }
    assert!(
        statements.iter().any(|s| s.service == "billing" && s.span.name == "INSERT invoices"),
        "billing's invoice written: {:?}",
        statements.iter().map(|s| format!("{} {}", s.service, s.span.name)).collect::<Vec<_>>()
    );
    for r in collector.all() {
        for kv in &r.span.attributes {
            assert!(!matches!(kv.key.as_str(), "db.statement" | "db.query.text"), "{r:?}");
        }
        // Nothing of any trace is a probe or a scrape.
        let route = r.attribute("http.route").unwrap_or_default();
        assert!(!route.starts_with("/health/") && route != "/metrics", "a probe was traced: {r:?}");
    }

    // The registration saga, orchestrated by hospital: its moves are spans too.
    let all = collector.all();
    let registration: Vec<&Received> =
        all.iter().filter(|r| r.attribute("medcov.saga.kind").as_deref() == Some("patient_registration")).collect();
    for command in ["verify_and_link", "open_account"] {
        assert!(
            registration
                .iter()
                .any(|r| r.span.name == format!("saga patient_registration {command}") && r.service == "hospital"),
            "the saga's {command} step: {registration:?}"
        );
    }

    // The registration saga ends in its own time (hospital handling billing's reply to
    // open_account), after the encounter may be settled: wait for its end before stopping, or
    // it may not have been logged yet.
    until("the registration saga to complete", PATIENCE, async || {
        let metrics = client.get(process.url("hospital", "/metrics")).send().await.expect("sent").text().await;
        sample(&metrics.expect("metrics"), "sagas", &["kind=\"patient_registration\"", "state=\"completed\""])
            .is_some_and(|completed| completed >= 1.0)
    })
    .await;

    // Logs: no probe at info; the consumers' lines name their trace and the request that
    // started the chain.
    let (status, lines) = process.terminate();
    assert!(status.success());
    let events: Vec<serde_json::Value> = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for event in &events {
        let route = event["span"]["route"].as_str().unwrap_or_default();
        assert!(
            !(event["message"] == "request finished" && (route.starts_with("/health/") || route == "/metrics")),
            "a probe logged at info: {event}"
        );
    }
    let completed = events
        .iter()
        .find(|e| e["message"] == "patient registration saga completed")
        .unwrap_or_else(|| panic!("the saga's end is logged: {lines:#?}"));
    assert_eq!(completed["span"]["correlation_id"], "obs-registration", "{completed}");
    assert_eq!(completed["span"]["trace_id"].as_str().map(str::len), Some(32), "{completed}");
}

medcov_testkit::backend_suite!(an_encounter_closing_is_one_trace_through_the_services_the_bus_and_the_databases);

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish() | 1
}
