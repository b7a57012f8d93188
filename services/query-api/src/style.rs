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

use crate::Ctx;
use crate::params::Params;
use crate::rates::{db_error, freshness, may_read_metrics};

pub fn routes() -> Router<Ctx> {
    Router::new().route("/api/v1/style-evaluations", get(summary))
}

/// An evaluation in force: department, mean, scores.
type EvaluationRow = (String, f64, SqlJson<BTreeMap<StyleDimension, u8>>);

#[derive(Default)]
struct Sums {
    evaluations: i64,
    mean_sum: f64,
    dimensions: BTreeMap<StyleDimension, (f64, i64)>,
}

/// `GET /api/v1/style-evaluations`.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn summary(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    may_read_metrics(&caller)?;
    let p = Params::parse(query, &["quarter"])?;
    let quarter: Quarter = p
        .parsed("quarter")?
        .ok_or_else(|| ApiError::invalid("quarter", "quarter: required (YYYY-Qn)"))?;
    let pool = &ctx.state.pool;
    let fresh = freshness(pool, linkage_projector::style::NAME).await?;
    // One row per evaluator and department: a quarter's evaluations are few.
    let rows: Vec<EvaluationRow> =
        sqlx::query_as("SELECT department, mean, scores FROM style_evaluations WHERE quarter = $1")
            .bind(quarter.to_string())
            .fetch_all(pool)
            .await
            .map_err(|e| db_error("reading the style evaluations", e))?;
    let mut by_department: BTreeMap<String, Sums> = BTreeMap::new();
    for (department, mean, SqlJson(scores)) in rows {
        let s = by_department.entry(department).or_default();
        s.evaluations += 1;
        s.mean_sum += mean;
        for (dim, score) in scores {
            let d = s.dimensions.entry(dim).or_default();
            d.0 += f64::from(score);
            d.1 += 1;
        }
    }
    let departments: Vec<Value> = by_department
        .into_iter()
        .map(|(department, s)| {
            let mean = s.mean_sum / s.evaluations as f64;
            let dimensions: BTreeMap<StyleDimension, f64> = s
                .dimensions
                .into_iter()
                .map(|(dim, (sum, n))| (dim, sum / n as f64))
                .collect();
            json!({
                "department": department,
                "evaluations": s.evaluations,
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
