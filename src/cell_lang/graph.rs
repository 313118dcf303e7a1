//! The step as a graph of batched values over concrete widths, built through
//! simplifying, hash-consing constructors: equal subexpressions are one
//! node, constants fold, `x * 1`, `x + 0` and `g * 0` vanish, and slices are
//! pushed down to the leaves and products so that a fused loop never
//! computes more columns than it uses.

use std::collections::HashMap;

use super::program::{Binary, ParamMatrix, RowProduct, Unary};

/// A node of a [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Id(pub u32);

/// One product term of a [`Op::Linear`]: `a · W`, or `a · Wᵀ` when
/// `transposed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Term {
    pub a: Id,
    pub w: ParamMatrix,
    pub transposed: bool,
}

/// What a node computes; every node is `[rows, width]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// The step's input `x`.
    Input,
    /// State `i` at the start of the step.
    State(usize),
    /// Tape slot `k` (after the tape is chosen).
    Tape(usize),
    /// The gradient of state `i` at the end of the step.
    GradState(usize),
    /// A constant (the bits of an f32) in every element.
    Const(u32),
    /// A parameter vector starting at this float, broadcast over rows.
    Param(usize),
    /// `f(a)`.
    Unary(Unary, Id),
    /// `f(a, b)`.
    Binary(Binary, Id, Id),
    /// Columns `col..col + width` of a node.
    Slice(Id, usize),
    /// Nodes side by side.
    Concat(Vec<Id>),
    /// A one-column node repeated in every column.
    Broadcast(Id),
    /// A node's columns summed, left to right: one column.
    RowSum(Id),
    /// `init + Σ a·W`: matrix products accumulated onto an optional
    /// elementwise value.
    Linear { init: Option<Id>, terms: Vec<Term> },
    /// A product of each row's small matrices (a `[m, n]` value is `m·n`
    /// columns, row-major): `outer(a, b)`, `a · B` or `A · b`.
    RowProduct(RowProduct, Id, Id),
}

/// A node: its operation and its width.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Node {
    pub op: Op,
    pub width: usize,
}

impl Op {
    /// The nodes this one reads.
    pub fn operands(&self) -> Vec<Id> {
        match self {
            Op::Input
            | Op::State(_)
            | Op::Tape(_)
            | Op::GradState(_)
            | Op::Const(_)
            | Op::Param(_) => Vec::new(),
            Op::Unary(_, a) | Op::Slice(a, _) | Op::Broadcast(a) | Op::RowSum(a) => vec![*a],
            Op::Binary(_, a, b) | Op::RowProduct(_, a, b) => vec![*a, *b],
            Op::Concat(parts) => parts.clone(),
            Op::Linear { init, terms } => init
                .iter()
                .copied()
                .chain(terms.iter().map(|t| t.a))
                .collect(),
        }
    }

    /// Whether a fused loop computes it (rather than a load or a product).
    pub fn is_elementwise(&self) -> bool {
        matches!(self, Op::Unary(..) | Op::Binary(..))
    }

    /// Whether an instruction other than a fused loop computes it into a
    /// temporary of its own (a product or a sum over the features).
    pub fn is_instruction(&self) -> bool {
        matches!(self, Op::Linear { .. } | Op::RowSum(_) | Op::RowProduct(..))
    }
}

/// A hash-consed graph: adding a node equal to an existing one returns it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Graph {
    nodes: Vec<Node>,
    index: HashMap<Node, Id>,
}

impl Graph {
    /// The node `id`.
    pub fn node(&self, id: Id) -> &Node {
        &self.nodes[id.0 as usize]
    }

    /// The width of `id`.
    pub fn width(&self, id: Id) -> usize {
        self.node(id).width
    }

    /// The constant `id` holds, if it is one.
    pub fn constant(&self, id: Id) -> Option<f32> {
        match self.node(id).op {
            Op::Const(bits) => Some(f32::from_bits(bits)),
            _ => None,
        }
    }

    /// Adds a node as is (no simplification), or finds its equal.
    pub fn raw(&mut self, op: Op, width: usize) -> Id {
        let node = Node { op, width };
        if let Some(&id) = self.index.get(&node) {
            return id;
        }
        let id = Id(self.nodes.len() as u32);
        self.nodes.push(node.clone());
        self.index.insert(node, id);
        id
    }

