//! `GET /api/v1/ledger` (the 台账, filtered and keyset-paginated) and `GET /api/v1/appeals/{id}`
//! (one appeal with its timeline), read from the ledger projection's tables.

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use linkage_auth::Principal;
use linkage_domain::AppealStatus;
use linkage_domain::sla::{LightPolicy, TrafficLight};
use linkage_domain::values::{Category, Channel, DepartmentId, TrackingNumber};
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use linkage_projector::ledger::{LedgerRow, TimelineRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::Ctx;
use crate::access::{Scope, sees_phone};
use crate::export::{Cell, Column, ExportOptions, Table, params_with_export, respond, row_channel};
use crate::params::Params;
use futures::StreamExt;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/api/v1/ledger", get(list))
        .route("/api/v1/ledger/export", get(export))
        .route("/api/v1/appeals/{id}", get(detail))
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;
/// The most rows one export may ask for with `limit` (without it: every matching row).
pub const MAX_EXPORT_LIMIT: i64 = 10_000_000;

/// The appeal detail route's parameters.
pub(crate) const DETAIL_PARAMS: &[&str] = &["min_position"];

pub(crate) const LIST_PARAMS: &[&str] = &[
    "department",
    "channel",
    "category",
    "status",
    "town",
    "filed_from",
    "filed_to",
    "resolved_from",
    "resolved_to",
    "overdue",
    "limit",
    "cursor",
    "sort",
];

/// Sort orders; each is total, with `appeal_id` breaking ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sort {
    #[serde(rename = "filed_at")]
    FiledAt,
    #[serde(rename = "-filed_at")]
    FiledAtDesc,
    /// Soonest deadline first; appeals without one last.
    #[serde(rename = "resolution_due")]
    ResolutionDue,
    #[serde(rename = "tracking_number")]
    TrackingNumber,
}

impl Sort {
    const NAMES: &[(&str, Sort)] = &[
        ("filed_at", Sort::FiledAt),
        ("-filed_at", Sort::FiledAtDesc),
        ("resolution_due", Sort::ResolutionDue),
        ("tracking_number", Sort::TrackingNumber),
    ];

    fn parse(s: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, sort)| *sort)
            .ok_or_else(|| {
                let names: Vec<_> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                format!("unknown sort {s:?}; expected one of: {}", names.join(", "))
            })
    }

    /// The sort key of a row, as text Postgres casts back to the key's type.
    fn key(&self, row: &LedgerRow) -> String {
        let instant = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        match self {
            Self::FiledAt | Self::FiledAtDesc => instant(row.filed_at),
            Self::ResolutionDue => row
                .resolution_due
                .map_or_else(|| "infinity".to_owned(), instant),
            Self::TrackingNumber => row.tracking_number.as_str().to_owned(),
        }
    }

    /// `(key expression, key type, direction)`.
    fn sql(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::FiledAt => ("l.filed_at", "timestamptz", "ASC"),
            Self::FiledAtDesc => ("l.filed_at", "timestamptz", "DESC"),
            Self::ResolutionDue => (
                "coalesce(l.resolution_due, 'infinity'::timestamptz)",
                "timestamptz",
                "ASC",
            ),
            Self::TrackingNumber => ("l.tracking_number", "text COLLATE \"C\"", "ASC"),
        }
    }
}

/// Where the next page starts: the sort it belongs to and the last row's key. Opaque to
/// clients (hex of this as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    #[serde(rename = "s")]
    sort: Sort,
    #[serde(rename = "k")]
    key: String,
    #[serde(rename = "i")]
    appeal_id: Uuid,
}

impl Cursor {
    fn encode(&self) -> String {
        hex::encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(s: &str) -> Result<Self, &'static str> {
        let bytes = hex::decode(s).map_err(|_| "not a cursor from this API")?;
        serde_json::from_slice(&bytes).map_err(|_| "not a cursor from this API")
    }
}

