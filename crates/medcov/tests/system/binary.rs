//! The `medcov` binary as a user runs it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Process, medcov};

fn all_ports_free(command: &mut Command) {
    for service in ["GATEWAY", "AUTH", "HOSPITAL", "INSURANCE", "BILLING"] {
        command.env(format!("MEDCOV__SERVICES__{service}__PORT"), "0");
    }
    command.env("MEDCOV__GATEWAY__INTERNAL_PORT", "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_everything_and_sigterm_drains_and_exits_zero() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut command = medcov(&[]);
    command.env("MEDCOV__DATA_DIR", data.path());
    all_ports_free(&mut command);
    let process = Process::spawn(command, 5);

    let client = reqwest::Client::new();
    for service in ["gateway", "auth", "hospital", "insurance", "billing"] {
        let response = client.get(process.url(service, "/health/ready")).send().await.expect("sent");
        assert_eq!(response.status(), 200, "{service}");
    }
    let response = client.get(process.url("gateway", "/api/billing/health/live")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    assert!(data.path().join("hospital.db").exists());

    let (status, lines) = process.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(lines.iter().any(|l| l.contains("SIGTERM received")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("MedCov stopped")), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_process_and_a_services_process_work_together() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut command = medcov(&["serve", "--target", "hospital,auth,insurance,billing"]);
    command.env("MEDCOV__DATA_DIR", data.path());
    all_ports_free(&mut command);
    let services = Process::spawn(command, 4);
    assert!(!services.addresses.contains_key("gateway"));

    let mut command = medcov(&["serve", "--target", "gateway"]);
    all_ports_free(&mut command);
    for service in ["auth", "hospital", "insurance", "billing"] {
        command.env(format!("MEDCOV__SERVICES__{}__URL", service.to_uppercase()), services.url(service, "/"));
    }
    let gateway = Process::spawn(command, 1);

    let client = reqwest::Client::new();
    for service in ["auth", "hospital", "insurance", "billing"] {
        let response =
            client.get(gateway.url("gateway", &format!("/api/{service}/health/ready"))).send().await.expect("sent");
        assert_eq!(response.status(), 200, "{service}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["service"], service);
    }
    assert!(!data.path().join("gateway.db").exists());
    let (status, _) = gateway.terminate();
    assert!(status.success());
    let (status, _) = services.terminate();
    assert!(status.success());
}

#[test]
fn only_the_targeted_service_starts() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut command = medcov(&["serve", "--target", "hospital"]);
    command.env("MEDCOV__DATA_DIR", data.path());
    all_ports_free(&mut command);
    let process = Process::spawn(command, 1);
    assert_eq!(process.addresses.keys().collect::<Vec<_>>(), ["hospital"]);
    let (status, _) = process.terminate();
    assert!(status.success());
    let mut files: Vec<String> = std::fs::read_dir(data.path())
        .expect("data dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".db"))
        .collect();
    files.sort();
    // Its own database, and the embedded event bus its events go to; no other service's.
    assert_eq!(files, ["bus.db", "hospital.db"]);
}

#[test]
fn the_printed_default_config_is_accepted_as_a_config_file() {
    let output = medcov(&["config", "default"]).output().expect("runs");
    assert!(output.status.success());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("medcov.toml");
    std::fs::write(&file, &output.stdout).expect("write");
    let check = medcov(&["--config", file.to_str().expect("utf-8"), "config", "check"]).output().expect("runs");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}

/// The container image's role and health check: `medcov` alone serves what MEDCOV_TARGET names,
/// and `medcov health` (the image's HEALTHCHECK) asks those services, listening on every
/// interface as in a container, and fails once they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn medcov_target_chooses_the_role_and_health_checks_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut command = medcov(&[]);
    all_ports_free(&mut command);
    command
        .env("MEDCOV__DATA_DIR", data.path())
        .env("MEDCOV_TARGET", "hospital,auth")
        .env("MEDCOV__HTTP__HOST", "0.0.0.0");
    let process = Process::spawn(command, 2);
    assert_eq!(process.addresses.keys().collect::<Vec<_>>(), ["auth", "hospital"]);
    let port = |service: &str| process.addresses[service].rsplit(':').next().expect("a port").to_owned();
    let (auth, hospital) = (port("auth"), port("hospital"));
    let health = |extra: &[&str]| {
        let mut command = medcov(&["health"]);
        command
            .args(extra)
            .env("MEDCOV_TARGET", "auth,hospital")
            .env("MEDCOV__HTTP__HOST", "0.0.0.0")
            .env("MEDCOV__SERVICES__AUTH__PORT", &auth)
            .env("MEDCOV__SERVICES__HOSPITAL__PORT", &hospital);
        command.output().expect("medcov health runs")
    };
    for extra in [&[][..], &["--ready"][..]] {
        let answer = health(extra);
        assert!(answer.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&answer.stderr));
        assert_eq!(String::from_utf8_lossy(&answer.stdout).lines().count(), 2, "one line per service");
    }
    let (status, _) = process.terminate();
    assert!(status.success());
    let answer = health(&[]);
    assert!(!answer.status.success());
    let said = String::from_utf8_lossy(&answer.stderr);
    assert!(said.contains("auth did not answer") && said.contains("hospital did not answer"), "{said}");
}

/// `config check` reads the mesh policy file as `serve` does: what one refuses, so does the other.
#[test]
fn config_check_judges_the_mesh_policy_as_serve_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("mesh.toml");
    let text = "[upstreams.insurance.routes.eligibility]\npath_prefix = \"/eligibility\"\n[upstreams.insurance.routes.eligibility.retry]\nattempts = 11\n";
    std::fs::write(&bad, text).expect("write");
    let problem = "upstreams.insurance.routes.eligibility.retry.attempts";
    let check = medcov(&["config", "check"]).env("MEDCOV__MESH__POLICY_FILE", &bad).output().expect("runs");
    assert!(!check.status.success(), "config check passed a policy serve refuses");
    assert!(String::from_utf8_lossy(&check.stderr).contains(problem), "{}", String::from_utf8_lossy(&check.stderr));
    let mut serve = medcov(&["serve", "--target", "gateway"]);
    all_ports_free(&mut serve);
    let serve = serve.env("MEDCOV__MESH__POLICY_FILE", &bad).output().expect("runs");
    assert!(!serve.status.success());
    assert!(String::from_utf8_lossy(&serve.stderr).contains(problem), "{}", String::from_utf8_lossy(&serve.stderr));

    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/mesh.example.toml");
    let check = medcov(&["config", "check"]).env("MEDCOV__MESH__POLICY_FILE", &example).output().expect("runs");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn wrong_settings_stop_start_up_naming_the_key() {
    let table: [(&str, &str, &[&str]); 4] = [
        ("MEDCOV__LOG__FORMAT", "xml", &["log.format", "json", "pretty"]),
        ("MEDCOV__SERVICES__HOSPITAL__PORT", "not-a-port", &["services.hospital.port"]),
        ("MEDCOV__DATABASE__URL", "mysql://root@db/medcov", &["database.url", "postgres://"]),
        ("MEDCOV__LOG__LEVEL", "info,=[", &["log.level"]),
    ];
    for (key, value, expected) in table {
        let output = medcov(&["serve"]).env(key, value).output().expect("runs");
        assert!(!output.status.success(), "{key}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        for word in expected {
            assert!(stderr.contains(word), "{key}={value}: {stderr}");
        }
    }
}

#[test]
fn passwords_never_show_in_the_printed_configuration() {
    let output = medcov(&["config", "show"])
        .env("MEDCOV__DATABASE__URL", "postgres://medcov:s3cret@127.0.0.1:5432/medcov")
        .env("MEDCOV__REDIS__URL", "redis://:hunter2@127.0.0.1:6379")
        .env("MEDCOV__AUTH__KEY_ENCRYPTION_KEY", "a2VrLWtlay1rZWsta2VrLWtlay1rZWsta2VrLWtlay0=")
        .output()
        .expect("runs");
    assert!(output.status.success());
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains("postgres://medcov:***@127.0.0.1:5432/medcov"), "{shown}");
    assert!(!shown.contains("s3cret") && !shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("key_encryption_key = \"<redacted>\"") && !shown.contains("a2Vr"), "{shown}");
}

#[test]
fn version_and_help() {
    let output = medcov(&["version"]).output().expect("runs");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), format!("medcov {}", env!("CARGO_PKG_VERSION")));
    let help = medcov(&["--help"]).output().expect("runs");
    let text = String::from_utf8_lossy(&help.stdout);
    for word in ["serve", "migrate", "config", "version"] {
        assert!(text.contains(word), "{text}");
    }
}

