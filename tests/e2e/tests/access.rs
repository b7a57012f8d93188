//! The access control matrix, cell by cell: every role (and, for handlers, own vs other
//! department) against every route, as documented in docs/access.md. The expectations are read
//! from the document itself, so the document and the behaviour cannot drift apart; this file
//! only knows how to set each route up (the appeal's state and a valid body). A new route is
//! one row in the document and one fixture here. Also: bad tokens are refused everywhere,
//! failed authentications are logged without the token, and phone numbers are masked for the
//! roles that do not call filers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use linkage_auth::{COMMAND_ROLES, Role, TokenKeys};
use linkage_e2e::{Answer, TestApp, monday_morning, sample_appeal, spawn_app};
use serde_json::{Value, json};

const OWN: &str = "market-supervision";
const CO_HANDLER: &str = "tax";
const OTHER: &str = "housing";

/// A column of the matrix: who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Role(Role),
    /// A handler of the appeal's lead department.
    HandlerOwn,
    /// A handler of a department not involved in the appeal.
    HandlerOther,
    NoToken,
}

impl Caller {
    fn from_header(h: &str) -> Self {
        match h {
            "handler, own department" => Caller::HandlerOwn,
            "handler, other department" => Caller::HandlerOther,
            "no token" => Caller::NoToken,
            other => Caller::Role(
                other
                    .parse()
                    .unwrap_or_else(|e| panic!("docs/access.md column {other:?}: {e}")),
            ),
        }
    }

    fn token(&self, app: &TestApp) -> Option<String> {
        match self {
            Caller::Role(role) => Some(app.token(*role, None)),
            Caller::HandlerOwn => Some(app.token(Role::Handler, Some(OWN))),
            Caller::HandlerOther => Some(app.token(Role::Handler, Some(OTHER))),
            Caller::NoToken => None,
        }
    }
}

/// One row of the documented matrix.
#[derive(Debug)]
struct Row {
    api: Api,
    method: String,
    path: String,
    cells: Vec<(Caller, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Command,
    Query,
}

/// The table between the `access-matrix` markers of docs/access.md.
fn documented_matrix() -> Vec<Row> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/access.md");
    let doc = std::fs::read_to_string(path).expect("docs/access.md");
    let table = doc
        .split("<!-- access-matrix:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- access-matrix:end -->").next())
        .expect("docs/access.md has the access-matrix markers");
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().trim_matches('`').to_owned())
            .collect()
    };
    let mut lines = table.lines().filter(|l| l.trim_start().starts_with('|'));
    let header = cells(lines.next().expect("a header row"));
    assert_eq!(header[..2], ["API", "route"], "docs/access.md header");
    let callers: Vec<Caller> = header[2..].iter().map(|h| Caller::from_header(h)).collect();
    let mut rows = Vec::new();
    for line in lines.skip(1) {
        let c = cells(line);
        let api = match c[0].as_str() {
            "command" => Api::Command,
            "query" => Api::Query,
            other => panic!("docs/access.md: unknown API {other:?}"),
        };
        let (method, path) = c[1].split_once(' ').expect("`METHOD /path`");
        let allowed = c[2..].iter().map(|cell| match cell.chars().next() {
            Some('✓') => true,
            Some('✗') => false,
            _ => panic!("docs/access.md {}: cell {cell:?} is neither ✓ nor ✗", c[1]),
        });
        assert_eq!(c.len() - 2, callers.len(), "docs/access.md {}: cells", c[1]);
        rows.push(Row {
            api,
            method: method.to_owned(),
            path: path.to_owned(),
            cells: callers.iter().copied().zip(allowed).collect(),
        });
    }
    rows
}

/// The state an appeal is brought into before a command cell is tried.
#[derive(Debug, Clone, Copy)]
enum Given {
    Nothing,
    Filed,
    Assigned,
    ExtensionRequested,
    /// Assigned, and the lead department has contacted the filer.
    Contacted,
    Resolved,
    ReturnVisited,
    /// Assigned, and the 2-hour contact deadline has passed without contact.
    ContactOverdue,
}

/// What an allowed cell must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 2xx.
    Success,
    /// Past authentication and authorization: neither 401 nor 403 (nor a 5xx); the route may
    /// still refuse the request for what it asks (e.g. 409 when there is nothing to do).
    Authorized,
}

/// How to exercise a route: the state before, a valid body (so that a refusal can only be the
/// role's: bodies are parsed before the role is checked) and a query string. `{original}` in a
/// body is replaced by another appeal's id.
struct Fixture {
    given: Given,
    body: Value,
    query: &'static str,
    expect: Expect,
}