/// A ledger query, parsed.
#[derive(Debug)]
struct LedgerQuery {
    department: Option<DepartmentId>,
    channel: Option<Channel>,
    category: Option<Category>,
    status: Option<AppealStatus>,
    town: Option<String>,
    filed_from: Option<DateTime<Utc>>,
    filed_to: Option<DateTime<Utc>>,
    resolved_from: Option<DateTime<Utc>>,
    resolved_to: Option<DateTime<Utc>>,
    overdue: Option<bool>,
    /// `None`: every matching row (exports only).
    limit: Option<i64>,
    sort: Sort,
    cursor: Option<Cursor>,
}

const STATUSES: &[AppealStatus] = &[
    AppealStatus::Filed,
    AppealStatus::Assigned,
    AppealStatus::Resolved,
    AppealStatus::ReturnVisited,
    AppealStatus::Closed,
    AppealStatus::Withdrawn,
    AppealStatus::Duplicate,
];

/// The status names the ledger filters by (documented in the OpenAPI document).
pub(crate) fn status_names() -> Vec<&'static str> {
    STATUSES.iter().map(AppealStatus::as_str).collect()
}

/// The sort orders by name.
pub(crate) fn sort_names() -> Vec<&'static str> {
    Sort::NAMES.iter().map(|(n, _)| *n).collect()
}

fn parse_status(s: &str) -> Result<AppealStatus, String> {
    STATUSES
        .iter()
        .find(|st| st.as_str() == s)
        .copied()
        .ok_or_else(|| {
            let names: Vec<_> = STATUSES.iter().map(AppealStatus::as_str).collect();
            format!(
                "unknown status {s:?}; expected one of: {}",
                names.join(", ")
            )
        })
}

fn range_check(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    from_name: &str,
    to_name: &str,
) -> Result<(), ApiError> {
    match (from, to) {
        (Some(f), Some(t)) if f > t => Err(ApiError::invalid(
            from_name,
            format!("{from_name} is after {to_name}"),
        )),
        _ => Ok(()),
    }
}

/// How many rows a ledger query may return: the JSON page or an export.
#[derive(Debug, Clone, Copy)]
enum Limits {
    Page,
    Export,
}

impl LedgerQuery {
    fn parse(p: &Params, limits: Limits) -> Result<Self, ApiError> {
        let town = p.get("town", |v: &str| {
            let v = v.trim();
            if v.is_empty() || v.chars().count() > 200 {
                Err("must be 1-200 characters")
            } else {
                Ok(v.to_owned())
            }
        })?;
        let (max, default) = match limits {
            Limits::Page => (MAX_LIMIT, Some(DEFAULT_LIMIT)),
            Limits::Export => (MAX_EXPORT_LIMIT, None),
        };
        let limit = p
            .get("limit", |v: &str| match v.parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!("must be an integer from 1 to {max}")),
            })?
            .or(default);
        let sort = p.get("sort", Sort::parse)?.unwrap_or(Sort::FiledAtDesc);
        let cursor = p.get("cursor", Cursor::decode)?;
        if let Some(c) = &cursor
            && c.sort != sort
        {
            return Err(ApiError::invalid(
                "cursor",
                "cursor: it belongs to another sort order; pass the same sort as for the first page",
            ));
        }
        let q = Self {
            department: p.parsed("department")?,
            channel: p.parsed("channel")?,
            category: p.parsed("category")?,
            status: p.get("status", parse_status)?,
            town,
            filed_from: p.instant_from("filed_from")?,
            filed_to: p.instant_to("filed_to")?,
            resolved_from: p.instant_from("resolved_from")?,
            resolved_to: p.instant_to("resolved_to")?,
            overdue: p.bool("overdue")?,
            limit,
            sort,
            cursor,
        };
        range_check(q.filed_from, q.filed_to, "filed_from", "filed_to")?;
        range_check(
            q.resolved_from,
            q.resolved_to,
            "resolved_from",
            "resolved_to",
        )?;
        Ok(q)
    }
}