    /// A constant of the given width.
    pub fn constant_node(&mut self, value: f32, width: usize) -> Id {
        self.raw(Op::Const(value.to_bits()), width)
    }

    /// `f(a)`, folded when `a` is a constant and `-(-a)` removed.
    pub fn unary(&mut self, f: Unary, a: Id) -> Id {
        let w = self.width(a);
        if let Some(c) = self.constant(a) {
            return self.constant_node(apply_unary(f, c), w);
        }
        if let (Unary::Neg, Op::Unary(Unary::Neg, inner)) = (f, &self.node(a).op) {
            return *inner;
        }
        if let Some(parts) = self.distribute(&[a]) {
            let parts = parts.into_iter().map(|p| self.unary(f, p[0])).collect();
            return self.concat(parts);
        }
        self.raw(Op::Unary(f, a), w)
    }

    /// `f(a, b)`, folded and simplified (`a + 0`, `a - 0`, `0 - a`, `a * 1`,
    /// `a * 0`, `a * -1`).
    pub fn binary(&mut self, f: Binary, a: Id, b: Id) -> Id {
        let w = self.width(a);
        debug_assert_eq!(
            w,
            self.width(b),
            "binary {f:?} on widths {w} and {}",
            self.width(b)
        );
        let (ca, cb) = (self.constant(a), self.constant(b));
        if let (Some(x), Some(y)) = (ca, cb) {
            return self.constant_node(apply_binary(f, x, y), w);
        }
        match (f, ca, cb) {
            (Binary::Add, Some(0.0), _) => return b,
            (Binary::Add | Binary::Sub, _, Some(0.0)) => return a,
            (Binary::Sub, Some(0.0), _) => return self.unary(Unary::Neg, b),
            (Binary::Mul, Some(1.0), _) => return b,
            (Binary::Mul, _, Some(1.0)) => return a,
            (Binary::Mul, Some(0.0), _) | (Binary::Mul, _, Some(0.0)) => {
                return self.constant_node(0.0, w);
            }
            (Binary::Mul, Some(-1.0), _) => return self.unary(Unary::Neg, b),
            (Binary::Mul, _, Some(-1.0)) => return self.unary(Unary::Neg, a),
            (Binary::ReluGrad, Some(0.0), _) => return a,
            (Binary::Div, _, Some(1.0)) => return a,
            (Binary::Div, Some(0.0), _) => return a,
            _ => {}
        }
        if let Some(parts) = self.distribute(&[a, b]) {
            let parts = parts
                .into_iter()
                .map(|p| self.binary(f, p[0], p[1]))
                .collect();
            return self.concat(parts);
        }
        self.raw(Op::Binary(f, a, b), w)
    }

    /// When an operand is a concatenation, the operands cut at every part
    /// boundary: an elementwise operation on a concatenation is the
    /// concatenation of the operation on the parts, so concatenations rise to
    /// where they are stored and a loop never reads one.
    fn distribute(&mut self, operands: &[Id]) -> Option<Vec<Vec<Id>>> {
        let width = self.width(operands[0]);
        let mut cuts = vec![0, width];
        for &o in operands {
            if let Op::Concat(parts) = &self.node(o).op {
                let mut col = 0;
                for p in parts {
                    col += self.width(*p);
                    cuts.push(col);
                }
            }
        }
        if cuts.len() == 2 {
            return None;
        }
        cuts.sort_unstable();
        cuts.dedup();
        Some(
            cuts.windows(2)
                .map(|c| {
                    operands
                        .iter()
                        .map(|&o| self.slice(o, c[0], c[1] - c[0]))
                        .collect()
                })
                .collect(),
        )
    }

