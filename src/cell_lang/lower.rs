//! Lowering a graph's roots to a [`Kernel`]: products become calls of the
//! runtime's matrix kernels, everything elementwise is fused into as few
//! loops as the products allow.
//!
//! A node's *depth* counts the products on its longest path from the
//! leaves (concatenations never reach a loop: elementwise operations are
//! distributed over their parts, and a concatenation is stored part by
//! part); a sum over the features and a product of the rows' small
//! matrices count as products. The kernel runs, for
//! each depth in turn, the products and sums of that depth and then one
//! fused loop per width holding every elementwise node of that depth and
//! width (a broadcast reads a one-column leaf in every column). Within a loop a value is a register; a value read by
//! a later loop, a product or a weight gradient is also stored in a scratch
//! temporary. Weight gradients run last.

use std::collections::{BTreeMap, HashMap};

use super::graph::{Graph, Id, Op};
use super::program::{
    Buffer, FusedLoop, Instr, Kernel, LoopOp, Matrix, ParamMatrix, Reg, Sink, Temp, View,
};

/// What a kernel must produce.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Root {
    /// Write the node to `buffer` (rows of `stride` floats) from column `col`.
    Store {
        buffer: Buffer,
        stride: usize,
        col: usize,
        node: Id,
    },
    /// Add the node, summed over rows, to the gradient at `offset`.
    Accumulate { offset: usize, node: Id },
    /// `grads[w] += aᵀ · dy`.
    WeightGrad { a: Id, dy: Id, w: ParamMatrix },
}

/// Where a value goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Stored in a view.
    View(View),
    /// Added, summed over rows, to the gradient at this offset.
    Grad(usize),
}

impl Target {
    /// The target `col` columns further on.
    fn shifted(self, col: usize) -> Target {
        match self {
            Target::View(v) => Target::View(v.shifted(col)),
            Target::Grad(offset) => Target::Grad(offset + col),
        }
    }
}

/// Where the leaves live: views for `Input`, `State(i)`, `Tape(k)`,
/// `GradState(i)`.
pub(crate) struct Leaves<'a> {
    pub input_size: usize,
    pub state_size: usize,
    pub state_offsets: &'a [usize],
    pub tape_size: usize,
    pub tape_offsets: &'a [usize],
}

impl Leaves<'_> {
    fn view(&self, op: &Op) -> Option<View> {
        let rows = |buffer, stride, col| {
            Some(View::Rows {
                buffer,
                stride,
                col,
            })
        };
        match *op {
            Op::Input => rows(Buffer::Input, self.input_size, 0),
            Op::State(i) => rows(Buffer::StatePrev, self.state_size, self.state_offsets[i]),
            Op::GradState(i) => rows(Buffer::GradState, self.state_size, self.state_offsets[i]),
            Op::Tape(k) => rows(Buffer::Tape, self.tape_size, self.tape_offsets[k]),
            _ => None,
        }
    }
}

/// A kernel and the scratch floats per row it uses.
pub(crate) struct Lowered {
    pub kernel: Kernel,
    pub scratch: usize,
}

/// A fused loop being built.
#[derive(Default)]
struct LoopBuilder {
    ops: Vec<LoopOp>,
    sinks: Vec<Sink>,
    regs: HashMap<Id, Reg>,
}

impl LoopBuilder {
    fn push(&mut self, op: LoopOp) -> Reg {
        if let Some(i) = self.ops.iter().position(|o| *o == op) {
            return Reg(i as u32);
        }
        self.ops.push(op);
        Reg(self.ops.len() as u32 - 1)
    }
}

struct Lowering<'a> {
    g: &'a Graph,
    leaves: &'a Leaves<'a>,
    depth: HashMap<Id, usize>,
    temps: HashMap<Id, Temp>,
    scratch: usize,
    loops: BTreeMap<(usize, usize), LoopBuilder>,
}

impl Lowering<'_> {
    fn temp(&mut self, id: Id) -> Temp {
        if let Some(t) = self.temps.get(&id) {
            return *t;
        }
        let t = Temp {
            offset: self.scratch,
            width: self.g.width(id),
        };
        self.scratch += t.width;
        self.temps.insert(id, t);
        t
    }

    /// The group (depth, width) whose loop computes or loads `id`.
    fn group(&self, id: Id) -> (usize, usize) {
        (self.depth[&id], self.g.width(id))
    }

    /// A matrix operand: `x` itself, or a temporary holding the node.
    fn matrix(&mut self, id: Id) -> Matrix {
        if self.g.node(id).op == Op::Input {
            return Matrix::Input;
        }
        Matrix::Temp(self.materialise(id))
    }

    /// The node's temporary, arranging for it to be filled.
    fn materialise(&mut self, id: Id) -> Temp {
        let fresh = !self.temps.contains_key(&id);
        let t = self.temp(id);
        if fresh && !self.g.node(id).op.is_instruction() {
            self.sink(id, Target::View(View::Temp { temp: t, col: 0 }));
        }
        t
    }

    /// Sends `id`'s value to `target` from the loop of its group; a
    /// concatenation sends each part to its columns.
    fn sink(&mut self, id: Id, target: Target) {
        if let Op::Concat(parts) = &self.g.node(id).op {
            let mut col = 0;
            for &p in parts {
                self.sink(p, target.shifted(col));
                col += self.g.width(p);
            }
            return;
        }
        let group = self.group(id);
        let reg = self.value(group, id);
        let sink = match target {
            Target::View(v) => Sink::Store(v, reg),
            Target::Grad(offset) => Sink::AccumulateGrad(offset, reg),
        };
        self.loops.entry(group).or_default().sinks.push(sink);
    }

    /// Where a non-register node is read from.
    fn load(&mut self, id: Id) -> LoopOp {
        let node = self.g.node(id);
        match node.op {
            Op::Const(bits) => LoopOp::Const(f32::from_bits(bits)),
            Op::Param(offset) => LoopOp::Param(offset),
            Op::Slice(a, col) => match self.load(a) {
                LoopOp::Load(view) => LoopOp::Load(view.shifted(col)),
                other => unreachable!("a slice of {other:?} is pushed down"),
            },
            // The one column, in every column: the graph pushes broadcasts
            // down to leaves, so this is a parameter read in place or a
            // leaf's or product's view.
            Op::Broadcast(a) => match self.load(a) {
                LoopOp::Load(view) => LoopOp::LoadScalar(view),
                LoopOp::Param(offset) => LoopOp::ParamScalar(offset),
                other => other,
            },
            ref op => match self.leaves.view(op) {
                Some(v) => LoopOp::Load(v),
                None => LoopOp::Load(View::Temp {
                    temp: self.materialise(id),
                    col: 0,
                }),
            },
        }
    }

    /// `id`'s register in the loop of `group`, computing it there if it is
    /// an elementwise node of that group, else loading it.
    fn value(&mut self, group: (usize, usize), id: Id) -> Reg {
        if let Some(&r) = self.loops.get(&group).and_then(|l| l.regs.get(&id)) {
            return r;
        }
        let op = self.g.node(id).op.clone();
        let lop = if op.is_elementwise() && self.group(id) == group {
            match op {
                Op::Unary(f, a) => LoopOp::Unary(f, self.value(group, a)),
                Op::Binary(f, a, b) => {
                    let ra = self.value(group, a);
                    LoopOp::Binary(f, ra, self.value(group, b))
                }
                _ => unreachable!(),
            }
        } else {
            self.load(id)
        };
        let l = self.loops.entry(group).or_default();
        let r = l.push(lop);
        l.regs.insert(id, r);
        r
    }
}

