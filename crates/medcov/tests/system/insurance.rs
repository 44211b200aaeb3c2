//! The insurance service through the gateway, on both backends: plans, policies, eligibility,
//! pre-authorisation, claims adjudicated to the cent, reversal, tenant scope, and concurrent
//! claims against one ceiling.

use medcov_config::ServiceName;
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{App, PATIENCE, eventually};
use crate::world::{self, World, child, member_number, person, scope};

/// Policies start 200 days ago, so their year covers today whenever the tests run.
fn start() -> String {
    (time::OffsetDateTime::now_utc().date() - time::Duration::days(200)).to_string()
}

/// Care was given a week ago.
fn service_day() -> String {
    (time::OffsetDateTime::now_utc().date() - time::Duration::days(7)).to_string()
}

fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

/// A world with an insurer in it and a hospital in its network, with their staff.
struct Insurer {
    w: World,
    insurer: String,
    hospital: String,
    insurer_admin: String,
    officer: String,
    agent: String,
    /// A billing clerk of the hospital.
    biller: String,
}

impl std::ops::Deref for Insurer {
    type Target = World;
    fn deref(&self) -> &World {
        &self.w
    }
}

impl std::ops::DerefMut for Insurer {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.w
    }
}

impl Insurer {
    /// `method /api/insurance<path>` through the gateway as `token`.
    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        self.w.call(method, &format!("/api/insurance{path}"), token, body).await
    }
}

/// An insurer (AAR, KES) with an administrator, a claims officer and an agent, and a hospital
/// in its network with a billing clerk.
async fn insurer(env: &TestEnv) -> Insurer {
    insurer_with(env, env.config.clone()).await
}

/// [`insurer`], with MedCov started with `config`.
async fn insurer_with(env: &TestEnv, config: medcov_config::Config) -> Insurer {
    let w = World::start_with(env, config, "all").await;
    let hospital = w.hospital("NRB", "Africa/Nairobi").await;
    let insurer = w.insurer("AAR").await;
    let staff = scope::insurer(&insurer);
    Insurer {
        insurer_admin: w.user("aar.admin", "admin", staff.clone()).await,
        officer: w.user("aar.claims", "claims_officer", staff.clone()).await,
        agent: w.user("aar.agent", "agent", staff).await,
        biller: w.user("nrb.billing", "billing_clerk", scope::hospital(&hospital)).await,
        w,
        insurer,
        hospital,
    }
}

/// The rules of the domain's golden table, with the fixture's hospital in network.
fn rules(hospital: &str) -> Value {
    json!({
        "currency": "KES",
        "premium": {"kind": "per_member", "adult": 1_200_000, "child": 600_000, "child_until_age": 18},
        "max_members": 3,
        "deductible_member": 100_000,
        "deductible_family": 200_000,
        "ceilings": {"member_outpatient": 5_000_000, "policy_outpatient": 8_000_000, "member_inpatient": 20_000_000},
        "categories": {
            "consultation": {"setting": "outpatient", "limit_count": 3, "cost_shares": [
                {"visit_type": "normal", "network": "in_network", "copay": 50_000}]},
            "laboratory": {"setting": "outpatient", "limit_amount": 1_000_000, "cost_shares": [
                {"visit_type": "normal", "network": "in_network", "coinsurance_bp": 2_000}]},
            "procedure": {"setting": "inpatient", "preauth_required": true, "cost_shares": [
                {"visit_type": "normal", "network": "in_network", "copay": 200_000, "coinsurance_bp": 1_000}]}
        },
        "excluded_services": ["COSM-01"],
        "network": [hospital],
        "preauth_auto_approve_up_to": 5_000_000
    })
}

impl Insurer {
    async fn gold(&self, rules: Value) -> String {
        self.w.plan(&self.insurer_admin, &self.insurer, "GOLD", rules).await
    }

    /// A pending policy of a year from [`start`] with a holder and a child; returns (policy, holder's number).
    async fn family(&self, plan: &str) -> (Value, String) {
        let holder = person("Amina", "Otieno", "1988-04-12");
        let policy =
            self.w.policy(&self.agent, plan, &start(), holder, &[child("Baraka", "Otieno", "2015-09-30")]).await;
        let number = member_number(&policy);
        (policy, number)
    }

    async fn claim(&self, reference: &str, number: &str, lines: Value) -> (u16, Value) {
        self.call(
            Method::POST,
            "/claims",
            &self.biller,
            Some(json!({
                "hospital_id": self.hospital, "reference": reference, "member_number": number,
                "visit_type": "normal", "currency": "KES", "lines": lines
            })),
        )
        .await
    }

    async fn eligibility(&self, number: &str, services: Value) -> Value {
        self.eligibility_as(&self.biller, number, services).await.0
    }

