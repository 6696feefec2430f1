//! The transaction dependency graph and its cycle search.
//!
//! Nodes are transactions (dense ids, see [`super::txn`]); edges carry one [`EdgeKind`] and a
//! [`Why`] that says which key and values justify them. The graph is stored in compressed
//! sparse row form because a 100 000-transaction history yields a few million edges.
//!
//! Cycle search follows Elle (Kingsbury & Alvaro, VLDB 2020, §4.3): first Tarjan's strongly
//! connected components over the edge kinds a level cares about, then, inside each component,
//! a breadth-first search for the *shortest* cycle of each anomaly's shape (Adya's G0, G1c,
//! G-single, G2 and their real-time and process-order variants). A cycle through a given
//! edge `a → b` is found by a shortest path `b ⇝ a`; the search state also counts the
//! anti-dependency (`rw`) edges used so far, capped at two, which is all the shapes need.

use super::txn::{KeyId, TxnId};

/// The kind of a dependency edge, as a bit so that edge sets are masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum EdgeKind {
    /// Write-write: the source's append precedes the target's in a key's version order.
    Ww = 1,
    /// Write-read: the target read a list whose last element the source appended.
    Wr = 2,
    /// Read-write (anti-dependency): the source read a state that misses the target's append.
    Rw = 4,
    /// Real time: the source completed before the target was invoked.
    Rt = 8,
    /// Process (session) order: the source precedes the target in one session.
    Po = 16,
}

impl EdgeKind {
    /// Returns the edge's bit.
    pub(crate) fn bit(self) -> u8 {
        self as u8
    }

    /// Returns the short name used in witnesses (`ww`, `wr`, `rw`, `rt`, `po`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            EdgeKind::Ww => "ww",
            EdgeKind::Wr => "wr",
            EdgeKind::Rw => "rw",
            EdgeKind::Rt => "rt",
            EdgeKind::Po => "po",
        }
    }
}

/// A set of edge kinds.
pub(crate) type Mask = u8;

/// The dependency edges proper (`ww`, `wr`, `rw`).
pub(crate) const DEPS: Mask = EdgeKind::Ww as u8 | EdgeKind::Wr as u8 | EdgeKind::Rw as u8;

/// Why an edge exists: the key and the values that justify it, for the explanation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Why {
    /// The key whose version order, or read, produced the edge (unused for `rt`/`po`).
    pub key: KeyId,
    /// `ww`: the source's element; `wr`: the element read; `rw`: the last element the source
    /// read (`None` for an empty list).
    pub from_value: Option<i64>,
    /// `ww` and `rw`: the target's element.
    pub to_value: Option<i64>,
}

impl Why {
    /// The label of an order edge (`rt`, `po`), which depends on no key.
    pub(crate) const ORDER: Why = Why {
        key: KeyId::MAX,
        from_value: None,
        to_value: None,
    };
}

/// One edge, as collected before the graph is frozen.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    pub from: TxnId,
    pub to: TxnId,
    pub kind: EdgeKind,
    pub why: Why,
}

/// The frozen dependency graph in compressed sparse row form. Parallel edges of one kind
/// between the same pair are merged (the first reason is kept).
pub(crate) struct Graph {
    /// `offsets[v]..offsets[v + 1]` indexes the out-edges of `v`.
    offsets: Vec<u32>,
    targets: Vec<TxnId>,
    kinds: Vec<EdgeKind>,
    whys: Vec<Why>,
}

/// An edge of a [`Graph`], by position.
pub(crate) type EdgeId = u32;

impl Graph {
    /// Freezes `edges` over `nodes` nodes; self-loops are dropped.
    pub(crate) fn new(nodes: usize, mut edges: Vec<Edge>) -> Graph {
        edges.retain(|e| e.from != e.to);
        edges.sort_by_key(|e| (e.from, e.to, e.kind));
        edges.dedup_by_key(|e| (e.from, e.to, e.kind));
        let mut offsets = vec![0u32; nodes + 1];
        for e in &edges {
            offsets[e.from as usize + 1] += 1;
        }
        for v in 0..nodes {
            offsets[v + 1] += offsets[v];
        }
        Graph {
            offsets,
            targets: edges.iter().map(|e| e.to).collect(),
            kinds: edges.iter().map(|e| e.kind).collect(),
            whys: edges.iter().map(|e| e.why).collect(),
        }
    }

