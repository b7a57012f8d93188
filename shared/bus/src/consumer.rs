//! Reading the stream: durable pull consumers that ack everything up to a point, and an ordered
//! replay of the whole stream.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::{self, AckKind};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::envelope::Envelope;
use crate::error::{BusError, Source};

/// The expiry of a no-wait fetch: the server answers at once anyway; this only bounds a
/// request the server never answers.
const NO_WAIT_EXPIRY: Duration = Duration::from_secs(1);
/// How long after a pull request's expiry the client stops waiting for the server to end it.
const PULL_GRACE: Duration = Duration::from_secs(2);

/// One event as read from the stream.
pub struct Delivered {
    /// The message's sequence in the stream (the bus's own order, 1-based).
    pub stream_sequence: u64,
    pub envelope: Envelope,
    /// How to ack it; `None` for a replayed message.
    acker: Option<Acker>,
}

impl std::fmt::Debug for Delivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivered")
            .field("stream_sequence", &self.stream_sequence)
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

/// A raw message split into what it says and how to ack it.
struct Raw {
    stream_sequence: u64,
    decoded: Result<Envelope, crate::envelope::EnvelopeError>,
    acker: Acker,
}

fn split(message: jetstream::Message) -> Result<Raw, Source> {
    let stream_sequence = message.info()?.stream_sequence;
    let decoded = Envelope::decode(&message.payload);
    let (_, acker) = message.split();
    Ok(Raw {
        stream_sequence,
        decoded,
        acker,
    })
}

/// A durable pull consumer over every event of the stream. Acking a message acks everything
/// before it (`AckPolicy::All`), so a reader acks once per batch, after its work is durable.
pub struct EventConsumer {
    durable: String,
    consumer: PullConsumer,
    /// Messages that are not envelopes, not yet terminated (see [`EventConsumer::fetch`]).
    garbage: Mutex<Vec<(u64, Acker)>>,
}

