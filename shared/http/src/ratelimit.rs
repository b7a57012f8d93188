//! A per-client rate limit: a token bucket per client, where a client is the subject of a valid
//! bearer token, else the peer's IP address. Over the limit, `429 /problems/rate-limited` with
//! `Retry-After` (whole seconds until a request would pass). Only `/api/` routes are limited, so
//! health probes and metrics scrapes never are. Rules and examples: docs/operations.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use linkage_auth::TokenKeys;

use crate::error::ApiError;

/// Beyond this many tracked clients, full (idle) buckets are forgotten: an idle client's
/// bucket is full anyway, so forgetting it changes nothing but memory.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// The limit: `per_second` requests per second sustained, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client; 0 turns the limit off.
    pub per_second: f64,
    /// Requests a client may send at once after being idle (the bucket's size), at least 1.
    pub burst: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The shared state of the limit (cheap to clone).
#[derive(Debug, Clone)]
pub struct RateLimit {
    config: RateLimitConfig,
    keys: TokenKeys,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl RateLimit {
    /// `None` when the limit is off (`per_second` is 0).
    pub fn new(config: RateLimitConfig, keys: TokenKeys) -> Option<Self> {
        (config.per_second > 0.0).then(|| Self {
            config: RateLimitConfig {
                burst: config.burst.max(1),
                ..config
            },
            keys,
            buckets: Arc::default(),
        })
    }

    /// `router` with the limit in front of its `/api/` routes.
    pub fn apply(self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self, limit))
    }

    /// Takes one request from `client`'s bucket, or says how long until one is available.
    pub fn take(&self, client: &str, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.config.burst);
        let rate = self.config.per_second;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(client) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refilled =
            bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = refilled.min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// `sub:<subject>` for a valid bearer token, else `ip:<address>` (an invalid token must not
    /// buy a fresh bucket by naming another subject).
    fn client(&self, request: &Request) -> String {
        let subject = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .and_then(|token| self.keys.verify(token.trim()).ok())
            .map(|p| p.subject);
        match subject {
            Some(subject) => format!("sub:{subject}"),
            None => match request.extensions().get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
                None => "ip:unknown".to_owned(),
            },
        }
    }
}

async fn limit(State(limit): State<RateLimit>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let client = limit.client(&request);
    match limit.take(&client, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            // Whole seconds, rounded up: retrying after `Retry-After` passes.
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::RateLimited {
                retry_after: retry_after.max(1),
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkage_auth::Role;

    const SECRET: &[u8] = b"rate-limit-test-secret-0123456789abcdef";

    fn limiter(per_second: f64, burst: u32) -> RateLimit {
        RateLimit::new(
            RateLimitConfig { per_second, burst },
            TokenKeys::hs256(SECRET).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_clients_are_separate() {
        // 2 per second, bursts of 3: three pass at once, the fourth waits 0.5 s.
        let l = limiter(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take("sub:a", t0), Ok(()));
        }
        assert_eq!(l.take("sub:a", t0), Err(Duration::from_millis(500)));
        assert_eq!(
            l.take("sub:b", t0),
            Ok(()),
            "another client has its own bucket"
        );
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.take("sub:a", t1), Ok(()));
        assert!(l.take("sub:a", t1).is_err());
        // Idle for long: back to a full burst, never more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.take("sub:a", t2), Ok(()));
        }
        assert!(l.take("sub:a", t2).is_err());
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let keys = TokenKeys::hs256(SECRET).unwrap();
        assert!(
            RateLimit::new(
                RateLimitConfig {
                    per_second: 0.0,
                    burst: 10
                },
                keys
            )
            .is_none()
        );
    }

    #[test]
    fn clients_are_token_subjects_else_addresses() {
        let l = limiter(1.0, 1);
        let keys = TokenKeys::hs256(SECRET).unwrap();
        let token = keys
            .issue(
                "operator-7",
                Role::Dispatcher,
                None,
                chrono::Utc::now(),
                chrono::Duration::hours(1),
            )
            .unwrap();
        let request = |auth: Option<String>| {
            let mut r = Request::builder().uri("/api/v1/appeals");
            if let Some(a) = auth {
                r = r.header(AUTHORIZATION, a);
            }
            let mut r = r.body(axum::body::Body::empty()).unwrap();
            r.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([10, 1, 2, 3], 5555))));
            r
        };
        assert_eq!(
            l.client(&request(Some(format!("Bearer {token}")))),
            "sub:operator-7"
        );
        // A forged or broken token counts against the address, not a subject of its choosing.
        assert_eq!(
            l.client(&request(Some("Bearer not.a.jwt".into()))),
            "ip:10.1.2.3"
        );
        assert_eq!(l.client(&request(None)), "ip:10.1.2.3");
    }

    #[test]
    fn forgets_idle_clients_beyond_the_cap() {
        let l = limiter(1000.0, 1);
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED_CLIENTS {
            l.take(&format!("ip:{i}"), t0).unwrap();
        }
        // A second later every bucket is full again, so a new client makes room.
        l.take("ip:new", t0 + Duration::from_secs(1)).unwrap();
        assert!(l.buckets.lock().unwrap().len() < 10);
    }
}
