//! The Kafka runtime every Paystream service uses; the pipeline's delivery
//! guarantees live here, once.
//!
//! - [`Producer`]: idempotent, `acks=all`, Java-compatible partitioning; returns
//!   after the broker's ack; stamps `correlationId`, `causationId`, `eventId`
//!   and `traceparent` on every record.
//! - [`Consumer`]: one group over one or more topics, decoded into one event
//!   type or [`paystream_contract::AnyEvent`]; manual commits at the lowest
//!   unfinished offset; key-ordered concurrency inside a partition
//!   ([`Ordering`]); transient failures retried on a back-off schedule
//!   blocking only their key ([`RetryPolicy`]); permanent ones (a handler
//!   panic included) dead-lettered to `{topic}.{group}.dlq` with the reason
//!   in headers ([`dead_letter`]); graceful drain on shutdown and revocation.
//! - [`Handler`] and [`Context`]: what a service writes. `ctx.tx()` is the
//!   record's PostgreSQL transaction, `ctx.emit(..)` stages an output whose
//!   envelope the runtime completes.
//! - [`Effects`]: how the runtime makes a record's effects durable: the
//!   processed `eventId`, the handler's writes and its outbox rows in one
//!   transaction, or at-least-once for handlers without a database.
//! - [`Outbox`]: staged events published by a relay that deletes a row only
//!   after the broker's ack, keeps each key's order with any number of
//!   replicas, and parks rows the broker refuses for good.
//! - [`MIGRATOR`]: the runtime's tables, as sqlx migrations.
//! - [`replay`]: dead letters sent back to their topic once the cause is fixed.
//! - [`TransactionalConsumer`]: consume-transform-produce in Kafka
//!   transactions, for clusters that have them.
//! - [`metrics`]: Prometheus counters, latency, in-flight, lag, heartbeat.

pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod effects;
pub mod error;
pub mod handler;
pub mod headers;
pub mod metrics;
pub mod outbox;
pub mod pool;
pub mod producer;
pub mod replay;
pub mod retry;
pub mod scheduler;
pub mod transactional;

pub use config::{ConsumerArgs, KafkaConfig, RegistryConfig};
pub use consumer::{Consumer, ConsumerSettings, Record, RecordMeta};
pub use dead_letter::{DeadLetter, DeadLetterSink};
pub use effects::Effects;
pub use error::{BusError, HandlerError, ProduceError};
pub use handler::{Context, Emitter, Handler};
pub use outbox::{Outbox, OutboxColumns};
pub use producer::{Delivery, Producer};
pub use replay::{ReplayMode, ReplayOptions, replay};
pub use retry::RetryPolicy;
pub use scheduler::Ordering;
pub use transactional::TransactionalConsumer;

/// The runtime's own tables (processed event ids, the outbox and its parked
/// rows), to run beside a service's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
