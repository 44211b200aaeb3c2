//! Hospitals and patients through the gateway, on both backends.

use medcov_config::ServiceName;
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::world::{World, scope};

/// A world with two hospitals.
struct Desk {
    w: World,
    hospital_a: String,
    hospital_b: String,
}

impl std::ops::Deref for Desk {
    type Target = World;
    fn deref(&self) -> &World {
        &self.w
    }
}

async fn desk(env: &TestEnv) -> Desk {
    let w = World::start(env).await;
    let hospital_a = w.hospital("SMG", "Africa/Nairobi").await;
    let hospital_b = w.hospital("KNH", "Africa/Nairobi").await;
    Desk { w, hospital_a, hospital_b }
}

impl Desk {
    /// Staff of `hospital` with `role`: their token.
    async fn staff(&self, username: &str, role: &str, hospital: &str) -> String {
        self.user(username, role, scope::hospital(hospital)).await
    }
}

fn amina(hospital: &str) -> Value {
    json!({
        "hospital_id": hospital,
        "given_name": "Amina",
        "family_name": "Okafor",
        "date_of_birth": "1984-03-09",
        "sex": "female",
        "phone": "+254 712 345678",
        "identifiers": [{"kind": "national_id", "value": "27845123"}],
        "member_numbers": [{"insurer_id": "01900000-0000-7000-8000-000000000001", "member_number": "mc-0000123-4"}]
    })
}

