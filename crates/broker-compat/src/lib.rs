//! The broker compatibility suite lives in `tests/it/`, one test binary:
//!
//! - `nisshi_api.rs`: against the stack's nisshi broker, every client-visible
//!   behaviour the pipeline depends on, and the two it refuses (transactions,
//!   CreatePartitions), asserted so an upgrade that changes them shows up;
//! - `nisshi_durability.rs`: acked records and committed offsets surviving
//!   SIGKILL and restart of a nisshi process with SQLite storage;
//! - `mock_cluster.rs`: librdkafka's in-process mock cluster, for what only
//!   fault injection can show (brokers down, retriable produce errors,
//!   coordinator moves) and the transactional API.
//!
//! This file holds the one piece of pure logic they share: Java's murmur2, to
//! check that keys land on the partition a Java client would choose.

/// Kafka's Java `Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Java's default partitioner (and librdkafka's `murmur2_random`)
/// picks for a non-empty key.
pub fn java_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of librdkafka's rdmurmur2.c unit test, computed by Java's client.
    #[test]
    fn murmur2_matches_java() {
        let vectors: [(&str, u32); 11] = [
            ("kafka", 0xd067_cf64),
            ("giberish123456789", 0x8f55_2b0c),
            ("1234", 0x9fc9_7b14),
            ("234", 0xe7c0_09ca),
            ("34", 0x8739_30da),
            ("4", 0x5a4b_5ca1),
            ("PreAmbleWillBeRemoved,ThePrePartThatIs", 0x7842_4f1c),
            ("reAmbleWillBeRemoved,ThePrePartThatIs", 0x4a62_b377),
            ("eAmbleWillBeRemoved,ThePrePartThatIs", 0xe0e4_e09e),
            ("AmbleWillBeRemoved,ThePrePartThatIs", 0x62b8_b43f),
            ("", 0x106e_08d9),
        ];
        for (key, expected) in vectors {
            assert_eq!(murmur2(key.as_bytes()), expected, "key {key:?}");
        }
    }
}
