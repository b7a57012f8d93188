//! Exports (CSV and XLSX) and the freshness route, on a small hand-made district: three appeals
//! driven through the real command API at pinned instants, the read models filled from the
//! event store, then every export read back cell by cell (CSV parsed here by RFC 4180, XLSX
//! by calamine) against the rows written out below.

use std::io::Cursor;
use std::net::SocketAddr;

use calamine::{Data, Reader, Xlsx};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use linkage_auth::Role;
use linkage_e2e::{Answer, TestApp, spawn_app};
use serde_json::{Value, json};

const MARKET: &str = "market-supervision";
const HOUSING: &str = "housing";
const CSV: &str = "text/csv; charset=utf-8";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// A filer name a spreadsheet would run as a formula if a CSV cell started with it.
const FORMULA_NAME: &str = "=HYPERLINK(\"http://example.invalid\",\"点我\")";
/// A description with every character RFC 4180 must quote.
const TRICKY_DESCRIPTION: &str = "检查频繁, 影响生产。\n请\"尽快\"协调";

/// Beijing local time → UTC.
fn bj(local: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").expect("local time");
    linkage_domain::calendar::TZ
        .from_local_datetime(&naive)
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc)
}

/// An RFC 3339 instant from JSON as the exports show it (Beijing, `YYYY-MM-DD HH:MM:SS`).
fn shown(v: &Value) -> String {
    v.as_str().map_or_else(String::new, |s| {
        DateTime::parse_from_rfc3339(s)
            .expect("instant")
            .with_timezone(&linkage_domain::calendar::TZ)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    })
}

struct District {
    app: TestApp,
    query: SocketAddr,
    ids: [String; 3],
}

/// A1 (12345, market-supervision + tax) goes all the way to closed; A2 (110, housing) is
/// contacted late; A3 (online) is only filed.
async fn district() -> District {
    let app = spawn_app().await;
    let dispatcher = app.token(Role::Dispatcher, None);
    let market = app.token(Role::Handler, Some(MARKET));
    let housing = app.token(Role::Handler, Some(HOUSING));
    app.clock.set(bj("2026-03-02 09:00"));
    let file = |body: Value| {
        let app = &app;
        let dispatcher = dispatcher.clone();
        async move {
            let a = app.post("/api/v1/appeals", &dispatcher, &body, None).await;
            assert_eq!(a.status, 201, "{}", a.body);
            a.body["appeal_id"].as_str().expect("id").to_owned()
        }
    };
    let a1 = file(json!({
        "channel": "12345",
        "filer": {"kind": "enterprise", "name": FORMULA_NAME, "contact_person": "王经理",
                  "phone": "13800130000"},
        "category": "arbitrary_inspections", "town": "经济开发区",
        "description": TRICKY_DESCRIPTION, "complained_unit": "某街道综合执法队"
    }))
    .await;
    let a2 = file(json!({
        "channel": "110",
        "filer": {"kind": "citizen", "name": "李某", "phone": "13900139000"},
        "category": "approval_delay", "town": "城关镇",
        "description": "审批超时。", "complained_unit": "某审批科"
    }))
    .await;
    let a3 = file(json!({
        "channel": "online",
        "filer": {"kind": "citizen", "name": "赵某", "phone": "13700137000"},
        "category": "other", "town": "城关镇", "description": "咨询政策。"
    }))
    .await;
    app.clock.set(bj("2026-03-02 09:10"));
    app.command_ok(
        &a1,
        "assign",
        &dispatcher,
        json!({"lead": MARKET, "co_handlers": ["tax"]}),
    )
    .await;
    app.command_ok(&a2, "assign", &dispatcher, json!({"lead": HOUSING}))
        .await;
    app.clock.set(bj("2026-03-02 10:00"));
    app.command_ok(&a1, "contact", &market, json!({"method": "phone"}))
        .await;
    app.clock.set(bj("2026-03-02 10:30"));
    app.command_ok(&a1, "feedback", &market, json!({"text": "已约定上门核实"}))
        .await;
    // Contact due 11:10: late.
    app.clock.set(bj("2026-03-02 12:00"));
    app.command_ok(&a2, "contact", &housing, json!({"method": "on_site"}))
        .await;
    app.clock.set(bj("2026-03-04 10:00"));
    app.command_ok(
        &a1,
        "resolve",
        &market,
        json!({"outcome": "resolved", "text": "已协调合并检查"}),
    )
    .await;
    app.clock.set(bj("2026-03-05 10:00"));
    app.command_ok(
        &a1,
        "return-visit",
        &app.token(Role::Evaluator, None),
        json!({"reached": true, "solved": true, "satisfaction": "satisfied"}),
    )
    .await;
    app.clock.set(bj("2026-03-05 11:00"));
    app.command_ok(&a1, "close", &app.token(Role::Supervisor, None), json!({}))
        .await;

    let query = app.spawn_query_api().await;
    // The read models, from the event store (what the projector would have written). A rebuild
    // stops below the oldest transaction still open anywhere on the server (other tests run
    // beside this one), so it is repeated until the ledger has applied the last event.
    let last: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&app.db.pool)
        .await
        .expect("last position");
    for attempt in 0.. {
        for projection in linkage_projector::all_projections() {
            linkage_projector::rebuild(&app.db.pool, projection.as_ref(), |_, _| {})
                .await
                .expect("rebuild");
        }
        let applied: Option<i64> = sqlx::query_scalar(
            "SELECT global_position FROM projection_checkpoints WHERE name = 'ledger'",
        )
        .fetch_one(&app.db.pool)
        .await
        .expect("ledger checkpoint");
        if applied == Some(last) {
            break;
        }
        assert!(attempt < 200, "the rebuild never reached position {last}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    District {
        app,
        query,
        ids: [a1, a2, a3],
    }
}

