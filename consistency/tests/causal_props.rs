//! Soundness and completeness of the causal checker (DESIGN.md §10): histories from replicas
//! with causal delivery are causally consistent (and convergent when replicas arbitrate by
//! last-writer-wins); injecting a read of an effect without its cause makes them invalid.

use std::collections::HashMap;

use dialkv_consistency::causal::{check, CausalModel};
use dialkv_consistency::history::{History, HistoryBuilder};
use proptest::prelude::*;
use serde_json::{json, Value};

/// An arbitration timestamp: (Lamport time, origin replica).
type Stamp = (u64, usize);

/// One update in flight: from its origin replica, with the origin's applied vector.
#[derive(Clone, Debug)]
struct Update {
    origin: usize,
    /// 1-based position among the origin's updates.
    seq: u64,
    deps: Vec<u64>,
    key: usize,
    value: i64,
    ts: Stamp,
}

/// Replicas with causal delivery (an update is applied only after everything its origin had
/// applied when it was issued), as `quorum` namespaces do under `CAUSAL` (DESIGN.md §6).
struct Cluster {
    applied: Vec<Vec<u64>>,
    lamport: Vec<u64>,
    /// Per replica and key: (timestamp, value) of the visible write.
    store: Vec<HashMap<usize, (Stamp, i64)>>,
    /// Updates not yet applied, per destination.
    pending: Vec<Vec<Update>>,
    /// Last-writer-wins (convergent) or last-applied-wins (causal only).
    lww: bool,
    /// Whether delivery waits for dependencies (turned off to make a broken store).
    causal_delivery: bool,
}

impl Cluster {
    fn new(replicas: usize, lww: bool) -> Cluster {
        Cluster {
            applied: vec![vec![0; replicas]; replicas],
            lamport: vec![0; replicas],
            store: vec![HashMap::new(); replicas],
            pending: vec![Vec::new(); replicas],
            lww,
            causal_delivery: true,
        }
    }

    fn apply(&mut self, at: usize, u: &Update) {
        self.lamport[at] = self.lamport[at].max(u.ts.0);
        self.applied[at][u.origin] += 1;
        let cur = self.store[at].get(&u.key).map(|(ts, _)| *ts);
        if !self.lww || cur.is_none_or(|c| c < u.ts) {
            self.store[at].insert(u.key, (u.ts, u.value));
        }
    }

    fn write(&mut self, at: usize, key: usize, value: i64, broadcast: bool) {
        self.lamport[at] += 1;
        let u = Update {
            origin: at,
            seq: self.applied[at][at] + 1,
            deps: self.applied[at].clone(),
            key,
            value,
            ts: (self.lamport[at], at),
        };
        self.apply(at, &u);
        for d in 0..self.pending.len() {
            if d != at && broadcast {
                self.pending[d].push(u.clone());
            }
        }
    }

    fn deliverable(&self, at: usize, u: &Update) -> bool {
        !self.causal_delivery
            || self.applied[at][u.origin] + 1 == u.seq
                && (0..u.deps.len()).all(|o| o == u.origin || self.applied[at][o] >= u.deps[o])
    }

    /// Applies one deliverable pending update at `at`, chosen by `pick`.
    fn deliver(&mut self, at: usize, pick: usize) {
        let ready: Vec<usize> = (0..self.pending[at].len())
            .filter(|&i| self.deliverable(at, &self.pending[at][i]))
            .collect();
        if ready.is_empty() {
            return;
        }
        let u = self.pending[at].remove(ready[pick % ready.len()]);
        self.apply(at, &u);
    }

    fn read(&self, at: usize, key: usize) -> Option<i64> {
        self.store[at].get(&key).map(|(_, v)| *v)
    }
}

/// Writes operations one at a time.
struct Recorder {
    b: HistoryBuilder,
    t: u64,
}

impl Recorder {
    fn op(&mut self, p: u64, f: &str, key: &str, invoke: Value, outcome: &str, result: Value) {
        self.t += 2;
        self.b.invoke(p, f, key, invoke, self.t);
        match outcome {
            "ok" => self.b.ok(p, f, key, result, self.t + 1),
            "fail" => self.b.fail(p, f, key, result, self.t + 1),
            _ => self.b.info(p, f, key, result, self.t + 1),
        };
    }
}

/// Runs `steps` random steps (an operation of a random session, or a delivery) on a cluster
/// and records the history. Sessions stay on one replica; a session whose operation ends
/// `info` continues on a new process.
fn run(
    replicas: usize,
    sessions: usize,
    keys: usize,
    steps: &[(u8, u8, u8, u8)],
    lww: bool,
) -> Recorder {
    run_on(Cluster::new(replicas, lww), sessions, keys, steps)
}

