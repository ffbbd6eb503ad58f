//! Drawing keys and values: the key space layout, key distributions, value bytes.

use bytes::Bytes;
use rand::distributions::{Distribution, Uniform};
use rand::{Rng, RngCore};
use rand_distr::Zipf;

use crate::workload::{KeyDistribution, ValueSize};

/// Where things live under the prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    pub prefix: String,
}

impl Layout {
    pub fn new(prefix: &str) -> Layout {
        Layout {
            prefix: prefix.to_string(),
        }
    }

    /// Parent of the pre-created keys.
    pub fn keys_dir(&self) -> String {
        format!("{}/keys", self.prefix)
    }

    /// Fixed-width names keep the key space sorted and every path the same length.
    pub fn key_path(&self, key: u64) -> String {
        format!("{}/keys/k{key:010}", self.prefix)
    }

    /// Parent of the nodes that create operations make (and delete operations remove).
    pub fn nodes_dir(&self) -> String {
        format!("{}/nodes", self.prefix)
    }

    /// Parent of the ephemeral nodes of session churn.
    pub fn churn_dir(&self) -> String {
        format!("{}/churn", self.prefix)
    }

    /// The node the fan-out watchers watch.
    pub fn fanout_node(&self) -> String {
        format!("{}/fanout", self.prefix)
    }
}

/// Draws key indexes in `0..keys`.
#[derive(Debug, Clone)]
pub enum KeyChooser {
    Uniform(Uniform<u64>),
    /// Samples 1..=keys; rank 1 (key 0) is the most frequent.
    Zipfian(Zipf<f64>),
}

impl KeyChooser {
    /// `keys` is at least 1 (checked by the settings).
    pub fn new(distribution: KeyDistribution, keys: u64) -> KeyChooser {
        let keys = keys.max(1);
        match distribution {
            KeyDistribution::Uniform => KeyChooser::Uniform(Uniform::new(0, keys)),
            KeyDistribution::Zipfian { s } => match Zipf::new(keys, s) {
                Ok(zipf) => KeyChooser::Zipfian(zipf),
                // Zipf::new only fails for keys == 0 or s < 0, both excluded above.
                Err(_) => KeyChooser::Uniform(Uniform::new(0, keys)),
            },
        }
    }

    pub fn next<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match self {
            KeyChooser::Uniform(u) => u.sample(rng),
            KeyChooser::Zipfian(z) => (z.sample(rng) as u64).saturating_sub(1),
        }
    }
}

/// Hands out values of the configured size as slices of one random buffer.
#[derive(Debug, Clone)]
pub struct ValueGen {
    buffer: Bytes,
    size: ValueSize,
}

impl ValueGen {
    pub fn new<R: RngCore + ?Sized>(size: ValueSize, rng: &mut R) -> ValueGen {
        let mut buffer = vec![0u8; size.max];
        rng.fill_bytes(&mut buffer);
        ValueGen {
            buffer: Bytes::from(buffer),
            size,
        }
    }

    pub fn next<R: Rng + ?Sized>(&self, rng: &mut R) -> Bytes {
        let len = if self.size.min == self.size.max {
            self.size.max
        } else {
            rng.gen_range(self.size.min..=self.size.max)
        };
        self.buffer.slice(..len.min(self.buffer.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn counts(chooser: &KeyChooser, keys: u64, draws: u64) -> Vec<u64> {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = vec![0u64; keys as usize];
        for _ in 0..draws {
            let k = chooser.next(&mut rng);
            assert!(k < keys, "key {k} outside 0..{keys}");
            counts[k as usize] += 1;
        }
        counts
    }

    #[test]
    fn zipfian_is_skewed_like_zipf() {
        let keys = 1000;
        let s = 0.99;
        let draws = 400_000;
        let counts = counts(
            &KeyChooser::new(KeyDistribution::Zipfian { s }, keys),
            keys,
            draws,
        );
        // P(rank k) = k^-s / H(n, s).
        let harmonic: f64 = (1..=keys).map(|k| (k as f64).powf(-s)).sum();
        for rank in [1u64, 2, 10] {
            let expected = draws as f64 * (rank as f64).powf(-s) / harmonic;
            let observed = counts[(rank - 1) as usize] as f64;
            assert!(
                (observed - expected).abs() < 0.05 * expected,
                "rank {rank}: observed {observed}, expected {expected}"
            );
        }
        // Head much hotter than tail, and the top 10% of keys take most draws.
        assert!(counts[0] > 50 * counts[999].max(1));
        let top: u64 = counts[..100].iter().sum();
        assert!(top as f64 > 0.6 * draws as f64, "top 10% took {top}");
    }

    #[test]
    fn uniform_is_flat() {
        let keys = 100;
        let draws = 200_000;
        let counts = counts(
            &KeyChooser::new(KeyDistribution::Uniform, keys),
            keys,
            draws,
        );
        let expected = (draws / keys) as f64;
        for (k, c) in counts.iter().enumerate() {
            assert!(
                (*c as f64 - expected).abs() < 0.15 * expected,
                "key {k}: {c} draws, expected about {expected}"
            );
        }
    }

    #[test]
    fn values_have_the_configured_sizes() {
        let mut rng = SmallRng::seed_from_u64(1);
        let fixed = ValueGen::new(ValueSize { min: 32, max: 32 }, &mut rng);
        assert_eq!(fixed.next(&mut rng).len(), 32);
        let ranged = ValueGen::new(ValueSize { min: 1, max: 4 }, &mut rng);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let len = ranged.next(&mut rng).len();
            assert!((1..=4).contains(&len));
            seen[len] = true;
        }
        assert_eq!(seen, [false, true, true, true, true]);
        let empty = ValueGen::new(ValueSize { min: 0, max: 0 }, &mut rng);
        assert!(empty.next(&mut rng).is_empty());
    }

    #[test]
    fn layout_paths() {
        let layout = Layout::new("/lg");
        assert_eq!(layout.key_path(42), "/lg/keys/k0000000042");
        assert_eq!(layout.nodes_dir(), "/lg/nodes");
        assert_eq!(layout.fanout_node(), "/lg/fanout");
    }
}