    /// Returns the number of nodes.
    pub(crate) fn nodes(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Returns the number of edges.
    pub(crate) fn edge_count(&self) -> usize {
        self.targets.len()
    }

    fn out(&self, v: TxnId) -> std::ops::Range<usize> {
        self.offsets[v as usize] as usize..self.offsets[v as usize + 1] as usize
    }

    /// Returns the source, target, kind and reason of edge `e`.
    pub(crate) fn edge(&self, e: EdgeId) -> (TxnId, TxnId, EdgeKind, Why) {
        let i = e as usize;
        let from = self.offsets.partition_point(|&o| o as usize <= i) - 1;
        (
            TxnId::try_from(from).expect("node ids fit in u32"),
            self.targets[i],
            self.kinds[i],
            self.whys[i],
        )
    }

    /// Returns the strongly connected components with more than one node, using only edges
    /// whose kind is in `mask`. Iterative Tarjan, so deep graphs do not overflow the stack.
    pub(crate) fn sccs(&self, mask: Mask) -> Vec<Vec<TxnId>> {
        const UNSEEN: u32 = u32::MAX;
        let n = self.nodes();
        let mut index = vec![UNSEEN; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<TxnId> = Vec::new();
        // Call stack of (node, next out-edge position).
        let mut calls: Vec<(TxnId, usize)> = Vec::new();
        let mut next_index = 0u32;
        let mut out = Vec::new();
        for root in 0..n {
            if index[root] != UNSEEN {
                continue;
            }
            let root = TxnId::try_from(root).expect("node ids fit in u32");
            calls.push((root, self.out(root).start));
            index[root as usize] = next_index;
            low[root as usize] = next_index;
            next_index += 1;
            stack.push(root);
            on_stack[root as usize] = true;
            while let Some(&mut (v, ref mut pos)) = calls.last_mut() {
                let end = self.out(v).end;
                let mut descended = false;
                while *pos < end {
                    let e = *pos;
                    *pos += 1;
                    if self.kinds[e].bit() & mask == 0 {
                        continue;
                    }
                    let w = self.targets[e];
                    if index[w as usize] == UNSEEN {
                        index[w as usize] = next_index;
                        low[w as usize] = next_index;
                        next_index += 1;
                        stack.push(w);
                        on_stack[w as usize] = true;
                        calls.push((w, self.out(w).start));
                        descended = true;
                        break;
                    } else if on_stack[w as usize] {
                        low[v as usize] = low[v as usize].min(index[w as usize]);
                    }
                }
                if descended {
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    low[parent as usize] = low[parent as usize].min(low[v as usize]);
                }
                if low[v as usize] == index[v as usize] {
                    let mut comp = Vec::new();
                    loop {
                        let w = stack.pop().expect("v is still on the stack");
                        on_stack[w as usize] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if comp.len() > 1 {
                        out.push(comp);
                    }
                }
            }
        }
        out
    }
}

/// How many `rw` edges a cycle must contain, counting the edge the search starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RwCount {
    /// Any number.
    Any,
    /// Exactly one.
    One,
    /// Two or more.
    AtLeastTwo,
}

/// The shape of cycle a search looks for: it starts with an edge of kind `start` and closes
/// with a path over `path` edges, with the total number of `rw` edges given by `rw`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub start: EdgeKind,
    pub path: Mask,
    pub rw: RwCount,
}

/// Marks the first state of a search, which no edge of the path leads to.
const NO_STATE: u32 = u32::MAX;

/// Reusable breadth-first search over one graph, with a budget on the states it visits so
/// that a pathological component cannot make the checker run for ever.
pub(crate) struct CycleSearch<'g> {
    graph: &'g Graph,
    /// Component id of every node (`u32::MAX` outside the current component).
    comp: Vec<u32>,
    /// Generation stamps for visited states (node * 3 + rw count).
    seen: Vec<u32>,
    /// The edge a state was reached by, and the state it came from.
    parent: Vec<(EdgeId, u32)>,
    generation: u32,
    /// States visited so far; the search gives up when it reaches `budget`.
    spent: u64,
    budget: u64,
    /// True when some search stopped because the budget ran out.
    pub exhausted: bool,
}