/// Like [`run`], on a given cluster.
fn run_on(mut c: Cluster, sessions: usize, keys: usize, steps: &[(u8, u8, u8, u8)]) -> Recorder {
    let replicas = c.applied.len();
    let mut rec = Recorder {
        b: HistoryBuilder::new(),
        t: 0,
    };
    let mut process: Vec<u64> = (0..sessions as u64).collect();
    let mut next_process = sessions as u64;
    let mut next_value = 1i64;
    for &(kind, a, b, outcome) in steps {
        let s = a as usize % sessions;
        let at = s % replicas;
        let key = b as usize % keys;
        let kname = format!("k{key}");
        let outcome = match outcome % 20 {
            0 => "fail",
            1 => "info",
            _ => "ok",
        };
        match kind % 3 {
            0 => {
                let v = next_value;
                next_value += 1;
                match outcome {
                    "ok" => c.write(at, key, v, true),
                    "info" if b % 2 == 0 => c.write(at, key, v, true),
                    _ => {}
                }
                rec.b.session(process[s], s as u64);
                rec.op(process[s], "write", &kname, json!(v), outcome, json!(v));
            }
            1 => {
                let v = c.read(at, key);
                rec.b.session(process[s], s as u64);
                let result = if outcome == "ok" {
                    json!(v)
                } else {
                    Value::Null
                };
                rec.op(process[s], "read", &kname, Value::Null, outcome, result);
            }
            _ => c.deliver(at, b as usize),
        }
        if outcome == "info" && kind % 3 != 2 {
            process[s] = next_process;
            next_process += 1;
        }
    }
    rec
}

/// Appends a read of an effect without its cause, on fresh keys and sessions.
fn inject(rec: &mut Recorder, variant: bool) {
    let (a, b, c) = (9001, 9002, 9003);
    if variant {
        // WriteCORead: c sees b's write (caused by a's second write) and then a's first.
        rec.op(a, "write", "cause", json!(-1), "ok", json!(-1));
        rec.op(a, "write", "cause", json!(-2), "ok", json!(-2));
        rec.op(b, "read", "cause", Value::Null, "ok", json!(-2));
        rec.op(b, "write", "effect", json!(-3), "ok", json!(-3));
        rec.op(c, "read", "effect", Value::Null, "ok", json!(-3));
        rec.op(c, "read", "cause", Value::Null, "ok", json!(-1));
    } else {
        // WriteCOInitRead: c sees the effect, then the initial value of the cause.
        rec.op(a, "write", "cause", json!(-1), "ok", json!(-1));
        rec.op(b, "read", "cause", Value::Null, "ok", json!(-1));
        rec.op(b, "write", "effect", json!(-3), "ok", json!(-3));
        rec.op(c, "read", "effect", Value::Null, "ok", json!(-3));
        rec.op(c, "read", "cause", Value::Null, "ok", json!(null));
    }
}

fn build(rec: Recorder) -> History {
    rec.b.build().expect("recorded histories are well-formed")
}

fn steps() -> impl Strategy<Value = Vec<(u8, u8, u8, u8)>> {
    prop::collection::vec(any::<(u8, u8, u8, u8)>(), 0..150)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn lww_replicas_with_causal_delivery_are_ccv(
        replicas in 1usize..4, sessions in 1usize..6, keys in 1usize..4, steps in steps(),
    ) {
        let h = build(run(replicas, sessions, keys, &steps, true));
        for model in [CausalModel::CC, CausalModel::CCv] {
            let v = check(&h, model);
            prop_assert!(v.is_valid(), "{model}: {v}\n{}", h.to_jsonl());
        }
    }

    #[test]
    fn last_applied_replicas_are_cc(
        replicas in 1usize..4, sessions in 1usize..6, keys in 1usize..4, steps in steps(),
    ) {
        let h = build(run(replicas, sessions, keys, &steps, false));
        let v = check(&h, CausalModel::CC);
        prop_assert!(v.is_valid(), "{v}\n{}", h.to_jsonl());
    }

    #[test]
    fn effect_without_cause_is_caught(
        replicas in 1usize..4, sessions in 1usize..6, keys in 1usize..4, steps in steps(),
        variant in any::<bool>(), lww in any::<bool>(),
    ) {
        let mut rec = run(replicas, sessions, keys, &steps, lww);
        inject(&mut rec, variant);
        let h = build(rec);
        let expected = if variant { "WriteCORead" } else { "WriteCOInitRead" };
        for model in [CausalModel::CC, CausalModel::CCv] {
            let v = check(&h, model);
            prop_assert_eq!(v.anomaly(), Some(expected), "{}: {}\n{}", model, v, h.to_jsonl());
        }
    }
}

/// Without arbitration, replicas can disagree for ever: some such runs are CC but not CCv.
#[test]
fn last_applied_replicas_can_diverge() {
    let mut diverged = 0;
    for seed in 0u64..300 {
        let mut x = seed;
        let mut steps = Vec::new();
        for _ in 0..60 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let b = x.to_le_bytes();
            steps.push((b[4], b[5], b[6], b[7] | 2));
        }
        let h = build(run(2, 2, 1, &steps, false));
        assert!(check(&h, CausalModel::CC).is_valid(), "seed {seed}");
        if let Some(a) = check(&h, CausalModel::CCv).anomaly() {
            assert_eq!(a, "CyclicCF", "seed {seed}");
            diverged += 1;
        }
    }
    assert!(diverged > 0, "no run showed divergent arbitration");
}

/// Without causal delivery, replicas apply effects before their causes: the checker sees it.
#[test]
fn replicas_without_causal_delivery_are_caught() {
    let mut caught = 0;
    for seed in 0u64..300 {
        let mut x = seed;
        let mut steps = Vec::new();
        for _ in 0..80 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let b = x.to_le_bytes();
            steps.push((b[4], b[5], b[6], b[7] | 2));
        }
        let mut cluster = Cluster::new(3, true);
        cluster.causal_delivery = false;
        let h = build(run_on(cluster, 3, 2, &steps));
        if !check(&h, CausalModel::CC).is_valid() {
            caught += 1;
        }
    }
    assert!(
        caught > 10,
        "only {caught} of 300 runs without causal delivery were caught"
    );
}
