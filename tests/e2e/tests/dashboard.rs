//! The analysts' dashboard (docs/dashboard.md) in headless Chromium, over the whole spine in
//! process: five appeals of September 2026 posted over HTTP with a pinned clock, relayed through
//! NATS JetStream into the read models, and the page served by the query API at `/`. The page
//! must load without a console error, draw the rates with the API's numbers against the target
//! line, mark the veto and the best/worst lists, count the red lights, filter the ledger,
//! download the filtered ledger as XLSX and switch to English, remembering the choice.
//!
//! The scenario (Beijing time; 09-01 is a Tuesday, contact due 2 hours after assignment):
//!
//! | appeal | channel | lead | what happens | status |
//! |---|---|---|---|---|
//! | A1 | 110 | market-supervision | contact 09:30, resolved 09-03, satisfied | closed |
//! | A2 | 12345 | market-supervision | contact 12:00 (late), resolved 09-08, not solved, dissatisfied | return_visited |
//! | A3 | 12345 | housing | contact 10:00, nothing since | assigned |
//! | A4 | online | — | filed only | filed |
//! | A5 | 110 | housing | assigned 09-02, never contacted; 09-03 accountability for enterprise harassment (一票否决) | assigned |
//!
//! September by department: market-supervision response 1/2 = 50.0%, on-time completion 2/2 =
//! 100.0%, resolution 1/2 = 50.0%, satisfaction 1/2 = 50.0%; housing response 1/2 = 50.0% (A5's
//! missed contact is learnt from the accountability event), nothing else counted. 2026-Q3
//! ranking: housing vetoed and last; market-supervision on the best list, housing on the worst.
//! Red lights (every deadline is long past): A3 feedback and resolution, A5 contact, feedback
//! and resolution = 5; the ledger filtered to housing is A3 and A5.

use std::net::SocketAddr;
use std::time::Duration;

use calamine::{Data, Reader, Xlsx};
use linkage_auth::Role;
use linkage_e2e::browser::{Browser, Page};
use linkage_e2e::{ReadSide, TestApp, beijing as bj, spawn_app};
use serde_json::{Value, json};

const MARKET: &str = "market-supervision";
const HOUSING: &str = "housing";

/// The command API, the relay, the projector (every projection) and the query API, in process.
struct Stack {
    app: TestApp,
    query: SocketAddr,
    read_side: ReadSide,
}

async fn stack() -> Stack {
    let app = spawn_app().await;
    let read_side = app.spawn_read_side("dashboard").await;
    let query = app.spawn_query_api().await;
    Stack {
        app,
        query,
        read_side,
    }
}

impl Stack {
    fn token(&self, role: Role) -> String {
        self.app.token(role, None)
    }

