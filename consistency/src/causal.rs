//! Causal consistency checking of register histories, after Bouajjani, Enea, Guerraoui and
//! Hamza, "On Verifying Causal Consistency" (POPL 2017).
//!
//! The paper shows that for *differentiated* histories (every value written at most once per
//! key) causal consistency reduces to the absence of a few *bad patterns* over the causal
//! order `co = (so ∪ wr)⁺`, where `so` is session order and `wr` relates a write to the reads
//! of its value:
//!
//! - `CyclicCO`: `co` is cyclic;
//! - `WriteCOInitRead`: a read of the initial value (`null`) has a write to its key in its
//!   causal past;
//! - `ThinAirRead`: a read returns a value no write wrote to that key;
//! - `WriteCORead`: `w1 <co w2 <co r` with `w1`, `w2` writes to one key and `r` reading
//!   `w1`'s value (the read should have seen `w2` or something later);
//! - `CyclicCF` (causal convergence, CCv, only): `cf ∪ co` is cyclic, where `w1 cf w2` when
//!   `w1 <co r` for a read `r` of `w2`'s value (`w1 ≠ w2`, same key): the arbitration order
//!   that convergence needs cannot exist.
//!
//! CC is the absence of the first four; CCv adds the fifth (the paper's Lemmas for CC and
//! CCv). Causal memory (CM, with `WriteHBInitRead` and `CyclicHB`) is not checked here.
//!
//! Operations: `f = "write"` (integer value) and `f = "read"` (integer or `null`), grouped into
//! sessions by [`Op::session`]. A `fail` operation never happened and is dropped; an `info`
//! read is dropped (its result is unknown); an `info` write is kept only if some read returned
//! its value, and it then precedes nothing in session order, since it may have taken effect
//! arbitrarily late. `final-read` operations (convergence probes) are ignored.
//!
//! Implementation: the causal past of every operation is a vector clock over *chains* (each
//! session's determinate operations, plus one chain per observed `info` write), computed in
//! topological order of `so ∪ wr`; `a <co b` is then one comparison. The patterns need only
//! the latest write of a key per chain in a read's past, so checking is
//! O(n · chains · log n). Witnesses are the shortest causal paths or cycles found.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use crate::history::{History, Op, OpKind, SessionId};
use crate::verdict::{Verdict, WitnessOp};

/// Which causal model to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CausalModel {
    /// Causal consistency (CC): every session sees writes in an order consistent with
    /// causality; concurrent writes may be seen in different orders by different sessions.
    CC,
    /// Causal convergence (CCv): CC, and all sessions order conflicting writes by one
    /// arbitration order, so replicas converge.
    CCv,
}

impl CausalModel {
    /// Returns the model's name (`causal`, `causal-convergence`), as used in `.expect` files.
    pub fn name(self) -> &'static str {
        match self {
            CausalModel::CC => "causal",
            CausalModel::CCv => "causal-convergence",
        }
    }
}

impl fmt::Display for CausalModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CausalModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "causal" | "cc" => Ok(CausalModel::CC),
            "causal-convergence" | "ccv" => Ok(CausalModel::CCv),
            other => Err(format!("unknown causal model {other:?}")),
        }
    }
}

/// Largest vector-clock table (operations × chains) the checker builds.
const MAX_CLOCK_CELLS: usize = 200_000_000;

/// Breadth-first searches after which the shortest cycle found so far is the witness.
const MAX_CYCLE_SEARCHES: usize = 2_000;

/// Why one operation precedes another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    /// Session order.
    So,
    /// Read-from.
    Wr,
    /// Conflict order (CCv).
    Cf,
}

impl Rel {
    fn name(self) -> &'static str {
        match self {
            Rel::So => "so",
            Rel::Wr => "wr",
            Rel::Cf => "cf",
        }
    }
}

/// The writes of one key on one chain: (chain, [(position on the chain, node)]).
type ChainWrites = (u32, Vec<(u32, u32)>);

