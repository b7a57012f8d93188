//! `/healthz` (the process answers) and `/readyz` (Postgres is reachable).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::Ctx;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
}

async fn readyz(State(ctx): State<Ctx>) -> impl IntoResponse {
    let postgres = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&ctx.state.pool),
    )
    .await
    .map_err(|_| "timed out".to_owned())
    .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()));
    let (status, check) = match &postgres {
        Ok(()) => (StatusCode::OK, json!({"ok": true})),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ok": false, "error": e}),
        ),
    };
    (
        status,
        axum::Json(json!({
            "ready": postgres.is_ok(),
            "checks": {"postgres": check},
        })),
    )
}
