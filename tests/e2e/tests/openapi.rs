//! The OpenAPI documents cannot drift from the routers: both APIs serve theirs; every documented
//! operation exists on the real router (not "no such route", not 405), every other method of a
//! documented path is 405, and every route registered in the services' source is documented.
//! The docs page renders the document in headless Chromium using nothing from off the host.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use linkage_auth::Role;
use linkage_e2e::browser::Browser;
use linkage_e2e::{TestApp, spawn_app};
use serde_json::{Value, json};

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

async fn spec(app: &TestApp, addr: SocketAddr) -> Value {
    let response = app
        .http
        .get(format!("http://{addr}/api/v1/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    response.json().await.expect("the document is JSON")
}

/// Every `(METHOD, path)` of a document.
fn operations(spec: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            ops.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    ops
}

/// What a document must say of every operation: a summary, a 2xx answer, the bearer scheme on
/// secured ones, problem+json for every 4xx/5xx, every path parameter declared.
fn check_document(spec: &Value, name: &str) {
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{name}"
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "A JWT with the claims `sub`, `role` and (for handlers) `dept`"})
    );
    let problem = &spec["components"]["schemas"]["Problem"];
    assert_eq!(
        problem["required"],
        json!(["type", "title", "status", "detail"])
    );
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let what = format!("{name} {method} {path}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(responses.keys().any(|s| s.starts_with('2')), "{what}");
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{what} {status}"
                    );
                }
            }
            if secured {
                assert!(responses.contains_key("401"), "{what}: 401");
            }
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let param = segment.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == param && p["in"] == "path" && p["required"] == true),
                    "{what}: path parameter {param}"
                );
            }
            if method == "post" {
                let body = &op["requestBody"]["content"]["application/json"];
                let schema = body["schema"]["$ref"].as_str().expect("a body schema");
                let schema_name = schema.rsplit('/').next().unwrap();
                assert!(
                    spec["components"]["schemas"][schema_name].is_object(),
                    "{what}: {schema}"
                );
                assert!(body["example"].is_object(), "{what}: example");
            }
        }
    }
}

/// Calls every documented operation and every undocumented method of a documented path.
async fn check_router(app: &TestApp, addr: SocketAddr, spec: &Value, token: &str) {
    let id = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    let ops = operations(spec);
    let paths: BTreeSet<&str> = ops.iter().map(|(_, p)| p.as_str()).collect();
    for path in paths {
        let url = format!("http://{addr}{}", path.replace("{id}", id));
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let documented = ops.iter().any(|(m, p)| m == method && p == path);
            let response = app
                .http
                .request(method.parse().unwrap(), &url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if documented {
                assert_ne!(status, 405, "{method} {path} is documented but not routed");
                assert!(
                    !(status == 404 && body["detail"] == "no such route"),
                    "{method} {path} is documented but not routed"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is routed but not documented: {body}"
                );
            }
        }
    }
}

/// The paths the services' source registers: `.route("…"` literals and constants, and the
/// command API's `commands!` entries.
fn routes_in_source(dir: &str) -> BTreeSet<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut constants: Vec<(String, String)> = vec![
        ("SPEC_PATH".into(), "/api/v1/openapi.json".into()),
        ("DOCS_PATH".into(), "/api/v1/docs".into()),
    ];
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(root.join(dir)).expect("source dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push(std::fs::read_to_string(&path).expect("source"));
        }
    }
    // `const X: &str = "/…";`
    for source in &sources {
        for line in source.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("const ")
                && let Some((name, value)) = rest.split_once(": &str = \"")
                && value.starts_with('/')
            {
                constants.push((name.to_owned(), value.trim_end_matches("\";").to_owned()));
            }
        }
    }
    let mut paths = BTreeSet::new();
    for source in &sources {
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let arg = rest.trim_start();
            if let Some(literal) = arg.strip_prefix('"') {
                paths.insert(literal[..literal.find('"').unwrap()].to_owned());
            } else if arg.starts_with("concat!(\"/api/v1/appeals/{id}/\", $name)") {
                // The commands! macro: its entries follow.
            } else {
                let name: String = arg
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let value = constants
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("a route path {name} this test cannot resolve"));
                paths.insert(value.1.clone());
            }
        }
        // `"assign" => |b: AssignAppeal, _c| …` inside `commands! { … }`.
        if let Some(at) = source.find("commands! {") {
            for line in source[at..].lines().skip(1) {
                let line = line.trim();
                if line == "}" {
                    break;
                }
                if let Some(name) = line.strip_prefix('"').and_then(|l| l.split('"').next()) {
                    paths.insert(format!("/api/v1/appeals/{{id}}/{name}"));
                }
            }
        }
    }
    paths
}

