//! Linkage's command API: authenticates callers, parses commands, runs them on the `Appeal`
//! aggregate and appends the events to Postgres. Thin `main` lives in the `linkage` binary.

pub mod error;
pub mod extract;
pub mod health;
pub mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use linkage_auth::TokenKeys;
use linkage_domain::{Appeal, AppealServices};
use linkage_store::PgEventStore;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    pub pool: PgPool,
    pub store: PgEventStore<Appeal>,
    pub services: AppealServices,
    pub keys: TokenKeys,
    /// `host:port` of the NATS server, checked by `/readyz`.
    pub nats_addr: String,
}

/// HTTP settings of the command API.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Requests taking longer are answered 503.
    pub request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The whole command API as one router.
pub fn router(state: Arc<AppState>, config: &HttpConfig) -> Router {
    let request_id = HeaderName::from_static(extract::REQUEST_ID);
    Router::new()
        .merge(routes::command_routes())
        .merge(health::routes())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this route does not accept that method".into())
        })
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        // Outermost last: ids are set first, then traced, then echoed in the response.
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(extract::REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
