//! Database calls as CLIENT spans, without touching any store code.
//!
//! sqlx reports every statement it ran as a `sqlx::query` event (its text and how long it
//! took). [`DbSpans`] turns each one that happens inside an exported span into a child span
//! named after the statement's kind and table (`SELECT invoices`, `INSERT outbox`), with
//! `db.system`, `db.operation.name` and `db.collection.name`, timed as sqlx timed it. The
//! statement text is never exported (nor are parameters, which sqlx does not report): only
//! its kind and table. A statement outside any span (a poll of the outbox, a readiness ping)
//! makes no span, so idle loops do not flood the collector.
//!
//! Which database system a service uses is told once, when its database is opened
//! ([`register`]); the span's service is the nearest enclosing span's `service` field.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

use crate::export::SERVICE_ATTRIBUTE;

fn systems() -> &'static RwLock<BTreeMap<String, &'static str>> {
    static SYSTEMS: OnceLock<RwLock<BTreeMap<String, &'static str>>> = OnceLock::new();
    SYSTEMS.get_or_init(RwLock::default)
}

/// Records that `service`'s database is `system` (OpenTelemetry's name: `postgresql`,
/// `sqlite`).
pub fn register(service: &str, system: &'static str) {
    systems().write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(service.to_owned(), system);
}

fn system_of(service: Option<&str>) -> Option<&'static str> {
    let systems = systems().read().unwrap_or_else(std::sync::PoisonError::into_inner);
    match service {
        Some(service) => systems.get(service).copied(),
        // One system for the whole process: no doubt which.
        None => {
            let mut all = systems.values().copied();
            let first = all.next()?;
            all.all(|s| s == first).then_some(first)
        }
    }
}

/// The `service` a span was given, kept for the database spans under it.
struct SpanService(String);

#[derive(Default)]
struct ServiceField(Option<String>);

impl Visit for ServiceField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == SERVICE_ATTRIBUTE {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == SERVICE_ATTRIBUTE {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

/// What a `sqlx::query` event says.
#[derive(Default)]
struct Statement {
    summary: String,
    text: String,
    elapsed: Option<f64>,
    rows_returned: Option<u64>,
    rows_affected: Option<u64>,
}

impl Visit for Statement {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.text = value.to_owned(),
            _ => {}
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed = Some(value);
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "rows_returned" => self.rows_returned = Some(value),
            "rows_affected" => self.rows_affected = Some(value),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "summary" => self.summary = format!("{value:?}").trim_matches('"').to_owned(),
            "db.statement" => self.text = format!("{value:?}").trim_matches('"').to_owned(),
            _ => {}
        }
    }
}

/// The layer. It needs the `sqlx::query` events at DEBUG, and the spans they happen in.
pub struct DbSpans {
    tracer: SdkTracer,
    /// The subscriber this layer is part of, to read the OpenTelemetry context of a span.
    /// Told by [`Layer::on_register_dispatch`], or through [`DbSpans::dispatch_slot`] when a
    /// wrapper (an `Option`) does not pass that call on.
    dispatch: Arc<OnceLock<tracing::dispatcher::WeakDispatch>>,
}

impl DbSpans {
    pub fn new(tracer: SdkTracer) -> DbSpans {
        DbSpans { tracer, dispatch: Arc::default() }
    }

    /// Where to put the subscriber once it is installed.
    pub fn dispatch_slot(&self) -> Arc<OnceLock<tracing::dispatcher::WeakDispatch>> {
        self.dispatch.clone()
    }
}

impl<S> Layer<S> for DbSpans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut field = ServiceField::default();
        attrs.record(&mut field);
        if let (Some(service), Some(span)) = (field.0, ctx.span(id)) {
            span.extensions_mut().insert(SpanService(service));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else { return };
        let mut parent = None;
        let mut service = None;
        for span in scope {
            if parent.is_none() {
                parent = Some(span.id());
            }
            if let Some(found) = span.extensions().get::<SpanService>() {
                service = Some(found.0.clone());
                break;
            }
        }
        let (Some(parent), Some(dispatch)) = (parent, self.dispatch.get().and_then(|d| d.upgrade())) else { return };
        let Some(parent_cx) = tracing_opentelemetry::get_otel_context(&parent, &dispatch) else { return };
        if !parent_cx.span().span_context().is_sampled() {
            return;
        }
        let mut statement = Statement::default();
        event.record(&mut statement);
        let text = if statement.text.trim().is_empty() { statement.summary.as_str() } else { statement.text.as_str() };
        let (operation, table) = classify(text);
        self.emit(&parent_cx, service.as_deref(), &operation, table.as_deref(), &statement);
    }
}