async fn registration_search_change_history_and_access_log(env: TestEnv) {
    let desk = desk(&env).await;
    let app = &desk.app;
    let clerk = desk.staff("clerk.a", "hospital_clerk", &desk.hospital_a).await;
    let clinician = desk.staff("doc.a", "clinician", &desk.hospital_a).await;
    let auditor = desk.staff("audit.a", "auditor", &desk.hospital_a).await;
    let other_clerk = desk.staff("clerk.b", "hospital_clerk", &desk.hospital_b).await;

    let (status, headers, patient) =
        app.call(Method::POST, "/api/hospital/patients", Some(&clerk), Some(amina(&desk.hospital_a))).await;
    assert_eq!(status, 201, "{patient}");
    assert_eq!(headers["etag"], "\"1\"");
    let mrn = patient["mrn"].as_str().expect("mrn").to_owned();
    assert!(mrn.starts_with("SMG-"), "{mrn}");
    let id = patient["id"].as_str().expect("id").to_owned();

    // The same person again is a possible duplicate, unless the clerk says otherwise.
    let (status, _, body) =
        app.call(Method::POST, "/api/hospital/patients", Some(&clerk), Some(amina(&desk.hospital_a))).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains(&mrn)), "{body}");
    let (status, _, twin) = app
        .call(Method::POST, "/api/hospital/patients?allow_duplicate=true", Some(&clerk), Some(amina(&desk.hospital_a)))
        .await;
    assert_eq!(status, 201);
    assert_ne!(twin["mrn"], mrn);

    // Bad input names each field.
    let mut bad = amina(&desk.hospital_a);
    bad["date_of_birth"] = json!("2999-01-01");
    bad["email"] = json!("amina@");
    let (status, _, body) = app.call(Method::POST, "/api/hospital/patients", Some(&clerk), Some(bad)).await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["date_of_birth", "email"]);

    // Another hospital's clerk cannot see or register into hospital A.
    let (status, _, _) = app.call(Method::GET, &format!("/api/hospital/patients/{id}"), Some(&other_clerk), None).await;
    assert_eq!(status, 404);
    let (_, _, found) = app.call(Method::GET, "/api/hospital/patients?name=okafor", Some(&other_clerk), None).await;
    assert_eq!(found["items"], json!([]));
    let (status, _, _) =
        app.call(Method::POST, "/api/hospital/patients", Some(&other_clerk), Some(amina(&desk.hospital_a))).await;
    assert_eq!(status, 404);

    // Search: accents and case do not matter; each criterion narrows.
    for query in [
        "name=%C3%93KAF",
        "name=amina",
        &format!("mrn={}", mrn.to_lowercase()),
        "identifier=27845123",
        "member_number=MC-0000123-4",
        "date_of_birth=1984-03-09&name=oka",
    ] {
        let (status, _, found) =
            app.call(Method::GET, &format!("/api/hospital/patients?{query}"), Some(&clinician), None).await;
        assert_eq!(status, 200, "{query}: {found}");
        let ids: Vec<&str> =
            found["items"].as_array().expect("items").iter().filter_map(|p| p["id"].as_str()).collect();
        assert!(ids.contains(&id.as_str()), "{query}: {found}");
    }
    let (_, _, none) = app
        .call(Method::GET, "/api/hospital/patients?name=okafor&date_of_birth=1990-01-01", Some(&clinician), None)
        .await;
    assert_eq!(none["items"], json!([]));

    // Changes need the version read; the clinician may read but not change.
    let path = format!("/api/hospital/patients/{id}");
    let (status, _, _) =
        app.call(Method::PATCH, &path, Some(&clinician), Some(json!({"phone": "+254 700 000000"}))).await;
    assert_eq!(status, 403);
    let (status, _, _) = app.call(Method::PATCH, &path, Some(&clerk), Some(json!({"phone": "+254 700 000000"}))).await;
    assert_eq!(status, 428);
    let patch = |version: &'static str, body: Value| {
        app.client
            .patch(app.url(ServiceName::Gateway, &path))
            .bearer_auth(&clerk)
            .header("if-match", version)
            .json(&body)
            .send()
    };
    let changed = patch("\"1\"", json!({"phone": "+254 700 000000"})).await.expect("sent");
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.headers()["etag"], "\"2\"");
    assert_eq!(patch("\"1\"", json!({"phone": "+254 711 111111"})).await.expect("sent").status(), 412);
    // Reads go through the cache; a read right after a write sees the write.
    for _ in 0..2 {
        let (status, headers, read) = app.call(Method::GET, &path, Some(&clinician), None).await;
        assert_eq!((status, read["phone"].as_str(), read["version"].as_i64()), (200, Some("+254 700 000000"), Some(2)));
        assert_eq!(headers["etag"], "\"2\"");
    }
    let deceased = patch("\"2\"", json!({"status": "deceased"})).await.expect("sent");
    assert_eq!(deceased.status(), 422, "deceased needs a date");

    let (_, _, history) = app.call(Method::GET, &format!("{path}/history"), Some(&clinician), None).await;
    let versions: Vec<i64> =
        history["items"].as_array().expect("history").iter().filter_map(|h| h["version"].as_i64()).collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(history["items"][0]["record"]["phone"], "+254 712 345678");
    assert_eq!(history["paging"], json!({}), "a record's history comes whole");

    // The auditor sees who did what to the record.
    let (status, _, log) =
        app.call(Method::GET, &format!("/api/hospital/access-log?patient_id={id}"), Some(&auditor), None).await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<&str> =
        log["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["create", "search", "update", "history"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert_eq!(log["paging"], json!({"limit": 100, "after": null, "next_after": null}), "{log}");
    // Paged two at a time by cursor: each page names its last entry, the last page none.
    let (mut paged, mut after) = (Vec::new(), String::new());
    loop {
        let page_path = format!("/api/hospital/access-log?patient_id={id}&limit=2{after}");
        let (status, _, page) = app.call(Method::GET, &page_path, Some(&auditor), None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().expect("items");
        paged.extend(items.iter().filter_map(|e| e["action"].as_str().map(str::to_owned)));
        assert!(paged.len() <= actions.len(), "{paged:?}");
        match page["paging"]["next_after"].as_str() {
            Some(next) => {
                assert_eq!((items.len(), items[1]["id"].as_str()), (2, Some(next)), "{page}");
                after = format!("&after={next}");
            }
            None => break,
        }
    }
    assert_eq!(paged, actions, "the pages hold the log, in order");
    let (status, _, _) = app.call(Method::GET, "/api/hospital/access-log", Some(&clinician), None).await;
    assert_eq!(status, 403);

    // Reads at once share the log's commits, and every one of them is in it when it answers.
    let reads_logged = async || {
        let log_path = format!("/api/hospital/access-log?patient_id={id}&limit=200");
        let (status, _, log) = app.call(Method::GET, &log_path, Some(&auditor), None).await;
        assert_eq!(status, 200, "{log}");
        log["items"].as_array().expect("items").iter().filter(|e| e["action"] == "read").count()
    };
    let before = reads_logged().await;
    let reads = (0..40).map(|_| app.call(Method::GET, &path, Some(&clinician), None));
    for (status, _, read) in futures::future::join_all(reads).await {
        assert_eq!(status, 200, "{read}");
    }
    assert_eq!(reads_logged().await - before, 40, "each read answered is logged");

    // Each change left its event in the outbox, in the same transaction.
    let database = medcov_store::Database::connect(
        ServiceName::Hospital,
        env.config.database_url(ServiceName::Hospital),
        &medcov_store::PoolOptions::from_config(&env.config),
    )
    .await
    .expect("hospital database");
    let events = medcov_store::outbox::all(&database).await.expect("outbox");
    let types: Vec<&str> =
        events.iter().filter(|e| e.aggregate_id.to_string() == id).map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["hospital.patient_registered.v1", "hospital.patient_updated.v1"]);
    assert!(!events[0].payload.to_string().contains("Okafor"), "events carry no names");
    database.close().await;
    desk.w.stop().await;
}

