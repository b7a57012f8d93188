//! `GET /api/v1/complaint-notices?period=…[&unit=…]` (投诉通报, seed 002: "定期向被投诉单位原汁原味通报
//! 群众和企业投诉数量和投诉的问题"): per complained-about unit, the appeals filed in the period, their
//! count per category and, for one unit, the appeals themselves (docs/metrics.md).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use linkage_domain::assessment::Period;
use linkage_http::error::ApiError;
use linkage_http::extract::Caller;
use serde_json::{Value, json};

use crate::Ctx;
use crate::params::Params;
use crate::rates::{db_error, freshness, may_read_metrics};

pub fn routes() -> Router<Ctx> {
    Router::new().route("/api/v1/complaint-notices", get(notices))
}

/// `GET /api/v1/complaint-notices`.
#[tracing::instrument(skip_all, fields(role = %caller.role))]
async fn notices(
    State(ctx): State<Ctx>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    may_read_metrics(&caller)?;
    let p = Params::parse(query, &["period", "unit"])?;
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
    let pool = &ctx.state.pool;
    let fresh = freshness(pool, linkage_projector::complaints::NAME).await?;
    let months: Vec<String> = period.months().iter().map(ToString::to_string).collect();
    let counts: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT unit, category, sum(complaints)::bigint FROM complaint_counts \
         WHERE month = ANY($1) AND ($2::text IS NULL OR unit = $2) \
         GROUP BY unit, category HAVING sum(complaints) > 0",
    )
    .bind(&months)
    .bind(&unit)
    .fetch_all(pool)
    .await
    .map_err(|e| db_error("counting complaints", e))?;
    let mut units: BTreeMap<String, (i64, BTreeMap<String, i64>)> = BTreeMap::new();
    for (u, category, n) in counts {
        let entry = units.entry(u).or_default();
        entry.0 += n;
        entry.1.insert(category, n);
    }
    let mut notices: Vec<(String, i64, BTreeMap<String, i64>)> =
        units.into_iter().map(|(u, (n, c))| (u, n, c)).collect();
    // Most complained-about first; then by name, so the order is total.
    notices.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

    let appeals = match &unit {
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
