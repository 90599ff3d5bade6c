//! The provider's account of what it saw, for `GET /admin/notify/report`
//! and [`Notify::report`](super::Notify::report): what clients sent, and
//! what was delivered how often.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Notify;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyReport {
    /// POSTs that reached the provider (past its HTTP behaviour), whatever
    /// became of them.
    pub requests: u64,
    /// Messages delivered, re-deliveries after the window included.
    pub deliveries: u64,
    /// Keys ever delivered under.
    pub distinct_keys: u64,
    /// Answered from the idempotency record, nothing delivered.
    pub replays: u64,
    pub conflicts: u64,
    /// Refused with a 400 or 422.
    pub invalid: u64,
    /// Keys delivered more than once: each a message the recipient got
    /// twice, so empty in any test of a client that behaves.
    pub delivered_twice: Vec<String>,
    /// Deliveries per key.
    pub per_key: BTreeMap<String, u64>,
}

impl Notify {
    /// Everything the provider saw, counted.
    pub fn report(&self) -> NotifyReport {
        let book = self.book();
        let per_key: BTreeMap<String, u64> = book
            .entries
            .iter()
            .map(|(key, entry)| (key.clone(), entry.deliveries))
            .collect();
        NotifyReport {
            requests: book.requests,
            deliveries: per_key.values().sum(),
            distinct_keys: per_key.len() as u64,
            replays: book.replays,
            conflicts: book.conflicts,
            invalid: book.invalid,
            // In key order, as the map is.
            delivered_twice: per_key
                .iter()
                .filter(|(_, deliveries)| **deliveries > 1)
                .map(|(key, _)| key.clone())
                .collect(),
            per_key,
        }
    }
}
