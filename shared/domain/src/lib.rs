//! Linkage's domain: the `Appeal` aggregate, its value types, the SLA deadlines and the
//! working-day calendar. Pure: no I/O, no system clock (time comes from [`clock::Clock`]).

pub mod appeal;
pub mod assessment;
pub mod calendar;
pub mod clock;
pub mod rates;
pub mod rules;
pub mod sla;
pub mod values;

pub use appeal::{
    Appeal, AppealCommand, AppealError, AppealEvent, AppealServices, AppealStatus, ErrorKind,
};
