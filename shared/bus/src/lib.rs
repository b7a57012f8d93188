//! Linkage's message bus: the only crate that imports async-nats.
//!
//! One JetStream stream per deployment prefix holds every event envelope, on
//! `<prefix>.events.<aggregate_type>.<event_type>`. The relay publishes with `Nats-Msg-Id` = event
//! id, so JetStream drops an event republished inside the duplicate window; readers use durable
//! pull consumers that ack everything up to a point ([`EventConsumer`]) or an ordered replay of the
//! whole stream ([`Bus::replay`]).

mod consumer;
pub mod envelope;
mod error;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};

pub use consumer::{ConsumerProgress, Delivered, EventConsumer, Replay};
pub use envelope::{ENVELOPE_VERSION, Envelope, EnvelopeError, subject};
pub use error::BusError;

/// The header carrying the correlation id of the request that caused an event.
pub const CORRELATION_ID_HEADER: &str = "Linkage-Correlation-Id";

/// How many publishes may await their ack at once; JetStream's client holds one permit per
/// un-awaited ack (5 000 by default) and would otherwise wait forever for our own permits.
const PUBLISH_WINDOW: usize = 2_048;
/// Bounds every JetStream API request and publish ack.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// Initial connection attempts before [`Bus::connect`] gives up (reconnects after that are
/// unbounded: a running service rides out a NATS restart).
const CONNECT_ATTEMPTS: u32 = 10;
/// Un-acked messages a durable consumer may have outstanding: room for several batches.
const MAX_ACK_PENDING: i64 = 20_000;
/// How long a delivered message may stay un-acked before JetStream redelivers it.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// Where the bus is and how its stream is shaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// `nats://host:port` (several servers separated by commas).
    pub url: String,
    /// Subject prefix of this deployment (`linkage`); also names the stream.
    pub prefix: String,
    /// Stream replicas (1 on a single server, 3 in a cluster).
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a republished event.
    pub duplicate_window: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            prefix: "linkage".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl BusConfig {
    /// Stream name derived from the prefix: uppercase, non-alphanumerics → '_', + "_EVENTS"
    /// (prefix "linkage" → "LINKAGE_EVENTS").
    pub fn stream_name(&self) -> String {
        let mut name: String = self
            .prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        name.push_str("_EVENTS");
        name
    }

    /// `<prefix>.events.>`: every event of this deployment.
    pub fn events_filter(&self) -> String {
        format!("{}.events.>", self.prefix)
    }
}

/// A connection to NATS and the deployment's event stream. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    config: Arc<BusConfig>,
    stream_name: Arc<str>,
    js: jetstream::Context,
    /// Counts the client's (re)connections to a server; see [`Bus::connection_epoch`].
    connections: Arc<AtomicU64>,
}

