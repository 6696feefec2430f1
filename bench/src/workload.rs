//! Workloads: what each client asks for, YCSB style.
//!
//! A [`Workload`] fixes the mix of operations (YCSB's core workloads A, B and C, plus W for
//! writes only and T for small transactions); a [`KeyChooser`] picks the key of each operation
//! uniformly or by a zipfian law ([`Zipfian`], the generator of YCSB's
//! `ZipfianGenerator`, after Gray et al., "Quickly generating billion-record synthetic
//! databases", SIGMOD 1994); an [`OpGenerator`] combines them into a stream of
//! [`Operation`]s, one generator per client so no client waits on another's random numbers.
//!
//! Keys are `user` followed by a zero-padded record number, as YCSB names them; every record
//! `0..records` is written in the load phase, so reads always find a value.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{bail, Result};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

/// The zipfian constant YCSB uses (`ZipfianGenerator.ZIPFIAN_CONSTANT`).
pub const YCSB_ZIPFIAN_THETA: f64 = 0.99;

/// How many reads a workload-T transaction makes.
pub const TXN_READS: usize = 4;
/// How many of a transaction's read keys it then writes.
pub const TXN_WRITES: usize = 2;

/// A mix of operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// YCSB A, update heavy: 50% reads, 50% updates.
    A,
    /// YCSB B, read mostly: 95% reads, 5% updates.
    B,
    /// YCSB C, read only.
    C,
    /// Writes only (updates of existing records).
    W,
    /// Transactions, each reading 4 keys and writing 2 of them, atomically.
    T,
}

impl Workload {
    /// The share of single-key operations that are reads (transactions: not applicable, 0).
    pub fn read_fraction(self) -> f64 {
        match self {
            Workload::A => 0.5,
            Workload::B => 0.95,
            Workload::C => 1.0,
            Workload::W | Workload::T => 0.0,
        }
    }

    /// Whether this workload needs multi-key transactions from the target.
    pub fn needs_transactions(self) -> bool {
        self == Workload::T
    }

    /// A one-line description for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Workload::A => "A: 50% reads, 50% updates",
            Workload::B => "B: 95% reads, 5% updates",
            Workload::C => "C: reads only",
            Workload::W => "W: updates only",
            Workload::T => "T: transactions of 4 reads and 2 writes",
        }
    }
}

impl FromStr for Workload {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "A" => Workload::A,
            "B" => Workload::B,
            "C" => Workload::C,
            "W" => Workload::W,
            "T" => Workload::T,
            other => bail!("unknown workload {other:?}: expected A, B, C, W or T"),
        })
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Workload::A => "A",
            Workload::B => "B",
            Workload::C => "C",
            Workload::W => "W",
            Workload::T => "T",
        };
        f.write_str(name)
    }
}

/// How keys are drawn from the key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Every record equally likely.
    Uniform,
    /// A few records hot (YCSB's default `zipfian`, constant 0.99), the hot ones spread over
    /// the key space.
    Zipfian,
}

impl FromStr for Distribution {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "uniform" => Ok(Distribution::Uniform),
            "zipfian" | "zipf" => Ok(Distribution::Zipfian),
            other => bail!("unknown key distribution {other:?}: expected uniform or zipfian"),
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
        })
    }
}

/// The zipfian law over ranks `0..n`: rank `i` has probability proportional to
/// `1 / (i + 1)^theta`, so rank 0 is the most popular.
///
/// This is YCSB's `ZipfianGenerator` (Gray et al. 1994): `zeta(n)` is computed once, then
/// each draw costs one uniform sample and one `powf`. Valid for `0 < theta < 1`.
#[derive(Clone, Debug)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    /// `1 + 0.5^theta`: below it (scaled by `zetan`) a draw is rank 1.
    half_pow_theta_plus_one: f64,
}

impl Zipfian {
    /// The law over `n` ranks with exponent `theta`.
    pub fn new(n: u64, theta: f64) -> Result<Self> {
        if n < 2 {
            bail!("a zipfian key space needs at least 2 records, got {n}");
        }
        if !(theta > 0.0 && theta < 1.0) {
            bail!("the zipfian constant must be in (0, 1), got {theta}");
        }
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2, theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Ok(Zipfian {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            half_pow_theta_plus_one: 1.0 + 0.5f64.powf(theta),
        })
    }

    /// The number of ranks.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Always false: a law has at least two ranks.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The exact probability of `rank` (for tests and reports).
    pub fn probability(&self, rank: u64) -> f64 {
        1.0 / ((rank + 1) as f64).powf(self.theta) / self.zetan
    }