    /// Files an appeal at `at`; returns its id and tracking number.
    async fn file(&self, at: &str, channel: &str, category: &str, town: &str) -> (String, String) {
        self.app.clock.set(bj(at));
        let body = json!({
            "channel": channel,
            "filer": {"kind": "enterprise", "name": "某某制造有限公司", "phone": "13800130000"},
            "category": category,
            "town": town,
            "description": "企业诉求",
        });
        let a = self
            .app
            .post(
                "/api/v1/appeals",
                &self.token(Role::Dispatcher),
                &body,
                None,
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        (
            a.body["appeal_id"].as_str().expect("id").to_owned(),
            a.body["tracking_number"]
                .as_str()
                .expect("tracking number")
                .to_owned(),
        )
    }

    async fn at(&self, at: &str, id: &str, command: &str, token: &str, body: Value) {
        self.app.clock.set(bj(at));
        self.app.command_ok(id, command, token, body).await;
    }

    fn handler(&self, dept: &str) -> String {
        self.app.token(Role::Handler, Some(dept))
    }

    /// The five appeals of the module's table; their tracking numbers A1..A5.
    async fn september(&self) -> [String; 5] {
        let dispatcher = self.token(Role::Dispatcher);
        let supervisor = self.token(Role::Supervisor);
        let evaluator = self.token(Role::Evaluator);
        let market = self.handler(MARKET);
        let housing = self.handler(HOUSING);
        let assign = |lead: &str| json!({"lead": lead});
        let resolve = json!({"outcome": "resolved", "text": "已办结"});
        let contact = json!({"method": "phone"});

        let (a1, t1) = self
            .file("2026-09-01 09:00", "110", "arbitrary_inspections", "城关镇")
            .await;
        self.at(
            "2026-09-01 09:00",
            &a1,
            "assign",
            &dispatcher,
            assign(MARKET),
        )
        .await;
        self.at("2026-09-01 09:30", &a1, "contact", &market, contact.clone())
            .await;
        self.at("2026-09-03 10:00", &a1, "resolve", &market, resolve.clone())
            .await;
        let visit = json!({"reached": true, "solved": true, "satisfaction": "satisfied"});
        self.at("2026-09-04 10:00", &a1, "return-visit", &evaluator, visit)
            .await;
        self.at("2026-09-04 11:00", &a1, "close", &supervisor, json!({}))
            .await;

        let (a2, t2) = self
            .file("2026-09-01 09:00", "12345", "approval_delay", "经济开发区")
            .await;
        self.at(
            "2026-09-01 09:00",
            &a2,
            "assign",
            &dispatcher,
            assign(MARKET),
        )
        .await;
        self.at("2026-09-01 12:00", &a2, "contact", &market, contact.clone())
            .await;
        self.at("2026-09-08 10:00", &a2, "resolve", &market, resolve)
            .await;
        let visit = json!({"reached": true, "solved": false, "satisfaction": "dissatisfied"});
        self.at("2026-09-09 10:00", &a2, "return-visit", &evaluator, visit)
            .await;

        let (a3, t3) = self
            .file("2026-09-01 09:00", "12345", "arbitrary_fines", "城关镇")
            .await;
        self.at(
            "2026-09-01 09:00",
            &a3,
            "assign",
            &dispatcher,
            assign(HOUSING),
        )
        .await;
        self.at("2026-09-01 10:00", &a3, "contact", &housing, contact)
            .await;

        let (_, t4) = self
            .file("2026-09-02 10:00", "online", "infrastructure", "经济开发区")
            .await;

        let (a5, t5) = self
            .file("2026-09-02 09:00", "110", "arbitrary_charges", "城关镇")
            .await;
        self.at(
            "2026-09-02 09:00",
            &a5,
            "assign",
            &dispatcher,
            assign(HOUSING),
        )
        .await;
        let harassment =
            json!({"department": HOUSING, "kind": "enterprise_harassment", "note": "多次上门检查"});
        self.at(
            "2026-09-03 10:00",
            &a5,
            "accountability",
            &supervisor,
            harassment,
        )
        .await;
        [t1, t2, t3, t4, t5]
    }

    /// Waits until every projection has applied every event in the store (liveness only).
    async fn caught_up(&self) {
        let pool = &self.app.db.pool;
        for _ in 0..1200 {
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM projection_checkpoints \
                 WHERE coalesce(global_position, 0) < (SELECT max(global_position) FROM events)",
            )
            .fetch_one(pool)
            .await
            .expect("checkpoints");
            let projections: i64 =
                sqlx::query_scalar("SELECT count(*) FROM projection_checkpoints")
                    .fetch_one(pool)
                    .await
                    .expect("checkpoints");
            if behind == 0 && projections >= 5 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the projections never caught up with the event store");
    }

    /// A query API answer as the analyst gets it.
    async fn get(&self, path: &str) -> Value {
        let response = self
            .app
            .http
            .get(format!("http://{}{path}", self.query))
            .bearer_auth(self.token(Role::Analyst))
            .send()
            .await
            .expect("request");
        let a = TestApp::answer(response).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a.body
    }

    async fn stop(self) {
        self.read_side.stop().await;
    }
}

/// Waits until every section of the board has loaded; fails with the first section's error.
async fn board_ready(page: &Page<'_>) {
    let state = page
        .wait_for(
            r#"(() => {
                const ids = ['freshness', 'rates', 'ranking', 'alerts', 'ledger'];
                const sections = ids.map((id) => document.getElementById(id + '-section'));
                const bad = sections.find((s) => s.dataset.state === 'error');
                if (bad) return 'error in ' + bad.id + ': ' + bad.querySelector('.error').textContent;
                return sections.every((s) => s.dataset.state === 'ready') ? 'ready' : '';
            })()"#,
            "every section of the dashboard to load",
        )
        .await
        .expect("the board loads");
    assert_eq!(state, "ready");
}

