//! Metrics and assessment end to end (docs/metrics.md): thirteen appeals over July and August
//! 2026 posted over HTTP with a pinned clock, relayed through NATS JetStream into the rates,
//! style, assessment and complaint projections, read back from the query API. Every expected
//! number below is computed by hand in the comments; the answers must be equal after a rebuild
//! of every projection from the event store.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use linkage_auth::Role;
use linkage_bus::Bus;
use linkage_e2e::{ReadSide, TestApp, beijing as bj, spawn_app};
use serde_json::{Value, json};

const MARKET: &str = "market";
const HOUSING: &str = "housing";
const TAX: &str = "tax";
const INSPECTORS: &str = "某街道综合执法队";
const TAX_BRANCH: &str = "区税务分局";

/// The command API, the relay, the projector (every projection) and the query API, in process.
struct Stack {
    app: TestApp,
    query: SocketAddr,
    read_side: Option<ReadSide>,
}

async fn stack() -> Stack {
    let app = spawn_app().await;
    let read_side = app.spawn_read_side("metrics").await;
    let query = app.spawn_query_api().await;
    Stack {
        app,
        query,
        read_side: Some(read_side),
    }
}

impl Stack {
    fn token(&self, role: Role, dept: Option<&str>) -> String {
        self.app.token(role, dept)
    }

    fn handler(&self, dept: &str) -> String {
        self.token(Role::Handler, Some(dept))
    }

