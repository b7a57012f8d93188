//! `GET /api/v1/complaint-notices?period=…[&unit=…]` (投诉通报, seed 002: "定期向被投诉单位原汁原味通报
//! 群众和企业投诉数量和投诉的问题"): per complained-about unit, the appeals filed in the period, their
//! count per category and, for one unit, the appeals themselves (docs/metrics.md).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use linkage_domain::assessment::Period;
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use serde_json::{Value, json};

use crate::Ctx;
use crate::export::{
    Cell, Column, ExportOptions, Table, params_with_export, respond, rows_in_memory,
};
use crate::params::Params;
use crate::rates::{db_error, freshness, may_read_metrics};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/api/v1/complaint-notices", get(notices))
        .route("/api/v1/complaint-notices/export", get(export))
}

/// The complaint notices route's parameters.
pub(crate) const PARAMS: &[&str] = &["period", "unit"];

/// A complaint notices query: the period and, optionally, one unit.
#[derive(Debug)]
struct NoticesQuery {
    period: Period,
    unit: Option<String>,
}

/// A unit's notice: its name, its complaints in the period and their count per category.
type Notice = (String, i64, BTreeMap<String, i64>);

impl NoticesQuery {
    fn parse(p: &Params) -> Result<Self, ApiError> {
        let period: Period = p.parsed("period")?.ok_or_else(|| {
            ApiError::invalid("period", "period: required (YYYY-MM, YYYY-Qn or YYYY)")
        })?;
        let unit = p.get("unit", |v: &str| {
            let v = v.trim();
            if v.is_empty() || v.chars().count() > 200 {
                Err("must be 1-200 characters")
            } else {
                Ok(v.to_owned())
            }
        })?;
        Ok(Self { period, unit })
    }

    /// The notices, most complained-about unit first (the one reading behind the JSON answer and
    /// the export).
    async fn notices(&self, pool: &sqlx::PgPool) -> Result<Vec<Notice>, ApiError> {
        let months: Vec<String> = self
            .period
            .months()
            .iter()
            .map(ToString::to_string)
            .collect();
        let counts: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT unit, category, sum(complaints)::bigint FROM complaint_counts \
             WHERE month = ANY($1) AND ($2::text IS NULL OR unit = $2) \
             GROUP BY unit, category HAVING sum(complaints) > 0",
        )
        .bind(&months)
        .bind(&self.unit)
        .fetch_all(pool)
        .await
        .map_err(|e| db_error("counting complaints", e))?;
        let mut units: BTreeMap<String, (i64, BTreeMap<String, i64>)> = BTreeMap::new();
        for (u, category, n) in counts {
            let entry = units.entry(u).or_default();
            entry.0 += n;
            entry.1.insert(category, n);
        }
        let mut notices: Vec<Notice> = units.into_iter().map(|(u, (n, c))| (u, n, c)).collect();
        // Most complained-about first; then by name, so the order is total.
        notices.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(notices)
    }
}

/// `GET /api/v1/complaint-notices`.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn notices(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    may_read_metrics(&caller)?;
    let q = NoticesQuery::parse(&Params::parse(query, PARAMS)?)?;
    let pool = &ctx.state.pool;
    let fresh = freshness(pool, linkage_projector::complaints::NAME).await?;
    let notices = q.notices(pool).await?;
    let period = q.period;
    let appeals = match &q.unit {
        Some(unit) => {
            let rows: Vec<(String, String, String, String, DateTime<Utc>)> = sqlx::query_as(
                "SELECT tracking_number, channel, category, town, filed_at FROM complaint_appeals \
                 WHERE filed_at >= $1 AND filed_at < $2 AND NOT duplicate \
                   AND complained_unit = $3 ORDER BY filed_at, tracking_number",
            )
            .bind(period.start())
            .bind(period.end())
            .bind(unit)
            .fetch_all(pool)
            .await
            .map_err(|e| db_error("listing complaints", e))?;
            Some(
                rows.into_iter()
                    .map(|(tracking_number, channel, category, town, filed_at)| {
                        json!({"tracking_number": tracking_number, "channel": channel,
                               "category": category, "town": town, "filed_at": filed_at})
                    })
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    let notices: Vec<Value> = notices
        .into_iter()
        .map(|(u, count, categories)| {
            let mut notice = json!({"unit": u, "count": count, "categories": categories});
            if let Some(appeals) = &appeals {
                notice["appeals"] = json!(appeals);
            }
            notice
        })
        .collect();
    Ok(Json(json!({
        "period": period,
        "notices": notices,
        "freshness": fresh,
    })))
}

/// The complaint notices export's columns: one line per unit and category (docs/api.md).
pub const EXPORT_COLUMNS: &[Column] = &[
    Column::new("period", "通报期", "Period"),
    Column::new("unit", "被投诉单位", "Complained-about unit"),
    Column::new("count", "投诉总数", "Complaints"),
    Column::new("category", "诉求类别", "Category"),
    Column::new("category_count", "投诉数量", "Complaints in category"),
];

pub static EXPORT_TABLE: Table = Table {
    name: "complaint-notices",
    sheet_zh: "投诉通报",
    sheet_en: "Complaint notices",
    columns: EXPORT_COLUMNS,
};

/// `GET /api/v1/complaint-notices/export`.
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
    let q = NoticesQuery::parse(&params)?;
    let notices = q.notices(&ctx.state.pool).await?;
    let period = q.period.to_string();
    let period = period.as_str();
    let rows = notices
        .iter()
        .flat_map(|(unit, count, categories)| {
            categories.iter().map(move |(category, n)| {
                vec![
                    Cell::text(period),
                    Cell::text(unit),
                    Cell::Int(*count),
                    Cell::text(category),
                    Cell::Int(*n),
                ]
            })
        })
        .collect();
    respond(&EXPORT_TABLE, options, rows_in_memory(rows)).await
}
