//! The auditor's reads, straight from the event store (the source of truth, not a read model):
//!
//! - `GET /api/v1/audit/events?after=N&limit=M`: the global order, page by page, as envelopes.
//! - `GET /api/v1/audit/appeals/{id}?as_of=T`: an appeal (by id or tracking number) as it stood
//!   at `T`: the domain state its events add up to, its timeline and its chain check.
//!
//! Only the `auditor` role may call them. Payloads are returned exactly as stored, personal
//! data included, so the auditor can recompute every hash (docs/audit.md).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use linkage_audit::AuditError;
use linkage_auth::{Principal, Role};
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use serde_json::Value;

use crate::Ctx;
use crate::params::Params;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/api/v1/audit/events", get(events))
        .route("/api/v1/audit/appeals/{id}", get(appeal))
}

/// The query parameters of the two audit routes.
pub(crate) const EVENTS_PARAMS: &[&str] = &["after", "limit"];
pub(crate) const APPEAL_PARAMS: &[&str] = &["as_of"];

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

fn auditor_only(caller: &Principal) -> Result<(), ApiError> {
    if caller.role == Role::Auditor {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "the audit reads are for the auditor role, not {}",
            caller.role
        )))
    }
}

fn api_error(e: AuditError) -> ApiError {
    match e {
        AuditError::NotFound(detail) => ApiError::NotFound(detail),
        AuditError::Invalid { field, detail } => ApiError::invalid(field, detail),
        e if e.is_transient() => ApiError::Unavailable(e.to_string()),
        e => ApiError::Internal(e.into()),
    }
}

/// `GET /api/v1/audit/events?after=N&limit=M`: up to `limit` (1–1000, default 100) events after
/// the one at global position `after` (0 or absent: from the start), in the global order.
/// `next_after` continues; an empty page means nothing newer yet.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn events(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    auditor_only(&caller)?;
    let p = Params::parse(query, EVENTS_PARAMS)?;
    let after = p
        .get("after", |v: &str| match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n),
            _ => Err("must be a non-negative integer (an event's global_position)"),
        })?
        .unwrap_or(0);
    let limit = p
        .get("limit", |v: &str| match v.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("must be an integer from 1 to {MAX_LIMIT}")),
        })?
        .unwrap_or(DEFAULT_LIMIT);
    let page = linkage_audit::events_page(&ctx.state.pool, after, limit)
        .await
        .map_err(api_error)?;
    Ok(Json(
        serde_json::to_value(page).map_err(|e| ApiError::Internal(e.into()))?,
    ))
}

/// `GET /api/v1/audit/appeals/{id}?as_of=T`: `id` is the appeal id or tracking number; `as_of`
/// an RFC 3339 instant or a date (the end of that day, Beijing time); absent: now.
#[tracing::instrument(skip_all, fields(role = %caller.role, appeal = %id))]
async fn appeal(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    auditor_only(&caller)?;
    let p = Params::parse(query, APPEAL_PARAMS)?;
    let as_of = p.get("as_of", linkage_audit::parse_as_of)?;
    let appeal = linkage_audit::appeal_as_of(&ctx.state.pool, &id, as_of)
        .await
        .map_err(api_error)?;
    Ok(Json(
        serde_json::to_value(appeal).map_err(|e| ApiError::Internal(e.into()))?,
    ))
}
