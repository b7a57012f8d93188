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
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use linkage_auth::{Principal, Role};
use linkage_domain::assessment::{AssessmentPolicy, Month};
use linkage_domain::rates::{Rate, RateCounts, RateParams, Rates};
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::types::Json as SqlJson;

use crate::Ctx;
use crate::export::{
    Cell, Column, ExportOptions, Table, params_with_export, respond, rows_in_memory,
};
use crate::params::Params;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/api/v1/rates", get(rates))
        .route("/api/v1/rates/export", get(export))
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
    crate::freshness::of(pool, projection).await
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

/// The rates route's parameters.
pub(crate) const PARAMS: &[&str] = &["month", "by"];

/// A rates query: the month and the dimension of the groups.
#[derive(Debug)]
struct RatesQuery {
    month: Month,
    by: String,
}

impl RatesQuery {
    fn parse(p: &Params) -> Result<Self, ApiError> {
        let month: Month = p
            .parsed("month")?
            .ok_or_else(|| ApiError::invalid("month", "month: required (YYYY-MM)"))?;
        let by = p
            .get("by", |v: &str| match v {
                "department" | "channel" | "town" => Ok(v.to_owned()),
                _ => Err("expected department, channel or town"),
            })?
            .unwrap_or_else(|| "department".to_owned());
        Ok(Self { month, by })
    }
}

/// The month's rates: district-wide and per group, with the policy's parameters.
#[derive(Debug)]
struct RatesReport {
    version: i64,
    params: RateParams,
    district: Rates,
    groups: Vec<(String, Rates)>,
}

/// The one reading of the rate counters behind the JSON answer and the export.
async fn load(pool: &PgPool, q: &RatesQuery) -> Result<RatesReport, ApiError> {
    let (version, policy) = policy(pool, Some(q.month.end())).await?;
    let params = policy.rate_params();
    let rows: Vec<CountsRow> = sqlx::query_as(
        "SELECT key, contacts, contacts_on_time, completions, completions_on_time, visits, \
                solved, satisfied, basically_satisfied \
         FROM rate_totals WHERE month = $1 AND dimension = $2 ORDER BY key",
    )
    .bind(q.month.to_string())
    .bind(&q.by)
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
    Ok(RatesReport {
        version,
        params,
        district: district.rates(&params),
        groups: groups
            .into_iter()
            .map(|(key, c)| (key, c.rates(&params)))
            .collect(),
    })
}

/// `GET /api/v1/rates`.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn rates(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    may_read_metrics(&caller)?;
    let q = RatesQuery::parse(&Params::parse(query, PARAMS)?)?;
    let pool = &ctx.state.pool;
    let fresh = freshness(pool, linkage_projector::rates::NAME).await?;
    let report = load(pool, &q).await?;
    let groups: Vec<Value> = report
        .groups
        .iter()
        .map(|(key, rates)| json!({"key": key, "rates": rates}))
        .collect();
    Ok(Json(json!({
        "month": q.month,
        "by": q.by,
        "policy_version": report.version,
        "target_percent": report.params.target_percent,
        "basically_satisfied_weight": report.params.basically_satisfied_weight,
        "district": report.district,
        "groups": groups,
        "freshness": fresh,
    })))
}

/// The rates export's columns: the month, the group, then per rate its percent, numerator,
/// denominator and below-target flag (docs/api.md).
pub const EXPORT_COLUMNS: &[Column] = &[
    Column::new("month", "统计月份", "Month"),
    Column::new("by", "分组维度", "Grouped by"),
    Column::new("key", "分组", "Group"),
    Column::new("response.percent", "响应率(%)", "Response rate (%)"),
    Column::new("response.numerator", "按时响应数", "Responded on time"),
    Column::new("response.denominator", "应响应数", "Responses due"),
    Column::new(
        "response.below_target",
        "响应率未达标",
        "Response below target",
    ),
    Column::new(
        "on_time_completion.percent",
        "办结率(%)",
        "On-time completion rate (%)",
    ),
    Column::new(
        "on_time_completion.numerator",
        "按时办结数",
        "Completed on time",
    ),
    Column::new("on_time_completion.denominator", "办结数", "Completed"),
    Column::new(
        "on_time_completion.below_target",
        "办结率未达标",
        "On-time completion below target",
    ),
    Column::new("resolution.percent", "解决率(%)", "Resolution rate (%)"),
    Column::new("resolution.numerator", "已解决数", "Solved"),
    Column::new("resolution.denominator", "回访数", "Return visits reached"),
    Column::new(
        "resolution.below_target",
        "解决率未达标",
        "Resolution below target",
    ),
    Column::new("satisfaction.percent", "满意率(%)", "Satisfaction rate (%)"),
    Column::new(
        "satisfaction.numerator",
        "满意数(含基本满意加权)",
        "Satisfied (weighted)",
    ),
    Column::new(
        "satisfaction.denominator",
        "回访数",
        "Return visits reached",
    ),
    Column::new(
        "satisfaction.below_target",
        "满意率未达标",
        "Satisfaction below target",
    ),
];

pub static EXPORT_TABLE: Table = Table {
    name: "rates",
    sheet_zh: "四率",
    sheet_en: "Rates",
    columns: EXPORT_COLUMNS,
};

/// The cells of one rate: percent, numerator, denominator, below target.
pub(crate) fn rate_cells(rate: &Rate) -> [Cell; 4] {
    [
        Cell::number(rate.percent),
        Cell::Number(rate.numerator),
        Cell::Int(rate.denominator),
        Cell::opt_bool(rate.below_target),
    ]
}

/// The group key the district-wide line has in the export.
pub const DISTRICT_KEY: &str = "district";

/// `GET /api/v1/rates/export`: the district line, then one line per group.
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
    let q = RatesQuery::parse(&params)?;
    let report = load(&ctx.state.pool, &q).await?;
    let line = |key: &str, r: &Rates| -> Vec<Cell> {
        let mut cells = vec![
            Cell::text(q.month.to_string()),
            Cell::text(&q.by),
            Cell::text(key),
        ];
        for rate in [
            &r.response,
            &r.on_time_completion,
            &r.resolution,
            &r.satisfaction,
        ] {
            cells.extend(rate_cells(rate));
        }
        cells
    };
    let mut rows = vec![line(DISTRICT_KEY, &report.district)];
    rows.extend(report.groups.iter().map(|(key, r)| line(key, r)));
    respond(&EXPORT_TABLE, options, rows_in_memory(rows)).await
}