/// An operation kept for checking.
struct Node<'h> {
    op: &'h Op,
    key: u32,
    write: bool,
    /// Written value, or value read (`None`: the initial value).
    value: Option<i64>,
    chain: u32,
    pos: u32,
}

/// The checker's state for one history.
struct Causal<'h> {
    nodes: Vec<Node<'h>>,
    keys: Vec<&'h str>,
    /// Out-edges (`so` and `wr`), then `cf` when checking CCv.
    succ: Vec<Vec<(u32, Rel)>>,
    /// For each read node, the write it read from.
    read_from: Vec<Option<u32>>,
    chains: usize,
    /// `clock[v * chains + c]`: how many operations of chain `c` are in `v`'s causal past,
    /// `v` included.
    clock: Vec<u32>,
    /// Per key: the chains that write it, each with its writes in order.
    writes: Vec<Vec<ChainWrites>>,
}

/// Checks a differentiated register history against `model`.
///
/// Returns `Unknown` when the history is not one the paper's reduction covers (a value written
/// twice to one key, an operation other than `read`/`write`) or is too large for the clock
/// table.
pub fn check(history: &History, model: CausalModel) -> Verdict {
    let mut c = match Causal::build(history) {
        Ok(c) => c,
        Err(v) => return v,
    };
    if let Some(v) = c.cyclic(Rel::Wr, "CyclicCO", model) {
        return v;
    }
    if c.nodes.len().saturating_mul(c.chains) > MAX_CLOCK_CELLS {
        return Verdict::unknown(format!(
            "{} operations over {} sessions need more than {MAX_CLOCK_CELLS} clock entries",
            c.nodes.len(),
            c.chains
        ));
    }
    c.clocks();
    if let Some(v) = c.write_co_init_read(model) {
        return v;
    }
    if let Some(v) = c.write_co_read(model) {
        return v;
    }
    if model == CausalModel::CCv {
        c.add_conflicts();
        if let Some(v) = c.cyclic(Rel::Cf, "CyclicCF", model) {
            return v;
        }
    }
    Verdict::Valid
}

