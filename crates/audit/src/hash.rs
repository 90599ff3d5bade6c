//! The chain hash of an entry.
//!
//! `hash = SHA-256(DOMAIN ‖ field₁ ‖ … ‖ fieldₙ ‖ prev_hash)`, every field
//! length-prefixed with its length as a u64 big-endian, so no two
//! different entries can encode to the same bytes by moving a boundary
//! (`"ab" + "c"` vs `"a" + "bc"`). An absent field is the length
//! `u64::MAX` with no bytes: no real field is that long, so absent and
//! empty stay different. Integers are their fixed-width big-endian bytes,
//! times microseconds since the Unix epoch (PostgreSQL's precision, so a
//! stored time reads back exactly as it was hashed).
//!
//! Every stored column is covered, the derived ones (decoded JSON, ids,
//! trace id) too: a rewritten `payment_id` would mislead the timeline as
//! much as a rewritten value would mislead an auditor.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Names the encoding, so a future layout can never verify as this one.
const DOMAIN: &[u8] = b"paystream-audit/entry/v1";

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// One entry as stored: what the consumer builds and `verify` reads back.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EntryFields {
    pub topic: String,
    pub partition: i32,
    pub seq: i64,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub headers: String,
    pub value: Option<Vec<u8>>,
    pub schema_id: Option<i64>,
    pub event_type: Option<String>,
    pub event: Option<String>,
    pub decode_error: Option<String>,
    pub event_id: Option<Uuid>,
    pub payment_id: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub producer: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub trace_id: Option<String>,
    pub error_class: Option<String>,
    pub error_reason: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// The chain an entry belongs to: its source partition.
pub fn chain_id(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

struct Encoder(Sha256);

impl Encoder {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn optional(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => self.bytes(bytes),
            None => self.0.update(u64::MAX.to_be_bytes()),
        }
    }

    fn text(&mut self, text: Option<&str>) {
        self.optional(text.map(str::as_bytes));
    }

    fn int(&mut self, value: Option<i64>) {
        self.optional(
            value
                .map(i64::to_be_bytes)
                .as_ref()
                .map(<[u8; 8]>::as_slice),
        );
    }

    fn time(&mut self, time: Option<&DateTime<Utc>>) {
        self.int(time.map(DateTime::timestamp_micros));
    }
}

impl EntryFields {
    /// The entry's hash, chained to `prev`.
    pub fn hash(&self, prev: &[u8]) -> [u8; 32] {
        let mut e = Encoder(Sha256::new());
        e.0.update(DOMAIN);
        e.bytes(chain_id(&self.topic, self.partition).as_bytes());
        e.int(Some(self.seq));
        e.bytes(self.topic.as_bytes());
        e.int(Some(i64::from(self.partition)));
        e.int(Some(self.offset));
        e.int(self.timestamp_ms);
        e.optional(self.key.as_deref());
        e.bytes(self.headers.as_bytes());
        e.optional(self.value.as_deref());
        e.int(self.schema_id);
        e.text(self.event_type.as_deref());
        e.text(self.event.as_deref());
        e.text(self.decode_error.as_deref());
        e.optional(self.event_id.as_ref().map(|id| id.as_bytes().as_slice()));
        e.text(self.payment_id.as_deref());
        e.text(self.correlation_id.as_deref());
        e.text(self.causation_id.as_deref());
        e.text(self.producer.as_deref());
        e.time(self.occurred_at.as_ref());
        e.text(self.trace_id.as_deref());
        e.text(self.error_class.as_deref());
        e.text(self.error_reason.as_deref());
        e.time(Some(&self.received_at));
        e.bytes(prev);
        e.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> EntryFields {
        EntryFields {
            topic: "payment.submitted".into(),
            partition: 2,
            seq: 1,
            offset: 41,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(b"DE89".to_vec()),
            headers: r#"[{"name":"eventId","text":"x"}]"#.into(),
            value: Some(vec![0, 0, 0, 0, 1, 2]),
            schema_id: Some(1),
            event_type: Some("payment.submitted".into()),
            event: Some("{}".into()),
            decode_error: None,
            event_id: Some(Uuid::nil()),
            payment_id: Some("p".into()),
            correlation_id: Some("c".into()),
            causation_id: Some("r".into()),
            producer: Some("gateway".into()),
            occurred_at: DateTime::from_timestamp_millis(1_700_000_000_000),
            trace_id: None,
            error_class: None,
            error_reason: None,
            received_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default(),
        }
    }

    #[test]
    fn every_field_and_the_previous_hash_change_the_hash() {
        let base = entry();
        let hash = base.hash(&GENESIS);
        assert_eq!(hash, entry().hash(&GENESIS), "deterministic");
        assert_ne!(hash, base.hash(&[1; 32]));
        let changes: Vec<fn(&mut EntryFields)> = vec![
            |e| e.seq = 2,
            |e| e.partition = 1,
            |e| e.offset = 42,
            |e| e.key = Some(b"DE88".to_vec()),
            |e| e.value = Some(vec![0, 0, 0, 0, 1, 3]),
            |e| e.event = None,
            |e| e.payment_id = Some("q".into()),
            |e| e.error_class = Some("decode".into()),
            |e| e.received_at += chrono::Duration::microseconds(1),
            |e| e.event_id = None,
        ];
        for (n, change) in changes.into_iter().enumerate() {
            let mut changed = entry();
            change(&mut changed);
            assert_ne!(changed.hash(&GENESIS), hash, "change {n}");
        }
    }

    #[test]
    fn absent_and_empty_fields_differ_and_boundaries_cannot_move() {
        let mut absent = entry();
        absent.key = None;
        let mut empty = entry();
        empty.key = Some(Vec::new());
        assert_ne!(absent.hash(&GENESIS), empty.hash(&GENESIS));
        let mut left = entry();
        (left.correlation_id, left.causation_id) = (Some("ab".into()), Some("c".into()));
        let mut right = entry();
        (right.correlation_id, right.causation_id) = (Some("a".into()), Some("bc".into()));
        assert_ne!(left.hash(&GENESIS), right.hash(&GENESIS));
    }
}