    /// Columns `col..col + width` of `a`, pushed down through elementwise
    /// operations, parameters, constants, slices and concatenations.
    pub fn slice(&mut self, a: Id, col: usize, width: usize) -> Id {
        let node = self.node(a).clone();
        if col == 0 && width == node.width {
            return a;
        }
        match node.op {
            Op::Const(bits) => self.raw(Op::Const(bits), width),
            Op::Param(offset) => self.raw(Op::Param(offset + col), width),
            Op::Slice(inner, c) => self.slice(inner, c + col, width),
            Op::Broadcast(x) => self.broadcast(x, width),
            Op::Unary(f, x) => {
                let x = self.slice(x, col, width);
                self.unary(f, x)
            }
            Op::Binary(f, x, y) => {
                let (x, y) = (self.slice(x, col, width), self.slice(y, col, width));
                self.binary(f, x, y)
            }
            Op::Concat(parts) => {
                let mut pieces = Vec::new();
                let mut start = 0;
                for p in parts {
                    let pw = self.width(p);
                    let (lo, hi) = (col.max(start), (col + width).min(start + pw));
                    if lo < hi {
                        pieces.push(self.slice(p, lo - start, hi - lo));
                    }
                    start += pw;
                }
                self.concat(pieces)
            }
            _ => self.raw(Op::Slice(a, col), width),
        }
    }

    /// `parts` side by side; one part is itself, and adjacent slices of one
    /// node merge.
    pub fn concat(&mut self, parts: Vec<Id>) -> Id {
        let mut merged: Vec<Id> = Vec::new();
        for p in parts {
            if let Some(&last) = merged.last()
                && let (Op::Slice(a, c1), Op::Slice(b, c2)) =
                    (&self.node(last).op, &self.node(p).op)
                && a == b
                && c1 + self.width(last) == *c2
            {
                let (a, c1, w) = (*a, *c1, self.width(last) + self.width(p));
                merged.pop();
                merged.push(self.slice(a, c1, w));
                continue;
            }
            merged.push(p);
        }
        if merged.len() == 1 {
            return merged[0];
        }
        let width = merged.iter().map(|&p| self.width(p)).sum();
        self.raw(Op::Concat(merged), width)
    }

    /// The one-column node `a` repeated over `width` columns, pushed down
    /// through elementwise operations to the leaves (`f(a, b)` broadcast is
    /// `f` of the broadcasts): a fused loop then computes a per-row value in
    /// every column rather than reading it from a narrower loop, so a
    /// broadcast never needs a temporary (`state_from_tape` has no scratch)
    /// and a loop never waits for another of its depth.
    pub fn broadcast(&mut self, a: Id, width: usize) -> Id {
        debug_assert_eq!(
            self.width(a),
            1,
            "broadcast of a node of width {}",
            self.width(a)
        );
        if width == 1 {
            return a;
        }
        match self.node(a).op {
            Op::Const(bits) => self.raw(Op::Const(bits), width),
            Op::Unary(f, x) => {
                let x = self.broadcast(x, width);
                self.unary(f, x)
            }
            Op::Binary(f, x, y) => {
                let (x, y) = (self.broadcast(x, width), self.broadcast(y, width));
                self.binary(f, x, y)
            }
            _ => self.raw(Op::Broadcast(a), width),
        }
    }

    /// The sum of `a`'s columns in each row (a one-column node); a
    /// one-column node is its own sum.
    pub fn row_sum(&mut self, a: Id) -> Id {
        if self.width(a) == 1 {
            return a;
        }
        self.raw(Op::RowSum(a), 1)
    }

    /// The matrix's rows and columns of `op(a, b)`, from the operands'
    /// widths.
    pub fn row_dims(&self, op: RowProduct, a: Id, b: Id) -> (usize, usize) {
        let (wa, wb) = (self.width(a), self.width(b));
        match op {
            RowProduct::Outer => (wa, wb),
            RowProduct::VecMat => (wa, wb / wa),
            RowProduct::MatVec => (wa / wb, wb),
        }
    }

    /// `op(a, b)` on each row's small matrices; zero when an operand is.
    pub fn row_product(&mut self, op: RowProduct, a: Id, b: Id) -> Id {
        let (m, n) = self.row_dims(op, a, b);
        let (wa, wb, width) = op.widths(m, n);
        debug_assert_eq!(
            (wa, wb),
            (self.width(a), self.width(b)),
            "{op:?} of widths {} and {}",
            self.width(a),
            self.width(b)
        );
        if self.constant(a) == Some(0.0) || self.constant(b) == Some(0.0) {
            return self.constant_node(0.0, width);
        }
        self.raw(Op::RowProduct(op, a, b), width)
    }

