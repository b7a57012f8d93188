//! The ledger's mapping of every event, against a real Postgres (a fresh database per test).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use linkage_bus::Envelope;
use linkage_domain::appeal::{AppealEvent, AppealStatus, ReturnVisitResult};
use linkage_domain::values::{
    AccountabilityKind, Category, Channel, ContactMethod, DeadlineKind, ResolutionOutcome,
    Satisfaction,
};
use linkage_store::stored::StoredEvent;
use linkage_store::testing::TestDatabase;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Ledger, LedgerRow, TimelineRow};
use crate::testing::{
    EnvelopeFactory, StoredText, assigned, deadlines, dept, filed, stored_chunk, v,
};
use crate::{Projection, ProjectionError, ensure_schema};
use linkage_domain::sla::Deadlines;

fn t0() -> DateTime<Utc> {
    "2026-03-02T01:00:00Z".parse().unwrap()
}

fn at(hours: i64) -> DateTime<Utc> {
    t0() + Duration::hours(hours)
}

struct Fixture {
    db: TestDatabase,
    envelopes: EnvelopeFactory,
    id: Uuid,
}

impl Fixture {
    async fn new() -> Self {
        let db = TestDatabase::new().await.unwrap();
        ensure_schema(&db.pool, &[Arc::new(Ledger)]).await.unwrap();
        Self {
            db,
            envelopes: EnvelopeFactory::new(),
            id: Uuid::now_v7(),
        }
    }

    /// A filed appeal (event 1) assigned to `market` with `tax` co-handling (event 2).
    async fn assigned() -> Self {
        let mut f = Self::new().await;
        f.events(&[
            filed(
                f.id,
                1,
                Channel::Hotline12345,
                Category::ArbitraryFines,
                "城关镇",
                t0(),
            ),
            assigned("market", &["tax"], at(1)),
        ])
        .await;
        f
    }

    async fn apply(&self, batch: &[Envelope]) -> Result<(), ProjectionError> {
        let mut tx = self.db.pool.begin().await.unwrap();
        Ledger.apply(&mut tx, batch).await?;
        tx.commit().await.unwrap();
        Ok(())
    }

    fn envelopes_for(&mut self, events: &[AppealEvent]) -> Vec<Envelope> {
        events
            .iter()
            .map(|e| self.envelopes.envelope(self.id, e))
            .collect()
    }

    /// Applies `events` of the fixture's appeal as one batch and returns its row.
    async fn events(&mut self, events: &[AppealEvent]) -> LedgerRow {
        let batch = self.envelopes_for(events);
        self.apply(&batch).await.unwrap();
        self.row().await
    }

    async fn row(&self) -> LedgerRow {
        row(&self.db, self.id).await.unwrap()
    }

    async fn timeline(&self) -> Vec<TimelineRow> {
        let rows: Vec<sqlx::types::Json<TimelineRow>> = sqlx::query_scalar(
            "SELECT to_jsonb(t) FROM ledger_timeline t WHERE appeal_id = $1 ORDER BY sequence",
        )
        .bind(self.id)
        .fetch_all(&self.db.pool)
        .await
        .unwrap();
        rows.into_iter().map(|r| r.0).collect()
    }
}