    /// The answer to `token`'s question, and where it came from (`X-Cache`).
    async fn eligibility_as(&self, token: &str, number: &str, services: Value) -> (Value, String) {
        let body =
            json!({"member_number": number, "date": service_day(), "hospital_id": self.hospital, "services": services});
        let (status, headers, answer) =
            self.app.call(Method::POST, "/api/insurance/eligibility", Some(token), Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        // Fresh for a minute at most (less just before the insurer's midnight), and the gateway
        // may stand in with it for a day while insurance cannot answer.
        let control = headers["cache-control"].to_str().expect("ascii");
        let max_age: u64 = control
            .strip_prefix("private, max-age=")
            .and_then(|rest| rest.strip_suffix(", stale-if-error=86400"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("cache-control: {control}"));
        assert!((1..=60).contains(&max_age), "cache-control: {control}");
        assert!(headers.get("cache-tag").is_none(), "the tags stay inside");
        let source = headers.get("x-cache").map(|v| v.to_str().expect("ascii").to_owned()).unwrap_or_default();
        (answer, source)
    }
}

fn line(code: &str, category: &str, price: i64) -> Value {
    json!({"service_code": code, "category": category, "quantity": 1, "unit_price": price, "diagnosis": "J06.9", "date_of_service": service_day()})
}

/// (insurer pays, patient pays, rejection) of each line.
fn splits(claim: &Value) -> Vec<(i64, i64, Value)> {
    claim["result"]
        .as_array()
        .expect("an adjudicated claim")
        .iter()
        .map(|l| (l["insurer_pays"].as_i64().unwrap(), l["patient_pays"].as_i64().unwrap(), l["rejection"].clone()))
        .collect()
}

async fn a_claim_is_adjudicated_to_the_cent_and_reversed(env: TestEnv) {
    let f = insurer(&env).await;
    let plan = f.gold(rules(&f.hospital)).await;
    let (policy, number) = f.family(&plan).await;
    // 12 000.00 for the adult, 6 000.00 for the child.
    assert_eq!(policy["premium"], 1_800_000);
    assert_eq!(policy["status"], "pending");
    let policy_id = policy["id"].as_str().unwrap().to_owned();

    // Pending: nothing is covered yet.
    let (status, claim) = f.claim("NRB-0", &number, json!([line("CONS", "consultation", 300_000)])).await;
    assert_eq!(status, 201, "{claim}");
    assert_eq!(claim["outcome"], "rejected");
    assert_eq!(splits(&claim), vec![(0, 300_000, json!("no_active_policy"))]);

    let (status, active) = f
        .call(
            Method::POST,
            &format!("/policies/{policy_id}/status"),
            &f.insurer_admin,
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["status"], "active");

    // Eligibility estimates each service alone: the deductible, then the co-payment or 20 %.
    let answer = f
        .eligibility(
            &number,
            json!([
                {"service_code": "CONS", "category": "consultation", "price": 300_000},
                {"service_code": "LAB", "category": "laboratory", "price": 250_000},
                {"service_code": "COSM-01", "category": "consultation"},
                {"service_code": "PROC", "category": "procedure", "price": 1_000}
            ]),
        )
        .await;
    assert_eq!(answer["covered"], true);
    assert_eq!(answer["deductible_left_member"], 100_000);
    assert_eq!(
        answer["services"][0]["estimate"],
        json!({"price": 300_000, "insurer_pays": 150_000, "patient_pays": 150_000,
            "adjustments": [{"code": "deductible", "amount": 100_000}, {"code": "co_pay", "amount": 50_000}]})
    );
    assert_eq!(answer["services"][0]["count_left"], 3);
    assert_eq!(
        answer["services"][1]["estimate"],
        json!({"price": 250_000, "insurer_pays": 120_000, "patient_pays": 130_000,
            "adjustments": [{"code": "deductible", "amount": 100_000}, {"code": "co_insurance", "amount": 30_000}]})
    );
    assert_eq!(answer["services"][2]["covered"], false);
    assert_eq!(answer["services"][2]["reason"], "excluded_service");
    assert_eq!(answer["services"][3]["preauth_required"], true);

    // The claim: the consultation takes the deductible and the co-payment; the test 20 %.
    let lines = json!([line("CONS", "consultation", 300_000), line("LAB", "laboratory", 250_000)]);
    let (status, claim) = f.claim("NRB-1", &number, lines.clone()).await;
    assert_eq!(status, 201, "{claim}");
    assert_eq!(claim["outcome"], "approved");
    assert_eq!(splits(&claim), vec![(150_000, 150_000, Value::Null), (200_000, 50_000, Value::Null)]);
    assert_eq!((claim["insurer_total"].as_i64(), claim["patient_total"].as_i64()), (Some(350_000), Some(200_000)));
    assert!(claim["result"][0]["explanation"].as_array().is_some_and(|e| !e.is_empty()));
    let claim_id = claim["id"].as_str().unwrap().to_owned();

    // Idempotent on the reference: the same claim again is the first one; another is refused.
    let (status, again) = f.claim("NRB-1", &number, lines.clone()).await;
    assert_eq!((status, again["id"].as_str()), (200, Some(claim_id.as_str())));
    let (status, other) = f.claim("NRB-1", &number, json!([line("CONS", "consultation", 1)])).await;
    assert_eq!(status, 422, "{other}");
    assert_eq!(other["errors"][0]["field"], "reference");

    // The answer after the claim is not a stale cached one.
    let answer =
        f.eligibility(&number, json!([{"service_code": "LAB", "category": "laboratory", "price": 250_000}])).await;
    assert_eq!(answer["deductible_left_member"], 0);
    assert_eq!(answer["member_ceiling_left"]["outpatient"], 5_000_000 - 350_000);
    assert_eq!(answer["services"][0]["estimate"]["insurer_pays"], 200_000);

    // A second visit the same day for the same test is a duplicate line.
    let (_, duplicate) = f.claim("NRB-2", &number, json!([line("LAB", "laboratory", 250_000)])).await;
    assert_eq!(splits(&duplicate), vec![(0, 0, json!("duplicate_line"))]);

    // Reversal gives back the deductible and the ceiling; adjudicating again gives the same cents.
    let path = format!("/claims/{claim_id}");
    let (status, reversed) =
        f.call(Method::POST, &format!("{path}/reverse"), &f.officer, Some(json!({"reason": "wrong member"}))).await;
    assert_eq!(status, 200, "{reversed}");
    assert_eq!(reversed["status"], "submitted");
    let answer = f.eligibility(&number, json!([])).await;
    assert_eq!(answer["deductible_left_member"], 100_000);
    assert_eq!(answer["member_ceiling_left"]["outpatient"], 5_000_000);
    let (status, again) = f.call(Method::POST, &format!("{path}/adjudicate"), &f.officer, Some(json!({}))).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(splits(&again), splits(&claim));
    assert_eq!(again["adjudication_no"], 2);

    // Review, then an audited override of the test line.
    let (status, _) =
        f.call(Method::POST, &format!("{path}/review"), &f.officer, Some(json!({"reason": "check the test"}))).await;
    assert_eq!(status, 200);
    let (status, overridden) = f
        .call(
            Method::POST,
            &format!("{path}/adjudicate"),
            &f.officer,
            Some(json!({"overrides": [{"line": 2, "insurer_pays": 250_000, "reason": "agreed by phone"}]})),
        )
        .await;
    assert_eq!(status, 200, "{overridden}");
    assert_eq!(splits(&overridden)[1], (250_000, 0, Value::Null));
    assert_eq!(overridden["result"][1]["adjustment"], 50_000);
    let (status, bad) = f
        .call(
            Method::POST,
            &format!("{path}/adjudicate"),
            &f.officer,
            Some(json!({"overrides": [{"line": 9, "insurer_pays": 1, "reason": "x"}]})),
        )
        .await;
    assert_eq!(status, 409, "only a claim in review or submitted: {bad}");

    // Paid by the insurer; then it can no longer be reversed.
    let (status, paid) = f
        .call(Method::POST, &format!("{path}/paid"), &f.insurer_admin, Some(json!({"payment_reference": "EFT-1"})))
        .await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("paid")));
    let (status, _) =
        f.call(Method::POST, &format!("{path}/reverse"), &f.officer, Some(json!({"reason": "late"}))).await;
    assert_eq!(status, 409);
    let (_, history) = f.call(Method::GET, &format!("{path}/history"), &f.officer, None).await;
    let actions: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["submitted", "adjudicated", "reversed", "adjudicated", "sent_to_review", "adjudicated_with_overrides", "paid"]
    );

    // Another insurer's staff and another hospital's staff do not see it.
    let other = f.insurer("JUB").await;
    let stranger = f.user("jub.claims", "claims_officer", scope::insurer(&other)).await;
    let (status, _) = f.call(Method::GET, &path, &stranger, None).await;
    assert_eq!(status, 404);
    let (_, listed) = f.call(Method::GET, "/claims", &stranger, None).await;
    assert_eq!(listed["items"], json!([]));
    let (status, _) = f.call(Method::GET, &format!("/policies/{policy_id}"), &stranger, None).await;
    assert_eq!(status, 404);
    let other_clerk = f.user("far.billing", "billing_clerk", scope::hospital(uuid::Uuid::now_v7())).await;
    let (status, _) = f.call(Method::GET, &path, &other_clerk, None).await;
    assert_eq!(status, 404);
    let (status, _) = f
        .call(
            Method::POST,
            "/eligibility",
            &other_clerk,
            Some(json!({"member_number": number, "hospital_id": f.hospital})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, mine) = f.call(Method::GET, "/claims", &f.biller, None).await;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(mine["paging"], json!({"limit": 50, "offset": 0, "next_offset": null}), "{mine}");
    let (_, first) = f.call(Method::GET, "/claims?limit=2", &f.biller, None).await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2), "{first}");
    assert_eq!(first["paging"], json!({"limit": 2, "offset": 0, "next_offset": 2}), "{first}");
    let (_, last) = f.call(Method::GET, "/claims?limit=2&offset=2", &f.biller, None).await;
    assert_eq!(
        (last["items"][0]["id"].as_str(), &last["paging"]["next_offset"]),
        (mine["items"][2]["id"].as_str(), &Value::Null),
        "{last}"
    );

    // Every change went to the outbox with it.
    let database = medcov_store::Database::connect(
        ServiceName::Insurance,
        env.config.database_url(ServiceName::Insurance),
        &medcov_store::PoolOptions::from_config(&env.config),
    )
    .await
    .expect("insurance database");
    let events = medcov_store::outbox::all(&database).await.expect("outbox");
    let count = |t: &str| events.iter().filter(|e| e.event_type == t).count();
    assert_eq!(count("insurance.policy_created.v1"), 1);
    assert_eq!(count("insurance.policy_activated.v1"), 1);
    assert_eq!(count("insurance.claim_adjudicated.v1"), 5);
    assert_eq!(count("insurance.claim_reversed.v1"), 2);
    assert_eq!(count("insurance.claim_paid.v1"), 1);
    let created = events.iter().find(|e| e.event_type == "insurance.policy_created.v1").unwrap();
    assert_eq!(created.payload["premium"], json!({"minor": 1_800_000, "currency": "KES"}));
    database.close().await;
    f.w.stop().await;
}

