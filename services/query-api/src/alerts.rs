//! `GET /api/v1/alerts` (红绿灯预警): every open deadline that is red (passed) or yellow (close),
//! soonest first, with the count per light. The light rule is `TrafficLight::of_deadline` in
//! `shared/domain/src/sla.rs`; the SQL here is the same rule over the ledger, so a district-wide
//! list needs no row-by-row pass (the tests check both agree).

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::{DateTime, Utc};
use linkage_domain::sla::TrafficLight;
use linkage_domain::values::DepartmentId;
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;

use crate::Ctx;
use crate::access::Scope;
use crate::params::Params;
use linkage_projector::ledger::LedgerRow;

pub fn routes() -> Router<Ctx> {
    Router::new().route("/api/v1/alerts", get(alerts))
}

pub(crate) const PARAMS: &[&str] = &["light", "department", "limit"];
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 500;

/// The open deadlines of appeals being handled, each with its light: contact and feedback while
/// not given, resolution always. `$1` now, `$2` yellow share, `$3` last-working-day rule,
/// `$4` department (lead or co-handler) or NULL.
macro_rules! open_deadlines {
    () => {
        r#"
WITH open AS (
    SELECT l.appeal_id, k.which, k.due,
        CASE
            WHEN k.due <= $1 THEN 'red'
            WHEN $1 >= k.due - (k.due - l.assigned_at) * $2::float8
              OR ($3 AND k.which <> 'contact' AND $1 >= k.due - interval '24 hours') THEN 'yellow'
            ELSE 'green'
        END AS light
    FROM ledger l
    CROSS JOIN LATERAL (VALUES
        ('contact', CASE WHEN l.contacted_at IS NULL THEN l.contact_due END),
        ('feedback', CASE WHEN l.feedback_at IS NULL THEN l.feedback_due END),
        ('resolution', l.resolution_due)
    ) AS k(which, due)
    WHERE l.status = 'assigned' AND k.due IS NOT NULL
      AND ($4::text IS NULL OR l.lead_department = $4 OR $4 = ANY (l.co_handlers))
)
"#
    };
}

fn light_param(params: &Params) -> Result<Vec<&'static str>, ApiError> {
    match params.raw("light") {
        None => Ok(vec!["red", "yellow"]),
        Some("red") => Ok(vec!["red"]),
        Some("yellow") => Ok(vec!["yellow"]),
        Some(other) => Err(ApiError::invalid(
            "light",
            format!("unknown light {other:?}; expected red or yellow"),
        )),
    }
}

/// `GET /api/v1/alerts?light=red|yellow&department=…&limit=…`.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn alerts(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let scope = Scope::of(&caller)?;
    let params = Params::parse(query, PARAMS)?;
    let lights = light_param(&params)?;
    let asked: Option<DepartmentId> = params.parsed("department")?;
    let department = scope.department_filter(asked)?;
    let limit: i64 = params.parsed("limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let policy = ctx.config.lights;
    let now = Utc::now();
    let department = department.as_ref().map(DepartmentId::as_str);
    let pool = &ctx.state.pool;
    let fresh = crate::freshness::of(pool, linkage_projector::ledger::NAME).await?;

    let counts: Vec<(String, i64)> = sqlx::query_as(concat!(
        open_deadlines!(),
        "SELECT light, count(*) FROM open GROUP BY light"
    ))
    .bind(now)
    .bind(policy.yellow_share)
    .bind(policy.last_working_day)
    .bind(department)
    .fetch_all(pool)
    .await
    .map_err(|e| linkage_store::StoreError::db("counting open deadlines by light", e))?;
    let count = |light: &str| {
        counts
            .iter()
            .find(|(l, _)| l == light)
            .map_or(0, |(_, n)| *n)
    };

    let rows: Vec<(SqlJson<LedgerRow>, String, DateTime<Utc>, String)> = sqlx::query_as(concat!(
        open_deadlines!(),
        "SELECT to_jsonb(l), o.which, o.due, o.light FROM open o \
             JOIN ledger l USING (appeal_id) WHERE o.light = ANY ($5) \
             ORDER BY o.due, o.appeal_id, o.which LIMIT $6"
    ))
    .bind(now)
    .bind(policy.yellow_share)
    .bind(policy.last_working_day)
    .bind(department)
    .bind(&lights)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(|e| linkage_store::StoreError::db("listing open deadlines by light", e))?;
    let items: Vec<Value> = rows
        .iter()
        .map(|(SqlJson(row), which, due, light)| {
            json!({
                "appeal_id": row.appeal_id,
                "tracking_number": row.tracking_number,
                "deadline": which,
                "due": due,
                "light": light,
                "lead_department": row.lead_department,
                "co_handlers": row.co_handlers,
                "channel": row.channel,
                "category": row.category,
                "town": row.town,
                "assigned_at": row.assigned_at,
                "sla_policy": row.sla_policy,
                "calendar": row.calendar,
            })
        })
        .collect();
    Ok(Json(json!({
        "as_of": now,
        "lights": {
            "red": count(TrafficLight::Red.as_str()),
            "yellow": count(TrafficLight::Yellow.as_str()),
            "green": count(TrafficLight::Green.as_str()),
        },
        "thresholds": policy,
        "items": items,
        "truncated": items.len() as i64 == limit,
        "freshness": fresh,
    })))
}
