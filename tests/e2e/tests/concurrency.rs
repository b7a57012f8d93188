//! Concurrency: 100 conflicting commands racing on one appeal end in a legal state, every
//! accepted event durable and acknowledged once, every refusal a 409 (or a 403 for a handler
//! whose department lost the appeal to a transfer that won); idempotent retries racing each
//! other record once and all get the first answer.

mod support;

use std::collections::{HashMap, HashSet};

use futures::future::join_all;
use linkage_auth::Role;
use linkage_e2e::{Answer, spawn_app};
use linkage_store::verify::verify_stream;
use serde_json::{Value, json};
use support::*;

fn event_ids(a: &Answer) -> Vec<String> {
    a.body["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_hundred_conflicting_commands_on_one_appeal_end_in_a_legal_state() {
    let app = spawn_app().await;
    let id = prepare(&app, Given::Contacted).await.expect("appeal");
    let setup: Vec<String> = sqlx::query_scalar(
        "SELECT event_id::text FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&app.db.pool)
    .await
    .expect("setup events");

    let handler = app.token(Role::Handler, Some(OWN));
    let dispatcher = app.token(Role::Dispatcher, None);
    let supervisor = app.token(Role::Supervisor, None);
    let evaluator = app.token(Role::Evaluator, None);
    // (command, token, body, how many)
    let mix: [(&str, &str, Value, usize); 8] = [
        (
            "resolve",
            &handler,
            json!({"outcome": "resolved", "text": "已协调解决"}),
            20,
        ),
        (
            "transfer",
            &dispatcher,
            json!({"lead": OTHER, "reason": "属住建部门职责"}),
            15,
        ),
        (
            "return-visit",
            &evaluator,
            json!({"reached": true, "solved": true, "satisfaction": "satisfied"}),
            15,
        ),
        ("close", &supervisor, json!({"note": "已回访满意"}), 10),
        ("supervise", &supervisor, json!({"note": "请加快办理"}), 10),
        (
            "withdraw",
            &dispatcher,
            json!({"reason": "诉求人来电撤回"}),
            10,
        ),
        ("feedback", &handler, json!({"text": "已约定上门核实"}), 10),
        (
            "request-extension",
            &handler,
            json!({"working_days": 3, "reason": "需第三方检测"}),
            10,
        ),
    ];
    let handler_token = handler.as_str();
    let requests: Vec<(&str, bool, String, &Value)> = mix
        .iter()
        .flat_map(|(command, token, body, n)| {
            (0..*n).map(move |_| (*command, *token == handler_token, token.to_string(), body))
        })
        .collect();
    assert_eq!(requests.len(), 100);
    // Interleave the kinds, so every kind races every other from the start.
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|i| (i * 37) % requests.len());
    let (app, requests) = (&app, &requests);
    let answers = join_all(order.iter().enumerate().map(|(n, &i)| {
        let (command, _, token, body) = &requests[i];
        let key = format!("race-{n}");
        let path = format!("/api/v1/appeals/{id}/{command}");
        async move { (i, app.post(&path, token, body, Some(&key)).await) }
    }))
    .await;

    let transfer_won = answers
        .iter()
        .any(|(i, a)| requests[*i].0 == "transfer" && a.status == 200);
    let mut accepted: Vec<String> = Vec::new();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (i, a) in &answers {
        let (command, by_handler, _, _) = requests[*i];
        *by_status.entry(a.status).or_default() += 1;
        match a.status {
            200 => accepted.extend(event_ids(a)),
            409 => assert!(
                [
                    "/problems/illegal-transition",
                    "/problems/concurrent-modification"
                ]
                .contains(&a.body["type"].as_str().unwrap_or("")),
                "{command}: {}",
                a.body
            ),
            403 if by_handler && transfer_won => a.assert_problem(403, "forbidden"),
            other => panic!("{command}: unexpected {other} {}", a.body),
        }
    }
    assert!(
        by_status.get(&200).copied().unwrap_or(0) >= 1,
        "{by_status:?}"
    );
    assert!(
        by_status.get(&409).copied().unwrap_or(0) >= 1,
        "{by_status:?}"
    );

    // Durable and acknowledged exactly once: the stream is the setup plus the accepted events.
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_id::text, event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&app.db.pool)
    .await
    .expect("events");
    let stored_ids: Vec<&String> = stored.iter().map(|(e, _)| e).collect();
    let expected: HashSet<&String> = setup.iter().chain(&accepted).collect();
    assert_eq!(
        expected.len(),
        setup.len() + accepted.len(),
        "an event acknowledged twice"
    );
    assert_eq!(stored_ids.iter().copied().collect::<HashSet<_>>(), expected);
    assert_eq!(stored_ids.len(), expected.len());
    // Contiguous, chained, and nothing after the appeal ended.
    assert_eq!(
        verify_stream(&app.db.pool, "appeal", &id)
            .await
            .expect("verify"),
        Ok(stored.len())
    );
    let terminal = ["AppealClosed", "AppealWithdrawn", "AppealMarkedDuplicate"];
    if let Some(end) = stored
        .iter()
        .position(|(_, t)| terminal.contains(&t.as_str()))
    {
        assert_eq!(
            end,
            stored.len() - 1,
            "events after {}: {stored:?}",
            stored[end].1
        );
    }
    // The state the last accepted command answered is the state the ledger rebuilds to.
    let last = answers
        .iter()
        .filter(|(_, a)| a.status == 200)
        .max_by_key(|(_, a)| a.body["events"][0]["sequence"].as_i64())
        .map(|(_, a)| a.body["status"].clone())
        .expect("an accepted command");
    project(app).await;
    let status: String = sqlx::query_scalar("SELECT status FROM ledger WHERE appeal_id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.db.pool)
        .await
        .expect("ledger row");
    assert_eq!(Value::from(status), last);
    eprintln!(
        "race on one appeal: answers {by_status:?}, events {}",
        stored.len()
    );
}

#[tokio::test]
async fn idempotent_retries_racing_each_other_record_once() {
    let app = spawn_app().await;
    let handler = app.token(Role::Handler, Some(OWN));
    let dispatcher = app.token(Role::Dispatcher, None);
    // Ten appeals; for each, ten copies of one contact command race with one key, and ten
    // filings race with one key.
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(prepare(&app, Given::Assigned).await.expect("appeal"));
    }
    let before = app.total_events().await;
    let body = json!({"method": "phone", "note": "已电话联系"});
    let filing = linkage_e2e::sample_appeal();
    // (path, token, body, key)
    let mut racing: Vec<(String, &str, &Value, String)> = Vec::new();
    for id in &ids {
        for _ in 0..10 {
            let path = format!("/api/v1/appeals/{id}/contact");
            racing.push((path, &handler, &body, format!("contact-{id}")));
        }
    }
    for _ in 0..10 {
        racing.push((
            "/api/v1/appeals".into(),
            &dispatcher,
            &filing,
            "file-once".into(),
        ));
    }
    let app = &app;
    let answers = join_all(racing.iter().map(|(path, token, body, key)| async move {
        (key.clone(), app.post(path, token, body, Some(key)).await)
    }))
    .await;

    let mut first: HashMap<String, Value> = HashMap::new();
    for (key, a) in &answers {
        match a.status {
            // A retry racing its first attempt gets the first answer (the key is looked up
            // again when the aggregate refuses).
            200 | 201 => {
                let seen = first.entry(key.clone()).or_insert_with(|| a.body.clone());
                assert_eq!(&a.body, seen, "{key}: a retry got another answer");
            }
            // A retry that arrives while the first attempt still runs may be told so.
            409 if a.body["type"] == "/problems/idempotency-key-in-use" => {}
            other => panic!("{key}: unexpected {other} {}", a.body),
        }
    }
    assert_eq!(first.len(), 11, "every key got an answer");
    // After the race, every retry gets the first answer again and records nothing.
    for (path, token, body, key) in racing.iter().step_by(10) {
        let again = app.post(path, token, body, Some(key)).await;
        assert_eq!(
            Some(&again.body),
            first.get(key),
            "{key}: the replay differs"
        );
        assert_eq!(again.headers["idempotent-replayed"], "true");
    }
    // One contact per appeal and one filing: 11 events.
    assert_eq!(app.total_events().await - before, 11);
    for id in &ids {
        let contacts: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'ContactRecorded'",
        )
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
        assert_eq!(contacts, 1, "{id}");
    }

    // The same key with different bodies, racing: one is recorded; the others are told the key
    // was used for another request (422) or is in use (409); nothing else is recorded.
    let id = prepare(app, Given::Assigned).await.expect("appeal");
    let before = app.total_events().await;
    let path = format!("/api/v1/appeals/{id}/feedback");
    let (path, handler) = (&path, &handler);
    let answers = join_all((0..10).map(|i| async move {
        let body = json!({"text": format!("第{i}次反馈")});
        app.post(path, handler, &body, Some("one-key")).await
    }))
    .await;
    let won = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(won, 1, "one attempt wins");
    let bodies: HashSet<String> = answers
        .iter()
        .filter(|a| a.status == 200)
        .map(|a| a.body.to_string())
        .collect();
    assert_eq!(bodies.len(), 1, "all winners are the same first answer");
    for a in answers.iter().filter(|a| a.status != 200) {
        match (a.status, a.body["type"].as_str()) {
            (422, _) => a.assert_problem(422, "invalid-field"),
            _ => a.assert_problem(409, "idempotency-key-in-use"),
        }
    }
    assert_eq!(app.total_events().await - before, 1);
}
