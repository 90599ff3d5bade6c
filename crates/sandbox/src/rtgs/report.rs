//! The rail's account of what it saw, for `GET /admin/rtgs/report` and
//! [`Rail::report`](super::Rail::report): what clients sent, what the rail
//! decided, and what became of its callbacks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use paystream_iso20022::TxStatus;
use serde::{Deserialize, Serialize};

use super::Rail;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackReport {
    /// Deliveries the receiver answered with a 2xx (repeats included).
    pub delivered: u64,
    /// Deliveries given up after the last retry.
    pub failed: u64,
    /// Final reports never sent, by the `lost` knob.
    pub lost: u64,
    /// Final reports sent a second time, by the `duplicates` knob.
    pub duplicated: u64,
    /// Stale ACSP reports sent after the final one, by the `reorder` knob.
    pub reordered: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UetrReport {
    /// ACSP or PDNG before settlement, ACSC or RJCT after.
    pub status: String,
    pub submissions: u64,
    pub settlements: u64,
    pub reason: Option<String>,
    pub clearing_reference: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RailReport {
    /// Documents acknowledged: new transfers and repeats.
    pub submissions: u64,
    pub distinct_uetrs: u64,
    pub repeats: u64,
    pub conflicts: u64,
    pub malformed: u64,
    pub status_queries: u64,
    pub settled: u64,
    pub rejected: u64,
    /// Accepted and not yet settled or rejected.
    pub in_flight: u64,
    /// UETRs settled more than once: a rail bug, so always empty.
    pub settled_twice: Vec<String>,
    pub callbacks: CallbackReport,
    pub uetrs: BTreeMap<String, UetrReport>,
}

impl Rail {
    /// Everything the rail saw, counted.
    pub fn report(&self) -> RailReport {
        let mut report = RailReport::default();
        {
            let book = self.book();
            for (uetr, entry) in book.iter() {
                let status = entry.status();
                report.submissions += entry.submissions;
                report.distinct_uetrs += 1;
                match status {
                    TxStatus::AcceptedSettlementCompleted => report.settled += 1,
                    TxStatus::Rejected => report.rejected += 1,
                    TxStatus::AcceptedSettlementInProcess | TxStatus::Pending => {
                        report.in_flight += 1;
                    }
                }
                if entry.settlements > 1 {
                    report.settled_twice.push(uetr.to_string());
                }
                report.uetrs.insert(
                    uetr.to_string(),
                    UetrReport {
                        status: status.code().to_owned(),
                        submissions: entry.submissions,
                        settlements: entry.settlements,
                        reason: entry
                            .final_report
                            .as_ref()
                            .and_then(|report| report.reason.clone()),
                        clearing_reference: entry.clearing_reference.clone(),
                    },
                );
            }
        }
        report.settled_twice.sort();
        report.repeats = report.submissions.saturating_sub(report.distinct_uetrs);
        let counters = &self.inner.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        report.conflicts = load(&counters.conflicts);
        report.malformed = load(&counters.malformed);
        report.status_queries = load(&counters.status_queries);
        report.callbacks = CallbackReport {
            delivered: load(&counters.delivered),
            failed: load(&counters.failed),
            lost: load(&counters.lost),
            duplicated: load(&counters.duplicated),
            reordered: load(&counters.reordered),
        };
        report
    }
}
