//! The SLA rules over HTTP: an admin publishes a year's calendar (the "2027 time bomb": an
//! assignment whose deadlines need an unpublished year is refused, naming the year, until the
//! year is published), corrects a date, sets a policy for a channel; bad input changes nothing.

use linkage_auth::Role;
use linkage_e2e::spawn_app;
use serde_json::json;

#[tokio::test]
async fn publishing_2027_unblocks_assignments_that_need_it() {
    let app = spawn_app().await;
    let (admin, dispatcher) = (
        app.token(Role::Admin, None),
        app.token(Role::Dispatcher, None),
    );
    // Mon 2026-12-28 10:00 local: 10 working days run into January 2027.
    app.clock.set("2026-12-28T02:00:00Z".parse().unwrap());
    let id = app.file_appeal().await;
    let assign = json!({"lead": "market-supervision"});
    let refused = app
        .post(
            &format!("/api/v1/appeals/{id}/assign"),
            &dispatcher,
            &assign,
            None,
        )
        .await;
    refused.assert_problem(422, "invalid-field");
    assert!(
        refused.body["detail"].as_str().unwrap().contains("2027"),
        "{}",
        refused.body
    );
    assert_eq!(app.event_count(&id).await, 1);

    // Only admins publish; a year's data is checked before anything is recorded.
    let year = json!({
        "year": 2027,
        "holidays": ["2027-01-01"],
        "working_weekends": [],
        "source": "国办发明电〔2026〕X号"
    });
    let before = app.total_events().await;
    app.post("/api/v1/calendar/years", &dispatcher, &year, None)
        .await
        .assert_problem(403, "forbidden");
    let bad = json!({"year": 2027, "holidays": ["2027-01-01"], "working_weekends": ["2027-01-04"], "source": "x"});
    let a = app.post("/api/v1/calendar/years", &admin, &bad, None).await;
    a.assert_problem(422, "invalid-field");
    assert_eq!(a.body["field"], "working_weekends");
    assert_eq!(app.total_events().await, before);

    let published = app
        .post("/api/v1/calendar/years", &admin, &year, None)
        .await;
    assert_eq!(published.status, 201, "{}", published.body);
    assert_eq!(published.body["calendar"], "calendar-v8");
    app.post("/api/v1/calendar/years", &admin, &year, None)
        .await
        .assert_problem(409, "rules-conflict");

    // Now the assignment goes through: 29, 30, 31 Dec, (1 Jan off), 4–8, 11, 12 Jan → 24:00
    // Tue 2027-01-12 local, computed with the new calendar version.
    let a = app
        .post(
            &format!("/api/v1/appeals/{id}/assign"),
            &dispatcher,
            &assign,
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let payload: serde_json::Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_id = $1 AND event_type = 'AppealAssigned'",
    )
    .bind(&id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        payload["deadlines"]["resolution_due"],
        "2027-01-12T16:00:00Z"
    );
    assert_eq!(payload["calendar"], "calendar-v8");

    // Everyone signed in can read the calendar in force.
    let read = app
        .http
        .get(app.url("/api/v1/calendar?year=2027"))
        .bearer_auth(app.token(Role::Analyst, None))
        .send()
        .await
        .unwrap();
    let read = linkage_e2e::TestApp::answer(read).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["calendar"], "calendar-v8");
    assert_eq!(
        read.body["years"],
        json!([2020, 2021, 2022, 2023, 2024, 2025, 2026, 2027])
    );
    assert_eq!(read.body["year"]["holidays"], json!(["2027-01-01"]));
}

#[tokio::test]
async fn a_channel_policy_sets_the_deadlines_of_its_appeals() {
    let app = spawn_app().await;
    let admin = app.token(Role::Admin, None);
    let policy = |contact_minutes: u32| {
        json!({
            "scope": {"channel": "12345"},
            "policy": {
                "contact_minutes": contact_minutes, "feedback_working_days": 2,
                "resolution_working_days": 5, "rework_working_days": 3, "max_extensions": 1,
                "max_extension_working_days": 5, "supervision_working_days": 2
            },
            "reason": "区政府办公室关于12345热线办理时限的通知"
        })
    };
    // Out-of-range terms and unknown fields are refused and record nothing.
    let before = app.total_events().await;
    let a = app
        .post("/api/v1/sla-policies", &admin, &policy(0), None)
        .await;
    a.assert_problem(422, "invalid-field");
    let mut unknown = policy(30);
    unknown["policy"]["contact_hours"] = json!(2);
    assert_eq!(
        app.post("/api/v1/sla-policies", &admin, &unknown, None)
            .await
            .status,
        422
    );
    assert_eq!(app.total_events().await, before);

    let set = app
        .post("/api/v1/sla-policies", &admin, &policy(30), None)
        .await;
    assert_eq!(set.status, 201, "{}", set.body);
    // The sample appeal is a 12345 one, assigned Mon 2026-03-02 09:00 local: contact within
    // 30 minutes; feedback 2 working days (Tue, Wed → 24:00 Wed 03-04); resolution 5 (→ Mon 03-09).
    let id = app.file_appeal().await;
    app.command_ok(
        &id,
        "assign",
        &app.token(Role::Dispatcher, None),
        json!({"lead": "market-supervision"}),
    )
    .await;
    let payload: serde_json::Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_id = $1 AND event_type = 'AppealAssigned'",
    )
    .bind(&id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(payload["deadlines"]["contact_due"], "2026-03-02T01:30:00Z");
    assert_eq!(payload["deadlines"]["feedback_due"], "2026-03-04T16:00:00Z");
    assert_eq!(
        payload["deadlines"]["resolution_due"],
        "2026-03-09T16:00:00Z"
    );
    assert_eq!(payload["policy"]["label"], "channel=12345,category=*@v8");

    let read = app
        .http
        .get(app.url("/api/v1/sla-policies"))
        .bearer_auth(app.token(Role::Handler, Some("market-supervision")))
        .send()
        .await
        .unwrap();
    let read = linkage_e2e::TestApp::answer(read).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["policies"][0]["policy"]["contact_minutes"], 30);
}

#[tokio::test]
async fn a_date_correction_needs_a_reason_and_a_real_change() {
    let app = spawn_app().await;
    let admin = app.token(Role::Admin, None);
    let before = app.total_events().await;
    // Sat 2026-03-07 is already a day off.
    let a = app
        .post(
            "/api/v1/calendar/corrections",
            &admin,
            &json!({"date": "2026-03-07", "working": false, "reason": "typo"}),
            None,
        )
        .await;
    a.assert_problem(409, "rules-conflict");
    let a = app
        .post(
            "/api/v1/calendar/corrections",
            &admin,
            &json!({"date": "2026-13-07", "working": false, "reason": "x"}),
            None,
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(app.total_events().await, before);
    let a = app
        .post(
            "/api/v1/calendar/corrections",
            &admin,
            &json!({"date": "2026-03-09", "working": false, "reason": "台风停工"}),
            None,
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["calendar"], "calendar-v8");
}