/// A raw answer: status, headers, body bytes.
struct Raw {
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl District {
    async fn get_raw(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Raw {
        let mut req = self
            .app
            .http
            .get(format!("http://{}{path}", self.query))
            .bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = req.send().await.expect("request");
        Raw {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            bytes: response.bytes().await.expect("body").to_vec(),
        }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        let response = self
            .app
            .http
            .get(format!("http://{}{path}", self.query))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        TestApp::answer(response).await
    }

    /// The export as a table of strings (the header first), checking the content type and the
    /// attachment name.
    async fn table(&self, path: &str, token: &str, name: &str) -> (Vec<Vec<String>>, String) {
        self.table_with(path, token, name, &[]).await
    }

    async fn table_with(
        &self,
        path: &str,
        token: &str,
        name: &str,
        headers: &[(&str, &str)],
    ) -> (Vec<Vec<String>>, String) {
        let raw = self.get_raw(path, token, headers).await;
        assert_eq!(
            raw.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&raw.bytes)
        );
        let xlsx = path.contains("format=xlsx");
        let today = Utc::now()
            .with_timezone(&linkage_domain::calendar::TZ)
            .format("%Y-%m-%d");
        let ext = if xlsx { "xlsx" } else { "csv" };
        assert_eq!(
            raw.header("content-disposition"),
            format!("attachment; filename=\"{name}-{today}.{ext}\"")
        );
        if xlsx {
            assert_eq!(raw.header("content-type"), XLSX);
            read_xlsx(&raw.bytes)
        } else {
            assert_eq!(raw.header("content-type"), CSV);
            let text = raw
                .bytes
                .strip_prefix(b"\xEF\xBB\xBF")
                .expect("a UTF-8 BOM first");
            let text = std::str::from_utf8(text).expect("UTF-8");
            (parse_csv(text), String::new())
        }
    }
}

/// RFC 4180: CRLF line ends, fields with `,`, `"` or line breaks in quotes, `""` for `"`.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    assert!(text.ends_with("\r\n"), "the last record ends with CRLF");
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            '"' => panic!("a quote inside an unquoted field: {field:?}"),
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            '\n' => panic!("a bare LF outside quotes"),
            _ => field.push(c),
        }
    }
    assert!(!quoted, "an unterminated quote");
    rows
}

/// Every sheet's cells as strings (numbers in Rust's shortest form, as the CSV writes them),
/// and the first sheet's name.
fn read_xlsx(bytes: &[u8]) -> (Vec<Vec<String>>, String) {
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("a readable XLSX");
    let names = book.sheet_names();
    assert_eq!(names.len(), 1, "one sheet: {names:?}");
    let range = book.worksheet_range(&names[0]).expect("sheet");
    let rows = range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::Empty => String::new(),
                    Data::String(s) => s.clone(),
                    Data::Float(f) => f.to_string(),
                    Data::Int(i) => i.to_string(),
                    Data::Bool(b) => b.to_string(),
                    other => panic!("unexpected cell {other:?}"),
                })
                .collect()
        })
        .collect();
    (rows, names[0].clone())
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
        .collect()
}

