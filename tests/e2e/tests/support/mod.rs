//! What the black-box tests of access, bad input and concurrency share: the documented access
//! matrix (read from docs/access.md), how to bring an appeal into the state a route needs, a
//! valid body for every route, and the query API beside the command API.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;

use linkage_auth::Role;
use linkage_e2e::{Answer, TestApp, monday_morning, sample_appeal};
use serde_json::{Value, json};

pub const OWN: &str = "market-supervision";
pub const CO_HANDLER: &str = "tax";
pub const OTHER: &str = "housing";

/// A column of the matrix: who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Role(Role),
    /// A handler of the appeal's lead department.
    HandlerOwn,
    /// A handler of a department not involved in the appeal.
    HandlerOther,
    NoToken,
}

impl Caller {
    pub fn from_header(h: &str) -> Self {
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

    pub fn token(&self, app: &TestApp) -> Option<String> {
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
pub struct Row {
    pub api: Api,
    pub method: String,
    pub path: String,
    pub cells: Vec<(Caller, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Command,
    Query,
}

/// The table between the `access-matrix` markers of docs/access.md.
pub fn documented_matrix() -> Vec<Row> {
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
pub enum Given {
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
pub enum Expect {
    /// 2xx.
    Success,
    /// Past authentication and authorization: neither 401 nor 403 (nor a 5xx); the route may
    /// still refuse the request for what it asks (e.g. 409 when there is nothing to do).
    Authorized,
}

/// How to exercise a route: the state before, a valid body (so that a refusal can only be the
/// role's: bodies are parsed before the role is checked) and a query string. `{original}` in a
/// body is replaced by another appeal's id.
pub struct Fixture {
    pub given: Given,
    pub body: Value,
    pub query: &'static str,
    pub expect: Expect,
}

pub fn fixture(api: Api, method: &str, path: &str) -> Option<Fixture> {
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
pub fn other_fixture(api: Api, method: &str, path: &str) -> Option<Fixture> {
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
        // Exports: the JSON routes' fixtures (docs/api.md).
        (Api::Query, "GET", "/api/v1/ledger/export") => success(Given::Assigned, Value::Null, ""),
        (Api::Query, "GET", "/api/v1/rates/export") => {
            success(Given::Nothing, Value::Null, "?month=2026-03&format=xlsx")
        }
        (Api::Query, "GET", "/api/v1/rankings/export") => {
            success(Given::Nothing, Value::Null, "?period=2026-Q1")
        }
        (Api::Query, "GET", "/api/v1/complaint-notices/export") => {
            success(Given::Nothing, Value::Null, "?period=2026-03&lang=en")
        }
        (_, "GET", "/api/v1/freshness" | "/api/v1/openapi.json" | "/api/v1/docs") => {
            success(Given::Nothing, Value::Null, "")
        }
        _ => return None,
    })
}

/// The appeal commands, the appeal reads and the probes.
pub fn appeal_fixture(api: Api, method: &str, path: &str) -> Option<(Given, Value)> {
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
pub async fn prepare(app: &TestApp, given: Given) -> Option<String> {
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

/// Refills the ledger from the event store (there is no live projector in this test).
/// A rebuild reads below the cluster-wide horizon (the oldest running transaction, in any
/// database), so a transaction of a test running beside this one can hold it back: rebuild
/// until every appeal event of this database is in.
pub async fn project(app: &TestApp) {
    let ledger = linkage_projector::projection_named("ledger").expect("ledger projection");
    for _ in 0..200 {
        linkage_projector::rebuild(&app.db.pool, ledger.as_ref(), |_, _| {})
            .await
            .expect("rebuild ledger");
        let (projected, stored): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM ledger_timeline), \
                    (SELECT count(*) FROM events WHERE aggregate_type = 'appeal')",
        )
        .fetch_one(&app.db.pool)
        .await
        .expect("counts");
        if projected == stored {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the ledger rebuild never reached this database's last event");
}

pub async fn send(
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
