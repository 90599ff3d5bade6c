//! What the rail saw: one entry per UETR with the transfer, the
//! acknowledgement it gave, the outcome it decided and the final status,
//! and the counters the report adds up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use paystream_iso20022::{CreditTransfer, Iso20022Error, StatusReport, TxStatus};
use rand::Rng;
use rand::seq::IndexedRandom;
use uuid::Uuid;

use super::{Rail, ReasonCode};

#[derive(Debug)]
pub(crate) struct Entry {
    transfer: CreditTransfer,
    /// The rail's number for the transfer, in its message ids and reference.
    number: u64,
    accepted_at: DateTime<Utc>,
    /// ACSP or PDNG, as acknowledged.
    acknowledged: TxStatus,
    /// The acknowledgement as sent, for a repeat to get the same bytes.
    ack: String,
    pub(super) clearing_reference: String,
    outcome: Outcome,
    pub(super) final_report: Option<StatusReport>,
    pub(super) submissions: u64,
    pub(super) settlements: u64,
}

/// Decided at acceptance, told at settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Settle,
    Reject(ReasonCode),
}

impl Entry {
    pub(super) fn status(&self) -> TxStatus {
        self.final_report
            .as_ref()
            .map_or(self.acknowledged, |report| report.status)
    }

    /// A report on this transfer in `status`, without reason or date.
    fn report(
        &self,
        message_id: String,
        created_at: DateTime<Utc>,
        status: TxStatus,
    ) -> StatusReport {
        StatusReport {
            message_id,
            created_at,
            original_message_id: self.transfer.message_id.clone(),
            original_end_to_end_id: self.transfer.end_to_end_id.clone(),
            uetr: self.transfer.uetr,
            status,
            reason: None,
            reason_text: None,
            settlement_date: None,
            clearing_reference: Some(self.clearing_reference.clone()),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub conflicts: AtomicU64,
    pub malformed: AtomicU64,
    pub status_queries: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub lost: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
}

/// Adds one to a counter and returns the new count.
pub(crate) fn count(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}

/// What the rail does with a transfer besides settling it, drawn at
/// acceptance from the behaviour then in force.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub settle_after: Duration,
    /// The HTTP answer waits this long.
    pub late_by: Option<Duration>,
    pub duplicate: bool,
    pub reorder: bool,
    pub lost: bool,
}

pub(crate) enum Submission {
    New {
        ack: String,
        plan: Plan,
    },
    /// The same document again: the first acknowledgement, as sent.
    Repeat {
        ack: String,
    },
    Conflict,
}

/// A report ready to send: its id (the `webhook-id`) and its XML.
#[derive(Debug, Clone)]
pub(crate) struct Callback {
    pub message_id: String,
    pub body: String,
}

impl Callback {
    fn of(report: &StatusReport) -> Result<Self, Iso20022Error> {
        Ok(Self {
            message_id: report.message_id.clone(),
            body: report.to_xml()?,
        })
    }
}

/// The final report and the stale ACSP a reordering rail sends after it.
pub(crate) struct Finished {
    pub final_report: Callback,
    pub stale: Callback,
}

/// Whether a draw lands in `share`; never panics, whatever the share.
fn hits(rng: &mut impl Rng, share: f64) -> bool {
    rng.random::<f64>() < share
}

impl Rail {
    /// Records a transfer, or recognises it.
    pub(crate) fn submit(&self, transfer: CreditTransfer) -> Result<Submission, Iso20022Error> {
        let behaviour = self.behaviour();
        let closed = self.is_closed(&transfer.creditor.account);
        let (outcome, acknowledged, plan) = {
            let mut rng = rand::rng();
            let outcome = if closed {
                Outcome::Reject(ReasonCode::ClosedAccountNumber)
            } else if hits(&mut rng, behaviour.rejections) {
                let reason = behaviour.reasons.choose(&mut rng).copied();
                Outcome::Reject(reason.unwrap_or(ReasonCode::NotSpecifiedReasonAgentGenerated))
            } else {
                Outcome::Settle
            };
            let acknowledged = if hits(&mut rng, behaviour.pending) {
                TxStatus::Pending
            } else {
                TxStatus::AcceptedSettlementInProcess
            };
            let plan = Plan {
                settle_after: behaviour.settle.sample(&mut rng),
                late_by: hits(&mut rng, behaviour.late).then_some(behaviour.late_by),
                duplicate: hits(&mut rng, behaviour.duplicates),
                reorder: hits(&mut rng, behaviour.reorder),
                lost: hits(&mut rng, behaviour.lost),
            };
            (outcome, acknowledged, plan)
        };

        let mut book = self.book();
        if let Some(entry) = book.get_mut(&transfer.uetr) {
            if entry.transfer == transfer {
                entry.submissions += 1;
                return Ok(Submission::Repeat {
                    ack: entry.ack.clone(),
                });
            }
            count(&self.inner.counters.conflicts);
            return Ok(Submission::Conflict);
        }
        let number = count(&self.inner.sequence);
        let accepted_at = Utc::now();
        let mut entry = Entry {
            number,
            accepted_at,
            acknowledged,
            ack: String::new(),
            clearing_reference: format!("RTGS-{}-{number:06}", accepted_at.format("%Y%m%d")),
            outcome,
            final_report: None,
            submissions: 1,
            settlements: 0,
            transfer,
        };
        entry.ack = entry
            .report(self.message_id(number, "ACK"), accepted_at, acknowledged)
            .to_xml()?;
        let ack = entry.ack.clone();
        book.insert(entry.transfer.uetr, entry);
        Ok(Submission::New { ack, plan })
    }