/// The header a table has in a language, from the export's own column table.
fn header(columns: &[linkage_query_api::export::Column], en: bool) -> Vec<String> {
    columns
        .iter()
        .map(|c| if en { c.en } else { c.zh }.to_owned())
        .collect()
}

#[tokio::test]
async fn ledger_exports_in_both_formats_and_languages_with_filters_scope_and_masking() {
    let d = district().await;
    let [a1, a2, a3] = d.ids.clone();
    let analyst = d.app.token(Role::Analyst, None);
    let supervisor = d.app.token(Role::Supervisor, None);
    let handler = d.app.token(Role::Handler, Some(HOUSING));

    // The deadlines, as the JSON ledger has them.
    let json = d.get("/api/v1/ledger?sort=tracking_number", &analyst).await;
    assert_eq!(json.status, 200, "{}", json.body);
    let items = json.body["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 3);
    let due1 = shown(&items[0]["resolution_due"]);
    let due2 = shown(&items[1]["resolution_due"]);
    assert!(!due1.is_empty() && !due2.is_empty());

    // Full phones for a supervisor (who calls filers), masked for an analyst.
    let rows = |phone1: &str, phone2: &str, phone3: &str, formula: &str| -> Vec<Vec<String>> {
        strings(&[
            &[
                "LK-2026-000001",
                "12345",
                "enterprise",
                formula,
                "王经理",
                phone1,
                "arbitrary_inspections",
                "经济开发区",
                "某街道综合执法队",
                TRICKY_DESCRIPTION,
                MARKET,
                "tax",
                "closed",
                "2026-03-02 09:00:00",
                "2026-03-02 09:10:00",
                "2026-03-02 10:00:00",
                "2026-03-02 10:30:00",
                &due1,
                "2026-03-04 10:00:00",
                "resolved",
                "true",
                "satisfied",
                "false",
                "0",
                "0",
                "0",
                "0",
                &a1,
            ],
            &[
                "LK-2026-000002",
                "110",
                "citizen",
                "李某",
                "",
                phone2,
                "approval_delay",
                "城关镇",
                "某审批科",
                "审批超时。",
                HOUSING,
                "",
                "assigned",
                "2026-03-02 09:00:00",
                "2026-03-02 09:10:00",
                "2026-03-02 12:00:00",
                "",
                &due2,
                "",
                "",
                "",
                "",
                // Its feedback (due 2026-03-03) was never given: overdue now.
                "true",
                "0",
                "0",
                "0",
                "0",
                &a2,
            ],
            &[
                "LK-2026-000003",
                "online",
                "citizen",
                "赵某",
                "",
                phone3,
                "other",
                "城关镇",
                "",
                "咨询政策。",
                "",
                "",
                "filed",
                "2026-03-02 09:00:00",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "false",
                "0",
                "0",
                "0",
                "0",
                &a3,
            ],
        ])
    };
    let columns = linkage_query_api::ledger::EXPORT_COLUMNS;
    let with_header = |en: bool, rows: Vec<Vec<String>>| {
        let mut t = vec![header(columns, en)];
        t.extend(rows);
        t
    };
    let guarded = format!("'{FORMULA_NAME}");
    let full = ("13800130000", "13900139000", "13700137000");
    let masked = ("138****0000", "139****9000", "137****7000");

    // CSV, Chinese by default; the formula is defused, the description quoted intact.
    let (csv, _) = d
        .table(
            "/api/v1/ledger/export?sort=tracking_number",
            &supervisor,
            "ledger",
        )
        .await;
    assert_eq!(csv[0][0], "工单编号");
    assert_eq!(
        csv,
        with_header(false, rows(full.0, full.1, full.2, &guarded))
    );
    // XLSX, English: the formula is a plain string cell there.
    let (xlsx, sheet) = d
        .table(
            "/api/v1/ledger/export?sort=tracking_number&format=xlsx&lang=en",
            &analyst,
            "ledger",
        )
        .await;
    assert_eq!(sheet, "Ledger");
    assert_eq!(xlsx[0][0], "Tracking number");
    assert_eq!(
        xlsx,
        with_header(true, rows(masked.0, masked.1, masked.2, FORMULA_NAME))
    );
    // XLSX, Chinese; CSV, English through Accept-Language.
    let (xlsx, sheet) = d
        .table(
            "/api/v1/ledger/export?sort=tracking_number&format=xlsx",
            &analyst,
            "ledger",
        )
        .await;
    assert_eq!(sheet, "台账");
    assert_eq!(
        xlsx,
        with_header(false, rows(masked.0, masked.1, masked.2, FORMULA_NAME))
    );
    let (csv, _) = d
        .table_with(
            "/api/v1/ledger/export?sort=tracking_number",
            &analyst,
            "ledger",
            &[("Accept-Language", "en-US,en;q=0.9,zh-CN;q=0.8")],
        )
        .await;
    assert_eq!(
        csv,
        with_header(true, rows(masked.0, masked.1, masked.2, &guarded))
    );

    // Filters: the JSON route's, with the same meaning.
    let (csv, _) = d
        .table("/api/v1/ledger/export?channel=110", &supervisor, "ledger")
        .await;
    assert_eq!(csv[1..], rows(full.0, full.1, full.2, &guarded)[1..2]);
    let (csv, _) = d
        .table(
            "/api/v1/ledger/export?status=filed&format=csv&lang=zh-CN",
            &supervisor,
            "ledger",
        )
        .await;
    assert_eq!(csv[1..], rows(full.0, full.1, full.2, &guarded)[2..]);
    let (csv, _) = d
        .table(
            "/api/v1/ledger/export?sort=tracking_number&limit=2",
            &supervisor,
            "ledger",
        )
        .await;
    assert_eq!(csv[1..], rows(full.0, full.1, full.2, &guarded)[..2]);
    // Nothing matches: the header alone.
    let (csv, _) = d
        .table("/api/v1/ledger/export?town=无此镇", &supervisor, "ledger")
        .await;
    assert_eq!(csv, vec![header(columns, false)]);
    let (xlsx, _) = d
        .table(
            "/api/v1/ledger/export?town=无此镇&format=xlsx",
            &supervisor,
            "ledger",
        )
        .await;
    assert_eq!(xlsx, vec![header(columns, false)]);

    // A housing handler: only housing's appeal, phone masked, in both formats.
    let (csv, _) = d.table("/api/v1/ledger/export", &handler, "ledger").await;
    assert_eq!(
        csv,
        with_header(
            false,
            rows(masked.0, masked.1, masked.2, &guarded)[1..2].to_vec()
        )
    );
    let (xlsx, _) = d
        .table("/api/v1/ledger/export?format=xlsx", &handler, "ledger")
        .await;
    assert_eq!(
        xlsx,
        with_header(
            false,
            rows(masked.0, masked.1, masked.2, FORMULA_NAME)[1..2].to_vec()
        )
    );
    // …and never another department's.
    let a = d
        .get(
            "/api/v1/ledger/export?department=market-supervision",
            &handler,
        )
        .await;
    a.assert_problem(403, "forbidden");
}

#[tokio::test]
async fn metric_exports_match_the_hand_counted_month() {
    let d = district().await;
    let analyst = d.app.token(Role::Analyst, None);

    // March, by department. market-supervision: A1 contacted, completed, solved and satisfied,
    // all on time. housing: A2 contacted late (0 of 1), nothing else yet.
    let rates = |yes: &str, no: &str| {
        strings(&[
            &[
                "2026-03",
                "department",
                "district",
                "50",
                "1",
                "2",
                yes,
                "100",
                "1",
                "1",
                no,
                "100",
                "1",
                "1",
                no,
                "100",
                "1",
                "1",
                no,
            ],
            &[
                "2026-03",
                "department",
                HOUSING,
                "0",
                "0",
                "1",
                yes,
                "",
                "0",
                "0",
                "",
                "",
                "0",
                "0",
                "",
                "",
                "0",
                "0",
                "",
            ],
            &[
                "2026-03",
                "department",
                MARKET,
                "100",
                "1",
                "1",
                no,
                "100",
                "1",
                "1",
                no,
                "100",
                "1",
                "1",
                no,
                "100",
                "1",
                "1",
                no,
            ],
        ])
    };
    let columns = linkage_query_api::rates::EXPORT_COLUMNS;
    for (query, en, name) in [
        ("month=2026-03", false, "四率"),
        ("month=2026-03&by=department&format=xlsx", false, "四率"),
        ("month=2026-03&lang=en&format=xlsx", true, "Rates"),
        ("month=2026-03&lang=en", true, ""),
    ] {
        let (table, sheet) = d
            .table(&format!("/api/v1/rates/export?{query}"), &analyst, "rates")
            .await;
        if query.contains("xlsx") {
            assert_eq!(sheet, name);
        }
        assert_eq!(table[0], header(columns, en), "{query}");
        assert_eq!(table[1..], rates("true", "false"), "{query}");
    }
    // by=channel: the 110 line has the late contact.
    let (table, _) = d
        .table(
            "/api/v1/rates/export?month=2026-03&by=channel",
            &analyst,
            "rates",
        )
        .await;
    let keys: Vec<&str> = table[1..].iter().map(|r| r[2].as_str()).collect();
    assert_eq!(keys, ["district", "110", "12345"]);
    assert_eq!(table[2][3..7], strings(&[&["0", "0", "1", "true"]])[0]);

    // The ranking of March under the default policy: market 100, housing 0 (only its response
    // rate has data); three best, two worst, so both are on the best list.
    let json = d.get("/api/v1/rankings?period=2026-03", &analyst).await;
    assert_eq!(json.status, 200, "{}", json.body);
    assert_eq!(json.body["best"], json!([MARKET, HOUSING]), "{}", json.body);
    let ranking = strings(&[
        &[
            "2026-03", "1", MARKET, "100", "100", "0", "100", "100", "100", "100", "", "0",
            "false", "best",
        ],
        &[
            "2026-03", "2", HOUSING, "0", "0", "0", "0", "", "", "", "", "0", "false", "best",
        ],
    ]);
    let columns = linkage_query_api::rankings::EXPORT_COLUMNS;
    for (query, en) in [
        ("period=2026-03", false),
        ("period=2026-03&format=xlsx&lang=en", true),
        ("period=2026-Q1&policy=in_force&format=xlsx", false),
    ] {
        let (table, _) = d
            .table(
                &format!("/api/v1/rankings/export?{query}"),
                &analyst,
                "rankings",
            )
            .await;
        assert_eq!(table[0], header(columns, en), "{query}");
        let mut expected = ranking.clone();
        if query.contains("Q1") {
            for row in &mut expected {
                row[0] = "2026-Q1".into();
            }
        }
        assert_eq!(table[1..], expected, "{query}");
    }

    // Complaint notices of March: one complaint per unit, in name order on a tie.
    let notices = strings(&[
        &["2026-03", "某审批科", "1", "approval_delay", "1"],
        &[
            "2026-03",
            "某街道综合执法队",
            "1",
            "arbitrary_inspections",
            "1",
        ],
    ]);
    let columns = linkage_query_api::complaints::EXPORT_COLUMNS;
    for (query, en, rows) in [
        ("period=2026-03", false, &notices[..]),
        ("period=2026-03&format=xlsx&lang=en", true, &notices[..]),
        ("period=2026-03&unit=某审批科", false, &notices[..1]),
        ("period=2026-04&format=xlsx", false, &notices[..0]),
    ] {
        let (table, _) = d
            .table(
                &format!("/api/v1/complaint-notices/export?{query}"),
                &analyst,
                "complaint-notices",
            )
            .await;
        assert_eq!(table[0], header(columns, en), "{query}");
        assert_eq!(table[1..], *rows, "{query}");
    }
}

#[tokio::test]
async fn bad_export_requests_are_refused_before_any_row() {
    let d = district().await;
    let analyst = d.app.token(Role::Analyst, None);
    let events = d.app.total_events().await;
    for (path, field) in [
        ("/api/v1/ledger/export?format=pdf", "format"),
        ("/api/v1/ledger/export?lang=fr", "lang"),
        ("/api/v1/ledger/export?status=lost", "status"),
        ("/api/v1/ledger/export?limit=0", "limit"),
        (
            "/api/v1/ledger/export?filed_from=2026-03-05&filed_to=2026-03-01",
            "filed_from",
        ),
        ("/api/v1/ledger/export?format=csv&format=xlsx", "format"),
        ("/api/v1/ledger/export?colour=red", "colour"),
        ("/api/v1/rates/export", "month"),
        ("/api/v1/rates/export?month=2026-13", "month"),
        ("/api/v1/rates/export?month=2026-03&by=street", "by"),
        (
            "/api/v1/rankings/export?period=2026-03&policy=next",
            "policy",
        ),
        ("/api/v1/rankings/export?period=soon", "period"),
        (
            "/api/v1/complaint-notices/export?period=2026-03&format=docx",
            "format",
        ),
        ("/api/v1/complaint-notices/export", "period"),
    ] {
        let a = d.get(path, &analyst).await;
        a.assert_problem(422, "invalid-field");
        assert_eq!(a.body["field"], field, "{path}: {}", a.body);
        assert!(a.headers.get("content-disposition").is_none(), "{path}");
    }
    // Roles: enterprises read nothing, admins no appeals; no token is 401.
    let enterprise = d.app.token(Role::Enterprise, None);
    for path in [
        "/api/v1/ledger/export",
        "/api/v1/rates/export?month=2026-03",
        "/api/v1/rankings/export?period=2026-03",
        "/api/v1/complaint-notices/export?period=2026-03",
    ] {
        d.get(path, &enterprise)
            .await
            .assert_problem(403, "forbidden");
        let raw = d.get_raw(path, "not-a-token", &[]).await;
        assert_eq!(raw.status, 401, "{path}");
    }
    d.get("/api/v1/ledger/export", &d.app.token(Role::Admin, None))
        .await
        .assert_problem(403, "forbidden");
    // Reads change nothing.
    assert_eq!(d.app.total_events().await, events);
}

#[tokio::test]
async fn freshness_lists_every_view_and_the_answers_carry_theirs() {
    let d = district().await;
    let analyst = d.app.token(Role::Analyst, None);
    let last: i64 = sqlx::query_scalar(
        "SELECT max(global_position) FROM events WHERE aggregate_type = 'appeal'",
    )
    .fetch_one(&d.app.db.pool)
    .await
    .expect("last position");

    let a = d.get("/api/v1/freshness", &analyst).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let views = a.body["views"].as_array().expect("views");
    let names: Vec<&str> = views.iter().map(|v| v["view"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["ledger", "rates", "style", "assessment", "complaints"]
    );
    let ledger = &views[0];
    assert_eq!(ledger["position"], last, "{ledger}");
    assert!(
        DateTime::parse_from_rfc3339(ledger["updated_at"].as_str().expect("updated_at")).is_ok()
    );
    // The rates and complaints projections read appeal events too: they have applied the last.
    assert_eq!(views[1]["position"], last);
    assert_eq!(views[4]["position"], last);

    // The same object in each JSON answer.
    let view = |name: &str| views.iter().find(|v| v["view"] == name).unwrap().clone();
    for (path, name) in [
        ("/api/v1/ledger", "ledger"),
        ("/api/v1/alerts", "ledger"),
        ("/api/v1/rates?month=2026-03", "rates"),
        ("/api/v1/complaint-notices?period=2026-03", "complaints"),
        ("/api/v1/style-evaluations?quarter=2026-Q1", "style"),
    ] {
        let a = d.get(path, &analyst).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        let fresh = &a.body["freshness"];
        for key in ["view", "position", "updated_at"] {
            assert_eq!(fresh[key], view(name)[key], "{path}: {fresh}");
        }
    }
    let a = d.get("/api/v1/rankings?period=2026-03", &analyst).await;
    let fresh: Vec<&str> = a.body["freshness"]
        .as_array()
        .expect("one per projection read")
        .iter()
        .map(|f| f["view"].as_str().unwrap())
        .collect();
    assert_eq!(fresh, ["rates", "style", "assessment"]);

    // Every read role may ask; enterprises may not; bad input is refused.
    for role in [
        Role::Analyst,
        Role::Auditor,
        Role::Supervisor,
        Role::Dispatcher,
        Role::Evaluator,
        Role::Admin,
    ] {
        assert_eq!(
            d.get("/api/v1/freshness", &d.app.token(role, None))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        d.get(
            "/api/v1/freshness",
            &d.app.token(Role::Handler, Some(HOUSING))
        )
        .await
        .status,
        200
    );
    d.get("/api/v1/freshness", &d.app.token(Role::Enterprise, None))
        .await
        .assert_problem(403, "forbidden");
    d.get("/api/v1/freshness?view=ledger", &analyst)
        .await
        .assert_problem(422, "invalid-field");
}