async fn preauthorisations_reserve_and_are_used_by_claims(env: TestEnv) {
    let f = insurer(&env).await;
    let plan = f.gold(rules(&f.hospital)).await;
    let (policy, number) = f.family(&plan).await;
    f.activate(&f.insurer_admin, &policy).await;
    let clerk = f.user("nrb.desk", "hospital_clerk", scope::hospital(&f.hospital)).await;
    let request = |amount: i64| {
        json!({"member_number": number, "hospital_id": f.hospital, "visit_type": "normal", "planned_date": today(),
               "services": [{"service_code": "PROC", "category": "procedure", "quantity": 1, "estimated_amount": amount}]})
    };
    // Within the plan's automatic threshold: approved at once.
    let (status, small) = f.call(Method::POST, "/preauthorisations", &clerk, Some(request(3_000_000))).await;
    assert_eq!(status, 201, "{small}");
    assert_eq!(small["status"], "approved");
    // Above it: a claims officer approves part of it, with a reason.
    let (_, large) = f.call(Method::POST, "/preauthorisations", &clerk, Some(request(6_000_000))).await;
    assert_eq!(large["status"], "pending");
    let large_path = format!("/preauthorisations/{}/decision", large["id"].as_str().unwrap());
    let (status, refused) = f
        .call(
            Method::POST,
            &large_path,
            &f.officer,
            Some(json!({"decision": "approve", "approved_amounts": [4_000_000]})),
        )
        .await;
    assert_eq!(status, 422, "a partial approval needs a reason: {refused}");
    let (status, decided) = f
        .call(
            Method::POST,
            &large_path,
            &f.officer,
            Some(json!({"decision": "approve", "approved_amounts": [4_000_000], "reason": "tariff"})),
        )
        .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["status"], "partially_approved");
    assert_eq!(decided["approved_amount"], 4_000_000);

    // Both approvals hold 70 000.00 of the 200 000.00 in-patient ceiling.
    let answer = f.eligibility(&number, json!([])).await;
    assert_eq!(answer["member_ceiling_left"]["inpatient"], 20_000_000 - 7_000_000);

    // A procedure without an approval is refused; with one it is paid up to the approved amount.
    let procedure = |preauth: Option<&Value>| {
        let mut l = line("PROC", "procedure", 3_000_000);
        if let Some(p) = preauth {
            l["preauth_id"] = p["id"].clone();
        }
        json!([l])
    };
    let (_, refused) = f.claim("NRB-P0", &number, procedure(None)).await;
    assert_eq!(splits(&refused), vec![(0, 3_000_000, json!("preauth_missing"))]);
    let (_, claim) = f.claim("NRB-P1", &number, procedure(Some(&small))).await;
    // Deductible 1 000.00, co-payment 2 000.00, 10 % of 27 000.00 = 2 700.00.
    assert_eq!(splits(&claim), vec![(2_430_000, 570_000, Value::Null)]);
    // The used approval no longer reserves; the claim's own payment counts instead.
    let answer = f.eligibility(&number, json!([])).await;
    assert_eq!(answer["member_ceiling_left"]["inpatient"], 20_000_000 - 4_000_000 - 2_430_000);
    f.w.stop().await;
}

