//! Keeps the payment status read model up to date from the pipeline's topics.
//! Updates are naturally idempotent (a status only moves forward), so plain
//! at-least-once consumption is enough.

use std::sync::Arc;

use paystream_bus::{
    BusError, Consumer, ConsumerArgs, DeadLetterSink, HandlerError, KafkaConfig, Record,
};
use paystream_contract::{Codec, Event, PaymentRejected, PaymentValidated};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::{Status, Store};

pub const GROUP: &str = "gateway-status";

/// The consumers of the status read model, ready to run beside the API.
pub struct StatusFeed {
    pub kafka: KafkaConfig,
    pub consumer: ConsumerArgs,
    pub codec: Codec,
    pub dead_letters: Arc<dyn DeadLetterSink>,
    pub store: Store,
}

/// What an event says about its payment's status.
trait StatusEvent: Event {
    fn payment_id(&self) -> Uuid;
    fn status(&self) -> (Status, Option<(&str, &str)>);
}

impl StatusEvent for PaymentValidated {
    fn payment_id(&self) -> Uuid {
        self.payment_id
    }
    fn status(&self) -> (Status, Option<(&str, &str)>) {
        (Status::Validated, None)
    }
}

impl StatusEvent for PaymentRejected {
    fn payment_id(&self) -> Uuid {
        self.payment_id
    }
    fn status(&self) -> (Status, Option<(&str, &str)>) {
        (
            Status::Rejected,
            Some((&self.reason_code, &self.reason_text)),
        )
    }
}

impl StatusFeed {
    async fn follow<E: StatusEvent>(&self, shutdown: CancellationToken) -> Result<(), BusError> {
        let store = self.store.clone();
        Consumer::<E>::new(
            self.kafka.clone(),
            self.consumer.settings(GROUP),
            self.codec.clone(),
            self.dead_letters.clone(),
        )
        .run(
            move |record: Record<E>| {
                let store = store.clone();
                async move {
                    let event = record.event;
                    let (status, reason) = event.status();
                    store
                        .record_status(
                            event.payment_id(),
                            &event.envelope().correlation_id,
                            status,
                            reason,
                        )
                        .await
                        .map_err(HandlerError::from)
                }
            },
            shutdown,
        )
        .await
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BusError> {
        let (validated, rejected) = tokio::join!(
            self.follow::<PaymentValidated>(shutdown.clone()),
            self.follow::<PaymentRejected>(shutdown),
        );
        validated.and(rejected)
    }
}
