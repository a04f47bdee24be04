//! Hash maps keyed by the sampler's own ids (run ids, read ids).
//!
//! The ring thread looks a read up on every submission and every completion. The standard
//! map's SipHash guards against keys chosen by an attacker; ours are counters the sampler hands
//! out itself, so a multiply-and-rotate (as rustc's FxHash) is enough and several times faster.
use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

/// A map from one of the sampler's ids to `V`.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Hashes a `u64` id with one multiplication: distinct ids differ in the high bits (which
/// hashbrown's control bytes use) as well as the low ones (which pick the bucket).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

/// The FxHash constant (an odd number with well-spread bits).
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are used; other writes still hash correctly, byte by byte.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0.rotate_left(5) ^ id).wrapping_mul(SEED);
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn behaves_as_a_map() {
        let mut map: IdMap<u64> = IdMap::default();
        for id in 0..10_000 {
            map.insert(id, id * 2);
        }
        assert_eq!(map.len(), 10_000);
        assert_eq!(map.get(&4_321), Some(&8_642));
        assert_eq!(map.remove(&0), Some(0));
        assert!(!map.contains_key(&0));
    }

    #[test]
    fn consecutive_ids_spread_over_the_high_bits() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let mut top_bytes = std::collections::HashSet::new();
        for id in 0..1_000u64 {
            top_bytes.insert(build.hash_one(id) >> 57);
        }
        // 7 bits: 128 values; 1,000 consecutive ids must use most of them.
        assert!(top_bytes.len() > 100, "{} distinct", top_bytes.len());
    }
}
