//! What can go wrong on the bus; each variant says what was being done.

use uuid::Uuid;

use crate::envelope::EnvelopeError;

/// The error of a NATS operation, boxed so async-nats stays private to this crate.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Source,
    },
    #[error("{action} stream {stream}: {source}")]
    Stream {
        action: &'static str,
        stream: String,
        #[source]
        source: Source,
    },
    #[error("publishing event {event_id}: {source}")]
    Publish {
        event_id: Uuid,
        #[source]
        source: Source,
    },
    #[error("waiting for JetStream to store event {event_id}: {source}")]
    Ack {
        event_id: Uuid,
        #[source]
        source: Source,
    },
    #[error("{action} consumer {durable}: {source}")]
    Consumer {
        action: &'static str,
        durable: String,
        #[source]
        source: Source,
    },
    #[error("fetching messages for consumer {durable}: {source}")]
    Fetch {
        durable: String,
        #[source]
        source: Source,
    },
    #[error("acknowledging message {stream_sequence} of consumer {durable}: {source}")]
    AckMessage {
        durable: String,
        stream_sequence: u64,
        #[source]
        source: Source,
    },
    #[error("replaying the stream: {source}")]
    Replay {
        #[source]
        source: Source,
    },
    #[error("message {stream_sequence} of the stream: {source}")]
    Decode {
        stream_sequence: u64,
        #[source]
        source: EnvelopeError,
    },
}