    /// `init + Σ terms`, the width given by the terms' weights.
    pub fn linear(&mut self, init: Option<Id>, terms: Vec<Term>, width: usize) -> Id {
        let init = init.filter(|&i| self.constant(i) != Some(0.0));
        self.raw(Op::Linear { init, terms }, width)
    }

    /// The nodes reachable from `roots`, operands before users.
    pub fn topo(&self, roots: &[Id]) -> Vec<Id> {
        let mut seen = vec![false; self.nodes.len()];
        let mut order = Vec::new();
        let mut stack: Vec<(Id, bool)> = roots.iter().rev().map(|&r| (r, false)).collect();
        while let Some((id, done)) = stack.pop() {
            if done {
                order.push(id);
                continue;
            }
            if seen[id.0 as usize] {
                continue;
            }
            seen[id.0 as usize] = true;
            stack.push((id, true));
            for o in self.node(id).op.operands().into_iter().rev() {
                if !seen[o.0 as usize] {
                    stack.push((o, false));
                }
            }
        }
        order
    }

    /// Rebuilds the nodes reachable from `roots` through the simplifying
    /// constructors, replacing each node for which `replace` gives a new one;
    /// returns the map from old to new ids (for every node visited).
    pub fn rebuild(
        &mut self,
        roots: &[Id],
        mut replace: impl FnMut(&mut Graph, Id, &Node, &HashMap<Id, Id>) -> Option<Id>,
    ) -> HashMap<Id, Id> {
        let mut map = HashMap::new();
        for id in self.topo(roots) {
            let node = self.node(id).clone();
            let new = match replace(self, id, &node, &map) {
                Some(n) => n,
                None => self.remap(&node, &map),
            };
            map.insert(id, new);
        }
        map
    }

    /// `node` with its operands mapped.
    pub fn remap(&mut self, node: &Node, map: &HashMap<Id, Id>) -> Id {
        let m = |id: &Id| map[id];
        match &node.op {
            Op::Unary(f, a) => self.unary(*f, m(a)),
            Op::Binary(f, a, b) => self.binary(*f, m(a), m(b)),
            Op::Slice(a, col) => self.slice(m(a), *col, node.width),
            Op::Concat(parts) => self.concat(parts.iter().map(m).collect()),
            Op::Broadcast(a) => self.broadcast(m(a), node.width),
            Op::RowSum(a) => self.row_sum(m(a)),
            Op::RowProduct(op, a, b) => self.row_product(*op, m(a), m(b)),
            Op::Linear { init, terms } => {
                let terms = terms.iter().map(|t| Term { a: m(&t.a), ..*t }).collect();
                self.linear(init.as_ref().map(m), terms, node.width)
            }
            leaf => self.raw(leaf.clone(), node.width),
        }
    }
}

/// `f(a)` on one float, exactly as every backend computes it.
#[inline]
pub(crate) fn apply_unary(f: Unary, a: f32) -> f32 {
    use bptt_runtime::kernels::{exp, log, sigmoid, softplus, tanh};
    match f {
        Unary::Neg => -a,
        Unary::Sigmoid => sigmoid(a),
        Unary::Tanh => tanh(a),
        Unary::Exp => exp(a),
        Unary::Relu => {
            if a > 0.0 {
                a
            } else {
                0.0
            }
        }
        Unary::Sqrt => a.sqrt(),
        Unary::Abs => a.abs(),
        Unary::Log => log(a),
        Unary::Softplus => softplus(a),
    }
}

/// `f(a, b)` on floats, exactly as every backend computes it.
#[inline]
pub(crate) fn apply_binary(f: Binary, a: f32, b: f32) -> f32 {
    match f {
        Binary::Add => a + b,
        Binary::Sub => a - b,
        Binary::Mul => a * b,
        Binary::ReluGrad => {
            if b > 0.0 {
                a
            } else {
                0.0
            }
        }
        Binary::Div => a / b,
        Binary::Max => {
            if a > b {
                a
            } else {
                b
            }
        }
        Binary::Min => {
            if a < b {
                a
            } else {
                b
            }
        }
        Binary::Greater => {
            if a > b {
                1.0
            } else {
                0.0
            }
        }
    }
}
