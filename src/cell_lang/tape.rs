//! Choosing the tape: a minimum vertex cut.
//!
//! The backward step and `state_from_tape` see only the tape (and, for
//! backward, `x`), so every forward value they read must be on the tape or
//! recomputable from it. Reading the previous state is not possible (the
//! state is gone), and recomputing a product by a parameter matrix would
//! repeat the step's costliest work, so the states, the input, those
//! products and the sums over features are *sources*: a value that depends
//! on one of them through a path of other operations is recomputable only
//! if some node on that path is stored. The products of the rows' small
//! matrices (`outer(k, v)`, `matmul(q, S)`, `scale_rows`) are not sources:
//! each costs one multiply-add per element of its matrix, as an elementwise
//! pass over that matrix does, so a matrix memory's new value is recomputed
//! from the old one and the step's vectors instead of stored (alpha 1.03
//! rather than 2.03 for `cells/linear_attention.cell` at key = value = 64).
//! The recomputation writes scratch, which every method receives.
//!
//! The cheapest set of stored nodes is a minimum cut between the sources
//! and the values read, each node costing its width in floats per row; it
//! is found by max-flow on the graph with
//! every node split into an entry and an exit joined by an edge of that
//! capacity. Of the minimum cuts, the one nearest the values read is taken,
//! so the backward step recomputes as little as possible: it stores
//! activations rather than recomputing a `tanh` from its argument when both
//! cost the same.

use std::collections::{HashSet, VecDeque};

use super::graph::{Graph, Id, Op};

/// An edge of the flow network.
struct Edge {
    to: usize,
    cap: u64,
}

/// A flow network with residual edges stored in pairs (`e ^ 1` is `e`'s twin).
#[derive(Default)]
struct Network {
    edges: Vec<Edge>,
    out: Vec<Vec<usize>>,
}

const INF: u64 = u64::MAX / 4;

impl Network {
    fn with_vertices(n: usize) -> Self {
        Network {
            edges: Vec::new(),
            out: vec![Vec::new(); n],
        }
    }

    fn edge(&mut self, from: usize, to: usize, cap: u64) {
        self.out[from].push(self.edges.len());
        self.edges.push(Edge { to, cap });
        self.out[to].push(self.edges.len());
        self.edges.push(Edge { to: from, cap: 0 });
    }

    /// Edmonds–Karp: augments along shortest paths until none is left.
    fn max_flow(&mut self, s: usize, t: usize) {
        loop {
            let mut via = vec![usize::MAX; self.out.len()];
            let mut queue = VecDeque::from([s]);
            via[s] = usize::MAX - 1;
            while let Some(u) = queue.pop_front() {
                for &e in &self.out[u] {
                    let v = self.edges[e].to;
                    if self.edges[e].cap > 0 && via[v] == usize::MAX {
                        via[v] = e;
                        queue.push_back(v);
                    }
                }
            }
            if via[t] == usize::MAX {
                return;
            }
            let mut push = INF;
            let mut v = t;
            while v != s {
                let e = via[v];
                push = push.min(self.edges[e].cap);
                v = self.edges[e ^ 1].to;
            }
            let mut v = t;
            while v != s {
                let e = via[v];
                self.edges[e].cap -= push;
                self.edges[e ^ 1].cap += push;
                v = self.edges[e ^ 1].to;
            }
        }
    }

    /// The vertices from which `t` is reachable in the residual network.
    fn reaching(&self, t: usize) -> Vec<bool> {
        let mut seen = vec![false; self.out.len()];
        seen[t] = true;
        let mut queue = VecDeque::from([t]);
        while let Some(v) = queue.pop_front() {
            // An edge u -> v with residual capacity is the twin of an edge
            // v -> u listed at v.
            for &e in &self.out[v] {
                let u = self.edges[e].to;
                if !seen[u] && self.edges[e ^ 1].cap > 0 {
                    seen[u] = true;
                    queue.push_back(u);
                }
            }
        }
        seen
    }
}

/// Whether a node can only be stored, never recomputed from its operands.
fn is_source(op: &Op) -> bool {
    match op {
        Op::Input | Op::State(_) => true,
        // A product of the rows' small matrices costs one multiply-add per
        // element of its matrix operand or result, as an elementwise pass
        // over that matrix does: it is recomputed like one.
        Op::RowProduct(..) => false,
        _ => op.is_instruction(),
    }
}

/// The nodes to store, in forward order: the cheapest set from which every
/// node of `needed` can be recomputed by elementwise operations (see the
/// module docs). `forward` is the forward graph's nodes in topological order.
pub(crate) fn choose(g: &Graph, forward: &[Id], needed: &HashSet<Id>) -> Vec<Id> {
    let index = |id: Id| forward.iter().position(|&f| f == id);
    let n = forward.len();
    let (s, t) = (2 * n, 2 * n + 1);
    let mut net = Network::with_vertices(2 * n + 2);
    for (k, &v) in forward.iter().enumerate() {
        let op = &g.node(v).op;
        if matches!(op, Op::Param(_) | Op::Const(_)) {
            continue;
        }
        net.edge(2 * k, 2 * k + 1, g.width(v) as u64);
        if is_source(op) {
            net.edge(s, 2 * k, INF);
        } else {
            for o in op.operands() {
                if let Some(j) = index(o) {
                    net.edge(2 * j + 1, 2 * k, INF);
                }
            }
        }
        if needed.contains(&v) {
            net.edge(2 * k + 1, t, INF);
        }
    }
    net.max_flow(s, t);
    let reach = net.reaching(t);
    forward
        .iter()
        .enumerate()
        .filter(|&(k, v)| {
            !matches!(g.node(*v).op, Op::Param(_) | Op::Const(_))
                && !reach[2 * k]
                && reach[2 * k + 1]
        })
        .map(|(_, &v)| v)
        .collect()
}
