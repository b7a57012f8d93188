//! Linkage's query API: the read side over HTTP. Reads only the projections' tables (the
//! auditor's reads alone go to the event store), scoped per role (handlers see their own
//! department's appeals) and with the filer's phone masked for roles that do not call filers. The thin `main` is the `linkage`
//! binary (`linkage query-api`, or inside `linkage run`).
//!
//! Routes: the table in `openapi.rs` (served as `/api/v1/openapi.json` and `/api/v1/docs`):
//! the ledger and its export, appeal details, alerts, freshness, the metrics and their exports,
//! the auditor's reads, `/healthz` and `/readyz`.

pub mod access;
pub mod alerts;
pub mod audit;
pub mod complaints;
pub mod export;
pub mod freshness;
pub mod health;
pub mod ledger;
pub mod openapi;
mod params;
pub mod rankings;
pub mod rates;
pub mod style;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use linkage_auth::TokenKeys;
use linkage_http::extract::HasTokenKeys;
use sqlx::PgPool;

pub use linkage_http::serve;

/// What every request handler shares.
#[derive(Debug)]
pub struct QueryState {
    pub pool: PgPool,
    pub keys: TokenKeys,
}

impl HasTokenKeys for QueryState {
    fn token_keys(&self) -> &TokenKeys {
        &self.keys
    }
}

/// Settings of the query API.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Largest accepted request body, in bytes (reads have none; this bounds abuse).
    pub body_limit: usize,
    /// Requests taking longer are answered 503.
    pub request_timeout: Duration,
    /// How long `GET /api/v1/appeals/{id}?min_position=N` waits for the ledger to catch up.
    pub read_your_writes_wait: Duration,
    /// When open deadlines turn yellow (red is always "passed").
    pub lights: linkage_domain::sla::LightPolicy,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            body_limit: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            read_your_writes_wait: Duration::from_secs(5),
            lights: linkage_domain::sla::LightPolicy::default(),
        }
    }
}

/// The router's state: the shared state and the settings.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub state: Arc<QueryState>,
    pub config: Arc<QueryConfig>,
}

impl HasTokenKeys for Ctx {
    fn token_keys(&self) -> &TokenKeys {
        &self.state.keys
    }
}

/// The whole query API as one router. The ledger's tables must exist: run
/// `linkage_projector::ensure_schema` first (the projector does at its start, too).
pub fn router(state: Arc<QueryState>, config: &QueryConfig) -> Router {
    let ctx = Ctx {
        state,
        config: Arc::new(config.clone()),
    };
    let app = Router::new()
        .merge(ledger::routes())
        .merge(rates::routes())
        .merge(rankings::routes())
        .merge(style::routes())
        .merge(complaints::routes())
        .merge(alerts::routes())
        .merge(freshness::routes())
        .merge(audit::routes())
        .merge(health::routes())
        .merge(linkage_http::openapi::routes(&openapi::document()))
        // The analysts' dashboard at `/` (static files; its API calls carry the token).
        .merge(linkage_dashboard::routes())
        .with_state(ctx);
    linkage_http::with_common_layers(app, config.body_limit, config.request_timeout)
}
