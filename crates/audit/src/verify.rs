//! `audit verify`: every chain recomputed from the stored columns.
//!
//! Per chain, in `seq` order, each entry must: carry the next `seq` (a gap
//! is a deleted entry), point at the previous entry's hash (a broken link
//! is an entry deleted or re-hashed), hash to its stored hash over its
//! stored columns (a changed column), and come after the previous offset.
//! The chain's head row must name the last entry (a tail cut off, or a
//! head moved). The first entry that fails is named; the rest of its chain
//! is only counted. Entries and heads are read in one snapshot, so a live
//! log verifies.

use std::collections::BTreeMap;
use std::fmt;

use futures::TryStreamExt;
use sqlx::PgPool;

use crate::hash::{EntryFields, GENESIS, chain_id};

#[derive(sqlx::FromRow)]
struct Stored {
    #[sqlx(flatten)]
    fields: EntryFields,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

/// What is wrong with an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Its columns do not hash to its stored hash: it was changed.
    Hash,
    /// Its `prev_hash` is not the previous entry's hash.
    Link,
    /// Its `seq` is not the next one: entries before it are missing.
    Gap { expected: i64 },
    /// Its offset is not after the previous entry's.
    Offset { previous: i64 },
    /// The chain's head row says the chain is `seq` long with another hash:
    /// entries at the end are missing, or the head was moved.
    Head { seq: i64 },
    /// Entries without a head row.
    NoHead,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Hash => f.write_str("its columns do not hash to its stored hash (changed)"),
            Fault::Link => f.write_str("it does not link to the previous entry's hash"),
            Fault::Gap { expected } => write!(f, "seq {expected} expected here (entries missing)"),
            Fault::Offset { previous } => {
                write!(f, "offset not after the previous entry's {previous}")
            }
            Fault::Head { seq } => write!(f, "the chain head says {seq} entries with another hash"),
            Fault::NoHead => f.write_str("the chain has no head row"),
        }
    }
}

/// The first entry of a chain that does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub seq: i64,
    /// None where the entry is missing (a cut-off tail).
    pub offset: Option<i64>,
    pub fault: Fault,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub topic: String,
    pub partition: i32,
    pub length: i64,
    /// The last entry's stored hash.
    pub head: Option<Vec<u8>>,
    pub mismatch: Option<Mismatch>,
}

impl ChainReport {
    fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            length: 0,
            head: None,
            mismatch: None,
        }
    }

    fn fault(&mut self, seq: i64, offset: Option<i64>, fault: Fault) {
        self.mismatch.get_or_insert(Mismatch { seq, offset, fault });
    }
}

impl fmt::Display for ChainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self
            .head
            .as_deref()
            .map(hex::encode)
            .unwrap_or_else(|| "-".into());
        write!(
            f,
            "chain {}: {} entries, head {head}",
            chain_id(&self.topic, self.partition),
            self.length
        )?;
        match &self.mismatch {
            None => f.write_str(": ok"),
            Some(m) => {
                let offset = m.offset.map_or_else(|| "-".to_owned(), |o| o.to_string());
                write!(
                    f,
                    ": MISMATCH at seq {} ({}/{} offset {offset}): {}",
                    m.seq, self.topic, self.partition, m.fault
                )
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub chains: Vec<ChainReport>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.chains.iter().all(|chain| chain.mismatch.is_none())
    }

    pub fn mismatches(&self) -> impl Iterator<Item = &ChainReport> {
        self.chains.iter().filter(|chain| chain.mismatch.is_some())
    }

    /// The chains that do not verify, a line each, for a failure message.
    pub fn mismatch_lines(&self) -> String {
        self.mismatches()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Recomputes every chain. Streams the entries, so the log can be larger
/// than memory.
pub async fn verify(pool: &PgPool) -> Result<Report, sqlx::Error> {
    // The entries and the heads are read in one snapshot. Read apart, an
    // append committed between the two reads (the audit is live) shows as
    // a head past the last entry read: a cut-off tail that is not there.
    let mut tx = paystream_bus::pool::read_only_snapshot(pool).await?;
    let mut chains: BTreeMap<(String, i32), ChainReport> = BTreeMap::new();
    let mut rows = sqlx::query_as::<_, Stored>(
        "SELECT topic, \"partition\", seq, \"offset\", timestamp_ms, key, headers::text AS headers, \
         value, schema_id, event_type, event::text AS event, decode_error, event_id, payment_id, \
         correlation_id, causation_id, producer, occurred_at, trace_id, error_class, error_reason, \
         received_at, prev_hash, hash \
         FROM audit_entries ORDER BY topic, \"partition\", seq",
    )
    .fetch(&mut *tx);
    // The previous entry of the chain being read: its hash and offset.
    let mut prev: (Vec<u8>, i64) = (GENESIS.to_vec(), -1);
    while let Some(row) = rows.try_next().await? {
        let e = &row.fields;
        let key = (e.topic.clone(), e.partition);
        let chain = match chains.entry(key) {
            std::collections::btree_map::Entry::Occupied(chain) => chain.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                prev = (GENESIS.to_vec(), -1);
                slot.insert(ChainReport::new(&e.topic, e.partition))
            }
        };
        let expected = chain.length + 1;
        if e.seq != expected {
            chain.fault(e.seq, Some(e.offset), Fault::Gap { expected });
        } else if row.prev_hash != prev.0 {
            chain.fault(e.seq, Some(e.offset), Fault::Link);
        } else if e.hash(&row.prev_hash).as_slice() != row.hash.as_slice() {
            chain.fault(e.seq, Some(e.offset), Fault::Hash);
        } else if e.offset <= prev.1 {
            chain.fault(e.seq, Some(e.offset), Fault::Offset { previous: prev.1 });
        }
        // Counted by position, so one gap is reported once, not at every
        // entry after it.
        chain.length = e.seq.max(expected);
        prev = (row.hash.clone(), e.offset);
        chain.head = Some(row.hash);
    }
    drop(rows);
    let heads: Vec<(String, i32, i64, Vec<u8>)> =
        sqlx::query_as("SELECT topic, \"partition\", seq, head FROM audit_chains")
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    let mut with_head = std::collections::HashSet::new();
    for (topic, partition, seq, head) in heads {
        with_head.insert((topic.clone(), partition));
        let chain = chains
            .entry((topic.clone(), partition))
            .or_insert_with(|| ChainReport::new(&topic, partition));
        let matches =
            chain.length == seq && chain.head.as_deref().unwrap_or(&GENESIS) == head.as_slice();
        if !matches {
            chain.fault(chain.length.min(seq) + 1, None, Fault::Head { seq });
        }
    }
    for chain in chains.values_mut() {
        if !with_head.contains(&(chain.topic.clone(), chain.partition)) {
            chain.fault(1, None, Fault::NoHead);
        }
    }
    Ok(Report {
        chains: chains.into_values().collect(),
    })
}