/// Lowers `roots` of `g` to a kernel.
pub(crate) fn lower(g: &Graph, roots: &[Root], leaves: &Leaves) -> Lowered {
    let ids: Vec<Id> = roots
        .iter()
        .flat_map(|r| match *r {
            Root::Store { node, .. } | Root::Accumulate { node, .. } => vec![node],
            Root::WeightGrad { a, dy, .. } => vec![a, dy],
        })
        .collect();
    let order = g.topo(&ids);
    let mut depth = HashMap::new();
    for &v in &order {
        let op = &g.node(v).op;
        let below = op.operands().iter().map(|o| depth[o]).max().unwrap_or(0);
        let d = below + usize::from(op.is_instruction());
        depth.insert(v, d);
    }
    let mut l = Lowering {
        g,
        leaves,
        depth,
        temps: HashMap::new(),
        scratch: 0,
        loops: BTreeMap::new(),
    };
    // Products, with what fills their temporaries first.
    let mut products: Vec<(usize, Instr)> = Vec::new();
    for &v in &order {
        if let Op::RowSum(a) = g.node(v).op {
            let (a, out) = (l.materialise(a), l.temp(v));
            products.push((l.depth[&v], Instr::RowSum { a, out }));
        }
        if let Op::RowProduct(op, a, b) = g.node(v).op {
            let (m, n) = g.row_dims(op, a, b);
            let (a, b, out) = (l.materialise(a), l.materialise(b), l.temp(v));
            let instr = Instr::RowProduct {
                op,
                m,
                n,
                a,
                b,
                out,
            };
            products.push((l.depth[&v], instr));
        }
        if let Op::Linear { init, terms } = g.node(v).op.clone() {
            {
                let out = l.temp(v);
                let target = View::Temp { temp: out, col: 0 };
                match init {
                    Some(init) => l.sink(init, Target::View(target)),
                    None => {
                        let zeros = l.loops.entry((0, out.width)).or_default();
                        let reg = zeros.push(LoopOp::Const(0.0));
                        zeros.sinks.push(Sink::Store(target, reg));
                    }
                }
                for t in terms {
                    let instr = if t.transposed {
                        Instr::MatMulT {
                            a: l.materialise(t.a),
                            w: t.w,
                            out,
                        }
                    } else {
                        Instr::MatMul {
                            a: l.matrix(t.a),
                            w: t.w,
                            out,
                        }
                    };
                    products.push((l.depth[&v], instr));
                }
            }
        }
    }
    let mut weight_grads = Vec::new();
    for r in roots {
        match *r {
            Root::Store {
                buffer,
                stride,
                col,
                node,
            } => l.sink(
                node,
                Target::View(View::Rows {
                    buffer,
                    stride,
                    col,
                }),
            ),
            Root::Accumulate { offset, node } => l.sink(node, Target::Grad(offset)),
            Root::WeightGrad { a, dy, w } => {
                let (a, dy) = (l.matrix(a), l.materialise(dy));
                weight_grads.push(Instr::WeightGrad { a, dy, w });
            }
        }
    }
    let max_depth = l.depth.values().copied().max().unwrap_or(0);
    let mut instrs = Vec::new();
    let mut loops = std::mem::take(&mut l.loops);
    for d in 0..=max_depth {
        instrs.extend(products.iter().filter(|p| p.0 == d).map(|p| p.1.clone()));
        let keys: Vec<(usize, usize)> = loops.keys().copied().filter(|k| k.0 == d).collect();
        for k in keys {
            let b = loops.remove(&k).unwrap_or_default();
            if !b.sinks.is_empty() {
                instrs.push(Instr::Loop(FusedLoop {
                    width: k.1,
                    ops: b.ops,
                    sinks: b.sinks,
                }));
            }
        }
    }
    instrs.extend(weight_grads);
    Lowered {
        kernel: Kernel { instrs },
        scratch: l.scratch,
    }
}