/// The filer's phone as `caller` may see it: in full for roles that call filers, else masked.
fn shown_phone(row: &LedgerRow, caller: &Principal) -> String {
    if sees_phone(caller.role) {
        row.filer_phone.as_str().to_owned()
    } else {
        row.filer_phone.masked()
    }
}

/// Open and past a deadline in force (see `LedgerRow::deadline_in_force`): an assigned appeal
/// whose contact or feedback is owed and due, or whose resolution is due; or a filed/assigned
/// appeal past its supervision (督办) deadline.
fn is_overdue(row: &LedgerRow, now: DateTime<Utc>) -> bool {
    row.next_due.is_some_and(|due| due < now)
}

fn db_error(context: &str, e: sqlx::Error) -> ApiError {
    linkage_store::StoreError::db(context, e).into()
}

/// A row as a caller may see it: the phone masked unless the role calls filers, plus the
/// `overdue` flag.
fn item(
    row: &LedgerRow,
    caller: &Principal,
    now: DateTime<Utc>,
    lights: &LightPolicy,
) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(row).map_err(|e| ApiError::Internal(e.into()))?;
    v["filer_phone"] = json!(shown_phone(row, caller));
    v["overdue"] = json!(is_overdue(row, now));
    // 红绿灯 of each deadline still owed.
    let lights: serde_json::Map<String, Value> = row
        .open_deadlines()
        .into_iter()
        .map(|(which, start, due)| {
            let light = TrafficLight::of_deadline(which, start, due, now, lights);
            (which.as_str().to_owned(), json!(light))
        })
        .collect();
    v["lights"] = Value::Object(lights);
    Ok(v)
}

/// How fresh the ledger is: the last event it applied (a lower bound for what the answer
/// reflects, read before the rows), and its transaction id.
async fn freshness(pool: &sqlx::PgPool) -> Result<Value, ApiError> {
    let row: Option<(Option<i64>, Option<i64>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT tx_id::text::bigint, global_position, updated_at FROM projection_checkpoints \
         WHERE name = $1",
    )
    .bind(linkage_projector::ledger::NAME)
    .fetch_optional(pool)
    .await
    .map_err(|e| db_error("reading the ledger checkpoint", e))?;
    let (tx_id, position, updated_at) = match row {
        Some((tx, gp, at)) => (tx, gp, Some(at)),
        None => (None, None, None),
    };
    let mut fresh = crate::freshness::object(linkage_projector::ledger::NAME, position, updated_at);
    fresh["tx_id"] = json!(tx_id);
    Ok(fresh)
}

impl LedgerQuery {
    /// The department filter a caller may use: handlers only their own (and by default).
    fn department(&self, scope: &Scope) -> Result<Option<DepartmentId>, ApiError> {
        scope.department_filter(self.department.clone())
    }

