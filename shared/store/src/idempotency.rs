//! `Idempotency-Key`: the first answer to a command is stored with the command's events, in the
//! same transaction, so a retry gets the same answer and records nothing; two requests racing with
//! one key serialize on the key's primary key and only one records.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Row};

use crate::StoreError;
use crate::events::CommittedEvent;

/// A caller's key together with a fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Keys belong to one caller (the token's subject): two callers may use the same key.
    pub scope: String,
    pub key: String,
    pub request_hash: Vec<u8>,
}

impl IdempotencyKey {
    /// `request` is everything that makes two requests "the same": method, path and body.
    pub fn new(scope: &str, key: &str, request: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for part in request {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Self {
            scope: scope.to_owned(),
            key: key.to_owned(),
            request_hash: h.finalize().to_vec(),
        }
    }
}

/// The answer given to the first request with a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Value,
}

/// What a lookup of a key finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The key is new.
    None,
    /// The same request was answered before: answer it the same way.
    Same(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
}

pub async fn lookup(pool: &PgPool, key: &IdempotencyKey) -> Result<Replay, StoreError> {
    let row = sqlx::query(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys \
         WHERE scope = $1 AND key = $2",
    )
    .bind(&key.scope)
    .bind(&key.key)
    .fetch_optional(pool)
    .await
    .map_err(|e| StoreError::db("looking up an idempotency key", e))?;
    Ok(match row {
        None => Replay::None,
        Some(row) if row.get::<Vec<u8>, _>("request_hash") == key.request_hash => {
            Replay::Same(StoredResponse {
                status: row.get::<i16, _>("response_status") as u16,
                body: row.get("response_body"),
            })
        }
        Some(_) => Replay::Mismatch,
    })
}

/// A key plus how to answer once the events are committed.
#[derive(Clone, Copy)]
pub struct IdempotentResponse<'a> {
    pub key: &'a IdempotencyKey,
    pub respond: &'a (dyn Fn(&[CommittedEvent]) -> StoredResponse + Send + Sync),
}

impl std::fmt::Debug for IdempotentResponse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotentResponse")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl IdempotentResponse<'_> {
    pub(crate) async fn record(
        self,
        tx: &mut PgConnection,
        committed: &[CommittedEvent],
    ) -> Result<(), StoreError> {
        let response = (self.respond)(committed);
        // A concurrent holder of the key makes this wait for its commit, then do nothing.
        let recorded = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(&self.key.scope)
        .bind(&self.key.key)
        .bind(&self.key.request_hash)
        .bind(response.status as i16)
        .bind(&response.body)
        .execute(tx)
        .await
        .map_err(|e| StoreError::db("recording an idempotency key", e))?;
        if recorded.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::IdempotencyKeyTaken)
        }
    }
}
