//! The command routes: one `POST` per appeal command.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Datelike;
use linkage_auth::{Principal, may_send};
use linkage_domain::appeal::*;
use linkage_domain::values::DepartmentId;
use linkage_store::idempotency::{self, IdempotencyKey, Replay, StoredResponse};
use linkage_store::{CommittedEvent, ExecuteError, Idempotent};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use linkage_http::error::ApiError;
use linkage_http::extract::{Caller, JsonBody, RequestContext};

/// The commands on an existing appeal (`POST /api/v1/appeals/{id}/<command>`) and what each
/// does, for the OpenAPI document; the same names as the router's `commands!` list below
/// (tests/e2e/tests/openapi.rs checks both ways).
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "assign",
        "Assign (派单) to a lead department and co-handlers",
    ),
    ("transfer", "Transfer (转办) to another lead department"),
    (
        "decline",
        "Decline (退单): the lead department says it is not its duty",
    ),
    (
        "contact",
        "Record the first contact with the filer (联系诉求人)",
    ),
    ("feedback", "Give the initial feedback (初步反馈)"),
    ("resolve", "Resolve (办结回复) with an outcome"),
    (
        "request-extension",
        "Ask for an extension (申请延期) of working days",
    ),
    ("approve-extension", "Approve the pending extension"),
    ("reject-extension", "Reject the pending extension"),
    ("rework", "Return for rework (退回重办)"),
    (
        "return-visit",
        "Record the return visit (回访) and the filer's evaluation",
    ),
    ("close", "Close and archive (办结归档)"),
    ("withdraw", "Withdraw (撤回) at the filer's request"),
    (
        "mark-duplicate",
        "Mark as a duplicate (重复件) of another appeal",
    ),
    ("supervise", "Supervise (督办) with a deadline"),
    (
        "accountability",
        "Record an accountability (问责) of a department",
    ),
    (
        "deadline-missed",
        "Record a missed deadline (the SLA watcher)",
    ),
    (
        "recompute-deadlines",
        "Recompute the deadlines after a calendar change (the SLA watcher)",
    ),
];

pub fn command_routes() -> Router<Arc<AppState>> {
    let r = Router::new().route("/api/v1/appeals", post(file));
    // Each entry: the route's last segment (= the command's name) and how the body becomes a command.
    macro_rules! commands {
        ($($name:literal => |$body:ident: $ty:ty, $caller:ident| $build:expr),+ $(,)?) => {
            r $(.route(
                concat!("/api/v1/appeals/{id}/", $name),
                post(|State(state): State<Arc<AppState>>,
                      Caller(caller): Caller,
                      ctx: RequestContext,
                      Path(id): Path<String>,
                      body: JsonBody<$ty>| async move {
                    let build = |$body: $ty, $caller: &Principal| -> Result<AppealCommand, ApiError> { Ok($build) };
                    command(&state, &caller, &ctx, &id, $name, body, build).await
                }),
            ))+
        };
    }
    commands! {
        "assign" => |b: AssignAppeal, _c| AppealCommand::Assign(b),
        "transfer" => |b: TransferAppeal, _c| AppealCommand::Transfer(b),
        "decline" => |b: DeclineAppeal, c| AppealCommand::Decline { by: department(c)?, body: b },
        "contact" => |b: RecordContact, c| AppealCommand::RecordContact { by: department(c)?, body: b },
        "feedback" => |b: GiveInitialFeedback, c| AppealCommand::GiveInitialFeedback { by: department(c)?, body: b },
        "resolve" => |b: ResolveAppeal, c| AppealCommand::Resolve { by: department(c)?, body: b },
        "request-extension" => |b: RequestExtension, c| AppealCommand::RequestExtension { by: department(c)?, body: b },
        "approve-extension" => |b: ApproveExtension, _c| AppealCommand::ApproveExtension(b),
        "reject-extension" => |b: RejectExtension, _c| AppealCommand::RejectExtension(b),
        "rework" => |b: ReturnForRework, _c| AppealCommand::ReturnForRework(b),
        "return-visit" => |b: RecordReturnVisit, _c| AppealCommand::RecordReturnVisit(b),
        "close" => |b: CloseAppeal, _c| AppealCommand::Close(b),
        "withdraw" => |b: WithdrawAppeal, _c| AppealCommand::Withdraw(b),
        "mark-duplicate" => |b: MarkDuplicate, _c| AppealCommand::MarkDuplicate(b),
        "supervise" => |b: SuperviseAppeal, _c| AppealCommand::Supervise(b),
        "accountability" => |b: RecordAccountability, _c| AppealCommand::RecordAccountability(b),
        "deadline-missed" => |b: RecordDeadlineMissed, _c| AppealCommand::RecordDeadlineMissed(b),
        "recompute-deadlines" => |b: RecomputeDeadlines, _c| AppealCommand::RecomputeDeadlines(b),
    }
}

/// The department a handler acts for (handler tokens always carry one).
fn department(caller: &Principal) -> Result<DepartmentId, ApiError> {
    caller
        .department
        .clone()
        .ok_or_else(|| ApiError::Forbidden("the token names no department".into()))
}

