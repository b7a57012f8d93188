//! `GET /api/v1/style-evaluations?quarter=YYYY-Qn`: per department, the number of style
//! evaluations (作风评议) in force for the quarter, the mean of their means and the mean of each
//! dimension (docs/metrics.md).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use linkage_domain::assessment::{Quarter, StyleDimension};
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;

use linkage_projector::style::StyleTotals;

use crate::Ctx;
use crate::params::Params;
use crate::rates::{db_error, freshness, may_read_metrics};

/// The style evaluations route's parameters.
pub(crate) const PARAMS: &[&str] = &["quarter"];

pub fn routes() -> Router<Ctx> {
    Router::new().route("/api/v1/style-evaluations", get(summary))
}

/// `GET /api/v1/style-evaluations`.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn summary(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    may_read_metrics(&caller)?;
    let p = Params::parse(query, PARAMS)?;
    let quarter: Quarter = p
        .parsed("quarter")?
        .ok_or_else(|| ApiError::invalid("quarter", "quarter: required (YYYY-Qn)"))?;
    let pool = &ctx.state.pool;
    let fresh = freshness(pool, linkage_projector::style::NAME).await?;
    let rows: Vec<(String, SqlJson<StyleTotals>)> = sqlx::query_as(
        "SELECT department, totals FROM style_totals WHERE quarter = $1 ORDER BY department",
    )
    .bind(quarter.to_string())
    .fetch_all(pool)
    .await
    .map_err(|e| db_error("reading the style evaluations", e))?;
    let departments: Vec<Value> = rows
        .into_iter()
        .filter(|(_, SqlJson(t))| t.evaluations > 0)
        .map(|(department, SqlJson(t))| {
            let n = t.evaluations as f64;
            // Every evaluation scores every dimension.
            let mean = t.points as f64 / (StyleDimension::ALL.len() as f64 * n);
            let dimensions: BTreeMap<StyleDimension, f64> = t
                .dimensions
                .into_iter()
                .map(|(dim, points)| (dim, points as f64 / n))
                .collect();
            json!({
                "department": department,
                "evaluations": t.evaluations,
                "mean": mean,
                "percent": (mean - 1.0) / 4.0 * 100.0,
                "dimensions": dimensions,
            })
        })
        .collect();
    Ok(Json(json!({
        "quarter": quarter,
        "departments": departments,
        "freshness": fresh,
    })))
}