impl DbSpans {
    fn emit(&self, parent: &Context, service: Option<&str>, operation: &str, table: Option<&str>, s: &Statement) {
        let end = SystemTime::now();
        let start = s.elapsed.map(Duration::from_secs_f64).and_then(|d| end.checked_sub(d)).unwrap_or(end);
        let name = match table {
            Some(table) => format!("{operation} {table}"),
            None => operation.to_owned(),
        };
        let mut attributes = vec![KeyValue::new("db.operation.name", operation.to_owned())];
        if let Some(system) = system_of(service) {
            attributes.push(KeyValue::new("db.system", system));
            attributes.push(KeyValue::new("db.system.name", system));
        }
        if let Some(table) = table {
            attributes.push(KeyValue::new("db.collection.name", table.to_owned()));
        }
        if let Some(rows) = s.rows_returned.filter(|n| *n > 0) {
            attributes.push(KeyValue::new("db.response.returned_rows", rows as i64));
        }
        if let Some(rows) = s.rows_affected.filter(|n| *n > 0) {
            attributes.push(KeyValue::new("medcov.db.rows_affected", rows as i64));
        }
        if let Some(service) = service {
            attributes.push(KeyValue::new(SERVICE_ATTRIBUTE, service.to_owned()));
        }
        let mut span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, parent);
        span.end_with_timestamp(end);
    }
}

/// A statement's kind (`SELECT`, `INSERT`, …) and the table it works on, if it names one.
/// Literals and comments are skipped; nothing else of the text is kept.
pub fn classify(sql: &str) -> (String, Option<String>) {
    let words = words(sql);
    let Some(first) = words.first() else { return ("QUERY".to_owned(), None) };
    let mut operation = first.0.to_ascii_uppercase();
    let mut at = 0;
    if operation == "WITH" {
        // The statement after the common table expressions: the first verb at depth 0.
        match words.iter().position(|(w, depth)| {
            *depth == 0 && matches!(w.to_ascii_uppercase().as_str(), "SELECT" | "INSERT" | "UPDATE" | "DELETE")
        }) {
            Some(found) => {
                operation = words[found].0.to_ascii_uppercase();
                at = found;
            }
            None => return (operation, None),
        }
    }
    let after = |keyword: &str| {
        words[at..]
            .iter()
            .position(|(w, depth)| *depth == 0 && w.eq_ignore_ascii_case(keyword))
            .and_then(|i| words.get(at + i + 1))
            .filter(|(_, depth)| *depth == 0)
            .map(|(w, _)| w.clone())
    };
    let table = match operation.as_str() {
        "SELECT" | "DELETE" => after("FROM"),
        "INSERT" => after("INTO"),
        "UPDATE" => words.get(at + 1).map(|(w, _)| w.clone()),
        _ => None,
    };
    let table = table
        .map(|t| t.trim_matches('"').to_owned())
        .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'));
    (operation, table)
}

/// The words of a statement with their parenthesis depth; string literals, quoted
/// identifiers' quotes, comments and punctuation are left out.
fn words(sql: &str) -> Vec<(String, usize)> {
    let mut words = Vec::new();
    let mut depth = 0usize;
    let mut chars = sql.chars().peekable();
    let mut current = String::new();
    let flush = |current: &mut String, words: &mut Vec<(String, usize)>, depth: usize| {
        if !current.is_empty() {
            words.push((std::mem::take(current), depth));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                flush(&mut current, &mut words, depth);
                while let Some(c) = chars.next() {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                flush(&mut current, &mut words, depth);
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' => {
                flush(&mut current, &mut words, depth);
                depth += 1;
            }
            ')' => {
                flush(&mut current, &mut words, depth);
                depth = depth.saturating_sub(1);
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '"' => current.push(c),
            _ => flush(&mut current, &mut words, depth),
        }
    }
    flush(&mut current, &mut words, depth);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_named_by_kind_and_table_only() {
        let table = [
            ("SELECT id, number FROM invoices WHERE id = $1", "SELECT", Some("invoices")),
            ("select * from \"outbox\" where published_at is null", "SELECT", Some("outbox")),
            (
                "INSERT INTO outbox (id, event_type) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                "INSERT",
                Some("outbox"),
            ),
            ("UPDATE sagas SET state = $1 WHERE id = $2", "UPDATE", Some("sagas")),
            ("DELETE FROM inbox WHERE handled_at < $1", "DELETE", Some("inbox")),
            (
                "WITH due AS (SELECT id FROM claims WHERE x = 'from y') UPDATE invoices SET a = 1",
                "UPDATE",
                Some("invoices"),
            ),
            ("SELECT COUNT(*) FROM (SELECT 1 FROM a) sub", "SELECT", None),
            ("SELECT 1", "SELECT", None),
            ("BEGIN IMMEDIATE", "BEGIN", None),
            ("COMMIT", "COMMIT", None),
            ("SELECT a FROM public.patients", "SELECT", Some("public.patients")),
            ("", "QUERY", None),
        ];
        for (sql, operation, table) in table {
            let (op, t) = classify(sql);
            assert_eq!((op.as_str(), t.as_deref()), (operation, table), "{sql}");
        }
    }

    #[test]
    fn literals_never_become_names() {
        let (op, table) = classify("SELECT x FROM 'Imani Otieno'");
        assert_eq!((op.as_str(), table), ("SELECT", None));
    }
}
