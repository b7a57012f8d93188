//! The query API over HTTP, on port 0, over a fresh database whose ledger is filled by applying
//! envelopes through the ledger projection (no NATS involved).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use linkage_auth::{Role, TokenKeys};
use linkage_bus::Envelope;
use linkage_domain::appeal::AppealEvent;
use linkage_domain::sla::Deadlines;
use linkage_domain::values::{Category, Channel, ContactMethod, ResolutionOutcome};
use linkage_projector::testing::{EnvelopeFactory, dept, filed, v};
use linkage_projector::{Ledger, apply_batch, ensure_schema};
use linkage_query_api::{QueryConfig, QueryState};
use linkage_store::testing::TestDatabase;
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A query string.
type Q<'a> = &'a [(&'a str, &'a str)];
/// One of the generated appeals: id, filed at, resolution due, serial.
type Made = (Uuid, DateTime<Utc>, Option<DateTime<Utc>>, u64);

const SECRET: &[u8] = b"linkage-query-test-secret-0123456789abcdef";

struct Api {
    addr: SocketAddr,
    db: TestDatabase,
    keys: TokenKeys,
    http: reqwest::Client,
    envelopes: EnvelopeFactory,
    last: Option<Envelope>,
    _shutdown: oneshot::Sender<()>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

impl Answer {
    #[track_caller]
    fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.body);
        &self.body
    }

    #[track_caller]
    fn problem(&self, status: u16, field: Option<&str>) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.content_type, "application/problem+json");
        if let Some(field) = field {
            assert_eq!(self.body["field"], field, "{}", self.body);
        }
        self.body["detail"].as_str().unwrap()
    }

    /// Tracking-number serials of the items, in order.
    fn serials(&self) -> Vec<u64> {
        self.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["tracking_number"].as_str().unwrap()[8..].parse().unwrap())
            .collect()
    }
}