    /// Files an appeal at `at`; returns its id.
    async fn file(
        &self,
        at: &str,
        channel: &str,
        town: &str,
        complaint: Option<(&str, &str)>,
    ) -> String {
        self.app.clock.set(bj(at));
        let (unit, category) = complaint.unwrap_or(("", "approval_delay"));
        let mut body = json!({
            "channel": channel,
            "filer": {"kind": "enterprise", "name": "某某制造有限公司", "phone": "13800130000"},
            "category": category,
            "town": town,
            "description": "企业诉求",
        });
        if !unit.is_empty() {
            body["complained_unit"] = json!(unit);
        }
        let a = self
            .app
            .post(
                "/api/v1/appeals",
                &self.token(Role::Dispatcher, None),
                &body,
                None,
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["appeal_id"].as_str().expect("appeal id").to_owned()
    }

    /// Sends `command` on appeal `id` at `at`.
    async fn at(&self, at: &str, id: &str, command: &str, token: &str, body: Value) {
        self.app.clock.set(bj(at));
        self.app.command_ok(id, command, token, body).await;
    }

    /// Files and assigns an appeal at `at`.
    async fn assigned(
        &self,
        at: &str,
        lead: &str,
        channel: &str,
        town: &str,
        complaint: Option<(&str, &str)>,
    ) -> String {
        let id = self.file(at, channel, town, complaint).await;
        let dispatcher = self.token(Role::Dispatcher, None);
        self.at(at, &id, "assign", &dispatcher, json!({"lead": lead}))
            .await;
        id
    }

    async fn contact(&self, at: &str, id: &str, dept: &str) {
        self.at(
            at,
            id,
            "contact",
            &self.handler(dept),
            json!({"method": "phone"}),
        )
        .await;
    }

    async fn resolve(&self, at: &str, id: &str, dept: &str) {
        let body = json!({"outcome": "resolved", "text": "已办结"});
        self.at(at, id, "resolve", &self.handler(dept), body).await;
    }

    async fn visit(&self, at: &str, id: &str, body: Value) {
        let evaluator = self.token(Role::Evaluator, None);
        self.at(at, id, "return-visit", &evaluator, body).await;
    }

    async fn visited(&self, at: &str, id: &str, solved: bool, satisfaction: &str) {
        let body = json!({"reached": true, "solved": solved, "satisfaction": satisfaction});
        self.visit(at, id, body).await;
    }

    /// Sends a style evaluation at `at` as `token`.
    async fn evaluate(&self, at: &str, token: &str, dept: &str, score: u8) {
        self.app.clock.set(bj(at));
        let scores: BTreeMap<&str, u8> = [
            "service_attitude",
            "efficiency",
            "lawful_administration",
            "integrity",
            "promise_keeping",
        ]
        .into_iter()
        .map(|d| (d, score))
        .collect();
        let a = self
            .app
            .post(
                "/api/v1/style-evaluations",
                token,
                &json!({"quarter": "2026-Q3", "department": dept, "scores": scores}),
                None,
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
    }

    async fn set_policy(&self, at: &str, policy: Value) -> Value {
        self.app.clock.set(bj(at));
        let a = self
            .app
            .post(
                "/api/v1/assessment-policy",
                &self.token(Role::Admin, None),
                &json!({"policy": policy, "reason": "考核委员会决定"}),
                None,
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body
    }

    /// Waits until every projection has applied every event in the store (liveness only).
    async fn caught_up(&self) {
        let pool = &self.app.db.pool;
        for _ in 0..1200 {
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM projection_checkpoints \
                 WHERE name IN ('ledger', 'rates', 'style', 'assessment', 'complaints') \
                   AND coalesce(global_position, 0) < (SELECT max(global_position) FROM events)",
            )
            .fetch_one(pool)
            .await
            .expect("checkpoints");
            let projections: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM projection_checkpoints \
                 WHERE name IN ('ledger', 'rates', 'style', 'assessment', 'complaints')",
            )
            .fetch_one(pool)
            .await
            .expect("checkpoints");
            if behind == 0 && projections == 5 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the projections never caught up with the event store");
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .app
            .http
            .get(format!("http://{}{path}", self.query))
            .bearer_auth(self.token(Role::Analyst, None))
            .send()
            .await
            .expect("request");
        let a = TestApp::answer(response).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a.body
    }

    /// Stops the relay and the projector; the query API keeps answering.
    async fn stop_read_side(&mut self) -> Bus {
        let read_side = self.read_side.take().expect("the read side is running");
        read_side.stop().await
    }
}

/// `(numerator, denominator)` of each rate of a rates object, in the order response,
/// on-time completion, resolution, satisfaction.
fn fractions(rates: &Value) -> [(f64, i64); 4] {
    [
        "response",
        "on_time_completion",
        "resolution",
        "satisfaction",
    ]
    .map(|r| {
        (
            rates[r]["numerator"].as_f64().expect("numerator"),
            rates[r]["denominator"].as_i64().expect("denominator"),
        )
    })
}

fn group<'a>(answer: &'a Value, key: &str) -> &'a Value {
    answer["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["key"] == key)
        .map(|g| &g["rates"])
        .unwrap_or_else(|| panic!("no group {key}: {answer}"))
}

/// The answers the test checks, without their freshness (which moves with a rebuild).
async fn answers(s: &Stack) -> BTreeMap<&'static str, Value> {
    let paths = [
        (
            "july_by_department",
            "/api/v1/rates?month=2026-07&by=department",
        ),
        ("july_by_channel", "/api/v1/rates?month=2026-07&by=channel"),
        ("august_by_department", "/api/v1/rates?month=2026-08"),
        ("august_by_town", "/api/v1/rates?month=2026-08&by=town"),
        ("style", "/api/v1/style-evaluations?quarter=2026-Q3"),
        ("ranking_in_force", "/api/v1/rankings?period=2026-Q3"),
        (
            "ranking_current",
            "/api/v1/rankings?period=2026-Q3&policy=current",
        ),
        ("ranking_july", "/api/v1/rankings?period=2026-07"),
        ("notices_july", "/api/v1/complaint-notices?period=2026-07"),
        (
            "notices_unit",
            "/api/v1/complaint-notices?period=2026-Q3&unit=%E6%9F%90%E8%A1%97%E9%81%93%E7%BB%BC%E5%90%88%E6%89%A7%E6%B3%95%E9%98%9F",
        ),
    ];
    let mut out = BTreeMap::new();
    for (name, path) in paths {
        let mut v = s.get(path).await;
        if let Some(o) = v.as_object_mut() {
            o.remove("freshness");
        }
        out.insert(name, v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_months_of_appeals_give_the_documented_rates_ranking_and_notices() {
    let mut s = stack().await;
    let dispatcher = s.token(Role::Dispatcher, None);
    let supervisor = s.token(Role::Supervisor, None);
    let admin = s.token(Role::Admin, None);

    // Policy v1, in force for all of Q3: the defaults with 1 best and 1 worst.
    let mut v1 = serde_json::to_value(linkage_domain::assessment::AssessmentPolicy::default())
        .expect("policy");
    v1["best"] = json!(1);
    v1["worst"] = json!(1);
    let set = s.set_policy("2026-06-30 18:00", v1.clone()).await;
    assert_eq!(set["version"], 1, "{set}");

    // July. Assignments at Wed 07-01 09:00: contact due 11:00, resolution due 10 working days
    // later (07-15).
    let d0 = "2026-07-01 09:00";
    // A1 market, 110: everything in time; solved, satisfied.
    let a1 = s
        .assigned(
            d0,
            MARKET,
            "110",
            "城关镇",
            Some((INSPECTORS, "arbitrary_inspections")),
        )
        .await;
    s.contact("2026-07-01 10:00", &a1, MARKET).await;
    s.resolve("2026-07-03 10:00", &a1, MARKET).await;
    s.visited("2026-07-06 10:00", &a1, true, "satisfied").await;
    // A2 market, 110: contact late (12:00 > 11:00); resolved in time; basically satisfied.
    let a2 = s
        .assigned(
            d0,
            MARKET,
            "110",
            "城关镇",
            Some((INSPECTORS, "arbitrary_fines")),
        )
        .await;
    s.contact("2026-07-01 12:00", &a2, MARKET).await;
    s.resolve("2026-07-06 10:00", &a2, MARKET).await;
    s.visited("2026-07-07 10:00", &a2, true, "basically_satisfied")
        .await;
    // A3 market, 12345: extension approved before 07-15 moves the deadline; resolved 07-20 in
    // time; not solved, dissatisfied.
    let a3 = s.assigned(d0, MARKET, "12345", "开发区", None).await;
    s.contact("2026-07-01 10:00", &a3, MARKET).await;
    s.at(
        "2026-07-10 10:00",
        &a3,
        "request-extension",
        &s.handler(MARKET),
        json!({"working_days": 5, "reason": "需第三方检测"}),
    )
    .await;
    s.at(
        "2026-07-10 11:00",
        &a3,
        "approve-extension",
        &supervisor,
        json!({}),
    )
    .await;
    s.resolve("2026-07-20 10:00", &a3, MARKET).await;
    s.visited("2026-07-21 10:00", &a3, false, "dissatisfied")
        .await;
    // A4 housing, 110: in time; reworked (1 rework for housing, July); resolved again; a visit
    // that does not reach the filer, then one that does: solved, satisfied.
    let a4 = s.assigned(d0, HOUSING, "110", "开发区", None).await;
    s.contact("2026-07-01 10:00", &a4, HOUSING).await;
    s.resolve("2026-07-03 10:00", &a4, HOUSING).await;
    s.at(
        "2026-07-06 10:00",
        &a4,
        "rework",
        &supervisor,
        json!({"reason": "答复敷衍"}),
    )
    .await;
    s.resolve("2026-07-08 10:00", &a4, HOUSING).await;
    s.visit("2026-07-09 10:00", &a4, json!({"reached": false}))
        .await;
    s.visited("2026-07-10 10:00", &a4, true, "satisfied").await;
    // A5 110: market misses the contact deadline, then it is transferred to housing at 12:00;
    // the miss stays market's, the rest is housing's. A delay accountability for market.
    let a5 = s.assigned(d0, MARKET, "110", "城关镇", None).await;
    s.at(
        "2026-07-01 12:00",
        &a5,
        "transfer",
        &dispatcher,
        json!({"lead": HOUSING, "co_handlers": [], "reason": "属住建部门职责"}),
    )
    .await;
    s.contact("2026-07-01 13:00", &a5, HOUSING).await;
    s.at(
        "2026-07-02 10:00",
        &a5,
        "accountability",
        &supervisor,
        json!({"department": MARKET, "kind": "delay", "note": "超时未联系"}),
    )
    .await;
    s.resolve("2026-07-06 10:00", &a5, HOUSING).await;
    s.visited("2026-07-07 10:00", &a5, true, "satisfied").await;
    // A6 housing, 12345: the watcher records the missed resolution on 07-20 (late, known at
    // 07-15; 1 missed resolution for housing); resolved later; solved, satisfied.
    let a6 = s.assigned(d0, HOUSING, "12345", "城关镇", None).await;
    s.contact("2026-07-01 10:00", &a6, HOUSING).await;
    s.at(
        "2026-07-20 10:00",
        &a6,
        "deadline-missed",
        &admin,
        json!({"which": "resolution"}),
    )
    .await;
    s.resolve("2026-07-21 10:00", &a6, HOUSING).await;
    s.visited("2026-07-22 10:00", &a6, true, "satisfied").await;
    // A7 tax, 110: all in time, but tax harassed the enterprise: vetoed for July and Q3.
    let a7 = s
        .assigned(
            d0,
            TAX,
            "110",
            "开发区",
            Some((TAX_BRANCH, "arbitrary_charges")),
        )
        .await;
    s.contact("2026-07-01 10:00", &a7, TAX).await;
    s.resolve("2026-07-02 10:00", &a7, TAX).await;
    s.visited("2026-07-03 10:00", &a7, true, "satisfied").await;
    s.at(
        "2026-07-03 11:00",
        &a7,
        "accountability",
        &supervisor,
        json!({"department": TAX, "kind": "enterprise_harassment", "note": "多次上门检查扰企"}),
    )
    .await;
    // A8 tax, 12345: all in time.
    let a8 = s.assigned(d0, TAX, "12345", "城关镇", None).await;
    s.contact("2026-07-01 09:30", &a8, TAX).await;
    s.resolve("2026-07-02 10:00", &a8, TAX).await;
    s.visited("2026-07-03 10:00", &a8, true, "satisfied").await;
    // A13: the same complaint as A1 again, merged: left out of the notices.
    let a13 = s
        .file(
            "2026-07-02 09:00",
            "110",
            "城关镇",
            Some((INSPECTORS, "arbitrary_inspections")),
        )
        .await;
    s.at(
        "2026-07-02 09:10",
        &a13,
        "mark-duplicate",
        &dispatcher,
        json!({"original": a1}),
    )
    .await;
    // A10 housing, 110, assigned Fri 07-31 17:00 (contact due 19:00): contacted in July,
    // resolved and visited in August (not solved, dissatisfied), then reworked (housing, August).
    let a10 = s
        .assigned("2026-07-31 17:00", HOUSING, "110", "开发区", None)
        .await;
    s.contact("2026-07-31 18:00", &a10, HOUSING).await;
    s.resolve("2026-08-04 10:00", &a10, HOUSING).await;
    s.visited("2026-08-05 10:00", &a10, false, "dissatisfied")
        .await;
    s.at(
        "2026-08-05 11:00",
        &a10,
        "rework",
        &supervisor,
        json!({"reason": "未解决"}),
    )
    .await;
    s.resolve("2026-08-07 10:00", &a10, HOUSING).await;

    // August. Assignments at Mon 08-03 09:00.
    let d1 = "2026-08-03 09:00";
    // A9 market, 110: all in time.
    let a9 = s
        .assigned(
            d1,
            MARKET,
            "110",
            "城关镇",
            Some((INSPECTORS, "arbitrary_inspections")),
        )
        .await;
    s.contact("2026-08-03 10:00", &a9, MARKET).await;
    s.resolve("2026-08-05 10:00", &a9, MARKET).await;
    s.visited("2026-08-06 10:00", &a9, true, "satisfied").await;
    // A11 market, 12345: the watcher records the missed contact (1 missed contact for market);
    // resolved in time; the only visit does not reach the filer: no visit outcome.
    let a11 = s.assigned(d1, MARKET, "12345", "开发区", None).await;
    s.at(
        "2026-08-03 12:00",
        &a11,
        "deadline-missed",
        &admin,
        json!({"which": "contact"}),
    )
    .await;
    s.contact("2026-08-03 13:00", &a11, MARKET).await;
    s.resolve("2026-08-05 10:00", &a11, MARKET).await;
    s.visit("2026-08-06 10:00", &a11, json!({"reached": false}))
        .await;
    s.at("2026-08-06 11:00", &a11, "close", &supervisor, json!({}))
        .await;
    // A12 tax: withdrawn before any deadline: no outcome.
    let a12 = s.assigned(d1, TAX, "110", "城关镇", None).await;
    s.at(
        "2026-08-03 10:00",
        &a12,
        "withdraw",
        &dispatcher,
        json!({"reason": "诉求人撤回"}),
    )
    .await;

    // Style evaluations of Q3: market 5 (an enterprise's first 4, replaced by 5) and 3 → mean 4,
    // 75%; housing 2 → 25%; tax 5 → 100%.
    let enterprise = s.token(Role::Enterprise, None);
    let evaluator = s.token(Role::Evaluator, None);
    s.evaluate("2026-08-10 10:00", &enterprise, MARKET, 4).await;
    s.evaluate("2026-08-10 10:00", &evaluator, MARKET, 3).await;
    s.evaluate("2026-08-11 10:00", &enterprise, MARKET, 5).await;
    s.evaluate("2026-08-10 10:00", &enterprise, HOUSING, 2)
        .await;
    s.evaluate("2026-08-10 10:00", &enterprise, TAX, 5).await;

    // Policy v2, set after Q3: only the response rate counts, 1 best and 1 worst.
    let mut v2 = v1.clone();
    v2["weights"] = json!({"response": 100.0, "on_time_completion": 0.0, "resolution": 0.0,
                            "satisfaction": 0.0, "style": 0.0});
    let set = s.set_policy("2026-10-08 09:00", v2).await;
    assert_eq!(set["version"], 2, "{set}");

    s.caught_up().await;
    let live = answers(&s).await;
    check(&live);

    // Rebuild every metric projection from the event store: the same answers.
    let bus = s.stop_read_side().await;
    for name in ["rates", "style", "assessment", "complaints"] {
        let projection = linkage_projector::projection_named(name).expect("projection");
        linkage_projector::rebuild(&s.app.db.pool, projection.as_ref(), |_, _| {})
            .await
            .expect("rebuild");
    }
    assert_eq!(answers(&s).await, live);
    bus.delete_stream().await.expect("delete the test stream");
}

/// The hand-computed expectations (docs/metrics.md's rules).
fn check(a: &BTreeMap<&'static str, Value>) {
    // July, per department. Outcomes (contact / completion / first reached visit):
    //   market:  contacts A1 ✓ A2 ✗ A3 ✓ A5 ✗ (missed before the transfer) = 2/4;
    //            completions A1 A2 A3 (extended) = 3/3; visits A1 (solved, satisfied),
    //            A2 (solved, basically), A3 (not solved, dissatisfied): solved 2/3,
    //            satisfied (1 + 1×1)/3.
    //   housing: contacts A4 A6 A10 (07-31) = 3/3; completions A4 ✓ A5 ✓ A6 ✗ = 2/3;
    //            visits A4 A5 A6 all solved and satisfied = 3/3, 3/3.
    //   tax:     2/2, 2/2, 2/2, 2/2.
    let july = &a["july_by_department"];
    assert_eq!(july["policy_version"], 1, "{july}");
    assert_eq!(
        fractions(group(july, MARKET)),
        [(2.0, 4), (3.0, 3), (2.0, 3), (2.0, 3)]
    );
    assert_eq!(
        fractions(group(july, HOUSING)),
        [(3.0, 3), (2.0, 3), (3.0, 3), (3.0, 3)]
    );
    assert_eq!(
        fractions(group(july, TAX)),
        [(2.0, 2), (2.0, 2), (2.0, 2), (2.0, 2)]
    );
    // District: 7/9, 7/8, 7/8, (6 + 1)/8.
    assert_eq!(
        fractions(&july["district"]),
        [(7.0, 9), (7.0, 8), (7.0, 8), (7.0, 8)]
    );
    assert_eq!(july["district"]["response"]["below_target"], true);
    assert_eq!(group(july, TAX)["response"]["below_target"], false);
    assert_eq!(group(july, TAX)["response"]["percent"], 100.0);
    assert_eq!(group(july, MARKET)["response"]["percent"], 50.0);
    assert_eq!(july["groups"].as_array().unwrap().len(), 3);

    // July, per channel: the 110 view (A1 A2 A4 A5 A7 A10 contacts; A1 A2 A4 A5 A7 completions
    // and visits) and 12345 (A3 A6 A8).
    let channels = &a["july_by_channel"];
    assert_eq!(
        fractions(group(channels, "110")),
        [(4.0, 6), (5.0, 5), (5.0, 5), (5.0, 5)]
    );
    assert_eq!(
        fractions(group(channels, "12345")),
        [(3.0, 3), (2.0, 3), (2.0, 3), (2.0, 3)]
    );
    assert_eq!(
        group(channels, "110")["on_time_completion"]["below_target"],
        false
    );
    assert_eq!(
        group(channels, "12345")["on_time_completion"]["below_target"],
        true
    );

    // August: market A9 ✓ A11 ✗ = 1/2, completions A9 A11 = 2/2, visit A9 = 1/1 (A11 was not
    // reached); housing completion A10 = 1/1, visit A10 not solved = 0/1; tax nothing (A12
    // withdrawn).
    let august = &a["august_by_department"];
    assert_eq!(august["by"], "department");
    assert_eq!(
        fractions(group(august, MARKET)),
        [(1.0, 2), (2.0, 2), (1.0, 1), (1.0, 1)]
    );
    assert_eq!(
        fractions(group(august, HOUSING)),
        [(0.0, 0), (1.0, 1), (0.0, 1), (0.0, 1)]
    );
    assert_eq!(group(august, HOUSING)["response"]["percent"], Value::Null);
    assert_eq!(
        group(august, HOUSING)["response"]["below_target"],
        Value::Null
    );
    assert_eq!(august["groups"].as_array().unwrap().len(), 2);
    assert_eq!(
        fractions(&august["district"]),
        [(1.0, 2), (3.0, 3), (1.0, 2), (1.0, 2)]
    );
    // By town: 城关镇 holds A9 (market); 开发区 holds A10 (housing) and A11 (market).
    let towns = &a["august_by_town"];
    assert_eq!(
        fractions(group(towns, "城关镇")),
        [(1.0, 1), (1.0, 1), (1.0, 1), (1.0, 1)]
    );
    assert_eq!(
        fractions(group(towns, "开发区")),
        [(0.0, 1), (2.0, 2), (0.0, 1), (0.0, 1)]
    );

    // Style, Q3.
    let style = &a["style"]["departments"];
    let by_dept = |d: &str| {
        style
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["department"] == d)
            .cloned()
            .unwrap_or_else(|| panic!("no style for {d}: {style}"))
    };
    assert_eq!(by_dept(MARKET)["evaluations"], 2);
    assert_eq!(by_dept(MARKET)["mean"], 4.0);
    assert_eq!(by_dept(MARKET)["percent"], 75.0);
    assert_eq!(by_dept(MARKET)["dimensions"]["integrity"], 4.0);
    assert_eq!(by_dept(HOUSING)["mean"], 2.0);

    // Q3 ranking under v1 (weights 20/30/10/30/10; points: delay 2, missed contact 0.5,
    // missed resolution 1, rework 1, harassment 5):
    //   market:  response 3/6 = 50, completion 5/5 = 100, resolution 3/4 = 75,
    //            satisfaction 3/4 = 75, style 75 → base (1000 + 3000 + 750 + 2250 + 750) / 100
    //            = 77.5; points delay 2 + missed contact 0.5 → 75.
    //   housing: 3/3 = 100, 3/4 = 75, 3/4 = 75, 3/4 = 75, style 25 → base 75; points rework 2
    //            + missed resolution 1 → 72.
    //   tax:     everything 100 → base 100; harassment 5 → 95, but vetoed: last.
    let r = &a["ranking_in_force"];
    assert_eq!(r["policy_version"], 1, "{r}");
    let lines: Vec<(i64, String, f64, bool, Value)> = r["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["rank"].as_i64().unwrap(),
                l["department"].as_str().unwrap().to_owned(),
                l["score"].as_f64().unwrap(),
                l["vetoed"].as_bool().unwrap(),
                l["list"].clone(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (1, MARKET.into(), 75.0, false, json!("best")),
            (2, HOUSING.into(), 72.0, false, Value::Null),
            (3, TAX.into(), 95.0, true, json!("worst")),
        ],
        "{r}"
    );
    assert_eq!(r["best"], json!([MARKET]));
    assert_eq!(r["worst"], json!([TAX]));
    let market = &r["departments"][0];
    assert_eq!(market["base"], 77.5);
    assert_eq!(market["penalty_points"], 2.5);
    assert_eq!(
        market["penalties"],
        json!({"accountability_delay": 1, "missed_contact": 1})
    );
    assert_eq!(
        r["departments"][1]["penalties"],
        json!({"rework": 2, "missed_resolution": 1})
    );

    // The same period under the current policy v2 (response only): housing 100 − 3 = 97,
    // market 50 − 2.5 = 47.5; tax still vetoed.
    let r = &a["ranking_current"];
    assert_eq!(r["policy_version"], 2, "{r}");
    let order: Vec<(&str, f64)> = r["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["department"].as_str().unwrap(),
                l["score"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(order, [(HOUSING, 97.0), (MARKET, 47.5), (TAX, 95.0)]);
    assert_eq!(r["best"], json!([HOUSING]));

    // July ranking: market's July rates 2/4, 3/3, 2/3, 2/3 with style 75 → base
    // (1000 + 3000 + 666.67 + 2000 + 750) / 100 = 74.1667, minus delay 2 → 72.1667; housing
    // 3/3, 2/3, 3/3, 3/3, style 25 → (2000 + 2000 + 1000 + 3000 + 250) / 100 = 82.5, minus
    // rework 1 and missed resolution 1 → 80.5: housing first in July.
    let r = &a["ranking_july"];
    assert_eq!(r["departments"][0]["department"], HOUSING);
    let housing_july = r["departments"][0]["score"].as_f64().unwrap();
    assert!((housing_july - 80.5).abs() < 1e-9, "{r}");
    let market_july = r["departments"][1]["score"].as_f64().unwrap();
    assert!(
        (market_july - (7416.0 + 2.0 / 3.0) / 100.0 + 2.0).abs() < 1e-9,
        "{r}"
    );

    // Complaint notices, July: the inspectors twice (A1 inspections, A2 fines; A13 merged),
    // the tax branch once.
    let n = &a["notices_july"]["notices"];
    assert_eq!(
        n,
        &json!([
            {"unit": INSPECTORS, "count": 2,
             "categories": {"arbitrary_fines": 1, "arbitrary_inspections": 1}},
            {"unit": TAX_BRANCH, "count": 1, "categories": {"arbitrary_charges": 1}},
        ])
    );
    // Q3, the inspectors only: A1, A2, A9 with their appeals.
    let n = &a["notices_unit"]["notices"];
    assert_eq!(n.as_array().unwrap().len(), 1, "{n}");
    assert_eq!(n[0]["count"], 3);
    assert_eq!(n[0]["appeals"].as_array().unwrap().len(), 3);
}

async fn read(app: &TestApp, query: SocketAddr, path: &str, role: Role) -> linkage_e2e::Answer {
    let response = app
        .http
        .get(format!("http://{query}{path}"))
        .bearer_auth(app.token(role, None))
        .send()
        .await
        .expect("request");
    TestApp::answer(response).await
}

fn all_scores(score: u8) -> Value {
    json!({"service_attitude": score, "efficiency": score, "lawful_administration": score,
           "integrity": score, "promise_keeping": score})
}

#[tokio::test]
async fn who_may_do_what_and_bad_input_changes_nothing() {
    let app = spawn_app().await;
    let query = app.spawn_query_api().await;
    // The SLA rules the app seeds are events too.
    let seeded = app.total_events().await;
    app.clock.set(bj("2026-08-10 10:00"));
    let evaluation = json!({"quarter": "2026-Q3", "department": MARKET, "scores": all_scores(4)});
    let policy = serde_json::to_value(linkage_domain::assessment::AssessmentPolicy::default())
        .expect("policy");
    let set_policy = json!({"policy": policy, "reason": "初始设定"});

    // Roles: only enterprises and evaluators evaluate; only admins set the policy; enterprises
    // read no metrics.
    for role in [Role::Handler, Role::Analyst, Role::Admin, Role::Dispatcher] {
        let dept = (role == Role::Handler).then_some(MARKET);
        let a = app
            .post(
                "/api/v1/style-evaluations",
                &app.token(role, dept),
                &evaluation,
                None,
            )
            .await;
        a.assert_problem(403, "forbidden");
    }
    for role in [Role::Evaluator, Role::Supervisor, Role::Enterprise] {
        let a = app
            .post(
                "/api/v1/assessment-policy",
                &app.token(role, None),
                &set_policy,
                None,
            )
            .await;
        a.assert_problem(403, "forbidden");
    }
    for path in [
        "/api/v1/rates?month=2026-07",
        "/api/v1/rankings?period=2026-Q3",
        "/api/v1/style-evaluations?quarter=2026-Q3",
        "/api/v1/complaint-notices?period=2026-07",
        "/api/v1/assessment-policies",
    ] {
        read(&app, query, path, Role::Enterprise)
            .await
            .assert_problem(403, "forbidden");
        let a = read(&app, query, path, Role::Auditor).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }
    assert_eq!(app.total_events().await, seeded);

    // Bad input: 422 naming the field, nothing recorded.
    let enterprise = app.token(Role::Enterprise, None);
    let admin = app.token(Role::Admin, None);
    let mut missing = evaluation.clone();
    missing["scores"]
        .as_object_mut()
        .expect("scores")
        .remove("integrity");
    let mut out_of_range = evaluation.clone();
    out_of_range["scores"]["efficiency"] = json!(6);
    let mut closed = evaluation.clone();
    closed["quarter"] = json!("2026-Q1");
    let mut bad_dept = evaluation.clone();
    bad_dept["department"] = json!("Market Bureau");
    let mut unknown_dimension = evaluation.clone();
    unknown_dimension["scores"]["speed"] = json!(3);
    for (body, field) in [
        (&missing, "scores"),
        (&out_of_range, "scores"),
        (&closed, "quarter"),
        (&bad_dept, "department"),
    ] {
        let a = app
            .post("/api/v1/style-evaluations", &enterprise, body, None)
            .await;
        a.assert_problem(422, "invalid-field");
        assert_eq!(a.body["field"], field, "{}", a.body);
    }
    let a = app
        .post(
            "/api/v1/style-evaluations",
            &enterprise,
            &unknown_dimension,
            None,
        )
        .await;
    a.assert_problem(422, "invalid-field");
    let mut heavy = set_policy.clone();
    heavy["policy"]["basically_satisfied_weight"] = json!(2);
    let a = app
        .post("/api/v1/assessment-policy", &admin, &heavy, None)
        .await;
    a.assert_problem(422, "invalid-field");
    assert_eq!(a.body["field"], "basically_satisfied_weight");
    let mut extra = set_policy.clone();
    extra["policy"]["bonus"] = json!(1);
    app.post("/api/v1/assessment-policy", &admin, &extra, None)
        .await
        .assert_problem(422, "invalid-field");
    assert_eq!(app.total_events().await, seeded);
    for (path, field) in [
        ("/api/v1/rates", "month"),
        ("/api/v1/rates?month=2026-13", "month"),
        ("/api/v1/rates?month=2026-07&by=category", "by"),
        ("/api/v1/rates?month=2026-07&limit=5", "limit"),
        ("/api/v1/rankings?period=2026-Q5", "period"),
        ("/api/v1/rankings?period=2026-Q3&policy=newest", "policy"),
        ("/api/v1/style-evaluations?quarter=2026-07", "quarter"),
        ("/api/v1/complaint-notices?period=2026-07&unit=", "unit"),
    ] {
        let a = read(&app, query, path, Role::Analyst).await;
        a.assert_problem(422, "invalid-field");
        assert_eq!(a.body["field"], field, "{path}: {}", a.body);
    }

    // A policy set twice: the second, identical, is a conflict; a retry with the same key is
    // answered from the first.
    let first = app
        .post(
            "/api/v1/assessment-policy",
            &admin,
            &set_policy,
            Some("policy-1"),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["version"], 1);
    let again = app
        .post(
            "/api/v1/assessment-policy",
            &admin,
            &set_policy,
            Some("policy-1"),
        )
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    app.post("/api/v1/assessment-policy", &admin, &set_policy, None)
        .await
        .assert_problem(409, "policy-unchanged");
    // A second evaluation by the same enterprise is a new revision of the same stream.
    for revision in [1, 2] {
        let a = app
            .post("/api/v1/style-evaluations", &enterprise, &evaluation, None)
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!(a.body["revision"], revision, "{}", a.body);
    }
    assert_eq!(app.total_events().await, seeded + 3);
}
