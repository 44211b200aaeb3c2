//! `medcov admin backup` while MedCov takes writes, and `medcov admin restore` into a new data
//! folder: every row committed before the backup began is there, every event of those rows is
//! in the restored bus or waiting in its outbox, and the restored system serves them.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{App, medcov};

/// Rows one writer had acknowledged (201) so far: (GET path through the gateway, id).
type Acknowledged = Arc<Mutex<Vec<(String, String)>>>;

/// Keeps creating rows with `body(n)` at `post` until `stop`, recording each acknowledged one.
fn writer(
    app: Arc<App>,
    token: String,
    post: &'static str,
    get: &'static str,
    body: impl Fn(usize) -> Value + Send + 'static,
    stop: Arc<AtomicBool>,
) -> (Acknowledged, tokio::task::JoinHandle<()>) {
    let done: Acknowledged = Arc::default();
    let record = done.clone();
    let task = tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let (status, _, created) = app.call(Method::POST, post, Some(&token), Some(body(n))).await;
            assert_eq!(status, 201, "{post} #{n}: {created}");
            let id = created["id"].as_str().expect("an id").to_owned();
            record.lock().unwrap().push((format!("{get}/{id}"), id));
        }
    });
    (done, task)
}

/// A name of letters only, different for every `n`.
fn letters(mut n: usize) -> String {
    let mut name = String::from("Backup");
    loop {
        name.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            return name;
        }
    }
}

fn patient(hospital: &str, n: usize) -> Value {
    json!({
        "hospital_id": hospital,
        "given_name": "Wanjiru",
        "family_name": letters(n),
        "date_of_birth": "1990-01-01",
        "sex": "female",
        "identifiers": [{"kind": "national_id", "value": format!("9{n:07}")}],
    })
}

