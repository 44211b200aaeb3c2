//! The care-to-settlement flow over plain HTTP, for whatever MedCov a test runs (in process or
//! as a binary): a clinic with prices, an insurer with a member, the member registered as a
//! patient (the registration saga), and an encounter closed into an invoice, a claim and a
//! split.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

/// A gateway to call.
pub struct Api {
    pub client: reqwest::Client,
    /// `http://host:port` of the gateway.
    pub base: String,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        Api { client: reqwest::Client::new(), base: base.into().trim_end_matches('/').to_owned() }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn created(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, answer) = self.call(Method::POST, path, Some(token), Some(body), &[]).await;
        assert_eq!(status, 201, "POST {path}: {answer}");
        answer
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let body = json!({"username": username, "password": password});
        let (status, answer) = self.call(Method::POST, "/api/auth/login", None, Some(body), &[]).await;
        assert_eq!(status, 200, "login as {username}: {answer}");
        answer["access_token"].as_str().expect("a token").to_owned()
    }
}

/// What the flow made.
pub struct Settled {
    pub encounter: String,
    pub invoice: Value,
}

/// Runs the whole flow as the first administrator; the encounter's close is sent with
/// `close_headers` (a `traceparent`, say) and the patient's registration with
/// `register_headers`. Returns once the invoice is split by the insurer's adjudication and
/// issued.
pub async fn settle_an_insured_encounter(
    api: &Api,
    admin: (&str, &str),
    register_headers: &[(&str, &str)],
    close_headers: &[(&str, &str)],
) -> Settled {
    let admin = api.login(admin.0, admin.1).await;
    let hospital = api
        .created(
            "/api/hospital/hospitals",
            &admin,
            json!({"name": "Trace Clinic", "code": "TRC", "timezone": "UTC", "currency": "KES"}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let scope = json!({"kind": "hospitals", "hospitals": [hospital]});
    let mut tokens = Vec::new();
    for (name, role) in [("trc.doctor", "clinician"), ("trc.billing", "billing_clerk")] {
        api.created(
            "/api/auth/users",
            &admin,
            json!({"username": name, "password": PASSWORD, "roles": [role], "scope": scope}),
        )
        .await;
        tokens.push(api.login(name, PASSWORD).await);
    }
    let (clinician, biller) = (tokens[0].clone(), tokens[1].clone());
    let hours: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "00:00", "end": "23:59"}))
        .collect();
    let practitioner = api
        .created("/api/hospital/practitioners", &admin, json!({"hospital_id": hospital, "name": "Dr Trace", "specialty": "general practice", "working_hours": hours, "daily_capacity": 40}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for (code, category, price) in [("CONS-GP", "consultation", 300_000), ("LAB-FBC", "laboratory", 125_000)] {
        api.created(
            "/api/hospital/service-catalog",
            &admin,
            json!({"hospital_id": hospital, "code": code, "category": category, "description": code}),
        )
        .await;
        api.created("/api/billing/price-list", &biller, json!({"hospital_id": hospital, "service_code": code, "category": category, "description": code, "unit_price": price, "currency": "KES", "effective_from": "2020-01-01"}))
            .await;
    }

    let insurer = api
        .created(
            "/api/insurance/insurers",
            &admin,
            json!({"code": "TRI", "name": "Trace Insurance", "currency": "KES"}),
        )
        .await;
    let rules = json!({
        "currency": "KES", "premium": {"kind": "per_member", "adult": 1, "child": 1, "child_until_age": 18}, "max_members": 2,
        "categories": {
            "consultation": {"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network", "copay": 50_000}]},
            "laboratory": {"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network", "coinsurance_bp": 2_000}]}
        },
        "network": [hospital]
    });
    let plan = api
        .created("/api/insurance/plans", &admin, json!({"insurer_id": insurer["id"], "code": "BASIC", "name": "Basic", "effective_from": "2020-01-01", "rules": rules}))
        .await;
    let start = (time::OffsetDateTime::now_utc().date() - time::Duration::days(30)).to_string();
    let policy = api
        .created("/api/insurance/policies", &admin, json!({"plan_id": plan["id"], "start_date": start, "holder": {"given_name": "Imani", "family_name": "Otieno", "date_of_birth": "1975-05-05"}}))
        .await;
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/api/insurance/policies/{}/status", policy["id"].as_str().expect("id")),
            Some(&admin),
            Some(json!({"status": "active"})),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let number = policy["members"][0]["member_number"].as_str().expect("a member number").to_owned();

    let (status, patient) = api
        .call(
            Method::POST,
            "/api/hospital/patients",
            Some(&admin),
            Some(json!({"hospital_id": hospital, "given_name": "Imani", "family_name": "Otieno", "date_of_birth": "1975-05-05", "sex": "female",
                "member_numbers": [{"insurer_id": "01900000-0000-7000-8000-000000000001", "member_number": number}]})),
            register_headers,
        )
        .await;
    assert_eq!(status, 201, "{patient}");
    let patient = patient["id"].as_str().expect("id").to_owned();

    let encounter = api
        .created(
            "/api/hospital/encounters",
            &clinician,
            json!({"patient_id": patient, "practitioner_id": practitioner, "visit_type": "normal"}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/hospital/encounters/{encounter}");
    let care = json!({"diagnoses": [{"code": "J06.9", "primary": true}], "services": [{"code": "CONS-GP", "quantity": 1}, {"code": "LAB-FBC", "quantity": 2}]});
    let (status, body) = api.call(Method::PATCH, &path, Some(&clinician), Some(care), &[("if-match", "\"1\"")]).await;
    assert_eq!(status, 200, "{body}");
    let mut headers = vec![("if-match", "\"2\"")];
    headers.extend_from_slice(close_headers);
    let (status, body) = api.call(Method::POST, &format!("{path}/close"), Some(&clinician), None, &headers).await;
    assert_eq!(status, 200, "{body}");

    // The invoice, once the insurer's adjudication split it and it was issued.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, list) = api
            .call(Method::GET, &format!("/api/billing/invoices?patient_id={patient}"), Some(&biller), None, &[])
            .await;
        if let Some(id) = list["items"].as_array().and_then(|l| l.first()).and_then(|i| i["id"].as_str()) {
            let (_, invoice) =
                api.call(Method::GET, &format!("/api/billing/invoices/{id}"), Some(&biller), None, &[]).await;
            if invoice["split_source"] == "claim" && invoice["status"] == "issued" {
                return Settled { encounter, invoice };
            }
        }
        assert!(Instant::now() < deadline, "no invoice split by the claim and issued after 60 s: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
