//! The SLA watcher against a real Postgres: exactly one `DeadlineMissed` per missed deadline with
//! two watchers, and `DeadlinesRecomputed` for open appeals after a calendar correction. The
//! ledger is brought up to date with a projection rebuild (no NATS needed here; the process-level
//! test with NATS is `services/linkage/tests/sla_watcher.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use linkage_domain::appeal::{AppealCommand, AssignAppeal, FileAppeal, Filer, RecordContact};
use linkage_domain::clock::{Clock, FixedClock};
use linkage_domain::rules::{CorrectCalendarDate, RULES_ID, RulesCommand, RulesServices, SlaRules};
use linkage_domain::values::{Category, Channel, ContactMethod, DepartmentId, FilerKind};
use linkage_domain::{Appeal, AppealServices};
use linkage_projector::ledger::{Ledger, LedgerRow};
use linkage_sla_watcher::{Watcher, WatcherConfig};
use linkage_store::PgEventStore;
use linkage_store::rules::LiveRules;
use linkage_store::testing::TestDatabase;
use sqlx::types::Json;
use uuid::Uuid;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

const LEAD: &str = "market-supervision";

struct World {
    db: TestDatabase,
    clock: Arc<FixedClock>,
    rules: Arc<LiveRules>,
    store: PgEventStore<Appeal>,
}

impl World {
    async fn new(now: &str) -> Self {
        let db = TestDatabase::new().await.expect("test database");
        let clock = Arc::new(FixedClock::new(t(now)));
        let rules = LiveRules::load(db.pool.clone(), clock.clone())
            .await
            .unwrap();
        linkage_projector::ensure_schema(&db.pool, &[Arc::new(Ledger)])
            .await
            .unwrap();
        Self {
            store: PgEventStore::new(db.pool.clone()),
            db,
            clock,
            rules,
        }
    }

    fn services(&self) -> AppealServices {
        AppealServices {
            clock: self.clock.clone(),
            rules: self.rules.clone(),
        }
    }

    fn watcher(&self) -> Watcher {
        Watcher::new(
            self.db.pool.clone(),
            self.services(),
            self.rules.clone(),
            WatcherConfig::default(),
        )
    }

    async fn send(&self, id: Uuid, command: AppealCommand) {
        self.store
            .execute(
                &id.to_string(),
                &command,
                &self.services(),
                &HashMap::new(),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", command.name()));
    }

    /// Files and assigns an appeal at the clock's instant.
    async fn assigned_appeal(&self) -> Uuid {
        let id = Uuid::now_v7();
        let tracking_number = linkage_store::tracking::next_tracking_number(&self.db.pool, 2026)
            .await
            .unwrap();
        self.send(
            id,
            AppealCommand::File {
                appeal_id: id,
                tracking_number,
                body: FileAppeal {
                    channel: Channel::Linkage110,
                    filer: Filer {
                        kind: FilerKind::Enterprise,
                        name: parse("某某科技有限公司"),
                        contact_person: None,
                        phone: parse("13800130000"),
                    },
                    category: Category::ApprovalDelay,
                    town: parse("高新园区"),
                    description: parse("审批超时"),
                    complained_unit: None,
                },
            },
        )
        .await;
        self.send(
            id,
            AppealCommand::Assign(AssignAppeal {
                lead: parse(LEAD),
                co_handlers: vec![],
            }),
        )
        .await;
        id
    }

    /// Rewrites the ledger from every event so far, through the projection itself (a
    /// rebuild would wait for transactions of parallel tests on the same server).
    async fn refresh_ledger(&self) {
        use linkage_projector::Projection as _;
        use linkage_projector::rebuild::{EVENT_COLUMNS, envelope_from_row};
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events ORDER BY global_position"
        )))
        .fetch_all(&self.db.pool)
        .await
        .unwrap();
        let envelopes: Vec<_> = rows.iter().map(|r| envelope_from_row(r).unwrap()).collect();
        let mut tx = self.db.pool.begin().await.unwrap();
        sqlx::query("TRUNCATE ledger, ledger_timeline")
            .execute(&mut *tx)
            .await
            .unwrap();
        Ledger.apply(&mut tx, &envelopes).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn events_of(&self, id: Uuid, event_type: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = $2",
        )
        .bind(id.to_string())
        .bind(event_type)
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }

    async fn ledger_row(&self, id: Uuid) -> LedgerRow {
        let Json(row): Json<LedgerRow> =
            sqlx::query_scalar("SELECT to_jsonb(l) FROM ledger l WHERE appeal_id = $1")
                .bind(id)
                .fetch_one(&self.db.pool)
                .await
                .unwrap();
        row
    }
}

