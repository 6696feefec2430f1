//! Generates list-append histories from correct models, for the Elle property tests and the
//! `elle` bench: a serial execution (strict serializable) or a snapshot-isolated one
//! (first committer wins), with random overlapping timing and `fail`/`info` outcomes.
//! Anomalies are injected as extra transactions on fresh keys (see [`Inject`]).

#![allow(dead_code)] // Each user (test, bench) needs a different part.

use dialkv_consistency::history::{Event, EventType, History};
use serde_json::{json, Value};

/// How the model executes transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One at a time, at a commit point inside each transaction's interval.
    Serial,
    /// Snapshot isolation: reads see the snapshot at the start point, writes conflict with
    /// writes committed since (the later committer fails).
    Snapshot,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    pub txns: usize,
    pub keys: usize,
    /// Keys are drawn from a window of `keys` that slides forward over the run, so lists stay
    /// short in long histories (as Jepsen's list-append workload does).
    pub key_rotation: bool,
    pub max_mops: usize,
    /// How many commit slots a transaction's interval may stretch on either side.
    pub overlap: u64,
    pub fail_pct: u64,
    pub info_pct: u64,
    pub mode: Mode,
    /// Emit single-key `append`/`read` operations instead of `txn`s (`max_mops` is then 1).
    pub single_ops: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            txns: 50,
            keys: 3,
            key_rotation: false,
            max_mops: 4,
            overlap: 3,
            fail_pct: 5,
            info_pct: 5,
            mode: Mode::Serial,
            single_ops: false,
        }
    }
}

/// SplitMix64: a small deterministic generator, so that histories depend on a seed only.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// One planned operation: its interval, outcome and values.
#[derive(Clone, Debug)]
pub struct Planned {
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: EventType,
    /// `Some(key)` for a single-key `append`/`read`, `None` for a `txn`.
    pub key: Option<String>,
    pub f: &'static str,
    pub invoke_value: Value,
    pub complete_value: Value,
    /// Runs on a process (and session) of its own.
    pub own_process: bool,
}

/// A set of planned operations, turned into a history by [`Plan::build`].
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub ops: Vec<Planned>,
    /// The time span used so far, for placing injected transactions.
    pub span: u64,
}

const BASE: u64 = 1_000_000;
const SLOT: u64 = 10;

fn mop_json(append: bool, key: &str, v: Value) -> Value {
    json!([if append { "append" } else { "r" }, key, v])
}

/// Generates a plan from a correct model.
pub fn generate(cfg: &Config, seed: u64) -> Plan {
    let mut rng = Rng::new(seed);
    let mut next_value = vec![1i64; cfg.keys.max(1) * (cfg.txns + 1)];
    // Versions per key: (commit time, list).
    let mut versions: Vec<Vec<(u64, Vec<i64>)>> = Vec::new();
    let mut plan = Plan::default();
    let max_mops = if cfg.single_ops {
        1
    } else {
        cfg.max_mops.max(1)
    };
    let spread = cfg.overlap * SLOT;
    for i in 0..cfg.txns {
        let commit = BASE + i as u64 * SLOT + 5;
        let start = match cfg.mode {
            Mode::Serial => commit,
            Mode::Snapshot => commit - rng.below(spread + 1),
        };
        let invoke_ns = start - rng.below(spread + 1);
        let complete_ns = commit + 1 + rng.below(spread + 1);
        let window = if cfg.key_rotation { i / 50 } else { 0 };
        let n = 1 + rng.below(max_mops as u64) as usize;
        let mut mops: Vec<(bool, usize, i64)> = Vec::new();
        for _ in 0..n {
            let key = window + rng.below(cfg.keys as u64) as usize;
            let append = rng.below(2) == 0;
            let value = if append {
                let slot = &mut next_value[key];
                *slot += 1;
                *slot - 1
            } else {
                0
            };
            mops.push((append, key, value));
        }
        while versions.len() <= window + cfg.keys {
            versions.push(vec![(0, Vec::new())]);
        }
        let roll = rng.below(100);
        let mut outcome = if roll < cfg.fail_pct {
            EventType::Fail
        } else if roll < cfg.fail_pct + cfg.info_pct {
            EventType::Info
        } else {
            EventType::Ok
        };
        // Snapshot reads, and first-committer-wins.
        let snapshot = |versions: &Vec<Vec<(u64, Vec<i64>)>>, key: usize| -> Vec<i64> {
            let vs = &versions[key];
            let at = vs.partition_point(|(t, _)| *t <= start);
            vs[at - 1].1.clone()
        };
        let conflict = mops.iter().any(|&(append, key, _)| {
            append && versions[key].last().is_some_and(|(t, _)| *t > start)
        });
        if conflict && cfg.mode == Mode::Snapshot && outcome == EventType::Ok {
            outcome = EventType::Fail;
        }
        let applies = match outcome {
            EventType::Ok => true,
            EventType::Info => !conflict && rng.below(2) == 0,
            _ => false,
        };
        let mut local: Vec<(usize, Vec<i64>)> = Vec::new();
        let mut invoke = Vec::new();
        let mut complete = Vec::new();
        for &(append, key, value) in &mops {
            let kname = format!("k{key}");
            let state = match local.iter_mut().find(|(k, _)| *k == key) {
                Some((_, s)) => s,
                None => {
                    local.push((key, snapshot(&versions, key)));
                    &mut local.last_mut().expect("just pushed").1
                }
            };
            if append {
                state.push(value);
                invoke.push(mop_json(true, &kname, json!(value)));
                complete.push(mop_json(true, &kname, json!(value)));
            } else {
                invoke.push(mop_json(false, &kname, Value::Null));
                complete.push(mop_json(false, &kname, json!(state.clone())));
            }
        }
        if applies {
            for (key, list) in local {
                if mops.iter().any(|&(a, k, _)| a && k == key) {
                    versions[key].push((commit, list));
                }
            }
        }
        let complete_value = if outcome == EventType::Ok {
            Value::Array(complete)
        } else {
            Value::Array(invoke.clone())
        };
        let (f, key, invoke_value, complete_value) = if cfg.single_ops {
            let (append, key, value) = mops[0];
            let kname = format!("k{key}");
            if append {
                ("append", Some(kname), json!(value), json!(value))
            } else {
                let read = complete_value[0][2].clone();
                let read = if outcome == EventType::Ok {
                    read
                } else {
                    Value::Null
                };
                ("read", Some(kname), Value::Null, read)
            }
        } else {
            ("txn", None, Value::Array(invoke), complete_value)
        };
        plan.ops.push(Planned {
            invoke_ns,
            complete_ns,
            outcome,
            key,
            f,
            invoke_value,
            complete_value,
            own_process: false,
        });
    }
    plan.span = cfg.txns as u64 * SLOT + 2 * spread + 10;
    plan
}