    /// The query's rows as `row_to_json(ledger)`, in the sort order, up to `limit` (+ `extra`).
    /// One statement for the JSON page and the export. `row_to_json`, not `to_jsonb`: it writes
    /// the text directly, where `to_jsonb` builds (and sorts) a jsonb value first and prints it
    /// again, about twice the server's CPU per row; the fields are the same.
    fn select(
        &self,
        department: Option<&DepartmentId>,
        now: DateTime<Utc>,
        extra: i64,
    ) -> QueryBuilder<Postgres> {
        let q = self;
        let mut sql: QueryBuilder<Postgres> =
            // Rows are turned into JSON only after the limit (the inner query), not for every row
            // a sort looks at; the outer ORDER BY keeps the page's order.
            QueryBuilder::new("SELECT row_to_json(l) FROM (SELECT * FROM ledger l WHERE true");
        if let Some(d) = department {
            sql.push(" AND (l.lead_department = ")
                .push_bind(d.as_str().to_owned())
                .push(" OR l.co_handlers @> ARRAY[")
                .push_bind(d.as_str().to_owned())
                .push("]::text[])");
        }
        let mut eq = |column: &str, value: Option<String>| {
            if let Some(v) = value {
                sql.push(format_args!(" AND l.{column} = ")).push_bind(v);
            }
        };
        eq("channel", q.channel.map(|c| c.as_str().to_owned()));
        eq("category", q.category.map(|c| c.as_str().to_owned()));
        eq("status", q.status.map(|s| s.as_str().to_owned()));
        eq("town", q.town.clone());
        let mut range = |column: &str, op: &str, value: Option<DateTime<Utc>>| {
            if let Some(v) = value {
                sql.push(format_args!(" AND l.{column} {op} ")).push_bind(v);
            }
        };
        range("filed_at", ">=", q.filed_from);
        range("filed_at", "<", q.filed_to);
        range("resolved_at", ">=", q.resolved_from);
        range("resolved_at", "<", q.resolved_to);
        match q.overdue {
            Some(true) => {
                sql.push(" AND l.next_due < ").push_bind(now);
            }
            Some(false) => {
                sql.push(" AND (l.next_due IS NULL OR l.next_due >= ")
                    .push_bind(now)
                    .push(")");
            }
            None => {}
        }
        let (key, key_type, direction) = q.sort.sql();
        if let Some(c) = &q.cursor {
            let op = if direction == "ASC" { ">" } else { "<" };
            sql.push(format_args!(" AND ({key}, l.appeal_id) {op} ("))
                .push_bind(c.key.clone())
                .push(format_args!("::{key_type}, "))
                .push_bind(c.appeal_id)
                .push(")");
        }
        sql.push(format_args!(
            " ORDER BY {key} {direction}, l.appeal_id {direction}"
        ));
        if let Some(limit) = q.limit {
            sql.push(" LIMIT ").push_bind(limit + extra);
        }
        sql.push(format_args!(
            ") l ORDER BY {key} {direction}, l.appeal_id {direction}"
        ));
        sql
    }
}

/// `GET /api/v1/ledger`.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn list(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let scope = Scope::of(&caller)?;
    let q = LedgerQuery::parse(&Params::parse(query, LIST_PARAMS)?, Limits::Page)?;
    let department = q.department(&scope)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let fresh = freshness(&ctx.state.pool).await?;
    let now = Utc::now();
    // One row more than the page tells whether there is a next page.
    let rows: Vec<SqlJson<LedgerRow>> = q
        .select(department.as_ref(), now, 1)
        .build_query_scalar()
        .fetch_all(&ctx.state.pool)
        .await
        .map_err(|e| db_error("reading the ledger", e))?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<LedgerRow> = rows.into_iter().take(limit as usize).map(|r| r.0).collect();
    let next_cursor = rows.last().filter(|_| more).map(|last| {
        Cursor {
            sort: q.sort,
            key: q.sort.key(last),
            appeal_id: last.appeal_id,
        }
        .encode()
    });
    let items = rows
        .iter()
        .map(|r| item(r, &caller, now, &ctx.config.lights))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({
        "items": items,
        "next_cursor": next_cursor,
        "freshness": fresh,
    })))
}

