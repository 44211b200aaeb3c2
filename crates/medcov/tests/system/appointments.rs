//! Practitioners and appointments through the gateway, on both backends.

use medcov_config::ServiceName;
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::world::{World, scope};

const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// A world with a hospital and its clerk.
struct Clinic {
    w: World,
    clerk: String,
    hospital: String,
}

impl std::ops::Deref for Clinic {
    type Target = World;
    fn deref(&self) -> &World {
        &self.w
    }
}

/// A hospital in Nairobi (UTC+3 all year) with a clerk.
async fn clinic(env: &TestEnv) -> Clinic {
    let w = World::start(env).await;
    let hospital = w.hospital("NRB", "Africa/Nairobi").await;
    let clerk = w.user("desk", "hospital_clerk", scope::hospital(&hospital)).await;
    Clinic { w, clerk, hospital }
}

impl Clinic {
    async fn practitioner(&self, name: &str, capacity: i32) -> String {
        let hours: Vec<Value> = DAYS.iter().map(|d| json!({"weekday": d, "start": "06:00", "end": "20:00"})).collect();
        let (status, _, body) = self
            .app
            .call(Method::POST, "/api/hospital/practitioners", Some(&self.clerk), Some(json!({"hospital_id": self.hospital, "name": name, "specialty": "general practice", "working_hours": hours, "daily_capacity": capacity})))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    async fn patient(&self, given: &str) -> String {
        let (status, _, body) = self
            .app
            .call(Method::POST, "/api/hospital/patients", Some(&self.clerk), Some(json!({"hospital_id": self.hospital, "given_name": given, "family_name": "Test", "date_of_birth": "1990-01-01", "sex": "unknown"})))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    async fn book(&self, patient: &str, practitioner: &str, starts_at: &str, minutes: u16) -> (u16, Value) {
        let (status, _, body) = self
            .app
            .call(Method::POST, "/api/hospital/appointments", Some(&self.clerk), Some(json!({"patient_id": patient, "practitioner_id": practitioner, "category": "consultation", "starts_at": starts_at, "duration_minutes": minutes})))
            .await;
        (status, body)
    }
}

/// Tomorrow (UTC) at `hour`:`minute` Nairobi time, as RFC 3339 in UTC, and tomorrow's date.
fn tomorrow(hour: i64, minute: i64) -> (String, String) {
    let day = time::OffsetDateTime::now_utc().date().next_day().expect("a date");
    let at = day.midnight().assume_utc() + time::Duration::minutes((hour - 3) * 60 + minute);
    let text = at.format(&time::format_description::well_known::Rfc3339).expect("format");
    (text, day.to_string())
}

async fn booking_refuses_double_bookings_and_moves_only_forward(env: TestEnv) {
    let clinic = clinic(&env).await;
    let app = &clinic.app;
    let (dr_a, dr_b) = (clinic.practitioner("Dr. A", 16).await, clinic.practitioner("Dr. B", 16).await);
    let (amina, baraka) = (clinic.patient("Amina").await, clinic.patient("Baraka").await);
    let (nine, date) = tomorrow(9, 0);
    let (nine_fifteen, _) = tomorrow(9, 15);

    let (status, first) = clinic.book(&amina, &dr_a, &nine, 30).await;
    assert_eq!(status, 201, "{first}");
    let first_id = first["id"].as_str().expect("id").to_owned();
    // The day is read (and cached) now; the booking below must show in the next read.
    let day_path = format!("/api/hospital/practitioners/{dr_a}/appointments?date={date}");
    let (_, _, day) = app.call(Method::GET, &day_path, Some(&clinic.clerk), None).await;
    assert_eq!(day["items"].as_array().expect("day").len(), 1);

    // The practitioner is taken at 9:15, and so is the patient, even with another practitioner.
    for (patient, practitioner) in [(&baraka, &dr_a), (&amina, &dr_b)] {
        let (status, body) = clinic.book(patient, practitioner, &nine_fifteen, 30).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains(&first_id)), "names the clash: {body}");
    }
    // Back to back is fine.
    let (half_past, _) = tomorrow(9, 30);
    assert_eq!(clinic.book(&baraka, &dr_a, &half_past, 30).await.0, 201);
    // Outside working hours (02:00 in Nairobi).
    let (night, _) = tomorrow(2, 0);
    let (status, body) = clinic.book(&baraka, &dr_b, &night, 30).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("starts_at")), "{body}");

    // The day and the free slots agree.
    let (_, _, day) = app.call(Method::GET, &day_path, Some(&clinic.clerk), None).await;
    assert_eq!(day["items"].as_array().expect("day").len(), 2, "a read after a booking sees it");
    assert_eq!(day["paging"], json!({}), "a day comes whole: {day}");
    let (_, _, slots) = app
        .call(
            Method::GET,
            &format!("/api/hospital/practitioners/{dr_a}/free-slots?date={date}&duration_minutes=30"),
            Some(&clinic.clerk),
            None,
        )
        .await;
    let starts: Vec<&str> =
        slots["items"].as_array().expect("slots").iter().filter_map(|s| s["starts_at"].as_str()).collect();
    assert!(!starts.iter().any(|s| s.starts_with(&nine[..16])), "9:00 is not free: {starts:?}");
    assert!(!starts.is_empty());

    // Statuses move forward only.
    let status_path = format!("/api/hospital/appointments/{first_id}/status");
    for next in ["arrived", "checked_in"] {
        let (status, _, body) =
            app.call(Method::POST, &status_path, Some(&clinic.clerk), Some(json!({"status": next}))).await;
        assert_eq!((status, body["status"].as_str()), (200, Some(next)), "{body}");
    }
    let (status, _, _) =
        app.call(Method::POST, &status_path, Some(&clinic.clerk), Some(json!({"status": "booked"}))).await;
    assert_eq!(status, 409);
    let (status, _, _) =
        app.call(Method::POST, &status_path, Some(&clinic.clerk), Some(json!({"status": "cancelled"}))).await;
    assert_eq!(status, 422, "cancelling needs a reason");
    let (status, _, _) =
        app.call(Method::POST, &status_path, Some(&clinic.clerk), Some(json!({"status": "fulfilled"}))).await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .call(Method::POST, &status_path, Some(&clinic.clerk), Some(json!({"status": "cancelled", "reason": "late"})))
        .await;
    assert_eq!(status, 409, "fulfilled is final");

    // A fulfilled appointment frees nothing it did not hold; a cancelled one frees its slot.
    let (status, second) = clinic.book(&amina, &dr_b, &tomorrow(11, 0).0, 30).await;
    assert_eq!(status, 201);
    let second_id = second["id"].as_str().expect("id");
    let (status, _, _) = app
        .call(
            Method::POST,
            &format!("/api/hospital/appointments/{second_id}/status"),
            Some(&clinic.clerk),
            Some(json!({"status": "cancelled", "reason": "patient called"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(clinic.book(&baraka, &dr_b, &tomorrow(11, 0).0, 30).await.0, 201);

    // Rescheduling needs the version read and keeps the slot rules.
    let (_, third) = clinic.book(&amina, &dr_b, &tomorrow(14, 0).0, 30).await;
    let reschedule = format!("/api/hospital/appointments/{}/reschedule", third["id"].as_str().expect("id"));
    let moved = app
        .client
        .post(app.url(ServiceName::Gateway, &reschedule))
        .bearer_auth(&clinic.clerk)
        .header("if-match", "\"1\"")
        .json(&json!({"starts_at": tomorrow(15, 0).0, "duration_minutes": 45}))
        .send()
        .await
        .expect("sent");
    assert_eq!(moved.status(), 200);
    let moved: Value = moved.json().await.expect("json");
    assert_eq!(moved["version"], 2);
    let (_, _, upcoming) =
        app.call(Method::GET, &format!("/api/hospital/patients/{amina}/appointments"), Some(&clinic.clerk), None).await;
    let times: Vec<&str> =
        upcoming["items"].as_array().expect("list").iter().filter_map(|a| a["starts_at"].as_str()).collect();
    assert!(times.len() >= 2, "{upcoming}");
    assert_eq!(upcoming["paging"], json!({"limit": 20, "offset": 0, "next_offset": null}), "one page: {upcoming}");
    // Paged one at a time: the first page points at the second, the last at none.
    let page = |offset: usize| format!("/api/hospital/patients/{amina}/appointments?limit=1&offset={offset}");
    let (_, _, first_page) = app.call(Method::GET, &page(0), Some(&clinic.clerk), None).await;
    assert_eq!(first_page["items"][0]["starts_at"], times[0], "{first_page}");
    assert_eq!(first_page["paging"], json!({"limit": 1, "offset": 0, "next_offset": 1}), "{first_page}");
    let (_, _, last_page) = app.call(Method::GET, &page(times.len() - 1), Some(&clinic.clerk), None).await;
    assert_eq!(last_page["items"][0]["starts_at"], times[times.len() - 1], "{last_page}");
    assert_eq!(last_page["paging"]["next_offset"], Value::Null, "{last_page}");
    clinic.w.stop().await;
}

async fn parallel_bookings_of_one_slot_admit_exactly_one(env: TestEnv) {
    let clinic = clinic(&env).await;
    let practitioner = clinic.practitioner("Dr. Busy", 50).await;
    let mut patients = Vec::new();
    for name in ["Ana", "Ben", "Cai", "Dee", "Eli", "Fay"] {
        patients.push(clinic.patient(name).await);
    }
    let (ten, _) = tomorrow(10, 0);
    let url = clinic.app.url(ServiceName::Gateway, "/api/hospital/appointments");
    let mut bookings = tokio::task::JoinSet::new();
    for patient in &patients {
        let (client, url, clerk) = (clinic.app.client.clone(), url.clone(), clinic.clerk.clone());
        let body = json!({"patient_id": patient, "practitioner_id": practitioner, "category": "consultation", "starts_at": ten, "duration_minutes": 30});
        bookings.spawn(async move {
            client.post(url).bearer_auth(clerk).json(&body).send().await.expect("sent").status().as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = bookings.join_next().await {
        statuses.push(status.expect("task"));
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409], "exactly one booking wins the slot");

    // One patient, two practitioners, the same time, at once: the patient cannot be in two
    // places (on PostgreSQL this is the exclusion constraint's catch; still a 409, never a 500).
    let other = clinic.practitioner("Dr. Other", 50).await;
    let (eleven, _) = tomorrow(11, 0);
    let mut pair = tokio::task::JoinSet::new();
    for doctor in [practitioner.clone(), other.clone()] {
        let (client, url, clerk) = (clinic.app.client.clone(), url.clone(), clinic.clerk.clone());
        let body = json!({"patient_id": patients[0], "practitioner_id": doctor, "category": "consultation", "starts_at": eleven, "duration_minutes": 30});
        pair.spawn(async move {
            client.post(url).bearer_auth(clerk).json(&body).send().await.expect("sent").status().as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = pair.join_next().await {
        statuses.push(status.expect("task"));
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409]);

    // The daily capacity holds too.
    let small = clinic.practitioner("Dr. Small", 2).await;
    let mut outcomes = Vec::new();
    for (i, patient) in patients.iter().take(3).enumerate() {
        outcomes.push(clinic.book(patient, &small, &tomorrow(12 + i as i64, 0).0, 30).await);
    }
    assert_eq!(outcomes.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [201, 201, 409]);
    assert!(outcomes[2].1["detail"].as_str().is_some_and(|d| d.contains("full")), "{:?}", outcomes[2]);
    clinic.w.stop().await;
}

async fn an_encounter_records_care_and_completes_for_billing(env: TestEnv) {
    let clinic = clinic(&env).await;
    let app = &clinic.app;
    let practitioner = clinic.practitioner("Dr. Care", 16).await;
    let (status, _, patient) = app
        .call(Method::POST, "/api/hospital/patients", Some(&clinic.clerk), Some(json!({"hospital_id": clinic.hospital, "given_name": "Imani", "family_name": "Otieno", "date_of_birth": "1975-05-05", "sex": "female", "member_numbers": [{"insurer_id": "01900000-0000-7000-8000-000000000001", "member_number": "MC-1"}]})))
        .await;
    assert_eq!(status, 201, "{patient}");
    let patient = patient["id"].as_str().expect("id").to_owned();
    for (code, category) in [("CONS-GP", "consultation"), ("LAB-FBC", "laboratory")] {
        let (status, _, body) = app
            .call(
                Method::POST,
                "/api/hospital/service-catalog",
                Some(&clinic.clerk),
                Some(json!({"hospital_id": clinic.hospital, "code": code, "category": category, "description": code})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // A clinician of the hospital.
    let clinician = clinic.user("dr.care", "clinician", scope::hospital(&clinic.hospital)).await;

    let (_, booked) = clinic.book(&patient, &practitioner, &tomorrow(9, 0).0, 30).await;
    let appointment = booked["id"].as_str().expect("id").to_owned();
    let open = json!({"patient_id": patient, "practitioner_id": practitioner, "appointment_id": appointment, "visit_type": "normal"});
    let (status, _, _) = app.call(Method::POST, "/api/hospital/encounters", Some(&clinician), Some(open.clone())).await;
    assert_eq!(status, 409, "a booked appointment has not been checked in");
    app.call(
        Method::POST,
        &format!("/api/hospital/appointments/{appointment}/status"),
        Some(&clinic.clerk),
        Some(json!({"status": "checked_in"})),
    )
    .await;
    let (status, _, encounter) =
        app.call(Method::POST, "/api/hospital/encounters", Some(&clinician), Some(open.clone())).await;
    assert_eq!(status, 201, "{encounter}");
    let (_, _, seen) =
        app.call(Method::GET, &format!("/api/hospital/appointments/{appointment}"), Some(&clinic.clerk), None).await;
    assert_eq!(seen["status"], "fulfilled");
    let (status, _, history) = app
        .call(Method::GET, &format!("/api/hospital/appointments/{appointment}/history"), Some(&clinic.clerk), None)
        .await;
    assert_eq!(status, 200, "{history}");
    let statuses: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["booked", "checked_in", "fulfilled"], "{history}");
    let (status, _, _) = app.call(Method::POST, "/api/hospital/encounters", Some(&clinician), Some(open)).await;
    assert_eq!(status, 409, "one encounter per appointment");

    let path = format!("/api/hospital/encounters/{}", encounter["id"].as_str().expect("id"));
    let send = |method: Method, path: String, version: Option<&'static str>, token: String, body: Option<Value>| {
        let mut request = app.client.request(method, app.url(ServiceName::Gateway, &path)).bearer_auth(token);
        if let Some(version) = version {
            request = request.header("if-match", version);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { crate::support::read(request.send().await.expect("sent")).await }
    };
    let unknown = json!({"diagnoses": [{"code": "j06.9", "primary": true}], "services": [{"code": "CONS-GP", "quantity": 1}, {"code": "XRAY", "quantity": 1}]});
    let (status, _, body) = send(Method::PATCH, path.clone(), Some("\"1\""), clinician.clone(), Some(unknown)).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("services[1].code")), "{body}");
    let (status, _, _) =
        send(Method::PATCH, path.clone(), Some("\"1\""), clinic.clerk.clone(), Some(json!({"notes": "x"}))).await;
    assert_eq!(status, 403, "the desk does not record care");
    let care = json!({"diagnoses": [{"code": "j06.9", "primary": true}], "services": [{"code": "cons-gp", "quantity": 1}, {"code": "LAB-FBC", "quantity": 2}], "notes": "sore throat"});
    let (status, _, body) = send(Method::PATCH, path.clone(), Some("\"1\""), clinician.clone(), Some(care)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["diagnoses"][0]["code"], "J06.9");

    let close = format!("{path}/close");
    assert_eq!(send(Method::POST, close.clone(), None, clinician.clone(), None).await.0, 428);
    assert_eq!(send(Method::POST, close.clone(), Some("\"1\""), clinician.clone(), None).await.0, 412);
    let (status, _, closed) = send(Method::POST, close.clone(), Some("\"2\""), clinician.clone(), None).await;
    assert_eq!((status, closed["status"].as_str()), (200, Some("closed")), "{closed}");
    let (status, _, _) =
        send(Method::PATCH, path.clone(), Some("\"3\""), clinician.clone(), Some(json!({"notes": "later"}))).await;
    assert_eq!(status, 409, "closed is frozen");

    // Billing's view of it, in the outbox, written with the close.
    let database = medcov_store::Database::connect(
        ServiceName::Hospital,
        env.config.database_url(ServiceName::Hospital),
        &medcov_store::PoolOptions::from_config(&env.config),
    )
    .await
    .expect("hospital database");
    let events = medcov_store::outbox::all(&database).await.expect("outbox");
    let completed: Vec<&Value> =
        events.iter().filter(|e| e.event_type == "hospital.encounter_completed.v1").map(|e| &e.payload).collect();
    assert_eq!(completed.len(), 1);
    let payload = completed[0];
    assert_eq!(
        payload["services"][1],
        json!({"code": "LAB-FBC", "category": "laboratory", "description": "LAB-FBC", "quantity": 2})
    );
    assert_eq!(payload["member_numbers"][0]["member_number"], "MC-1");
    assert_eq!(payload["visit_type"], "normal");
    database.close().await;

    // A walk-in needs no appointment.
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/hospital/encounters",
            Some(&clinic.clerk),
            Some(json!({"patient_id": patient, "practitioner_id": practitioner, "visit_type": "emergency"})),
        )
        .await;
    assert_eq!(status, 201);
    clinic.w.stop().await;
}

/// A hospital open 08:00 to 12:00 every day: nothing is booked outside, whatever the
/// practitioner's hours, and free slots stay inside.
async fn opening_hours_bound_bookings_and_free_slots(env: TestEnv) {
    let w = World::start(&env).await;
    let morning: Vec<Value> = DAYS.iter().map(|d| json!({"weekday": d, "start": "08:00", "end": "12:00"})).collect();
    let (status, body) = w
        .call(Method::POST, "/api/hospital/hospitals", &w.admin, Some(json!({"name": "Morning Clinic", "code": "AM", "timezone": "Africa/Nairobi", "currency": "KES", "opening_hours": [{"weekday": "monday", "start": "09:00", "end": "08:00"}]})))
        .await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("opening_hours[0]")), "{body}");
    let (status, hospital) = w
        .call(Method::POST, "/api/hospital/hospitals", &w.admin, Some(json!({"name": "Morning Clinic", "code": "AM", "timezone": "Africa/Nairobi", "currency": "KES", "opening_hours": morning})))
        .await;
    assert_eq!((status, hospital["opening_hours"].as_array().map(Vec::len)), (201, Some(7)), "{hospital}");
    let hospital = hospital["id"].as_str().expect("id").to_owned();
    let clerk = w.user("am.desk", "hospital_clerk", scope::hospital(&hospital)).await;
    let clinic = Clinic { w, clerk, hospital };
    let doctor = clinic.practitioner("Dr. Early", 20).await;
    let patient = clinic.patient("Baraka").await;

    let (at, date) = tomorrow(12, 0);
    let (status, body) = clinic.book(&patient, &doctor, &at, 30).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "starts_at");
    assert!(body["errors"][0]["reason"].as_str().unwrap().contains("opening hours"), "{body}");
    let (at, _) = tomorrow(11, 45);
    assert_eq!(clinic.book(&patient, &doctor, &at, 30).await.0, 422, "runs past closing");
    let (at, _) = tomorrow(11, 30);
    let (status, body) = clinic.book(&patient, &doctor, &at, 30).await;
    assert_eq!(status, 201, "{body}");

    let (status, _, slots) = clinic
        .app
        .call(
            Method::GET,
            &format!("/api/hospital/practitioners/{doctor}/free-slots?date={date}&duration_minutes=30"),
            Some(&clinic.clerk),
            None,
        )
        .await;
    assert_eq!(status, 200, "{slots}");
    let slots = slots["items"].as_array().expect("slots");
    // Starts on a 15-minute grid from 08:00; 11:15 would run into the 11:30 booking and
    // 11:30 is taken: 08:00 … 11:00, 13 slots.
    assert_eq!(slots.len(), 13, "{slots:?}");
    let (first, _) = tomorrow(8, 0);
    assert_eq!(slots[0]["starts_at"], first.as_str());

    // The hospital stays open an hour longer: noon can be booked now.
    let longer: Vec<Value> = DAYS.iter().map(|d| json!({"weekday": d, "start": "08:00", "end": "13:00"})).collect();
    let change = |version: &'static str| {
        let request = clinic
            .app
            .client
            .patch(clinic.app.url(ServiceName::Gateway, &format!("/api/hospital/hospitals/{}", clinic.hospital)))
            .bearer_auth(&clinic.admin)
            .header("if-match", version)
            .json(&json!({"opening_hours": longer}));
        async move { crate::support::read(request.send().await.expect("sent")).await }
    };
    let (status, headers, changed) = change("\"1\"").await;
    assert_eq!((status, changed["version"].as_i64()), (200, Some(2)), "{changed}");
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(change("\"1\"").await.0, 412, "a stale ETag loses nothing");
    let (at, _) = tomorrow(12, 0);
    let (status, body) = clinic.book(&patient, &doctor, &at, 30).await;
    assert_eq!(status, 201, "{body}");
    clinic.w.stop().await;
}

medcov_testkit::backend_suite!(
    opening_hours_bound_bookings_and_free_slots,
    booking_refuses_double_bookings_and_moves_only_forward,
    parallel_bookings_of_one_slot_admit_exactly_one,
    an_encounter_records_care_and_completes_for_billing,
);