/// The binary's allocator gives freed memory back to the system on its own threads (jemalloc's
/// background threads, dirty pages decaying over 10 s), so a burst's memory does not stay with
/// threads that went idle; `_RJEM_MALLOC_CONF` is the operator's way to change it
/// (docs/operations.md).
#[test]
fn the_allocator_returns_freed_memory_in_the_background_and_takes_the_operators_settings() {
    let stats = |conf: &str| {
        let output = medcov(&["version"]).env("_RJEM_MALLOC_CONF", conf).output().expect("runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let defaults = stats("stats_print:true");
    assert!(defaults.contains("opt.background_thread: true"), "{defaults}");
    assert!(defaults.contains("opt.dirty_decay_ms: 10000"), "{defaults}");
    let tuned = stats("stats_print:true,dirty_decay_ms:1000");
    assert!(tuned.contains("opt.dirty_decay_ms: 1000 "), "{tuned}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_in_the_callers_trace() {
    use axum::routing::post;
    // A stand-in collector: records what arrives at the OTLP/HTTP traces path.
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let collector = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let _ = sender.send(body.to_vec());
            async { axum::http::StatusCode::OK }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let data = tempfile::tempdir().expect("temp dir");
    let mut command = medcov(&["serve", "--target", "hospital"]);
    command.env("MEDCOV__DATA_DIR", data.path()).env("MEDCOV__TELEMETRY__OTLP_ENDPOINT", &endpoint);
    all_ports_free(&mut command);
    let process = Process::spawn(command, 1);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = reqwest::Client::new()
        // (Not a health probe: those are never traced.)
        .get(process.url("hospital", "/openapi.json"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    // Shutdown flushes the batch.
    let (status, _) = process.terminate();
    assert!(status.success());

    let wanted: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).expect("hex")).collect();
    let mut exported = false;
    while let Ok(Some(body)) = tokio::time::timeout(Duration::from_secs(5), received.recv()).await {
        if body.windows(16).any(|w| w == wanted.as_slice()) {
            exported = true;
            break;
        }
    }
    assert!(exported, "a span in trace {trace_id} reached the collector");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_user_then_sign_in_through_the_gateway() {
    use std::io::Write;
    let data = tempfile::tempdir().expect("temp dir");
    let mut command = medcov(&[
        "admin",
        "create-user",
        "--username",
        "ops.admin",
        "--role",
        "admin",
        "--scope",
        "platform",
        "--password-stdin",
    ]);
    command.env("MEDCOV__DATA_DIR", data.path()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("runs");
    child.stdin.take().expect("stdin").write_all(b"a long enough passphrase\n").expect("write");
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("created user ops.admin"));

    // Refused input is explained field by field.
    let refused = medcov(&["admin", "create-user", "--username", "x", "--role", "clinician", "--scope", "platform"])
        .env("MEDCOV__DATA_DIR", data.path())
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("username") && stderr.contains("roles"), "{stderr}");

    let mut command = medcov(&[]);
    command.env("MEDCOV__DATA_DIR", data.path());
    all_ports_free(&mut command);
    let process = Process::spawn(command, 5);
    // Users existed already: no bootstrap administrator was made.
    assert!(!data.path().join("initial-admin.txt").exists());
    let response = reqwest::Client::new()
        .post(process.url("gateway", "/api/auth/login"))
        .json(&serde_json::json!({"username": "ops.admin", "password": "a long enough passphrase"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let (status, _) = process.terminate();
    assert!(status.success());
}

/// SIGHUP reads the mesh policy file again; a broken file is refused and named in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_mesh_policy() {
    let data = tempfile::tempdir().expect("temp dir");
    let policy = data.path().join("mesh.toml");
    std::fs::write(&policy, "[upstreams.hospital]\ntimeout_ms = 1000\n").expect("policy");
    let mut command = medcov(&["serve", "--target", "gateway"]);
    all_ports_free(&mut command);
    command
        .env("MEDCOV__DATA_DIR", data.path())
        .env("MEDCOV__MESH__POLICY_FILE", &policy)
        // Only the signal reloads here: the file watcher looks once an hour.
        .env("MEDCOV__MESH__POLICY_WATCH_INTERVAL_MS", "3600000");
    let process = Process::spawn(command, 1);
    let hangup = |process: &Process| {
        let sent = Command::new("kill").args(["-HUP", &process.child.id().to_string()]).status().expect("kill runs");
        assert!(sent.success());
    };
    let wait_for = |process: &Process, needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(line) = process.lines.recv_timeout(Duration::from_millis(200))
                && line.contains(needle)
            {
                return line;
            }
        }
        panic!("no log line containing {needle:?}");
    };

    std::fs::write(&policy, "[upstreams.hospital]\ntimeout_ms = 250\n").expect("policy");
    hangup(&process);
    wait_for(&process, "mesh policy reloaded");

    std::fs::write(&policy, "[upstreams.hospital]\ntimeout_ms = -1\n").expect("policy");
    hangup(&process);
    let line = wait_for(&process, "mesh policy not reloaded");
    assert!(line.contains("upstreams.hospital.timeout_ms"), "{line}");
    let (status, _) = process.terminate();
    assert!(status.success());
}

/// The access lines at info of a finished process, as (service, route, status).
fn access_lines(lines: &[String]) -> Vec<(String, String, u64)> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["target"] == "medcov::access" && event["level"] == "INFO")
        .map(|event| {
            let span = &event["span"];
            (
                span["service"].as_str().unwrap_or_default().to_owned(),
                span["route"].as_str().unwrap_or_default().to_owned(),
                span["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_access_line_per_request_where_it_entered_unless_every_hop_is_asked_for() {
    for (setting, per_request) in [(None, 1), (Some("every_hop"), 2), (Some("errors"), 0)] {
        let data = tempfile::tempdir().expect("temp dir");
        let mut command = medcov(&[]);
        command.env("MEDCOV__DATA_DIR", data.path()).env("MEDCOV__LOG__LEVEL", "info");
        if let Some(setting) = setting {
            command.env("MEDCOV__LOG__ACCESS", setting);
        }
        all_ports_free(&mut command);
        let process = Process::spawn(command, 5);
        let client = reqwest::Client::new();
        for _ in 0..3 {
            let response = client.get(process.url("gateway", "/api/hospital/openapi.json")).send().await.expect("sent");
            assert_eq!(response.status(), 200);
        }
        // Straight on the service's port: it is where this request entered.
        let response = client.get(process.url("hospital", "/openapi.json")).send().await.expect("sent");
        assert_eq!(response.status(), 200);
        // Probes are never at info.
        let response = client.get(process.url("hospital", "/health/ready")).send().await.expect("sent");
        assert_eq!(response.status(), 200);

        let (status, lines) = process.terminate();
        assert!(status.success());
        let access = access_lines(&lines);
        let at = |service: &str| access.iter().filter(|(s, _, _)| s == service).count();
        let direct = usize::from(per_request > 0);
        assert_eq!(at("gateway"), if per_request > 0 { 3 } else { 0 }, "{setting:?}: {access:?}");
        assert_eq!(at("hospital"), 3 * (per_request - direct) + direct, "{setting:?}: {access:?}");
        assert_eq!(access.len(), at("gateway") + at("hospital"), "{setting:?}: {access:?}");
    }
}
