//! Paystream's event contract.
//!
//! - [`topic`]: topic names in one place, and each topic's Avro schema from
//!   `schemas/` (compiled in).
//! - [`events`]: the Rust type of every event, each carrying an [`Envelope`].
//! - [`inbound`]: what consumers decode into: one event type, or [`AnyEvent`]
//!   for a group that reads several topics.
//!   Money is always `amount_minor: i64` plus an ISO 4217 `currency`.
//! - [`codec`]: the Confluent wire format through a schema registry, subject
//!   `{topic}-value`, with typed errors that say whether a failure is worth retrying.
//! - [`vocabulary`]: reason codes (ISO 20022 where one exists), decisions and
//!   payment statuses as enums.
//! - [`money`]: decimal strings to exact minor units.
//! - [`samples`]: realistic events for tests and demos.

pub mod codec;
pub mod events;
pub mod inbound;
pub mod money;
pub mod samples;
pub mod topic;
pub mod vocabulary;

pub use codec::{Codec, DecodeError, EncodeError, Registration, RegistryClient, RegistryError};
pub use events::*;
pub use inbound::{AnyEvent, Inbound};
pub use topic::{Topic, dead_letter_topic};
pub use vocabulary::{Decision, PaymentStatus, ReasonCode};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ContractError {
    #[error("the compiled-in schema of {topic} is invalid: {reason}")]
    InvalidSchema { topic: &'static str, reason: String },
}
