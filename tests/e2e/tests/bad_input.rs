//! Bad input on every route (the routes of docs/access.md, each sent by a role allowed to): malformed
//! JSON, wrong types, unknown fields, oversized bodies and strings, invalid UTF-8, control
//! characters, SQL- and script-looking text, out-of-range numbers and dates, unknown enum
//! values, huge page sizes and bad query parameters. Never a 5xx; a refusal is problem+json and
//! records nothing; text that is valid (SQL-looking or not) is stored verbatim. Then the same
//! promises under proptest, with arbitrary JSON in place of each field and as the whole body.

mod support;

use std::net::SocketAddr;

use linkage_e2e::{Answer, TestApp, spawn_app};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use support::*;

/// A POST route with a caller allowed to send it, and how to set it up.
struct PostRoute {
    path: String,
    token: String,
    fixture: Fixture,
}

/// Every POST route of the documented matrix, each with its first allowed caller.
fn post_routes(app: &TestApp) -> Vec<PostRoute> {
    documented_matrix()
        .into_iter()
        .filter(|r| r.method == "POST" && r.api == Api::Command)
        .map(|r| {
            let caller = r
                .cells
                .iter()
                .find(|(c, allowed)| *allowed && *c != Caller::NoToken)
                .map(|(c, _)| *c)
                .unwrap_or_else(|| panic!("{} allows nobody", r.path));
            PostRoute {
                fixture: fixture(r.api, &r.method, &r.path).expect("fixture"),
                token: caller.token(app).expect("a token"),
                path: r.path,
            }
        })
        .collect()
}

/// The route's path on a fresh appeal in the state it needs (`{original}` filled in).
async fn target(app: &TestApp, route: &PostRoute) -> (String, Value) {
    let id = prepare(app, route.fixture.given).await;
    let path = route.path.replace("{id}", id.as_deref().unwrap_or(""));
    let original = app.file_appeal().await;
    let body = serde_json::from_str(
        &route
            .fixture
            .body
            .to_string()
            .replace("{original}", &original),
    )
    .expect("body");
    (path, body)
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Answer {
    let response = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    TestApp::answer(response).await
}

/// The answer to bad input: never a 5xx; a refusal is problem+json and records nothing.
#[track_caller]
fn check_refusal_shape(what: &str, a: &Answer, recorded: i64) {
    assert!(
        a.status < 500,
        "{what}: a server error {} {}",
        a.status,
        a.body
    );
    if a.status >= 400 {
        assert_eq!(
            a.content_type(),
            "application/problem+json",
            "{what}: {}",
            a.body
        );
        assert_eq!(a.body["status"], a.status, "{what}: {}", a.body);
        assert_eq!(
            recorded, 0,
            "{what}: refused with {} but recorded events",
            a.status
        );
    }
}

/// Paths to every leaf of a JSON value (object keys; the first element of arrays).
fn leaves(v: &Value) -> Vec<Vec<PathPart>> {
    match v {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| {
                leaves(v).into_iter().map(move |mut p| {
                    p.insert(0, PathPart::Key(k.clone()));
                    p
                })
            })
            .collect(),
        Value::Array(items) if !items.is_empty() => leaves(&items[0])
            .into_iter()
            .map(|mut p| {
                p.insert(0, PathPart::Index(0));
                p
            })
            .collect(),
        _ => vec![vec![]],
    }
}

#[derive(Debug, Clone)]
enum PathPart {
    Key(String),
    Index(usize),
}

fn leaf_mut<'a>(v: &'a mut Value, path: &[PathPart]) -> &'a mut Value {
    path.iter().fold(v, |v, part| match part {
        PathPart::Key(k) => &mut v[k.as_str()],
        PathPart::Index(i) => &mut v[*i],
    })
}

