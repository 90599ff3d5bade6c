//! The record a handler is working on, known to everything it calls.
//!
//! The runtime runs each handler attempt inside a task-local scope holding the
//! input's envelope and headers. [`crate::Producer::send`] reads it to stamp
//! outputs: same `correlationId`, `causationId` = the input's `eventId`, and an
//! `eventId` derived from the input's, so a handler that runs twice for one
//! input (a retry, a redelivery after a crash) emits the same ids twice and
//! idempotent consumers downstream can drop the repeat. Handlers write no
//! code for any of this.

use std::collections::HashMap;
use std::sync::Mutex;

use paystream_contract::Envelope;
use uuid::Uuid;

use crate::headers::HeaderList;
use crate::producer::Producer;

tokio::task_local! {
    static CURRENT: RecordScope;
}

#[derive(Debug)]
pub struct RecordScope {
    pub(crate) input: Option<Envelope>,
    pub(crate) headers: HeaderList,
    emitted: Mutex<HashMap<&'static str, u32>>,
    transactional: Option<Producer>,
}

impl RecordScope {
    pub(crate) fn new(input: Option<Envelope>, headers: HeaderList) -> Self {
        Self {
            input,
            headers,
            emitted: Mutex::default(),
            transactional: None,
        }
    }

    /// Sends made while handling this record go through `producer`, whose
    /// transaction is open.
    pub(crate) fn sending_through(mut self, producer: Producer) -> Self {
        self.transactional = Some(producer);
        self
    }

    pub(crate) fn transactional_producer(&self) -> Option<Producer> {
        self.transactional.clone()
    }

    pub(crate) async fn run<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// Runs `f` with the current scope, if the caller is inside a handler.
    pub(crate) fn with_current<R>(f: impl FnOnce(&RecordScope) -> R) -> Option<R> {
        CURRENT.try_with(f).ok()
    }

    /// Stamps `envelope` as the `n`-th event to `topic` caused by the input.
    pub(crate) fn stamp(&self, topic: &'static str, envelope: &mut Envelope) {
        let Some(input) = &self.input else {
            return;
        };
        let n = {
            let mut emitted = self
                .emitted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = emitted.entry(topic).or_default();
            *count += 1;
            *count
        };
        envelope.correlation_id.clone_from(&input.correlation_id);
        envelope.causation_id = input.event_id.to_string();
        envelope.event_id = derived_event_id(input.event_id, topic, n);
    }
}

/// A name-based (v5) UUID in the input event's namespace: the same input,
/// topic and position always give the same id.
pub fn derived_event_id(input: Uuid, topic: &str, n: u32) -> Uuid {
    Uuid::new_v5(&input, format!("{topic}#{n}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_of_one_input_get_stable_distinct_ids() {
        let input = Uuid::now_v7();
        assert_eq!(
            derived_event_id(input, "payment.validated", 1),
            derived_event_id(input, "payment.validated", 1)
        );
        assert_ne!(
            derived_event_id(input, "payment.validated", 1),
            derived_event_id(input, "payment.validated", 2)
        );
        assert_ne!(
            derived_event_id(input, "payment.validated", 1),
            derived_event_id(input, "aml.alert.raised", 1)
        );
    }

    #[test]
    fn stamping_copies_the_correlation_and_names_the_cause() {
        let input = Envelope::first("corr-1", "request-1", "gateway");
        let scope = RecordScope::new(Some(input.clone()), Vec::new());
        let mut first = Envelope::first("other", "other", "validation");
        let mut second = first.clone();
        scope.stamp("payment.validated", &mut first);
        scope.stamp("payment.validated", &mut second);
        assert_eq!(first.correlation_id, "corr-1");
        assert_eq!(first.causation_id, input.event_id.to_string());
        assert_ne!(first.event_id, second.event_id);
    }
}
