//! `GET /api/v1/rates?month=YYYY-MM&by=department|channel|town`: the month's response,
//! on-time completion, resolution and satisfaction rates (docs/metrics.md), district-wide and per
//! group, each with numerator, denominator and the below-target flag, from the rates
//! projection's counters.
//!
//! Also what the other metric routes share: who may read metrics, a projection's freshness and
//! the assessment policy in force.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use linkage_auth::{Principal, Role};
use linkage_domain::assessment::{AssessmentPolicy, Month};
use linkage_domain::rates::RateCounts;
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::types::Json as SqlJson;

use crate::Ctx;
use crate::params::Params;

pub fn routes() -> Router<Ctx> {
    Router::new().route("/api/v1/rates", get(rates))
}

/// Metrics are district-wide figures every staff role may read; enterprises (who only score
/// departments) may not.
pub(crate) fn may_read_metrics(caller: &Principal) -> Result<(), ApiError> {
    if caller.role == Role::Enterprise {
        Err(ApiError::Forbidden(format!(
            "the role {} may not read metrics",
            caller.role
        )))
    } else {
        Ok(())
    }
}

pub(crate) fn db_error(context: &str, e: sqlx::Error) -> ApiError {
    linkage_store::StoreError::db(context, e).into()
}

/// How fresh a projection is: the last event it applied.
pub(crate) async fn freshness(pool: &PgPool, projection: &str) -> Result<Value, ApiError> {
    let row: Option<(Option<i64>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT global_position, updated_at FROM projection_checkpoints WHERE name = $1",
    )
    .bind(projection)
    .fetch_optional(pool)
    .await
    .map_err(|e| db_error("reading a projection checkpoint", e))?;
    Ok(json!({
        "projection": projection,
        "global_position": row.as_ref().and_then(|r| r.0),
        "updated_at": row.map(|r| r.1),
    }))
}

/// The assessment policy and its version: the latest set before `before` (the policy in force
/// then), or the latest of all; version 0 (the default) when none was set.
pub(crate) async fn policy(
    pool: &PgPool,
    before: Option<DateTime<Utc>>,
) -> Result<(i64, AssessmentPolicy), ApiError> {
    let row: Option<(i64, SqlJson<AssessmentPolicy>)> = sqlx::query_as(
        "SELECT version, policy FROM assessment_policies \
         WHERE $1::timestamptz IS NULL OR set_at < $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(before)
    .fetch_optional(pool)
    .await
    .map_err(|e| db_error("reading the assessment policy", e))?;
    Ok(row.map_or((0, AssessmentPolicy::default()), |(v, SqlJson(p))| (v, p)))
}

/// The counter columns of `rate_totals`, summed, in [`counts`]'s order.
pub(crate) const SUM_COUNTS: &str = "sum(contacts)::bigint, sum(contacts_on_time)::bigint, \
     sum(completions)::bigint, sum(completions_on_time)::bigint, sum(visits)::bigint, \
     sum(solved)::bigint, sum(satisfied)::bigint, sum(basically_satisfied)::bigint";

/// A row of a key and [`SUM_COUNTS`].
pub(crate) type CountsRow = (String, i64, i64, i64, i64, i64, i64, i64, i64);

pub(crate) fn counts(row: &CountsRow) -> RateCounts {
    RateCounts {
        contacts: row.1,
        contacts_on_time: row.2,
        completions: row.3,
        completions_on_time: row.4,
        visits: row.5,
        solved: row.6,
        satisfied: row.7,
        basically_satisfied: row.8,
    }
}

/// `GET /api/v1/rates`.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn rates(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    may_read_metrics(&caller)?;
    let p = Params::parse(query, &["month", "by"])?;
    let month: Month = p
        .parsed("month")?
        .ok_or_else(|| ApiError::invalid("month", "month: required (YYYY-MM)"))?;
    let by = p
        .get("by", |v: &str| match v {
            "department" | "channel" | "town" => Ok(v.to_owned()),
            _ => Err("expected department, channel or town"),
        })?
        .unwrap_or_else(|| "department".to_owned());
    let pool = &ctx.state.pool;
    let fresh = freshness(pool, linkage_projector::rates::NAME).await?;
    let (version, policy) = policy(pool, Some(month.end())).await?;
    let params = policy.rate_params();
    let rows: Vec<CountsRow> = sqlx::query_as(
        "SELECT key, contacts, contacts_on_time, completions, completions_on_time, visits, \
                solved, satisfied, basically_satisfied \
         FROM rate_totals WHERE month = $1 AND dimension = $2 ORDER BY key",
    )
    .bind(month.to_string())
    .bind(&by)
    .fetch_all(pool)
    .await
    .map_err(|e| db_error("reading the rate counters", e))?;
    // Every outcome is in exactly one row of each dimension: the groups add up to the district.
    let mut district = RateCounts::default();
    let mut groups = BTreeMap::new();
    for row in &rows {
        let c = counts(row);
        district.merge(&c);
        groups.insert(row.0.clone(), c);
    }
    let groups: Vec<Value> = groups
        .iter()
        .map(|(key, c)| json!({"key": key, "rates": c.rates(&params)}))
        .collect();
    Ok(Json(json!({
        "month": month,
        "by": by,
        "policy_version": version,
        "target_percent": params.target_percent,
        "basically_satisfied_weight": params.basically_satisfied_weight,
        "district": district.rates(&params),
        "groups": groups,
        "freshness": fresh,
    })))
}
