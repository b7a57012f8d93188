//! The SLA rules routes: admins publish a year's official calendar, correct a date and set SLA
//! policies (each recorded as an event on the rules stream); everyone signed in can read the
//! rules in force, to see why a deadline is what it is.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use linkage_auth::Principal;
use linkage_domain::rules::{
    CorrectCalendarDate, PublishCalendarYear, RULES_ID, RulesCommand, RulesServices, SetSlaPolicy,
    SlaRules, calendar_label,
};
use linkage_domain::sla::{PolicyScope, SlaPolicy};
use linkage_store::idempotency::StoredResponse;
use linkage_store::{CommittedEvent, Idempotent, PgEventStore};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::AppState;
use crate::routes::{authorize, command_metadata, idempotency_key, replay, stored_response};
use linkage_http::error::ApiError;
use linkage_http::extract::{Caller, JsonBody, RequestContext};

pub fn rules_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/calendar", get(read_calendar))
        .route(
            "/api/v1/calendar/years",
            post(command::<PublishCalendarYear>),
        )
        .route(
            "/api/v1/calendar/corrections",
            post(command::<CorrectCalendarDate>),
        )
        .route(
            "/api/v1/sla-policies",
            get(read_policies).post(command::<SetSlaPolicy>),
        )
}

/// A rules command's request body.
trait RulesBody: DeserializeOwned + Send + 'static {
    fn command(self) -> RulesCommand;
}

impl RulesBody for PublishCalendarYear {
    fn command(self) -> RulesCommand {
        RulesCommand::PublishCalendarYear(self)
    }
}

impl RulesBody for CorrectCalendarDate {
    fn command(self) -> RulesCommand {
        RulesCommand::CorrectCalendarDate(self)
    }
}

impl RulesBody for SetSlaPolicy {
    fn command(self) -> RulesCommand {
        RulesCommand::SetSlaPolicy(self)
    }
}

async fn command<B: RulesBody>(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    ctx: RequestContext,
    uri: axum::http::Uri,
    body: JsonBody<B>,
) -> Result<Response, ApiError> {
    let raw = body.raw.clone();
    run(
        &state,
        &caller,
        &ctx,
        uri.path(),
        &raw,
        body.value.command(),
    )
    .await
}

/// Runs one rules command and installs the new rules in this process at once.
#[tracing::instrument(name = "rules_command", skip_all, fields(request_id = %ctx.request_id, command = command.name()))]
async fn run(
    state: &AppState,
    caller: &Principal,
    ctx: &RequestContext,
    path: &str,
    raw: &[u8],
    command: RulesCommand,
) -> Result<Response, ApiError> {
    authorize(caller, command.name())?;
    let key = idempotency_key(caller, ctx, path, raw);
    if let Some(replay) = replay(state, key.as_ref()).await? {
        return Ok(replay);
    }
    let metadata = command_metadata(caller, ctx, command.name());
    let respond = |rules: &SlaRules, committed: &[CommittedEvent]| StoredResponse {
        status: StatusCode::CREATED.as_u16(),
        body: json!({
            "rules_version": rules.version,
            "calendar": calendar_label(rules.calendar_version),
            "events": committed,
        }),
    };
    let idempotency = key.as_ref().map(|key| Idempotent {
        key,
        respond: &respond,
    });
    let store = PgEventStore::<SlaRules>::new(state.pool.clone());
    let services = RulesServices {
        clock: state.services.clock.clone(),
    };
    let executed = store
        .execute(RULES_ID, &command, &services, &metadata, idempotency)
        .await?;
    let response = respond(&executed.state, &executed.committed);
    state.rules.install(executed.state);
    Ok(stored_response(&response, false))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarQuery {
    /// A year whose days off and adjusted working days to list.
    year: Option<i32>,
}

/// `GET /api/v1/calendar[?year=2026]`: the calendar version, the covered years and, for a year,
/// its holidays and adjusted working weekends.
#[tracing::instrument(skip_all, fields(request_id = %ctx.request_id))]
async fn read_calendar(
    State(state): State<Arc<AppState>>,
    Caller(_caller): Caller,
    ctx: RequestContext,
    query: Result<Query<CalendarQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    refresh(&state).await?;
    let rules = state.rules.rules();
    let mut body = json!({
        "rules_version": rules.version,
        "calendar": calendar_label(rules.calendar_version),
        "years": rules.calendar.years().collect::<Vec<_>>(),
    });
    if let Some(year) = query.year {
        if !rules.calendar.covers(year) {
            return Err(ApiError::NotFound(format!(
                "the calendar of {year} is not published"
            )));
        }
        let (mut holidays, mut working_weekends) = (Vec::new(), Vec::new());
        for (date, working) in rules.calendar.overrides_in(year) {
            if working {
                working_weekends.push(date);
            } else {
                holidays.push(date);
            }
        }
        body["year"] = json!({
            "year": year,
            "holidays": holidays,
            "working_weekends": working_weekends,
        });
    }
    Ok(Json(body))
}

/// `GET /api/v1/sla-policies`: the built-in default and every policy set, with its version.
#[tracing::instrument(skip_all, fields(request_id = %ctx.request_id))]
async fn read_policies(
    State(state): State<Arc<AppState>>,
    Caller(_caller): Caller,
    ctx: RequestContext,
) -> Result<Json<Value>, ApiError> {
    refresh(&state).await?;
    let rules = state.rules.rules();
    let policies: Vec<Value> = rules
        .policies
        .entries()
        .map(|(scope, policy, version)| {
            json!({"scope": scope, "label": format!("{scope}@v{version}"), "policy": policy, "version": version})
        })
        .collect();
    Ok(Json(json!({
        "rules_version": rules.version,
        "built_in_default": {"scope": PolicyScope::default(), "policy": SlaPolicy::default()},
        "policies": policies,
    })))
}

/// Reads the latest rules (reads must not lag behind a change made through another process).
async fn refresh(state: &AppState) -> Result<(), ApiError> {
    state.rules.refresh().await?;
    Ok(())
}
