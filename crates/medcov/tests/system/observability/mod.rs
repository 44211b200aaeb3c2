//! Seeing MedCov run: its metrics, the dashboards and alerts built on them, and its traces.
//!
//! - Every service's `/metrics`, in both modes (the distributed one with the gateway in its
//!   own runtime, so the mesh's metrics show), passes `promtool check metrics`; every metric
//!   and label a dashboard or an alert reads is one those scrapes show.
//! - Every alert rule is unit-tested firing and not firing (`promtool test rules`) and has a
//!   runbook entry in docs/operations.md.
//! - A collector of the test's own receives the spans of the binary: an encounter closing is
//!   one trace across the gateway, hospital, billing and insurance, through the relays and
//!   consumers, with the database statements, in OpenTelemetry's conventions; probes are
//!   neither traced nor logged at info, and the consumers' logs carry the trace and
//!   correlation ids.

mod flow;
mod promql;
mod traces;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use medcov_config::ServiceName;
use medcov_testkit::TestEnv;
use medcov_testkit::tools;

use crate::support::App;
use flow::{Api, settle_an_insured_encounter};
use promql::{Exposed, expose, missing};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn promtool() -> PathBuf {
    tools::require("promtool", "apt-get install prometheus")
}

/// Where a running App serves a service's metrics: the gateway on its internal listener, the
/// others on their port.
fn metrics_url(app: &App, service: ServiceName) -> String {
    let running = app.running.as_ref().expect("running");
    let addr = running.internal_addr(service).or_else(|| running.addr(service)).expect("service is running");
    format!("http://{addr}/metrics")
}

/// Every service's `/metrics`, as text.
async fn scrape(targets: &[(ServiceName, String)]) -> BTreeMap<ServiceName, String> {
    let client = reqwest::Client::new();
    let mut out = BTreeMap::new();
    for (service, url) in targets {
        let text = client.get(url).send().await.expect("a scrape").text().await.expect("a body");
        out.insert(*service, text);
    }
    out
}

/// Every PromQL expression of the dashboards and the alert rules, each with where it is.
fn expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dir = repo().join("deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("deploy/grafana/dashboards").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(files.len() >= 7, "the seven dashboards: {files:?}");
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("a dashboard")).expect("dashboard JSON");
        for variable in board["templating"]["list"].as_array().into_iter().flatten() {
            if let Some(query) = variable["query"]["query"].as_str() {
                out.push((format!("{name}: variable {}", variable["name"]), query.to_owned()));
            }
        }
        for panel in board["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((format!("{name}: panel {}", panel["title"]), expr.to_owned()));
                }
            }
        }
    }
    for (group, rule) in rules() {
        out.push((
            format!("rules: {group}/{}", rule["alert"].as_str().unwrap_or("?")),
            rule["expr"].as_str().expect("expr").to_owned(),
        ));
    }
    out
}

fn rules_file() -> PathBuf {
    repo().join("deploy/prometheus/rules/medcov.rules.yml")
}

fn rules() -> Vec<(String, serde_yaml_ng::Value)> {
    let text = std::fs::read_to_string(rules_file()).expect("the rules");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            out.push((group["name"].as_str().unwrap_or_default().to_owned(), rule.clone()));
        }
    }
    out
}

