//! The command API end to end: HTTP in, events in Postgres out.

use futures::future::join_all;
use linkage_auth::Role;
use linkage_e2e::{sample_appeal, spawn_app};
use linkage_store::verify::{ChainBreak, verify_stream};
use serde_json::{Value, json};
use sqlx::Row;

const MARKET: &str = "market-supervision";
const TAX: &str = "tax";

#[tokio::test]
async fn a_full_lifecycle_is_recorded_with_positions_tx_ids_and_a_verifying_hash_chain() {
    let app = spawn_app().await;
    let dispatcher = app.token(Role::Dispatcher, None);
    let handler = app.token(Role::Handler, Some(MARKET));
    let supervisor = app.token(Role::Supervisor, None);
    let evaluator = app.token(Role::Evaluator, None);

    let filed = app
        .post("/api/v1/appeals", &dispatcher, &sample_appeal(), None)
        .await;
    assert_eq!(filed.status, 201, "{}", filed.body);
    let id = filed.body["appeal_id"].as_str().unwrap().to_owned();
    assert_eq!(
        filed.headers["location"].to_str().unwrap(),
        format!("/api/v1/appeals/{id}")
    );
    // The first appeal of 2026 in a fresh database.
    assert_eq!(filed.body["tracking_number"], "LK-2026-000001");
    assert_eq!(filed.body["status"], "filed");
    assert_eq!(filed.body["events"][0]["event_type"], "AppealFiled");

    let assigned = app
        .command_ok(
            &id,
            "assign",
            &dispatcher,
            json!({"lead": MARKET, "co_handlers": [TAX]}),
        )
        .await;
    assert_eq!(assigned.body["status"], "assigned");
    app.command_ok(
        &id,
        "contact",
        &handler,
        json!({"method": "phone", "note": "已电话联系王经理"}),
    )
    .await;
    app.command_ok(
        &id,
        "feedback",
        &handler,
        json!({"text": "已约定周三上门核实"}),
    )
    .await;
    app.command_ok(
        &id,
        "resolve",
        &handler,
        json!({"outcome": "resolved", "text": "已协调合并检查，后续联合执法一次到位"}),
    )
    .await;
    app.command_ok(
        &id,
        "return-visit",
        &evaluator,
        json!({"reached": true, "solved": true, "satisfaction": "satisfied", "comment": "满意"}),
    )
    .await;
    let closed = app.command_ok(&id, "close", &supervisor, json!({})).await;
    assert_eq!(closed.body["status"], "closed");

    let rows = sqlx::query(
        "SELECT sequence, event_type, global_position, tx_id::text AS tx_id, payload, metadata \
         FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    let types: Vec<String> = rows.iter().map(|r| r.get("event_type")).collect();
    assert_eq!(
        types,
        [
            "AppealFiled",
            "AppealAssigned",
            "ContactRecorded",
            "InitialFeedbackGiven",
            "AppealResolved",
            "ReturnVisitRecorded",
            "AppealClosed"
        ]
    );
    let positions: Vec<i64> = rows.iter().map(|r| r.get("global_position")).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    for row in &rows {
        let tx: String = row.get("tx_id");
        assert!(tx.parse::<u64>().unwrap() > 0);
    }
    // Deadlines are stored in the assignment event. Assigned Mon 2026-03-02 09:00 local:
    // contact +2 clock hours; feedback = end of the next working day (Tue 03-03 24:00 local);
    // resolution = end of the 10th working day after Mon 03-02 (no holidays in March 2026):
    // Tue 3, Wed 4, Thu 5, Fri 6, Mon 9 … Fri 13, Mon 16 → 03-16 24:00 local = 16:00 UTC.
    let deadlines = &rows[1].get::<Value, _>("payload")["deadlines"];
    assert_eq!(deadlines["contact_due"], "2026-03-02T03:00:00Z");
    assert_eq!(deadlines["feedback_due"], "2026-03-03T16:00:00Z");
    assert_eq!(deadlines["resolution_due"], "2026-03-16T16:00:00Z");
    assert_eq!(
        rows[1].get::<Value, _>("payload")["calendar"],
        "calendar-v7"
    );

    let metadata: Value = rows[2].get("metadata");
    assert_eq!(metadata["actor"], format!("handler-{MARKET}"));
    assert_eq!(metadata["role"], "handler");
    assert_eq!(metadata["department"], MARKET);
    assert_eq!(metadata["command"], "contact");
    assert!(!metadata["request_id"].as_str().unwrap().is_empty());
    assert!(!metadata["correlation_id"].as_str().unwrap().is_empty());

    assert_eq!(
        verify_stream(&app.db.pool, "appeal", &id).await.unwrap(),
        Ok(7)
    );

    // Tampering with a stored payload is detected at that event.
    sqlx::query(
        "UPDATE events SET payload = jsonb_set(payload::jsonb, '{text}', '\"没有处理\"') \
         WHERE aggregate_id = $1 AND sequence = 5",
    )
    .bind(&id)
    .execute(&app.db.pool)
    .await
    .unwrap();
    assert!(matches!(
        verify_stream(&app.db.pool, "appeal", &id).await.unwrap(),
        Err(ChainBreak::Tampered { sequence: 5, .. })
    ));
}

#[tokio::test]
async fn a_handler_of_another_department_is_refused_and_nothing_is_recorded() {
    let app = spawn_app().await;
    let id = app.file_appeal().await;
    app.command_ok(
        &id,
        "assign",
        &app.token(Role::Dispatcher, None),
        json!({"lead": MARKET}),
    )
    .await;
    let before = app.event_count(&id).await;
    let other = app
        .post(
            &format!("/api/v1/appeals/{id}/contact"),
            &app.token(Role::Handler, Some(TAX)),
            &json!({"method": "on_site"}),
            None,
        )
        .await;
    other.assert_problem(403, "forbidden");
    assert!(other.body["detail"].as_str().unwrap().contains("tax"));
    assert_eq!(app.event_count(&id).await, before);

    // A role that may not send the command at all.
    let analyst = app
        .post(
            &format!("/api/v1/appeals/{id}/resolve"),
            &app.token(Role::Analyst, None),
            &json!({"outcome": "resolved", "text": "x"}),
            None,
        )
        .await;
    analyst.assert_problem(403, "forbidden");
    assert_eq!(app.event_count(&id).await, before);
}

#[tokio::test]
async fn an_illegal_transition_is_409_problem_json() {
    let app = spawn_app().await;
    let id = app.file_appeal().await;
    // Resolving an appeal nobody was assigned: the lead check fails first, so use a supervisor
    // command that only the state forbids.
    let close = app
        .post(
            &format!("/api/v1/appeals/{id}/close"),
            &app.token(Role::Supervisor, None),
            &json!({}),
            None,
        )
        .await;
    close.assert_problem(409, "illegal-transition");
    assert!(
        close.body["detail"].as_str().unwrap().contains("filed"),
        "{}",
        close.body
    );
    assert_eq!(app.event_count(&id).await, 1);
}

#[tokio::test]
async fn a_retried_idempotent_request_records_nothing_new_and_gets_the_first_answer() {
    let app = spawn_app().await;
    let dispatcher = app.token(Role::Dispatcher, None);
    let first = app
        .post(
            "/api/v1/appeals",
            &dispatcher,
            &sample_appeal(),
            Some("file-0001"),
        )
        .await;
    assert_eq!(first.status, 201);
    let again = app
        .post(
            "/api/v1/appeals",
            &dispatcher,
            &sample_appeal(),
            Some("file-0001"),
        )
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(app.appeal_events().await, 1);

    // Same key, different body.
    let mut other = sample_appeal();
    other["town"] = json!("城东街道");
    let mismatch = app
        .post("/api/v1/appeals", &dispatcher, &other, Some("file-0001"))
        .await;
    mismatch.assert_problem(422, "invalid-field");
    assert_eq!(mismatch.body["field"], "Idempotency-Key");
    assert_eq!(app.appeal_events().await, 1);

    // Keys belong to their caller: another dispatcher may use the same key.
    let someone_else = app
        .keys
        .issue(
            "dispatcher-2",
            Role::Dispatcher,
            None,
            chrono::Utc::now(),
            chrono::Duration::hours(1),
        )
        .unwrap();
    let theirs = app
        .post(
            "/api/v1/appeals",
            &someone_else,
            &sample_appeal(),
            Some("file-0001"),
        )
        .await;
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.body["appeal_id"], first.body["appeal_id"]);

    // A command retried after it succeeded is not refused as an illegal transition.
    let id = first.body["appeal_id"].as_str().unwrap();
    let path = format!("/api/v1/appeals/{id}/assign");
    let body = json!({"lead": MARKET});
    let a1 = app.post(&path, &dispatcher, &body, Some("assign-1")).await;
    let a2 = app.post(&path, &dispatcher, &body, Some("assign-1")).await;
    assert_eq!((a1.status, a2.status), (200, 200));
    assert_eq!(a1.body, a2.body);
    assert_eq!(app.event_count(id).await, 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_record_once() {
    let app = spawn_app().await;
    let dispatcher = app.token(Role::Dispatcher, None);
    let body = sample_appeal();
    let answers = join_all(
        (0..12).map(|_| app.post("/api/v1/appeals", &dispatcher, &body, Some("racing-key"))),
    )
    .await;
    for a in &answers {
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!(a.body, answers[0].body);
    }
    assert_eq!(app.appeal_events().await, 1);
}

#[tokio::test]
async fn concurrent_conflicting_commands_leave_one_winner_and_409s() {
    let app = spawn_app().await;
    let id = app.file_appeal().await;
    app.command_ok(
        &id,
        "assign",
        &app.token(Role::Dispatcher, None),
        json!({"lead": MARKET, "co_handlers": [TAX]}),
    )
    .await;
    let market = app.token(Role::Handler, Some(MARKET));
    let tax = app.token(Role::Handler, Some(TAX));
    let path = format!("/api/v1/appeals/{id}/contact");
    let body = json!({"method": "phone"});
    let answers = join_all((0..20).map(|i| {
        let token = if i % 2 == 0 { &market } else { &tax };
        app.post(&path, token, &body, None)
    }))
    .await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 1, "exactly one contact is recorded");
    for a in answers.iter().filter(|a| a.status != 200) {
        a.assert_problem(409, "illegal-transition");
    }
    assert_eq!(app.event_count(&id).await, 3);
    assert_eq!(
        verify_stream(&app.db.pool, "appeal", &id).await.unwrap(),
        Ok(3)
    );
}

#[tokio::test]
async fn bad_requests_get_clear_problems_and_change_nothing() {
    let app = spawn_app().await;
    let dispatcher = app.token(Role::Dispatcher, None);
    let url = app.url("/api/v1/appeals");

    let no_token = app
        .http
        .post(&url)
        .json(&sample_appeal())
        .send()
        .await
        .unwrap();
    let a = linkage_e2e::TestApp::answer(no_token).await;
    a.assert_problem(401, "unauthenticated");

    let garbage_token = app
        .post("/api/v1/appeals", "not-a-jwt", &sample_appeal(), None)
        .await;
    garbage_token.assert_problem(401, "unauthenticated");

    let malformed = app
        .http
        .post(&url)
        .bearer_auth(&dispatcher)
        .header("content-type", "application/json")
        .body("{\"channel\": ")
        .send()
        .await
        .unwrap();
    linkage_e2e::TestApp::answer(malformed)
        .await
        .assert_problem(400, "malformed-request");

    let mut bad_phone = sample_appeal();
    bad_phone["filer"]["phone"] = json!("12345");
    let a = app
        .post("/api/v1/appeals", &dispatcher, &bad_phone, None)
        .await;
    a.assert_problem(422, "invalid-field");
    assert_eq!(a.body["field"], "filer.phone");

    let mut unknown_field = sample_appeal();
    unknown_field["priority"] = json!("high");
    let a = app
        .post("/api/v1/appeals", &dispatcher, &unknown_field, None)
        .await;
    a.assert_problem(422, "invalid-field");

    let mut bad_channel = sample_appeal();
    bad_channel["channel"] = json!("fax");
    let a = app
        .post("/api/v1/appeals", &dispatcher, &bad_channel, None)
        .await;
    a.assert_problem(422, "invalid-field");
    assert_eq!(a.body["field"], "channel");

    let mut huge = sample_appeal();
    huge["description"] = json!("诉".repeat(40_000));
    let a = app.post("/api/v1/appeals", &dispatcher, &huge, None).await;
    a.assert_problem(413, "payload-too-large");

    let not_json = app
        .http
        .post(&url)
        .bearer_auth(&dispatcher)
        .header("content-type", "text/plain")
        .body("channel=110")
        .send()
        .await
        .unwrap();
    linkage_e2e::TestApp::answer(not_json)
        .await
        .assert_problem(415, "unsupported-media-type");

    let unknown_appeal = app
        .post(
            "/api/v1/appeals/0190d4a8-0000-7000-8000-000000000000/assign",
            &dispatcher,
            &json!({"lead": MARKET}),
            None,
        )
        .await;
    unknown_appeal.assert_problem(404, "not-found");
    let not_an_id = app
        .post(
            "/api/v1/appeals/LK-2026-1/assign",
            &dispatcher,
            &json!({"lead": MARKET}),
            None,
        )
        .await;
    not_an_id.assert_problem(404, "not-found");

    let no_route = app
        .post("/api/v1/nothing", &dispatcher, &json!({}), None)
        .await;
    no_route.assert_problem(404, "not-found");

    assert_eq!(app.appeal_events().await, 0);
    let counters: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(counters, 0);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready =
        linkage_e2e::TestApp::answer(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["checks"]["postgres"]["ok"], true);
    assert_eq!(ready.body["checks"]["nats"]["ok"], true);
    // No relay runs in this test: every event is unpublished (the seeded SLA rules and the
    // filed appeal's).
    let _ = app.file_appeal().await;
    let unpublished = app.total_events().await;
    let ready =
        linkage_e2e::TestApp::answer(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        ready.body["relay_lag"]["events"], unpublished,
        "{}",
        ready.body
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("linkage_relay_lag_events {unpublished}\n")),
        "{metrics}"
    );
    assert!(metrics.contains("linkage_relay_lag_seconds "), "{metrics}");
}