fn run(command: &mut std::process::Command) -> String {
    let output = command.output().expect("medcov runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    text
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("exists").permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_restores_every_committed_row() {
    let env = TestEnv::embedded().await;
    let app = Arc::new(App::start(env.config.clone(), "all").await);
    let (username, password) = App::initial_admin(env.data_dir());
    let (admin, _) = app.login(&username, &password).await;
    let (status, _, hospital) = app
        .call(
            Method::POST,
            "/api/hospital/hospitals",
            Some(&admin),
            Some(json!({"name": "Backup Hospital", "code": "BKP", "timezone": "Africa/Nairobi", "currency": "KES"})),
        )
        .await;
    assert_eq!(status, 201, "{hospital}");
    let hospital_id = hospital["id"].as_str().expect("id").to_owned();

    // Three services written to at once, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let writers = [
        writer(
            app.clone(),
            admin.clone(),
            "/api/hospital/patients",
            "/api/hospital/patients",
            move |n| patient(&hospital_id, n),
            stop.clone(),
        ),
        writer(
            app.clone(),
            admin.clone(),
            "/api/insurance/insurers",
            "/api/insurance/insurers",
            |n| json!({"code": format!("B{n}"), "name": format!("Insurer {n}"), "currency": "KES"}),
            stop.clone(),
        ),
        writer(
            app.clone(),
            admin.clone(),
            "/api/auth/users",
            "/api/auth/users",
            |n| json!({"username": format!("backup-{n}"), "password": "correct horse battery staple", "roles": ["auditor"], "scope": {"kind": "platform"}}),
            stop.clone(),
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    while writers.iter().any(|(done, _)| done.lock().unwrap().len() < 5) {
        assert!(Instant::now() < deadline, "the writers did not get going");
        assert!(!writers.iter().any(|(_, task)| task.is_finished()), "a writer stopped (see its panic above)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Everything acknowledged now was committed before the backup begins.
    let before: Vec<Vec<(String, String)>> = writers.iter().map(|(done, _)| done.lock().unwrap().clone()).collect();
    let folder = tempfile::tempdir().expect("temp dir");
    let backup = folder.path().join("backup");
    let data_dir = env.data_dir().to_str().expect("utf-8").to_owned();
    let to = backup.to_str().expect("utf-8").to_owned();
    let printed = tokio::task::spawn_blocking(move || {
        run(medcov(&["admin", "backup", "--to", &to]).env("MEDCOV__DATA_DIR", &data_dir))
    })
    .await
    .expect("backup ran");
    let during: usize =
        writers.iter().zip(&before).map(|((done, _), before)| done.lock().unwrap().len() - before.len()).sum();
    stop.store(true, Ordering::SeqCst);
    for (_, task) in writers {
        task.await.expect("a writer failed");
    }
    eprintln!("{during} rows were written while the backup ran\n{printed}");

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).expect("a manifest")).expect("json");
    let parts: Vec<&str> =
        manifest["files"].as_array().expect("files").iter().map(|f| f["part"].as_str().unwrap()).collect();
    assert_eq!(parts, ["bus", "auth", "hospital", "insurance", "billing"], "{manifest}");
    assert_eq!(mode(&backup), 0o700);
    for file in ["bus.db", "auth.db", "hospital.db", "insurance.db", "billing.db", "manifest.json"] {
        assert_eq!(mode(&backup.join(file)), 0o600, "{file}");
    }

    // Every registration committed before the backup has its event in the bus copy, or waiting
    // in the outbox copy to be published again.
    let bus =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", backup.join("bus.db").display())).await.expect("bus copy");
    let hospital_db =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", backup.join("hospital.db").display())).await.expect("copy");
    for (_, id) in &before[0] {
        let on_bus: i64 = sqlx::query_scalar("SELECT count(*) FROM bus_entries WHERE envelope LIKE '%' || $1 || '%'")
            .bind(id)
            .fetch_one(&bus)
            .await
            .expect("bus entries");
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE event_type = 'hospital.patient_registered.v1' AND published_at IS NULL \
             AND aggregate_id = $1",
        )
        .bind(id.parse::<uuid::Uuid>().expect("a UUID"))
        .fetch_one(&hospital_db)
        .await
        .expect("outbox");
        assert!(on_bus + waiting >= 1, "the registration of patient {id} is neither on the bus copy nor waiting");
    }
    bus.close().await;
    hospital_db.close().await;
    Arc::into_inner(app).expect("the writers are done").stop().await;

    // Restore into a new folder, and serve from it.
    let restored = folder.path().join("restored");
    run(medcov(&["admin", "restore", "--from", backup.to_str().unwrap()]).env("MEDCOV__DATA_DIR", &restored));
    for file in ["bus.db", "auth.db", "hospital.db", "insurance.db", "billing.db"] {
        assert_eq!(mode(&restored.join(file)), 0o600, "{file}");
    }
    // Key material (`*.kek`) is never in a backup; the operator keeps it apart and puts it back.
    for entry in std::fs::read_dir(env.data_dir()).expect("data folder").filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().ends_with(".kek") {
            assert!(printed.contains(&*entry.file_name().to_string_lossy()), "the backup names what it left out");
            std::fs::copy(entry.path(), restored.join(entry.file_name())).expect("key put back");
        }
    }
    let mut config = env.config.clone();
    config.data_dir = restored.clone();
    let app = App::start(config, "all").await;
    let (admin, _) = app.login(&username, &password).await;
    for (path, id) in before.iter().flatten() {
        let (status, _, body) = app.call(Method::GET, path, Some(&admin), None).await;
        assert_eq!(status, 200, "{path} was committed before the backup began: {body}");
        assert_eq!(body["id"].as_str(), Some(id.as_str()));
    }
    app.stop().await;

    // A restore never overwrites: the folder now holds MedCov's files.
    let output = medcov(&["admin", "restore", "--from", backup.to_str().unwrap()])
        .env("MEDCOV__DATA_DIR", &restored)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_damaged_backup_is_refused_before_anything_is_written() {
    let folder = tempfile::tempdir().expect("temp dir");
    let data = folder.path().join("data");
    // A data folder with a service's file: MedCov migrates it on a first `migrate`.
    run(medcov(&["migrate", "--target", "hospital"]).env("MEDCOV__DATA_DIR", &data));
    let backup = folder.path().join("backup");
    let printed = run(medcov(&["admin", "backup", "--to", backup.to_str().unwrap()]).env("MEDCOV__DATA_DIR", &data));
    assert!(printed.contains("not copied: auth"), "services never started are named: {printed}");
    // The backup folder must be new (or empty).
    let again =
        medcov(&["admin", "backup", "--to", backup.to_str().unwrap()]).env("MEDCOV__DATA_DIR", &data).output().unwrap();
    assert!(!again.status.success());

    let mut bytes = std::fs::read(backup.join("hospital.db")).expect("copy");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(backup.join("hospital.db"), bytes).expect("damage");
    let restored = folder.path().join("restored");
    let output = medcov(&["admin", "restore", "--from", backup.to_str().unwrap()])
        .env("MEDCOV__DATA_DIR", &restored)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("does not match the manifest"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!restored.join("hospital.db").exists());
}