/// An anomaly to inject, on fresh keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inject {
    /// Two transactions' appends interleave in opposite orders on two keys.
    G0,
    /// A read observes a failed transaction's append.
    G1a,
    /// A read observes the middle of a transaction's appends to one key.
    G1b,
    /// Two transactions each read the other's append.
    G1c,
    /// Two transactions read the same version of a key and both append to it.
    LostUpdate,
    /// Two transactions read two keys and each appends to a different one.
    WriteSkew,
    /// A read sees one of a transaction's two appends but not the other.
    FracturedRead,
    /// A read shows one element twice.
    DuplicateAppend,
    /// A transaction reads a key without its own earlier append.
    Internal,
    /// A read shows an element nobody appended.
    Garbage,
    /// A read, invoked after an append completed, misses it.
    StaleRead,
}

impl Inject {
    pub const ALL: [Inject; 11] = [
        Inject::G0,
        Inject::G1a,
        Inject::G1b,
        Inject::G1c,
        Inject::LostUpdate,
        Inject::WriteSkew,
        Inject::FracturedRead,
        Inject::DuplicateAppend,
        Inject::Internal,
        Inject::Garbage,
        Inject::StaleRead,
    ];

    /// The transactions of the anomaly as (outcome, micro-ops with results, pinned order):
    /// pinned transactions run one after another at the end of the plan; others are placed at
    /// random times.
    fn txns(self) -> (Vec<(EventType, Value)>, bool) {
        let ok = EventType::Ok;
        match self {
            Inject::G0 => (
                vec![
                    (ok, json!([["append", "ia", 1], ["append", "ib", 1]])),
                    (ok, json!([["append", "ia", 2], ["append", "ib", 2]])),
                    (ok, json!([["r", "ia", [1, 2]], ["r", "ib", [2, 1]]])),
                ],
                false,
            ),
            Inject::G1a => (
                vec![
                    (EventType::Fail, json!([["append", "ia", 1]])),
                    (ok, json!([["r", "ia", [1]]])),
                ],
                false,
            ),
            Inject::G1b => (
                vec![
                    (ok, json!([["append", "ia", 1], ["append", "ia", 2]])),
                    (ok, json!([["r", "ia", [1]]])),
                ],
                false,
            ),
            Inject::G1c => (
                vec![
                    (ok, json!([["append", "ia", 1], ["r", "ib", [1]]])),
                    (ok, json!([["append", "ib", 1], ["r", "ia", [1]]])),
                ],
                false,
            ),
            Inject::LostUpdate => (
                vec![
                    (ok, json!([["r", "ia", []], ["append", "ia", 1]])),
                    (ok, json!([["r", "ia", []], ["append", "ia", 2]])),
                    (ok, json!([["r", "ia", [1, 2]]])),
                ],
                false,
            ),
            Inject::WriteSkew => (
                vec![
                    (
                        ok,
                        json!([["r", "ia", []], ["r", "ib", []], ["append", "ia", 1]]),
                    ),
                    (
                        ok,
                        json!([["r", "ia", []], ["r", "ib", []], ["append", "ib", 1]]),
                    ),
                    (ok, json!([["r", "ia", [1]], ["r", "ib", [1]]])),
                ],
                false,
            ),
            Inject::FracturedRead => (
                vec![
                    (ok, json!([["append", "ia", 1], ["append", "ib", 1]])),
                    (ok, json!([["r", "ia", [1]], ["r", "ib", []]])),
                ],
                false,
            ),
            Inject::DuplicateAppend => (
                vec![
                    (ok, json!([["append", "ia", 1]])),
                    (ok, json!([["r", "ia", [1, 1]]])),
                ],
                false,
            ),
            Inject::Internal => (
                vec![(ok, json!([["append", "ia", 1], ["r", "ia", []]]))],
                false,
            ),
            Inject::Garbage => (vec![(ok, json!([["r", "ia", [77]]]))], false),
            Inject::StaleRead => (
                vec![
                    (ok, json!([["append", "ia", 1]])),
                    (ok, json!([["r", "ia", []]])),
                ],
                true,
            ),
        }
    }
}