/// Feeds `text` to `promtool check metrics`; panics with its complaints.
fn promtool_accepts(what: &str, text: &str) {
    let mut child = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("metrics written");
    let output = child.wait_with_output().expect("promtool ends");
    assert!(
        output.status.success(),
        "promtool check metrics refuses {what}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Scrapes until every metric the dashboards and alerts read shows (those whose name starts
/// with one of `absent_here` excepted) or a minute has passed; then holds each scrape to
/// promtool and adds it to `exposed`.
async fn check_scrapes(mode: &str, targets: &[(ServiceName, String)], absent_here: &[&str], exposed: &mut Exposed) {
    let exprs = expressions();
    let deadline = Instant::now() + Duration::from_secs(60);
    let scrapes = loop {
        let scrapes = scrape(targets).await;
        let mut here = Exposed::new();
        for text in scrapes.values() {
            expose(text, &mut here);
        }
        let lacking: Vec<String> = exprs
            .iter()
            .filter(|(_, expr)| {
                !promql::uses(expr).metrics.keys().any(|m| absent_here.iter().any(|prefix| m.starts_with(prefix)))
            })
            .flat_map(|(_, expr)| missing(expr, &here))
            .collect();
        if lacking.is_empty() {
            break scrapes;
        }
        if Instant::now() > deadline {
            // The other mode may show it; the final check says.
            eprintln!("{mode}: after a minute the scrapes still lack {lacking:?}");
            break scrapes;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for (service, text) in &scrapes {
        promtool_accepts(&format!("the {service} service's metrics ({mode})"), text);
        expose(text, exposed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scrape_passes_promtool_and_the_dashboards_and_alerts_read_only_what_it_shows() {
    let mut exposed = Exposed::new();

    // Embedded: every service in one process, on SQLite.
    let env = TestEnv::embedded().await;
    let app = App::start(env.config.clone(), "all").await;
    let (user, password) = App::initial_admin(env.data_dir());
    settle_an_insured_encounter(&Api::new(app.url(ServiceName::Gateway, "")), (&user, &password), &[], &[]).await;
    let targets: Vec<_> = ServiceName::ALL.iter().map(|&s| (s, metrics_url(&app, s))).collect();
    // No calls cross processes here: the mesh has nothing to count, and there is no Redis.
    check_scrapes("embedded", &targets, &["mesh_", "redis_", "cache_versions_tracked"], &mut exposed).await;
    app.stop().await;

    // Distributed: PostgreSQL and Redis, the gateway in a runtime of its own.
    let env = TestEnv::distributed().await;
    let services = App::start(env.config.clone(), "auth,hospital,insurance,billing").await;
    let mut gateway_config = env.config.clone();
    for name in [ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing] {
        gateway_config.services.get_mut(name).url = Some(services.url(name, "/").parse().expect("url"));
    }
    let gateway = App::start(gateway_config, "gateway").await;
    let (user, password) = App::initial_admin(env.data_dir());
    settle_an_insured_encounter(&Api::new(gateway.url(ServiceName::Gateway, "")), (&user, &password), &[], &[]).await;
    let mut targets: Vec<_> = [ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing]
        .iter()
        .map(|&s| (s, metrics_url(&services, s)))
        .collect();
    targets.push((ServiceName::Gateway, metrics_url(&gateway, ServiceName::Gateway)));
    // SQLite's write lock is the embedded mode's: PostgreSQL's writers take no turns.
    check_scrapes("distributed", &targets, &["db_write_lock_"], &mut exposed).await;
    let gateway_text = scrape(&targets[4..]).await.remove(&ServiceName::Gateway).expect("gateway");
    // The gateway names the service and route it forwarded to, not its catch-all route.
    assert!(
        gateway_text.contains(r#"route="/api/hospital/encounters/{id}/close""#)
            && gateway_text.contains(r#"upstream="hospital""#),
        "{gateway_text}"
    );
    assert!(!gateway_text.contains(r#"route="/api/{service}/{*path}""#), "{gateway_text}");
    gateway.stop().await;
    services.stop().await;

    let mut problems = Vec::new();
    for (place, expr) in expressions() {
        for problem in missing(&expr, &exposed) {
            problems.push(format!("{place}: {problem}\n    {expr}"));
        }
    }
    assert!(problems.is_empty(), "dashboards and alerts read what MedCov does not expose:\n{}", problems.join("\n"));
}

#[test]
fn every_alert_is_unit_tested_firing_and_not_firing_and_has_a_runbook_entry() {
    let dir = repo().join("deploy/prometheus/rules");
    let check =
        std::process::Command::new(promtool()).arg("check").arg("rules").arg(rules_file()).output().expect("runs");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = std::process::Command::new(promtool())
        .args(["test", "rules", "medcov.rules.test.yml"])
        .current_dir(&dir)
        .output()
        .expect("runs");
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );

    let tests: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("medcov.rules.test.yml")).expect("the tests"))
            .expect("YAML");
    let cases: Vec<&serde_yaml_ng::Value> = tests["tests"]
        .as_sequence()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().into_iter().flatten())
        .collect();
    let operations = std::fs::read_to_string(repo().join("docs/operations.md")).expect("docs/operations.md");
    let anchors: Vec<String> = operations
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim().to_ascii_lowercase().replace(' ', "-"))
        .collect();
    let alerts: Vec<serde_yaml_ng::Value> =
        rules().into_iter().map(|(_, r)| r).filter(|r| r["alert"].is_string()).collect();
    assert!(alerts.len() >= 10, "the ten alerts the issue lists");
    for rule in alerts {
        let name = rule["alert"].as_str().expect("a name");
        let of_this: Vec<_> = cases.iter().filter(|c| c["alertname"].as_str() == Some(name)).collect();
        let firing = of_this.iter().any(|c| c["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty()));
        let quiet = of_this.iter().any(|c| c["exp_alerts"].as_sequence().is_some_and(|a| a.is_empty()));
        assert!(firing && quiet, "{name} needs a test where it fires and one where it does not");
        let runbook = rule["annotations"]["runbook_url"].as_str().unwrap_or_default();
        let anchor =
            runbook.strip_prefix("docs/operations.md#").unwrap_or_else(|| panic!("{name}: runbook_url {runbook:?}"));
        assert!(anchors.iter().any(|a| a == anchor), "{name}: docs/operations.md has no section #{anchor}");
        assert!(rule["annotations"]["summary"].is_string(), "{name} has a summary");
    }
}

#[test]
fn dashboards_read_the_prometheus_datasource_and_name_themselves_once() {
    let dir = repo().join("deploy/grafana/dashboards");
    let mut uids = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("dashboards") {
        let path = entry.expect("entry").path();
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        uids.push(board["uid"].as_str().expect("a uid").to_owned());
        for panel in board["panels"].as_array().expect("panels") {
            if panel["type"] != "row" {
                assert_eq!(panel["datasource"]["uid"], "prometheus", "{}: {}", path.display(), panel["title"]);
                assert!(panel["description"].is_string(), "{}: {} says what it shows", path.display(), panel["title"]);
            }
        }
    }
    let total = uids.len();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), total, "dashboard uids are unique");
}