#[tokio::test]
async fn two_watchers_record_each_missed_deadline_once() {
    // Assigned Mon 2026-03-02 09:00 local: contact due 11:00 local (03:00Z).
    let world = World::new("2026-03-02T01:00:00Z").await;
    let (late, on_time) = (world.assigned_appeal().await, world.assigned_appeal().await);
    world.clock.set(t("2026-03-02T02:00:00Z"));
    let by: DepartmentId = parse(LEAD);
    world
        .send(
            on_time,
            AppealCommand::RecordContact {
                by,
                body: RecordContact {
                    method: ContactMethod::Phone,
                    note: None,
                },
            },
        )
        .await;
    world.refresh_ledger().await;
    let (mut first, mut second) = (world.watcher(), world.watcher());

    // Before the deadline nothing is recorded, and the next wake-up is the contact deadline.
    let round = first.round().await.unwrap();
    assert_eq!((round.recorded, round.already_done), (0, 0));
    assert_eq!(round.next_due, Some(t("2026-03-02T03:00:00Z")));

    // At the deadline (an exclusive end) both watchers look; only one records.
    world.clock.set(t("2026-03-02T03:00:00Z"));
    let a = first.round().await.unwrap();
    let b = second.round().await.unwrap();
    assert_eq!(a.recorded + b.recorded, 1, "{a:?} {b:?}");
    assert_eq!(world.events_of(late, "DeadlineMissed").await, 1);
    assert_eq!(world.events_of(on_time, "DeadlineMissed").await, 0);

    // Restarted watchers on a ledger that caught up record nothing more; the ledger's queue
    // moves on to the feedback deadline (24:00 Tue 03-03 local).
    world.refresh_ledger().await;
    let row = world.ledger_row(late).await;
    assert_eq!(row.missed_in_force, vec![parse("contact")]);
    assert_eq!(row.watch_due, Some(t("2026-03-03T16:00:00Z")));
    let round = world.watcher().round().await.unwrap();
    assert_eq!(round.recorded, 0);
    assert_eq!(world.events_of(late, "DeadlineMissed").await, 1);
}

#[tokio::test]
async fn a_calendar_correction_recomputes_open_appeals_deadlines() {
    let world = World::new("2026-03-02T01:00:00Z").await;
    let id = world.assigned_appeal().await;
    world.refresh_ledger().await;
    let mut watcher = world.watcher();
    let round = watcher.round().await.unwrap();
    assert_eq!(round.recomputed, 0, "computed with the calendar in force");

    // Tue 2026-03-03 becomes a day off: feedback moves to Wed 03-04, resolution to Tue 03-17.
    let rules = PgEventStore::<SlaRules>::new(world.db.pool.clone());
    let correction = RulesCommand::CorrectCalendarDate(CorrectCalendarDate {
        date: parse("2026-03-03"),
        working: false,
        reason: parse("区政府临时调整"),
    });
    let services = RulesServices {
        clock: world.clock.clone() as Arc<dyn Clock>,
    };
    rules
        .execute(RULES_ID, &correction, &services, &HashMap::new(), None)
        .await
        .unwrap();

    let round = watcher.round().await.unwrap();
    assert_eq!(round.recomputed, 1);
    assert_eq!(world.events_of(id, "DeadlinesRecomputed").await, 1);
    world.refresh_ledger().await;
    let row = world.ledger_row(id).await;
    assert_eq!(row.calendar.as_deref(), Some("calendar-v8"));
    assert_eq!(row.feedback_due, Some(t("2026-03-04T16:00:00Z")));
    assert_eq!(row.resolution_due, Some(t("2026-03-17T16:00:00Z")));
    // The same version is not swept again, and a new watcher finds nothing left to move.
    assert_eq!(watcher.round().await.unwrap().recomputed, 0);
    assert_eq!(world.watcher().round().await.unwrap().recomputed, 0);
    assert_eq!(world.events_of(id, "DeadlinesRecomputed").await, 1);
}
