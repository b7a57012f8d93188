//! The assessment commands (docs/metrics.md): enterprises and return-visit evaluators submit
//! quarterly style evaluations (作风评议); admins set the assessment policy (weights, penalties,
//! target, w, best/worst list sizes). Each is recorded as an event on its own stream.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use cqrs_es::Aggregate;
use linkage_auth::Principal;
use linkage_domain::assessment::policy::SetAssessmentPolicy;
use linkage_domain::assessment::{
    AssessmentPolicyBook, PolicyCommand, StyleCommand, StyleEvaluation, SubmitStyleEvaluation,
};
use linkage_store::idempotency::StoredResponse;
use linkage_store::{CommittedEvent, Idempotent, PgEventStore};
use serde_json::json;

use crate::AppState;
use crate::routes::{authorize, command_metadata, idempotency_key, replay, stored_response};
use linkage_http::error::{ApiError, Refusal};
use linkage_http::extract::{Caller, JsonBody, RequestContext};

const STYLE_PATH: &str = "/api/v1/style-evaluations";
const POLICY_PATH: &str = "/api/v1/assessment-policy";

/// Longest evaluator identity (token subject) a style evaluation's stream id may carry.
const MAX_EVALUATOR_LEN: usize = 200;

pub fn assessment_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(STYLE_PATH, post(submit_style_evaluation))
        .route(POLICY_PATH, post(set_policy))
}

/// `POST /api/v1/style-evaluations`: 201 with the evaluation's stream, revision and events.
#[tracing::instrument(name = "style_evaluation", skip_all, fields(request_id = %ctx.request_id))]
async fn submit_style_evaluation(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    ctx: RequestContext,
    body: JsonBody<SubmitStyleEvaluation>,
) -> Result<Response, ApiError> {
    authorize(&caller, "style-evaluation")?;
    if caller.subject.chars().count() > MAX_EVALUATOR_LEN {
        return Err(ApiError::Forbidden(format!(
            "the token's subject is longer than {MAX_EVALUATOR_LEN} characters"
        )));
    }
    let stream =
        StyleEvaluation::stream_id(body.value.quarter, &body.value.department, &caller.subject);
    let command = StyleCommand::Submit {
        evaluator: caller.subject.clone(),
        evaluator_role: caller.role.as_str().to_owned(),
        body: body.value,
    };
    run(
        &state,
        &caller,
        &ctx,
        (STYLE_PATH, &body.raw, "style-evaluation"),
        &stream,
        &command,
        &state.services.clock,
        |e: &StyleEvaluation| json!({"evaluation": stream, "revision": e.revision}),
    )
    .await
}

/// `POST /api/v1/assessment-policy`: 201 with the new policy version and its event.
#[tracing::instrument(name = "set_assessment_policy", skip_all, fields(request_id = %ctx.request_id))]
async fn set_policy(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    ctx: RequestContext,
    body: JsonBody<SetAssessmentPolicy>,
) -> Result<Response, ApiError> {
    authorize(&caller, "set-assessment-policy")?;
    let command = PolicyCommand::Set(body.value);
    run(
        &state,
        &caller,
        &ctx,
        (POLICY_PATH, &body.raw, "set-assessment-policy"),
        AssessmentPolicyBook::STREAM,
        &command,
        &state.services.clock,
        |b: &AssessmentPolicyBook| json!({"version": b.version, "policy": b.policy}),
    )
    .await
}

/// Runs one command on its stream, with idempotency keys like every command route.
#[allow(clippy::too_many_arguments)]
async fn run<A>(
    state: &AppState,
    caller: &Principal,
    ctx: &RequestContext,
    (path, raw, name): (&str, &[u8], &'static str),
    stream: &str,
    command: &A::Command,
    services: &A::Services,
    describe: impl Fn(&A) -> serde_json::Value + Send + Sync,
) -> Result<Response, ApiError>
where
    A: Aggregate,
    A::Command: Clone,
    A::Error: Refusal,
{
    let key = idempotency_key(caller, ctx, path, raw);
    if let Some(replay) = replay(state, key.as_ref()).await? {
        return Ok(replay);
    }
    let metadata = command_metadata(caller, ctx, name);
    let respond = |aggregate: &A, committed: &[CommittedEvent]| {
        let mut body = describe(aggregate);
        body["events"] = json!(committed);
        StoredResponse {
            status: StatusCode::CREATED.as_u16(),
            body,
        }
    };
    let idempotency = key.as_ref().map(|key| Idempotent {
        key,
        respond: &respond,
    });
    let executed = PgEventStore::<A>::new(state.pool.clone())
        .execute(stream, command, services, &metadata, idempotency)
        .await?;
    Ok(stored_response(
        &respond(&executed.state, &executed.committed),
        false,
    ))
}
