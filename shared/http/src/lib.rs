//! What Linkage's HTTP services share: one `ApiError` answered as problem+json, the caller,
//! request-context and JSON-body extractors, and the common middleware stack.

pub mod error;
pub mod extract;
pub mod openapi;
pub mod ratelimit;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::response::IntoResponse;
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;

/// Adds what every Linkage HTTP service has: problem+json for unknown routes and methods, a body
/// limit, a request timeout, and request ids (taken from `X-Request-Id` or made, put in the
/// tracing span, echoed in the response).
pub fn with_common_layers(router: Router, body_limit: usize, timeout: Duration) -> Router {
    let request_id = HeaderName::from_static(extract::REQUEST_ID);
    router
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this route does not accept that method".into())
        })
        .layer(DefaultBodyLimit::max(body_limit))
        // A request that outlives the timeout is answered like any other refusal: problem+json.
        .layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| async move {
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => ApiError::Unavailable(format!(
                    "the request did not finish within {} s; retry later",
                    timeout.as_secs_f64()
                ))
                .into_response(),
            }
        }))
        // Layers run outermost-last: the id is set first, then traced, then echoed.
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
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // With the peer's address: the rate limit keys anonymous clients by it.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    /// A handler that never finishes is cut off by the timeout with a 503 problem, not an
    /// empty body.
    #[tokio::test]
    async fn a_request_past_the_timeout_is_answered_as_a_problem() {
        let router = Router::new().route("/slow", get(std::future::pending::<&'static str>));
        let app = with_common_layers(router, 1024, Duration::from_millis(10));
        let request = Request::get("/slow").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert!(response.headers().contains_key(extract::REQUEST_ID));
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["status"], 503);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("did not finish"),
            "{problem}"
        );
    }
}
