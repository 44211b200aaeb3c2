//! Billing through the gateway, on both backends: a completed encounter becomes a draft invoice
//! through the bus (once, even when the event comes again), payments that are never taken
//! twice under one Idempotency-Key (also in parallel), overpayments as credit, a ledger that
//! reconciles, and an insurer's adjudication splitting the invoice.
//!
//! Every check that something happened once (one invoice, one claim, one payment) runs after
//! the events in flight have settled.

use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PATIENCE, eventually};
use crate::world::{World, member_number, person, scope};

/// A world with a clinic in it: a hospital, its staff, a practitioner and prices.
struct Clinic {
    w: World,
    hospital: String,
    clinician: String,
    biller: String,
    practitioner: String,
}

impl std::ops::Deref for Clinic {
    type Target = World;
    fn deref(&self) -> &World {
        &self.w
    }
}

impl std::ops::DerefMut for Clinic {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.w
    }
}

impl Clinic {
    async fn patient(&self, member_number: Option<&str>) -> String {
        self.patient_named("Imani", member_number).await
    }

    /// A patient `given` Otieno, born 1975-05-05.
    async fn patient_named(&self, given: &str, member_number: Option<&str>) -> String {
        let mut body = json!({"hospital_id": self.hospital, "given_name": given, "family_name": "Otieno", "date_of_birth": "1975-05-05", "sex": "female"});
        if let Some(number) = member_number {
            body["member_numbers"] =
                json!([{"insurer_id": "01900000-0000-7000-8000-000000000001", "member_number": number}]);
        }
        let (status, patient) = self.call(Method::POST, "/api/hospital/patients", &self.admin, Some(body)).await;
        assert_eq!(status, 201, "{patient}");
        patient["id"].as_str().expect("id").to_owned()
    }

    /// A walk-in seen for a consultation and two blood counts; the encounter is closed.
    async fn encounter(&self, patient: &str) -> String {
        self.encounter_of(patient, &[("CONS-GP", 1), ("LAB-FBC", 2)]).await
    }

    /// A walk-in seen for `services` (code, quantity); the encounter is closed.
    async fn encounter_of(&self, patient: &str, services: &[(&str, u32)]) -> String {
        let (status, encounter) = self
            .call(
                Method::POST,
                "/api/hospital/encounters",
                &self.clinician,
                Some(json!({"patient_id": patient, "practitioner_id": self.practitioner, "visit_type": "normal"})),
            )
            .await;
        assert_eq!(status, 201, "{encounter}");
        let path = format!("/api/hospital/encounters/{}", encounter["id"].as_str().unwrap());
        let services: Vec<Value> =
            services.iter().map(|(code, quantity)| json!({"code": code, "quantity": quantity})).collect();
        let care = json!({"diagnoses": [{"code": "J06.9", "primary": true}], "services": services});
        let url = self.app.url(medcov_config::ServiceName::Gateway, &path);
        let response = self
            .app
            .client
            .patch(&url)
            .bearer_auth(&self.clinician)
            .header("if-match", "\"1\"")
            .json(&care)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let response = self
            .app
            .client
            .post(format!("{url}/close"))
            .bearer_auth(&self.clinician)
            .header("if-match", "\"2\"")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        encounter["id"].as_str().unwrap().to_owned()
    }

    /// The invoices of a patient once the events in flight settled; there are at least
    /// `count`.
    async fn invoices(&self, patient: &str, count: usize) -> Vec<Value> {
        self.settle().await;
        let (_, list) =
            self.call(Method::GET, &format!("/api/billing/invoices?patient_id={patient}"), &self.biller, None).await;
        let list = list["items"].as_array().cloned().unwrap_or_default();
        assert!(list.len() >= count, "{count} invoices for patient {patient}: {list:?}");
        // Each is found by its encounter too, alone.
        for invoice in &list {
            let Some(encounter) = invoice["encounter_id"].as_str() else { continue };
            let path = format!("/api/billing/invoices?encounter_id={encounter}");
            let (_, found) = self.call(Method::GET, &path, &self.biller, None).await;
            let ids: Vec<&Value> =
                found["items"].as_array().map(|l| l.iter().map(|i| &i["id"]).collect()).unwrap_or_default();
            assert_eq!(ids, [&invoice["id"]], "{path}: {found}");
        }
        list
    }

    /// An invoice, once the events in flight settled.
    async fn invoice(&self, id: &str) -> Value {
        self.settle().await;
        self.call(Method::GET, &format!("/api/billing/invoices/{id}"), &self.biller, None).await.1
    }

    async fn pay(&self, invoice: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        let url =
            self.app.url(medcov_config::ServiceName::Gateway, &format!("/api/billing/invoices/{invoice}/payments"));
        let mut request = self.app.client.post(url).bearer_auth(&self.biller).json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let (status, _, body) = crate::support::read(request.send().await.unwrap()).await;
        (status, body)
    }

    async fn reconciled(&self) -> Vec<Value> {
        let (status, report) = self.call(Method::GET, "/api/billing/ledger/reconciliation", &self.admin, None).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["paging"], json!({}), "the reconciliation comes whole: {report}");
        let report = report["items"].as_array().cloned().unwrap();
        assert!(report.iter().all(|a| a["agrees"] == true), "the journal and the invoices disagree: {report:?}");
        report
    }
}

fn balance(report: &[Value], account: &str) -> i64 {
    report.iter().find(|a| a["account"] == account).and_then(|a| a["journal"].as_i64()).unwrap_or(0)
}

/// A hospital with a practitioner, a catalog and a price list: consultation 3 000.00, blood
/// count 1 250.00.
async fn clinic(env: &TestEnv) -> Clinic {
    let w = World::start(env).await;
    let clinic = clinic_at(w, "BIL", "UTC", "KES").await;
    // Prices of one code never overlap.
    let (status, _) = clinic
        .call(Method::POST, "/api/billing/price-list", &clinic.biller, Some(json!({"hospital_id": clinic.hospital, "service_code": "LAB-FBC", "category": "laboratory", "description": "x", "unit_price": 1, "currency": "KES", "effective_from": "2025-01-01"})))
        .await;
    assert_eq!(status, 409);
    clinic
}