/// The ledger export's columns (docs/api.md).
pub const EXPORT_COLUMNS: &[Column] = &[
    Column::new("tracking_number", "工单编号", "Tracking number"),
    Column::new("channel", "诉求渠道", "Channel"),
    Column::new("filer_kind", "诉求人类型", "Filer kind"),
    Column::new("filer_name", "诉求人", "Filer"),
    Column::new("filer_contact_person", "联系人", "Contact person"),
    Column::new("filer_phone", "联系电话", "Phone"),
    Column::new("category", "诉求类别", "Category"),
    Column::new("town", "镇街", "Town"),
    Column::new("complained_unit", "被投诉单位", "Complained-about unit"),
    Column::new("description", "诉求内容", "Description"),
    Column::new("lead_department", "承办单位", "Lead department"),
    Column::new("co_handlers", "协办单位", "Co-handlers"),
    Column::new("status", "办理状态", "Status"),
    Column::new("filed_at", "受理时间", "Filed at"),
    Column::new("assigned_at", "派单时间", "Assigned at"),
    Column::new("contacted_at", "联系诉求人时间", "Contacted at"),
    Column::new("feedback_at", "初步反馈时间", "Initial feedback at"),
    Column::new("resolution_due", "办结时限", "Resolution due"),
    Column::new("resolved_at", "办结时间", "Resolved at"),
    Column::new("resolution_outcome", "办理结果", "Outcome"),
    Column::new(
        "return_visit_solved",
        "回访是否解决",
        "Solved (return visit)",
    ),
    Column::new(
        "return_visit_satisfaction",
        "回访满意度",
        "Satisfaction (return visit)",
    ),
    Column::new("overdue", "是否超期", "Overdue"),
    Column::new("extension_count", "延期次数", "Extensions"),
    Column::new("rework_count", "退回重办次数", "Reworks"),
    Column::new("supervision_count", "督办次数", "Supervisions"),
    Column::new("accountability_count", "问责次数", "Accountabilities"),
    Column::new("appeal_id", "诉求ID", "Appeal id"),
];

pub static EXPORT_TABLE: Table = Table {
    name: "ledger",
    sheet_zh: "台账",
    sheet_en: "Ledger",
    columns: EXPORT_COLUMNS,
};

/// A row as [`EXPORT_COLUMNS`], with the phone as the caller may see it.
fn export_cells(row: &LedgerRow, caller: &Principal, now: DateTime<Utc>) -> Vec<Cell> {
    let join = |ds: &[DepartmentId]| {
        ds.iter()
            .map(DepartmentId::as_str)
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        Cell::text(row.tracking_number.as_str()),
        Cell::text(row.channel.as_str()),
        Cell::text(row.filer_kind.as_str()),
        Cell::text(&row.filer_name),
        Cell::opt_text(row.filer_contact_person.as_ref()),
        Cell::text(shown_phone(row, caller)),
        Cell::text(row.category.as_str()),
        Cell::text(&row.town),
        Cell::opt_text(row.complained_unit.as_ref()),
        Cell::text(&row.description),
        Cell::opt_text(row.lead_department.as_ref().map(DepartmentId::as_str)),
        Cell::text(join(&row.co_handlers)),
        Cell::text(row.status.as_str()),
        Cell::instant(Some(row.filed_at)),
        Cell::instant(row.assigned_at),
        Cell::instant(row.contacted_at),
        Cell::instant(row.feedback_at),
        Cell::instant(row.resolution_due),
        Cell::instant(row.resolved_at),
        Cell::opt_text(row.resolution_outcome.map(|o| o.as_str())),
        Cell::opt_bool(row.return_visit_solved),
        Cell::opt_text(row.return_visit_satisfaction.map(|s| s.as_str())),
        Cell::Bool(is_overdue(row, now)),
        Cell::Int(row.extension_count.into()),
        Cell::Int(row.rework_count.into()),
        Cell::Int(row.supervision_count.into()),
        Cell::Int(row.accountability_count.into()),
        Cell::text(row.appeal_id.to_string()),
    ]
}

/// `GET /api/v1/ledger/export`: the ledger query's rows (the same parameters, scope and masking;
/// without `limit`, every matching row) as CSV or XLSX, streamed from Postgres.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn export(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let scope = Scope::of(&caller)?;
    let params = Params::parse(query, &params_with_export(LIST_PARAMS))?;
    let options = ExportOptions::parse(&params, &headers)?;
    let q = LedgerQuery::parse(&params, Limits::Export)?;
    let department = q.department(&scope)?;
    let now = Utc::now();
    let pool = ctx.state.pool.clone();
    let (tx, rx) = row_channel();
    tokio::spawn(async move {
        let mut sql = q.select(department.as_ref(), now, 0);
        let mut rows = sql.build_query_scalar::<SqlJson<LedgerRow>>().fetch(&pool);
        while let Some(row) = rows.next().await {
            let row = row
                .map(|SqlJson(r)| export_cells(&r, &caller, now))
                .map_err(|e| db_error("reading the ledger", e));
            let failed = row.is_err();
            // A closed channel: the client went away; stop reading.
            if tx.send(row).await.is_err() || failed {
                return;
            }
        }
    });
    respond(&EXPORT_TABLE, options, rx).await
}