/// The text of each cell of each body row of a table.
async fn table(page: &Page<'_>, selector: &str) -> Vec<Vec<String>> {
    let rows = page
        .eval(&format!(
            "[...document.querySelectorAll('{selector} tbody tr')]
               .map((tr) => [...tr.cells].map((c) => c.textContent.trim()))"
        ))
        .await
        .expect("table");
    serde_json::from_value(rows).expect("rows of cells")
}

async fn ledger_numbers(page: &Page<'_>) -> Vec<String> {
    let numbers = page
        .eval("[...document.querySelectorAll('#ledger tbody tr')].map((tr) => tr.dataset.appeal)")
        .await
        .expect("ledger rows");
    serde_json::from_value(numbers).expect("tracking numbers")
}

/// What a chart was given: x-axis labels, each series' id and values, the target line.
async fn chart(page: &Page<'_>, by: &str) -> Value {
    page.eval(&format!(
        "(() => {{
            const o = window.linkageDashboard.charts.{by}.getOption();
            return {{
                x: o.xAxis[0].data,
                series: o.series.map((s) => ({{ id: s.id, name: s.name, data: s.data }})),
                target: o.series[0].markLine.data[0].yAxis,
            }};
        }})()"
    ))
    .await
    .expect("chart option")
}

/// Pixels of a chart's canvas in the first series' colour (#5470c6): the bars were drawn.
async fn bar_pixels(page: &Page<'_>, by: &str) -> u64 {
    page.eval(&format!(
        "(() => {{
            const canvas = document.querySelector('#chart-{by} canvas');
            const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {{
                if (Math.abs(d[i] - 0x54) < 8 && Math.abs(d[i + 1] - 0x70) < 8 && Math.abs(d[i + 2] - 0xc6) < 8 && d[i + 3] > 200) n++;
            }}
            return n;
        }})()"
    ))
    .await
    .expect("canvas pixels")
    .as_u64()
    .expect("a count")
}

/// Numbers as `f64` (JavaScript has no integers: 90.0 comes back as 90), `null` as `None`.
fn numbers(v: &Value) -> Vec<Option<f64>> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(Value::as_f64)
        .collect()
}