impl<'h> Causal<'h> {
    /// Collects the operations, finds thin-air reads and builds `so ∪ wr`.
    fn build(history: &'h History) -> Result<Causal<'h>, Verdict> {
        let mut key_ids: HashMap<&'h str, u32> = HashMap::new();
        let mut keys: Vec<&'h str> = Vec::new();
        let mut key_of = |k: &'h str| -> u32 {
            *key_ids.entry(k).or_insert_with(|| {
                keys.push(k);
                u32::try_from(keys.len() - 1).expect("fewer than 2^32 keys")
            })
        };
        // (op, key, is write, value) for every operation that may matter.
        let mut cands: Vec<(&'h Op, u32, bool, Option<i64>)> = Vec::new();
        let mut written: HashMap<(u32, i64), usize> = HashMap::new();
        let mut failed: HashMap<(u32, i64), &'h Op> = HashMap::new();
        for op in history.ops() {
            let write = match op.f.as_str() {
                "write" => true,
                "read" => false,
                "final-read" => continue,
                other => {
                    return Err(Verdict::unknown(format!(
                        "causal checking covers register read/write histories; operation #{} is {other:?}",
                        op.index
                    )))
                }
            };
            let key =
                key_of(op.key.as_deref().ok_or_else(|| {
                    Verdict::unknown(format!("operation #{} has no key", op.index))
                })?);
            let value = op
                .int_value()
                .map_err(|e| Verdict::unknown(e.to_string()))?;
            if write {
                let Some(v) = value else {
                    return Err(Verdict::unknown(format!(
                        "write #{} has no value",
                        op.index
                    )));
                };
                if op.kind == OpKind::Fail {
                    failed.insert((key, v), op);
                    continue;
                }
                if let Some(&prev) = written.get(&(key, v)) {
                    return Err(Verdict::unknown(format!(
                        "value {v} is written to key {:?} twice (#{} and #{}); the check needs \
                         differentiated histories",
                        keys[key as usize], cands[prev].0.index, op.index
                    )));
                }
                written.insert((key, v), cands.len());
            } else if op.kind != OpKind::Ok {
                continue;
            }
            cands.push((op, key, write, value));
        }
        // Thin-air reads, and which info writes were observed.
        let mut observed = vec![false; cands.len()];
        for &(op, key, write, value) in &cands {
            let (false, Some(v)) = (write, value) else {
                continue;
            };
            match written.get(&(key, v)) {
                Some(&w) => observed[w] = true,
                None => {
                    let mut witness = vec![WitnessOp::from(op).with_role("thin-air read")];
                    let why = match failed.get(&(key, v)) {
                        Some(f) => {
                            witness.insert(0, WitnessOp::from(*f).with_role("failed write"));
                            format!("only write #{}, which failed, wrote it", f.index)
                        }
                        None => "no operation wrote it".to_string(),
                    };
                    return Err(Verdict::invalid(
                        "ThinAirRead",
                        witness,
                        format!(
                            "read #{} returned {v} for key {:?}, but {why}",
                            op.index, keys[key as usize]
                        ),
                    ));
                }
            }
        }
        // Chains: each session's determinate operations; one chain per observed info write.
        let mut chain_of_session: HashMap<SessionId, u32> = HashMap::new();
        let mut chain_len: Vec<u32> = Vec::new();
        let mut last_in_session: HashMap<SessionId, u32> = HashMap::new();
        let mut nodes: Vec<Node<'h>> = Vec::new();
        let mut node_of_cand = vec![u32::MAX; cands.len()];
        let mut preds: Vec<(u32, u32, Rel)> = Vec::new();
        for (i, &(op, key, write, value)) in cands.iter().enumerate() {
            let info = op.kind == OpKind::Info;
            if info && !observed[i] {
                continue;
            }
            let id = u32::try_from(nodes.len()).expect("fewer than 2^32 operations");
            let chain = if info {
                chain_len.push(0);
                u32::try_from(chain_len.len() - 1).expect("fewer than 2^32 chains")
            } else {
                *chain_of_session.entry(op.session).or_insert_with(|| {
                    chain_len.push(0);
                    u32::try_from(chain_len.len() - 1).expect("fewer than 2^32 chains")
                })
            };
            let pos = chain_len[chain as usize];
            chain_len[chain as usize] += 1;
            if let Some(&p) = last_in_session.get(&op.session) {
                preds.push((p, id, Rel::So));
            }
            if !info {
                last_in_session.insert(op.session, id);
            }
            node_of_cand[i] = id;
            nodes.push(Node {
                op,
                key,
                write,
                value,
                chain,
                pos,
            });
        }
        let mut read_from = vec![None; nodes.len()];
        let mut succ: Vec<Vec<(u32, Rel)>> = vec![Vec::new(); nodes.len()];
        for (id, n) in nodes.iter().enumerate() {
            if let (false, Some(v)) = (n.write, n.value) {
                let w = node_of_cand[written[&(n.key, v)]];
                let id = u32::try_from(id).expect("fewer than 2^32 operations");
                read_from[id as usize] = Some(w);
                preds.push((w, id, Rel::Wr));
            }
        }
        for (from, to, rel) in preds {
            succ[from as usize].push((to, rel));
        }
        let mut writes: Vec<HashMap<u32, Vec<(u32, u32)>>> = vec![HashMap::new(); keys.len()];
        for (id, n) in nodes.iter().enumerate() {
            if n.write {
                let id = u32::try_from(id).expect("fewer than 2^32 operations");
                writes[n.key as usize]
                    .entry(n.chain)
                    .or_default()
                    .push((n.pos, id));
            }
        }
        let writes = writes
            .into_iter()
            .map(|m| {
                let mut v: Vec<_> = m.into_iter().collect();
                v.sort_by_key(|(c, _)| *c);
                v
            })
            .collect();
        Ok(Causal {
            nodes,
            keys,
            succ,
            read_from,
            chains: chain_len.len(),
            clock: Vec::new(),
            writes,
        })
    }

    /// Fills in the vector clocks in topological order (the graph is acyclic by now).
    fn clocks(&mut self) {
        let n = self.nodes.len();
        let c = self.chains;
        self.clock = vec![0; n * c];
        let order = self.topological().expect("so ∪ wr is acyclic here");
        for v in order {
            let v = v as usize;
            let own = self.nodes[v].chain as usize;
            let entry = &mut self.clock[v * c + own];
            *entry = (*entry).max(self.nodes[v].pos + 1);
            for &(w, _) in &self.succ[v] {
                let w = w as usize;
                // Split so both rows can be borrowed: v's row is read, w's row is joined.
                let (lo, hi) = self.clock.split_at_mut(v.max(w) * c);
                let (src, dst) = if v < w {
                    (&lo[v * c..v * c + c], &mut hi[..c])
                } else {
                    (&hi[..c], &mut lo[w * c..w * c + c])
                };
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = (*d).max(*s);
                }
            }
        }
    }