/// Polling interval while waiting for read-your-writes. Each look is one primary-key read, and
/// the interval is added to what the caller waits: 10 ms keeps that small next to the
/// projector's own delay (at 50 ms it was up to a quarter of the measured lag's p99).
const POLL: Duration = Duration::from_millis(10);

/// `GET /api/v1/appeals/{id}`: `id` is the appeal's uuid or its tracking number.
/// `?min_position=N` waits (up to the configured time, 5 s by default) until the ledger has
/// applied the appeal's event at global position `N` (as returned by the command API); if it
/// has not by then, the answer is what the ledger has, with `"stale": true`.
#[tracing::instrument(skip_all, fields(role = %caller.role, appeal = %id))]
async fn detail(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let scope = Scope::of(&caller)?;
    let params = Params::parse(query, DETAIL_PARAMS)?;
    let min_position = params.get("min_position", |v: &str| match v.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err("must be a non-negative integer (an event's global_position)"),
    })?;
    let not_found = || ApiError::NotFound(format!("no appeal has the id {id:?}"));
    let by_id = Uuid::parse_str(&id).ok();
    let by_tracking = id.parse::<TrackingNumber>().ok();
    if by_id.is_none() && by_tracking.is_none() {
        return Err(not_found());
    }

    let pool = &ctx.state.pool;
    let started = Instant::now();
    let (row, stale) = loop {
        let row: Option<SqlJson<LedgerRow>> = match (&by_id, &by_tracking) {
            (Some(uuid), _) => {
                sqlx::query_scalar("SELECT to_jsonb(l) FROM ledger l WHERE appeal_id = $1")
                    .bind(uuid)
                    .fetch_optional(pool)
                    .await
            }
            (None, Some(tn)) => {
                sqlx::query_scalar(
                    "SELECT to_jsonb(l) FROM ledger l WHERE tracking_number = $1 LIMIT 1",
                )
                .bind(tn.as_str())
                .fetch_optional(pool)
                .await
            }
            (None, None) => return Err(not_found()),
        }
        .map_err(|e| db_error("reading a ledger row", e))?;
        let row = row.map(|r| r.0);
        let Some(min) = min_position else {
            break (row, false);
        };
        let fresh_enough = row.as_ref().is_some_and(|r| r.last_global_position >= min);
        if fresh_enough {
            break (row, false);
        }
        if started.elapsed() >= ctx.config.read_your_writes_wait {
            break (row, true);
        }
        tokio::time::sleep(POLL).await;
    };
    let row = row.ok_or_else(not_found)?;
    if !scope.allows(&row) {
        return Err(ApiError::Forbidden(
            "this appeal is not handled by your department".into(),
        ));
    }
    let timeline: Vec<SqlJson<TimelineRow>> = sqlx::query_scalar(
        "SELECT to_jsonb(t) FROM ledger_timeline t WHERE appeal_id = $1 ORDER BY sequence",
    )
    .bind(row.appeal_id)
    .fetch_all(pool)
    .await
    .map_err(|e| db_error("reading an appeal's timeline", e))?;
    let timeline: Vec<TimelineRow> = timeline.into_iter().map(|t| t.0).collect();
    Ok(Json(json!({
        "appeal": item(&row, &caller, Utc::now(), &ctx.config.lights)?,
        "timeline": timeline,
        "stale": stale,
        "freshness": freshness(pool).await?,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            sort: Sort::ResolutionDue,
            key: "infinity".into(),
            appeal_id: Uuid::nil(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("zz").is_err());
        assert!(Cursor::decode(&hex::encode(b"{}")).is_err());
    }
}