impl std::fmt::Debug for EventConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventConsumer")
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl EventConsumer {
    pub(crate) fn new(durable: String, consumer: PullConsumer) -> Self {
        Self {
            durable,
            consumer,
            garbage: Mutex::new(Vec::new()),
        }
    }

    pub fn durable(&self) -> &str {
        &self.durable
    }

    /// Up to `max` messages in stream order, waiting at most `wait` for the first; may return
    /// none. Messages that do not decode as an [`Envelope`] are logged with their stream
    /// sequence and left out. They are terminated (`AckKind::Term`) as soon as every message
    /// before them is acked: under `AckPolicy::All` a termination also acks everything before
    /// it, so terminating earlier could lose messages the caller has not finished with.
    #[tracing::instrument(skip(self), fields(durable = %self.durable))]
    pub async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivered>, BusError> {
        let max = max.max(1);
        // What is there now; only when nothing is, wait for one message and then take what
        // arrived meanwhile. Every pull request here ends on the server (no_wait, or one message
        // or its expiry), so no request is left behind to swallow messages nobody reads.
        let mut raw = self.pull(max, None).await?;
        if raw.is_empty() && !wait.is_zero() {
            raw = self.pull(1, Some(wait)).await?;
            if !raw.is_empty() && max > 1 {
                raw.extend(self.pull(max - 1, None).await?);
            }
        }
        let mut delivered = Vec::with_capacity(raw.len());
        let mut found_garbage = false;
        for Raw {
            stream_sequence,
            decoded,
            acker,
        } in raw
        {
            match decoded {
                Ok(envelope) => delivered.push(Delivered {
                    stream_sequence,
                    envelope,
                    acker: Some(acker),
                }),
                Err(error) => {
                    tracing::error!(
                        stream_sequence,
                        %error,
                        "skipping a message that is not a Linkage envelope"
                    );
                    found_garbage = true;
                    let mut garbage = self.lock_garbage();
                    garbage.retain(|(seq, _)| *seq != stream_sequence);
                    garbage.push((stream_sequence, acker));
                }
            }
        }
        if found_garbage {
            self.settle_garbage().await?;
        }
        Ok(delivered)
    }

    /// Acks `last` and everything delivered before it; waits for the server to confirm.
    pub async fn ack_through(&self, last: &Delivered) -> Result<(), BusError> {
        let ack_error = |source: Source| BusError::AckMessage {
            durable: self.durable.clone(),
            stream_sequence: last.stream_sequence,
            source,
        };
        let acker = last
            .acker
            .as_ref()
            .ok_or_else(|| ack_error("a replayed message cannot be acked".into()))?;
        acker.double_ack().await.map_err(ack_error)?;
        if !self.lock_garbage().is_empty() {
            self.settle_garbage().await?;
        }
        Ok(())
    }

    /// Where this durable consumer stands on the server (for lag metrics and tests).
    pub async fn progress(&self) -> Result<ConsumerProgress, BusError> {
        let info = self
            .consumer
            .get_info()
            .await
            .map_err(|e| BusError::Consumer {
                action: "reading the state of",
                durable: self.durable.clone(),
                source: Box::new(e),
            })?;
        Ok(ConsumerProgress {
            ack_floor: info.ack_floor.stream_sequence,
            ack_pending: info.num_ack_pending as u64,
            not_delivered: info.num_pending,
        })
    }

    /// One pull request. Bounded in time on both sides: the server ends the request at its
    /// expiry (at once when nothing is there, for a no-wait fetch), and the client gives up
    /// [`PULL_GRACE`] after that. A request in flight while the server restarts is never
    /// answered, and a pull without an expiry would then wait forever; the caller gets
    /// [`BusError::Fetch`] instead and should open the consumer again (the messages of a
    /// request given up on stay un-acked until the ack wait).
    async fn pull(&self, max: usize, wait: Option<Duration>) -> Result<Vec<Raw>, BusError> {
        let fetch_error = |source: Source| BusError::Fetch {
            durable: self.durable.clone(),
            source,
        };
        // The server refuses expiries under a millisecond.
        let expires = wait
            .unwrap_or(NO_WAIT_EXPIRY)
            .max(Duration::from_millis(10));
        let request = async {
            let mut batch = match wait {
                None => {
                    self.consumer
                        .fetch()
                        .max_messages(max)
                        .expires(expires)
                        .messages()
                        .await
                }
                Some(_) => {
                    self.consumer
                        .batch()
                        .max_messages(max)
                        .expires(expires)
                        .messages()
                        .await
                }
            }
            .map_err(|e| fetch_error(Box::new(e)))?;
            let mut raw = Vec::new();
            while let Some(message) = batch.next().await {
                raw.push(split(message.map_err(fetch_error)?).map_err(fetch_error)?);
            }
            Ok(raw)
        };
        match tokio::time::timeout(expires + PULL_GRACE, request).await {
            Ok(result) => result,
            Err(_) => Err(fetch_error(
                format!(
                    "no answer to a pull request within {:?} of its expiry",
                    PULL_GRACE
                )
                .into(),
            )),
        }
    }

    /// Terminates held garbage messages that directly follow the consumer's ack floor, and
    /// forgets those a later ack already covered.
    async fn settle_garbage(&self) -> Result<(), BusError> {
        let mut held = std::mem::take(&mut *self.lock_garbage());
        if held.is_empty() {
            return Ok(());
        }
        held.sort_by_key(|(seq, _)| *seq);
        let info = self
            .consumer
            .get_info()
            .await
            .map_err(|e| BusError::Consumer {
                action: "reading the ack floor of",
                durable: self.durable.clone(),
                source: Box::new(e),
            })?;
        let mut floor = info.ack_floor.stream_sequence;
        let mut keep = Vec::new();
        for (seq, acker) in held {
            if seq <= floor {
                continue;
            }
            if seq == floor + 1 {
                match acker.ack_with(AckKind::Term).await {
                    Ok(()) => {
                        tracing::warn!(stream_sequence = seq, "terminated a malformed message");
                        floor = seq;
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(stream_sequence = seq, %error, "terminating a malformed message failed; will retry");
                    }
                }
            }
            keep.push((seq, acker));
        }
        self.lock_garbage().extend(keep);
        Ok(())
    }

    fn lock_garbage(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Acker)>> {
        // The list stays consistent even if a holder panicked.
        self.garbage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A durable consumer's position, as the server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerProgress {
    /// The stream sequence through which every message is acked (or terminated).
    pub ack_floor: u64,
    /// Messages delivered and not yet acked.
    pub ack_pending: u64,
    /// Messages not yet delivered.
    pub not_delivered: u64,
}

/// Every message of the stream in order, up to the last one present when the replay started.
pub struct Replay {
    inner: BoxStream<'static, Result<Delivered, BusError>>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay").finish_non_exhaustive()
    }
}

impl Replay {
    pub(crate) async fn start(
        stream: &jetstream::stream::Stream,
        filter: String,
        last: u64,
    ) -> Result<Self, BusError> {
        if last == 0 {
            return Ok(Self {
                inner: futures::stream::empty().boxed(),
            });
        }
        let replay_error = |source: Source| BusError::Replay { source };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: filter,
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| replay_error(Box::new(e)))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| replay_error(Box::new(e)))?;
        let inner = futures::stream::unfold(Some(messages), move |state| async move {
            let mut messages = state?;
            let message = match messages.next().await? {
                Ok(message) => message,
                Err(e) => return Some((Err(replay_error(Box::new(e))), None)),
            };
            let raw = match split(message) {
                Ok(raw) => raw,
                Err(e) => return Some((Err(replay_error(e)), None)),
            };
            let next = (raw.stream_sequence < last).then_some(messages);
            let item = raw
                .decoded
                .map(|envelope| Delivered {
                    stream_sequence: raw.stream_sequence,
                    envelope,
                    acker: None,
                })
                .map_err(|source| BusError::Decode {
                    stream_sequence: raw.stream_sequence,
                    source,
                });
            Some((item, next))
        })
        .boxed();
        Ok(Self { inner })
    }
}

impl Stream for Replay {
    type Item = Result<Delivered, BusError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}