async fn row(db: &TestDatabase, id: Uuid) -> Option<LedgerRow> {
    let row: Option<sqlx::types::Json<LedgerRow>> =
        sqlx::query_scalar("SELECT to_jsonb(l) FROM ledger l WHERE appeal_id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await
            .unwrap();
    row.map(|r| r.0)
}

#[tokio::test]
async fn filed_starts_a_row_and_a_timeline() {
    let mut f = Fixture::new().await;
    let r = f
        .events(&[filed(
            f.id,
            42,
            Channel::Linkage110,
            Category::ApprovalDelay,
            "开发区",
            t0(),
        )])
        .await;
    assert_eq!(r.appeal_id, f.id);
    assert_eq!(r.tracking_number.as_str(), "LK-2026-000042");
    assert_eq!(r.channel, Channel::Linkage110);
    assert_eq!(r.filer_kind.as_str(), "citizen");
    assert_eq!(r.filer_name, "张三");
    assert_eq!(r.filer_contact_person, None);
    assert_eq!(r.filer_phone.as_str(), "13800138000");
    assert_eq!(r.category, Category::ApprovalDelay);
    assert_eq!(r.town, "开发区");
    assert_eq!(r.complained_unit.as_deref(), Some("某某执法队"));
    assert_eq!(r.description, "门口道路被占用，影响企业运输");
    assert_eq!(r.status, AppealStatus::Filed);
    assert_eq!(r.filed_at, t0());
    assert_eq!(r.lead_department, None);
    assert!(r.co_handlers.is_empty());
    assert_eq!(r.contact_due, None);
    assert_eq!(
        (r.last_sequence, r.last_global_position, r.last_event_at),
        (1, 1, t0())
    );
    assert_eq!(r.updated_at, t0());
    assert_eq!(
        (
            r.extension_count,
            r.rework_count,
            r.transfer_count,
            r.decline_count
        ),
        (0, 0, 0, 0)
    );
    assert!(!r.supervised);

    let timeline = f.timeline().await;
    assert_eq!(timeline.len(), 1);
    let t = &timeline[0];
    assert_eq!(
        (t.sequence, t.event_type.as_str(), t.at),
        (1, "AppealFiled", t0())
    );
    assert_eq!(t.actor.as_deref(), Some("tester"));
    assert_eq!(t.role.as_deref(), Some("dispatcher"));
    assert_eq!(t.department, None);
    // The filer's personal data stays out of the timeline.
    assert!(t.summary.get("filer").is_none(), "{}", t.summary);
    assert!(t.summary.get("at").is_none());
    assert_eq!(t.summary["channel"], "110");
}

#[tokio::test]
async fn assigned_sets_departments_and_deadlines() {
    let f = Fixture::assigned().await;
    let r = f.row().await;
    let d = deadlines(at(1));
    assert_eq!(r.status, AppealStatus::Assigned);
    assert_eq!(r.lead_department, Some(dept("market")));
    assert_eq!(r.co_handlers, vec![dept("tax")]);
    assert_eq!(r.assigned_at, Some(at(1)));
    assert_eq!(r.contact_due, Some(d.contact_due));
    assert_eq!(r.feedback_due, Some(d.feedback_due));
    assert_eq!(r.resolution_due, Some(d.resolution_due));
    assert_eq!((r.last_sequence, r.last_event_at), (2, at(1)));
    assert_eq!(f.timeline().await[1].summary["lead"], "market");
}

#[tokio::test]
async fn the_deadline_in_force_follows_the_appeal() {
    let mut f = Fixture::new().await;
    let r = f
        .events(&[filed(
            f.id,
            1,
            Channel::Online,
            Category::Other,
            "城关镇",
            t0(),
        )])
        .await;
    assert_eq!(r.next_due, None);
    let r = f
        .events(&[AppealEvent::AppealSupervised {
            note: v("尽快分派"),
            due: at(100),
            calendar: "test".into(),
            at: at(1),
        }])
        .await;
    assert_eq!(r.next_due, Some(at(100)));
    let d = deadlines(at(2));
    let r = f.events(&[assigned("market", &[], at(2))]).await;
    assert_eq!(r.next_due, Some(d.contact_due));
    let r = f
        .events(&[AppealEvent::ContactRecorded {
            department: dept("market"),
            method: ContactMethod::Phone,
            note: None,
            at: at(3),
        }])
        .await;
    assert_eq!(r.next_due, Some(d.feedback_due));
    let r = f
        .events(&[AppealEvent::InitialFeedbackGiven {
            department: dept("market"),
            text: v("已受理"),
            at: at(4),
        }])
        .await;
    // Supervision (at 100 h) comes before the resolution deadline (14 days).
    assert_eq!(r.next_due, Some(at(100)));
    let r = f
        .events(&[AppealEvent::AppealResolved {
            department: dept("market"),
            outcome: ResolutionOutcome::Resolved,
            text: v("已处理"),
            at: at(5),
        }])
        .await;
    assert_eq!(r.next_due, None);
}

#[tokio::test]
async fn contact_feedback_and_resolution() {
    let mut f = Fixture::assigned().await;
    let r = f
        .events(&[
            AppealEvent::ContactRecorded {
                department: dept("market"),
                method: ContactMethod::Phone,
                note: None,
                at: at(2),
            },
            AppealEvent::InitialFeedbackGiven {
                department: dept("market"),
                text: v("已受理"),
                at: at(3),
            },
        ])
        .await;
    assert_eq!(r.contacted_at, Some(at(2)));
    assert_eq!(r.feedback_at, Some(at(3)));
    assert_eq!(r.status, AppealStatus::Assigned);

    let r = f
        .events(&[AppealEvent::AppealResolved {
            department: dept("market"),
            outcome: ResolutionOutcome::Explained,
            text: v("已解释"),
            at: at(4),
        }])
        .await;
    assert_eq!(r.status, AppealStatus::Resolved);
    assert_eq!(r.resolved_at, Some(at(4)));
    assert_eq!(r.resolution_outcome, Some(ResolutionOutcome::Explained));
    assert_eq!(r.last_sequence, 5);
}

#[tokio::test]
async fn extensions_requested_approved_and_rejected() {
    let mut f = Fixture::assigned().await;
    let r = f
        .events(&[AppealEvent::ExtensionRequested {
            department: dept("market"),
            working_days: 5,
            reason: v("需要现场核查"),
            at: at(2),
        }])
        .await;
    assert_eq!(r.extension_pending_days, Some(5));
    let new_due = at(24 * 21);
    let r = f
        .events(&[AppealEvent::ExtensionApproved {
            working_days: 5,
            previous_resolution_due: deadlines(at(1)).resolution_due,
            resolution_due: new_due,
            calendar: "test".into(),
            note: None,
            at: at(3),
        }])
        .await;
    assert_eq!(r.extension_pending_days, None);
    assert_eq!(r.extension_count, 1);
    assert_eq!(r.resolution_due, Some(new_due));

    let r = f
        .events(&[
            AppealEvent::ExtensionRequested {
                department: dept("market"),
                working_days: 3,
                reason: v("再次申请"),
                at: at(4),
            },
            AppealEvent::ExtensionRejected {
                reason: v("理由不足"),
                at: at(5),
            },
        ])
        .await;
    assert_eq!(r.extension_pending_days, None);
    assert_eq!(r.extension_count, 1);
    assert_eq!(r.resolution_due, Some(new_due));
}

fn resolved(h: i64) -> [AppealEvent; 2] {
    [
        AppealEvent::ContactRecorded {
            department: dept("market"),
            method: ContactMethod::OnSite,
            note: None,
            at: at(h),
        },
        AppealEvent::AppealResolved {
            department: dept("market"),
            outcome: ResolutionOutcome::Resolved,
            text: v("已处理"),
            at: at(h + 1),
        },
    ]
}

#[tokio::test]
async fn return_visits_reached_and_unreachable() {
    let mut f = Fixture::assigned().await;
    f.events(&resolved(2)).await;
    let r = f
        .events(&[AppealEvent::ReturnVisitRecorded {
            result: ReturnVisitResult::Unreachable,
            comment: None,
            at: at(10),
        }])
        .await;
    assert_eq!(r.status, AppealStatus::Resolved);
    assert_eq!(r.return_visit_result.as_deref(), Some("unreachable"));
    assert_eq!(r.return_visit_solved, None);
    assert_eq!(r.return_visited_at, Some(at(10)));

    let r = f
        .events(&[AppealEvent::ReturnVisitRecorded {
            result: ReturnVisitResult::Reached {
                solved: true,
                satisfaction: Satisfaction::BasicallySatisfied,
            },
            comment: Some(v("还行")),
            at: at(11),
        }])
        .await;
    assert_eq!(r.status, AppealStatus::ReturnVisited);
    assert_eq!(r.return_visit_result.as_deref(), Some("reached"));
    assert_eq!(r.return_visit_solved, Some(true));
    assert_eq!(
        r.return_visit_satisfaction,
        Some(Satisfaction::BasicallySatisfied)
    );
    assert_eq!(r.return_visited_at, Some(at(11)));

    let r = f
        .events(&[AppealEvent::AppealClosed {
            note: None,
            at: at(12),
        }])
        .await;
    assert_eq!(r.status, AppealStatus::Closed);
    assert_eq!(r.closed_at, Some(at(12)));
}

#[tokio::test]
async fn rework_reopens_the_appeal_with_a_new_deadline() {
    let mut f = Fixture::assigned().await;
    f.events(&resolved(2)).await;
    f.events(&[AppealEvent::ReturnVisitRecorded {
        result: ReturnVisitResult::Reached {
            solved: false,
            satisfaction: Satisfaction::Dissatisfied,
        },
        comment: None,
        at: at(10),
    }])
    .await;
    let due = at(24 * 30);
    let r = f
        .events(&[AppealEvent::ReturnedForRework {
            reason: v("敷衍了事"),
            working_days: 5,
            resolution_due: due,
            calendar: "test".into(),
            at: at(11),
        }])
        .await;
    assert_eq!(r.status, AppealStatus::Assigned);
    assert_eq!(r.rework_count, 1);
    assert_eq!(r.resolution_due, Some(due));
    assert_eq!(r.resolved_at, None);
    assert_eq!(r.resolution_outcome, None);
    assert_eq!(r.return_visit_result, None);
    assert_eq!(r.return_visit_satisfaction, None);
    assert_eq!(r.return_visited_at, None);
    // Contact was made; reworking does not owe it again.
    assert_eq!(r.contacted_at, Some(at(2)));
    assert_eq!(r.lead_department, Some(dept("market")));
}

#[tokio::test]
async fn transfer_moves_the_appeal_and_restarts_its_clock() {
    let mut f = Fixture::assigned().await;
    f.events(&[AppealEvent::ContactRecorded {
        department: dept("market"),
        method: ContactMethod::Phone,
        note: None,
        at: at(2),
    }])
    .await;
    let d = deadlines(at(5));
    let r = f
        .events(&[AppealEvent::AppealTransferred {
            from: dept("market"),
            lead: dept("housing"),
            co_handlers: vec![],
            reason: v("职责不符"),
            deadlines: d,
            calendar: "test".into(),
            policy: Default::default(),
            at: at(5),
        }])
        .await;
    assert_eq!(r.status, AppealStatus::Assigned);
    assert_eq!(r.lead_department, Some(dept("housing")));
    assert!(r.co_handlers.is_empty());
    assert_eq!(r.transfer_count, 1);
    assert_eq!(r.assigned_at, Some(at(5)));
    assert_eq!(r.contact_due, Some(d.contact_due));
    assert_eq!(r.feedback_due, Some(d.feedback_due));
    assert_eq!(r.resolution_due, Some(d.resolution_due));
    assert_eq!(r.contacted_at, None);
    assert_eq!(r.feedback_at, None);
}

#[tokio::test]
async fn decline_sends_the_appeal_back_to_dispatch() {
    let mut f = Fixture::assigned().await;
    let r = f
        .events(&[
            AppealEvent::ExtensionRequested {
                department: dept("market"),
                working_days: 2,
                reason: v("x"),
                at: at(2),
            },
            AppealEvent::AppealDeclined {
                department: dept("market"),
                reason: v("不属于本部门职责"),
                at: at(3),
            },
        ])
        .await;
    assert_eq!(r.status, AppealStatus::Filed);
    assert_eq!(r.decline_count, 1);
    assert_eq!(r.lead_department, None);
    assert!(r.co_handlers.is_empty());
    assert_eq!(r.assigned_at, None);
    assert_eq!(
        (r.contact_due, r.feedback_due, r.resolution_due),
        (None, None, None)
    );
    assert_eq!(r.extension_pending_days, None);
    let timeline = f.timeline().await;
    assert_eq!(timeline.last().unwrap().event_type, "AppealDeclined");

    // Reassigned afterwards: a fresh assignment.
    let r = f.events(&[assigned("housing", &[], at(4))]).await;
    assert_eq!(r.status, AppealStatus::Assigned);
    assert_eq!(r.lead_department, Some(dept("housing")));
    assert_eq!(r.decline_count, 1);
    assert_eq!(r.transfer_count, 0);
}

#[tokio::test]
async fn withdrawn_and_duplicate() {
    let mut f = Fixture::assigned().await;
    let r = f
        .events(&[AppealEvent::AppealWithdrawn {
            reason: v("已自行解决"),
            at: at(2),
        }])
        .await;
    assert_eq!(r.status, AppealStatus::Withdrawn);
    assert_eq!(r.withdrawn_at, Some(at(2)));

    let mut g = Fixture::new().await;
    let original = Uuid::now_v7();
    let r = g
        .events(&[
            filed(g.id, 7, Channel::Online, Category::Other, "城关镇", t0()),
            AppealEvent::AppealMarkedDuplicate {
                original,
                at: at(1),
            },
        ])
        .await;
    assert_eq!(r.status, AppealStatus::Duplicate);
    assert_eq!(r.duplicate_of, Some(original));
}

#[tokio::test]
async fn supervision_accountability_and_missed_deadlines() {
    let mut f = Fixture::assigned().await;
    let r = f
        .events(&[
            AppealEvent::AppealSupervised {
                note: v("督办"),
                due: at(50),
                calendar: "test".into(),
                at: at(2),
            },
            AppealEvent::AppealSupervised {
                note: v("再次督办"),
                due: at(80),
                calendar: "test".into(),
                at: at(3),
            },
            AppealEvent::DeadlineMissed {
                which: DeadlineKind::Contact,
                due: at(3),
                at: at(3),
            },
            AppealEvent::DeadlineMissed {
                which: DeadlineKind::Resolution,
                due: at(4),
                at: at(4),
            },
            AppealEvent::DeadlineMissed {
                which: DeadlineKind::Contact,
                due: at(5),
                at: at(5),
            },
            AppealEvent::AccountabilityRecorded {
                department: dept("market"),
                kind: AccountabilityKind::Delay,
                note: v("推诿"),
                at: at(6),
            },
            AppealEvent::AccountabilityRecorded {
                department: dept("tax"),
                kind: AccountabilityKind::EnterpriseHarassment,
                note: v("侵企扰企"),
                at: at(7),
            },
            AppealEvent::AccountabilityRecorded {
                department: dept("market"),
                kind: AccountabilityKind::Delay,
                note: v("再次"),
                at: at(8),
            },
        ])
        .await;
    assert!(r.supervised);
    assert_eq!(r.supervision_count, 2);
    assert_eq!(r.supervision_due, Some(at(80)));
    assert_eq!(
        r.missed_deadlines,
        vec![DeadlineKind::Contact, DeadlineKind::Resolution]
    );
    assert_eq!(r.accountability_count, 3);
    assert_eq!(
        r.accountability_kinds,
        vec![
            AccountabilityKind::Delay,
            AccountabilityKind::EnterpriseHarassment
        ]
    );
    assert_eq!(
        r.accountability_departments,
        vec![dept("market"), dept("tax")]
    );
    assert_eq!(r.status, AppealStatus::Assigned);
    assert_eq!(f.timeline().await.len(), 10);
}

#[tokio::test]
async fn a_redelivered_batch_changes_nothing() {
    let mut f = Fixture::new().await;
    let mut batch = f.envelopes_for(&[
        filed(f.id, 1, Channel::Online, Category::Other, "城关镇", t0()),
        assigned("market", &[], at(1)),
    ]);
    f.apply(&batch).await.unwrap();
    let before = f.row().await;
    f.apply(&batch).await.unwrap();
    // Overlapping: the old events again plus a new one.
    batch.extend(f.envelopes_for(&[AppealEvent::ContactRecorded {
        department: dept("market"),
        method: ContactMethod::Phone,
        note: None,
        at: at(2),
    }]));
    assert_eq!(f.row().await, before);
    f.apply(&batch).await.unwrap();
    let after = f.row().await;
    assert_eq!(after.contacted_at, Some(at(2)));
    assert_eq!(after.last_sequence, 3);
    assert_eq!(f.timeline().await.len(), 3);
}

#[tokio::test]
async fn gaps_and_orphans_are_refused() {
    let mut f = Fixture::new().await;
    let filed_env = f.envelopes_for(&[filed(
        f.id,
        1,
        Channel::Online,
        Category::Other,
        "城关镇",
        t0(),
    )]);
    let assigned_env = f.envelopes_for(&[assigned("market", &[], at(1))]);
    // An event before its appeal was filed.
    let e = f.apply(&assigned_env).await.unwrap_err();
    assert!(matches!(e, ProjectionError::Inconsistent { .. }), "{e}");
    f.apply(&filed_env).await.unwrap();
    // Event #3 after #1: #2 is missing.
    let third = f.envelopes_for(&[AppealEvent::AppealWithdrawn {
        reason: v("x"),
        at: at(2),
    }]);
    let e = f.apply(&third).await.unwrap_err();
    assert!(e.to_string().contains("gap"), "{e}");
    // Nothing of the refused batches was written.
    assert_eq!(f.row().await.status, AppealStatus::Filed);
    assert_eq!(f.timeline().await.len(), 1);
}

#[tokio::test]
async fn undecodable_events_are_refused_and_other_aggregates_ignored() {
    let mut f = Fixture::new().await;
    let mut env = f.envelopes_for(&[filed(
        f.id,
        1,
        Channel::Online,
        Category::Other,
        "城关镇",
        t0(),
    )]);
    let mut other = env[0].clone();
    other.aggregate_type = "calendar".into();
    other.payload = json!({"anything": true});
    f.apply(std::slice::from_ref(&other)).await.unwrap();
    assert!(row(&f.db, f.id).await.is_none());

    env[0].payload["channel"] = Value::from("fax");
    let e = f.apply(&env).await.unwrap_err();
    assert!(matches!(e, ProjectionError::Decode { .. }), "{e}");
}

/// One batch across many appeals gives the same rows as applying the events one at a time.
#[tokio::test]
async fn a_batch_equals_its_events_applied_one_by_one() {
    let batched = Fixture::new().await;
    let single = Fixture::new().await;
    let mut envelopes = EnvelopeFactory::new();
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let mut all = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        all.push(envelopes.envelope(
            *id,
            &filed(
                *id,
                i as u64 + 1,
                Channel::Online,
                Category::Other,
                "城关镇",
                t0(),
            ),
        ));
    }
    // Interleaved across appeals, as commit order would have it.
    for (i, id) in ids.iter().enumerate() {
        all.push(envelopes.envelope(*id, &assigned("market", &["tax"], at(1))));
        if i % 2 == 0 {
            for e in resolved(2) {
                all.push(envelopes.envelope(*id, &e));
            }
        }
    }
    batched.apply(&all).await.unwrap();
    for e in &all {
        single.apply(std::slice::from_ref(e)).await.unwrap();
    }
    for id in ids {
        assert_eq!(
            row(&batched.db, id).await.unwrap(),
            row(&single.db, id).await.unwrap()
        );
    }
}