async fn spawn_with(config: QueryConfig) -> Api {
    let db = TestDatabase::new().await.unwrap();
    ensure_schema(&db.pool, &linkage_projector::all_projections())
        .await
        .unwrap();
    let keys = TokenKeys::hs256(SECRET).unwrap();
    let state = Arc::new(QueryState {
        pool: db.pool.clone(),
        keys: keys.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let app = linkage_query_api::router(state, &config);
    tokio::spawn(linkage_query_api::serve(listener, app, async {
        let _ = rx.await;
    }));
    Api {
        addr,
        db,
        keys,
        http: reqwest::Client::new(),
        envelopes: EnvelopeFactory::new(),
        last: None,
        _shutdown: tx,
    }
}

async fn spawn() -> Api {
    spawn_with(QueryConfig::default()).await
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn far_deadlines() -> Deadlines {
    let now = Utc::now();
    Deadlines {
        contact_due: now + chrono::Duration::days(30),
        feedback_due: now + chrono::Duration::days(31),
        resolution_due: now + chrono::Duration::days(40),
    }
}

fn assign(lead: &str, co: &[&str], deadlines: Deadlines, at: DateTime<Utc>) -> AppealEvent {
    AppealEvent::AppealAssigned {
        lead: dept(lead),
        co_handlers: co.iter().map(|d| dept(d)).collect(),
        deadlines,
        calendar: "test".into(),
        policy: Default::default(),
        at,
    }
}

impl Api {
    fn token(&self, role: Role, dept: Option<&str>) -> String {
        self.keys
            .issue(
                &format!("{role}-1"),
                role,
                dept.map(|d| d.parse().unwrap()),
                Utc::now(),
                chrono::Duration::hours(1),
            )
            .unwrap()
    }

    fn analyst(&self) -> String {
        self.token(Role::Analyst, None)
    }

    /// Applies `events` of `appeal` through the ledger projection, moving its checkpoint.
    async fn record(&mut self, appeal: Uuid, events: &[AppealEvent]) {
        let batch: Vec<Envelope> = events
            .iter()
            .map(|e| self.envelopes.envelope(appeal, e))
            .collect();
        let items: Vec<(u64, &Envelope)> = batch
            .iter()
            .map(|e| (e.global_position as u64, e))
            .collect();
        apply_batch(&self.db.pool, &Ledger, &items, false)
            .await
            .unwrap();
        self.last = batch.last().cloned();
    }

    async fn get(&self, path: &str, token: Option<&str>, query: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .get(format!("http://{}{}", self.addr, path))
            .query(query);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res.text().await.unwrap();
        Answer {
            status,
            content_type,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    async fn ledger(&self, query: &[(&str, &str)]) -> Answer {
        self.get("/api/v1/ledger", Some(&self.analyst()), query)
            .await
    }
}

/// Five appeals covering the filters (serial = tracking number):
/// 1: 110, arbitrary_fines, 城关镇, filed 3-02 (Beijing), led by market with tax, on time.
/// 2: 12345, approval_delay, 开发区, filed 3-03, led by housing, contact long overdue.
/// 3: online, other, 城关镇, filed 4-01 01:00 Beijing (3-31 UTC), led by tax, resolved 4-02.
/// 4: walk_in, other, 开发区, filed 2-28 23:30 Beijing, unassigned, supervision overdue.
/// 5: 110, arbitrary_fines, 城关镇, filed 3-10, withdrawn.
async fn five_appeals(api: &mut Api) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let d1 = t("2026-03-02T01:00:00Z");
    api.record(
        ids[0],
        &[
            filed(
                ids[0],
                1,
                Channel::Linkage110,
                Category::ArbitraryFines,
                "城关镇",
                d1,
            ),
            assign("market", &["tax"], far_deadlines(), d1),
        ],
    )
    .await;
    let d2 = t("2026-03-03T02:00:00Z");
    api.record(
        ids[1],
        &[
            filed(
                ids[1],
                2,
                Channel::Hotline12345,
                Category::ApprovalDelay,
                "开发区",
                d2,
            ),
            assign(
                "housing",
                &[],
                linkage_projector::testing::deadlines(d2),
                d2,
            ),
        ],
    )
    .await;
    let d3 = t("2026-03-31T17:00:00Z");
    api.record(
        ids[2],
        &[
            filed(ids[2], 3, Channel::Online, Category::Other, "城关镇", d3),
            assign("tax", &[], linkage_projector::testing::deadlines(d3), d3),
            AppealEvent::ContactRecorded {
                department: dept("tax"),
                method: ContactMethod::OnSite,
                note: None,
                at: d3,
            },
            AppealEvent::AppealResolved {
                department: dept("tax"),
                outcome: ResolutionOutcome::Resolved,
                text: v("已解决"),
                at: t("2026-04-02T03:00:00Z"),
            },
        ],
    )
    .await;
    let d4 = t("2026-02-28T15:30:00Z");
    api.record(
        ids[3],
        &[
            filed(ids[3], 4, Channel::WalkIn, Category::Other, "开发区", d4),
            AppealEvent::AppealSupervised {
                note: v("尽快分派"),
                due: t("2026-03-03T16:00:00Z"),
                calendar: "test".into(),
                at: d4,
            },
        ],
    )
    .await;
    let d5 = t("2026-03-10T01:00:00Z");
    api.record(
        ids[4],
        &[
            filed(
                ids[4],
                5,
                Channel::Linkage110,
                Category::ArbitraryFines,
                "城关镇",
                d5,
            ),
            AppealEvent::AppealWithdrawn {
                reason: v("已自行解决"),
                at: d5,
            },
        ],
    )
    .await;
    ids
}

#[tokio::test]
async fn filters() {
    let mut api = spawn().await;
    five_appeals(&mut api).await;
    fn sorted<'a>(q: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut q = q.to_vec();
        q.push(("sort", "tracking_number"));
        q
    }
    let cases: &[(Q, &[u64])] = &[
        (&[], &[1, 2, 3, 4, 5]),
        (&[("department", "tax")], &[1, 3]),
        (&[("department", "market")], &[1]),
        (&[("channel", "110")], &[1, 5]),
        (&[("category", "arbitrary_fines")], &[1, 5]),
        (&[("status", "resolved")], &[3]),
        (&[("status", "withdrawn")], &[5]),
        (&[("town", "开发区")], &[2, 4]),
        // Dates are whole days in Beijing time: 3 was filed on April 1st there, 4 on Feb 28th.
        (
            &[("filed_from", "2026-03-01"), ("filed_to", "2026-03-31")],
            &[1, 2, 5],
        ),
        (
            &[
                ("filed_from", "2026-03-02T01:00:00Z"),
                ("filed_to", "2026-03-03T02:00:00Z"),
            ],
            &[1],
        ),
        (&[("filed_to", "2026-03-01")], &[4]),
        (
            &[
                ("resolved_from", "2026-04-01"),
                ("resolved_to", "2026-04-30"),
            ],
            &[3],
        ),
        (&[("resolved_from", "2026-04-03")], &[]),
        (&[("overdue", "true")], &[2, 4]),
        (&[("overdue", "false")], &[1, 3, 5]),
        (&[("channel", "110"), ("status", "assigned")], &[1]),
        (&[("channel", "tv_inquiry")], &[]),
    ];
    for (query, expected) in cases {
        let answer = api.ledger(&sorted(query)).await;
        assert_eq!(answer.serials(), *expected, "{query:?}");
        assert!(answer.body["next_cursor"].is_null());
    }
    let item = &api.ledger(&[("channel", "12345")]).await.body["items"][0];
    assert_eq!(item["overdue"], true);
    assert_eq!(item["status"], "assigned");
    assert_eq!(item["lead_department"], "housing");
    assert_eq!(item["filed_at"], "2026-03-03T02:00:00Z");
}

#[tokio::test]
async fn freshness_names_the_last_event_applied() {
    let mut api = spawn().await;
    let before = api.ledger(&[]).await;
    assert_eq!(before.ok()["freshness"]["projection"], "ledger");
    assert!(before.body["freshness"]["global_position"].is_null());
    five_appeals(&mut api).await;
    let last = api.last.clone().unwrap();
    let fresh = &api.ledger(&[]).await.body["freshness"];
    assert_eq!(fresh["projection"], "ledger");
    assert_eq!(fresh["global_position"], last.global_position);
    assert_eq!(fresh["tx_id"], last.tx_id);
    assert!(fresh["updated_at"].is_string());
}

/// 120 appeals, filed in threes at the same instant (ties), half without a resolution deadline.
async fn many_appeals(api: &mut Api) -> Vec<Made> {
    let base = t("2026-03-02T01:00:00Z");
    let mut rows = Vec::new();
    // Serials deliberately out of filing order, so the sorts differ.
    for i in 0..120u64 {
        let id = Uuid::now_v7();
        let serial = (i * 37) % 120 + 1;
        let filed_at = base + chrono::Duration::minutes((i / 3) as i64);
        let mut events = vec![filed(
            id,
            serial,
            Channel::Online,
            Category::Other,
            "城关镇",
            filed_at,
        )];
        let mut due = None;
        if i % 2 == 0 {
            let mut d = far_deadlines();
            d.resolution_due = base + chrono::Duration::days(((i * 7) % 5) as i64 + 10);
            due = Some(d.resolution_due);
            events.push(assign("market", &[], d, filed_at));
        }
        api.record(id, &events).await;
        rows.push((id, filed_at, due, serial));
    }
    rows
}

async fn all_pages(api: &Api, sort: &str, limit: &str) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..200 {
        let mut q = vec![("sort", sort), ("limit", limit)];
        if let Some(c) = &cursor {
            q.push(("cursor", c.as_str()));
        }
        let answer = api.ledger(&q).await;
        let body = answer.ok();
        for item in body["items"].as_array().unwrap() {
            ids.push(item["appeal_id"].as_str().unwrap().parse().unwrap());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
    panic!("pagination did not end");
}

#[tokio::test]
async fn pagination_covers_every_row_once_in_every_sort_order() {
    let mut api = spawn().await;
    let rows = many_appeals(&mut api).await;
    let infinity = DateTime::<Utc>::MAX_UTC;
    let mut by_filed = rows.clone();
    by_filed.sort_by_key(|r| (r.1, r.0));
    let mut by_filed_desc = by_filed.clone();
    by_filed_desc.reverse();
    let mut by_due = rows.clone();
    by_due.sort_by_key(|r| (r.2.unwrap_or(infinity), r.0));
    let mut by_tracking = rows.clone();
    by_tracking.sort_by_key(|r| r.3);
    let ids = |v: &[Made]| v.iter().map(|r| r.0).collect::<Vec<_>>();
    for (sort, expected) in [
        ("filed_at", ids(&by_filed)),
        ("-filed_at", ids(&by_filed_desc)),
        ("resolution_due", ids(&by_due)),
        ("tracking_number", ids(&by_tracking)),
    ] {
        for limit in ["7", "50", "500"] {
            let got = all_pages(&api, sort, limit).await;
            assert_eq!(got.len(), 120, "{sort} / {limit}");
            assert_eq!(got.iter().collect::<HashSet<_>>().len(), 120);
            assert_eq!(got, expected, "{sort} / {limit}");
        }
    }
    // The default page is 50 rows, newest first.
    let page = api.ledger(&[]).await;
    assert_eq!(page.ok()["items"].as_array().unwrap().len(), 50);
    assert_eq!(
        page.body["items"][0]["appeal_id"],
        by_filed_desc[0].0.to_string()
    );
    assert!(page.body["next_cursor"].is_string());
}

#[tokio::test]
async fn bad_queries_are_refused_naming_the_parameter() {
    let api = spawn().await;
    let cases: &[(Q, &str, &str)] = &[
        (&[("colour", "red")], "colour", "unknown query parameter"),
        (&[("channel", "fax")], "channel", "expected one of"),
        (&[("category", "noise")], "category", "unknown category"),
        (
            &[("department", "Market Dept")],
            "department",
            "invalid department",
        ),
        (&[("status", "open")], "status", "unknown status"),
        (&[("town", "  ")], "town", "1-200"),
        (&[("filed_from", "yesterday")], "filed_from", "YYYY-MM-DD"),
        (
            &[("resolved_to", "2026-13-01")],
            "resolved_to",
            "YYYY-MM-DD",
        ),
        (
            &[("filed_from", "2026-03-05"), ("filed_to", "2026-03-01")],
            "filed_from",
            "after",
        ),
        (&[("overdue", "maybe")], "overdue", "true or false"),
        (&[("limit", "501")], "limit", "1 to 500"),
        (&[("limit", "0")], "limit", "1 to 500"),
        (&[("limit", "ten")], "limit", "1 to 500"),
        (&[("sort", "priority")], "sort", "unknown sort"),
        (&[("cursor", "not-a-cursor")], "cursor", "not a cursor"),
        (
            &[("channel", "110"), ("channel", "12345")],
            "channel",
            "more than once",
        ),
    ];
    for (query, field, says) in cases {
        let answer = api.ledger(query).await;
        let detail = answer.problem(422, Some(field));
        assert!(detail.contains(says), "{query:?}: {detail}");
    }
    assert!(api.ledger(&[("limit", "500")]).await.status == 200);

    // A cursor only continues the sort it came from.
    let mut api = api;
    many_appeals(&mut api).await;
    let first = api.ledger(&[("sort", "filed_at"), ("limit", "5")]).await;
    let cursor = first.ok()["next_cursor"].as_str().unwrap().to_owned();
    let answer = api
        .ledger(&[("sort", "tracking_number"), ("cursor", &cursor)])
        .await;
    answer.problem(422, Some("cursor"));

    let token = api.analyst();
    let answer = api
        .get(
            &format!("/api/v1/appeals/{}", Uuid::now_v7()),
            Some(&token),
            &[("wait", "1")],
        )
        .await;
    answer.problem(422, Some("wait"));
    let answer = api
        .get(
            &format!("/api/v1/appeals/{}", Uuid::now_v7()),
            Some(&token),
            &[("min_position", "-1")],
        )
        .await;
    answer.problem(422, Some("min_position"));
}

#[tokio::test]
async fn authentication_and_roles() {
    let mut api = spawn().await;
    let ids = five_appeals(&mut api).await;
    let detail = format!("/api/v1/appeals/{}", ids[0]);
    for path in ["/api/v1/ledger", detail.as_str()] {
        api.get(path, None, &[]).await.problem(401, None);
        api.get(path, Some("not.a.token"), &[])
            .await
            .problem(401, None);
        let other = TokenKeys::hs256(b"another secret that is long enough!")
            .unwrap()
            .issue(
                "x",
                Role::Analyst,
                None,
                Utc::now(),
                chrono::Duration::hours(1),
            )
            .unwrap();
        api.get(path, Some(&other), &[]).await.problem(401, None);
        let admin = api.token(Role::Admin, None);
        api.get(path, Some(&admin), &[]).await.problem(403, None);
        for role in [
            Role::Analyst,
            Role::Auditor,
            Role::Supervisor,
            Role::Dispatcher,
            Role::Evaluator,
        ] {
            let token = api.token(role, None);
            assert_eq!(api.get(path, Some(&token), &[]).await.status, 200, "{role}");
        }
    }
}

#[tokio::test]
async fn phones_are_masked_except_for_roles_that_call_the_filer() {
    let mut api = spawn().await;
    let ids = five_appeals(&mut api).await;
    let detail = format!("/api/v1/appeals/{}", ids[0]);
    for (role, dept, phone) in [
        (Role::Analyst, None, "138****8000"),
        (Role::Auditor, None, "138****8000"),
        (Role::Handler, Some("market"), "138****8000"),
        (Role::Dispatcher, None, "13800138000"),
        (Role::Evaluator, None, "13800138000"),
        (Role::Supervisor, None, "13800138000"),
    ] {
        let token = api.token(role, dept);
        let list = api
            .get(
                "/api/v1/ledger",
                Some(&token),
                &[("sort", "tracking_number")],
            )
            .await;
        for item in list.ok()["items"].as_array().unwrap() {
            assert_eq!(item["filer_phone"], phone, "{role}");
        }
        let one = api.get(&detail, Some(&token), &[]).await;
        assert_eq!(one.ok()["appeal"]["filer_phone"], phone, "{role}");
        // The timeline never carries the filer.
        let text = one.body["timeline"].to_string();
        assert!(
            !text.contains("13800138000") && !text.contains("张三"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn handlers_read_only_their_departments_appeals() {
    let mut api = spawn().await;
    let ids = five_appeals(&mut api).await;
    let tax = api.token(Role::Handler, Some("tax"));
    let list = api
        .get("/api/v1/ledger", Some(&tax), &[("sort", "tracking_number")])
        .await;
    // 1 is co-handled by tax, 3 led by it.
    assert_eq!(list.serials(), vec![1, 3]);
    let list = api
        .get(
            "/api/v1/ledger",
            Some(&tax),
            &[("department", "tax"), ("status", "resolved")],
        )
        .await;
    assert_eq!(list.serials(), vec![3]);
    api.get("/api/v1/ledger", Some(&tax), &[("department", "housing")])
        .await
        .problem(403, None);
    for (i, allowed) in [(0, true), (1, false), (2, true), (3, false)] {
        let answer = api
            .get(&format!("/api/v1/appeals/{}", ids[i]), Some(&tax), &[])
            .await;
        if allowed {
            answer.ok();
        } else {
            answer.problem(403, None);
        }
    }
}

#[tokio::test]
async fn one_appeal_with_its_timeline() {
    let mut api = spawn().await;
    let ids = five_appeals(&mut api).await;
    let token = api.analyst();
    let by_id = api
        .get(&format!("/api/v1/appeals/{}", ids[2]), Some(&token), &[])
        .await;
    let body = by_id.ok();
    assert_eq!(body["appeal"]["tracking_number"], "LK-2026-000003");
    assert_eq!(body["appeal"]["status"], "resolved");
    assert_eq!(body["appeal"]["resolution_outcome"], "resolved");
    assert_eq!(body["stale"], false);
    assert_eq!(body["freshness"]["projection"], "ledger");
    let types: Vec<&str> = body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "AppealFiled",
            "AppealAssigned",
            "ContactRecorded",
            "AppealResolved"
        ]
    );
    assert_eq!(body["timeline"][3]["summary"]["outcome"], "resolved");

    let by_tracking = api
        .get("/api/v1/appeals/LK-2026-000003", Some(&token), &[])
        .await;
    assert_eq!(by_tracking.ok()["appeal"], body["appeal"]);

    for unknown in [
        Uuid::now_v7().to_string(),
        "LK-2026-999999".to_owned(),
        "nonsense".to_owned(),
    ] {
        api.get(&format!("/api/v1/appeals/{unknown}"), Some(&token), &[])
            .await
            .problem(404, None);
    }
}

#[tokio::test]
async fn read_your_writes() {
    let config = QueryConfig {
        read_your_writes_wait: Duration::from_millis(300),
        ..QueryConfig::default()
    };
    let mut api = spawn_with(config).await;
    let ids = five_appeals(&mut api).await;
    let token = api.analyst();
    let path = format!("/api/v1/appeals/{}", ids[0]);
    let position = api.get(&path, Some(&token), &[]).await.ok()["appeal"]["last_global_position"]
        .as_i64()
        .unwrap();
    let p = position.to_string();
    let answer = api.get(&path, Some(&token), &[("min_position", &p)]).await;
    assert_eq!(answer.ok()["stale"], false);

    // Not there within the wait: what there is, flagged stale.
    let ahead = (position + 1000).to_string();
    let answer = api
        .get(&path, Some(&token), &[("min_position", &ahead)])
        .await;
    assert_eq!(answer.ok()["stale"], true);
    assert_eq!(answer.body["appeal"]["last_global_position"], position);
    // An appeal that never shows up is still unknown after the wait.
    api.get(
        &format!("/api/v1/appeals/{}", Uuid::now_v7()),
        Some(&token),
        &[("min_position", "1")],
    )
    .await
    .problem(404, None);
}

#[tokio::test]
async fn read_your_writes_waits_for_the_projection() {
    let mut api = spawn().await;
    let ids = five_appeals(&mut api).await;
    let token = api.analyst();
    let path = format!("/api/v1/appeals/{}", ids[0]);
    // The next envelope the factory makes for this appeal will be at this position.
    let next = api.last.as_ref().unwrap().global_position + 1;
    let http = api.http.clone();
    let url = format!("http://{}{}", api.addr, path);
    let waiting = tokio::spawn(async move {
        http.get(url)
            .bearer_auth(token)
            .query(&[("min_position", next.to_string())])
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.record(
        ids[0],
        &[AppealEvent::ContactRecorded {
            department: dept("market"),
            method: ContactMethod::Phone,
            note: None,
            at: Utc::now(),
        }],
    )
    .await;
    let body = waiting.await.unwrap();
    assert_eq!(body["stale"], false, "{body}");
    assert_eq!(body["appeal"]["last_global_position"], next);
    assert!(body["appeal"]["contacted_at"].is_string());
}

#[tokio::test]
async fn health_and_readiness() {
    let api = spawn().await;
    assert_eq!(api.get("/healthz", None, &[]).await.ok()["status"], "ok");
    assert_eq!(api.get("/readyz", None, &[]).await.ok()["ready"], true);
    api.get("/api/v1/nothing", None, &[])
        .await
        .problem(404, None);
}