/// An override is bounded by what is left of the ceiling: past it, it is refused naming the
/// field, unless it is explicitly ex gratia, which is recorded on its own and never counted as
/// covered benefit. Amounts by hand: out-patient ceiling 8 000.00 per member, deductible
/// 1 000.00, tests 20 %.
async fn an_override_stops_at_the_ceiling_unless_ex_gratia(env: TestEnv) {
    let f = insurer(&env).await;
    let mut rules = rules(&f.hospital);
    rules["ceilings"]["member_outpatient"] = json!(800_000);
    let plan = f.gold(rules).await;
    let (policy, number) = f.family(&plan).await;
    f.activate(&f.insurer_admin, &policy).await;
    // Claim A, a 6 000.00 test: deductible 1 000.00, 20 % of 5 000.00 = 1 000.00; the insurer
    // pays 4 000.00, leaving 4 000.00 of the ceiling.
    let (status, a) = f.claim("NRB-C1", &number, json!([line("LAB-A", "laboratory", 600_000)])).await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(splits(&a), vec![(400_000, 200_000, Value::Null)]);
    assert_eq!(
        a["result"][0]["adjustments"],
        json!([{"code": "deductible", "amount": 100_000}, {"code": "co_insurance", "amount": 100_000}])
    );
    // Asked again without claim A (to compare with its adjudication), the member had all of it.
    let body = json!({"member_number": number, "date": service_day(), "hospital_id": f.hospital, "services": [], "excluding_claim": a["id"]});
    let (status, before) = f.call(Method::POST, "/eligibility", &f.biller, Some(body)).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(
        (before["deductible_left_member"].as_i64(), before["member_ceiling_left"]["outpatient"].as_i64()),
        (Some(100_000), Some(800_000))
    );
    let now = f.eligibility(&number, json!([])).await;
    assert_eq!(
        (now["deductible_left_member"].as_i64(), now["member_ceiling_left"]["outpatient"].as_i64()),
        (Some(0), Some(400_000))
    );
    // Claim B, another 6 000.00 test: 20 % = 1 200.00, then 4 800.00 capped at the 4 000.00
    // left: 800.00 cut by the ceiling.
    let (_, b) = f.claim("NRB-C2", &number, json!([line("LAB-B", "laboratory", 600_000)])).await;
    assert_eq!(splits(&b), vec![(400_000, 200_000, Value::Null)]);
    assert_eq!(
        b["result"][0]["adjustments"],
        json!([{"code": "co_insurance", "amount": 120_000}, {"code": "ceiling", "amount": 80_000}])
    );
    let path = format!("/claims/{}", b["id"].as_str().unwrap());
    let (status, _) =
        f.call(Method::POST, &format!("{path}/review"), &f.officer, Some(json!({"reason": "appeal"}))).await;
    assert_eq!(status, 200);
    // Waiving the co-insurance would pay 800.00 past the ceiling: refused, naming the field.
    let waive = |ex_gratia: bool| json!({"overrides": [{"line": 1, "insurer_pays": 480_000, "reason": "appeal upheld", "ex_gratia": ex_gratia}]});
    let (status, refused) = f.call(Method::POST, &format!("{path}/adjudicate"), &f.officer, Some(waive(false))).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "overrides[0].insurer_pays", "{refused}");
    assert!(refused["errors"][0]["reason"].as_str().unwrap().contains("ex_gratia"), "{refused}");
    // As an ex-gratia payment: nothing was left of the ceiling, so all 800.00 more is ex gratia.
    let (status, ex_gratia) = f.call(Method::POST, &format!("{path}/adjudicate"), &f.officer, Some(waive(true))).await;
    assert_eq!(status, 200, "{ex_gratia}");
    let l = &ex_gratia["result"][0];
    assert_eq!(
        (l["insurer_pays"].as_i64(), l["patient_pays"].as_i64(), l["ex_gratia"].as_i64()),
        (Some(480_000), Some(120_000), Some(80_000)),
        "{l}"
    );
    assert_eq!(
        l["adjustments"],
        json!([{"code": "co_insurance", "amount": 120_000}, {"code": "ceiling", "amount": 80_000}, {"code": "ex_gratia", "amount": -80_000}]),
        "{l}"
    );
    // The ceiling is used to the cent and never past it: ex gratia is no covered benefit.
    let now = f.eligibility(&number, json!([])).await;
    assert_eq!(now["member_ceiling_left"]["outpatient"], 0);
    assert_eq!(now["policy_ceiling_left"]["outpatient"], 8_000_000 - 800_000);
    f.w.stop().await;
}

