//! Linkage's message bus: the only crate that imports async-nats.

pub mod envelope;

pub use envelope::{Envelope, EnvelopeError, subject};
