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
            if let Err(refusal) = loaded
                .aggregate
                .handle(command.clone(), services, &sink)
                .await
            {
                // A refusal may be the effect of this very request's first attempt, committed
                // since the caller looked the key up: answer as that attempt was answered.
                return Err(match self.key_recorded(idempotency).await? {
                    true => ExecuteError::IdempotencyKeyTaken,
                    false => ExecuteError::Rejected(refusal),
                });
            }
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
                    // The concurrent append may be this very request, retried by the client
                    // while its first attempt was still committing: then the key is recorded
                    // now, and the answer is that attempt's, not a decision on the new state.
                    if self.key_recorded(idempotency).await? {
                        return Err(ExecuteError::IdempotencyKeyTaken);
                    }
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

impl<A: Aggregate> PgEventStore<A> {
    /// Whether a request with this idempotency key has been recorded (by any attempt).
    async fn key_recorded<E: std::error::Error>(
        &self,
        idempotency: Option<Idempotent<'_, A>>,
    ) -> Result<bool, ExecuteError<E>> {
        let Some(i) = idempotency else {
            return Ok(false);
        };
        let replay = crate::idempotency::lookup(self.pool(), i.key)
            .await
            .map_err(ExecuteError::Store)?;
        Ok(!matches!(replay, crate::idempotency::Replay::None))
    }
}
