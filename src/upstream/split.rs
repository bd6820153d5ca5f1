//! Weighted splits of a route's traffic over several origins (canaries, blue
//! and green), optionally sticky: the same key value always goes to the same
//! origin while the weights do not change.
//!
//! The choice is a point in `[0, total weight)`: a hash of the sticky key's
//! value when there is one, else a random number; the origin is the one whose
//! cumulative range holds the point. Pure: the caller passes the randomness.

use sha2::{Digest, Sha256};

/// A route's split, compiled: origin indexes and their cumulative weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// `(origin index, cumulative weight up to and including it)`; origins of
    /// weight 0 are left out.
    bands: Vec<(usize, u64)>,
}

impl Split {
    /// From `(origin index, weight)` in file order; `None` when no weight is positive.
    pub fn new(weights: &[(usize, u32)]) -> Option<Split> {
        let mut total = 0u64;
        let mut bands = Vec::with_capacity(weights.len());
        for &(origin, weight) in weights {
            if weight > 0 {
                total += u64::from(weight);
                bands.push((origin, total));
            }
        }
        (total > 0).then_some(Split { bands })
    }

    /// The sum of the weights.
    pub fn total(&self) -> u64 {
        self.bands.last().map_or(0, |b| b.1)
    }

    /// The origin for a sticky key's value (`Some`), or for `random` when the
    /// route is not sticky or the request has no value for the key.
    pub fn pick(&self, sticky_value: Option<&str>, random: u64) -> usize {
        let total = self.total().max(1);
        let point = match sticky_value {
            Some(value) => {
                let digest = Sha256::new()
                    .chain_update(b"split/1\0")
                    .chain_update(value.as_bytes())
                    .finalize();
                let mut n = [0u8; 8];
                n.copy_from_slice(&digest[..8]);
                u64::from_be_bytes(n) % total
            }
            None => random % total,
        };
        let i = self.bands.partition_point(|&(_, upto)| upto <= point);
        self.bands[i.min(self.bands.len() - 1)].0
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn weights_of_zero_are_never_chosen_and_all_zero_is_no_split() {
        assert_eq!(Split::new(&[(0, 0), (1, 0)]), None);
        let s = Split::new(&[(0, 0), (1, 5), (2, 0)]).unwrap();
        for r in 0..100 {
            assert_eq!(s.pick(None, r), 1);
        }
        assert_eq!(s.pick(Some("anyone"), 0), 1);
    }

    #[test]
    fn random_points_cover_each_band_exactly() {
        let s = Split::new(&[(7, 90), (3, 10)]).unwrap();
        let picks: Vec<usize> = (0..100).map(|r| s.pick(None, r)).collect();
        assert_eq!(picks.iter().filter(|&&o| o == 7).count(), 90);
        assert_eq!(picks.iter().filter(|&&o| o == 3).count(), 10);
        assert_eq!(s.pick(None, 89), 7);
        assert_eq!(s.pick(None, 90), 3);
        assert_eq!(s.pick(None, u64::MAX), s.pick(None, u64::MAX % 100));
    }

    /// Six standard deviations of a binomial count, plus one: a correct split
    /// fails it with a probability of about 2e-9 per origin and case, so the
    /// test does not flake; a share wrong by more than about 5 percentage
    /// points (190 of 4000 at worst) fails it.
    fn bound(n: f64, p: f64) -> f64 {
        6.0 * (n * p * (1.0 - p)).sqrt() + 1.0
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn the_same_key_always_maps_to_the_same_origin(
            weights in proptest::collection::vec(0u32..50, 1..6),
            key in ".{0,40}",
            randoms in proptest::collection::vec(any::<u64>(), 2..10),
        ) {
            let indexed: Vec<(usize, u32)> = weights.iter().copied().enumerate().collect();
            if let Some(s) = Split::new(&indexed) {
                let first = s.pick(Some(&key), randoms[0]);
                prop_assert!(weights[first] > 0);
                for r in &randoms[1..] {
                    prop_assert_eq!(s.pick(Some(&key), *r), first);
                }
            }
        }

        #[test]
        fn sticky_keys_spread_in_proportion_to_the_weights(
            weights in proptest::collection::vec(1u32..20, 2..5),
            salt in any::<u64>(),
        ) {
            let indexed: Vec<(usize, u32)> = weights.iter().copied().enumerate().collect();
            let s = Split::new(&indexed).unwrap();
            let n = 4000usize;
            let mut counts = vec![0usize; weights.len()];
            for i in 0..n {
                counts[s.pick(Some(&format!("client-{salt}-{i}")), 0)] += 1;
            }
            let total: u32 = weights.iter().sum();
            for (i, w) in weights.iter().enumerate() {
                let p = f64::from(*w) / f64::from(total);
                let expected = n as f64 * p;
                prop_assert!((counts[i] as f64 - expected).abs() <= bound(n as f64, p),
                    "origin {i}: {} of {n}, expected {expected:.0}", counts[i]);
            }
        }

        #[test]
        fn random_picks_spread_in_proportion_to_the_weights(
            weights in proptest::collection::vec(1u32..20, 2..5),
            seed in any::<u64>(),
        ) {
            let indexed: Vec<(usize, u32)> = weights.iter().copied().enumerate().collect();
            let s = Split::new(&indexed).unwrap();
            let n = 4000usize;
            let mut counts = vec![0usize; weights.len()];
            let mut x = seed | 1;
            for _ in 0..n {
                // xorshift64*: a stand-in for the edge's random bytes.
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                counts[s.pick(None, x.wrapping_mul(0x2545_F491_4F6C_DD1D))] += 1;
            }
            let total: u32 = weights.iter().sum();
            for (i, w) in weights.iter().enumerate() {
                let p = f64::from(*w) / f64::from(total);
                let expected = n as f64 * p;
                prop_assert!((counts[i] as f64 - expected).abs() <= bound(n as f64, p),
                    "origin {i}: {} of {n}, expected {expected:.0}", counts[i]);
            }
        }
    }
}
