//! FNV-1a 64: the documented, stable hash behind key partitioning (and the broker's numeric
//! producer ids). Stable means fixed forever: changing it would route a key's later messages
//! to another partition than its earlier ones, so the tests pin published vectors.

/// FNV-1a, 64 bit (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The partition of a message with this key: FNV-1a 64 of the key's UTF-8 bytes, modulo the
/// partition count (a count of 0 is taken as 1, so this never divides by zero).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (fnv1a64(key) % u64::from(partitions.max(1))) as u32
}

/// A producer's numeric id, as batch headers carry it: FNV-1a 64 of its string id, with 0
/// (which means "no producer" in a header) moved to 1.
pub fn numeric_producer_id(producer: &str) -> u64 {
    fnv1a64(producer.as_bytes()).max(1)
}

/// The partition of an idempotent NDJSON request's keyless lines: (numeric producer id + seq)
/// modulo the partition count (0 taken as 1), so a retry lands where the original did.
pub fn keyless_partition(producer_id: u64, seq: u64, partitions: u32) -> u32 {
    (producer_id.wrapping_add(seq) % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn keys_go_to_the_hash_modulo_the_partition_count() {
        assert_eq!(
            partition_for_key(b"a", 16),
            (0xaf63_dc4c_8601_ec8cu64 % 16) as u32
        );
        assert_eq!(
            partition_for_key(b"foobar", 7),
            (0x8594_4171_f739_67e8u64 % 7) as u32
        );
        // A GPU UUID as the streamer keys points, pinned so a change of hash cannot go unseen.
        let uuid = b"GPU-5fd4f087-86f3-7a43-b711-4771313afc50";
        assert_eq!(fnv1a64(uuid), 0x0d1b_f842_ddd8_84c2);
        assert_eq!(partition_for_key(uuid, 16), 2);
    }

    #[test]
    fn zero_partitions_is_taken_as_one() {
        assert_eq!(partition_for_key(b"anything", 0), 0);
        assert_eq!(partition_for_key(b"anything", 1), 0);
    }
}