fn fixture(api: Api, method: &str, path: &str) -> Option<Fixture> {
    let Some((given, body)) = appeal_fixture(api, method, path) else {
        return other_fixture(api, method, path);
    };
    Some(Fixture {
        given,
        body,
        query: "",
        expect: Expect::Success,
    })
}

/// The routes outside an appeal's lifecycle.
fn other_fixture(api: Api, method: &str, path: &str) -> Option<Fixture> {
    let success = |given, body: Value, query| Fixture {
        given,
        body,
        query,
        expect: Expect::Success,
    };
    let scores = json!({"service_attitude": 5, "efficiency": 4, "lawful_administration": 4,
                        "integrity": 5, "promise_keeping": 3});
    Some(match (api, method, path) {
        (Api::Command, "POST", "/api/v1/appeals/{id}/recompute-deadlines") => Fixture {
            // Without a calendar change there is nothing to recompute.
            expect: Expect::Authorized,
            ..success(Given::Assigned, json!({"note": "日历更正"}), "")
        },
        (Api::Command, "POST", "/api/v1/style-evaluations") => success(
            Given::Nothing,
            json!({"quarter": "2026-Q1", "department": OWN, "scores": scores}),
            "",
        ),
        (Api::Command, "POST", "/api/v1/assessment-policy") => success(
            Given::Nothing,
            json!({"policy": linkage_domain::assessment::AssessmentPolicy::default(),
                   "reason": "考核委员会决定"}),
            "",
        ),
        (Api::Command, "POST", "/api/v1/calendar/years") => success(
            Given::Nothing,
            json!({"year": 2027, "holidays": ["2027-01-01"], "working_weekends": [],
                   "source": "国办发明电〔2026〕X号"}),
            "",
        ),
        (Api::Command, "POST", "/api/v1/calendar/corrections") => success(
            Given::Nothing,
            json!({"date": "2026-12-21", "working": false, "reason": "区政府通知"}),
            "",
        ),
        (Api::Command, "POST", "/api/v1/sla-policies") => success(
            Given::Nothing,
            json!({"scope": {"channel": "12345"},
                   "policy": {"contact_minutes": 120, "feedback_working_days": 1,
                              "resolution_working_days": 10, "rework_working_days": 5,
                              "max_extensions": 2, "max_extension_working_days": 10,
                              "supervision_working_days": 3},
                   "reason": "区政府办公室关于12345热线办理时限的通知"}),
            "",
        ),
        (Api::Command, "GET", "/api/v1/calendar" | "/api/v1/sla-policies")
        | (Api::Query, "GET", "/api/v1/assessment-policies") => {
            success(Given::Nothing, Value::Null, "")
        }
        (
            Api::Query,
            "GET",
            "/api/v1/alerts" | "/api/v1/audit/events" | "/api/v1/audit/appeals/{id}",
        ) => success(Given::Assigned, Value::Null, ""),
        (Api::Query, "GET", "/api/v1/rates") => {
            success(Given::Nothing, Value::Null, "?month=2026-03")
        }
        (Api::Query, "GET", "/api/v1/style-evaluations") => {
            success(Given::Nothing, Value::Null, "?quarter=2026-Q1")
        }
        (Api::Query, "GET", "/api/v1/rankings") => {
            success(Given::Nothing, Value::Null, "?period=2026-Q1")
        }
        (Api::Query, "GET", "/api/v1/complaint-notices") => {
            success(Given::Nothing, Value::Null, "?period=2026-03")
        }
        _ => return None,
    })
}