#[tokio::test]
async fn the_watch_queue_follows_misses_and_moved_deadlines() {
    let mut f = Fixture::assigned().await;
    let d = deadlines(at(1));
    // Nothing met yet: the watcher's next look is the contact deadline.
    let r = f
        .events(&[AppealEvent::InitialFeedbackGiven {
            department: dept("market"),
            text: v("已受理"),
            at: at(1),
        }])
        .await;
    assert_eq!(r.watch_due, Some(d.contact_due));
    assert_eq!(r.calendar.as_deref(), Some("test"));
    // The contact miss is recorded: the queue moves on to resolution (feedback was met).
    let r = f
        .events(&[AppealEvent::DeadlineMissed {
            which: DeadlineKind::Contact,
            due: d.contact_due,
            at: d.contact_due,
        }])
        .await;
    assert_eq!(r.missed_in_force, vec![DeadlineKind::Contact]);
    assert_eq!(r.watch_due, Some(d.resolution_due));
    // A recomputation that moves only the resolution keeps the contact miss in force.
    let moved = Deadlines {
        resolution_due: d.resolution_due + chrono::Duration::days(1),
        ..d
    };
    let r = f
        .events(&[AppealEvent::DeadlinesRecomputed {
            previous: d,
            deadlines: moved,
            previous_calendar: "test".into(),
            calendar: "calendar-v9".into(),
            reason: "calendar changed".into(),
            at: at(3),
        }])
        .await;
    assert_eq!(r.resolution_due, Some(moved.resolution_due));
    assert_eq!(r.missed_in_force, vec![DeadlineKind::Contact]);
    assert_eq!(r.watch_due, Some(moved.resolution_due));
    assert_eq!(r.calendar.as_deref(), Some("calendar-v9"));
}

