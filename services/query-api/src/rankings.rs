//! `GET /api/v1/rankings?period=…&policy=in_force|current` (考核排名: composite score, one-vote
//! veto, best and worst lists) and `GET /api/v1/assessment-policies` (every policy version). The
//! ranking is computed on request by `linkage_domain::assessment::rank` from the rate counters,
//! the style evaluations and the penalty rows of the period (docs/metrics.md).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use linkage_domain::assessment::{DepartmentRecord, PenaltyKind, Period, StyleDimension, rank};
use linkage_domain::values::DepartmentId;
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use linkage_projector::style::StyleTotals;
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;

use crate::Ctx;
use crate::params::Params;
use crate::rates::{CountsRow, SUM_COUNTS, counts, db_error, freshness, may_read_metrics, policy};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/api/v1/rankings", get(rankings))
        .route("/api/v1/assessment-policies", get(policies))
}

fn department(raw: &str) -> Result<DepartmentId, ApiError> {
    raw.parse()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("a stored department id is invalid: {e}")))
}

/// Everything counted for each department in `period`.
async fn records(
    pool: &sqlx::PgPool,
    period: Period,
) -> Result<BTreeMap<DepartmentId, DepartmentRecord>, ApiError> {
    let months: Vec<String> = period.months().iter().map(ToString::to_string).collect();
    let quarters: Vec<String> = period.quarters().iter().map(ToString::to_string).collect();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT key, {SUM_COUNTS} FROM rate_totals WHERE month = ANY($1) \
         AND dimension = 'department' GROUP BY key"
    ));
    let rates: Vec<CountsRow> = sqlx::query_as(sql)
        .bind(&months)
        .fetch_all(pool)
        .await
        .map_err(|e| db_error("reading the rate counters", e))?;
    let style: Vec<(String, SqlJson<StyleTotals>)> =
        sqlx::query_as("SELECT department, totals FROM style_totals WHERE quarter = ANY($1)")
            .bind(&quarters)
            .fetch_all(pool)
            .await
            .map_err(|e| db_error("reading the style evaluations", e))?;
    let penalties: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT department, kind, sum(occurrences)::bigint FROM assessment_penalty_counts \
         WHERE month = ANY($1) GROUP BY department, kind",
    )
    .bind(&months)
    .fetch_all(pool)
    .await
    .map_err(|e| db_error("reading the assessment penalties", e))?;

    let mut records: BTreeMap<DepartmentId, DepartmentRecord> = BTreeMap::new();
    for row in &rates {
        records.entry(department(&row.0)?).or_default().counts = counts(row);
    }
    for (d, SqlJson(totals)) in style {
        // Every evaluation scores every dimension: the sum of the evaluations' means is the
        // points over the number of dimensions.
        let r = records.entry(department(&d)?).or_default();
        r.style_mean_sum += totals.points as f64 / StyleDimension::ALL.len() as f64;
        r.style_evaluations += totals.evaluations;
    }
    for (d, kind, n) in penalties {
        let kind = PenaltyKind::parse(&kind).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("a stored penalty kind is unknown: {kind}"))
        })?;
        records
            .entry(department(&d)?)
            .or_default()
            .penalties
            .insert(kind, n);
    }
    Ok(records)
}

/// `GET /api/v1/rankings`.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn rankings(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    may_read_metrics(&caller)?;
    let p = Params::parse(query, &["period", "policy"])?;
    let period: Period = p.parsed("period")?.ok_or_else(|| {
        ApiError::invalid("period", "period: required (YYYY-MM, YYYY-Qn or YYYY)")
    })?;
    let current = p
        .get("policy", |v: &str| match v {
            "in_force" => Ok(false),
            "current" => Ok(true),
            _ => Err("expected in_force or current"),
        })?
        .unwrap_or(false);
    let pool = &ctx.state.pool;
    let fresh = json!([
        freshness(pool, linkage_projector::rates::NAME).await?,
        freshness(pool, linkage_projector::style::NAME).await?,
        freshness(pool, linkage_projector::assessment::NAME).await?,
    ]);
    let (version, policy) = policy(pool, (!current).then(|| period.end())).await?;
    let ranking = rank(records(pool, period).await?, &policy);
    Ok(Json(json!({
        "period": period,
        "policy": if current { "current" } else { "in_force" },
        "policy_version": version,
        "weights": policy.weights,
        "penalty_points": policy.penalties,
        "target_percent": policy.target_percent,
        "departments": ranking.departments,
        "best": ranking.best,
        "worst": ranking.worst,
        "freshness": fresh,
    })))
}

/// A stored policy version: version, policy, reason, set at, set by.
type PolicyRow = (i64, SqlJson<Value>, String, DateTime<Utc>, Option<String>);

/// `GET /api/v1/assessment-policies`: every version, oldest first (version 0 is the default,
/// in force until the first is set).
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn policies(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    may_read_metrics(&caller)?;
    Params::parse(query, &[])?;
    let rows: Vec<PolicyRow> = sqlx::query_as(
        "SELECT version, policy, reason, set_at, set_by FROM assessment_policies ORDER BY version",
    )
    .fetch_all(&ctx.state.pool)
    .await
    .map_err(|e| db_error("reading the assessment policies", e))?;
    let versions: Vec<Value> = rows
        .into_iter()
        .map(|(version, SqlJson(policy), reason, set_at, set_by)| {
            json!({"version": version, "policy": policy, "reason": reason, "set_at": set_at, "set_by": set_by})
        })
        .collect();
    Ok(Json(json!({
        "default": linkage_domain::assessment::AssessmentPolicy::default(),
        "versions": versions,
        "freshness": freshness(&ctx.state.pool, linkage_projector::assessment::NAME).await?,
    })))
}
