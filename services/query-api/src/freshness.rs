//! `GET /api/v1/freshness`: how far each read model the query API serves has got — the global
//! position of the last event it applied and when (from `projection_checkpoints`). The same
//! per-view object is in the ledger, rates, rankings, alerts and complaint notices answers
//! (`freshness`), built here.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::Ctx;
use crate::params::Params;
use crate::rates::{db_error, may_read_metrics};

/// Every read model the query API serves (the projector's projection names).
pub const VIEWS: &[&str] = &[
    linkage_projector::ledger::NAME,
    linkage_projector::rates::NAME,
    linkage_projector::style::NAME,
    linkage_projector::assessment::NAME,
    linkage_projector::complaints::NAME,
];

/// The freshness route takes no parameter.
pub(crate) const PARAMS: &[&str] = &[];

pub fn routes() -> Router<Ctx> {
    Router::new().route("/api/v1/freshness", get(all))
}

/// A view's freshness: `{"view", "position", "updated_at"}` (`position` and `updated_at` null
/// before its first event), plus `projection` and `global_position`, the names the answers had
/// first (kept for existing clients).
pub(crate) fn object(
    view: &str,
    position: Option<i64>,
    updated_at: Option<DateTime<Utc>>,
) -> Value {
    json!({
        "view": view,
        "position": position,
        "updated_at": updated_at,
        "projection": view,
        "global_position": position,
    })
}

/// The freshness of one view, read before the rows it qualifies (a lower bound for what the
/// answer reflects).
pub(crate) async fn of(pool: &PgPool, view: &str) -> Result<Value, ApiError> {
    let row: Option<(Option<i64>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT global_position, updated_at FROM projection_checkpoints WHERE name = $1",
    )
    .bind(view)
    .fetch_optional(pool)
    .await
    .map_err(|e| db_error("reading a projection checkpoint", e))?;
    Ok(match row {
        Some((position, at)) => object(view, position, Some(at)),
        None => object(view, None, None),
    })
}

/// `GET /api/v1/freshness`: one entry per view, in [`VIEWS`] order.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn all(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    may_read_metrics(&caller)?;
    Params::parse(query, PARAMS)?;
    let rows: Vec<(String, Option<i64>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT name, global_position, updated_at FROM projection_checkpoints \
         WHERE name = ANY($1)",
    )
    .bind(VIEWS)
    .fetch_all(&ctx.state.pool)
    .await
    .map_err(|e| db_error("reading the projection checkpoints", e))?;
    let views: Vec<Value> = VIEWS
        .iter()
        .map(|view| match rows.iter().find(|(name, _, _)| name == view) {
            Some((_, position, at)) => object(view, *position, Some(*at)),
            None => object(view, None, None),
        })
        .collect();
    Ok(Json(json!({ "views": views })))
}
