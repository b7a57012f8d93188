//! The access control matrix, cell by cell: every role (and, for handlers, own vs other
//! department) against every route, as documented in docs/access.md. The expectations are read
//! from the document itself, so the document and the behaviour cannot drift apart; this file
//! only knows how to set each route up (the appeal's state and a valid body). A new route is
//! one row in the document and one fixture here. Also: bad tokens are refused everywhere,
//! failed authentications are logged without the token, and phone numbers are masked for the
//! roles that do not call filers.

mod support;

use std::sync::{Arc, Mutex};

use linkage_auth::{COMMAND_ROLES, Role, TokenKeys};
use linkage_e2e::{TestApp, spawn_app};
use serde_json::Value;
use support::*;

#[tokio::test]
async fn every_role_on_every_route_gets_what_docs_access_md_says() {
    let app = spawn_app().await;
    let query = app.spawn_query_api().await;
    let matrix = documented_matrix();

    // Every command of the role matrix has a row.
    for (command, _) in COMMAND_ROLES {
        let path = match *command {
            "file" => "/api/v1/appeals".to_owned(),
            "style-evaluation" => "/api/v1/style-evaluations".to_owned(),
            "set-assessment-policy" => "/api/v1/assessment-policy".to_owned(),
            "publish-calendar-year" => "/api/v1/calendar/years".to_owned(),
            "correct-calendar-date" => "/api/v1/calendar/corrections".to_owned(),
            "set-sla-policy" => "/api/v1/sla-policies".to_owned(),
            appeal_command => format!("/api/v1/appeals/{{id}}/{appeal_command}"),
        };
        assert!(
            matrix
                .iter()
                .any(|r| r.api == Api::Command && r.method == "POST" && r.path == path),
            "docs/access.md has no row for the command {command}"
        );
    }

    // The reads share one appeal, assigned to OWN with CO_HANDLER, projected into the ledger.
    let read_appeal = prepare(&app, Given::Assigned).await.expect("appeal");
    project(&app).await;

    let original = app.file_appeal().await;
    let mut checked = 0;
    for row in &matrix {
        let fixture = fixture(row.api, &row.method, &row.path).unwrap_or_else(|| {
            panic!(
                "no fixture for {:?} {} {}: add one to tests/e2e/tests/access.rs",
                row.api, row.method, row.path
            )
        });
        let body: Value =
            serde_json::from_str(&fixture.body.to_string().replace("{original}", &original))
                .expect("body");
        for (caller, allowed) in &row.cells {
            let id = match row.api {
                Api::Command => prepare(&app, fixture.given).await,
                Api::Query => Some(read_appeal.clone()),
            };
            let path = row.path.replace("{id}", id.as_deref().unwrap_or("")) + fixture.query;
            let addr = if row.api == Api::Command {
                app.addr
            } else {
                query
            };
            let before = app.total_events().await;
            let token = caller.token(&app);
            let a = send(&app, addr, &row.method, &path, token.as_deref(), &body).await;
            let cell = format!("{} {} as {caller:?}", row.method, row.path);
            if *allowed {
                let ok = match fixture.expect {
                    Expect::Success => (200..300).contains(&a.status),
                    Expect::Authorized => ![401, 403].contains(&a.status) && a.status < 500,
                };
                assert!(ok, "{cell}: documented ✓, got {} {}", a.status, a.body);
                if row.api == Api::Query && row.path == "/api/v1/ledger" {
                    // Handlers read only their own department's appeals.
                    let listed = a.body["items"]
                        .as_array()
                        .expect("ledger items")
                        .iter()
                        .any(|i| i["appeal_id"] == read_appeal.as_str());
                    assert_eq!(
                        listed,
                        *caller != Caller::HandlerOther,
                        "{cell}: department scope of the ledger: {}",
                        a.body
                    );
                }
            } else {
                match caller {
                    Caller::NoToken => a.assert_problem(401, "unauthenticated"),
                    _ => a.assert_problem(403, "forbidden"),
                }
                assert_eq!(
                    app.total_events().await,
                    before,
                    "{cell}: a refused request recorded events"
                );
            }
            checked += 1;
        }
    }
    eprintln!(
        "access matrix: {} routes, {checked} cells checked",
        matrix.len()
    );
    assert_eq!(checked, matrix.len() * (Role::ALL.len() + 2));
}

