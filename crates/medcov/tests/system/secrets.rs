//! Secrets at rest: the embedded data folder is MedCov's alone (0700, files 0600, also when it
//! existed before with wider modes), and the token-signing keys in auth's database are sealed
//! with a key-encryption key kept outside it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use medcov_config::{Secret, ServiceName};
use medcov_testkit::TestEnv;

use crate::support::App;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("exists").permissions().mode() & 0o777
}

/// Every file directly in `dir`, with its mode.
fn files(dir: &Path) -> Vec<(String, u32)> {
    let mut found: Vec<(String, u32)> = std::fs::read_dir(dir)
        .expect("the data folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), mode(&e.path())))
        .collect();
    found.sort();
    found
}

fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "the data folder");
    let found = files(dir);
    for expected in
        ["auth.db", "hospital.db", "insurance.db", "billing.db", "bus.db", "initial-admin.txt", "signing-keys.kek"]
    {
        assert!(found.iter().any(|(name, _)| name == expected), "{expected} in {found:?}");
    }
    assert!(found.iter().any(|(name, _)| name.ends_with("-wal")), "SQLite's WAL files too: {found:?}");
    let open: Vec<_> = found.iter().filter(|(_, mode)| mode & 0o077 != 0).collect();
    assert!(open.is_empty(), "files others can read: {open:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_folder_and_its_files_are_private() {
    let env = TestEnv::embedded().await;
    let mut config = env.config.clone();
    config.data_dir = env.data_dir().join("fresh");
    let app = App::start(config.clone(), "all").await;
    assert_private(&config.data_dir);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_open_data_folder_is_narrowed() {
    let env = TestEnv::embedded().await;
    let mut config = env.config.clone();
    config.data_dir = env.data_dir().join("old");
    std::fs::create_dir(&config.data_dir).expect("folder");
    std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(config.data_dir.join("hospital.db"), b"").expect("an empty database file");
    std::fs::set_permissions(config.data_dir.join("hospital.db"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let app = App::start(config.clone(), "all").await;
    assert_private(&config.data_dir);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_useless_without_the_key_encryption_key() {
    let env = TestEnv::embedded().await;
    let app = App::start(env.config.clone(), "all").await;
    // The service signs and verifies as before.
    let (username, password) = App::initial_admin(env.data_dir());
    let (token, _) = app.login(&username, &password).await;
    let (status, _, _) = app.call(reqwest::Method::GET, "/api/auth/me", Some(&token), None).await;
    assert_eq!(status, 200);
    app.stop().await;

    // What the database holds is not a key.
    let database = medcov_store::Database::connect(
        ServiceName::Auth,
        env.config.database_url(ServiceName::Auth),
        &medcov_store::PoolOptions::from_config(&env.config),
    )
    .await
    .expect("auth database");
    let stored = medcov_auth::store::keys(&database).await.expect("keys");
    database.close().await;
    assert!(!stored.is_empty());
    for key in &stored {
        assert!(medcov_auth::kek::is_sealed(&key.private_key), "{} is sealed", key.kid);
        assert!(
            medcov_security::SigningKey::from_pkcs8(key.kid.clone(), &key.private_key).is_err(),
            "the stored bytes are not a usable key"
        );
    }

    // Another key-encryption key cannot open them: start-up stops and says why.
    let mut config = env.config.clone();
    config.auth.key_encryption_key = Secret::new(medcov_testkit::random_kek());
    let targets = "auth".parse().expect("targets");
    let refused = medcov::start(Arc::new(config), &targets).await;
    let message = format!("{:#}", refused.err().expect("refused"));
    assert!(message.contains("cannot be decrypted") && message.contains("key_encryption_key"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_the_key_encryption_key_is_required() {
    let env = TestEnv::distributed().await;
    let mut config = env.config.clone();
    config.auth.key_encryption_key = Secret::default();
    let targets = "auth".parse().expect("targets");
    let refused = medcov::start(Arc::new(config), &targets).await;
    let message = format!("{:#}", refused.err().expect("refused"));
    assert!(message.contains("MEDCOV__AUTH__KEY_ENCRYPTION_KEY"), "{message}");
    assert!(!env.data_dir().join("signing-keys.kek").exists(), "no key file is made on PostgreSQL");
}