/// The appeal commands, the appeal reads and the probes.
fn appeal_fixture(api: Api, method: &str, path: &str) -> Option<(Given, Value)> {
    let command = path.strip_prefix("/api/v1/appeals/{id}/");
    Some(match (api, method, command, path) {
        (Api::Command, "POST", None, "/api/v1/appeals") => (Given::Nothing, sample_appeal()),
        (Api::Command, "POST", Some(command), _) => match command {
            "assign" => (
                Given::Filed,
                json!({"lead": OWN, "co_handlers": [CO_HANDLER]}),
            ),
            "transfer" => (
                Given::Assigned,
                json!({"lead": OTHER, "reason": "属住建部门职责"}),
            ),
            "mark-duplicate" => (Given::Filed, json!({"original": "{original}"})),
            "withdraw" => (Given::Filed, json!({"reason": "诉求人来电撤回"})),
            "decline" => (Given::Assigned, json!({"reason": "不属于本部门职责"})),
            "contact" => (
                Given::Assigned,
                json!({"method": "phone", "note": "已联系"}),
            ),
            "feedback" => (Given::Assigned, json!({"text": "已约定上门核实"})),
            "resolve" => (
                Given::Contacted,
                json!({"outcome": "resolved", "text": "已协调解决"}),
            ),
            "request-extension" => (
                Given::Assigned,
                json!({"working_days": 3, "reason": "需第三方检测"}),
            ),
            "approve-extension" => (Given::ExtensionRequested, json!({"note": "同意"})),
            "reject-extension" => (Given::ExtensionRequested, json!({"reason": "理由不充分"})),
            "rework" => (Given::Resolved, json!({"reason": "答复敷衍"})),
            "supervise" => (Given::Assigned, json!({"note": "请加快办理"})),
            "accountability" => (
                Given::Assigned,
                json!({"department": OWN, "kind": "delay", "note": "超时未联系"}),
            ),
            "close" => (Given::ReturnVisited, json!({"note": "已回访满意"})),
            "return-visit" => (
                Given::Resolved,
                json!({"reached": true, "solved": true, "satisfaction": "satisfied"}),
            ),
            "deadline-missed" => (Given::ContactOverdue, json!({"which": "contact"})),
            _ => return None,
        },
        (_, "GET", _, "/api/v1/ledger" | "/api/v1/appeals/{id}") => (Given::Assigned, Value::Null),
        (_, "GET", _, "/healthz" | "/readyz" | "/metrics") => (Given::Nothing, Value::Null),
        _ => return None,
    })
}

/// Files an appeal and walks it into `given`; returns its id (`None` for `Given::Nothing`).
async fn prepare(app: &TestApp, given: Given) -> Option<String> {
    app.clock.set(monday_morning());
    if matches!(given, Given::Nothing) {
        return None;
    }
    let id = app.file_appeal().await;
    let dispatcher = app.token(Role::Dispatcher, None);
    let handler = app.token(Role::Handler, Some(OWN));
    let evaluator = app.token(Role::Evaluator, None);
    if matches!(given, Given::Filed) {
        return Some(id);
    }
    app.command_ok(
        &id,
        "assign",
        &dispatcher,
        json!({"lead": OWN, "co_handlers": [CO_HANDLER]}),
    )
    .await;
    match given {
        Given::ExtensionRequested => {
            app.command_ok(
                &id,
                "request-extension",
                &handler,
                json!({"working_days": 3, "reason": "需第三方检测"}),
            )
            .await;
        }
        Given::Contacted | Given::Resolved | Given::ReturnVisited => {
            app.command_ok(&id, "contact", &handler, json!({"method": "phone"}))
                .await;
            if matches!(given, Given::Contacted) {
                return Some(id);
            }
            app.command_ok(
                &id,
                "resolve",
                &handler,
                json!({"outcome": "resolved", "text": "已协调解决"}),
            )
            .await;
            if matches!(given, Given::ReturnVisited) {
                app.command_ok(
                    &id,
                    "return-visit",
                    &evaluator,
                    json!({"reached": true, "solved": true, "satisfaction": "satisfied"}),
                )
                .await;
            }
        }
        Given::ContactOverdue => app.clock.set(monday_morning() + chrono::Duration::hours(3)),
        _ => {}
    }
    Some(id)
}

/// Starts the query API over the command API's database, with the same token keys.
async fn spawn_query_api(app: &TestApp) -> SocketAddr {
    linkage_projector::ensure_schema(&app.db.pool, &linkage_projector::all_projections())
        .await
        .expect("read model schema");
    let state = Arc::new(linkage_query_api::QueryState {
        pool: app.db.pool.clone(),
        keys: app.keys.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = linkage_query_api::router(state, &linkage_query_api::QueryConfig::default());
    tokio::spawn(linkage_query_api::serve(
        listener,
        router,
        std::future::pending(),
    ));
    addr
}

/// Refills the ledger from the event store (there is no live projector in this test).
async fn project(app: &TestApp) {
    let ledger = linkage_projector::projection_named("ledger").expect("ledger projection");
    linkage_projector::rebuild(&app.db.pool, ledger.as_ref(), |_, _| {})
        .await
        .expect("rebuild ledger");
}

async fn send(
    app: &TestApp,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Answer {
    let url = format!("http://{addr}{path}");
    let mut req = match method {
        "GET" => app.http.get(url),
        "POST" => app.http.post(url).json(body),
        other => panic!("method {other}"),
    };
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    TestApp::answer(req.send().await.expect("request")).await
}

#[tokio::test]
async fn every_role_on_every_route_gets_what_docs_access_md_says() {
    let app = spawn_app().await;
    let query = spawn_query_api(&app).await;
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
    let query = spawn_query_api(&app).await;
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
    let query = spawn_query_api(&app).await;
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