impl<'g> CycleSearch<'g> {
    /// Prepares a search over `graph` that visits at most `budget` states in total.
    pub(crate) fn new(graph: &'g Graph, budget: u64) -> CycleSearch<'g> {
        let n = graph.nodes();
        CycleSearch {
            graph,
            comp: vec![u32::MAX; n],
            seen: vec![0; n * 3],
            parent: vec![(0, NO_STATE); n * 3],
            generation: 0,
            spent: 0,
            budget,
            exhausted: false,
        }
    }

    /// Marks the nodes of one component; searches stay inside it (every cycle lies within one
    /// strongly connected component).
    pub(crate) fn enter(&mut self, comp_id: u32, nodes: &[TxnId]) {
        for &v in nodes {
            self.comp[v as usize] = comp_id;
        }
    }

    /// Returns the shortest cycle of `shape` inside component `comp_id` (made of `nodes`),
    /// as edge ids in order, trying every start edge until one of length two is found.
    pub(crate) fn shortest(
        &mut self,
        comp_id: u32,
        nodes: &[TxnId],
        shape: Shape,
    ) -> Option<Vec<EdgeId>> {
        let mut best: Option<Vec<EdgeId>> = None;
        for &v in nodes {
            for e in self.graph.out(v) {
                if self.graph.kinds[e] != shape.start
                    || self.comp[self.graph.targets[e] as usize] != comp_id
                {
                    continue;
                }
                if self.spent >= self.budget {
                    self.exhausted = true;
                    return best;
                }
                let limit = best.as_ref().map_or(usize::MAX, |b| b.len() - 1);
                let e = EdgeId::try_from(e).expect("edge ids fit in u32");
                if let Some(cycle) = self.through(comp_id, v, e, shape, limit) {
                    let done = cycle.len() == 2;
                    best = Some(cycle);
                    if done {
                        return best;
                    }
                }
            }
        }
        best
    }

    /// Breadth-first search for the shortest path closing a cycle through `start_edge`
    /// (from `origin`), no longer than `limit` edges.
    fn through(
        &mut self,
        comp_id: u32,
        origin: TxnId,
        start_edge: EdgeId,
        shape: Shape,
        limit: usize,
    ) -> Option<Vec<EdgeId>> {
        let g = self.graph;
        self.generation += 1;
        let gen = self.generation;
        let rw_of = |k: EdgeKind| u8::from(k == EdgeKind::Rw);
        let first = g.targets[start_edge as usize];
        let c0 = rw_of(shape.start);
        let accept = |c: u8| match shape.rw {
            RwCount::Any => true,
            RwCount::One => c == 1,
            RwCount::AtLeastTwo => c >= 2,
        };
        let s0 = first * 3 + u32::from(c0);
        self.seen[s0 as usize] = gen;
        self.parent[s0 as usize] = (start_edge, NO_STATE);
        let mut frontier = vec![s0];
        let mut depth = 1usize;
        while !frontier.is_empty() && depth < limit {
            let mut next = Vec::new();
            for state in frontier {
                let (v, c) = (state / 3, (state % 3) as u8);
                self.spent += 1;
                for e in g.out(v) {
                    let kind = g.kinds[e];
                    if kind.bit() & shape.path == 0 {
                        continue;
                    }
                    let w = g.targets[e];
                    if self.comp[w as usize] != comp_id {
                        continue;
                    }
                    let c2 = (c + rw_of(kind)).min(2);
                    if shape.rw == RwCount::One && c2 > 1 {
                        continue;
                    }
                    let e = EdgeId::try_from(e).expect("edge ids fit in u32");
                    if w == origin {
                        if accept(c2) {
                            return Some(self.path_to(state, e));
                        }
                        // Never walk through the origin: the cycle would not be simple.
                        continue;
                    }
                    let s = w * 3 + u32::from(c2);
                    if self.seen[s as usize] == gen {
                        continue;
                    }
                    self.seen[s as usize] = gen;
                    self.parent[s as usize] = (e, state);
                    next.push(s);
                }
            }
            frontier = next;
            depth += 1;
        }
        None
    }

    /// Rebuilds the cycle that ends with edge `last` out of state `state`.
    fn path_to(&self, mut state: u32, last: EdgeId) -> Vec<EdgeId> {
        let mut rev = vec![last];
        while state != NO_STATE {
            let (e, prev) = self.parent[state as usize];
            rev.push(e);
            state = prev;
        }
        rev.reverse();
        rev
    }

    /// Returns any cycle through the component, over `mask` edges, ignoring the budget. A
    /// non-trivial strongly connected component always has one.
    pub(crate) fn any_cycle(
        &mut self,
        comp_id: u32,
        nodes: &[TxnId],
        mask: Mask,
    ) -> Option<Vec<EdgeId>> {
        let shape_for = |start| Shape {
            start,
            path: mask,
            rw: RwCount::Any,
        };
        let saved = self.budget;
        self.budget = u64::MAX;
        let mut found = None;
        for kind in [
            EdgeKind::Ww,
            EdgeKind::Wr,
            EdgeKind::Rw,
            EdgeKind::Rt,
            EdgeKind::Po,
        ] {
            if kind.bit() & mask == 0 {
                continue;
            }
            let shape = shape_for(kind);
            'nodes: for &v in nodes {
                for e in self.graph.out(v) {
                    if self.graph.kinds[e] == kind
                        && self.comp[self.graph.targets[e] as usize] == comp_id
                    {
                        let e = EdgeId::try_from(e).expect("edge ids fit in u32");
                        found = self.through(comp_id, v, e, shape, usize::MAX);
                        break 'nodes;
                    }
                }
            }
            if found.is_some() {
                break;
            }
        }
        self.budget = saved;
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: TxnId, to: TxnId, kind: EdgeKind) -> Edge {
        Edge {
            from,
            to,
            kind,
            why: Why::ORDER,
        }
    }