/// Every table row as Postgres prints it (exact: instants to the microsecond, arrays, json
/// text), in key order.
async fn dump(pool: &sqlx::PgPool) -> (Vec<String>, Vec<String>) {
    let ledger = sqlx::query_scalar("SELECT l::text FROM ledger l ORDER BY appeal_id")
        .fetch_all(pool)
        .await
        .unwrap();
    let timeline =
        sqlx::query_scalar("SELECT t::text FROM ledger_timeline t ORDER BY appeal_id, sequence")
            .fetch_all(pool)
            .await
            .unwrap();
    (ledger, timeline)
}

/// The rebuild's bulk load (`rebuild_chunk`: whole streams, binary COPY) leaves exactly the
/// rows the live path (`apply`: batches in commit order, upserts) leaves, for every event kind,
/// with instants finer than Postgres keeps and text Postgres would have to escape.
#[tokio::test]
async fn the_bulk_load_equals_the_live_path() {
    let db = TestDatabase::new().await.unwrap();
    ensure_schema(&db.pool, &[Arc::new(Ledger)]).await.unwrap();
    // Sub-microsecond parts (events recorded before the clock truncated): both truncate alike.
    let at = |h: i64| at(h) + Duration::nanoseconds(123_456_789);
    let d = deadlines(at(1));
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    let mut scripts: Vec<Vec<AppealEvent>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            vec![filed(
                *id,
                i as u64 + 1,
                Channel::Hotline12345,
                Category::ArbitraryFines,
                "城关镇",
                at(0),
            )]
        })
        .collect();
    if let AppealEvent::AppealFiled {
        description,
        complained_unit,
        ..
    } = &mut scripts[0][0]
    {
        *description = v("第一行\n第二行\t\"引号\" \\ 反斜杠");
        *complained_unit = None;
    }
    scripts[0].extend([
        assigned("market", &["tax", "housing"], at(1)),
        AppealEvent::AppealSupervised {
            note: v("督办"),
            due: at(50),
            calendar: "test".into(),
            at: at(2),
        },
        AppealEvent::DeadlineMissed {
            which: DeadlineKind::Contact,
            due: d.contact_due,
            at: d.contact_due,
        },
        AppealEvent::DeadlineMissed {
            which: DeadlineKind::Resolution,
            due: at(4),
            at: at(4),
        },
        AppealEvent::AccountabilityRecorded {
            department: dept("market"),
            kind: AccountabilityKind::Delay,
            note: v("推诿"),
            at: at(6),
        },
        AppealEvent::AccountabilityRecorded {
            department: dept("tax"),
            kind: AccountabilityKind::EnterpriseHarassment,
            note: v("侵企扰企"),
            at: at(7),
        },
    ]);
    scripts[1].extend([
        assigned("market", &[], at(1)),
        AppealEvent::ExtensionRequested {
            department: dept("market"),
            working_days: 5,
            reason: v("需要现场核查"),
            at: at(2),
        },
        AppealEvent::ExtensionApproved {
            working_days: 5,
            previous_resolution_due: d.resolution_due,
            resolution_due: at(24 * 21),
            calendar: "test".into(),
            note: None,
            at: at(3),
        },
        AppealEvent::InitialFeedbackGiven {
            department: dept("market"),
            text: v("已受理"),
            at: at(4),
        },
    ]);
    scripts[1].extend(resolved(5));
    scripts[1].extend([
        AppealEvent::ReturnVisitRecorded {
            result: ReturnVisitResult::Unreachable,
            comment: None,
            at: at(10),
        },
        AppealEvent::ReturnVisitRecorded {
            result: ReturnVisitResult::Reached {
                solved: true,
                satisfaction: Satisfaction::BasicallySatisfied,
            },
            comment: Some(v("还行")),
            at: at(11),
        },
        AppealEvent::AppealClosed {
            note: None,
            at: at(12),
        },
    ]);
    scripts[2].extend([assigned("market", &["tax"], at(1))]);
    scripts[2].extend(resolved(2));
    scripts[2].extend([
        AppealEvent::ReturnVisitRecorded {
            result: ReturnVisitResult::Reached {
                solved: false,
                satisfaction: Satisfaction::Dissatisfied,
            },
            comment: None,
            at: at(10),
        },
        AppealEvent::ReturnedForRework {
            reason: v("敷衍了事"),
            working_days: 5,
            resolution_due: at(24 * 30),
            calendar: "test".into(),
            at: at(11),
        },
        AppealEvent::AppealTransferred {
            from: dept("market"),
            lead: dept("housing"),
            co_handlers: vec![],
            reason: v("职责不符"),
            deadlines: deadlines(at(12)),
            calendar: "test".into(),
            policy: Default::default(),
            at: at(12),
        },
        AppealEvent::DeadlinesRecomputed {
            previous: deadlines(at(12)),
            deadlines: deadlines(at(13)),
            previous_calendar: "test".into(),
            calendar: "calendar-v9".into(),
            reason: "calendar changed".into(),
            at: at(13),
        },
    ]);
    scripts[3].extend([
        assigned("market", &[], at(1)),
        AppealEvent::AppealDeclined {
            department: dept("market"),
            reason: v("不属于本部门职责"),
            at: at(3),
        },
        AppealEvent::AppealWithdrawn {
            reason: v("已自行解决"),
            at: at(4),
        },
    ]);
    scripts[4].push(AppealEvent::AppealMarkedDuplicate {
        original: ids[0],
        at: at(1),
    });
    // scripts[5]: filed only.

    // Commit order interleaves the appeals, each event in its own transaction.
    let mut envelopes = EnvelopeFactory::new();
    let mut all = Vec::new();
    let longest = scripts.iter().map(Vec::len).max().unwrap();
    for step in 0..longest {
        for (id, script) in ids.iter().zip(&scripts) {
            if let Some(event) = script.get(step) {
                let department = (step % 2 == 1).then_some("market");
                all.push(envelopes.envelope_by(*id, event, "王五", "handler", department));
            }
        }
    }
    for batch in all.chunks(5) {
        let mut tx = db.pool.begin().await.unwrap();
        Ledger.apply(&mut tx, batch).await.unwrap();
        tx.commit().await.unwrap();
    }
    let live = dump(&db.pool).await;
    assert_eq!(live.0.len(), ids.len());
    assert_eq!(live.1.len(), all.len());

    // As a rebuild reads them: stream by stream, in two chunks of whole streams, from the
    // events table's text as the store writes it and as events stored as `jsonb` keep it.
    all.sort_by(|a, b| (&a.aggregate_id, a.sequence).cmp(&(&b.aggregate_id, b.sequence)));
    let split = all
        .iter()
        .position(|e| e.aggregate_id == ids[3].to_string())
        .unwrap();
    for text in [StoredText::Canonical, StoredText::Jsonb] {
        sqlx::query("TRUNCATE ledger, ledger_timeline")
            .execute(&db.pool)
            .await
            .unwrap();
        for chunk in [&all[..split], &all[split..]] {
            let chunk = stored_chunk(&db.pool, chunk, text).await.unwrap();
            let mut tx = db.pool.begin().await.unwrap();
            Ledger.rebuild_chunk(&mut tx, &chunk).await.unwrap();
            tx.commit().await.unwrap();
        }
        let bulk = dump(&db.pool).await;
        assert_eq!(bulk.0, live.0, "{text:?}");
        assert_eq!(bulk.1, live.1, "{text:?}");
    }
}