/// Anything that changes what a policy has left clears every member's cached answers: a
/// child's repeated question right after the holder's pre-authorisation sees the reservation.
async fn a_family_members_answer_is_fresh_after_anothers_preauthorisation(env: TestEnv) {
    let f = insurer(&env).await;
    let mut rules = rules(&f.hospital);
    rules["ceilings"]["policy_inpatient"] = json!(25_000_000);
    let plan = f.gold(rules).await;
    let (policy, holder) = f.family(&plan).await;
    f.activate(&f.insurer_admin, &policy).await;
    let child = policy["members"][1]["member_number"].as_str().unwrap().to_owned();
    let first = f.eligibility(&child, json!([])).await;
    assert_eq!(first["policy_ceiling_left"]["inpatient"], 25_000_000);
    let clerk = f.user("nrb.desk", "hospital_clerk", scope::hospital(&f.hospital)).await;
    let request = json!({"member_number": holder, "hospital_id": f.hospital, "visit_type": "normal", "planned_date": today(),
        "services": [{"service_code": "PROC", "category": "procedure", "quantity": 1, "estimated_amount": 3_000_000}]});
    let (status, approved) = f.call(Method::POST, "/preauthorisations", &clerk, Some(request)).await;
    assert_eq!((status, approved["status"].as_str()), (201, Some("approved")), "{approved}");
    // The same question again, at once: the holder's 30 000.00 is reserved on the policy.
    let again = f.eligibility(&child, json!([])).await;
    assert_eq!(again["policy_ceiling_left"]["inpatient"], 25_000_000 - 3_000_000, "{again}");
    f.w.stop().await;
}

/// The same question by the same audience is answered from the gateway's cache until a claim
/// changes what the member has left; another question, or another audience, is not.
async fn the_same_question_is_answered_from_the_gateway_until_a_claim_changes_it(env: TestEnv) {
    let f = insurer(&env).await;
    let plan = f.gold(rules(&f.hospital)).await;
    let (policy, number) = f.family(&plan).await;
    f.activate(&f.insurer_admin, &policy).await;
    let lab = json!([{"service_code": "LAB", "category": "laboratory", "price": 250_000}]);
    // The first answer teaches the gateway the question's tags, the second is stored, the
    // third comes from the cache, as it was.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(f.eligibility_as(&f.biller, &number, lab.clone()).await);
    }
    let sources: Vec<&str> = seen.iter().map(|(_, source)| source.as_str()).collect();
    assert_eq!(sources, ["MISS", "MISS", "HIT"]);
    assert_eq!(seen[2].0, seen[1].0);
    assert_eq!(seen[2].0["deductible_left_member"], 100_000, "{}", seen[2].0);
    // Another question, or another audience (the claims officer), is not answered from it.
    let other = json!([{"service_code": "LAB", "category": "laboratory", "price": 250_001}]);
    assert_eq!(f.eligibility_as(&f.biller, &number, other).await.1, "MISS");
    assert_eq!(f.eligibility_as(&f.officer, &number, lab.clone()).await.1, "MISS");
    // A claim takes the deductible: the very next question sees it.
    let (status, claim) = f.claim("NRB-1", &number, json!([line("LAB", "laboratory", 250_000)])).await;
    assert_eq!(status, 201, "{claim}");
    let (after, source) = f.eligibility_as(&f.biller, &number, lab.clone()).await;
    assert_eq!((after["deductible_left_member"].as_i64(), source.as_str()), (Some(0), "MISS"), "{after}");
    // And is cached again from then on.
    let (again, source) = f.eligibility_as(&f.biller, &number, lab.clone()).await;
    assert_eq!((again, source.as_str()), (after, "HIT"));
    f.w.stop().await;
}

/// Questions about a member that differ only in the services or prices they ask about are
/// answered from the member's standing, loaded once: no further load, each answer computed for
/// its own services to the cent; a claim adjudicated in between is seen by the next question.
async fn questions_differing_only_in_services_are_answered_without_a_load(env: TestEnv) {
    let f = insurer(&env).await;
    let plan = f.gold(rules(&f.hospital)).await;
    let (policy, number) = f.family(&plan).await;
    f.activate(&f.insurer_admin, &policy).await;
    let loads = async || {
        let metrics = f.app.metrics(ServiceName::Insurance).await;
        crate::support::sample(&metrics, "cache_requests_total", &["result=\"miss\""]).unwrap_or(0.0)
    };
    let lab = |price: i64| json!([{"service_code": "LAB", "category": "laboratory", "price": price}]);
    let split = |answer: &Value| {
        let estimate = &answer["services"][0]["estimate"];
        (estimate["insurer_pays"].as_i64(), estimate["patient_pays"].as_i64())
    };
    // The first question loads the member's standing.
    let first = f.eligibility(&number, lab(250_000)).await;
    assert_eq!(split(&first), (Some(120_000), Some(130_000)), "{first}");
    let loaded = loads().await;
    // The deductible (1 000.00) first, then 20 % of the rest.
    for (price, insurer, patient) in
        [(300_000, 160_000, 140_000), (600_000, 400_000, 200_000), (150_000, 40_000, 110_000)]
    {
        let answer = f.eligibility(&number, lab(price)).await;
        assert_eq!(split(&answer), (Some(insurer), Some(patient)), "{price}: {answer}");
    }
    let answer =
        f.eligibility(&number, json!([{"service_code": "CONS", "category": "consultation", "price": 300_000}])).await;
    assert_eq!(split(&answer), (Some(150_000), Some(150_000)), "{answer}");
    assert_eq!(loads().await, loaded, "questions about the same member and day loaded nothing more");

    // A claim takes the deductible: the next question, whatever it asks, sees it.
    let (status, claim) = f.claim("NRB-1", &number, json!([line("LAB", "laboratory", 250_000)])).await;
    assert_eq!(status, 201, "{claim}");
    let answer = f.eligibility(&number, lab(100_000)).await;
    assert_eq!(answer["deductible_left_member"], 0, "{answer}");
    assert_eq!(split(&answer), (Some(80_000), Some(20_000)), "{answer}");
    f.w.stop().await;
}