    fn kinds(g: &Graph, cycle: &[EdgeId]) -> Vec<EdgeKind> {
        cycle.iter().map(|&e| g.edge(e).2).collect()
    }

    #[test]
    fn sccs_find_only_cycles_of_the_mask() {
        let g = Graph::new(
            4,
            vec![
                edge(0, 1, EdgeKind::Ww),
                edge(1, 0, EdgeKind::Rw),
                edge(2, 3, EdgeKind::Wr),
                edge(3, 2, EdgeKind::Wr),
            ],
        );
        let mut all = g.sccs(DEPS);
        all.iter_mut().for_each(|c| c.sort());
        all.sort();
        assert_eq!(all, vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(g.sccs(EdgeKind::Wr.bit()).len(), 1);
        assert!(g.sccs(EdgeKind::Ww.bit()).is_empty());
    }

    #[test]
    fn shortest_cycle_respects_the_rw_count() {
        // 0 -rw-> 1 -rw-> 2 -ww-> 0 and 0 -rw-> 1 -wr-> 0.
        let g = Graph::new(
            3,
            vec![
                edge(0, 1, EdgeKind::Rw),
                edge(1, 2, EdgeKind::Rw),
                edge(2, 0, EdgeKind::Ww),
                edge(1, 0, EdgeKind::Wr),
            ],
        );
        let comps = g.sccs(DEPS);
        assert_eq!(comps.len(), 1);
        let mut s = CycleSearch::new(&g, 1_000);
        s.enter(0, &comps[0]);
        let single = Shape {
            start: EdgeKind::Rw,
            path: EdgeKind::Ww.bit() | EdgeKind::Wr.bit(),
            rw: RwCount::Any,
        };
        let c = s.shortest(0, &comps[0], single).expect("G-single exists");
        assert_eq!(kinds(&g, &c), vec![EdgeKind::Rw, EdgeKind::Wr]);
        let g2 = Shape {
            start: EdgeKind::Rw,
            path: DEPS,
            rw: RwCount::AtLeastTwo,
        };
        let c = s.shortest(0, &comps[0], g2).expect("G2 exists");
        let k = kinds(&g, &c);
        assert_eq!(k.len(), 3);
        assert_eq!(k.iter().filter(|&&k| k == EdgeKind::Rw).count(), 2, "{k:?}");
        let g0 = Shape {
            start: EdgeKind::Ww,
            path: EdgeKind::Ww.bit(),
            rw: RwCount::Any,
        };
        assert!(s.shortest(0, &comps[0], g0).is_none());
        assert!(s.any_cycle(0, &comps[0], DEPS).is_some());
    }

    #[test]
    fn deep_chains_do_not_overflow() {
        let n = 200_000u32;
        let mut edges: Vec<Edge> = (0..n - 1).map(|i| edge(i, i + 1, EdgeKind::Ww)).collect();
        edges.push(edge(n - 1, 0, EdgeKind::Ww));
        let g = Graph::new(n as usize, edges);
        let comps = g.sccs(DEPS);
        assert_eq!(comps.len(), 1);
        assert_eq!(comps[0].len(), n as usize);
    }
}
