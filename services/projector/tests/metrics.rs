//! The metric projections against real Postgres: a redelivered or overlapping batch counts
//! nothing twice (the per-appeal sequence guard), a gap in an appeal's stream is refused, and
//! the complaint and penalty rows follow their events.

use chrono::{DateTime, Utc};
use linkage_bus::Envelope;
use linkage_domain::appeal::AppealEvent;
use linkage_domain::values::{
    AccountabilityKind, Category, Channel, ContactMethod, DeadlineKind, ResolutionOutcome,
};
use linkage_projector::assessment::Assessment;
use linkage_projector::complaints::Complaints;
use linkage_projector::rates::Rates;
use linkage_projector::testing::{EnvelopeFactory, assigned, dept, filed, v};
use linkage_projector::{Projection, ProjectionError, ensure_schema};
use linkage_store::testing::TestDatabase;
use sqlx::PgPool;
use uuid::Uuid;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn apply(
    pool: &PgPool,
    projection: &dyn Projection,
    batch: &[Envelope],
) -> Result<(), ProjectionError> {
    let mut tx = pool.begin().await.unwrap();
    projection.apply(&mut tx, batch).await?;
    tx.commit().await.unwrap();
    Ok(())
}

/// `(month, department, contacts, on time, completions, on time)` of every counter row.
async fn counts(pool: &PgPool) -> Vec<(String, String, i64, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT month, key, contacts, contacts_on_time, completions, completions_on_time \
         FROM rate_totals WHERE dimension = 'department' ORDER BY month, key",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn redelivery_counts_nothing_twice_and_gaps_are_refused() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    ensure_schema(pool, &linkage_projector::all_projections())
        .await
        .unwrap();
    let mut f = EnvelopeFactory::new();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    // 2026-07-01 09:00 Beijing: contact due 11:00 (2 hours), resolution 14 days later.
    let at0 = t("2026-07-01T01:00:00Z");
    let contact = |at: &str| AppealEvent::ContactRecorded {
        department: dept("market"),
        method: ContactMethod::Phone,
        note: None,
        at: t(at),
    };
    let first = vec![
        f.envelope(
            a,
            &filed(a, 1, Channel::Linkage110, Category::Other, "城关镇", at0),
        ),
        f.envelope(a, &assigned("market", &[], at0)),
        f.envelope(
            b,
            &filed(b, 2, Channel::Hotline12345, Category::Other, "开发区", at0),
        ),
        f.envelope(b, &assigned("market", &[], at0)),
        // a: contacted in time; b: contacted late (known at 11:00, July).
        f.envelope(a, &contact("2026-07-01T02:00:00Z")),
        f.envelope(b, &contact("2026-07-01T04:00:00Z")),
    ];
    let second = vec![
        f.envelope(
            a,
            &AppealEvent::AppealResolved {
                department: dept("market"),
                outcome: ResolutionOutcome::Resolved,
                text: v("已解决"),
                at: t("2026-07-02T01:00:00Z"),
            },
        ),
        f.envelope(
            a,
            &AppealEvent::AccountabilityRecorded {
                department: dept("market"),
                kind: AccountabilityKind::Fraud,
                note: v("弄虚作假"),
                at: t("2026-08-03T01:00:00Z"),
            },
        ),
        f.envelope(
            b,
            &AppealEvent::DeadlineMissed {
                which: DeadlineKind::Resolution,
                due: t("2026-07-15T01:00:00Z"),
                at: t("2026-07-16T01:00:00Z"),
            },
        ),
        f.envelope(
            b,
            &AppealEvent::AppealMarkedDuplicate {
                original: a,
                at: t("2026-07-16T02:00:00Z"),
            },
        ),
    ];
    let projections: [&dyn Projection; 3] = [&Rates, &Assessment, &Complaints];
    for p in projections {
        apply(pool, p, &first).await.unwrap();
        // The same batch again, then one overlapping both.
        apply(pool, p, &first).await.unwrap();
        let overlap: Vec<Envelope> = first[4..].iter().chain(&second).cloned().collect();
        apply(pool, p, &overlap).await.unwrap();
        apply(pool, p, &second).await.unwrap();
    }
    assert_eq!(
        counts(pool).await,
        [("2026-07".into(), "market".into(), 2, 1, 2, 1)],
        "a: contact and completion in time; b: contact late, resolution missed at 07-15"
    );
    let penalties: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT month, department, kind, occurrences FROM assessment_penalty_counts \
         ORDER BY month, kind",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        penalties,
        [
            (
                "2026-07".into(),
                "market".into(),
                "missed_resolution".into(),
                1
            ),
            (
                "2026-08".into(),
                "market".into(),
                "accountability_fraud".into(),
                1
            ),
        ]
    );
    let complaints: Vec<(Uuid, bool)> =
        sqlx::query_as("SELECT appeal_id, duplicate FROM complaint_appeals ORDER BY appeal_id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(complaints, [(a, false), (b, true)]);
    // Both filed against the same unit in July; b, merged, is taken out again (once).
    let counted: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT month, unit, category, complaints FROM complaint_counts")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        counted,
        [("2026-07".into(), "某某执法队".into(), "other".into(), 1)]
    );

    // An event whose predecessor never arrived: refused, nothing written.
    let skipped = f.envelope(a, &contact("2026-07-03T01:00:00Z"));
    let after_gap = f.envelope(a, &contact("2026-07-03T02:00:00Z"));
    drop(skipped);
    let e = apply(pool, &Rates, std::slice::from_ref(&after_gap))
        .await
        .unwrap_err();
    assert!(matches!(e, ProjectionError::Inconsistent { .. }), "{e}");
    assert!(e.to_string().contains("gap"), "{e}");
}