/// `POST /api/v1/appeals`: files a new appeal; 201 with its id and tracking number.
#[tracing::instrument(name = "file", skip_all, fields(request_id = %ctx.request_id, appeal_id))]
async fn file(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    ctx: RequestContext,
    body: JsonBody<FileAppeal>,
) -> Result<Response, ApiError> {
    authorize(&caller, "file")?;
    let key = idempotency_key(&caller, &ctx, "/api/v1/appeals", &body.raw);
    if let Some(replay) = replay(&state, key.as_ref()).await? {
        return Ok(replay);
    }
    let appeal_id = Uuid::now_v7();
    tracing::Span::current().record("appeal_id", tracing::field::display(appeal_id));
    let year = state
        .services
        .clock
        .now()
        .with_timezone(&linkage_domain::calendar::TZ)
        .year();
    let tracking_number = linkage_store::tracking::next_tracking_number(&state.pool, year).await?;
    let cmd = AppealCommand::File {
        appeal_id,
        tracking_number,
        body: body.value,
    };
    execute(&state, &caller, &ctx, appeal_id, &cmd, key.as_ref()).await
}

/// Runs one command on an existing appeal.
#[tracing::instrument(name = "command", skip_all, fields(request_id = %ctx.request_id, command = name, appeal_id = %id))]
async fn command<B: DeserializeOwned>(
    state: &AppState,
    caller: &Principal,
    ctx: &RequestContext,
    id: &str,
    name: &'static str,
    body: JsonBody<B>,
    build: impl FnOnce(B, &Principal) -> Result<AppealCommand, ApiError>,
) -> Result<Response, ApiError> {
    authorize(caller, name)?;
    let appeal_id = Uuid::parse_str(id)
        .map_err(|_| ApiError::NotFound(format!("no appeal has the id {id:?}")))?;
    let path = format!("/api/v1/appeals/{appeal_id}/{name}");
    let key = idempotency_key(caller, ctx, &path, &body.raw);
    if let Some(replay) = replay(state, key.as_ref()).await? {
        return Ok(replay);
    }
    let cmd = build(body.value, caller)?;
    execute(state, caller, ctx, appeal_id, &cmd, key.as_ref()).await
}

pub(crate) fn authorize(caller: &Principal, command: &str) -> Result<(), ApiError> {
    if may_send(caller.role, command) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "the role {} may not send the command {command}",
            caller.role
        )))
    }
}

pub(crate) fn idempotency_key(
    caller: &Principal,
    ctx: &RequestContext,
    path: &str,
    body: &[u8],
) -> Option<IdempotencyKey> {
    let key = ctx.idempotency_key.as_deref()?;
    // Compare bodies by their JSON value, so formatting differences do not count as "different".
    let canonical = serde_json::from_slice::<Value>(body)
        .map(|v| linkage_store::hash::canonical_json(&v))
        .unwrap_or_else(|_| body.to_vec());
    Some(IdempotencyKey::new(
        &caller.subject,
        key,
        &[b"POST", path.as_bytes(), &canonical],
    ))
}

/// The first answer again, when this key was used before.
pub(crate) async fn replay(
    state: &AppState,
    key: Option<&IdempotencyKey>,
) -> Result<Option<Response>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    match idempotency::lookup(&state.pool, key).await? {
        Replay::None => Ok(None),
        Replay::Same(stored) => Ok(Some(stored_response(&stored, true))),
        Replay::Mismatch => Err(ApiError::invalid(
            "Idempotency-Key",
            "this idempotency key was already used for a different request",
        )),
    }
}

async fn execute(
    state: &AppState,
    caller: &Principal,
    ctx: &RequestContext,
    appeal_id: Uuid,
    cmd: &AppealCommand,
    key: Option<&IdempotencyKey>,
) -> Result<Response, ApiError> {
    let metadata = command_metadata(caller, ctx, cmd.name());
    let status = if matches!(cmd, AppealCommand::File { .. }) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    // One answer for the first request and its replays, made from the state after the command.
    let respond = move |appeal: &Appeal, committed: &[CommittedEvent]| StoredResponse {
        status: status.as_u16(),
        body: json!({
            "appeal_id": appeal_id,
            "tracking_number": appeal.tracking_number,
            "status": appeal.status,
            "events": committed,
        }),
    };
    let idempotency = key.map(|key| Idempotent {
        key,
        respond: &respond,
    });
    let id = appeal_id.to_string();
    match state
        .store
        .execute(&id, cmd, &state.services, &metadata, idempotency)
        .await
    {
        Ok(executed) => Ok(stored_response(
            &respond(&executed.state, &executed.committed),
            false,
        )),
        // A concurrent request with the same key won: answer as it was answered.
        Err(ExecuteError::IdempotencyKeyTaken) => match replay(state, key).await? {
            Some(response) => Ok(response),
            None => Err(ExecuteError::<AppealError>::IdempotencyKeyTaken.into()),
        },
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn stored_response(stored: &StoredResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, axum::Json(&stored.body)).into_response();
    let headers = response.headers_mut();
    if let Some(id) = stored.body.get("appeal_id").and_then(Value::as_str)
        && status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/api/v1/appeals/{id}"))
    {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Who did what, recorded with every event of a command.
pub(crate) fn command_metadata(
    caller: &Principal,
    ctx: &RequestContext,
    command: &str,
) -> HashMap<String, String> {
    HashMap::from([
        ("actor".to_owned(), caller.subject.clone()),
        ("role".to_owned(), caller.role.as_str().to_owned()),
        (
            "department".to_owned(),
            caller
                .department
                .as_ref()
                .map(|d| d.as_str().to_owned())
                .unwrap_or_default(),
        ),
        ("request_id".to_owned(), ctx.request_id.clone()),
        ("correlation_id".to_owned(), ctx.correlation_id.clone()),
        ("command".to_owned(), command.to_owned()),
    ])
}