fn blank_reads(mops: &Value) -> Value {
    Value::Array(
        mops.as_array()
            .expect("mops are a list")
            .iter()
            .map(|m| {
                if m[0] == "r" {
                    json!(["r", m[1], null])
                } else {
                    m.clone()
                }
            })
            .collect(),
    )
}

impl Plan {
    /// Adds the transactions of `anomaly` at times drawn from `seed`.
    pub fn inject(&mut self, anomaly: Inject, seed: u64) {
        let mut rng = Rng::new(seed ^ 0x5eed);
        let (txns, pinned) = anomaly.txns();
        let mut t = BASE + self.span + 10;
        for (outcome, mops) in txns {
            let (invoke_ns, complete_ns) = if pinned {
                t += 10;
                (t, t + 5)
            } else {
                let at = BASE + rng.below(self.span + 1);
                (at, at + 1 + rng.below(40))
            };
            let complete_value = if outcome == EventType::Ok {
                mops.clone()
            } else {
                blank_reads(&mops)
            };
            self.ops.push(Planned {
                invoke_ns,
                complete_ns,
                outcome,
                key: None,
                f: "txn",
                invoke_value: blank_reads(&mops),
                complete_value,
                own_process: true,
            });
        }
        self.span = self.span.max(t + 20 - BASE);
    }

    /// Assigns processes (one operation at a time each; retired after `info`) and writes
    /// the events in time order, completions before invocations at equal times.
    pub fn build(&self) -> History {
        let mut order: Vec<usize> = (0..self.ops.len()).collect();
        order.sort_by_key(|&i| (self.ops[i].invoke_ns, i));
        let mut free_at: Vec<u64> = Vec::new();
        let mut process = vec![0u64; self.ops.len()];
        for &i in &order {
            let op = &self.ops[i];
            let reuse = if op.own_process {
                None
            } else {
                free_at.iter().position(|&f| f < op.invoke_ns)
            };
            let p = match reuse {
                Some(p) => p,
                None => {
                    free_at.push(0);
                    free_at.len() - 1
                }
            };
            free_at[p] = if op.outcome == EventType::Info || op.own_process {
                u64::MAX
            } else {
                op.complete_ns
            };
            process[i] = p as u64;
        }
        // (time, completion first, op, is invoke)
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(self.ops.len() * 2);
        for (i, op) in self.ops.iter().enumerate() {
            events.push((op.invoke_ns, 1, i));
            events.push((op.complete_ns, 0, i));
        }
        events.sort_unstable();
        let events = events
            .into_iter()
            .enumerate()
            .map(|(index, (time_ns, completion, i))| {
                let op = &self.ops[i];
                let (event_type, value) = if completion == 1 {
                    (EventType::Invoke, op.invoke_value.clone())
                } else {
                    (op.outcome, op.complete_value.clone())
                };
                Event {
                    index: index as u64,
                    process: process[i],
                    session: None,
                    event_type,
                    f: op.f.to_string(),
                    key: op.key.clone(),
                    value,
                    time_ns,
                    node: None,
                }
            })
            .collect();
        History::from_events(events).expect("generated histories are well-formed")
    }
}