async fn concurrent_claims_never_overshoot_a_ceiling(env: TestEnv) {
    let f = insurer(&env).await;
    // No deductible, no co-insurance, and a 5 000.00 out-patient ceiling per member.
    let mut tight = rules(&f.hospital);
    tight["deductible_member"] = json!(0);
    tight["deductible_family"] = json!(0);
    tight["ceilings"] = json!({"member_outpatient": 500_000});
    tight["categories"]["laboratory"] =
        json!({"setting": "outpatient", "cost_shares": [{"visit_type": "normal", "network": "in_network"}]});
    let plan = f.gold(tight).await;
    let (policy, number) = f.family(&plan).await;
    f.activate(&f.insurer_admin, &policy).await;
    // Eight claims of 1 000.00 at once: exactly five fit.
    let f = std::sync::Arc::new(f);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let f = f.clone();
        let number = number.clone();
        tasks.push(tokio::spawn(async move {
            let (status, claim) =
                f.claim(&format!("NRB-C{i}"), &number, json!([line(&format!("LAB-{i}"), "laboratory", 100_000)])).await;
            assert_eq!(status, 201, "{claim}");
            claim["insurer_total"].as_i64().expect("total")
        }));
    }
    let mut paid = Vec::new();
    for task in tasks {
        paid.push(task.await.expect("claim task"));
    }
    assert_eq!(paid.iter().sum::<i64>(), 500_000, "{paid:?}");
    assert_eq!(paid.iter().filter(|p| **p == 100_000).count(), 5, "{paid:?}");
    let answer = f.eligibility(&number, json!([])).await;
    assert_eq!(answer["member_ceiling_left"]["outpatient"], 0);
}

async fn inconsistent_input_is_refused_with_the_field(env: TestEnv) {
    let f = insurer(&env).await;
    let mut bad = rules(&f.hospital);
    bad["categories"]["laboratory"]["cost_shares"][0]["coinsurance_bp"] = json!(12_000);
    bad["deductible_member"] = json!(-5);
    let (status, problem) = f
        .call(Method::POST, "/plans", &f.insurer_admin, Some(json!({"insurer_id": f.insurer, "code": "BAD", "name": "Bad", "effective_from": "2020-01-01", "rules": bad})))
        .await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"rules.categories.laboratory.cost_shares[0].coinsurance_bp"), "{fields:?}");
    assert!(fields.contains(&"rules.deductible_member"), "{fields:?}");

    let plan = f.gold(rules(&f.hospital)).await;
    // A version starting later ends the open one; one overlapping a closed period is refused.
    let version = |from: &str| json!({"effective_from": from, "rules": rules(&f.hospital)});
    let (status, v2) =
        f.call(Method::POST, &format!("/plans/{plan}/versions"), &f.insurer_admin, Some(version("2030-01-01"))).await;
    assert_eq!((status, v2["version"].as_i64()), (201, Some(2)), "{v2}");
    let (status, clash) =
        f.call(Method::POST, &format!("/plans/{plan}/versions"), &f.insurer_admin, Some(version("2025-06-01"))).await;
    assert_eq!(status, 409, "{clash}");
    let (_, read) = f.call(Method::GET, &format!("/plans/{plan}"), &f.officer, None).await;
    assert_eq!(read["versions"][0]["effective_to"], "2029-12-31");

    // The plan covers three members: a family of four is refused; a fourth member later too.
    let person = |name: &str, born: &str| json!({"given_name": name, "family_name": "Otieno", "date_of_birth": born, "relationship": "child"});
    let (status, problem) = f
        .call(
            Method::POST,
            "/policies",
            &f.agent,
            Some(json!({"plan_id": plan, "start_date": start(),
            "holder": {"given_name": "Amina", "family_name": "Otieno", "date_of_birth": "1988-04-12"},
            "dependants": [person("A", "2015-01-01"), person("B", "2016-01-01"), person("C", "2017-01-01")]})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "dependants");
    let (policy, _) = f.family(&plan).await;
    let policy_id = policy["id"].as_str().unwrap();
    let (status, grown) = f
        .call(Method::POST, &format!("/policies/{policy_id}/members"), &f.agent, Some(person("C", "2017-01-01")))
        .await;
    assert_eq!(status, 201, "{grown}");
    let (status, _) = f
        .call(Method::POST, &format!("/policies/{policy_id}/members"), &f.agent, Some(person("D", "2018-01-01")))
        .await;
    assert_eq!(status, 409);
    // A lifecycle move that does not exist.
    let (status, _) = f
        .call(
            Method::POST,
            &format!("/policies/{policy_id}/status"),
            &f.insurer_admin,
            Some(json!({"status": "expired"})),
        )
        .await;
    assert_eq!(status, 409);
    // A member number with wrong check digits, and a claim line from the future.
    let (status, problem) = f.claim("X", "AAR-0000000100", json!([line("LAB", "laboratory", 1)])).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "member_number");
    let number = policy["members"][0]["member_number"].as_str().unwrap();
    let mut future = line("LAB", "laboratory", 1);
    future["date_of_service"] = json!("2999-01-01");
    let (status, problem) = f.claim("X", number, json!([future])).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "lines[0].date_of_service");
    f.w.stop().await;
}

/// Patient registration with coverage, with MedCov stopped right after the registration and
/// started again: the insurer's answer arrives once, whatever was in flight.
async fn member_verification_finishes_once_across_a_restart(env: TestEnv) {
    let mut f = insurer(&env).await;
    let plan = f.gold(rules(&f.hospital)).await;
    let (policy, number) = f.family(&plan).await;
    f.activate(&f.insurer_admin, &policy).await;
    let patient = register(&f, "Restart", "Verified", &[&number, "AAR-0000000100"]).await;
    f.restart(env.config.clone(), "all").await;
    let path = format!("/api/hospital/patients/{patient}/coverage");
    f.settle().await;
    let answers = f.get(&path, &f.admin).await;
    // Settled: a duplicate would show now, and nothing moves any more.
    f.settle().await;
    let answers_now = f.get(&path, &f.admin).await;
    assert_eq!(answers_now, answers, "nothing changed after the answer");
    let statuses: Vec<&str> =
        answers["items"].as_array().expect("answers").iter().filter_map(|a| a["status"].as_str()).collect();
    assert_eq!(statuses.len(), 2, "{answers}");
    assert!(statuses.contains(&"covered") && statuses.contains(&"invalid"), "{answers}");
    f.w.stop().await;
}