/// A hospital `code` in `timezone` paying in `currency`, in `w`, with staff, a practitioner
/// working around the clock and a catalog of CONS-GP and LAB-FBC; in KES they cost 3 000.00 and
/// 1 250.00 from 2020 (other currencies: no prices).
async fn clinic_at(w: World, code: &str, timezone: &str, currency: &str) -> Clinic {
    let body = json!({"name": format!("{code} Hospital"), "code": code, "timezone": timezone, "currency": currency});
    let hospital = crate::world::id(&w.create("/api/hospital/hospitals", &w.admin, body).await);
    let lower = code.to_lowercase();
    let clinician = w.user(&format!("{lower}.doctor"), "clinician", scope::hospital(&hospital)).await;
    let biller = w.user(&format!("{lower}.billing"), "billing_clerk", scope::hospital(&hospital)).await;
    let mut clinic = Clinic { w, hospital, clinician, biller, practitioner: String::new() };
    let hours: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "00:00", "end": "23:59"}))
        .collect();
    let (status, practitioner) = clinic
        .call(Method::POST, "/api/hospital/practitioners", &clinic.admin, Some(json!({"hospital_id": clinic.hospital, "name": "Dr Care", "specialty": "general practice", "working_hours": hours, "daily_capacity": 40})))
        .await;
    assert_eq!(status, 201, "{practitioner}");
    clinic.practitioner = practitioner["id"].as_str().unwrap().to_owned();
    for (code, category, price) in [("CONS-GP", "consultation", 300_000), ("LAB-FBC", "laboratory", 125_000)] {
        let (status, body) = clinic
            .call(
                Method::POST,
                "/api/hospital/service-catalog",
                &clinic.admin,
                Some(json!({"hospital_id": clinic.hospital, "code": code, "category": category, "description": code})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        if currency != "KES" {
            continue;
        }
        let (status, body) = clinic
            .call(Method::POST, "/api/billing/price-list", &clinic.biller, Some(json!({"hospital_id": clinic.hospital, "service_code": code, "category": category, "description": code, "unit_price": price, "currency": "KES", "effective_from": "2020-01-01"})))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    clinic
}

impl Clinic {
    /// Adds a price of `code` in `currency` over `[from, to]`: the status and the answer.
    async fn price(&self, code: &str, price: i64, currency: &str, (from, to): (&str, Option<&str>)) -> (u16, Value) {
        let category = if code.starts_with("LAB") { "laboratory" } else { "consultation" };
        let body = json!({"hospital_id": self.hospital, "service_code": code, "category": category, "description": code,
            "unit_price": price, "currency": currency, "effective_from": from, "effective_to": to});
        self.call(Method::POST, "/api/billing/price-list", &self.biller, Some(body)).await
    }
}

/// The local date of now in a zone of a fixed offset (Kiritimati is UTC+14, Honolulu UTC−10,
/// all year): computed here by hand, not by the code under test.
fn local_today(offset_hours: i64) -> time::Date {
    (time::OffsetDateTime::now_utc() + time::Duration::hours(offset_hours)).date()
}

/// Care is dated, priced and counted on the hospital's own day: at UTC+14 and UTC−10 at the
/// same moment, the days differ by one, and at least one of them differs from the UTC date.
/// Each hospital's consultation costs 1 000.00 until its yesterday and 2 000.00 from its
/// today, so pricing by the UTC date would show in the total.
async fn care_is_dated_priced_and_counted_on_the_hospitals_local_day(env: TestEnv) {
    let w = World::start(&env).await;
    let east = clinic_at(w, "KIR", "Pacific/Kiritimati", "AUD").await;
    let mut days = Vec::new();
    let mut results = Vec::new();
    let mut world = Some(east);
    for (code, zone, offset) in [("KIR", "Pacific/Kiritimati", 14), ("HNL", "Pacific/Honolulu", -10)] {
        let clinic = match world.take() {
            Some(c) if code == "KIR" => c,
            Some(c) => clinic_at(c.w, code, zone, "USD").await,
            None => unreachable!(),
        };
        let currency = if code == "KIR" { "AUD" } else { "USD" };
        // Retried when local midnight passes meanwhile (the prices were set for the day before).
        let (today, invoice) = loop {
            let today = local_today(offset);
            let yesterday = today.previous_day().unwrap().to_string();
            let clinic_today = today.to_string();
            for (from, to, price) in
                [("2020-01-01", Some(yesterday.as_str()), 100_000), (clinic_today.as_str(), None, 200_000)]
            {
                let (status, body) = clinic.price("CONS-GP", price, currency, (from, to)).await;
                assert!(status == 201 || status == 409, "{body}");
            }
            let patient = clinic.patient(None).await;
            clinic.encounter_of(&patient, &[("CONS-GP", 1)]).await;
            let invoice = clinic.invoices(&patient, 1).await.remove(0);
            if local_today(offset) == today {
                break (today, invoice);
            }
        };
        assert_eq!(invoice["date_of_service"], today.to_string(), "{code}: {invoice}");
        assert_eq!(
            (invoice["currency"].as_str(), invoice["total"].as_i64()),
            (Some(currency), Some(200_000)),
            "{code}: {invoice}"
        );
        let id = invoice["id"].as_str().unwrap().to_owned();
        assert_eq!(invoice["status"], "issued", "self-pay: issued when the encounter closed");
        let (status, paid) =
            clinic.pay(&id, Some("local-1"), json!({"payer": "patient", "method": "cash", "amount": 200_000})).await;
        assert_eq!(status, 201, "{paid}");
        // The payment is on the hospital's day in its cash report, in its currency.
        let (status, cash) = clinic
            .call(
                Method::GET,
                &format!("/api/billing/reports/daily-cash?from={today}&to={today}"),
                &clinic.biller,
                None,
            )
            .await;
        assert_eq!(status, 200, "{cash}");
        assert_eq!(
            cash["items"],
            json!([{"currency": currency, "date": today.to_string(), "method": "cash", "received": 200_000, "refunded": 0, "paid_out": 0, "net": 200_000}]),
            "{code}"
        );
        days.push(today);
        results.push(code);
        world = Some(clinic);
    }
    // Kiritimati's day is always Honolulu's next day; one of them is not the UTC date.
    assert!(days[0] >= days[1], "{days:?}");
    let utc = time::OffsetDateTime::now_utc().date();
    assert!(days.iter().any(|d| *d != utc), "{days:?} against {utc}");
    world.unwrap().w.stop().await;
}

/// A KES hospital refuses a USD price; a USD hospital's invoices are in USD; the platform's
/// reports keep each currency on its own rows and never add them.
async fn two_currencies_never_mix(env: TestEnv) {
    let w = World::start(&env).await;
    let kes = clinic_at(w, "KSH", "Africa/Nairobi", "KES").await;
    let (status, problem) = kes.price("XR-USD", 40_000, "USD", ("2020-01-01", None)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "currency", "{problem}");
    assert!(problem["errors"][0]["reason"].as_str().unwrap().contains("KES"), "{problem}");
    let kes_patient = kes.patient(None).await;
    kes.encounter_of(&kes_patient, &[("CONS-GP", 1), ("LAB-FBC", 2)]).await;
    let kes_invoice = kes.invoices(&kes_patient, 1).await.remove(0);
    // 3 000.00 + 2 × 1 250.00, in KES.
    assert_eq!((kes_invoice["currency"].as_str(), kes_invoice["total"].as_i64()), (Some("KES"), Some(550_000)));
    let (kes_admin, kes_biller, kes_hospital) = (kes.admin.clone(), kes.biller.clone(), kes.hospital.clone());
    let usd = clinic_at(kes.w, "USH", "America/New_York", "USD").await;
    for (code, price) in [("CONS-GP", 4_000), ("LAB-FBC", 1_500)] {
        let (status, body) = usd.price(code, price, "USD", ("2020-01-01", None)).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = usd.price("XR-KES", 40_000, "KES", ("2020-01-01", None)).await;
    assert_eq!(status, 422, "a USD hospital prices in USD");
    let usd_patient = usd.patient(None).await;
    usd.encounter_of(&usd_patient, &[("CONS-GP", 1), ("LAB-FBC", 2)]).await;
    let usd_invoice = usd.invoices(&usd_patient, 1).await.remove(0);
    // 40.00 + 2 × 15.00, in USD.
    assert_eq!((usd_invoice["currency"].as_str(), usd_invoice["total"].as_i64()), (Some("USD"), Some(7_000)));
    // Both issued and partly paid by card.
    let usd_id = usd_invoice["id"].as_str().unwrap().to_owned();
    assert_eq!(usd_invoice["status"], "issued");
    let (status, _) =
        usd.pay(&usd_id, Some("usd-1"), json!({"payer": "patient", "method": "card", "amount": 2_000})).await;
    assert_eq!(status, 201);
    let kes_id = kes_invoice["id"].as_str().unwrap();
    assert_eq!(kes_invoice["status"], "issued");
    let url = usd.app.url(medcov_config::ServiceName::Gateway, &format!("/api/billing/invoices/{kes_id}/payments"));
    let response = usd
        .app
        .client
        .post(url)
        .bearer_auth(&kes_biller)
        .header("idempotency-key", "kes-1")
        .json(&json!({"payer": "patient", "method": "card", "amount": 300_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // The platform's daily cash: one row per currency (New York and Nairobi may be on
    // different days; ask for both).
    let from = time::OffsetDateTime::now_utc().date().previous_day().unwrap();
    let to = from.next_day().unwrap().next_day().unwrap();
    let (status, cash) =
        usd.call(Method::GET, &format!("/api/billing/reports/daily-cash?from={from}&to={to}"), &kes_admin, None).await;
    assert_eq!(status, 200, "{cash}");
    let rows: Vec<(String, i64)> = cash["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["currency"].as_str().unwrap().to_owned(), r["received"].as_i64().unwrap()))
        .collect();
    assert_eq!(rows, [("KES".to_owned(), 300_000), ("USD".to_owned(), 2_000)], "{cash}");
    // What is owed, per currency.
    let (_, aged) = usd.call(Method::GET, "/api/billing/reports/aged-receivables", &kes_admin, None).await;
    let owed: Vec<(String, i64)> = aged["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["currency"].as_str().unwrap().to_owned(), r["total"].as_i64().unwrap()))
        .collect();
    assert_eq!(owed, [("KES".to_owned(), 250_000), ("USD".to_owned(), 5_000)], "{aged}");
    // The platform's reconciliation: every account per currency, never a sum of the two.
    // KES: 5 500.00 issued, 3 000.00 paid by card, 2 500.00 owed. USD: 70.00 issued, 20.00
    // paid by card, 50.00 owed. (currency, account, journal balance), where not zero:
    let (status, report) = usd.call(Method::GET, "/api/billing/ledger/reconciliation", &kes_admin, None).await;
    assert_eq!(status, 200, "{report}");
    let report = report["items"].as_array().unwrap();
    assert!(report.iter().all(|a| a["agrees"] == true), "{report:?}");
    let rows: Vec<(&str, &str, i64)> = report
        .iter()
        .filter(|a| a["journal"] != 0)
        .map(|a| (a["currency"].as_str().unwrap(), a["account"].as_str().unwrap(), a["journal"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            ("KES", "patient_receivable", 250_000),
            ("KES", "care_revenue", -550_000),
            ("KES", "card", 300_000),
            ("USD", "patient_receivable", 5_000),
            ("USD", "care_revenue", -7_000),
            ("USD", "card", 2_000),
        ],
        "{report:?}"
    );
    let _ = kes_hospital;
    usd.w.stop().await;
}

/// Spreadsheet and screen safety: an exported cell that would run as a formula is written as
/// text, and names with bidirectional controls are refused, naming the field.
async fn text_is_safe_in_spreadsheets_and_on_screens(env: TestEnv) {
    let c = clinic(&env).await;
    let (status, body) = c
        .call(Method::POST, "/api/billing/price-list", &c.biller, Some(json!({"hospital_id": c.hospital, "service_code": "XR-1", "category": "imaging", "description": "=HYPERLINK(\"http://evil\",\"x\")", "unit_price": 1, "currency": "KES", "effective_from": "2020-01-01"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let url = c.app.url(
        medcov_config::ServiceName::Gateway,
        &format!("/api/billing/price-list/export?hospital_id={}", c.hospital),
    );
    let exported = c.app.client.get(&url).bearer_auth(&c.biller).send().await.unwrap().text().await.unwrap();
    assert!(exported.contains("XR-1,imaging,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",1,KES"), "{exported}");
    assert!(!exported.lines().any(|l| l.split(',').any(|cell| cell.starts_with('='))), "{exported}");
    // Imported back, the description is what it was.
    let url = c.app.url(
        medcov_config::ServiceName::Gateway,
        &format!("/api/billing/price-list/import?hospital_id={}", c.hospital),
    );
    let again = exported.replace("XR-1,", "XR-2,");
    let response = c
        .app
        .client
        .post(&url)
        .bearer_auth(&c.biller)
        .header("content-type", "text/csv")
        .body(again)
        .send()
        .await
        .unwrap();
    let (status, _, report) = crate::support::read(response).await;
    assert_eq!((status, report["imported"].as_i64()), (200, Some(1)), "{report}");
    let (_, prices) =
        c.call(Method::GET, &format!("/api/billing/price-list?hospital_id={}", c.hospital), &c.biller, None).await;
    let xr2 = prices["items"].as_array().unwrap().iter().find(|p| p["service_code"] == "XR-2").cloned().unwrap();
    assert_eq!(xr2["description"], "=HYPERLINK(\"http://evil\",\"x\")");
    // A right-to-left override in a name: refused, naming the field.
    let body = json!({"hospital_id": c.hospital, "given_name": "Imani\u{202E}", "family_name": "Otieno", "date_of_birth": "1975-05-05", "sex": "female"});
    let (status, problem) = c.call(Method::POST, "/api/hospital/patients", &c.admin, Some(body)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "given_name", "{problem}");
    let (status, problem) = c
        .call(Method::POST, "/api/hospital/practitioners", &c.admin, Some(json!({"hospital_id": c.hospital, "name": "Dr \u{2067}Care", "specialty": "general practice", "working_hours": [], "daily_capacity": 4})))
        .await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some("name")), "{problem}");
    c.w.stop().await;
}

async fn an_encounter_is_invoiced_once_and_paid_without_double_charges(env: TestEnv) {
    let c = clinic(&env).await;
    // A price list imported from CSV: good lines go in, bad ones come back with their line.
    let csv = "service_code,category,description,unit_price,currency,effective_from,effective_to\n\
               XR-CHEST,imaging,\"X-ray, chest \"\"PA\"\"\",450000,KES,2020-01-01,\n\
               XR-HAND,imaging,Hand,12.50,KES,2020-01-01,\n\
               LAB-FBC,laboratory,Overlap,1,KES,2025-01-01,\n";
    let url = c.app.url(
        medcov_config::ServiceName::Gateway,
        &format!("/api/billing/price-list/import?hospital_id={}", c.hospital),
    );
    let response = c
        .app
        .client
        .post(&url)
        .bearer_auth(&c.biller)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let (status, _, report) = crate::support::read(response).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], 1, "{report}");
    let lines: Vec<i64> = report["rejected"].as_array().unwrap().iter().map(|r| r["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, [3, 4], "{report}");
    let url = c.app.url(
        medcov_config::ServiceName::Gateway,
        &format!("/api/billing/price-list/export?hospital_id={}", c.hospital),
    );
    let exported = c.app.client.get(&url).bearer_auth(&c.biller).send().await.unwrap().text().await.unwrap();
    assert!(exported.contains("XR-CHEST,imaging,\"X-ray, chest \"\"PA\"\"\",450000,KES,2020-01-01,\n"), "{exported}");
    assert_eq!(exported.lines().count(), 4, "the header and three prices: {exported}");
    let since = time::OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let patient = c.patient(None).await;
    let encounter = c.encounter(&patient).await;
    let invoice = c.invoices(&patient, 1).await.remove(0);
    assert_eq!(invoice["encounter_id"], encounter.as_str());
    // Self-pay (no member number) and fully priced: issued when the encounter closed.
    assert_eq!(invoice["status"], "issued", "{invoice}");
    // 3 000.00 + 2 × 1 250.00, all on the patient: no insurer.
    assert_eq!((invoice["total"].as_i64(), invoice["patient_share"].as_i64()), (Some(550_000), Some(550_000)));
    assert_eq!(invoice["lines"][1]["total"], 250_000);
    let id = invoice["id"].as_str().unwrap().to_owned();

    let (status, estimate) =
        c.call(Method::GET, &format!("/api/billing/invoices/{id}/estimate"), &c.biller, None).await;
    assert_eq!((status, estimate["source"].as_str()), (200, Some("self_pay")), "{estimate}");
    assert_eq!((estimate["insurer_share"].as_i64(), estimate["patient_share"].as_i64()), (Some(0), Some(550_000)));
    let (status, _) = c.call(Method::POST, &format!("/api/billing/invoices/{id}/issue"), &c.biller, None).await;
    assert_eq!(status, 409, "issued once");
    assert_eq!(balance(&c.reconciled().await, "patient_receivable"), 550_000);
    // A hand-made draft takes no payment until it is issued.
    let other = c.patient_named("Zawadi", None).await;
    let manual = json!({"hospital_id": c.hospital, "patient_id": other, "date_of_service": "2026-01-05", "lines": [{"service_code": "CONS-GP", "quantity": 1}]});
    let (status, draft) = c.call(Method::POST, "/api/billing/invoices", &c.biller, Some(manual)).await;
    assert_eq!((status, draft["status"].as_str()), (201, Some("draft")), "{draft}");
    let draft_id = draft["id"].as_str().unwrap();
    let (status, _) = c.pay(draft_id, Some("k0"), json!({"payer": "patient", "method": "cash", "amount": 1})).await;
    assert_eq!(status, 409, "a draft takes no payment");
    let void = json!({"reason": "made to show a draft"});
    let (status, _) =
        c.call(Method::POST, &format!("/api/billing/invoices/{draft_id}/void"), &c.biller, Some(void)).await;
    assert_eq!(status, 200);

    // No key, no payment.
    let (status, _) = c.pay(&id, None, json!({"payer": "patient", "method": "cash", "amount": 200_000})).await;
    assert_eq!(status, 428);
    // A partial payment, its repeat, and another request under its key.
    let first = json!({"payer": "patient", "method": "cash", "amount": 200_000});
    let (status, paid) = c.pay(&id, Some("k1"), first.clone()).await;
    assert_eq!(status, 201, "{paid}");
    let (status, again) = c.pay(&id, Some("k1"), first).await;
    assert_eq!((status, again["id"].clone()), (201, paid["id"].clone()), "the first answer again");
    let (status, problem) = c.pay(&id, Some("k1"), json!({"payer": "patient", "method": "cash", "amount": 999})).await;
    assert_eq!(status, 422, "{problem}");
    // Six retries of one payment at once move the money once.
    let mut tasks = Vec::new();
    let c = std::sync::Arc::new(c);
    for _ in 0..6 {
        let c = c.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            c.pay(&id, Some("k2"), json!({"payer": "patient", "method": "mobile_money", "amount": 100_000})).await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    // Each got the one payment (first or replayed) or came while it ran (409).
    let first = outcomes.iter().find(|(s, _)| *s == 201).map(|(_, p)| p["id"].clone()).unwrap();
    assert!(outcomes.iter().all(|(s, p)| *s == 409 || (*s == 201 && p["id"] == first)), "{outcomes:?}");
    let (_, payments) = c.call(Method::GET, &format!("/api/billing/invoices/{id}/payments"), &c.biller, None).await;
    assert_eq!(payments["items"].as_array().map(Vec::len), Some(2), "one payment for k1, one for k2: {payments}");
    let (_, now) = c.call(Method::GET, &format!("/api/billing/invoices/{id}"), &c.biller, None).await;
    assert_eq!((now["paid_patient"].as_i64(), now["status"].as_str()), (Some(300_000), Some("partially_paid")));
    // 4 000.00 on 2 500.00 owed: 1 500.00 becomes credit.
    let (status, over) = c.pay(&id, Some("k3"), json!({"payer": "patient", "method": "card", "amount": 400_000})).await;
    assert_eq!(status, 201);
    assert_eq!((over["applied"].as_i64(), over["credit"].as_i64()), (Some(250_000), Some(150_000)));
    let (_, now) = c.call(Method::GET, &format!("/api/billing/invoices/{id}"), &c.biller, None).await;
    assert_eq!(now["status"], "paid");
    let report = c.reconciled().await;
    assert_eq!(balance(&report, "patient_receivable"), 0);
    assert_eq!(balance(&report, "cash") + balance(&report, "mobile_money") + balance(&report, "card"), 700_000);
    assert_eq!(balance(&report, "payer_credit"), -150_000);
    assert_eq!(balance(&report, "care_revenue"), -550_000);
    // A refund of 2 000.00 of the card payment: the 1 500.00 credit first, then 500.00 owed again.
    let payment = over["id"].as_str().unwrap();
    let (status, problem) = c
        .call(
            Method::POST,
            &format!("/api/billing/payments/{payment}/refunds"),
            &c.biller,
            Some(json!({"amount": 400_001, "reason": "too much"})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let (status, refund) = c
        .call(
            Method::POST,
            &format!("/api/billing/payments/{payment}/refunds"),
            &c.biller,
            Some(json!({"amount": 200_000, "reason": "overpaid"})),
        )
        .await;
    assert_eq!(status, 201, "{refund}");
    assert_eq!((refund["from_credit"].as_i64(), refund["from_applied"].as_i64()), (Some(150_000), Some(50_000)));
    let refund_path = format!("/api/billing/refunds/{}", refund["id"].as_str().unwrap());
    let (status, _) = c.call(Method::POST, &format!("{refund_path}/approve"), &c.biller, Some(json!({}))).await;
    assert_eq!(status, 409, "who asked does not approve");
    let (_, still) = c.call(Method::GET, &format!("/api/billing/invoices/{id}"), &c.biller, None).await;
    assert_eq!(still["status"], "paid", "nothing moves before the approval");
    let (status, approved) =
        c.call(Method::POST, &format!("{refund_path}/approve"), &c.admin, Some(json!({"note": "checked"}))).await;
    assert_eq!((status, approved["status"].as_str()), (200, Some("completed")), "{approved}");
    let (_, now) = c.call(Method::GET, &format!("/api/billing/invoices/{id}"), &c.biller, None).await;
    assert_eq!((now["paid_patient"].as_i64(), now["status"].as_str()), (Some(500_000), Some("partially_paid")));
    let report = c.reconciled().await;
    assert_eq!((balance(&report, "payer_credit"), balance(&report, "card")), (0, 200_000));
    assert_eq!(balance(&report, "patient_receivable"), 50_000);
    let (status, _) = c
        .call(
            Method::POST,
            &format!("/api/billing/payments/{payment}/refunds"),
            &c.biller,
            Some(json!({"amount": 200_001, "reason": "again"})),
        )
        .await;
    assert_eq!(status, 422, "only what is left can be refunded");

    // Reports: today's cash by method, and what is still owed, by age; also as CSV.
    let today = time::OffsetDateTime::now_utc().date();
    let (status, cash) =
        c.call(Method::GET, &format!("/api/billing/reports/daily-cash?from={today}&to={today}"), &c.biller, None).await;
    assert_eq!(status, 200, "{cash}");
    let by_method =
        |m: &str| cash["items"].as_array().unwrap().iter().find(|r| r["method"] == m).cloned().unwrap_or(Value::Null);
    assert_eq!(
        (by_method("cash")["net"].as_i64(), by_method("mobile_money")["net"].as_i64()),
        (Some(200_000), Some(100_000))
    );
    assert_eq!(
        (by_method("card")["received"].as_i64(), by_method("card")["refunded"].as_i64()),
        (Some(400_000), Some(200_000))
    );
    let (_, aged) = c.call(Method::GET, "/api/billing/reports/aged-receivables", &c.biller, None).await;
    assert_eq!(
        aged["items"],
        json!([{"currency": "KES", "payer": "patient", "party_id": patient, "current": 50_000, "days_31_60": 0, "days_61_90": 0, "over_90": 0, "total": 50_000}])
    );
    let url = c.app.url(medcov_config::ServiceName::Gateway, "/api/billing/reports/aged-receivables?format=csv");
    let response = c.app.client.get(url).bearer_auth(&c.biller).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = response.text().await.unwrap();
    assert_eq!(
        csv,
        format!(
            "currency,payer,party_id,current,days_31_60,days_61_90,over_90,total\nKES,patient,{patient},50000,0,0,0,50000\n"
        )
    );
    let (status, _) = c
        .call(Method::POST, &format!("/api/billing/invoices/{id}/void"), &c.biller, Some(json!({"reason": "x"})))
        .await;
    assert_eq!(status, 409, "paid invoices are not voided");

    // The encounter's event again (a replay): still one invoice.
    let (status, replayed) = c
        .call(
            Method::POST,
            "/api/hospital/events/replay",
            &c.admin,
            Some(json!({"since": since.format(&time::format_description::well_known::Rfc3339).unwrap()})),
        )
        .await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(c.invoices(&patient, 1).await.len(), 1, "handled once");

    // Another hospital's clerk sees nothing of it.
    let stranger =
        c.user("far.billing", "billing_clerk", json!({"kind": "hospitals", "hospitals": [uuid::Uuid::now_v7()]})).await;
    let (status, _) = c.call(Method::GET, &format!("/api/billing/invoices/{id}"), &stranger, None).await;
    assert_eq!(status, 404);
}

/// An encounter's service carries an approved pre-authorisation, checked when the care is
/// recorded (one the insurer never gave, or given to another patient, is refused); the claim
/// raised when the encounter closes cites it and is paid by it. By hand: the procedure costs 20 000.00, the
/// plan pays it less 10 % co-insurance once approved: 18 000.00 and 2 000.00.
async fn an_encounter_service_carries_its_preauthorisation_into_the_claim(env: TestEnv) {
    let c = clinic(&env).await;
    let insurer = c.insurer("PRE").await;
    let rules = json!({
        "currency": "KES", "premium": {"kind": "per_member", "adult": 1, "child": 1, "child_until_age": 18}, "max_members": 2,
        "categories": {
            "procedure": {"setting": "inpatient", "preauth_required": true, "cost_shares": [{"visit_type": "normal", "network": "in_network", "coinsurance_bp": 1_000}]}
        },
        "network": [c.hospital],
        "preauth_auto_approve_up_to": 5_000_000
    });
    let plan = c.plan(&c.admin, &insurer, "SURG", rules).await;
    let start = (time::OffsetDateTime::now_utc().date() - time::Duration::days(30)).to_string();
    let policy = c.policy(&c.admin, &plan, &start, person("Imani", "Otieno", "1975-05-05"), &[]).await;
    c.activate(&c.admin, &policy).await;
    let number = member_number(&policy);
    let (status, body) = c
        .call(Method::POST, "/api/hospital/service-catalog", &c.admin, Some(json!({"hospital_id": c.hospital, "code": "PROC-1", "category": "procedure", "description": "Procedure"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = c
        .call(Method::POST, "/api/billing/price-list", &c.biller, Some(json!({"hospital_id": c.hospital, "service_code": "PROC-1", "category": "procedure", "description": "Procedure", "unit_price": 2_000_000, "currency": "KES", "effective_from": "2020-01-01"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let patient = c.patient(Some(&number)).await;
    c.settle().await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let ask = json!({"member_number": number, "hospital_id": c.hospital, "visit_type": "normal", "planned_date": today,
        "services": [{"service_code": "PROC-1", "category": "procedure", "quantity": 1, "estimated_amount": 2_000_000}]});
    let (status, approval) = c.call(Method::POST, "/api/insurance/preauthorisations", &c.clinician, Some(ask)).await;
    assert_eq!((status, approval["status"].as_str()), (201, Some("approved")), "{approval}");

    // Cites it on the encounter's service: (patient, the preauth id, the status of the care record).
    let care = async |patient: &str, preauth: Value| -> (u16, Value, String) {
        let (status, encounter) = c
            .call(
                Method::POST,
                "/api/hospital/encounters",
                &c.clinician,
                Some(json!({"patient_id": patient, "practitioner_id": c.practitioner, "visit_type": "normal"})),
            )
            .await;
        assert_eq!(status, 201, "{encounter}");
        let id = encounter["id"].as_str().unwrap().to_owned();
        let url = c.app.url(medcov_config::ServiceName::Gateway, &format!("/api/hospital/encounters/{id}"));
        let body = json!({"diagnoses": [{"code": "K35.8", "primary": true}], "services": [{"code": "PROC-1", "quantity": 1, "preauth_id": preauth}]});
        let response = c
            .app
            .client
            .patch(&url)
            .bearer_auth(&c.clinician)
            .header("if-match", "\"1\"")
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, _, answer) = crate::support::read(response).await;
        (status, answer, id)
    };
    // The decision reaches the hospital (`preauth_decided`), which checks care against it.
    c.settle().await;
    // An approval the insurer never gave, and the real one cited for another patient: refused
    // when the care is recorded, naming the line.
    let other = c.patient_named("Amani", None).await;
    for (patient, preauth, why) in [
        (&patient, json!(uuid::Uuid::now_v7()), "is not a pre-authorisation"),
        (&other, approval["id"].clone(), "not this patient"),
    ] {
        let (status, refused, _) = care(patient, preauth).await;
        assert_eq!(status, 422, "{refused}");
        assert_eq!(refused["errors"][0]["field"], "services[0].preauth_id", "{refused}");
        assert!(refused["errors"][0]["reason"].as_str().unwrap().contains(why), "{refused}");
    }
    let (status, recorded, encounter) = care(&patient, approval["id"].clone()).await;
    assert_eq!(status, 200, "{recorded}");
    let url = c.app.url(medcov_config::ServiceName::Gateway, &format!("/api/hospital/encounters/{encounter}/close"));
    let response = c.app.client.post(&url).bearer_auth(&c.clinician).header("if-match", "\"2\"").send().await.unwrap();
    assert_eq!(response.status(), 200);

    // The automatic claim cites the approval and is paid by it; the invoice is split and issued.
    let invoices = c.invoices(&patient, 1).await;
    assert_eq!(invoices.len(), 1, "nothing was invoiced of the refused care: {invoices:?}");
    let invoice = invoices[0].clone();
    let split = c.invoice(invoice["id"].as_str().unwrap()).await;
    assert_eq!((split["status"].as_str(), split["split_source"].as_str()), (Some("issued"), Some("claim")), "{split}");
    assert_eq!(
        (split["insurer_share"].as_i64(), split["patient_share"].as_i64()),
        (Some(1_800_000), Some(200_000)),
        "{split}"
    );
    assert_eq!(split["lines"][0]["adjustments"], json!([{"code": "co_insurance", "amount": 200_000}]));
    let (_, used) = c
        .call(
            Method::GET,
            &format!("/api/insurance/preauthorisations/{}", approval["id"].as_str().unwrap()),
            &c.admin,
            None,
        )
        .await;
    assert_eq!(used["used_by_claim"], split["claim_id"], "{used}");
    c.reconciled().await;
    c.w.stop().await;
}

/// An insurer whose plan covers consultations (co-payment 500.00) and tests (20 %) at the
/// clinic, and an active member of it: (insurer, member number).
async fn insured_member(c: &Clinic) -> (String, String) {
    let insurer = c.insurer("SPL").await;
    let rules = json!({
        "currency": "KES", "premium": {"kind": "per_member", "adult": 1, "child": 1, "child_until_age": 18}, "max_members": 2,
        "categories": {
            "consultation": {"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network", "copay": 50_000}]},
            "laboratory": {"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network", "coinsurance_bp": 2_000}]}
        },
        "network": [c.hospital]
    });
    let plan = c.plan(&c.admin, &insurer, "BASIC", rules).await;
    let start = (time::OffsetDateTime::now_utc().date() - time::Duration::days(30)).to_string();
    let policy = c.policy(&c.admin, &plan, &start, person("Imani", "Otieno", "1975-05-05"), &[]).await;
    c.activate(&c.admin, &policy).await;
    (insurer, member_number(&policy))
}

/// An override is bounded by the ceiling: up to it, accepted; past it, refused; the same as
/// ex gratia, accepted, and billing journals the ex-gratia part on its own account
/// (`ex_gratia_revenue`, never `care_revenue` from covered benefit) and the insurer's statement
/// shows it on its own line. By hand: out-patient ceiling 4 700.00 per member; consultation
/// 3 000.00 (co-payment 500.00), two blood counts 2 500.00 (co-insurance 20 %).
async fn an_override_past_the_ceiling_is_ex_gratia_on_its_own_account(env: TestEnv) {
    let c = clinic(&env).await;
    let insurer = c.insurer("EXG").await;
    let rules = json!({
        "currency": "KES", "premium": {"kind": "per_member", "adult": 1, "child": 1, "child_until_age": 18}, "max_members": 2,
        "ceilings": {"member_outpatient": 470_000},
        "categories": {
            "consultation": {"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network", "copay": 50_000}]},
            "laboratory": {"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network", "coinsurance_bp": 2_000}]}
        },
        "network": [c.hospital]
    });
    let plan = c.plan(&c.admin, &insurer, "EXGR", rules).await;
    let start = (time::OffsetDateTime::now_utc().date() - time::Duration::days(30)).to_string();
    let policy = c.policy(&c.admin, &plan, &start, person("Imani", "Otieno", "1975-05-05"), &[]).await;
    c.activate(&c.admin, &policy).await;
    let patient = c.patient(Some(&member_number(&policy))).await;
    c.encounter(&patient).await;
    let id = c.invoices(&patient, 1).await.remove(0)["id"].as_str().unwrap().to_owned();
    // The engine: consultation 2 500.00 on the insurer (2 200.00 of the ceiling left), tests
    // 2 500.00 less 20 % = 2 000.00 (200.00 left). Insurer 4 500.00, patient 1 000.00.
    let split = c.invoice(&id).await;
    assert_eq!(split["status"], "issued", "{split}");
    let shares = |i: &Value| (i["insurer_share"].as_i64(), i["ex_gratia"].as_i64(), i["patient_share"].as_i64());
    assert_eq!(shares(&split), (Some(450_000), Some(0), Some(100_000)), "{split}");
    let claim = format!("/api/insurance/claims/{}", split["claim_id"].as_str().unwrap());
    let adjudicate = async |insurer_pays: i64, ex_gratia: bool| {
        let (status, body) =
            c.call(Method::POST, &format!("{claim}/review"), &c.admin, Some(json!({"reason": "appeal"}))).await;
        assert!(status == 200 || status == 409, "{body}");
        let overrides = json!({"overrides": [{"line": 2, "insurer_pays": insurer_pays, "reason": "appeal upheld", "ex_gratia": ex_gratia}]});
        c.call(Method::POST, &format!("{claim}/adjudicate"), &c.admin, Some(overrides)).await
    };
    // Up to the ceiling: the tests at 2 200.00 (the 2 000.00 the engine paid and the 200.00
    // left) is an ordinary override.
    let (status, body) = adjudicate(220_000, false).await;
    assert_eq!(status, 200, "{body}");
    let within = c.invoice(&id).await;
    assert_eq!(shares(&within), (Some(470_000), Some(0), Some(80_000)), "{within}");
    // Past it: the tests in full (2 500.00) is 300.00 past the ceiling: refused, naming the field.
    let (status, refused) = adjudicate(250_000, false).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "overrides[0].insurer_pays", "{refused}");
    // The same as ex gratia: accepted; 200.00 is an override, 300.00 ex gratia. Insurer
    // 2 500.00 + 2 500.00 = 5 000.00, of which 300.00 ex gratia; patient 500.00.
    let (status, body) = adjudicate(250_000, true).await;
    assert_eq!(status, 200, "{body}");
    let ex_gratia = c.invoice(&id).await;
    assert_eq!(shares(&ex_gratia), (Some(500_000), Some(30_000), Some(50_000)), "{ex_gratia}");
    let line = &ex_gratia["lines"][1];
    assert_eq!((line["insurer_share"].as_i64(), line["ex_gratia"].as_i64()), (Some(250_000), Some(30_000)), "{line}");
    assert_eq!(
        line["adjustments"],
        json!([{"code": "co_insurance", "amount": 50_000}, {"code": "override", "amount": -20_000}, {"code": "ex_gratia", "amount": -30_000}]),
        "{line}"
    );
    // The journal: 5 500.00 of care revenue, of which 300.00 on its own ex-gratia account.
    let report = c.reconciled().await;
    let at = |account: &str| balance(&report, account);
    assert_eq!(
        (at("care_revenue"), at("ex_gratia_revenue"), at("insurer_receivable"), at("patient_receivable")),
        (-520_000, -30_000, 500_000, 50_000)
    );
    // The insurer's statement: 5 000.00 billed, 300.00 of it ex gratia on its own line.
    let (_, statement) =
        c.call(Method::GET, &format!("/api/billing/insurers/{insurer}/statement"), &c.biller, None).await;
    assert_eq!(
        statement["totals"],
        json!([{"currency": "KES", "billed": 500_000, "ex_gratia": 30_000, "paid": 0, "outstanding": 500_000}]),
        "{statement}"
    );
    assert_eq!(
        (statement["invoices"][0]["share"].as_i64(), statement["invoices"][0]["ex_gratia"].as_i64()),
        (Some(500_000), Some(30_000))
    );
    // Covered benefit stops at the ceiling: the member has nothing left, never less than zero.
    let body = json!({"member_number": member_number(&policy), "date": time::OffsetDateTime::now_utc().date().to_string(), "hospital_id": c.hospital, "services": []});
    let (status, answer) = c.call(Method::POST, "/api/insurance/eligibility", &c.biller, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["member_ceiling_left"]["outpatient"], 0, "{answer}");
    c.w.stop().await;
}

async fn an_insured_encounter_is_claimed_split_issued_and_settled(env: TestEnv) {
    let mut c = clinic(&env).await;
    let (insurer, number) = insured_member(&c).await;

    let patient = c.patient(Some(&number)).await;
    c.encounter(&patient).await;
    let invoice = c.invoices(&patient, 1).await.remove(0);
    assert_eq!(invoice["member_number"], number.as_str());
    let id = invoice["id"].as_str().unwrap().to_owned();
    // The claim went to the insurer with the draft, under the invoice number; split by the
    // adjudication, then issued.
    let split = c.invoice(&id).await;
    assert_eq!(split["split_source"], "claim", "{split}");
    // The insurer's list finds it by its reference (the invoice number), alone, and by member.
    let invoice_number = invoice["number"].as_str().expect("an invoice number");
    let (_, claims) =
        c.call(Method::GET, &format!("/api/insurance/claims?reference={invoice_number}"), &c.biller, None).await;
    assert_eq!(claims["items"].as_array().map(Vec::len), Some(1), "{claims}");
    let claim = claims["items"][0].clone();
    assert_eq!(claim["reference"], invoice["number"], "{claims}");
    let member = claim["member_number"].as_str().expect("a member number");
    let (_, of_member) =
        c.call(Method::GET, &format!("/api/insurance/claims?member_number={member}"), &c.biller, None).await;
    let listed = of_member["items"].as_array().cloned().unwrap_or_default();
    assert!(listed.iter().all(|cl| cl["member_number"] == member), "{of_member}");
    assert!(listed.iter().any(|cl| cl["id"] == claim["id"]), "{of_member}");
    let (_, none) = c.call(Method::GET, "/api/insurance/claims?member_number=NOBODY-1", &c.biller, None).await;
    assert_eq!(none["items"], json!([]));
    assert_eq!(split["claim_id"], claim["id"], "the adjudication reached billing: {split}");
    // Each event of the chain names its cause: billing's claim request was caused by the
    // encounter's completion, the adjudication by the claim request.
    let (_, completed) =
        c.call(Method::GET, "/api/hospital/events?type=hospital.encounter_completed.v1", &c.admin, None).await;
    let (_, requested) =
        c.call(Method::GET, "/api/billing/events?type=billing.claim_requested.v1", &c.admin, None).await;
    let claim_id = claim["id"].as_str().unwrap();
    let (_, adjudicated) =
        c.call(Method::GET, &format!("/api/insurance/events?aggregate_id={claim_id}"), &c.admin, None).await;
    assert_eq!(requested["items"][0]["causation_id"], completed["items"][0]["id"], "{requested}");
    let adjudicated = adjudicated["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "insurance.claim_adjudicated.v1")
        .cloned()
        .unwrap();
    assert_eq!(adjudicated["causation_id"], requested["items"][0]["id"], "{adjudicated}");
    assert_eq!(split["status"], "issued", "issued once split: {split}");
    // Consultation 3 000.00: co-payment 500.00. Tests 2 500.00: 20 % = 500.00.
    assert_eq!(
        (split["lines"][0]["insurer_share"].as_i64(), split["lines"][0]["patient_share"].as_i64()),
        (Some(250_000), Some(50_000))
    );
    assert_eq!(
        (split["lines"][1]["insurer_share"].as_i64(), split["lines"][1]["patient_share"].as_i64()),
        (Some(200_000), Some(50_000))
    );
    // The split as `estimate` tells it: the adjudication, or the insurer's eligibility answer
    // asked now; both by hand: 2 500.00 + 2 000.00 on the insurer, 500.00 + 500.00 on the patient.
    for (basis, source) in [("", "adjudication"), ("?basis=eligibility", "estimate")] {
        let (status, estimate) =
            c.call(Method::GET, &format!("/api/billing/invoices/{id}/estimate{basis}"), &c.biller, None).await;
        assert_eq!((status, estimate["source"].as_str()), (200, Some(source)), "{estimate}");
        let shares =
            |i: usize| (estimate["lines"][i]["insurer_share"].as_i64(), estimate["lines"][i]["patient_share"].as_i64());
        assert_eq!(
            (shares(0), shares(1)),
            ((Some(250_000), Some(50_000)), (Some(200_000), Some(50_000))),
            "{estimate}"
        );
        assert_eq!(
            (estimate["insurer_share"].as_i64(), estimate["patient_share"].as_i64()),
            (Some(450_000), Some(100_000))
        );
        // Each line says why the patient pays its share.
        assert_eq!(
            (&estimate["lines"][0]["adjustments"], &estimate["lines"][1]["adjustments"]),
            (&json!([{"code": "co_pay", "amount": 50_000}]), &json!([{"code": "co_insurance", "amount": 50_000}])),
            "{estimate}"
        );
    }
    assert_eq!((split["insurer_share"].as_i64(), split["patient_share"].as_i64()), (Some(450_000), Some(100_000)));

    let (status, _) = c.pay(&id, Some("ins-1"), json!({"payer": "insurer", "method": "cash", "amount": 450_000})).await;
    assert_eq!(status, 422, "an insurer does not pay cash");
    // The insurer's remittance settles its share; an unknown invoice in it is reported.
    let url = c.app.url(medcov_config::ServiceName::Gateway, "/api/billing/remittances");
    let remittance = json!({"hospital_id": c.hospital, "method": "insurer_remittance", "external_reference": "EFT-77",
        "items": [{"invoice_number": invoice["number"], "amount": 450_000}, {"invoice_number": "INV-NOPE", "amount": 1_000}]});
    for _ in 0..2 {
        let response = c
            .app
            .client
            .post(&url)
            .bearer_auth(&c.biller)
            .header("idempotency-key", "rem-1")
            .json(&remittance)
            .send()
            .await
            .unwrap();
        let (status, _, result) = crate::support::read(response).await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["settled"][0]["payment"]["applied"], 450_000);
        assert_eq!(result["unmatched"][0]["invoice_number"], "INV-NOPE");
    }
    let (status, _) = c.pay(&id, Some("pat-1"), json!({"payer": "patient", "method": "cash", "amount": 100_000})).await;
    assert_eq!(status, 201);
    let (_, paid) = c.call(Method::GET, &format!("/api/billing/invoices/{id}"), &c.biller, None).await;
    assert_eq!(paid["status"], "paid");
    let report = c.reconciled().await;
    assert_eq!((balance(&report, "insurer_receivable"), balance(&report, "bank")), (0, 450_000));
    // Statements: the insurer was billed 4 500.00 and paid it; the patient 1 000.00, paid.
    let (_, statement) =
        c.call(Method::GET, &format!("/api/billing/insurers/{insurer}/statement"), &c.biller, None).await;
    assert_eq!(
        statement["totals"],
        json!([{"currency": "KES", "billed": 450_000, "ex_gratia": 0, "paid": 450_000, "outstanding": 0}]),
        "{statement}"
    );
    let (_, statement) =
        c.call(Method::GET, &format!("/api/billing/patients/{patient}/statement"), &c.biller, None).await;
    assert_eq!(
        statement["totals"],
        json!([{"currency": "KES", "billed": 100_000, "ex_gratia": 0, "paid": 100_000, "outstanding": 0}]),
        "{statement}"
    );
    // Why the patient pays 1 000.00: the co-payment of the consultation and 20 % of the tests.
    assert_eq!(
        statement["invoices"][0]["adjustments"],
        json!([{"code": "co_pay", "amount": 50_000}, {"code": "co_insurance", "amount": 50_000}]),
        "{statement}"
    );
    // Nobody billed, no statement: 404, never a statement of zeros.
    for path in ["patients", "insurers"] {
        let unknown = format!("/api/billing/{path}/{}/statement", uuid::Uuid::now_v7());
        let (status, body) = c.call(Method::GET, &unknown, &c.biller, None).await;
        assert_eq!(status, 404, "{unknown}: {body}");
    }
    // The remittance settled the insurer's share: the claim is paid.
    let claim_path = format!("/api/insurance/claims/{}", claim["id"].as_str().unwrap());
    c.settle().await;
    assert_eq!(c.call(Method::GET, &claim_path, &c.biller, None).await.1["status"], "paid");

    // A second visit, invoiced and claimed, then voided: its claim is withdrawn.
    c.encounter(&patient).await;
    let second = c.invoices(&patient, 2).await.into_iter().find(|i| i["id"] != id.as_str()).expect("a second invoice");
    let second_id = second["id"].as_str().unwrap().to_owned();
    let issued = c.invoice(&second_id).await;
    assert_eq!(issued["status"], "issued", "{issued}");
    let (status, _) = c
        .call(
            Method::POST,
            &format!("/api/billing/invoices/{second_id}/void"),
            &c.biller,
            Some(json!({"reason": "entered twice"})),
        )
        .await;
    assert_eq!(status, 200);
    let second_claim = format!("/api/insurance/claims/{}", issued["claim_id"].as_str().unwrap());
    c.settle().await;
    assert_eq!(c.call(Method::GET, &second_claim, &c.biller, None).await.1["status"], "withdrawn");
    c.reconciled().await;

    // MedCov restarts, and every service's events are delivered all over again: nothing happens
    // twice (one invoice per visit, one claim per invoice, one payment per remittance).
    c.restart(env.config.clone(), "all").await;
    let since = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for service in ["hospital", "insurance", "billing"] {
        let (status, replayed) = c
            .call(Method::POST, &format!("/api/{service}/events/replay"), &c.admin, Some(json!({"since": since})))
            .await;
        assert_eq!(status, 200, "{replayed}");
    }
    assert_eq!(c.invoices(&patient, 2).await.len(), 2);
    let (_, claims) = c.call(Method::GET, "/api/insurance/claims", &c.biller, None).await;
    assert_eq!(claims["items"].as_array().map(Vec::len), Some(2), "{claims}");
    let (_, first) = c.call(Method::GET, &format!("/api/billing/invoices/{id}"), &c.biller, None).await;
    assert_eq!((first["status"].as_str(), first["paid_insurer"].as_i64()), (Some("paid"), Some(450_000)));
    let (_, payments) = c.call(Method::GET, &format!("/api/billing/invoices/{id}/payments"), &c.biller, None).await;
    assert_eq!(payments["items"].as_array().map(Vec::len), Some(2), "{payments}");
    assert_eq!(c.call(Method::GET, &claim_path, &c.biller, None).await.1["status"], "paid");
    let report = c.reconciled().await;
    assert_eq!((balance(&report, "insurer_receivable"), balance(&report, "bank")), (0, 450_000));

    // A clerk's invoice with a member number and a diagnosis is claimed the same way (for
    // yesterday's visit: today's consultation was claimed already, and would be a duplicate).
    let today = (time::OffsetDateTime::now_utc().date() - time::Duration::days(1)).to_string();
    let (status, manual) = c
        .call(Method::POST, "/api/billing/invoices", &c.biller, Some(json!({"hospital_id": c.hospital, "patient_id": patient,
            "date_of_service": today, "member_number": number, "diagnosis": "J06.9", "lines": [{"service_code": "CONS-GP", "quantity": 1}]})))
        .await;
    assert_eq!(status, 201, "{manual}");
    let split = c.invoice(manual["id"].as_str().unwrap()).await;
    assert_eq!(split["split_source"], "claim", "{split}");
    assert_eq!(
        (split["insurer_share"].as_i64(), split["patient_share"].as_i64()),
        (Some(250_000), Some(50_000)),
        "{split}"
    );
    c.w.stop().await;
}

/// Encounter to settlement with MedCov stopped right after the encounter closes and started
/// again: the flow picks up where the bus and the outboxes left it, and every effect happens
/// once (one invoice, one claim, one split, one journal).
async fn an_insured_encounter_finishes_once_across_a_restart(env: TestEnv) {
    let mut c = clinic(&env).await;
    let (_, number) = insured_member(&c).await;
    let patient = c.patient(Some(&number)).await;
    c.encounter(&patient).await;
    // Stop at once: the encounter's event may be in the outbox, on the bus, or half handled.
    c.restart(env.config.clone(), "all").await;

    let invoice = c.invoices(&patient, 1).await.remove(0);
    let id = invoice["id"].as_str().unwrap().to_owned();
    let split = c.invoice(&id).await;
    assert_eq!((split["split_source"].as_str(), split["status"].as_str()), (Some("claim"), Some("issued")), "{split}");
    assert_eq!(
        (split["insurer_share"].as_i64(), split["patient_share"].as_i64()),
        (Some(450_000), Some(100_000)),
        "{split}"
    );
    // Settled: any duplicate would show now.
    let (_, invoices) =
        c.call(Method::GET, &format!("/api/billing/invoices?patient_id={patient}"), &c.biller, None).await;
    assert_eq!(invoices["items"].as_array().map(Vec::len), Some(1), "one invoice: {invoices}");
    let (_, claims) = c.call(Method::GET, "/api/insurance/claims", &c.biller, None).await;
    let theirs: Vec<&Value> =
        claims["items"].as_array().unwrap().iter().filter(|cl| cl["reference"] == invoice["number"]).collect();
    assert_eq!(theirs.len(), 1, "one claim: {claims}");
    assert_eq!(theirs[0]["status"], "adjudicated");
    let report = c.reconciled().await;
    assert_eq!(balance(&report, "insurer_receivable"), 450_000);
    assert_eq!(balance(&report, "patient_receivable"), 100_000);
    c.w.stop().await;
}

/// An insured patient whose claim the insurer refuses (no such member): the whole invoice is
/// the patient's, issued as such, and nothing is owed by an insurer.
async fn a_refused_claim_puts_the_whole_invoice_on_the_patient(env: TestEnv) {
    let c = clinic(&env).await;
    insured_member(&c).await;
    // Well-formed, but no member has it.
    let patient = c.patient(Some("AAR-0000099911")).await;
    c.encounter(&patient).await;
    let invoice = c.invoices(&patient, 1).await.remove(0);
    let id = invoice["id"].as_str().unwrap().to_owned();
    let now = c.invoice(&id).await;
    assert_eq!((now["status"].as_str(), now["split_source"].as_str()), (Some("issued"), Some("none")), "{now}");
    assert_eq!((now["insurer_share"].as_i64(), now["patient_share"].as_i64()), (Some(0), Some(550_000)), "{now}");
    let (_, claims) = c.call(Method::GET, "/api/insurance/claims", &c.biller, None).await;
    assert!(
        !claims["items"].as_array().unwrap().iter().any(|cl| cl["reference"] == invoice["number"]),
        "no claim was taken: {claims}"
    );
    let report = c.reconciled().await;
    assert_eq!((balance(&report, "patient_receivable"), balance(&report, "insurer_receivable")), (550_000, 0));
    c.w.stop().await;
}

/// An insurer's dates are its own local days: a premium is numbered and due (30 days on) by
/// the insurer's day, and a member number is checked on its insurer's day. Kiritimati (UTC+14)
/// is on UTC's date only from 00:00 to 10:00 UTC and Honolulu (UTC−10) only from 10:00 to 24:00,
/// so at any hour one of the two differs from the UTC date and would show a UTC date.
async fn an_insurers_dates_are_its_local_days(env: TestEnv) {
    let w = World::start(&env).await;
    // (code, zone, its fixed offset in hours: neither has summer time)
    let insurers = [("KIR", "Pacific/Kiritimati", 14), ("HNL", "Pacific/Honolulu", -10)];
    let local_today =
        |hours: i8| time::OffsetDateTime::now_utc().to_offset(time::UtcOffset::from_hms(hours, 0, 0).unwrap()).date();
    let mut numbers = Vec::new();
    for (code, zone, hours) in insurers {
        let body = json!({"code": code, "name": format!("{code} Insurance"), "currency": "KES", "timezone": zone});
        let insurer = crate::world::id(&w.create("/api/insurance/insurers", &w.admin, body).await);
        let rules = json!({"currency": "KES", "premium": {"kind": "per_member", "adult": 1_200_000, "child": 600_000, "child_until_age": 18},
            "max_members": 2, "categories": {"consultation": {"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network"}]}}});
        let plan = w.plan(&w.admin, &insurer, &format!("{code}P"), rules).await;
        let before = local_today(hours);
        let policy = w.policy(&w.admin, &plan, &before.to_string(), person("Lani", "Kai", "1980-01-01"), &[]).await;
        w.settle().await;
        let list =
            w.get(&format!("/api/billing/premiums?policy_id={}", policy["id"].as_str().unwrap()), &w.admin).await;
        let after = local_today(hours);
        let premium = &list["items"][0];
        // Numbered by the insurer's day, due 30 days after it (`billing.premium_due_s`).
        let days: Vec<(String, String)> = [before, after]
            .iter()
            .map(|d| {
                let compact = d.to_string().replace('-', "");
                (format!("PRM-{compact}-"), (*d + time::Duration::days(30)).to_string())
            })
            .collect();
        let number = premium["number"].as_str().unwrap_or_default();
        let due = premium["due_date"].as_str().unwrap_or_default();
        assert!(
            days.iter().any(|(prefix, due_on)| number.starts_with(prefix.as_str()) && due == due_on),
            "{code} ({zone}): {premium} against {days:?}"
        );
        w.activate(&w.admin, &policy).await;
        numbers.push((insurer, member_number(&policy), hours));
    }
    // A patient holding both numbers: each is checked on its insurer's day.
    let clinic = clinic_at(w, "DAT", "UTC", "KES").await;
    let members: Vec<Value> =
        numbers.iter().map(|(insurer, number, _)| json!({"insurer_id": insurer, "member_number": number})).collect();
    let before: Vec<time::Date> = numbers.iter().map(|(_, _, hours)| local_today(*hours)).collect();
    let body = json!({"hospital_id": clinic.hospital, "given_name": "Lani", "family_name": "Kai", "date_of_birth": "1980-01-01", "sex": "female", "member_numbers": members});
    let patient = crate::world::id(&clinic.create("/api/hospital/patients", &clinic.admin, body).await);
    clinic.settle().await;
    let answers = clinic.get(&format!("/api/hospital/patients/{patient}/coverage"), &clinic.admin).await;
    for (i, (_, number, hours)) in numbers.iter().enumerate() {
        let answer =
            answers["items"].as_array().unwrap().iter().find(|a| a["member_number"] == number.as_str()).cloned();
        let answer = answer.unwrap_or_else(|| panic!("an answer for {number}: {answers}"));
        assert_eq!(answer["status"], "covered", "{answer}");
        let on = answer["checked_on"].as_str().unwrap_or_default().to_owned();
        assert!([before[i].to_string(), local_today(*hours).to_string()].contains(&on), "{number}: {answer}");
    }
    clinic.w.stop().await;
}

async fn a_sold_policy_is_invoiced_paid_activated_and_commissioned(env: TestEnv) {
    let w = World::start(&env).await;
    let app = &w.app;
    let call = |method: Method, path: String, token: String, body: Option<Value>| {
        let w = &w;
        async move { w.call(method, &path, &token, body).await }
    };
    let insurer = w.insurer("SAL").await;
    let (agent, agent_id) = w.user_with_id("sal.agent", "agent", scope::insurer(&insurer)).await;
    let clerk = w.user("sal.billing", "billing_clerk", scope::insurer(&insurer)).await;
    let insurer_admin = w.user("sal.admin", "admin", scope::insurer(&insurer)).await;
    let rules = json!({"currency": "KES", "premium": {"kind": "per_member", "adult": 1_200_000, "child": 600_000, "child_until_age": 18},
        "max_members": 4, "categories": {"consultation": {"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network"}]}}});
    let plan = w.plan(&insurer_admin, &insurer, "SALE", rules).await;
    // Gold agents earn 12.5 % on this plan.
    let (status, _) = call(
        Method::PUT,
        format!("/api/billing/agents/{agent_id}"),
        insurer_admin.clone(),
        Some(json!({"insurer_id": insurer, "tier": "gold"})),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        Method::PUT,
        "/api/billing/commission-rates".into(),
        insurer_admin.clone(),
        Some(json!({"insurer_id": insurer, "plan_id": plan, "tier": "gold", "rate_bp": 1_250})),
    )
    .await;
    assert_eq!(status, 204);

    let sell = async |given: &str| {
        let today = time::OffsetDateTime::now_utc().date().to_string();
        w.policy(&agent, &plan, &today, person(given, "Buyer", "1980-01-01"), &[]).await
    };
    // Billing hears of the sale: once settled, the policy has its premium.
    // Found by the policy filter: the policy's one premium and nothing else.
    let premium_of = async |policy: &Value| {
        w.settle().await;
        let list = w.get(&format!("/api/billing/premiums?policy_id={}", policy["id"].as_str().unwrap()), &clerk).await;
        let premiums = list["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(premiums.len(), 1, "one premium for the policy: {list}");
        assert_eq!(list["paging"], json!({"limit": 50, "offset": 0, "next_offset": null}), "{list}");
        assert_eq!(premiums[0]["policy_id"], policy["id"], "{list}");
        premiums[0].clone()
    };
    let policy = sell("Paying").await;
    let premium = premium_of(&policy).await;
    assert_eq!((premium["amount"].as_i64(), premium["status"].as_str()), (Some(1_200_000), Some("issued")));
    assert_eq!(premium["agent_id"], agent_id.as_str());

    // Paid (once, whatever the retries): the policy activates and the agent earns 1 500.00.
    let url = app.url(
        medcov_config::ServiceName::Gateway,
        &format!("/api/billing/premiums/{}/payments", premium["id"].as_str().unwrap()),
    );
    let body = json!({"method": "mobile_money", "amount": 1_200_000, "external_reference": "MPESA-1"});
    for expected in [201, 201] {
        let response = app
            .client
            .post(&url)
            .bearer_auth(&clerk)
            .header("idempotency-key", "prem-1")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected);
    }
    let policy_path = format!("/api/insurance/policies/{}", policy["id"].as_str().unwrap());
    w.settle().await;
    let now = w.get(&policy_path, &insurer_admin).await;
    assert_eq!(now["status"], "active", "premium_paid reached insurance");
    // The policy-sale saga completed (with the activation), and says how.
    let sagas = w.get("/api/insurance/sagas?state=completed", &insurer_admin).await;
    let sale = sagas["items"].as_array().unwrap().iter().find(|s| s["subject_id"] == policy["id"]).cloned();
    let sale = sale.expect("the completed saga");
    let (_, sale) = call(
        Method::GET,
        format!("/api/insurance/sagas/{}", sale["id"].as_str().unwrap()),
        insurer_admin.clone(),
        None,
    )
    .await;
    let steps: Vec<&str> =
        sale["transitions"].as_array().unwrap().iter().map(|t| t["to_state"].as_str().unwrap()).collect();
    assert_eq!(steps, ["running", "completed"], "{sale}");
    let from = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let to = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let statement_path =
        format!("/api/billing/commissions?from={}&to={}", from.replace('+', "%2B"), to.replace('+', "%2B"));
    let (status, statement) = call(Method::GET, statement_path.clone(), agent.clone(), None).await;
    assert_eq!(status, 200, "{statement}");
    assert_eq!((statement["earned"].as_i64(), statement["clawed_back"].as_i64()), (Some(150_000), Some(0)));
    // Another agent's statement is refused, not answered with the agent's own.
    let (status, refused) =
        call(Method::GET, format!("{statement_path}&agent_id={}", uuid::Uuid::now_v7()), agent.clone(), None).await;
    assert_eq!(status, 403, "{refused}");

    // The agent is paid what they earned, once per key; then nothing more is owed.
    let payout =
        json!({"agent_id": agent_id, "insurer_id": insurer, "method": "bank_transfer", "external_reference": "EFT-C1"});
    let url = app.url(medcov_config::ServiceName::Gateway, "/api/billing/commissions/payouts");
    let mut payout_id = Value::Null;
    for (key, expected) in [("pay-1", 201), ("pay-1", 201), ("pay-2", 409)] {
        let response = app
            .client
            .post(&url)
            .bearer_auth(&clerk)
            .header("idempotency-key", key)
            .json(&payout)
            .send()
            .await
            .unwrap();
        let (status, _, body) = crate::support::read(response).await;
        assert_eq!(status, expected, "{key}: {body}");
        if status == 201 {
            assert_eq!((&body["amount"], &body["currency"]), (&json!(150_000), &json!("KES")), "{body}");
            payout_id = body["id"].clone();
        } else if status == 200 {
            assert_eq!(body["id"], payout_id);
        }
    }
    // Cancelled within the clawback period: the commission is taken back.
    let (status, _) = call(
        Method::POST,
        format!("{policy_path}/status"),
        insurer_admin.clone(),
        Some(json!({"status": "cancelled", "reason": "changed their mind"})),
    )
    .await;
    assert_eq!(status, 200);
    w.settle().await;
    let statement = w.get(&statement_path, &agent).await;
    assert_eq!(
        (statement["earned"].as_i64(), statement["clawed_back"].as_i64()),
        (Some(0), Some(150_000)),
        "{statement}"
    );

    // A policy cancelled before its premium is paid: the premium is voided.
    let unpaid = sell("Unpaid").await;
    let premium = premium_of(&unpaid).await;
    call(
        Method::POST,
        format!("/api/insurance/policies/{}/status", unpaid["id"].as_str().unwrap()),
        insurer_admin.clone(),
        Some(json!({"status": "cancelled", "reason": "no premium"})),
    )
    .await;
    w.settle().await;
    let voided = w.get(&format!("/api/billing/premiums/{}", premium["id"].as_str().unwrap()), &clerk).await;
    assert_eq!(voided["status"], "void");

    // A premium paid, then partly refunded (asked by one person, approved by another): the
    // premium is owed again for that part and the commission on it is clawed back.
    let refunded = sell("Refunded").await;
    let premium = premium_of(&refunded).await;
    let response = app
        .client
        .post(app.url(
            medcov_config::ServiceName::Gateway,
            &format!("/api/billing/premiums/{}/payments", premium["id"].as_str().unwrap()),
        ))
        .bearer_auth(&clerk)
        .header("idempotency-key", "prem-2")
        .json(&json!({"method": "mobile_money", "amount": 1_200_000}))
        .send()
        .await
        .unwrap();
    let (status, _, payment) = crate::support::read(response).await;
    assert_eq!(status, 201, "{payment}");
    w.settle().await;
    let statement = w.get(&statement_path, &agent).await;
    assert_eq!(statement["earned"], 150_000, "{statement}");
    let refunds = format!("/api/billing/premium-payments/{}/refunds", payment["id"].as_str().unwrap());
    let (status, problem) =
        call(Method::POST, refunds.clone(), clerk.clone(), Some(json!({"amount": 1_200_001, "reason": "too much"})))
            .await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some("amount")), "{problem}");
    let (status, refund) = call(
        Method::POST,
        refunds,
        clerk.clone(),
        Some(json!({"amount": 200_000, "reason": "paid twice by the employer"})),
    )
    .await;
    assert_eq!((status, refund["status"].as_str()), (201, Some("requested")), "{refund}");
    let decide = |who: String, verdict: &'static str| {
        call(
            Method::POST,
            format!("/api/billing/premium-refunds/{}/{verdict}", refund["id"].as_str().unwrap()),
            who,
            Some(json!({})),
        )
    };
    assert_eq!(decide(clerk.clone(), "approve").await.0, 409, "not by who asked");
    assert_eq!(decide(agent.clone(), "approve").await.0, 403, "agents do not move money");
    let (status, done) = decide(insurer_admin.clone(), "approve").await;
    assert_eq!(
        (status, done["status"].as_str(), done["from_applied"].as_i64()),
        (200, Some("completed"), Some(200_000)),
        "{done}"
    );
    assert_eq!(decide(insurer_admin.clone(), "reject").await.0, 409, "decided once");
    let (_, now) =
        call(Method::GET, format!("/api/billing/premiums/{}", premium["id"].as_str().unwrap()), clerk.clone(), None)
            .await;
    assert_eq!((now["paid"].as_i64(), now["status"].as_str()), (Some(1_000_000), Some("partially_paid")), "{now}");
    let (_, statement) = call(Method::GET, statement_path.clone(), agent.clone(), None).await;
    assert_eq!(
        (statement["earned"].as_i64(), statement["clawed_back"].as_i64()),
        (Some(0), Some(300_000)),
        "{statement}"
    );

    // The insurer's books agree with its premiums, payments, refunds and commissions.
    let (_, report) = call(Method::GET, "/api/billing/ledger/reconciliation".into(), insurer_admin.clone(), None).await;
    let report = report["items"].as_array().cloned().unwrap();
    assert!(report.iter().all(|a| a["agrees"] == true), "{report:?}");
    assert_eq!(balance(&report, "premium_income"), -2_400_000);
    assert_eq!(balance(&report, "mobile_money"), 2_200_000);
    assert_eq!(balance(&report, "premium_receivable"), 200_000, "owed again");
    // Paid out, then clawed back: the agent owes it back (a debit on commissions payable); the
    // second commission was earned and clawed back before any payout.
    assert_eq!(balance(&report, "commission_payable"), 150_000);
    assert_eq!(balance(&report, "bank"), -150_000);
    w.stop().await;
}

/// A policy sold and never paid: at the deadline the saga cancels it (even when MedCov was
/// restarted in between) and billing voids its premium.
async fn an_unpaid_policy_is_cancelled_at_its_deadline_across_a_restart(mut env: TestEnv) {
    env.config.billing.premium_due_s = 3;
    let mut w = World::start(&env).await;
    let insurer = w.insurer("DLN").await;
    let rules = json!({"currency": "KES", "premium": {"kind": "per_member", "adult": 500_000, "child": 0, "child_until_age": 18},
        "max_members": 1, "categories": {"consultation": {"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network"}]}}});
    let plan = w.plan(&w.admin, &insurer, "DL", rules).await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let policy = w.policy(&w.admin, &plan, &today, person("Late", "Payer", "1980-01-01"), &[]).await;
    // MedCov stops before the deadline and starts again: the timer is in the database.
    w.restart(env.config.clone(), "all").await;
    let policy_path = format!("/api/insurance/policies/{}", policy["id"].as_str().unwrap());
    // The deadline is a timer, not an event: wait for its effect.
    let sagas = "/api/insurance/sagas?state=compensated";
    let sale = eventually("the deadline to cancel the policy and compensate its saga", PATIENCE, async || {
        let list = w.get(sagas, &w.admin).await;
        list["items"].as_array().unwrap().iter().find(|s| s["subject_id"] == policy["id"]).cloned()
    })
    .await;
    let now = w.get(&policy_path, &w.admin).await;
    assert_eq!(now["status"], "cancelled", "{now}");
    let sale = w.get(&format!("/api/insurance/sagas/{}", sale["id"].as_str().unwrap()), &w.admin).await;
    let steps: Vec<&str> =
        sale["transitions"].as_array().unwrap().iter().map(|t| t["to_state"].as_str().unwrap()).collect();
    assert_eq!(steps, ["running", "compensating", "compensated"], "{sale}");
    // Billing heard of the cancellation: the premium is void.
    w.settle().await;
    let list = w.get("/api/billing/premiums", &w.admin).await;
    let premium = list["items"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["policy_id"] == policy["id"]).cloned())
        .unwrap_or(Value::Null);
    assert_eq!(premium["status"], "void", "{premium}");
    // The ticker publishes the counts after each tick.
    let compensated = eventually("the sagas gauge to count the compensated saga", PATIENCE, async || {
        let metrics = w.app.text(medcov_config::ServiceName::Insurance, "/metrics").await;
        let compensated = crate::support::sample(&metrics, "sagas", &["state=\"compensated\""]).unwrap_or(0.0);
        (compensated >= 1.0).then_some(compensated)
    })
    .await;
    assert!(compensated >= 1.0, "the sagas gauge counts the compensated one");
    w.stop().await;
}

medcov_testkit::backend_suite!(
    a_refused_claim_puts_the_whole_invoice_on_the_patient,
    an_insured_encounter_finishes_once_across_a_restart,
    an_unpaid_policy_is_cancelled_at_its_deadline_across_a_restart,
    an_encounter_is_invoiced_once_and_paid_without_double_charges,
    an_insured_encounter_is_claimed_split_issued_and_settled,
    a_sold_policy_is_invoiced_paid_activated_and_commissioned,
    care_is_dated_priced_and_counted_on_the_hospitals_local_day,
    two_currencies_never_mix,
    text_is_safe_in_spreadsheets_and_on_screens,
    an_encounter_service_carries_its_preauthorisation_into_the_claim,
    an_override_past_the_ceiling_is_ex_gratia_on_its_own_account,
    an_insurers_dates_are_its_local_days,
);

// The whole system on a Redis Cluster: bus, cache, idempotency keys, rate limits, registry.
medcov_testkit::redis_cluster_suite!(an_insured_encounter_is_claimed_split_issued_and_settled);
