//! Settlement and the callbacks that tell of it: after the settle delay the
//! transfer gets its final status, and the final pacs.002 is POSTed to the
//! callback URL, signed in the Standard Webhooks scheme, retried on failure
//! — unless the knobs drawn at acceptance say to lose it, send it twice or
//! follow it with a stale ACSP.

use std::time::Duration;

use axum::http::header;
use paystream_service_kit::signing;
use uuid::Uuid;

use super::Rail;
use super::book::{Callback, Plan, count};

/// Waits before each retry of a delivery; then the rail gives up, and the
/// client learns the outcome by asking.
const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

impl Rail {
    /// Settles (or rejects) a transfer after its delay and delivers the
    /// callbacks its plan asks for. Run on a task of its own per transfer.
    pub(crate) async fn settle(self, uetr: Uuid, plan: Plan) {
        tokio::time::sleep(plan.settle_after).await;
        let finished = match self.finish(uetr) {
            Some(Ok(finished)) => finished,
            Some(Err(error)) => {
                tracing::error!(%uetr, %error, "the final status report could not be written");
                return;
            }
            None => return,
        };
        let counters = &self.inner.counters;
        if plan.lost {
            count(&counters.lost);
            tracing::info!(%uetr, message_id = finished.final_report.message_id, "final callback lost, by the rail's behaviour");
        } else {
            self.deliver(&finished.final_report).await;
            if plan.duplicate {
                count(&counters.duplicated);
                self.deliver(&finished.final_report).await;
            }
        }
        if plan.reorder {
            count(&counters.reordered);
            self.deliver(&finished.stale).await;
        }
    }

    /// POSTs a report to the callback URL, retrying a failed attempt after
    /// 0.5, 1, 2 and 4 s. Without a callback URL there is nothing to do.
    async fn deliver(&self, callback: &Callback) {
        let Some(url) = self.callback_url() else {
            tracing::debug!(
                message_id = callback.message_id,
                "no callback URL: report not sent"
            );
            return;
        };
        let counters = &self.inner.counters;
        let mut retries = RETRY_DELAYS.iter();
        loop {
            let error = match self.post(&url, callback).await {
                Ok(()) => {
                    count(&counters.delivered);
                    return;
                }
                Err(error) => error,
            };
            let Some(delay) = retries.next() else {
                count(&counters.failed);
                tracing::warn!(
                    %url,
                    message_id = callback.message_id,
                    %error,
                    "callback not delivered after {} attempts; the client has to ask",
                    RETRY_DELAYS.len() + 1
                );
                return;
            };
            tracing::debug!(%url, message_id = callback.message_id, %error, ?delay, "callback failed, retrying");
            tokio::time::sleep(*delay).await;
        }
    }

    /// One attempt, signed afresh (the signature covers the time it is sent).
    async fn post(&self, url: &str, callback: &Callback) -> Result<(), String> {
        let mut request = self
            .inner
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/xml")
            .body(callback.body.clone());
        for (name, value) in signing::headers(
            self.inner.secret.as_bytes(),
            &callback.message_id,
            callback.body.as_bytes(),
        ) {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|error| error.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status()))
        }
    }
}
