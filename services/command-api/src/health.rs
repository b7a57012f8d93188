//! `/healthz` (the process answers), `/readyz` (Postgres and NATS are reachable; the relay's lag
//! is reported) and `/metrics` (Prometheus text: the relay's lag).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let (postgres, nats, lag) = tokio::join!(
        postgres_ready(&state),
        nats_ready(&state.nats_addr),
        linkage_relay::lag(&state.pool)
    );
    let ready = postgres.is_ok() && nats.is_ok();
    let check = |r: &Result<(), String>| match r {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e}),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "ready": ready,
            "checks": {"postgres": check(&postgres), "nats": check(&nats)},
            // Informational: a lagging relay delays reads, not commands.
            "relay_lag": match lag {
                Ok(l) => json!({"events": l.events, "seconds": l.seconds}),
                Err(e) => json!({"error": e.to_string()}),
            },
        })),
    )
}

async fn postgres_ready(state: &AppState) -> Result<(), String> {
    tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&state.pool),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// A NATS server greets every connection with an `INFO` line; seeing it is enough to call the
/// server reachable (the command API does not publish; the relay does).
async fn nats_ready(addr: &str) -> Result<(), String> {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let mut greeting = [0u8; 4];
        stream
            .read_exact(&mut greeting)
            .await
            .map_err(|e| format!("reading from {addr}: {e}"))?;
        if &greeting == b"INFO" {
            Ok(())
        } else {
            Err(format!("{addr} does not speak the NATS protocol"))
        }
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .map_err(|_| format!("{addr}: timed out"))?
}

/// The relay's lag in Prometheus text format (computed from Postgres, so any instance answers).
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match linkage_relay::lag(&state.pool).await {
        Ok(lag) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            format!(
                "# HELP linkage_relay_lag_events Committed events not yet published to NATS.\n\
                 # TYPE linkage_relay_lag_events gauge\n\
                 linkage_relay_lag_events {}\n\
                 # HELP linkage_relay_lag_seconds Age of the oldest committed, unpublished event.\n\
                 # TYPE linkage_relay_lag_seconds gauge\n\
                 linkage_relay_lag_seconds {}\n",
                lag.events, lag.seconds
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/plain; version=0.0.4")],
            format!("# relay lag unavailable: {e}\n"),
        ),
    }
}

/// `host:port` of a `nats://[user:pass@]host[:port]` URL, for the readiness probe.
pub fn nats_addr(url: &str) -> Result<String, String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest
        .rsplit('@')
        .next()
        .unwrap_or(rest)
        .trim_end_matches('/');
    if hostport.is_empty() {
        return Err(format!("NATS_URL {url:?} names no host"));
    }
    Ok(if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:4222")
    })
}

#[cfg(test)]
mod tests {
    use super::nats_addr;

    #[test]
    fn nats_addresses() {
        assert_eq!(
            nats_addr("nats://127.0.0.1:4222").unwrap(),
            "127.0.0.1:4222"
        );
        assert_eq!(nats_addr("nats://user:pw@host:1").unwrap(), "host:1");
        assert_eq!(nats_addr("nats://host").unwrap(), "host:4222");
        assert!(nats_addr("nats://").is_err());
    }
}