/// Tokens that must never get in: expired, malformed, wrongly signed, `alg: none`, a handler
/// without a department, a scheme other than Bearer.
fn bad_tokens(app: &TestApp) -> Vec<(&'static str, String)> {
    let now = chrono::Utc::now();
    let expired = app
        .keys
        .issue(
            "late",
            Role::Admin,
            None,
            now - chrono::Duration::hours(3),
            chrono::Duration::hours(1),
        )
        .expect("token");
    let forged = TokenKeys::hs256(b"not the server's secret, but long enough")
        .expect("key")
        .issue(
            "mallory",
            Role::Admin,
            None,
            now,
            chrono::Duration::hours(1),
        )
        .expect("token");
    // {"alg":"none","typ":"JWT"} . {"sub":"a","role":"admin","exp":9999999999} . (no signature)
    let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwicm9sZSI6ImFkbWluIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
    // The same claims with the server's own signature part of another token glued on.
    let spliced = {
        let good = app.token(Role::Analyst, None);
        let signature = good.rsplit('.').next().expect("signature").to_owned();
        format!("{}{signature}", unsigned)
    };
    vec![
        ("expired", expired),
        ("wrongly signed", forged),
        ("alg none", unsigned.to_owned()),
        ("alg none with a stolen signature", spliced),
        ("malformed", "not.a.jwt".to_owned()),
        ("garbage", "🙂".repeat(10)),
    ]
}

#[tokio::test]
async fn expired_malformed_forged_and_unsigned_tokens_are_refused_on_every_route_and_logged_without_the_token()
 {
    let logs = capture_logs();
    let app = spawn_app().await;
    let query = app.spawn_query_api().await;
    let id = prepare(&app, Given::Assigned).await.expect("appeal");
    let before = app.total_events().await;
    let bad = bad_tokens(&app);
    let mut refused = 0;
    for row in documented_matrix() {
        // Public routes accept anyone.
        if row
            .cells
            .iter()
            .any(|(c, allowed)| *c == Caller::NoToken && *allowed)
        {
            continue;
        }
        let fixture = fixture(row.api, &row.method, &row.path).expect("fixture");
        let body = fixture.body;
        let path = row.path.replace("{id}", &id) + fixture.query;
        let addr = if row.api == Api::Command {
            app.addr
        } else {
            query
        };
        for (what, token) in &bad {
            let a = send(&app, addr, &row.method, &path, Some(token), &body).await;
            assert_eq!(
                a.status, 401,
                "{} {path} with a {what} token: {}",
                row.method, a.body
            );
            a.assert_problem(401, "unauthenticated");
            assert_eq!(a.headers["www-authenticate"], "Bearer");
            refused += 1;
        }
        // Not a bearer token at all.
        let a = TestApp::answer(
            app.http
                .request(
                    row.method.parse().expect("method"),
                    format!("http://{addr}{path}"),
                )
                .header("Authorization", "Basic YWRtaW46YWRtaW4=")
                .send()
                .await
                .expect("request"),
        )
        .await;
        a.assert_problem(401, "unauthenticated");
    }
    assert!(refused > 0);
    assert_eq!(app.total_events().await, before, "nothing recorded");

    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logged.contains("authentication failed"),
        "failed authentications are logged: {logged}"
    );
    for (what, token) in &bad {
        // Every part of the token that could be replayed or read (header, claims, signature).
        for part in token.split('.').filter(|p| p.len() >= 8) {
            assert!(
                !logged.contains(part),
                "the log carries (part of) the {what} token"
            );
        }
    }
    assert!(
        !logged.contains("YWRtaW46YWRtaW4="),
        "the log carries Basic credentials"
    );
}

#[tokio::test]
async fn phone_numbers_are_masked_for_roles_that_do_not_call_filers() {
    let app = spawn_app().await;
    let query = app.spawn_query_api().await;
    let id = prepare(&app, Given::Assigned).await.expect("appeal");
    project(&app).await;
    let full = "13800130000";
    let masked = "138****0000";
    let cases = [
        (Caller::Role(Role::Dispatcher), full),
        (Caller::Role(Role::Supervisor), full),
        (Caller::Role(Role::Evaluator), full),
        (Caller::Role(Role::Analyst), masked),
        (Caller::Role(Role::Auditor), masked),
        (Caller::HandlerOwn, masked),
    ];
    for (caller, phone) in cases {
        let token = caller.token(&app);
        let detail = send(
            &app,
            query,
            "GET",
            &format!("/api/v1/appeals/{id}"),
            token.as_deref(),
            &Value::Null,
        )
        .await;
        assert_eq!(detail.status, 200, "{caller:?}: {}", detail.body);
        let ledger = send(
            &app,
            query,
            "GET",
            "/api/v1/ledger",
            token.as_deref(),
            &Value::Null,
        )
        .await;
        for answer in [&detail, &ledger] {
            let text = answer.body.to_string();
            assert!(text.contains(phone), "{caller:?} sees {phone}: {text}");
            if phone == masked {
                assert!(
                    !text.contains(full),
                    "{caller:?} must not see the full number"
                );
            }
        }
    }
}

/// Collects every log line of this test process (nextest runs each test in its own process).
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .try_init();
    buffer
}