async fn parallel_changes_lose_nothing(env: TestEnv) {
    let desk = desk(&env).await;
    let clerk = desk.staff("clerk.a", "hospital_clerk", &desk.hospital_a).await;
    let (_, _, patient) =
        desk.app.call(Method::POST, "/api/hospital/patients", Some(&clerk), Some(amina(&desk.hospital_a))).await;
    let url =
        desk.app.url(ServiceName::Gateway, &format!("/api/hospital/patients/{}", patient["id"].as_str().expect("id")));
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (client, url, clerk) = (desk.app.client.clone(), url.clone(), clerk.clone());
        writers.spawn(async move {
            let phone = format!("+254 700 00000{i}");
            client
                .patch(url)
                .bearer_auth(clerk)
                .header("if-match", "\"1\"")
                .json(&json!({"phone": phone}))
                .send()
                .await
                .expect("sent")
                .status()
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = writers.join_next().await {
        statuses.push(status.expect("task"));
    }
    statuses.sort();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412, 412, 412], "exactly one write wins");
    desk.w.stop().await;
}

/// A person without member numbers (no saga), by `given` name.
fn walk_in(hospital: &str, given: &str) -> Value {
    json!({
        "hospital_id": hospital,
        "given_name": given,
        "family_name": "Mwangi",
        "date_of_birth": "1990-07-21",
        "sex": "male"
    })
}

/// The sequence in a record number: its digits without the check digit.
fn sequence_of(mrn: &str) -> u64 {
    let digits = mrn.rsplit_once('-').expect("code-digits").1;
    digits[..digits.len() - 1].parse().expect("digits")
}

/// Registrations arriving together: one person registered several times at once without
/// `allow_duplicate` is one record (the others are refused as duplicates, as they would be one
/// after the other), different people are all registered, every record number is unique, and
/// a refused duplicate takes no number.
async fn parallel_registrations_make_one_record_per_person_and_unique_numbers(env: TestEnv) {
    let desk = desk(&env).await;
    let clerk = desk.staff("clerk.a", "hospital_clerk", &desk.hospital_a).await;
    let url = desk.app.url(ServiceName::Gateway, "/api/hospital/patients");
    let mut numbers = Vec::new();
    for round in 0..4u8 {
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..12u8 {
            // The first six are one person, each of the other six someone else.
            // (Names have no digits: letters stand for the round and the caller.)
            let (r, c) = (char::from(b'a' + round), char::from(b'a' + i));
            let given = if i < 6 { format!("Same{r}") } else { format!("Other{r}{c}") };
            let (client, url, clerk) = (desk.app.client.clone(), url.clone(), clerk.clone());
            let body = walk_in(&desk.hospital_a, &given);
            calls.spawn(async move {
                let answer = client.post(url).bearer_auth(clerk).json(&body).send().await.expect("sent");
                let status = answer.status().as_u16();
                (i < 6, status, answer.json::<Value>().await.expect("json"))
            });
        }
        let (mut same, mut others) = (Vec::new(), Vec::new());
        while let Some(done) = calls.join_next().await {
            let (is_same, status, body) = done.expect("task");
            if status == 201 {
                numbers.push(body["mrn"].as_str().expect("mrn").to_owned());
            } else {
                assert_eq!(status, 409, "{body}");
            }
            if is_same { same.push(status) } else { others.push(status) }
        }
        same.sort();
        assert_eq!(same, [201, 409, 409, 409, 409, 409], "round {round}: one record for one person");
        assert_eq!(others, [201; 6], "round {round}: everyone else registered");
    }
    let mut unique = numbers.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), numbers.len(), "record numbers are unique: {numbers:?}");

    // One after the other: a refused duplicate between two registrations takes no number.
    let call = |given: &str| {
        desk.app.call(Method::POST, "/api/hospital/patients", Some(&clerk), Some(walk_in(&desk.hospital_a, given)))
    };
    let (status, _, first) = call("Ahead").await;
    assert_eq!(status, 201, "{first}");
    let (status, _, body) = call("Ahead").await;
    assert_eq!(status, 409, "{body}");
    let (status, _, next) = call("Behind").await;
    assert_eq!(status, 201, "{next}");
    let (first, next) = (first["mrn"].as_str().expect("mrn"), next["mrn"].as_str().expect("mrn"));
    assert_eq!(sequence_of(next), sequence_of(first) + 1, "{first} then {next}");
    desk.w.stop().await;
}

medcov_testkit::backend_suite!(
    registration_search_change_history_and_access_log,
    parallel_changes_lose_nothing,
    parallel_registrations_make_one_record_per_person_and_unique_numbers
);