    /// True when `a <co b`.
    fn co(&self, a: u32, b: u32) -> bool {
        let na = &self.nodes[a as usize];
        a != b && self.clock[b as usize * self.chains + na.chain as usize] > na.pos
    }

    /// For read `r` of `key`, the latest write of `key` on each chain in `r`'s causal past.
    fn latest_writes_before(&self, r: u32) -> impl Iterator<Item = u32> + '_ {
        let n = &self.nodes[r as usize];
        let row = &self.clock[r as usize * self.chains..(r as usize + 1) * self.chains];
        self.writes[n.key as usize]
            .iter()
            .filter_map(move |(chain, ws)| {
                let bound = row[*chain as usize];
                let k = ws.partition_point(|(pos, _)| *pos < bound);
                (k > 0).then(|| ws[k - 1].1)
            })
            .filter(move |&w| w != r)
    }

    fn write_co_init_read(&self, model: CausalModel) -> Option<Verdict> {
        for (r, n) in self.nodes.iter().enumerate() {
            if n.write || n.value.is_some() {
                continue;
            }
            let r = u32::try_from(r).expect("fewer than 2^32 operations");
            if let Some(w) = self.latest_writes_before(r).next() {
                let path = self.path(w, r);
                return Some(self.invalid(
                    "WriteCOInitRead",
                    model,
                    &path,
                    format!(
                        "read {} returned the initial value of key {:?}, but write {} is in its \
                         causal past: {}",
                        self.label(r),
                        self.keys[n.key as usize],
                        self.label(w),
                        self.show_path(&path)
                    ),
                ));
            }
        }
        None
    }

    fn write_co_read(&self, model: CausalModel) -> Option<Verdict> {
        for r in 0..self.nodes.len() {
            let r = u32::try_from(r).expect("fewer than 2^32 operations");
            let Some(w1) = self.read_from[r as usize] else {
                continue;
            };
            let Some(w2) = self
                .latest_writes_before(r)
                .find(|&w2| w2 != w1 && self.co(w1, w2))
            else {
                continue;
            };
            let mut path = self.path(w1, w2);
            path.pop();
            path.extend(self.path(w2, r));
            return Some(self.invalid(
                "WriteCORead",
                model,
                &path,
                format!(
                    "read {} returned the value of write {}, but write {} to the same key is \
                     causally between them: {}",
                    self.label(r),
                    self.label(w1),
                    self.label(w2),
                    self.show_path(&path)
                ),
            ));
        }
        None
    }

    /// Adds the conflict edges `w1 cf w2` (CCv), keeping only the latest `w1` per chain: the
    /// earlier ones reach `w2` through session order anyway, so cycles are unchanged.
    fn add_conflicts(&mut self) {
        let mut cf = Vec::new();
        for r in 0..self.nodes.len() {
            let r = u32::try_from(r).expect("fewer than 2^32 operations");
            if let Some(w2) = self.read_from[r as usize] {
                cf.extend(
                    self.latest_writes_before(r)
                        .filter(|&w1| w1 != w2)
                        .map(|w1| (w1, w2)),
                );
            }
        }
        for (w1, w2) in cf {
            self.succ[w1 as usize].push((w2, Rel::Cf));
        }
    }

    /// Kahn's algorithm; returns the order, or the nodes left on or behind a cycle.
    fn topological(&self) -> Result<Vec<u32>, Vec<bool>> {
        let n = self.nodes.len();
        let mut indeg = vec![0u32; n];
        for out in &self.succ {
            for &(w, _) in out {
                indeg[w as usize] += 1;
            }
        }
        let mut queue: VecDeque<u32> = (0..n)
            .filter(|&v| indeg[v] == 0)
            .map(|v| u32::try_from(v).expect("fewer than 2^32 operations"))
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(v) = queue.pop_front() {
            order.push(v);
            for &(w, _) in &self.succ[v as usize] {
                indeg[w as usize] -= 1;
                if indeg[w as usize] == 0 {
                    queue.push_back(w);
                }
            }
        }
        if order.len() == n {
            Ok(order)
        } else {
            Err(indeg.iter().map(|&d| d > 0).collect())
        }
    }

    /// Looks for a cycle in the current edges; the witness is the shortest cycle through an
    /// edge of kind `through` (every cycle has one: session order alone is acyclic, and with
    /// conflict edges added the `so ∪ wr` part was already found acyclic).
    fn cyclic(&self, through: Rel, anomaly: &str, model: CausalModel) -> Option<Verdict> {
        let stuck = self.topological().err()?;
        let mut best: Option<Vec<(u32, Rel)>> = None;
        let mut searches = 0;
        'outer: for (a, out) in self.succ.iter().enumerate() {
            if !stuck[a] {
                continue;
            }
            for &(b, rel) in out {
                if rel != through || !stuck[b as usize] {
                    continue;
                }
                let a = u32::try_from(a).expect("fewer than 2^32 operations");
                if let Some(p) = self.bfs(b, a, Some(&stuck)) {
                    let mut cycle = vec![(a, rel)];
                    cycle.extend(p);
                    if best.as_ref().is_none_or(|c| cycle.len() < c.len()) {
                        best = Some(cycle);
                    }
                }
                searches += 1;
                if best
                    .as_ref()
                    .is_some_and(|c| searches >= MAX_CYCLE_SEARCHES || c.len() <= 3)
                {
                    break 'outer;
                }
            }
        }
        let cycle = best.expect("a stuck node lies on or behind a cycle through such an edge");
        let text = self.show_path(&cycle);
        let what = match through {
            Rel::Cf => "no arbitration order of conflicting writes agrees with causality",
            _ => "causal order is cyclic",
        };
        Some(self.invalid(anomaly, model, &cycle, format!("{what}: {text}")))
    }

    /// Shortest path `from ⇝ to` over the current edges, as (node, relation to the next
    /// node) pairs ending with (`to`, `So`); inside `within` when given.
    fn bfs(&self, from: u32, to: u32, within: Option<&[bool]>) -> Option<Vec<(u32, Rel)>> {
        let n = self.nodes.len();
        let mut parent: Vec<Option<(u32, Rel)>> = vec![None; n];
        let mut seen = vec![false; n];
        seen[from as usize] = true;
        let mut queue = VecDeque::from([from]);
        while let Some(v) = queue.pop_front() {
            if v == to {
                let mut path = vec![(to, Rel::So)];
                let mut cur = to;
                while let Some((p, rel)) = parent[cur as usize] {
                    path.push((p, rel));
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            for &(w, rel) in &self.succ[v as usize] {
                if seen[w as usize] || within.is_some_and(|s| !s[w as usize]) {
                    continue;
                }
                seen[w as usize] = true;
                parent[w as usize] = Some((v, rel));
                queue.push_back(w);
            }
        }
        None
    }

    /// The shortest causal path `from ⇝ to` (which exists when `from <co to`).
    fn path(&self, from: u32, to: u32) -> Vec<(u32, Rel)> {
        self.bfs(from, to, None)
            .expect("a causal-order pair is joined by a so/wr path")
    }

    fn label(&self, v: u32) -> String {
        let n = &self.nodes[v as usize];
        let value = n
            .value
            .map_or_else(|| "init".to_string(), |v| v.to_string());
        let f = if n.write { "w" } else { "r" };
        format!("{f}({},{value})#{}", self.keys[n.key as usize], n.op.index)
    }

    /// `w(x,1)#0 -so-> r(y,2)#4 -wr-> ...`; a cycle lists its first operation again at the end.
    fn show_path(&self, path: &[(u32, Rel)]) -> String {
        let mut s = String::new();
        for (i, &(v, rel)) in path.iter().enumerate() {
            s.push_str(&self.label(v));
            if i + 1 < path.len() {
                s.push_str(&format!(" -{}-> ", rel.name()));
            }
        }
        s
    }

    fn invalid(
        &self,
        anomaly: &str,
        model: CausalModel,
        path: &[(u32, Rel)],
        text: String,
    ) -> Verdict {
        let mut witness: Vec<WitnessOp> = Vec::new();
        for (i, &(v, rel)) in path.iter().enumerate() {
            let role = if i + 1 < path.len() {
                format!("-{}-> {}", rel.name(), self.label(path[i + 1].0))
            } else {
                "end".to_string()
            };
            let w = WitnessOp::from(self.nodes[v as usize].op).with_role(role);
            if !witness.iter().any(|x| x.index == w.index) {
                witness.push(w);
            }
        }
        witness.sort_by_key(|w| w.index);
        Verdict::invalid(
            anomaly,
            witness,
            format!("{model} forbids {anomaly}: {text}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryBuilder;
    use serde_json::{json, Value};

    /// Writes register histories where each operation runs alone, in the order given.
    #[derive(Default)]
    struct H {
        b: HistoryBuilder,
        t: u64,
    }

    impl H {
        fn w(&mut self, p: u64, key: &str, v: i64) -> &mut Self {
            self.t += 2;
            self.b.invoke(p, "write", key, json!(v), self.t);
            self.b.ok(p, "write", key, json!(v), self.t + 1);
            self
        }

        fn r(&mut self, p: u64, key: &str, v: Option<i64>) -> &mut Self {
            self.t += 2;
            self.b.invoke(p, "read", key, Value::Null, self.t);
            self.b.ok(p, "read", key, json!(v), self.t + 1);
            self
        }

        fn check(self, model: CausalModel) -> Option<String> {
            let h = self.b.build().expect("test histories are well-formed");
            match check(&h, model) {
                Verdict::Valid => None,
                Verdict::Invalid { anomaly, .. } => Some(anomaly),
                Verdict::Unknown { reason } => panic!("unknown: {reason}"),
            }
        }
    }

    fn both(f: impl Fn(&mut H)) -> (Option<String>, Option<String>) {
        let mut a = H::default();
        f(&mut a);
        let mut b = H::default();
        f(&mut b);
        (a.check(CausalModel::CC), b.check(CausalModel::CCv))
    }

    #[test]
    fn causal_histories_pass() {
        let r = both(|h| {
            h.w(1, "x", 1)
                .r(2, "x", Some(1))
                .w(2, "y", 2)
                .r(3, "y", Some(2))
                .r(3, "x", Some(1));
            h.r(4, "x", None).r(4, "y", Some(2));
        });
        // Session 4 reads y = 2 after reading x initial: fine, x was not yet in its past.
        assert_eq!(r, (None, None));
    }

    #[test]
    fn write_co_init_read() {
        let r = both(|h| {
            h.w(1, "x", 1)
                .r(2, "x", Some(1))
                .w(2, "y", 2)
                .r(3, "y", Some(2))
                .r(3, "x", None);
        });
        assert_eq!(r.0.as_deref(), Some("WriteCOInitRead"));
        assert_eq!(r.1.as_deref(), Some("WriteCOInitRead"));
    }

    #[test]
    fn write_co_read_with_witness_path() {
        let mut h = H::default();
        h.w(1, "x", 1)
            .w(1, "x", 2)
            .r(2, "x", Some(2))
            .w(2, "y", 3)
            .r(3, "y", Some(3))
            .r(3, "x", Some(1));
        let hist = h.b.build().expect("ok");
        match check(&hist, CausalModel::CC) {
            Verdict::Invalid {
                anomaly,
                witness,
                explanation,
            } => {
                assert_eq!(anomaly, "WriteCORead");
                assert_eq!(witness.len(), 6, "{witness:?}");
                assert!(
                    explanation.contains("w(x,1)#0 -so-> w(x,2)#2 -wr-> r(x,2)#4"),
                    "{explanation}"
                );
            }
            v => panic!("{v}"),
        }
    }

    #[test]
    fn thin_air_and_failed_writes() {
        let mut h = H::default();
        h.r(1, "x", Some(9));
        assert_eq!(h.check(CausalModel::CC).as_deref(), Some("ThinAirRead"));

        let mut b = HistoryBuilder::new();
        b.invoke(1, "write", "x", json!(1), 0);
        b.fail(1, "write", "x", json!(1), 1);
        b.invoke(2, "read", "x", Value::Null, 2);
        b.ok(2, "read", "x", json!(1), 3);
        let v = check(&b.build().expect("ok"), CausalModel::CC);
        assert_eq!(v.anomaly(), Some("ThinAirRead"));
        assert!(v.to_string().contains("which failed"), "{v}");
    }

    #[test]
    fn cyclic_causal_order() {
        let mut b = HistoryBuilder::new();
        b.invoke(1, "read", "x", Value::Null, 0);
        b.invoke(2, "read", "y", Value::Null, 0);
        b.ok(1, "read", "x", json!(1), 1);
        b.ok(2, "read", "y", json!(1), 1);
        b.invoke(1, "write", "y", json!(1), 2);
        b.invoke(2, "write", "x", json!(1), 2);
        b.ok(1, "write", "y", json!(1), 3);
        b.ok(2, "write", "x", json!(1), 3);
        let v = check(&b.build().expect("ok"), CausalModel::CC);
        assert_eq!(v.anomaly(), Some("CyclicCO"));
        assert_eq!(v.witness().len(), 4);
    }

    #[test]
    fn cc_but_not_ccv() {
        // Each session writes x, then reads the other's write: causally fine, but the two
        // sessions arbitrate the conflicting writes in opposite orders.
        let r = both(|h| {
            h.w(1, "x", 1)
                .w(2, "x", 2)
                .r(1, "x", Some(2))
                .r(2, "x", Some(1));
        });
        assert_eq!(r, (None, Some("CyclicCF".to_string())));
    }

    #[test]
    fn info_writes_precede_nothing() {
        let mut b = HistoryBuilder::new();
        b.session(1, 7).session(2, 7);
        b.invoke(1, "write", "x", json!(1), 0);
        b.info(1, "write", "x", json!(1), 1);
        b.invoke(2, "read", "x", Value::Null, 2);
        b.ok(2, "read", "x", json!(null), 3);
        b.invoke(3, "read", "x", Value::Null, 4);
        b.ok(3, "read", "x", json!(1), 5);
        b.invoke(4, "write", "y", json!(5), 6);
        b.info(4, "write", "y", json!(5), 7);
        let h = b.build().expect("ok");
        assert!(check(&h, CausalModel::CC).is_valid());
        assert!(check(&h, CausalModel::CCv).is_valid());
    }

    #[test]
    fn non_differentiated_or_foreign_histories_are_unknown() {
        let mut h = H::default();
        h.w(1, "x", 1).w(2, "x", 1);
        let hist = h.b.build().expect("ok");
        assert!(check(&hist, CausalModel::CC).is_unknown());
        let mut b = HistoryBuilder::new();
        b.invoke(1, "cas", "x", json!([null, 1]), 0);
        assert!(check(&b.build().expect("ok"), CausalModel::CC).is_unknown());
        assert_eq!("ccv".parse::<CausalModel>(), Ok(CausalModel::CCv));
    }
}
