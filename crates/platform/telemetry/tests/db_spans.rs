//! Database statements inside a span become CLIENT spans named by kind and table, under that
//! span and in its service; statements outside any span make none. SQLite runs statements on
//! a worker thread of its own, so this also holds the span's crossing of threads.

use std::sync::{Arc, Mutex};

use medcov_config::{LogConfig, LogFormat};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracing::Instrument;

#[derive(Debug, Clone, Default)]
struct Memory(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Memory {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_in_a_span_are_client_spans_named_by_kind_and_table() {
    let memory = Memory::default();
    let log = LogConfig { format: LogFormat::Pretty, level: "info".into(), ..Default::default() };
    let guard = medcov_telemetry::install(&log, 1.0, "medcov-test", Some(memory.clone())).expect("installed");
    medcov_telemetry::db::register("hospital", "sqlite");

    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.expect("sqlite");
    sqlx::query("CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT)").execute(&pool).await.expect("table");
    let request = tracing::info_span!("request", service = "hospital", otel.kind = "server");
    async {
        sqlx::query("INSERT INTO patients (id, name) VALUES ($1, $2)")
            .bind(1)
            .bind("Imani Otieno")
            .execute(&pool)
            .await
            .expect("insert");
        sqlx::query("SELECT id, name FROM patients WHERE id = $1").bind(1).fetch_one(&pool).await.expect("select");
    }
    .instrument(request)
    .await;
    // The request span ends when its last handle goes, which SQLite's worker thread may hold a
    // moment longer: wait for it to reach the exporter.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let spans = loop {
        guard.flush();
        let spans = memory.0.lock().unwrap().clone();
        if spans.iter().any(|s| s.name == "request") || std::time::Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // (A connection opened for the request sets itself up with PRAGMAs: real work, traced.)
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).filter(|n| *n != "PRAGMA").collect();
    assert_eq!(names, ["INSERT patients", "SELECT patients", "request"], "the table's creation was outside any span");
    let parent = spans.iter().find(|s| s.name == "request").expect("the request").span_context.span_id();
    for span in spans.iter().filter(|s| s.name != "request") {
        assert_eq!(span.span_kind, SpanKind::Client);
        assert_eq!(span.parent_span_id, parent);
        let attribute =
            |key: &str| span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string());
        assert_eq!(attribute("db.system").as_deref(), Some("sqlite"));
        if span.name != "PRAGMA" {
            assert_eq!(attribute("db.collection.name").as_deref(), Some("patients"));
        }
        assert_eq!(attribute("service").as_deref(), Some("hospital"));
        assert!(!format!("{span:?}").contains("Imani"), "no parameter in a span");
        assert!(!format!("{span:?}").contains("VALUES"), "no statement text in a span");
    }
}
