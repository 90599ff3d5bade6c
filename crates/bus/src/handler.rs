//! What a service writes: a [`Handler`] that receives each decoded record and
//! a [`Context`]. The handler does its work in `ctx.tx()`, the service's
//! PostgreSQL transaction, and stages the events it decides on with
//! [`Context::emit`]. It never commits, sends or stamps anything itself: the
//! runtime records the input's `eventId`, the effects and the staged events
//! in that one transaction, commits, and only then lets the offset move.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use paystream_contract::{Codec, EncodeError, Envelope, Event, Topic};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::consumer::Record;
use crate::effects::claim as claim_event;
use crate::error::HandlerError;
use crate::headers::{self, HeaderList, SharedHeaders};

/// What a service does with each record. Return `Ok` once the record is
/// dealt with (business rejections included: they are events to emit);
/// return an error to have the runtime retry or dead-letter it. Nothing the
/// handler did in `ctx.tx()` or staged with `ctx.emit` survives an error.
pub trait Handler<I>: Send + Sync + 'static {
    fn handle(
        &self,
        record: Record<I>,
        ctx: &mut Context,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A handler from a closure over the record alone: for consumers without a
/// database, whose effects are their own business (at-least-once).
pub fn from_fn<F>(f: F) -> FromFn<F> {
    FromFn(f)
}

pub struct FromFn<F>(F);

impl<I, F, Fut> Handler<I> for FromFn<F>
where
    I: Send + 'static,
    F: Fn(Record<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    fn handle(
        &self,
        record: Record<I>,
        _ctx: &mut Context,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        (self.0)(record)
    }
}

/// One attempt at one record: its database transaction, if the consumer has
/// a database, and the events staged so far.
///
/// The transaction opens on the first [`Context::tx`] (or when the runtime
/// finishes the attempt), not before the handler runs: a handler that calls
/// a provider first holds no connection while it waits. Opening it claims
/// the input's `eventId` for the group; if another delivery claimed it
/// meanwhile, `tx()` fails and the runtime drops the attempt as a duplicate.
pub struct Context {
    claim: Option<Claim>,
    tx: Option<Transaction<'static, Postgres>>,
    duplicate: bool,
    emitter: Emitter,
}

/// Builds the events caused by one input: each gets the input's
/// `correlationId`, `causationId` = the input's `eventId`, an `eventId`
/// derived from the input's and the event's place among its outputs (so
/// building them again gives the same ids), and trace headers continuing
/// the input's trace. A [`Context`] has one; a service that learns an
/// outcome later (a provider's callback for an event it consumed earlier)
/// makes one from the stored input and writes it with
/// [`Outbox::write`](crate::Outbox::write).
pub struct Emitter {
    input: Envelope,
    input_headers: SharedHeaders,
    producer: String,
    emitted: HashMap<Topic, u32>,
    staged: Vec<Staged>,
}

impl Emitter {
    pub fn new(input: Envelope, input_headers: impl Into<SharedHeaders>, producer: &str) -> Self {
        Self {
            input,
            input_headers: input_headers.into(),
            producer: producer.to_owned(),
            emitted: HashMap::new(),
            staged: Vec::new(),
        }
    }

    /// See [`Context::emit`].
    pub fn emit<E: Event>(&mut self, build: impl FnOnce(Envelope) -> E) -> Uuid {
        let n = self.emitted.entry(E::TOPIC).or_default();
        *n += 1;
        let envelope = Envelope::derived(&self.input, E::TOPIC, *n, self.producer.as_str());
        self.stage(envelope, build)
    }

    /// Like [`Emitter::emit`], with the id derived from `subject` instead
    /// of the event's place among the input's outputs: for one input that
    /// leads to several outputs decided separately (one notification per
    /// channel, each sent on its own), each built by an emitter of its own.
    pub fn emit_for<E: Event>(&mut self, subject: Uuid, build: impl FnOnce(Envelope) -> E) -> Uuid {
        let mut envelope = Envelope::caused_by(&self.input, self.producer.as_str());
        envelope.event_id = Uuid::new_v5(
            &self.input.event_id,
            format!("{}@{subject}", E::TOPIC.name()).as_bytes(),
        );
        self.stage(envelope, build)
    }

    fn stage<E: Event>(&mut self, envelope: Envelope, build: impl FnOnce(Envelope) -> E) -> Uuid {
        let event_id = envelope.event_id;
        let mut event = build(envelope.clone());
        // Whatever `build` did with it, the envelope is the runtime's.
        *event.envelope_mut() = envelope;
        let mut list = headers::identity(event.envelope());
        list.extend(headers::trace_headers(Some(&self.input_headers)));
        self.staged.push(Staged {
            topic: E::TOPIC,
            key: event.partition_key().as_bytes().to_vec(),
            headers: list,
            event: Box::new(event),
        });
        event_id
    }

    pub fn staged(&self) -> usize {
        self.staged.len()
    }

    pub(crate) fn into_staged(self) -> Vec<Staged> {
        self.staged
    }
}

/// What opening the transaction claims: the input's id for the group.
pub(crate) struct Claim {
    pub pool: PgPool,
    pub group: Arc<str>,
    pub topic: Topic,
}

impl Context {
    pub(crate) fn new(
        claim: Option<Claim>,
        input: Envelope,
        input_headers: impl Into<SharedHeaders>,
        producer: &str,
    ) -> Self {
        Self {
            claim,
            tx: None,
            duplicate: false,
            emitter: Emitter::new(input, input_headers, producer),
        }
    }

    /// The service's PostgreSQL transaction for this record. It commits
    /// together with the record's processed `eventId` and its staged events,
    /// or not at all. An error for a consumer that runs without a database.
    pub async fn tx(&mut self) -> Result<&mut PgConnection, HandlerError> {
        if self.tx.is_none() {
            let claim = self.claim.as_ref().ok_or_else(|| {
                HandlerError::permanent(
                    "this consumer runs without a database: it has no transaction",
                )
            })?;
            let mut tx = claim.pool.begin().await?;
            if !claim_event(
                &mut tx,
                &claim.group,
                self.emitter.input.event_id,
                claim.topic.name(),
            )
            .await?
            {
                tx.rollback().await?;
                self.duplicate = true;
                return Err(HandlerError::transient(
                    "another delivery of this event was processed meanwhile",
                ));
            }
            self.tx = Some(tx);
        }
        self.tx
            .as_deref_mut()
            .ok_or_else(|| HandlerError::transient("the transaction could not be opened"))
    }

    /// Whether opening the transaction found the event already processed.
    pub(crate) fn is_duplicate(&self) -> bool {
        self.duplicate
    }

    pub(crate) fn has_database(&self) -> bool {
        self.claim.is_some()
    }

    /// The envelope of the record being handled.
    pub fn input(&self) -> &Envelope {
        &self.emitter.input
    }

    /// Stages an output event. `build` receives its finished envelope: the
    /// input's `correlationId`, `causationId` = the input's `eventId`, and an
    /// `eventId` derived from the input's and the event's place among this
    /// record's outputs, so a re-run emits the same ids. Returns that id.
    pub fn emit<E: Event>(&mut self, build: impl FnOnce(Envelope) -> E) -> Uuid {
        self.emitter.emit(build)
    }

    /// How many events are staged.
    pub fn staged(&self) -> usize {
        self.emitter.staged()
    }

    pub(crate) fn into_parts(self) -> (Option<Transaction<'static, Postgres>>, Vec<Staged>) {
        (self.tx, self.emitter.into_staged())
    }
}

/// An output event waiting for the handler to finish.
pub(crate) struct Staged {
    pub topic: Topic,
    pub key: Vec<u8>,
    pub headers: HeaderList,
    event: Box<dyn Encodable>,
}

impl Staged {
    pub(crate) async fn encode(&self, codec: &Codec) -> Result<Vec<u8>, EncodeError> {
        self.event.encode(codec).await
    }
}

/// An event whose type has been forgotten, that can still be encoded.
trait Encodable: Send + Sync {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Vec<u8>, EncodeError>>;
}

impl<E: Event> Encodable for E {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Vec<u8>, EncodeError>> {
        Box::pin(codec.encode(self))
    }
}

#[cfg(test)]
mod tests {
    use paystream_contract::{PaymentValidated, samples};

    use super::*;

    #[test]
    fn outputs_carry_the_inputs_correlation_and_ids_derived_from_it() {
        let input = samples::payment_submitted();
        let mut first = Context::new(None, input.envelope.clone(), Vec::new(), "validation");
        let a = first.emit(|envelope| input.clone().into_validated(envelope));
        let b = first.emit(|envelope| input.clone().into_validated(envelope));
        let mut again = Context::new(None, input.envelope.clone(), Vec::new(), "validation");
        let a_again = again.emit(|envelope| input.clone().into_validated(envelope));
        assert_ne!(a, b, "two outputs to one topic get two ids");
        assert_eq!(a, a_again, "a re-run emits the same id");
        let (_, staged) = first.into_parts();
        let ids: Vec<&str> = staged
            .iter()
            .map(|s| headers::text(&s.headers, headers::EVENT_ID).unwrap_or_default())
            .collect();
        assert_eq!(ids, [a.to_string(), b.to_string()]);
        assert_eq!(
            headers::text(&staged[0].headers, headers::CAUSATION_ID),
            Some(input.envelope.event_id.to_string().as_str())
        );
        assert_eq!(
            headers::text(&staged[0].headers, headers::CORRELATION_ID),
            Some(input.envelope.correlation_id.as_str())
        );
        assert_eq!(staged[0].topic, <PaymentValidated as Event>::TOPIC);
    }

    #[test]
    fn the_envelope_cannot_be_replaced_by_the_handler() {
        let input = samples::payment_submitted();
        let mut ctx = Context::new(None, input.envelope.clone(), Vec::new(), "validation");
        let id = ctx.emit(|_| input.clone().into_validated(samples::envelope()));
        let (_, staged) = ctx.into_parts();
        assert_eq!(
            headers::text(&staged[0].headers, headers::EVENT_ID),
            Some(id.to_string().as_str())
        );
    }

    #[tokio::test]
    async fn a_consumer_without_a_database_says_so() {
        let mut ctx = Context::new(None, samples::envelope(), Vec::new(), "x");
        assert!(ctx.tx().await.is_err());
    }
}
