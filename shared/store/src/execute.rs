//! Running a command: load the stream, decide, append; on a concurrent append, decide again on
//! the fresh state, a bounded number of times.

use std::collections::HashMap;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;

use crate::StoreError;
use crate::events::{CommittedEvent, PgEventStore};
use crate::idempotency::{IdempotencyKey, IdempotentResponse, StoredResponse};

/// An idempotency key and how to answer from the state after the command and its events.
pub struct Idempotent<'a, A> {
    pub key: &'a IdempotencyKey,
    pub respond: &'a (dyn Fn(&A, &[CommittedEvent]) -> StoredResponse + Send + Sync),
}

impl<A> Clone for Idempotent<'_, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A> Copy for Idempotent<'_, A> {}

impl<A> std::fmt::Debug for Idempotent<'_, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotent")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// How many times a command is decided before a conflict is reported to the caller.
pub const MAX_ATTEMPTS: usize = 5;

/// A command that went through.
#[derive(Debug)]
pub struct Executed<A> {
    /// Empty when the command decided on no events.
    pub committed: Vec<CommittedEvent>,
    /// The aggregate's state after the command.
    pub state: A,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    /// Other writers kept appending to the stream.
    #[error("the appeal kept changing concurrently; {MAX_ATTEMPTS} attempts failed")]
    Conflict,
    /// Another request with the same idempotency key committed first.
    #[error("another request with this idempotency key was recorded first")]
    IdempotencyKeyTaken,
    #[error(transparent)]
    Store(StoreError),
}

impl<A> PgEventStore<A>
where
    A: Aggregate,
    A::Command: Clone,
{
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: &A::Command,
        services: &A::Services,
        metadata: &HashMap<String, String>,
        idempotency: Option<Idempotent<'_, A>>,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let mut attempt = 1;
        loop {
            let mut loaded = self.load(aggregate_id).await.map_err(ExecuteError::Store)?;
            let sink = EventSink::<A>::default();
            loaded
                .aggregate
                .handle(command.clone(), services, &sink)
                .await
                .map_err(ExecuteError::Rejected)?;
            let events = sink.collect().await;
            // `handle` applied the events to `loaded.aggregate` already; `append` only reads the
            // stream position and last hash, which are still those of the loaded stream.
            let state = &loaded.aggregate;
            let respond = idempotency.map(|i| move |c: &[CommittedEvent]| (i.respond)(state, c));
            let idem = match (&idempotency, &respond) {
                (Some(i), Some(respond)) => Some(IdempotentResponse {
                    key: i.key,
                    respond,
                }),
                _ => None,
            };
            match self.append(&loaded, &events, metadata, idem).await {
                Ok(committed) => {
                    return Ok(Executed {
                        committed,
                        state: loaded.aggregate,
                    });
                }
                Err(StoreError::Conflict) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(aggregate_id, attempt, "append conflict; deciding again");
                    attempt += 1;
                }
                Err(StoreError::Conflict) => return Err(ExecuteError::Conflict),
                Err(StoreError::IdempotencyKeyTaken) => {
                    return Err(ExecuteError::IdempotencyKeyTaken);
                }
                Err(e) => return Err(ExecuteError::Store(e)),
            }
        }
    }
}
