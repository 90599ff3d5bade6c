//! The Kafka runtime every Paystream service uses; the pipeline's delivery
//! guarantees live here, once.
//!
//! - [`Producer`]: idempotent, `acks=all`, Java-compatible partitioning; returns
//!   after the broker's ack; stamps `correlationId`, `causationId`, `eventId`
//!   and `traceparent` on every record.
//! - [`Consumer`]: manual commits at the lowest unfinished offset; key-ordered
//!   concurrency inside a partition ([`Ordering`]); transient failures retried
//!   on a back-off schedule blocking only their key ([`RetryPolicy`]);
//!   permanent ones dead-lettered to `{topic}.{group}.dlq` with the reason in
//!   headers ([`dead_letter`]); graceful drain on shutdown and revocation.
//! - [`idempotent`]: processed event ids in the service's PostgreSQL, in the
//!   same transaction as its effects.
//! - [`Outbox`]: events staged in the service's PostgreSQL transaction and
//!   published by a relay that deletes only after the broker's ack.
//! - [`replay`]: dead letters sent back to their topic once the cause is fixed.
//! - [`TransactionalConsumer`]: consume-transform-produce in Kafka
//!   transactions, for clusters that have them.
//! - [`Readiness`]: broker, registry and database checks for `/readyz`.
//! - [`metrics`]: Prometheus counters, latency, in-flight, lag, heartbeat.

pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod error;
pub mod headers;
pub mod idempotent;
pub mod metrics;
pub mod outbox;
pub mod producer;
pub mod readiness;
pub mod replay;
pub mod retry;
pub mod scheduler;
pub mod scope;
pub mod transactional;

pub use config::{ConsumerArgs, KafkaConfig, RegistryConfig};
pub use consumer::{Consumer, ConsumerSettings, Handler, Record, RecordMeta};
pub use dead_letter::{DeadLetter, DeadLetterSink};
pub use error::{BusError, HandlerError, ProduceError, ServiceError};
pub use idempotent::{Idempotent, TransactionalHandler};
pub use outbox::Outbox;
pub use producer::{Delivery, Producer};
pub use readiness::Readiness;
pub use replay::{ReplayMode, ReplayOptions, replay};
pub use retry::RetryPolicy;
pub use scheduler::Ordering;
pub use transactional::TransactionalConsumer;
