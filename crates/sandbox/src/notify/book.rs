//! What the provider saw: one entry per idempotency key with the message
//! last delivered under it, and the counters the report adds up. All of it
//! sits behind one lock, so a report is one consistent moment.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use uuid::Uuid;

use super::Notify;
use super::message::{Message, Receipt, Record};

/// What every delivered message's receipt says.
const SENT: &str = "SENT";

#[derive(Debug)]
pub(crate) struct Entry {
    message: Message,
    receipt: Receipt,
    delivered_at: DateTime<Utc>,
    /// When it was recorded, for the window.
    recorded: Instant,
    /// Deliveries under this key, re-deliveries after the window included.
    pub(super) deliveries: u64,
}

impl Entry {
    fn is_remembered(&self, window: Duration) -> bool {
        self.recorded.elapsed() <= window
    }

    fn record(&self) -> Record {
        Record {
            receipt: self.receipt.clone(),
            delivered_at: self
                .delivered_at
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Book {
    pub(super) entries: HashMap<String, Entry>,
    pub(super) requests: u64,
    pub(super) replays: u64,
    pub(super) conflicts: u64,
    pub(super) invalid: u64,
}

/// What the provider does with a new message, drawn when it arrives from
/// the behaviour then in force.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Answered 502, nothing delivered.
    pub fail: bool,
    /// The HTTP answer waits this long.
    pub late_by: Option<Duration>,
}

pub(crate) enum Sending {
    /// Delivered now, under a new key or one the window forgot.
    Delivered {
        receipt: Receipt,
        plan: Plan,
    },
    /// The same message under a remembered key: the first receipt.
    Replay(Receipt),
    Conflict,
    /// Failed before delivery, by the `fail` knob.
    Failed,
}

/// Whether a draw lands in `share`; never panics, whatever the share.
fn hits(rng: &mut impl Rng, share: f64) -> bool {
    rng.random::<f64>() < share
}

impl Notify {
    /// Counts a request that reached the handler and was refused.
    pub(crate) fn refuse(&self) {
        let mut book = self.book();
        book.requests += 1;
        book.invalid += 1;
    }

    /// Delivers a message under `key`, or recognises it.
    pub(crate) fn send(&self, key: &str, message: Message) -> Sending {
        let behaviour = self.behaviour();
        let plan = {
            let mut rng = rand::rng();
            Plan {
                fail: hits(&mut rng, behaviour.fail),
                late_by: hits(&mut rng, behaviour.late).then_some(behaviour.late_by),
            }
        };
        let window = self.inner.window;
        let mut book = self.book();
        book.requests += 1;
        let known = book.entries.get(key);
        if let Some(entry) = known.filter(|entry| entry.is_remembered(window)) {
            if entry.message == message {
                let receipt = entry.receipt.clone();
                book.replays += 1;
                return Sending::Replay(receipt);
            }
            book.conflicts += 1;
            return Sending::Conflict;
        }
        if plan.fail {
            return Sending::Failed;
        }
        let receipt = Receipt {
            message_id: format!("msg_{}", Uuid::new_v4().simple()),
            status: SENT,
            idempotency_key: key.to_owned(),
            channel: message.channel,
            to: message.to.clone(),
        };
        let entry = Entry {
            message,
            receipt: receipt.clone(),
            delivered_at: Utc::now(),
            recorded: Instant::now(),
            deliveries: known.map_or(0, |forgotten| forgotten.deliveries) + 1,
        };
        book.entries.insert(key.to_owned(), entry);
        Sending::Delivered { receipt, plan }
    }

    /// The message delivered under `key`, if the window still remembers it.
    pub(crate) fn lookup(&self, key: &str) -> Option<Record> {
        let window = self.inner.window;
        self.book()
            .entries
            .get(key)
            .filter(|entry| entry.is_remembered(window))
            .map(Entry::record)
    }
}
