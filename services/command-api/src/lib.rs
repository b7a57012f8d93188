//! Linkage's command API: authenticates callers, parses commands, runs them on the `Appeal`
//! aggregate and appends the events to Postgres. The thin `main` is the `linkage` binary.

pub mod assessment;
pub mod health;
pub mod openapi;
pub mod routes;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use linkage_auth::TokenKeys;
use linkage_domain::{Appeal, AppealServices};
use linkage_http::extract::HasTokenKeys;
use linkage_store::PgEventStore;
use linkage_store::rules::LiveRules;
use sqlx::PgPool;

pub use linkage_http::serve;

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    pub pool: PgPool,
    pub store: PgEventStore<Appeal>,
    /// `services.rules` is `rules`: commands compute deadlines with the rules in force.
    pub services: AppealServices,
    pub rules: Arc<LiveRules>,
    pub keys: TokenKeys,
    /// `host:port` of the NATS server, checked by `/readyz`.
    pub nats_addr: String,
}

impl HasTokenKeys for AppState {
    fn token_keys(&self) -> &TokenKeys {
        &self.keys
    }
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
    let app = Router::new()
        .merge(routes::command_routes())
        .merge(rules::rules_routes())
        .merge(assessment::assessment_routes())
        .merge(health::routes())
        .merge(linkage_http::openapi::routes(&openapi::document()))
        .with_state(state);
    linkage_http::with_common_layers(app, config.body_limit, config.request_timeout)
}