fn path_name(path: &[PathPart]) -> String {
    path.iter()
        .map(|p| match p {
            PathPart::Key(k) => k.clone(),
            PathPart::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Replacements for a leaf: `(name, value, must be refused)`.
fn mutations(leaf: &Value) -> Vec<(&'static str, Value, bool)> {
    let mut out = vec![
        ("null", Value::Null, false),
        ("an object", json!({"$gt": ""}), true),
        ("an empty array", json!([]), true),
    ];
    match leaf {
        Value::String(s) => out.extend([
            ("a number instead of a string", json!(12345), true),
            ("a boolean instead of a string", json!(true), true),
            (
                "a 20 000-character string",
                json!("长".repeat(20_000)),
                true,
            ),
            ("a NUL character", json!(format!("{s}\u{0}x")), true),
            ("an escape sequence", json!(format!("\u{1b}[31m{s}")), true),
            ("an unknown enum value", json!("no_such_value_☃"), false),
            ("SQL", json!("'; DROP TABLE events; --"), false),
            ("a script", json!("<script>alert('x')</script>"), false),
            ("an impossible date", json!("2026-02-30"), false),
            ("a date in year 99999", json!("99999-01-01"), false),
            (
                "right-to-left override",
                json!(format!("\u{202e}{s}")),
                false,
            ),
            ("an empty string", json!(""), false),
        ]),
        Value::Number(_) => out.extend([
            ("a string instead of a number", json!("12"), true),
            ("a negative number", json!(-1), false),
            ("u64::MAX", json!(u64::MAX), false),
            ("i64::MIN", json!(i64::MIN), false),
            ("1e300", json!(1e300), false),
            ("a fraction", json!(0.5), false),
        ]),
        Value::Bool(_) => out.extend([
            ("a string instead of a boolean", json!("yes"), true),
            ("a number instead of a boolean", json!(1), true),
        ]),
        _ => {}
    }
    out
}

#[tokio::test]
async fn bad_input_on_every_route_is_refused_with_a_problem_and_records_nothing() {
    let app = spawn_app().await;
    let mut sent = 0;
    for route in post_routes(&app) {
        let (mut path, mut valid) = target(&app, &route).await;
        let r = &route.path;

        // The whole body.
        let oversized = json!({"text": "x".repeat(70 * 1024)})
            .to_string()
            .into_bytes();
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
        // Invalid UTF-8 inside a field the route knows.
        let first_key = valid
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_default();
        let invalid_utf8 = [
            format!("{{\"{first_key}\": \"").as_bytes(),
            b"\xff\xfe\xfd\"}",
        ]
        .concat();
        let mut unknown = valid.clone();
        if let Some(map) = unknown.as_object_mut() {
            map.insert("zz_unknown".into(), json!(1));
        }
        let whole: Vec<(&str, &str, Vec<u8>, Option<u16>)> = vec![
            (
                "malformed JSON",
                "application/json",
                b"{,}".to_vec(),
                Some(400),
            ),
            (
                "trailing garbage",
                "application/json",
                [valid.to_string().as_bytes(), b"}}"].concat(),
                Some(400),
            ),
            ("invalid UTF-8", "application/json", invalid_utf8, Some(400)),
            ("nesting 10 000 deep", "application/json", deep, None),
            (
                "a body over the limit",
                "application/json",
                oversized,
                Some(413),
            ),
            (
                "an array",
                "application/json",
                b"[1, 2]".to_vec(),
                Some(422),
            ),
            (
                "a string",
                "application/json",
                b"\"assign\"".to_vec(),
                Some(422),
            ),
            (
                "an unknown field",
                "application/json",
                unknown.to_string().into_bytes(),
                Some(422),
            ),
            (
                "text/plain",
                "text/plain",
                valid.to_string().into_bytes(),
                Some(415),
            ),
        ];
        for (what, content_type, bytes, expected) in whole {
            let before = app.total_events().await;
            let a = post_raw(&app, &path, &route.token, content_type, bytes).await;
            let what = format!("{r}: {what}");
            check_refusal_shape(&what, &a, app.total_events().await - before);
            assert!(
                (400..500).contains(&a.status),
                "{what}: accepted: {}",
                a.body
            );
            if let Some(status) = expected {
                assert_eq!(a.status, status, "{what}: {}", a.body);
            }
            sent += 1;
        }

        // Each field in turn.
        for leaf in leaves(&valid) {
            if leaf.is_empty() {
                continue;
            }
            let original = leaf_mut(&mut valid.clone(), &leaf).clone();
            for (what, replacement, must_refuse) in mutations(&original) {
                let mut body = valid.clone();
                *leaf_mut(&mut body, &leaf) = replacement.clone();
                let before = app.total_events().await;
                let a = send(&app, app.addr, "POST", &path, Some(&route.token), &body).await;
                let recorded = app.total_events().await - before;
                let what = format!("{r}: {} as {what}", path_name(&leaf));
                check_refusal_shape(&what, &a, recorded);
                if must_refuse {
                    assert!(
                        (400..500).contains(&a.status),
                        "{what}: accepted: {}",
                        a.body
                    );
                }
                if (200..300).contains(&a.status) {
                    // Accepted text is stored as sent: SQL- or script-looking text is data.
                    if let (Value::String(text), true) = (&replacement, recorded > 0) {
                        let stored: i64 = sqlx::query_scalar(
                            "SELECT count(*) FROM events WHERE strpos(payload::text, $1) > 0",
                        )
                        .bind(serde_json::to_string(text).expect("json").trim_matches('"'))
                        .fetch_one(&app.db.pool)
                        .await
                        .expect("events");
                        assert!(stored > 0 || text.is_empty(), "{what}: not stored verbatim");
                    }
                    // The appeal moved on: the next mutation gets a fresh one.
                    (path, valid) = target(&app, &route).await;
                }
                sent += 1;
            }
        }
    }
    assert!(sent > 500, "only {sent} requests");
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db.pool)
        .await
        .expect("the events table is still there");
    assert!(tables > 0);
    eprintln!("bad input: {sent} requests, none answered 5xx");
}

#[tokio::test]
async fn bad_query_parameters_and_huge_pages_are_refused_on_every_read() {
    let app = spawn_app().await;
    let query: SocketAddr = app.spawn_query_api().await;
    let id = prepare(&app, Given::Assigned).await.expect("appeal");
    project(&app).await;
    let params = [
        "limit=1000000000",
        "limit=-1",
        "limit=abc",
        "limit=99999999999999999999999",
        "zz_unknown=1",
        "filed_from=2026-02-30",
        "filed_from=99999-01-01T00:00:00Z",
        "cursor=%00%FF%FE",
        "cursor=eyJ4IjoiJzsgRFJPUCBUQUJMRSBldmVudHM7IC0tIn0",
        "month=2026-13",
        "period=9999-Q9",
        "quarter=2026-Q5",
        "light=purple",
        "status=no_such_status",
        "after=-5",
        "as_of=yesterday",
        "min_position=-1",
        "sort=%3BDROP%20TABLE%20events",
        "department=%27%3B%20DROP%20TABLE%20events%3B%20--",
        "channel=%3Cscript%3E",
        "town=%E0%A4%A",
    ];
    let mut sent = 0;
    for row in documented_matrix()
        .into_iter()
        .filter(|r| r.method == "GET")
    {
        let Some((caller, _)) = row
            .cells
            .iter()
            .find(|(c, allowed)| *allowed && *c != Caller::NoToken)
        else {
            continue;
        };
        let token = caller.token(&app);
        let fixture = fixture(row.api, &row.method, &row.path).expect("fixture");
        let addr = if row.api == Api::Command {
            app.addr
        } else {
            query
        };
        let base = row.path.replace("{id}", &id) + fixture.query;
        for param in params {
            let sep = if base.contains('?') { '&' } else { '?' };
            let path = format!("{base}{sep}{param}");
            let a = send(&app, addr, "GET", &path, token.as_deref(), &Value::Null).await;
            check_refusal_shape(&format!("GET {path}"), &a, 0);
            sent += 1;
        }
    }
    // Page sizes are bounded where there are pages.
    for path in [
        "/api/v1/ledger?limit=1000000",
        "/api/v1/alerts?limit=1000000",
    ] {
        let token = app.token(linkage_auth::Role::Analyst, None);
        let a = send(&app, query, "GET", path, Some(&token), &Value::Null).await;
        a.assert_problem(422, "invalid-field");
        assert_eq!(a.body["field"], "limit", "{path}");
    }
    let auditor = app.token(linkage_auth::Role::Auditor, None);
    let a = send(
        &app,
        query,
        "GET",
        "/api/v1/audit/events?limit=1000000",
        Some(&auditor),
        &Value::Null,
    )
    .await;
    a.assert_problem(422, "invalid-field");
    assert!(sent > 100);
}

/// Any JSON at all.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[a-z_]{1,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn arbitrary_bodies_and_fields_never_get_a_server_error_nor_record_when_refused() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(spawn_app());
    let routes = runtime.block_on(async {
        let mut out = Vec::new();
        for route in post_routes(&app) {
            let (path, valid) = target(&app, &route).await;
            out.push((route, path, valid));
        }
        out
    });
    let mut runner = TestRunner::new(Config {
        cases: 384,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0..routes.len(),
        any_json(),
        any::<prop::sample::Index>(),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(i, value, field, whole)| {
            let (route, path, valid) = &routes[i];
            let body = if whole {
                value
            } else {
                let leaves = leaves(valid);
                let mut body = valid.clone();
                *leaf_mut(&mut body, &leaves[field.index(leaves.len())]) = value;
                body
            };
            runtime.block_on(async {
                let before = app.total_events().await;
                let a = send(&app, app.addr, "POST", path, Some(&route.token), &body).await;
                let recorded = app.total_events().await - before;
                prop_assert!(
                    a.status < 500,
                    "{}: {} {} for {}",
                    route.path,
                    a.status,
                    a.body,
                    body
                );
                if a.status >= 400 {
                    prop_assert_eq!(a.content_type(), "application/problem+json");
                    prop_assert_eq!(recorded, 0);
                }
                Ok(())
            })
        })
        .expect("property");
}

/// A message on the events stream that resembles an envelope: valid JSON with some of the
/// envelope's fields, each of a right or a wrong type.
fn envelope_like() -> impl Strategy<Value = Vec<u8>> {
    let field = |name: &'static str, right: BoxedStrategy<Value>| {
        prop_oneof![
            12 => right.prop_map(move |v| Some((name, v))),
            1 => any_json().prop_map(move |v| Some((name, v))),
            1 => Just(None),
        ]
        .boxed()
    };
    let fields = vec![
        field("envelope_version", (0u32..3).prop_map(Value::from).boxed()),
        field(
            "event_id",
            Just(json!("0199a4b2-0000-7000-8000-000000000001")).boxed(),
        ),
        field(
            "global_position",
            any::<i64>().prop_map(Value::from).boxed(),
        ),
        field("tx_id", any::<i64>().prop_map(Value::from).boxed()),
        field("aggregate_type", "[a-z]{1,8}".prop_map(Value::from).boxed()),
        field("aggregate_id", ".{0,12}".prop_map(Value::from).boxed()),
        field("sequence", any::<i64>().prop_map(Value::from).boxed()),
        field("event_type", "[A-Za-z]{1,16}".prop_map(Value::from).boxed()),
        field("event_version", "[0-9]{1,2}".prop_map(Value::from).boxed()),
        field("recorded_at", Just(json!("2026-03-02T01:00:00Z")).boxed()),
        field("payload", any_json().boxed()),
        field("metadata", any_json().boxed()),
        field("hash", "[0-9a-f]{0,64}".prop_map(Value::from).boxed()),
    ];
    fields.prop_map(|fields| {
        let map: serde_json::Map<String, Value> = fields
            .into_iter()
            .flatten()
            .map(|(name, v)| (name.to_owned(), v))
            .collect();
        serde_json::to_vec(&map).expect("json")
    })
}

proptest! {
    #![proptest_config(Config { cases: 2000, failure_persistence: None, ..Config::default() })]

    /// The bus envelope decoder (what the projector and other teams' consumers run on every
    /// message) never panics on arbitrary bytes or envelope-like JSON, and whatever it accepts
    /// encodes and decodes back to itself. The same property is the cargo-fuzz target
    /// `fuzz/fuzz_targets/envelope.rs` (`make fuzz`).
    #[test]
    fn the_envelope_decoder_never_panics_and_round_trips(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), envelope_like()]
    ) {
        if let Ok(envelope) = linkage_bus::Envelope::decode(&bytes) {
            let again = linkage_bus::Envelope::decode(&envelope.encode());
            prop_assert!(again.is_ok(), "an accepted envelope does not re-decode");
            prop_assert_eq!(again.ok(), Some(envelope));
        }
    }
}