    /// Sets a transfer's final status, once; `None` if it has one already
    /// (never: each transfer has one settlement task).
    pub(crate) fn finish(&self, uetr: Uuid) -> Option<Result<Finished, Iso20022Error>> {
        let mut book = self.book();
        let entry = book.get_mut(&uetr)?;
        if entry.final_report.is_some() {
            tracing::error!(%uetr, "a settled transfer was to be settled again");
            return None;
        }
        let now = Utc::now();
        let report = match entry.outcome {
            Outcome::Settle => {
                let suffix = TxStatus::AcceptedSettlementCompleted.code();
                let mut report = entry.report(
                    self.message_id(entry.number, suffix),
                    now,
                    TxStatus::AcceptedSettlementCompleted,
                );
                report.settlement_date = Some(now.date_naive());
                report
            }
            Outcome::Reject(reason) => {
                let suffix = TxStatus::Rejected.code();
                let mut report = entry.report(
                    self.message_id(entry.number, suffix),
                    now,
                    TxStatus::Rejected,
                );
                report.reason = Some(reason.code().to_owned());
                report.reason_text = Some(reason.text().to_owned());
                report
            }
        };
        entry.settlements += 1;
        entry.final_report = Some(report.clone());
        let stale = entry.report(
            self.message_id(entry.number, TxStatus::AcceptedSettlementInProcess.code()),
            entry.accepted_at,
            TxStatus::AcceptedSettlementInProcess,
        );
        drop(book);
        Some(Callback::of(&report).and_then(|final_report| {
            Ok(Finished {
                final_report,
                stale: Callback::of(&stale)?,
            })
        }))
    }

    /// The current status of a transfer as a fresh pacs.002, numbered by
    /// the status query it answers; `None` for a UETR never accepted.
    pub(crate) fn status(&self, uetr: Uuid, query: u64) -> Option<Result<String, Iso20022Error>> {
        let book = self.book();
        let entry = book.get(&uetr)?;
        let message_id = self.message_id(entry.number, &format!("Q{query}"));
        let report = match &entry.final_report {
            Some(report) => StatusReport {
                message_id,
                created_at: Utc::now(),
                ..report.clone()
            },
            None => entry.report(message_id, Utc::now(), entry.acknowledged),
        };
        drop(book);
        Some(report.to_xml())
    }
}