#[tokio::test]
async fn both_apis_serve_a_document_that_matches_their_routes() {
    let app = spawn_app().await;
    let query = app.spawn_query_api().await;
    let command_spec = spec(&app, app.addr).await;
    let query_spec = spec(&app, query).await;
    check_document(&command_spec, "command API");
    check_document(&query_spec, "query API");

    check_router(&app, app.addr, &command_spec, &app.token(Role::Admin, None)).await;
    check_router(&app, query, &query_spec, &app.token(Role::Analyst, None)).await;

    // The reverse: every route in the source is documented.
    for (dir, spec) in [
        ("services/command-api/src", &command_spec),
        ("services/query-api/src", &query_spec),
    ] {
        let documented: BTreeSet<String> = operations(spec).into_iter().map(|(_, p)| p).collect();
        let in_source = routes_in_source(dir);
        assert!(in_source.len() > 10, "{dir}: {in_source:?}");
        let missing: Vec<&String> = in_source.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "{dir}: routes without documentation: {missing:?}"
        );
    }

    // The exports' parameters are the JSON routes' plus format and lang.
    let names = |op: &Value| -> BTreeSet<String> {
        op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for base in ["ledger", "rates", "rankings", "complaint-notices"] {
        let json = names(&query_spec["paths"][format!("/api/v1/{base}")]["get"]);
        let mut export = names(&query_spec["paths"][format!("/api/v1/{base}/export")]["get"]);
        assert!(export.remove("format") && export.remove("lang"), "{base}");
        assert_eq!(export, json, "{base}");
    }
    // The command routes answer the problems they really meet.
    let assign = &command_spec["paths"]["/api/v1/appeals/{id}/assign"]["post"]["responses"];
    for status in [
        "400", "401", "403", "404", "409", "413", "415", "422", "429", "503",
    ] {
        assert!(assign[status].is_object(), "assign {status}");
    }
}

#[tokio::test]
async fn the_docs_page_renders_the_document_with_nothing_from_off_the_host() {
    let app = spawn_app().await;
    let query = app.spawn_query_api().await;
    for addr in [app.addr, query] {
        let response = app
            .http
            .get(format!("http://{addr}/api/v1/docs"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/html; charset=utf-8"
        );
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
        let html = response.text().await.expect("html");
        // No script, style, image or font from anywhere: no absolute URL at all, no import.
        for needle in ["http://", "https://", "//cdn", "@import", "src="] {
            assert!(!html.contains(needle), "the page contains {needle:?}");
        }
    }

    // In a browser: every operation is shown, without a console error, and the only request
    // besides the page is the document, on the same host.
    let browser = Browser::launch().await.expect("Chromium");
    let page = browser.new_page().await.expect("a tab");
    page.goto(&format!("http://{query}/api/v1/docs"))
        .await
        .expect("the docs page");
    let rendered = page
        .wait_for(
            "Number(document.body.dataset.rendered || 0)",
            "the rendered operations",
        )
        .await
        .expect("rendered");
    let spec = spec(&app, query).await;
    let schemas = spec["components"]["schemas"].as_object().unwrap().len();
    assert_eq!(
        rendered.as_u64().unwrap() as usize,
        operations(&spec).len() + schemas
    );
    let title = page
        .eval("document.getElementById('title').textContent")
        .await
        .unwrap();
    assert!(
        title.as_str().unwrap().starts_with("Linkage query API"),
        "{title}"
    );
    let resources = page
        .eval("performance.getEntriesByType('resource').map(e => e.name)")
        .await
        .expect("resources");
    assert_eq!(
        resources,
        json!([format!("http://{query}/api/v1/openapi.json")]),
        "{resources}"
    );
    assert!(browser.errors().is_empty(), "{:?}", browser.errors());
}