/// The end of the stream as the server holds it now: see [`Bus::tail`].
#[derive(Debug)]
pub struct StreamTail {
    /// The stream's last sequence: what the next message must follow (a publish expecting it).
    /// It can be past `last`'s sequence when the server lost the messages after `last` but
    /// kept counting.
    pub last_sequence: u64,
    /// The last message the stream still holds, with its sequence, if any; `Err` when it is
    /// not an envelope.
    pub last: Option<(u64, Result<Envelope, EnvelopeError>)>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("url", &self.config.url)
            .field("prefix", &self.config.prefix)
            .field("stream", &self.stream_name)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Connects (retrying the first connection a bounded number of times) and creates or updates
    /// the stream: subjects `<prefix>.events.>`, file storage, `replicas`, `duplicate_window`,
    /// limits retention (messages stay whether or not consumers acked them).
    #[tracing::instrument(skip_all, fields(url = %config.url, prefix = %config.prefix))]
    pub async fn connect(config: BusConfig) -> Result<Bus, BusError> {
        let connections = Arc::new(AtomicU64::new(0));
        let client = connect_client(&config, connections.clone()).await?;
        let js = jetstream::ContextBuilder::new()
            .timeout(API_TIMEOUT)
            .build(client);
        let bus = Bus {
            stream_name: config.stream_name().into(),
            config: Arc::new(config),
            js,
            connections,
        };
        bus.ensure_stream().await?;
        Ok(bus)
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// Changes whenever the client connects to a server again (after a disconnection, e.g. a
    /// NATS restart). A publisher that must know what the stream holds (the relay) looks at the
    /// stream again when this moved: the server it talks to now may have lost messages.
    pub fn connection_epoch(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// The name of the JetStream stream holding this deployment's events.
    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    async fn ensure_stream(&self) -> Result<(), BusError> {
        let config = stream::Config {
            name: self.stream_name.to_string(),
            subjects: vec![self.config.events_filter()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            num_replicas: self.config.replicas,
            duplicate_window: self.config.duplicate_window,
            ..Default::default()
        };
        self.js
            .create_or_update_stream(config)
            .await
            .map_err(|e| BusError::Stream {
                action: "creating or updating",
                stream: self.stream_name.to_string(),
                source: Box::new(e),
            })?;
        Ok(())
    }

    /// Publishes `envelopes` in order to `<prefix>.events.<aggregate_type>.<event_type>`, with
    /// `Nats-Msg-Id` = event id and the correlation id header. Pipelined: the publishes are sent
    /// first and the acks awaited after. Returns the stream sequence of each envelope; an event
    /// JetStream already had (a duplicate inside the window) returns the original's sequence.
    #[tracing::instrument(skip_all, fields(count = envelopes.len()))]
    pub async fn publish(&self, envelopes: &[Envelope]) -> Result<Vec<u64>, BusError> {
        self.publish_inner(envelopes, None).await
    }

    /// [`Bus::publish`], each message appended only right after the one before it: the first
    /// only if the stream's last sequence is `last_sequence`, the next only after `last_sequence
    /// + 1`, and so on (JetStream's `Nats-Expected-Last-Sequence`). If the server lost messages
    /// (a crash before its fsync) or anything else appended meanwhile, the first message that
    /// does not follow is refused with [`BusError::Ack`] ("wrong last sequence"), and so is
    /// every later one: nothing lands after a gap. A duplicate of a message the stream still
    /// holds is acked with the original's sequence without appending, so the messages after it
    /// are refused too.
    #[tracing::instrument(skip_all, fields(count = envelopes.len(), last_sequence))]
    pub async fn publish_after(
        &self,
        last_sequence: u64,
        envelopes: &[Envelope],
    ) -> Result<Vec<u64>, BusError> {
        self.publish_inner(envelopes, Some(last_sequence)).await
    }

    async fn publish_inner(
        &self,
        envelopes: &[Envelope],
        expected_last: Option<u64>,
    ) -> Result<Vec<u64>, BusError> {
        let mut sequences = Vec::with_capacity(envelopes.len());
        let mut pending = VecDeque::with_capacity(envelopes.len().min(PUBLISH_WINDOW));
        for (i, envelope) in envelopes.iter().enumerate() {
            if pending.len() >= PUBLISH_WINDOW
                && let Some((event_id, ack)) = pending.pop_front()
            {
                sequences.push(await_ack(event_id, ack).await?);
            }
            let subject = subject(
                &self.config.prefix,
                &envelope.aggregate_type,
                &envelope.event_type,
            );
            let mut message = jetstream::message::PublishMessage::build()
                .payload(envelope.encode().into())
                .message_id(envelope.event_id.to_string());
            if let Some(correlation_id) = envelope.correlation_id() {
                message = message.header(CORRELATION_ID_HEADER, correlation_id);
            }
            if let Some(last) = expected_last {
                message = message.expected_last_sequence(last + i as u64);
            }
            let ack =
                self.js
                    .send_publish(subject, message)
                    .await
                    .map_err(|e| BusError::Publish {
                        event_id: envelope.event_id,
                        source: Box::new(e),
                    })?;
            pending.push_back((envelope.event_id, ack));
        }
        while let Some((event_id, ack)) = pending.pop_front() {
            sequences.push(await_ack(event_id, ack).await?);
        }
        Ok(sequences)
    }

    /// A durable pull consumer named `durable` on every event, from the first message: acking a
    /// message acks everything before it. Created if missing, reused (as it is) if present.
    #[tracing::instrument(skip(self))]
    pub async fn consumer(&self, durable: &str) -> Result<EventConsumer, BusError> {
        let stream = self.stream().await?;
        let config = self.consumer_config(durable, jetstream::consumer::DeliverPolicy::All);
        let consumer = stream
            .get_or_create_consumer(durable, config)
            .await
            .map_err(|e| BusError::Consumer {
                action: "creating or binding",
                durable: durable.to_owned(),
                source: Box::new(e),
            })?;
        Ok(EventConsumer::new(durable.to_owned(), consumer))
    }

    /// The durable consumer `durable`, created anew so that it delivers from stream sequence
    /// `start` on, with nothing pending. A reader that keeps its own checkpoint uses this on
    /// start and after a gap: messages a killed predecessor left un-acked are then delivered at
    /// once, in order, instead of after the ack wait and behind newer ones.
    pub async fn consumer_from(
        &self,
        durable: &str,
        start: u64,
    ) -> Result<EventConsumer, BusError> {
        self.delete_consumer(durable).await?;
        let stream = self.stream().await?;
        let config = self.consumer_config(
            durable,
            jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start.max(1),
            },
        );
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| BusError::Consumer {
                action: "creating",
                durable: durable.to_owned(),
                source: Box::new(e),
            })?;
        Ok(EventConsumer::new(durable.to_owned(), consumer))
    }

    /// A durable pull consumer on every event, acking cumulatively.
    fn consumer_config(
        &self,
        durable: &str,
        deliver_policy: jetstream::consumer::DeliverPolicy,
    ) -> pull::Config {
        pull::Config {
            durable_name: Some(durable.to_owned()),
            deliver_policy,
            ack_policy: jetstream::consumer::AckPolicy::All,
            ack_wait: ACK_WAIT,
            max_ack_pending: MAX_ACK_PENDING,
            filter_subject: self.config.events_filter(),
            ..Default::default()
        }
    }

    /// Removes the durable consumer `durable` (its progress is lost). Missing is fine.
    pub async fn delete_consumer(&self, durable: &str) -> Result<(), BusError> {
        let stream = self.stream().await?;
        match stream.delete_consumer(durable).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::stream::ConsumerErrorKind::JetStream(js)
                        if js.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(BusError::Consumer {
                action: "deleting",
                durable: durable.to_owned(),
                source: Box::new(e),
            }),
        }
    }

