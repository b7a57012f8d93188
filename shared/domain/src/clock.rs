//! Time is injected: the aggregate never reads the system clock itself, so tests pin it.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// A source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Truncated to microseconds, the precision Postgres keeps: an instant recorded in an event
    /// (e.g. a deadline) then equals the same instant read back from a read model.
    fn now(&self) -> DateTime<Utc> {
        use chrono::DurationRound;
        let now = Utc::now();
        now.duration_trunc(chrono::TimeDelta::microseconds(1))
            .unwrap_or(now)
    }
}

/// A clock that shows a set instant until moved: for tests and replays.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
