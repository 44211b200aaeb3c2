//! Swagger UI in a real browser (Debian's Chromium, headless, driven by Playwright): the page
//! loads under its strict Content-Security-Policy with no violation, and a protected operation
//! of every service can be tried from it with a bearer token ("Try it out").

use std::process::Command;

use medcov_config::ServiceName;
use medcov_testkit::TestEnv;
use medcov_testkit::tools;
use serde_json::Value;

use crate::support::App;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/swagger_ui.py");

/// Runs the browser script against `/docs/` and returns its report.
pub fn drive_swagger_ui(app: &App, token: &str, tries: &[&str]) -> Value {
    tools::require("chromium", "apt-get install chromium");
    let python =
        tools::require("python", "make the tools venv with `pip install playwright` (see .ci/requirements.txt)");
    let mut command = Command::new(python);
    command.arg(SCRIPT).arg("--url").arg(app.url(ServiceName::Gateway, "/docs/")).arg("--token").arg(token);
    for operation in tries {
        command.arg("--try").arg(operation);
    }
    let output = command.output().expect("the browser script runs");
    assert!(
        output.status.success(),
        "the browser script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_loads_under_its_content_security_policy() {
    let env = TestEnv::embedded().await;
    let app = App::start(env.config.clone(), "all").await;
    let (username, password) = App::initial_admin(env.data_dir());
    let (token, _) = app.login(&username, &password).await;

    let page = app.client.get(app.url(ServiceName::Gateway, "/docs/")).send().await.expect("sent");
    let policy = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    for directive in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");

    // A token-protected operation of every service and of the gateway itself: Swagger UI sends
    // the token only where the document declares the bearer requirement.
    let tries = [
        "GET /api/auth/me",
        "GET /api/hospital/hospitals",
        "GET /api/insurance/insurers",
        "GET /api/billing/invoices",
        "GET /mesh",
    ];
    let report = drive_swagger_ui(&app, &token, &tries);
    assert!(report["operations"].as_u64().unwrap_or(0) > 50, "{report}");
    assert_eq!(report["violations"], serde_json::json!([]), "CSP violations: {report}");
    assert_eq!(report["errors"], serde_json::json!([]), "page errors: {report}");
    for (i, operation) in tries.iter().enumerate() {
        assert_eq!(report["tried"][i]["operation"], *operation, "{report}");
        assert_eq!(report["tried"][i]["status"], 200, "{operation}: {report}");
    }
    app.stop().await;
}
