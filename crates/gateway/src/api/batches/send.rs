//! Sending a batch's payments, all at once, and answering for each item.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use paystream_contract::{Event, PaymentSubmitted};
use tracing::Instrument;
use uuid::Uuid;

use super::answer::{BatchAnswer, ItemAnswer, NOT_SENT, Outcome, UNKNOWN, status_url};
use super::verdicts::{Item, Payment, Verdict};
use crate::api::{App, NotAcked, send_within};
use crate::store::AckMark;

/// Sends every payment not yet acked, all at once, marks the acked ones in
/// one statement, and answers for each item.
pub(super) async fn answer(app: &App, batch_id: Uuid, mut items: Vec<Item>) -> Response {
    let mut sends = Vec::new();
    for (at, item) in items.iter_mut().enumerate() {
        if let Verdict::Payment(payment) = &mut item.verdict
            && let Some(event) = payment.unsent.take()
        {
            sends.push((at, event));
        }
    }
    let mut sent: Vec<Option<Result<(), NotAcked>>> = items.iter().map(|_| None).collect();
    // One schema-id lookup before fanning out (the codec shares it with every
    // send): if the registry cannot answer it, no event can be encoded, so
    // every item is reported NOT_SENT at once rather than each send waiting
    // out the ack timeout and coming back UNKNOWN.
    if !sends.is_empty() {
        let codec = app.producer.codec();
        // Bounded like a send: a registry that hangs must not hang the batch.
        let lookup =
            tokio::time::timeout(app.ack_timeout, codec.writer_id(PaymentSubmitted::TOPIC));
        let failed = match lookup.await {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some("the schema registry did not answer in time".to_owned()),
        };
        if let Some(reason) = failed {
            tracing::warn!(%reason, "no schema id for payment.submitted: the batch's payments are not sent");
            for (at, _) in sends.drain(..) {
                sent[at] = Some(Err(NotAcked::NotSent(reason.clone())));
            }
        }
    }
    let items_ref = &items;
    let results = join_all(
        sends
            .into_iter()
            .map(|(at, event)| async move { (at, deliver(app, &items_ref[at], event).await) }),
    )
    .await;
    for (at, result) in results {
        sent[at] = Some(result);
    }

    let mut marks = Vec::new();
    let mut answers = Vec::with_capacity(items.len());
    for (item, sent) in items.into_iter().zip(sent) {
        let outcome = match (item.verdict, sent) {
            (Verdict::Refused(refusal), _) => Outcome::Refused {
                refusal: refusal.reason,
                errors: refusal.errors,
            },
            (Verdict::Payment(payment), None) => accepted(payment),
            (Verdict::Payment(payment), Some(Ok(()))) => {
                marks.push(AckMark {
                    payment_id: payment.payment_id,
                    correlation_id: payment.correlation_id.clone(),
                });
                accepted(payment)
            }
            (Verdict::Payment(payment), Some(Err(NotAcked::NotSent(_)))) => Outcome::NotSent {
                payment_id: payment.payment_id,
                correlation_id: payment.correlation_id,
                detail: NOT_SENT,
            },
            (Verdict::Payment(payment), Some(Err(NotAcked::Unknown(_)))) => Outcome::Unknown {
                payment_id: payment.payment_id,
                correlation_id: payment.correlation_id,
                detail: UNKNOWN,
            },
        };
        answers.push(ItemAnswer {
            index: item.index,
            idempotency_key: item.key,
            outcome,
        });
    }
    // Acked is acked whatever the database says now: a lost mark only means a
    // repeat sends the same events again, which downstream drops.
    if !marks.is_empty()
        && let Err(error) = app.store.acked_all(&marks).await
    {
        tracing::error!(%error, "batch payments acked but their idempotency records not updated");
    }
    let answer = BatchAnswer::new(batch_id, answers);
    tracing::info!(
        accepted = answer.accepted,
        refused = answer.refused,
        not_sent = answer.not_sent,
        unknown = answer.unknown,
        "batch answered"
    );
    let retry = answer.not_sent + answer.unknown > 0;
    let mut response = (StatusCode::OK, axum::Json(answer)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/payment-batches/{batch_id}")) {
        headers.insert(header::LOCATION, location);
    }
    if retry {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
    }
    response
}

fn accepted(payment: Payment) -> Outcome {
    Outcome::Accepted {
        payment_id: payment.payment_id,
        status_url: status_url(payment.payment_id),
        correlation_id: payment.correlation_id,
    }
}

/// One item's send, in a span of its own carrying its correlation id.
async fn deliver(app: &App, item: &Item, event: Box<PaymentSubmitted>) -> Result<(), NotAcked> {
    let span = tracing::info_span!(
        "payment",
        correlation_id = event.envelope.correlation_id.as_str(),
        payment_id = %event.payment_id,
        batch_item = item.index,
    );
    let result = send_within(app, *event).instrument(span.clone()).await;
    match &result {
        Ok(()) => {}
        Err(NotAcked::NotSent(reason)) => {
            tracing::warn!(parent: &span, %reason, "payment.submitted of a batch item not sent");
        }
        Err(NotAcked::Unknown(reason)) => {
            tracing::warn!(parent: &span, %reason, "payment.submitted of a batch item not acknowledged; it may be recorded");
        }
    }
    result
}