/// Registers a patient `given` `family` at the fixture's hospital with `numbers` of its
/// insurer; their id.
async fn register(f: &Insurer, given: &str, family: &str, numbers: &[&str]) -> String {
    let members: Vec<Value> = numbers.iter().map(|n| json!({"insurer_id": f.insurer, "member_number": n})).collect();
    let patient = json!({"hospital_id": f.hospital, "given_name": given, "family_name": family,
        "date_of_birth": "1988-04-12", "sex": "female", "member_numbers": members});
    world::id(&f.create("/api/hospital/patients", &f.admin, patient).await)
}

/// The registration saga of `patient`, with its transitions, if it is in `state`.
async fn saga_of(f: &Insurer, patient: &str, state: &str) -> Option<Value> {
    let list = f.get(&format!("/api/hospital/sagas?state={state}"), &f.admin).await;
    let saga = list["items"].as_array()?.iter().find(|s| s["subject_id"] == patient)?.clone();
    Some(f.get(&format!("/api/hospital/sagas/{}", saga["id"].as_str().unwrap()), &f.admin).await)
}

/// The patient-registration saga, orchestrated by the hospital service: completed (verified,
/// linked, account opened), failed at the first step (self-pay, the desk told why), and
/// compensated after linking when billing does not answer (the link undone).
async fn the_registration_saga_completes_fails_and_compensates(env: TestEnv) {
    let mut f = insurer(&env).await;
    let plan = f.gold(rules(&f.hospital)).await;
    let (policy, number) = f.family(&plan).await;
    f.activate(&f.insurer_admin, &policy).await;
    let settled = async |f: &Insurer, patient: &str, state: &str| -> Value {
        f.settle().await;
        saga_of(f, patient, state).await.unwrap_or_else(|| panic!("no {state} saga for {patient}"))
    };
    let moves = |saga: &Value| -> Vec<(String, String)> {
        saga["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["to_state"].as_str().unwrap().to_owned(), t["step"].as_str().unwrap().to_owned()))
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());

    // Covered: verified and linked, then the account opened.
    let covered = register(&f, "Covered", "Saga", &[&number]).await;
    let saga = settled(&f, &covered, "completed").await;
    assert_eq!(
        moves(&saga),
        [pair("running", "verify_member"), pair("running", "open_account"), pair("completed", "open_account")],
        "{saga}"
    );
    assert_eq!(saga["kind"], "patient_registration");
    assert_eq!(saga["data"]["results"]["verify_member"]["members"][0]["status"], "covered", "{saga}");
    assert!(saga["data"]["results"]["open_account"]["opened_at"].is_string(), "{saga}");

    // No covered number: the first step fails, nothing to undo; the desk sees why.
    let self_pay = register(&f, "SelfPay", "Saga", &["AAR-0000000100"]).await;
    let saga = settled(&f, &self_pay, "compensated").await;
    assert_eq!(moves(&saga), [pair("running", "verify_member"), pair("compensated", "verify_member")], "{saga}");
    assert!(saga["data"]["failure"].as_str().unwrap().contains("no member number is covered"), "{saga}");
    let coverage = f.get(&format!("/api/hospital/patients/{self_pay}/coverage"), &f.admin).await;
    assert_eq!(coverage["items"][0]["status"], "invalid", "{coverage}");

    // Billing is down: the account step times out, and everything is undone in reverse once
    // billing answers again: its account closed (it opens it late, then closes it), then the
    // member unlinked.
    let mut config = env.config.clone();
    config.events.saga_step_timeout_ms = 1_000;
    f.restart(config.clone(), "auth,hospital,insurance,gateway").await;
    let stranded = register(&f, "Stranded", "Saga", &[&number]).await;
    // The step's deadline is a timer: wait for it to pass.
    let saga =
        eventually("the account step to time out", PATIENCE, async || saga_of(&f, &stranded, "compensating").await)
            .await;
    assert_eq!(saga["step"], "open_account", "{saga}");
    f.restart(config, "all").await;
    // Compensations are re-sent on a timer until billing answers: wait for the end, then let
    // what is still in flight settle before counting what was undone.
    eventually("the saga to be compensated", PATIENCE, async || saga_of(&f, &stranded, "compensated").await).await;
    let saga = settled(&f, &stranded, "compensated").await;
    // Re-sent compensations log a move each while billing is away.
    let path = moves(&saga);
    assert_eq!(
        path.first().cloned().zip(path.last().cloned()),
        Some((pair("running", "verify_member"), pair("compensated", "verify_member"))),
        "{saga}"
    );
    assert!(
        path.contains(&pair("compensating", "open_account")) && path.contains(&pair("compensating", "verify_member")),
        "{saga}"
    );
    assert!(saga["data"]["failure"].as_str().unwrap().contains("open_account did not answer in time"), "{saga}");
    assert_eq!(saga["data"]["compensations"]["open_account"]["closed"], 1, "opened late, then closed: {saga}");
    assert_eq!(saga["data"]["compensations"]["verify_member"]["unlinked"], 1, "{saga}");
    f.w.stop().await;
}

/// Registering a patient with member numbers asks their insurers: the desk sees, for each
/// number, covered or why not.
async fn a_registered_patients_member_numbers_are_verified(env: TestEnv) {
    let f = insurer(&env).await;
    let plan = f.gold(rules(&f.hospital)).await;
    let (policy, number) = f.family(&plan).await;
    // The insurer's answers, once the events in flight settled: there are `count`.
    let coverage = async |patient: String, count: usize| {
        f.settle().await;
        let answers = f.get(&format!("/api/hospital/patients/{patient}/coverage"), &f.admin).await;
        assert_eq!(
            answers["items"].as_array().map(Vec::len),
            Some(count),
            "the insurer's answers for {patient}: {answers}"
        );
        answers["items"].clone()
    };
    // The policy is still pending: not covered, and why.
    let waiting = register(&f, "Pending", "Verified", &[&number]).await;
    let answers = coverage(waiting, 1).await;
    assert_eq!(
        (answers[0]["status"].as_str(), answers[0]["reason"].as_str()),
        (Some("not_covered"), Some("no_active_policy"))
    );
    f.activate(&f.insurer_admin, &policy).await;
    // Covered; a well-formed number nobody has; a number whose check digits are wrong.
    let patient = register(&f, "Active", "Verified", &[&number, "AAR-0000099911", "AAR-0000000100"]).await;
    let answers = coverage(patient, 3).await;
    let status_of =
        |n: &str| answers.as_array().unwrap().iter().find(|a| a["member_number"] == n).map(|a| a["status"].clone());
    assert_eq!(status_of(&number), Some(json!("covered")), "{answers}");
    assert_eq!(status_of("AAR-0000099911"), Some(json!("unknown")));
    assert_eq!(status_of("AAR-0000000100"), Some(json!("invalid")));
    f.w.stop().await;
}

/// A burst of registrations with member numbers, faster than the insurers and billing confirm
/// them: MedCov answers 503 (Retry-After) to those it could not carry through in time, and every
/// registration it accepted keeps its coverage: no saga is compensated because its own queue was
/// long.
async fn a_burst_of_registrations_is_refused_rather_than_undone(env: TestEnv) {
    use futures::StreamExt;
    let mut config = env.config.clone();
    // Short enough that the burst's queue would outlast it, long enough for a loaded machine.
    config.events.saga_step_timeout_ms = 10_000;
    config.gateway.rate_limits.api = medcov_config::QuotaConfig { per_minute: 1_000_000, burst: 100_000 };
    let f = insurer_with(&env, config).await;
    let plan = f.gold(rules(&f.hospital)).await;
    let (policy, number) = f.family(&plan).await;
    f.activate(&f.insurer_admin, &policy).await;

    let register = |n: usize| {
        let (f, number) = (&f, number.clone());
        async move {
            // Names take no digits: n in letters.
            let family: String = [n / 676, n / 26 % 26, n % 26].iter().map(|d| char::from(b'a' + *d as u8)).collect();
            let patient = json!({"hospital_id": f.hospital, "given_name": "Burst", "family_name": format!("Patient{family}"),
                "date_of_birth": "1988-04-12", "sex": "female",
                "member_numbers": [{"insurer_id": f.insurer, "member_number": number}]});
            f.w.app
                .call(Method::POST, "/api/hospital/patients?allow_duplicate=true", Some(&f.admin), Some(patient))
                .await
        }
    };
    let answers: Vec<_> = futures::stream::iter(0..600).map(register).buffer_unordered(32).collect().await;
    let mut accepted: u32 = 0;
    for (status, headers, body) in &answers {
        match status {
            201 => accepted += 1,
            503 => assert!(headers.contains_key("retry-after"), "a 503 says when to come back: {body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert!(accepted >= 16, "the first registrations of a burst are accepted ({accepted})");

    // Every accepted registration's saga completes; none is undone.
    f.settle().await;
    let gauge = async |state: &str| {
        let metrics = f.w.app.metrics(ServiceName::Hospital).await;
        let label = format!("state=\"{state}\"");
        crate::support::sample(&metrics, "sagas", &["kind=\"patient_registration\"", &label]).unwrap_or(0.0)
    };
    let ended = eventually("every accepted registration's saga to end", PATIENCE, async || {
        let ended = gauge("completed").await + gauge("compensated").await;
        (ended >= f64::from(accepted)).then_some(ended)
    })
    .await;
    let undone = f.get("/api/hospital/sagas?state=compensated", &f.admin).await;
    assert_eq!(
        (gauge("completed").await, gauge("compensated").await),
        (f64::from(accepted), 0.0),
        "{accepted} accepted, {ended} ended, {} refused; undone: {undone}",
        answers.len() - accepted as usize
    );
    f.w.stop().await;
}

medcov_testkit::backend_suite!(
    a_burst_of_registrations_is_refused_rather_than_undone,
    the_registration_saga_completes_fails_and_compensates,
    member_verification_finishes_once_across_a_restart,
    a_registered_patients_member_numbers_are_verified,
    a_claim_is_adjudicated_to_the_cent_and_reversed,
    preauthorisations_reserve_and_are_used_by_claims,
    concurrent_claims_never_overshoot_a_ceiling,
    inconsistent_input_is_refused_with_the_field,
    an_override_stops_at_the_ceiling_unless_ex_gratia,
    a_family_members_answer_is_fresh_after_anothers_preauthorisation,
    questions_differing_only_in_services_are_answered_without_a_load,
    the_same_question_is_answered_from_the_gateway_until_a_claim_changes_it,
);

/// The insurance service loads the plan versions in force into the cache at start when
/// `cache.warm` lists them, and not otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_versions_are_warmed_into_the_cache_at_start() {
    let env = TestEnv::embedded().await;
    let f = insurer(&env).await;
    f.gold(rules(&f.hospital)).await;
    f.w.stop().await;

    let loads = async |app: &App| {
        let metrics = app.text(ServiceName::Insurance, "/metrics").await;
        crate::support::sample(&metrics, "cache_requests_total", &["result=\"miss\""]).unwrap_or(0.0)
    };
    // Warming runs in the background after start-up, off the bus: wait for its load.
    let app = App::start(env.config.clone(), "all").await;
    let warmed = eventually("the plan versions to be warmed", PATIENCE, async || {
        let warmed = loads(&app).await;
        (warmed >= 1.0).then_some(warmed)
    })
    .await;
    assert_eq!(warmed, 1.0, "the one plan version was loaded with no request asking for it");
    app.stop().await;

    let mut config = env.config.clone();
    config.cache.warm = Vec::new();
    let app = App::start(config, "all").await;
    // Kept on purpose: the behaviour under test is that nothing starts, and nothing signals
    // that; half a second is far longer than the warmed start above took to load.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(loads(&app).await, 0.0, "nothing is warmed when no set is listed");
    app.stop().await;
}
