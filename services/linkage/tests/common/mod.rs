//! What the tests of the `linkage` binary share: a free port, a bus on a test prefix, tokens.

use std::net::TcpListener;
use std::time::Duration;

use linkage_auth::{Role, TokenKeys};
use linkage_bus::{Bus, BusConfig};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// The bus on a prefix of this test's own (the caller deletes the stream at the end).
pub async fn test_bus(prefix: &str) -> Bus {
    Bus::connect(BusConfig {
        url: nats_url(),
        prefix: prefix.to_owned(),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
    })
    .await
    .expect("bus")
}

/// A token for `role` signed with `secret`.
pub fn token(secret: &str, role: Role, dept: Option<&str>) -> String {
    TokenKeys::hs256(secret.as_bytes())
        .expect("test key")
        .issue(
            &format!("{role}-1"),
            role,
            dept.map(|d| d.parse().expect("department id")),
            chrono::Utc::now(),
            chrono::Duration::hours(1),
        )
        .expect("token")
}