/// A stored event's metadata text gives the timeline the actors the parsed metadata gives it.
#[test]
fn actors_read_from_text_are_the_parsed_ones() {
    for metadata in [
        json!({"actor": "王五", "role": "handler", "department": "market", "command": "x"}),
        json!({"actor": "a \"quoted\" \\ name", "role": "", "department": null}),
        json!({"actor": 7, "role": ["handler"], "department": {"id": "market"}}),
        json!({"request_id": "r"}),
        json!([1, 2]),
        json!("actor"),
        json!(null),
    ] {
        let envelope = Envelope {
            metadata: metadata.clone(),
            ..EnvelopeFactory::new().envelope(Uuid::now_v7(), &resolved(1)[0])
        };
        for text in [
            metadata.to_string(),
            serde_json::to_string_pretty(&metadata).unwrap(),
        ] {
            assert_eq!(
                super::Actors::read(text.as_bytes()).unwrap(),
                super::Actors::of(&envelope),
                "{text}"
            );
        }
    }
    // Of repeated keys the last counts, as in a parsed object.
    let actors = super::Actors::read(br#"{"actor":"a","actor":"b","role":"x","role":""}"#).unwrap();
    assert_eq!(actors.actor.as_deref(), Some("b"));
    assert_eq!(actors.role, None);
    assert!(super::Actors::read(b"{\"actor\":").is_err());
}

/// The payload decoder reads what the store's `decode_event` reads, and refuses what it refuses.
#[test]
fn decode_reads_as_the_store_does() {
    let mut envelopes = EnvelopeFactory::new();
    let id = Uuid::now_v7();
    let mut events = vec![
        filed(id, 1, Channel::Online, Category::Other, "城关镇", t0()),
        assigned("market", &["tax"], at(1)),
        AppealEvent::ReturnVisitRecorded {
            result: ReturnVisitResult::Unreachable,
            comment: None,
            at: at(2),
        },
    ];
    events.extend(resolved(3));
    let store = |e: &Envelope| {
        linkage_store::events::decode_event::<linkage_domain::appeal::Appeal>(
            &e.event_type,
            e.payload.clone(),
        )
    };
    // A rebuild decodes the stored text (as the store writes it, or as `jsonb` printed it).
    let stored = |e: &Envelope, text: &str| {
        super::decode_stored(&StoredEvent {
            event_id: e.event_id,
            global_position: e.global_position,
            tx_id: e.tx_id,
            aggregate_type: &e.aggregate_type,
            aggregate_id: &e.aggregate_id,
            sequence: e.sequence,
            event_type: &e.event_type,
            event_version: &e.event_version,
            recorded_at: e.recorded_at,
            payload: text.as_bytes(),
            metadata: b"{}",
            hash: &[0; 32],
            prev_hash: None,
        })
    };
    for event in &events {
        let envelope = envelopes.envelope(id, event);
        assert_eq!(&super::decode(&envelope).unwrap(), event);
        assert_eq!(store(&envelope).unwrap(), *event);
        for text in [
            envelope.payload.to_string(),
            serde_json::to_string_pretty(&envelope.payload).unwrap(),
        ] {
            assert_eq!(&stored(&envelope, &text).unwrap(), event);
        }
    }
    let good = envelopes.envelope(id, &events[1]);
    let broken = |change: &dyn Fn(&mut Envelope)| {
        let mut e = good.clone();
        change(&mut e);
        assert!(store(&e).is_err());
        assert!(matches!(
            super::decode(&e),
            Err(ProjectionError::Decode { .. })
        ));
        assert!(matches!(
            stored(&e, &e.payload.to_string()),
            Err(ProjectionError::Decode { .. })
        ));
    };
    // Stored text with anything after the value is refused too.
    assert!(stored(&good, &format!("{} x", good.payload)).is_err());
    broken(&|e| e.event_type = "NoSuchEvent".into());
    broken(&|e| e.payload = json!([1, 2]));
    broken(&|e| e.payload = json!("AppealAssigned"));
    broken(&|e| {
        e.payload.as_object_mut().unwrap().remove("lead");
    });
}