    /// Draws a rank in `0..n`.
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.half_pow_theta_plus_one {
            return 1;
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// `sum_{i=1..n} 1 / i^theta`.
fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

/// A prime used to spread zipfian ranks over the key space (Knuth's multiplicative hash
/// constant, 2^32 / phi rounded to a prime).
const SPREAD_PRIME: u64 = 2_654_435_761;

/// Picks record numbers in `0..records`.
#[derive(Clone, Debug)]
pub enum KeyChooser {
    /// Uniform over the records.
    Uniform {
        /// The record count.
        records: u64,
    },
    /// Zipfian ranks mapped to records by `rank * p + c mod records` with `p` prime to
    /// `records`: a bijection, so the hot records are spread over the key space (as YCSB's
    /// `ScrambledZipfianGenerator` spreads them by hashing) and each record keeps its rank's
    /// probability exactly.
    Zipfian {
        /// The law over ranks, shared by every client's chooser.
        law: Arc<Zipfian>,
        /// The multiplier of the rank-to-record bijection.
        multiplier: u64,
    },
}

impl KeyChooser {
    /// A chooser of `distribution` over `records` records.
    pub fn new(distribution: Distribution, records: u64) -> Result<Self> {
        if records == 0 {
            bail!("the key space must hold at least one record");
        }
        Ok(match distribution {
            Distribution::Uniform => KeyChooser::Uniform { records },
            Distribution::Zipfian => {
                let law = Zipfian::new(records, YCSB_ZIPFIAN_THETA)?;
                let multiplier = if gcd(SPREAD_PRIME % records, records) == 1 {
                    SPREAD_PRIME % records
                } else {
                    1
                };
                KeyChooser::Zipfian {
                    law: Arc::new(law),
                    multiplier,
                }
            }
        })
    }

    /// The record count.
    pub fn records(&self) -> u64 {
        match self {
            KeyChooser::Uniform { records } => *records,
            KeyChooser::Zipfian { law, .. } => law.len(),
        }
    }

    /// The record that zipfian `rank` maps to (identity for uniform).
    pub fn record_of_rank(&self, rank: u64) -> u64 {
        match self {
            KeyChooser::Uniform { .. } => rank,
            KeyChooser::Zipfian { law, multiplier } => {
                let n = u128::from(law.len());
                ((u128::from(rank) * u128::from(*multiplier) + 7) % n) as u64
            }
        }
    }

    /// Draws a record number.
    pub fn next(&self, rng: &mut impl Rng) -> u64 {
        match self {
            KeyChooser::Uniform { records } => rng.random_range(0..*records),
            KeyChooser::Zipfian { law, .. } => self.record_of_rank(law.sample(rng)),
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The key of record `n`: `user` and the number padded to 10 digits (YCSB's naming).
pub fn record_key(n: u64) -> Bytes {
    Bytes::from(format!("user{n:010}"))
}

/// One request a client makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Read one key.
    Read(Bytes),
    /// Overwrite one key.
    Update(Bytes, Bytes),
    /// Read `reads`, then write `writes`, atomically.
    Txn {
        /// Keys read (distinct).
        reads: Vec<Bytes>,
        /// Keys written with their values (a subset of `reads`).
        writes: Vec<(Bytes, Bytes)>,
    },
}

impl Operation {
    /// The kind of operation, for error reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Read(_) => "read",
            Operation::Update(..) => "update",
            Operation::Txn { .. } => "txn",
        }
    }
}

/// One client's stream of operations.
#[derive(Debug)]
pub struct OpGenerator {
    workload: Workload,
    keys: KeyChooser,
    /// Random bytes drawn once: every write sends the same incompressible value, so no time
    /// is spent generating values and no target gains from compressing them.
    value: Bytes,
    rng: SmallRng,
}

impl OpGenerator {
    /// A generator for one client, seeded so that runs are repeatable.
    pub fn new(workload: Workload, keys: KeyChooser, value_size: usize, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut value = vec![0u8; value_size];
        rng.fill_bytes(&mut value);
        OpGenerator {
            workload,
            keys,
            value: Bytes::from(value),
            rng,
        }
    }

    /// The value every write of this generator sends.
    pub fn value(&self) -> Bytes {
        self.value.clone()
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Operation {
        if self.workload == Workload::T {
            return self.next_txn();
        }
        let key = record_key(self.keys.next(&mut self.rng));
        let read = self.rng.random::<f64>() < self.workload.read_fraction();
        if read {
            Operation::Read(key)
        } else {
            Operation::Update(key, self.value.clone())
        }
    }

    fn next_txn(&mut self) -> Operation {
        let want = TXN_READS.min(self.keys.records() as usize);
        let mut records: Vec<u64> = Vec::with_capacity(want);
        // Hot zipfian keys repeat often; redraw a bounded number of times, then fill with
        // the records after the last one drawn so the loop always ends.
        let mut tries = 0;
        while records.len() < want {
            let r = if tries < 64 {
                self.keys.next(&mut self.rng)
            } else {
                (records.last().copied().unwrap_or(0) + 1) % self.keys.records()
            };
            tries += 1;
            if !records.contains(&r) {
                records.push(r);
            }
        }
        let reads: Vec<Bytes> = records.iter().map(|&r| record_key(r)).collect();
        let writes = reads
            .iter()
            .take(TXN_WRITES)
            .map(|k| (k.clone(), self.value.clone()))
            .collect();
        Operation::Txn { reads, writes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipfian_rank_frequency_follows_the_law() {
        let law = Zipfian::new(1000, YCSB_ZIPFIAN_THETA).expect("valid law");
        let mut rng = SmallRng::seed_from_u64(42);
        let draws = 400_000;
        let mut counts = vec![0u64; 1000];
        for _ in 0..draws {
            counts[law.sample(&mut rng) as usize] += 1;
        }
        // Ranks 0 and 1 are drawn exactly (Gray et al.'s method special-cases them); the
        // rest follow the law's continuous approximation, checked by its slope below.
        for rank in 0..2u64 {
            let expected = law.probability(rank) * draws as f64;
            let got = counts[rank as usize] as f64;
            assert!(
                (got - expected).abs() / expected < 0.05,
                "rank {rank}: expected {expected:.0}, got {got}"
            );
        }
        // Rank-frequency is a power law: frequency(1) / frequency(2) is about 2^theta.
        let ratio = counts[0] as f64 / counts[1] as f64;
        assert!(
            (ratio - 2f64.powf(YCSB_ZIPFIAN_THETA)).abs() < 0.1,
            "{ratio}"
        );
        // Frequencies fall with rank over decades: the log-log slope is about -theta.
        let decade = |lo: usize, hi: usize| counts[lo..hi].iter().sum::<u64>() as f64;
        let slope = ((decade(100, 200) / 100.0) / (decade(10, 20) / 10.0)).log10();
        assert!((slope + YCSB_ZIPFIAN_THETA).abs() < 0.1, "slope {slope}");
        // Every rank is in range and the tail is reached.
        assert!(counts[500..].iter().sum::<u64>() > 0);
    }

    #[test]
    fn zipfian_rejects_bad_parameters() {
        assert!(Zipfian::new(1, 0.99).is_err());
        assert!(Zipfian::new(10, 1.0).is_err());
        assert!(Zipfian::new(10, 0.0).is_err());
    }

    #[test]
    fn zipfian_chooser_is_a_bijection_that_spreads_hot_keys() {
        let chooser = KeyChooser::new(Distribution::Zipfian, 1000).expect("valid chooser");
        let mut seen: Vec<u64> = (0..1000).map(|r| chooser.record_of_rank(r)).collect();
        // The hottest ranks land far apart.
        assert!(seen[0].abs_diff(seen[1]) > 10);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn uniform_chooser_covers_the_key_space() {
        let chooser = KeyChooser::new(Distribution::Uniform, 10).expect("valid chooser");
        let mut rng = SmallRng::seed_from_u64(1);
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            counts[chooser.next(&mut rng) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn workload_mix_matches_its_read_fraction() {
        let keys = KeyChooser::new(Distribution::Uniform, 100).expect("valid chooser");
        let mut generator = OpGenerator::new(Workload::B, keys, 100, 7);
        let reads = (0..10_000)
            .filter(|_| matches!(generator.next_op(), Operation::Read(_)))
            .count();
        assert!((9300..9700).contains(&reads), "{reads}");
    }

    #[test]
    fn transactions_read_four_distinct_keys_and_write_two_of_them() {
        let keys = KeyChooser::new(Distribution::Zipfian, 10).expect("valid chooser");
        let mut generator = OpGenerator::new(Workload::T, keys, 8, 3);
        for _ in 0..1000 {
            let Operation::Txn { reads, writes } = generator.next_op() else {
                panic!("workload T makes transactions");
            };
            let mut distinct = reads.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), TXN_READS);
            assert_eq!(writes.len(), TXN_WRITES);
            assert!(writes
                .iter()
                .all(|(k, v)| reads.contains(k) && v.len() == 8));
        }
    }

    #[test]
    fn keys_are_named_like_ycsb() {
        assert_eq!(&record_key(42)[..], b"user0000000042");
        assert_eq!("a".parse::<Workload>().expect("known"), Workload::A);
        assert!("x".parse::<Workload>().is_err());
    }
}
