//! Keyed writes whose handlers read their answer back after committing (a payment, a refund, an
//! invoice issued, a premium paid, a claim, a pre-authorisation, a user, a hospital, a
//! practitioner…), on both backends: each is sent under an Idempotency-Key and repeated, the
//! repeat is the first answer replayed byte for byte, and no service ever committed a key's
//! record before its answer was known (`idempotency_answers_after_commit_total` stays 0 on
//! every service): a crash between the commit and the answer could otherwise leave a record a
//! retry cannot answer with.

use medcov_config::ServiceName;
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{read, sample};
use crate::world::{World, id, member_number, person, scope};

const COUNTER: &str = "idempotency_answers_after_commit_total";

/// Sends `method path` as `token` under `key` (with `If-Match: if_match` when given), then the
/// same request again: the first must succeed, the second must be its answer replayed (status,
/// body, ETag and Location); what is not so goes into `wrong`. The first answer.
async fn twice(
    w: &World,
    wrong: &mut Vec<String>,
    (method, path): (Method, &str),
    (token, key, if_match): (&str, &str, Option<&str>),
    body: Option<Value>,
) -> Value {
    let send = async || {
        let mut request =
            w.app.client.request(method.clone(), w.app.url(ServiceName::Gateway, path)).bearer_auth(token);
        request = request.header("idempotency-key", key);
        if let Some(version) = if_match {
            request = request.header("if-match", version);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        read(request.send().await.expect("request sent")).await
    };
    let (status, headers, first) = send().await;
    assert!((200..300).contains(&status), "{method} {path}: {status} {first}");
    assert!(headers.get("idempotency-replayed").is_none(), "{method} {path} ran: {first}");
    let (again, replayed_headers, replayed) = send().await;
    let kept = |headers: &reqwest::header::HeaderMap| {
        ["etag", "location"].map(|name| headers.get(name).map(|v| v.to_str().unwrap_or_default().to_owned()))
    };
    if (again, &replayed, kept(&replayed_headers)) != (status, &first, kept(&headers))
        || replayed_headers.get("idempotency-replayed").map(|v| v.as_bytes()) != Some(&b"true"[..])
    {
        wrong.push(format!(
            "{method} {path}: {status} {first} {:?}, then {again} {replayed} {replayed_headers:?}",
            kept(&headers)
        ));
    }
    first
}

/// The ETag of `path`, read as `token`.
async fn etag(w: &World, path: &str, token: &str) -> String {
    let (status, headers, body) = w.app.call(Method::GET, path, Some(token), None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    headers["etag"].to_str().expect("an ETag").to_owned()
}

async fn keyed_writes_are_answered_in_their_commit(env: TestEnv) {
    let w = World::start(&env).await;
    let mut wrong = Vec::new();
    let hospital = w.hospital("KEY", "UTC").await;
    let insurer = w.insurer("KIN").await;
    let biller = w.user("key.billing", "billing_clerk", scope::hospital(&hospital)).await;
    let clinician = w.user("key.doctor", "clinician", scope::hospital(&hospital)).await;
    let officer = w.user("kin.claims", "claims_officer", scope::insurer(&insurer)).await;
    let agent = w.user("kin.agent", "agent", scope::insurer(&insurer)).await;
    let clerk = w.user("kin.billing", "billing_clerk", scope::insurer(&insurer)).await;

    // Hospital: the hospital and a practitioner changed.
    let path = format!("/api/hospital/hospitals/{hospital}");
    let version = etag(&w, &path, &w.admin).await;
    let body = json!({"name": "Keyed Hospital"});
    let changed = twice(&w, &mut wrong, (Method::PATCH, &path), (&w.admin, "h-1", Some(&version)), Some(body)).await;
    assert_eq!(changed["name"], "Keyed Hospital", "{changed}");
    let hours: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "00:00", "end": "23:59"}))
        .collect();
    let body = json!({"hospital_id": hospital, "name": "Dr Key", "specialty": "general practice", "working_hours": hours, "daily_capacity": 40});
    let practitioner =
        id(&twice(&w, &mut wrong, (Method::POST, "/api/hospital/practitioners"), (&w.admin, "h-2", None), Some(body))
            .await);
    let path = format!("/api/hospital/practitioners/{practitioner}");
    let version = etag(&w, &path, &w.admin).await;
    let changed = twice(
        &w,
        &mut wrong,
        (Method::PATCH, &path),
        (&w.admin, "h-3", Some(&version)),
        Some(json!({"daily_capacity": 30})),
    )
    .await;
    assert_eq!(changed["daily_capacity"], 30, "{changed}");

    // Auth: a user made, changed and deactivated.
    let body = json!({"username": "key.temp", "password": "a long enough password 1", "roles": ["auditor"], "scope": scope::platform()});
    let user = id(&twice(&w, &mut wrong, (Method::POST, "/api/auth/users"), (&w.admin, "a-1", None), Some(body)).await);
    let path = format!("/api/auth/users/{user}");
    let version = etag(&w, &path, &w.admin).await;
    let body = json!({"display_name": "Keyed Temp"});
    let changed = twice(&w, &mut wrong, (Method::PATCH, &path), (&w.admin, "a-2", Some(&version)), Some(body)).await;
    assert_eq!(changed["display_name"], "Keyed Temp", "{changed}");
    let gone =
        twice(&w, &mut wrong, (Method::POST, &format!("{path}/deactivate")), (&w.admin, "a-3", None), None).await;
    assert_eq!(gone["active"], false, "{gone}");

    // Insurance: a policy activated, a claim submitted, reversed and adjudicated again, a
    // pre-authorisation asked and decided.
    let rules = json!({
        "currency": "KES", "premium": {"kind": "per_member", "adult": 1_200_000, "child": 600_000, "child_until_age": 18}, "max_members": 2,
        "categories": {
            "consultation": {"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network", "copay": 50_000}]},
            "procedure": {"setting": "inpatient", "preauth_required": true, "cost_shares": [{"visit_type": "normal", "network": "in_network", "coinsurance_bp": 1_000}]}
        },
        "network": [hospital],
        "preauth_auto_approve_up_to": 5_000_000
    });
    let plan = w.plan(&w.admin, &insurer, "KEYED", rules).await;
    let start = (time::OffsetDateTime::now_utc().date() - time::Duration::days(30)).to_string();
    let policy = w.policy(&agent, &plan, &start, person("Kito", "Keyed", "1980-02-02"), &[]).await;
    let path = format!("/api/insurance/policies/{}/status", id(&policy));
    let active =
        twice(&w, &mut wrong, (Method::POST, &path), (&w.admin, "i-1", None), Some(json!({"status": "active"}))).await;
    assert_eq!(active["status"], "active", "{active}");
    let number = member_number(&policy);
    let day = (time::OffsetDateTime::now_utc().date() - time::Duration::days(2)).to_string();
    let body = json!({"hospital_id": hospital, "reference": "KEY-1", "member_number": number, "visit_type": "normal", "currency": "KES",
        "lines": [{"service_code": "CONS", "category": "consultation", "quantity": 1, "unit_price": 300_000, "diagnosis": "J06.9", "date_of_service": day}]});
    let claim =
        twice(&w, &mut wrong, (Method::POST, "/api/insurance/claims"), (&biller, "i-2", None), Some(body)).await;
    assert_eq!(claim["outcome"], "approved", "{claim}");
    let path = format!("/api/insurance/claims/{}", id(&claim));
    let body = json!({"reason": "wrong line"});
    let reversed =
        twice(&w, &mut wrong, (Method::POST, &format!("{path}/reverse")), (&officer, "i-3", None), Some(body)).await;
    assert_eq!(reversed["status"], "submitted", "{reversed}");
    let again =
        twice(&w, &mut wrong, (Method::POST, &format!("{path}/adjudicate")), (&officer, "i-4", None), Some(json!({})))
            .await;
    assert_eq!(again["outcome"], "approved", "{again}");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let body = json!({"member_number": number, "hospital_id": hospital, "visit_type": "normal", "planned_date": today,
        "services": [{"service_code": "PROC", "category": "procedure", "quantity": 1, "estimated_amount": 6_000_000}]});
    let asked = twice(
        &w,
        &mut wrong,
        (Method::POST, "/api/insurance/preauthorisations"),
        (&clinician, "i-5", None),
        Some(body),
    )
    .await;
    assert_eq!(asked["status"], "pending", "{asked}");
    let path = format!("/api/insurance/preauthorisations/{}/decision", id(&asked));
    let body = json!({"decision": "approve", "approved_amounts": [4_000_000], "reason": "tariff"});
    let decided = twice(&w, &mut wrong, (Method::POST, &path), (&officer, "i-6", None), Some(body)).await;
    assert_eq!(decided["status"], "partially_approved", "{decided}");

    // Billing: an invoice made, issued, paid and partly refunded; a premium paid.
    let body = json!({"hospital_id": hospital, "service_code": "CONS-GP", "category": "consultation", "description": "Consultation",
        "unit_price": 300_000, "currency": "KES", "effective_from": "2020-01-01"});
    twice(&w, &mut wrong, (Method::POST, "/api/billing/price-list"), (&biller, "b-1", None), Some(body)).await;
    let body = json!({"hospital_id": hospital, "patient_id": uuid::Uuid::now_v7(), "date_of_service": day,
        "lines": [{"service_code": "CONS-GP", "quantity": 1}]});
    let invoice =
        id(&twice(&w, &mut wrong, (Method::POST, "/api/billing/invoices"), (&biller, "b-2", None), Some(body)).await);
    let path = format!("/api/billing/invoices/{invoice}");
    let issued = twice(&w, &mut wrong, (Method::POST, &format!("{path}/issue")), (&biller, "b-3", None), None).await;
    assert_eq!(issued["status"], "issued", "{issued}");
    let body = json!({"payer": "patient", "method": "card", "amount": 300_000});
    let payment =
        twice(&w, &mut wrong, (Method::POST, &format!("{path}/payments")), (&biller, "b-4", None), Some(body)).await;
    assert_eq!(payment["applied"], 300_000, "{payment}");
    let path = format!("/api/billing/payments/{}/refunds", id(&payment));
    let body = json!({"amount": 100_000, "reason": "overcharged"});
    let refund = twice(&w, &mut wrong, (Method::POST, &path), (&biller, "b-5", None), Some(body)).await;
    let path = format!("/api/billing/refunds/{}/approve", id(&refund));
    let approved =
        twice(&w, &mut wrong, (Method::POST, &path), (&w.admin, "b-6", None), Some(json!({"note": "checked"}))).await;
    assert_eq!(approved["status"], "completed", "{approved}");
    let sold = w.policy(&agent, &plan, &today, person("Pili", "Keyed", "1981-03-03"), &[]).await;
    w.settle().await;
    let premiums = w.get(&format!("/api/billing/premiums?policy_id={}", id(&sold)), &clerk).await;
    let premium =
        premiums["items"].as_array().and_then(|l| l.first()).map(id).unwrap_or_else(|| panic!("a premium: {premiums}"));
    let path = format!("/api/billing/premiums/{premium}/payments");
    let body = json!({"method": "mobile_money", "amount": 1_200_000, "external_reference": "KEY-MPESA"});
    let paid = twice(&w, &mut wrong, (Method::POST, &path), (&clerk, "b-7", None), Some(body)).await;
    assert_eq!(paid["applied"], 1_200_000, "{paid}");

    assert!(wrong.is_empty(), "repeats not answered with the first answer:\n{}", wrong.join("\n"));
    // No service committed a key's record before its answer was known.
    for service in [ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing] {
        let metrics = w.app.metrics(service).await;
        assert_eq!(sample(&metrics, COUNTER, &[]), Some(0.0), "{service}: {COUNTER} in\n{metrics}");
    }
    w.stop().await;
}

medcov_testkit::backend_suite!(keyed_writes_are_answered_in_their_commit);