/// The chart shows the API's percentages, group by group, rate by rate.
fn assert_chart_matches(chart: &Value, answer: &Value, label: impl Fn(&str) -> String) {
    let groups = answer["groups"].as_array().expect("groups");
    let keys: Vec<String> = groups
        .iter()
        .map(|g| label(g["key"].as_str().expect("key")))
        .collect();
    assert_eq!(chart["x"], json!(keys), "{chart}");
    assert_eq!(
        chart["target"].as_f64(),
        answer["target_percent"].as_f64(),
        "{chart}"
    );
    for (i, rate) in [
        "response",
        "on_time_completion",
        "resolution",
        "satisfaction",
    ]
    .iter()
    .enumerate()
    {
        let series = &chart["series"][i];
        assert_eq!(series["id"], *rate, "{chart}");
        let expected: Vec<Option<f64>> = groups
            .iter()
            .map(|g| g["rates"][rate]["percent"].as_f64())
            .collect();
        assert_eq!(numbers(&series["data"]), expected, "{rate}: {chart}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_rates_ranking_lights_and_the_ledger_filters_and_exports() {
    let s = stack().await;
    let [t1, t2, t3, t4, t5] = s.september().await;
    s.caught_up().await;
    let by_department = s.get("/api/v1/rates?month=2026-09&by=department").await;
    let by_channel = s.get("/api/v1/rates?month=2026-09&by=channel").await;
    let ranking = s.get("/api/v1/rankings?period=2026-Q3").await;

    let browser = Browser::launch().await.expect("Chromium");
    let page = browser.new_page().await.expect("a tab");
    let token = s.token(Role::Analyst);
    page.goto(&format!(
        "http://{}/?month=2026-09&ranking=quarter#token={token}",
        s.query
    ))
    .await
    .expect("the dashboard");
    board_ready(&page).await;

    let screenshots =
        std::env::var_os("LINKAGE_DASHBOARD_SCREENSHOTS").map(std::path::PathBuf::from);
    if let Some(dir) = &screenshots {
        page.screenshot(1440, &dir.join("dashboard-test.png"))
            .await
            .expect("screenshot");
    }

    // The token moved from the address bar into this tab's session.
    let address = page.eval("location.href").await.expect("href");
    assert!(
        !address.as_str().expect("href").contains("token"),
        "{address}"
    );
    assert_eq!(
        page.eval("sessionStorage.getItem('linkage.dashboard.token')")
            .await
            .expect("token"),
        json!(token)
    );
    assert_eq!(
        page.eval("document.documentElement.lang")
            .await
            .expect("lang"),
        "zh-CN"
    );

    // Rates: the charts hold the API's numbers, the hand-computed ones among them, and drew
    // their bars.
    let department_chart = chart(&page, "department").await;
    assert_chart_matches(&department_chart, &by_department, |key| {
        match key {
            MARKET => "区市场监管局",
            HOUSING => "区住建局",
            other => panic!("unexpected department {other}"),
        }
        .to_owned()
    });
    // Housing, then market-supervision (the API orders groups by key).
    assert_eq!(
        numbers(&department_chart["series"][0]["data"]),
        [Some(50.0), Some(50.0)],
        "response"
    );
    assert_eq!(
        numbers(&department_chart["series"][1]["data"]),
        [None, Some(100.0)],
        "on-time completion"
    );
    assert_eq!(department_chart["series"][1]["name"], "办结率");
    assert_eq!(department_chart["target"].as_f64(), Some(90.0));
    let channel_chart = chart(&page, "channel").await;
    assert_chart_matches(&channel_chart, &by_channel, |key| {
        match key {
            "110" => "110社会联动",
            "12345" => "12345热线",
            other => panic!("unexpected channel {other}"),
        }
        .to_owned()
    });
    assert!(bar_pixels(&page, "department").await > 100);
    assert!(bar_pixels(&page, "channel").await > 100);
    let district_response = page
        .eval("document.querySelector('.kpi[data-rate=response] .value').textContent")
        .await
        .expect("kpi");
    // District: 2 on time of 4 contacts.
    assert_eq!(district_response, "50.0%");

    // Ranking: the API's order; the veto and the lists marked.
    let rows = table(&page, "#ranking").await;
    let departments: Vec<&str> = ranking["departments"]
        .as_array()
        .expect("departments")
        .iter()
        .map(|d| d["department"].as_str().expect("id"))
        .collect();
    assert_eq!(departments, [MARKET, HOUSING], "{ranking}");
    assert_eq!(ranking["best"], json!([MARKET]));
    assert_eq!(ranking["worst"], json!([HOUSING]));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], "1");
    assert_eq!(rows[0][1], "区市场监管局");
    assert_eq!(rows[0][4], "50.0%", "response rate: {rows:?}");
    assert_eq!(rows[0][5], "100.0%", "on-time completion: {rows:?}");
    assert_eq!(rows[0][10], "", "no veto: {rows:?}");
    assert_eq!(rows[0][11], "三佳");
    assert_eq!(rows[1][1], "区住建局");
    assert_eq!(rows[1][5], "—", "nothing completed: {rows:?}");
    assert_eq!(rows[1][10], "一票否决");
    assert_eq!(rows[1][11], "二差");
    let score = |d: &Value| format!("{:.1}", d["score"].as_f64().expect("score"));
    assert_eq!(rows[0][2], score(&ranking["departments"][0]));
    assert_eq!(rows[1][2], score(&ranking["departments"][1]));

    // Traffic lights: five red deadlines, A3's and A5's.
    assert_eq!(
        page.eval("document.getElementById('light-red').textContent")
            .await
            .expect("red"),
        "5"
    );
    let red = table(&page, "#red-list").await;
    let mut red_appeals: Vec<&str> = red.iter().map(|r| r[0].as_str()).collect();
    red_appeals.sort();
    let mut expected_red = vec![
        t3.as_str(),
        t3.as_str(),
        t5.as_str(),
        t5.as_str(),
        t5.as_str(),
    ];
    expected_red.sort();
    assert_eq!(red_appeals, expected_red, "{red:?}");

    // Ledger: every appeal, newest filed first; then only housing's.
    let mut all = ledger_numbers(&page).await;
    all.sort();
    let mut expected_all = vec![t1.clone(), t2.clone(), t3.clone(), t4.clone(), t5.clone()];
    expected_all.sort();
    assert_eq!(all, expected_all);
    let loads = page
        .eval("Number(document.getElementById('ledger-section').dataset.loads)")
        .await
        .expect("loads");
    page.eval(&format!(
        "document.getElementById('ledger-filters').elements.department.value = '{HOUSING}';
         document.getElementById('ledger-apply').click()"
    ))
    .await
    .expect("filter");
    page.wait_for(
        &format!(
            "(() => {{ const s = document.getElementById('ledger-section');
                       return s.dataset.state === 'ready' && Number(s.dataset.loads) > {loads}; }})()"
        ),
        "the filtered ledger",
    )
    .await
    .expect("filtered");
    let mut housing = ledger_numbers(&page).await;
    housing.sort();
    let mut expected_housing = vec![t3.clone(), t5.clone()];
    expected_housing.sort();
    assert_eq!(housing, expected_housing);
    let count = page
        .eval("document.getElementById('ledger-count').textContent")
        .await
        .expect("count");
    assert_eq!(count, "已显示 2 条");

    // The XLSX download of the same filter: a zip workbook with the header and A3, A5.
    page.eval("document.getElementById('ledger-export').click()")
        .await
        .expect("export");
    let download = browser.download().await.expect("the XLSX download");
    assert!(
        download.suggested_filename.starts_with("ledger-")
            && download.suggested_filename.ends_with(".xlsx"),
        "{download:?}"
    );
    let bytes = std::fs::read(&download.path).expect("the downloaded file");
    assert!(bytes.starts_with(b"PK\x03\x04"), "not a zip");
    let mut workbook = Xlsx::new(std::io::Cursor::new(bytes)).expect("an XLSX workbook");
    let sheet = workbook
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("readable");
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(Data::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 3, "header and two appeals: {rows:?}");
    assert_eq!(rows[0][0], "工单编号", "Chinese headers by default");
    let mut exported: Vec<String> = rows[1..].iter().map(|r| r[0].clone()).collect();
    exported.sort();
    assert_eq!(exported, expected_housing);
    page.wait_for(
        "document.getElementById('ledger-section').dataset.export === 'done'",
        "the export to be reported",
    )
    .await
    .expect("export reported");

    // English, remembered across a reload (the token stays in the tab's session).
    page.eval("document.getElementById('lang-toggle').click()")
        .await
        .expect("toggle");
    page.wait_for("document.documentElement.lang === 'en'", "English")
        .await
        .expect("English");
    assert_eq!(
        page.eval("document.getElementById('ledger-title').textContent")
            .await
            .expect("title"),
        "Ledger"
    );
    assert_eq!(
        chart(&page, "department").await["series"][1]["name"],
        "On-time completion rate"
    );
    let rows = table(&page, "#ranking").await;
    assert_eq!(rows[1][10], "One-vote veto");
    assert_eq!(rows[0][11], "Best");
    page.eval("window.beforeReload = true; location.reload()")
        .await
        .expect("reload");
    page.wait_for(
        "!window.beforeReload && document.body?.dataset.started === 'true'",
        "the reloaded page",
    )
    .await
    .expect("reloaded");
    board_ready(&page).await;
    assert_eq!(
        page.eval("document.documentElement.lang")
            .await
            .expect("lang"),
        "en"
    );
    assert_eq!(
        page.eval("document.getElementById('ledger-title').textContent")
            .await
            .expect("title"),
        "Ledger"
    );
    assert_eq!(
        page.eval("localStorage.getItem('linkage.dashboard.lang')")
            .await
            .expect("stored"),
        "en"
    );

    if let Some(dir) = &screenshots {
        page.screenshot(1440, &dir.join("dashboard-test-en.png"))
            .await
            .expect("screenshot");
    }

    let errors = browser.errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    browser.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_asks_for_a_token_and_shows_refusals_as_their_problem() {
    let app = spawn_app().await;
    let query = app.spawn_query_api().await;
    let browser = Browser::launch().await.expect("Chromium");
    let page = browser.new_page().await.expect("a tab");

    // No token: the sign-in box, and no call was made.
    page.goto(&format!("http://{query}/")).await.expect("page");
    page.wait_for("document.body.dataset.started === 'true'", "the page")
        .await
        .expect("started");
    let visible = page
        .eval(
            "[!document.getElementById('signin').hidden, document.getElementById('board').hidden]",
        )
        .await
        .expect("visibility");
    assert_eq!(visible, json!([true, true]));
    assert!(browser.errors().is_empty(), "{:#?}", browser.errors());

    // A forged token: the API's 401 problem is shown and the token forgotten.
    page.eval(
        "document.getElementById('token-input').value = 'not-a-token';
         document.querySelector('#signin-form button').click()",
    )
    .await
    .expect("sign in");
    let notice = page
        .wait_for(
            "!document.getElementById('notice').hidden && document.getElementById('signin').hidden === false
               && document.getElementById('notice').textContent",
            "the refusal",
        )
        .await
        .expect("notice");
    let notice = notice.as_str().expect("text");
    assert!(
        notice.contains("令牌无效或已过期") && notice.contains("Unauthenticated"),
        "{notice}"
    );
    assert_eq!(
        page.eval("sessionStorage.getItem('linkage.dashboard.token')")
            .await
            .expect("token"),
        Value::Null
    );
    // The only errors are the browser's notes of the refused calls.
    let errors = browser.errors();
    assert!(
        !errors.is_empty() && errors.iter().all(|e| e.contains("401")),
        "{errors:#?}"
    );

    // A real analyst token pasted into the box opens the (empty) board.
    let token = app.token(Role::Analyst, None);
    page.eval(&format!(
        "document.getElementById('token-input').value = '{token}';
         document.querySelector('#signin-form button').click()"
    ))
    .await
    .expect("sign in");
    board_ready(&page).await;
    assert_eq!(
        page.eval("document.getElementById('notice').hidden")
            .await
            .expect("notice"),
        true
    );
    let empty = table(&page, "#ledger").await;
    assert_eq!(empty, vec![vec!["没有符合条件的诉求。".to_owned()]]);

    // A filter the API refuses: its 422 problem in the ledger's section, the board still there.
    page.eval(
        "document.getElementById('ledger-filters').elements.department.value = '住建局';
         document.getElementById('ledger-apply').click()",
    )
    .await
    .expect("filter");
    let error = page
        .wait_for(
            "document.getElementById('ledger-section').dataset.state === 'error'
               && document.querySelector('#ledger-section .error').textContent",
            "the refused filter",
        )
        .await
        .expect("error shown");
    let error = error.as_str().expect("text");
    assert!(
        error.starts_with("422 Invalid field") && error.contains("department"),
        "{error}"
    );
    assert_eq!(
        page.eval("document.getElementById('board').hidden")
            .await
            .expect("board"),
        false
    );
    browser.close().await;
}
