//! Idempotency-Keys belong to their caller: a key one billing clerk used, sent again by
//! another clerk of the same hospital, runs the second clerk's own request — it never hands
//! them the first clerk's payment.

use medcov_config::ServiceName;
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::world::{World, id, scope};

async fn pay(
    w: &World,
    token: &str,
    invoice: &str,
    key: &str,
    amount: i64,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = w.app.url(ServiceName::Gateway, &format!("/api/billing/invoices/{invoice}/payments"));
    let request = w.app.client.post(url).bearer_auth(token).header("idempotency-key", key).json(&json!({
        "payer": "patient", "method": "cash", "amount": amount
    }));
    crate::support::read(request.send().await.expect("sent")).await
}

async fn one_clerks_key_is_not_another_clerks_answer(env: TestEnv) {
    let w = World::start(&env).await;
    let hospital = w.hospital("KEY", "UTC").await;
    let amina = w.user("amina.billing", "billing_clerk", scope::hospital(&hospital)).await;
    let baraka = w.user("baraka.billing", "billing_clerk", scope::hospital(&hospital)).await;
    w.create(
        "/api/hospital/service-catalog",
        &w.admin,
        json!({"hospital_id": hospital, "code": "CONS-GP", "category": "consultation", "description": "Consultation"}),
    )
    .await;
    w.create("/api/billing/price-list", &amina, json!({"hospital_id": hospital, "service_code": "CONS-GP", "category": "consultation", "description": "Consultation", "unit_price": 300_000, "currency": "KES", "effective_from": "2020-01-01"})).await;
    let patient = id(&w
        .create("/api/hospital/patients", &w.admin, json!({"hospital_id": hospital, "given_name": "Imani", "family_name": "Otieno", "date_of_birth": "1975-05-05", "sex": "female"}))
        .await);
    let invoice = id(&w
        .create("/api/billing/invoices", &amina, json!({"hospital_id": hospital, "patient_id": patient, "date_of_service": "2026-11-02", "lines": [{"service_code": "CONS-GP", "quantity": 1}]}))
        .await);
    let (status, issued) = w.call(Method::POST, &format!("/api/billing/invoices/{invoice}/issue"), &amina, None).await;
    assert_eq!(status, 200, "{issued}");

    let (status, headers, first) = pay(&w, &amina, &invoice, "till-1", 100_000).await;
    assert_eq!(status, 201, "{first}");
    assert!(!headers.contains_key("idempotency-replayed"));
    // The same clerk, the same key, the same payment: the first answer again.
    let (status, headers, again) = pay(&w, &amina, &invoice, "till-1", 100_000).await;
    assert_eq!((status, headers.get("idempotency-replayed").map(|v| v.to_str().unwrap())), (201, Some("true")));
    assert_eq!(again["id"], first["id"]);
    // Another clerk who happens to use the same key: their own payment, not Amina's.
    let (status, headers, theirs) = pay(&w, &baraka, &invoice, "till-1", 50_000).await;
    assert_eq!(status, 201, "{theirs}");
    assert!(!headers.contains_key("idempotency-replayed"), "{headers:?}");
    assert_ne!(theirs["id"], first["id"]);
    assert_eq!(theirs["amount"], 50_000, "{theirs}");

    let payments = w.get(&format!("/api/billing/invoices/{invoice}/payments"), &amina).await;
    let amounts: Vec<i64> =
        payments["items"].as_array().expect("a list").iter().filter_map(|p| p["amount"].as_i64()).collect();
    assert_eq!(amounts, [100_000, 50_000], "{payments}");
    w.stop().await;
}

medcov_testkit::backend_suite!(one_clerks_key_is_not_another_clerks_answer);