    /// The sequence of the last message in the stream (0 when it is empty).
    pub async fn last_sequence(&self) -> Result<u64, BusError> {
        Ok(self.stream().await?.cached_info().state.last_sequence)
    }

    /// The last message of the stream, if any: what was published last, for a publisher that
    /// must find out where it stopped. `Err(BusError::Decode)` if it is not an envelope.
    pub async fn last_published(&self) -> Result<Option<Envelope>, BusError> {
        let stream = self.stream().await?;
        let last = stream.cached_info().state.last_sequence;
        if last == 0 {
            return Ok(None);
        }
        let message = stream
            .get_raw_message(last)
            .await
            .map_err(|e| BusError::Stream {
                action: "reading the last message of",
                stream: self.stream_name.to_string(),
                source: Box::new(e),
            })?;
        Envelope::decode(&message.payload)
            .map(Some)
            .map_err(|source| BusError::Decode {
                stream_sequence: last,
                source,
            })
    }

    /// The stream's last sequence and the last message it still holds. Walks back over
    /// sequences whose messages are gone (deleted, or lost by a server that kept counting past
    /// them).
    pub async fn tail(&self) -> Result<StreamTail, BusError> {
        let stream = self.stream().await?;
        let info = &stream.cached_info().state;
        let last_sequence = info.last_sequence;
        if info.messages == 0 {
            return Ok(StreamTail {
                last_sequence,
                last: None,
            });
        }
        let mut sequence = last_sequence;
        while sequence >= info.first_sequence.max(1) {
            match stream.get_raw_message(sequence).await {
                Ok(message) => {
                    return Ok(StreamTail {
                        last_sequence,
                        last: Some((sequence, Envelope::decode(&message.payload))),
                    });
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        jetstream::stream::LastRawMessageErrorKind::NoMessageFound
                    ) =>
                {
                    sequence -= 1;
                }
                Err(e) => {
                    return Err(BusError::Stream {
                        action: "reading the last messages of",
                        stream: self.stream_name.to_string(),
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(StreamTail {
            last_sequence,
            last: None,
        })
    }

    /// Removes the stream and everything in it (for tests).
    pub async fn delete_stream(&self) -> Result<(), BusError> {
        self.js
            .delete_stream(&*self.stream_name)
            .await
            .map_err(|e| BusError::Stream {
                action: "deleting",
                stream: self.stream_name.to_string(),
                source: Box::new(e),
            })?;
        Ok(())
    }

    /// Every message of the stream in stream order, from the first to the last one present when
    /// this is called, through an ephemeral ordered consumer (for audit-style readers and
    /// tests). A message that is not an envelope is an `Err(BusError::Decode)` item; the replay
    /// goes on after it.
    pub async fn replay(&self) -> Result<Replay, BusError> {
        let stream = self.stream().await?;
        let last = stream.cached_info().state.last_sequence;
        Replay::start(&stream, self.config.events_filter(), last).await
    }

    async fn stream(&self) -> Result<jetstream::stream::Stream, BusError> {
        self.js
            .get_stream(&*self.stream_name)
            .await
            .map_err(|e| BusError::Stream {
                action: "looking up",
                stream: self.stream_name.to_string(),
                source: Box::new(e),
            })
    }
}

async fn await_ack(
    event_id: uuid::Uuid,
    ack: jetstream::context::PublishAckFuture,
) -> Result<u64, BusError> {
    // A duplicate (ack.duplicate) is success: JetStream already has this event.
    ack.await
        .map(|ack| ack.sequence)
        .map_err(|e| BusError::Ack {
            event_id,
            source: Box::new(e),
        })
}

async fn connect_client(
    config: &BusConfig,
    connections: Arc<AtomicU64>,
) -> Result<async_nats::Client, BusError> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        let options = async_nats::ConnectOptions::new()
            .name(format!("linkage {}", config.prefix))
            .connection_timeout(Duration::from_secs(5))
            // After the first connection, reconnect for as long as the process runs.
            .max_reconnects(None)
            .event_callback({
                let connections = connections.clone();
                move |event| {
                    let connections = connections.clone();
                    async move {
                        match event {
                            async_nats::Event::Connected => {
                                connections.fetch_add(1, Ordering::SeqCst);
                                tracing::info!("connected to NATS");
                            }
                            async_nats::Event::Disconnected => {
                                tracing::warn!("disconnected from NATS")
                            }
                            other => tracing::warn!(event = %other, "NATS connection event"),
                        }
                    }
                }
            });
        match options.connect(config.url.as_str()).await {
            Ok(client) => return Ok(client),
            Err(e) if attempt < CONNECT_ATTEMPTS => {
                tracing::warn!(attempt, error = %e, "connecting to NATS failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
                attempt += 1;
            }
            Err(e) => {
                return Err(BusError::Connect {
                    url: config.url.clone(),
                    source: Box::new(e),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_stream_and_filter_from_the_prefix() {
        let config = BusConfig {
            prefix: "linkage".into(),
            ..Default::default()
        };
        assert_eq!(config.stream_name(), "LINKAGE_EVENTS");
        assert_eq!(config.events_filter(), "linkage.events.>");
        let config = BusConfig {
            prefix: "t-1.a".into(),
            ..Default::default()
        };
        assert_eq!(config.stream_name(), "T_1_A_EVENTS");
    }
}
