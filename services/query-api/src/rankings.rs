//! `GET /api/v1/rankings?period=…&policy=in_force|current` (考核排名: composite score, one-vote
//! veto, best and worst lists) and `GET /api/v1/assessment-policies` (every policy version). The
//! ranking is computed on request by `linkage_domain::assessment::rank` from the rate counters,
//! the style evaluations and the penalty rows of the period (docs/metrics.md).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use linkage_domain::assessment::{
    AssessmentPolicy, DepartmentRecord, List, PenaltyKind, Period, Ranking, StyleDimension, rank,
};
use linkage_domain::values::DepartmentId;
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use linkage_projector::style::StyleTotals;
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;

use crate::Ctx;
use crate::export::{
    Cell, Column, ExportOptions, Table, params_with_export, respond, rows_in_memory,
};
use crate::params::Params;
use crate::rates::{CountsRow, SUM_COUNTS, counts, db_error, freshness, may_read_metrics, policy};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/api/v1/rankings", get(rankings))
        .route("/api/v1/rankings/export", get(export))
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

/// The rankings route's parameters.
pub(crate) const PARAMS: &[&str] = &["period", "policy"];
/// The assessment policies route takes none.
pub(crate) const POLICIES_PARAMS: &[&str] = &[];

/// A rankings query: the period and which policy ranks it.
#[derive(Debug)]
struct RankingsQuery {
    period: Period,
    /// The current policy instead of the one in force at the period's end.
    current: bool,
}

impl RankingsQuery {
    fn parse(p: &Params) -> Result<Self, ApiError> {
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
        Ok(Self { period, current })
    }

    /// The one computation behind the JSON answer and the export: the policy and its ranking.
    async fn load(
        &self,
        pool: &sqlx::PgPool,
    ) -> Result<(i64, AssessmentPolicy, Ranking), ApiError> {
        let (version, policy) = policy(pool, (!self.current).then(|| self.period.end())).await?;
        let ranking = rank(records(pool, self.period).await?, &policy);
        Ok((version, policy, ranking))
    }
}

/// The freshness of the projections a ranking reads.
pub(crate) const PROJECTIONS: &[&str] = &[
    linkage_projector::rates::NAME,
    linkage_projector::style::NAME,
    linkage_projector::assessment::NAME,
];

/// `GET /api/v1/rankings`.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn rankings(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    may_read_metrics(&caller)?;
    let q = RankingsQuery::parse(&Params::parse(query, PARAMS)?)?;
    let pool = &ctx.state.pool;
    let mut fresh = Vec::with_capacity(PROJECTIONS.len());
    for projection in PROJECTIONS {
        fresh.push(freshness(pool, projection).await?);
    }
    let (version, policy, ranking) = q.load(pool).await?;
    Ok(Json(json!({
        "period": q.period,
        "policy": if q.current { "current" } else { "in_force" },
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

/// The rankings export's columns (docs/api.md).
pub const EXPORT_COLUMNS: &[Column] = &[
    Column::new("period", "考核期", "Period"),
    Column::new("rank", "排名", "Rank"),
    Column::new("department", "责任单位", "Department"),
    Column::new("score", "综合得分", "Score"),
    Column::new("base", "加权得分", "Weighted base"),
    Column::new("penalty_points", "扣分", "Penalty points"),
    Column::new("rates.response.percent", "响应率(%)", "Response rate (%)"),
    Column::new(
        "rates.on_time_completion.percent",
        "办结率(%)",
        "On-time completion rate (%)",
    ),
    Column::new(
        "rates.resolution.percent",
        "解决率(%)",
        "Resolution rate (%)",
    ),
    Column::new(
        "rates.satisfaction.percent",
        "满意率(%)",
        "Satisfaction rate (%)",
    ),
    Column::new("style.percent", "作风评议得分", "Style score"),
    Column::new("style.evaluations", "作风评议份数", "Style evaluations"),
    Column::new("vetoed", "一票否决", "Vetoed"),
    Column::new("list", "三佳二差", "Best / worst list"),
];

pub static EXPORT_TABLE: Table = Table {
    name: "rankings",
    sheet_zh: "考核排名",
    sheet_en: "Rankings",
    columns: EXPORT_COLUMNS,
};

/// `GET /api/v1/rankings/export`: one line per department, in rank order.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn export(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    may_read_metrics(&caller)?;
    let params = Params::parse(query, &params_with_export(PARAMS))?;
    let options = ExportOptions::parse(&params, &headers)?;
    let q = RankingsQuery::parse(&params)?;
    let (_, _, ranking) = q.load(&ctx.state.pool).await?;
    let rows = ranking
        .departments
        .iter()
        .map(|d| {
            vec![
                Cell::text(q.period.to_string()),
                Cell::Int(d.rank as i64),
                Cell::text(d.department.as_str()),
                Cell::Number(d.score),
                Cell::Number(d.base),
                Cell::Number(d.penalty_points),
                Cell::number(d.rates.response.percent),
                Cell::number(d.rates.on_time_completion.percent),
                Cell::number(d.rates.resolution.percent),
                Cell::number(d.rates.satisfaction.percent),
                Cell::number(d.style.percent),
                Cell::Int(d.style.evaluations),
                Cell::Bool(d.vetoed),
                Cell::opt_text(d.list.map(|l| match l {
                    List::Best => "best",
                    List::Worst => "worst",
                })),
            ]
        })
        .collect();
    respond(&EXPORT_TABLE, options, rows_in_memory(rows)).await
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
    Params::parse(query, POLICIES_PARAMS)?;
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
