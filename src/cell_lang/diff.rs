//! Reverse-mode differentiation of the forward graph, and the rewrite that
//! folds sums of products into one accumulating product.

use std::collections::HashMap;

use super::graph::{Graph, Id, Op, Term};
use super::program::{Binary, ParamMatrix, RowProduct, Unary};

/// The backward step as roots in the same graph as the forward one.
pub(crate) struct Backward {
    /// `dL/d state_i` at the start of the step (a zero constant if none).
    pub dstates: Vec<Id>,
    /// `(offset, g)`: the gradient of the parameter vector at `offset` is
    /// `g` summed over rows.
    pub bias_grads: Vec<(usize, Id)>,
    /// `(a, dy, W)`: `dW += aᵀ · dy`.
    pub weight_grads: Vec<(Id, Id, ParamMatrix)>,
}

/// Differentiates the step whose new states are `outputs` (state `i` of
/// width `widths[i]`), seeding each output with `GradState(i)`.
pub(crate) fn differentiate(g: &mut Graph, outputs: &[Id], widths: &[usize]) -> Backward {
    let order = g.topo(outputs);
    let mut needs: HashMap<Id, bool> = HashMap::new();
    for &v in &order {
        let op = &g.node(v).op;
        let n = match op {
            Op::Input | Op::Const(_) | Op::Tape(_) | Op::GradState(_) => false,
            Op::State(_) | Op::Param(_) | Op::Linear { .. } => true,
            _ => op.operands().iter().any(|o| needs[o]),
        };
        needs.insert(v, n);
    }
    // Gradient pieces per node: (first column, value).
    let mut pieces: HashMap<Id, Vec<(usize, Id)>> = HashMap::new();
    for (i, (&out, &w)) in outputs.iter().zip(widths).enumerate() {
        let seed = g.raw(Op::GradState(i), w);
        pieces.entry(out).or_default().push((0, seed));
    }
    let mut back = Backward {
        dstates: widths.iter().map(|&w| g.constant_node(0.0, w)).collect(),
        bias_grads: Vec::new(),
        weight_grads: Vec::new(),
    };
    for &v in order.iter().rev() {
        let Some(ps) = pieces.remove(&v) else {
            continue;
        };
        if !needs[&v] {
            continue;
        }
        let grad = assemble(g, g.width(v), &ps);
        let mut add = |to: Id, col: usize, value: Id| {
            if needs[&to] {
                pieces.entry(to).or_default().push((col, value));
            }
        };
        match g.node(v).op.clone() {
            Op::Input | Op::Const(_) | Op::Tape(_) | Op::GradState(_) => {}
            Op::State(i) => back.dstates[i] = grad,
            Op::Param(offset) => back.bias_grads.push((offset, grad)),
            Op::Unary(f, a) => {
                let local = match f {
                    Unary::Neg => None,
                    Unary::Sigmoid => {
                        let one = g.constant_node(1.0, g.width(v));
                        let s = g.binary(Binary::Sub, one, v);
                        Some(g.binary(Binary::Mul, v, s))
                    }
                    Unary::Tanh => {
                        let one = g.constant_node(1.0, g.width(v));
                        let sq = g.binary(Binary::Mul, v, v);
                        Some(g.binary(Binary::Sub, one, sq))
                    }
                    Unary::Exp => Some(v),
                    Unary::Relu => {
                        let r = g.binary(Binary::ReluGrad, grad, v);
                        add(a, 0, r);
                        continue;
                    }
                    // d sqrt(a) = g · 0.5 / sqrt(a).
                    Unary::Sqrt => {
                        let half = g.constant_node(0.5, g.width(v));
                        let h = g.binary(Binary::Mul, grad, half);
                        let d = g.binary(Binary::Div, h, v);
                        add(a, 0, d);
                        continue;
                    }
                    // d log(a) = g / a.
                    Unary::Log => {
                        let d = g.binary(Binary::Div, grad, a);
                        add(a, 0, d);
                        continue;
                    }
                    // d softplus(a) = g · sigmoid(a).
                    Unary::Softplus => Some(g.unary(Unary::Sigmoid, a)),
                    // d |a| = g · sign(a), with sign(0) = 0.
                    Unary::Abs => {
                        let zero = g.constant_node(0.0, g.width(v));
                        let pos = g.binary(Binary::Greater, a, zero);
                        let neg = g.binary(Binary::Greater, zero, a);
                        Some(g.binary(Binary::Sub, pos, neg))
                    }
                };
                let d = match local {
                    None => g.unary(Unary::Neg, grad),
                    Some(l) => g.binary(Binary::Mul, grad, l),
                };
                add(a, 0, d);
            }
            Op::Binary(f, a, b) => match f {
                Binary::Add => {
                    add(a, 0, grad);
                    add(b, 0, grad);
                }
                Binary::Sub => {
                    add(a, 0, grad);
                    let n = g.unary(Unary::Neg, grad);
                    add(b, 0, n);
                }
                Binary::Mul => {
                    let (da, db) = (
                        g.binary(Binary::Mul, grad, b),
                        g.binary(Binary::Mul, grad, a),
                    );
                    add(a, 0, da);
                    add(b, 0, db);
                }
                // y = a / b: da = g / b, db = -(g · y) / b.
                Binary::Div => {
                    let da = g.binary(Binary::Div, grad, b);
                    let gy = g.binary(Binary::Mul, grad, v);
                    let q = g.binary(Binary::Div, gy, b);
                    let db = g.unary(Unary::Neg, q);
                    add(a, 0, da);
                    add(b, 0, db);
                }
                // The gradient goes to the operand taken: `a` where the mask
                // is 1 (`a > b` for max, `b > a` for min), else `b`.
                Binary::Max | Binary::Min => {
                    let mask = match f {
                        Binary::Max => g.binary(Binary::Greater, a, b),
                        _ => g.binary(Binary::Greater, b, a),
                    };
                    let one = g.constant_node(1.0, g.width(v));
                    let other = g.binary(Binary::Sub, one, mask);
                    let (da, db) = (
                        g.binary(Binary::Mul, grad, mask),
                        g.binary(Binary::Mul, grad, other),
                    );
                    add(a, 0, da);
                    add(b, 0, db);
                }
                Binary::ReluGrad | Binary::Greater => {
                    unreachable!("{f:?} appears only in backward graphs")
                }
            },
            Op::Slice(a, col) => add(a, col, grad),
            Op::Broadcast(a) => {
                let s = g.row_sum(grad);
                add(a, 0, s);
            }
            Op::RowSum(a) => {
                let b = g.broadcast(grad, g.width(a));
                add(a, 0, b);
            }
            Op::Concat(parts) => {
                let mut col = 0;
                for p in parts {
                    let w = g.width(p);
                    let s = g.slice(grad, col, w);
                    add(p, 0, s);
                    col += w;
                }
            }
            // Each row's small matrices: with `dy` the gradient,
            // `outer(k, v)` gives `(dy · v, kᵀ · dy)`, `q · S` gives
            // `(S · dy, outer(q, dy))`, `S · v` gives `(outer(dy, v), dyᵀ · S)`.
            Op::RowProduct(op, a, b) => {
                let (da, db) = match op {
                    RowProduct::Outer => {
                        ((RowProduct::MatVec, grad, b), (RowProduct::VecMat, a, grad))
                    }
                    RowProduct::VecMat => {
                        ((RowProduct::MatVec, b, grad), (RowProduct::Outer, a, grad))
                    }
                    RowProduct::MatVec => {
                        ((RowProduct::Outer, grad, b), (RowProduct::VecMat, grad, a))
                    }
                };
                for (to, (op, x, y)) in [(a, da), (b, db)] {
                    if needs[&to] {
                        let d = g.row_product(op, x, y);
                        add(to, 0, d);
                    }
                }
            }
            Op::Linear { init, terms } => {
                if let Some(i) = init {
                    add(i, 0, grad);
                }
                for t in terms {
                    back.weight_grads.push((t.a, grad, t.w));
                    if needs[&t.a] {
                        let term = Term {
                            a: grad,
                            w: t.w,
                            transposed: true,
                        };
                        let d = g.linear(None, vec![term], t.w.rows);
                        add(t.a, 0, d);
                    }
                }
            }
        }
    }
    back
}

/// The sum of gradient pieces over a node of `width` columns: each column
/// sums the pieces that cover it, in the order they came; uncovered columns
/// are zero.
fn assemble(g: &mut Graph, width: usize, pieces: &[(usize, Id)]) -> Id {
    let mut cuts = vec![0, width];
    for &(col, p) in pieces {
        cuts.push(col);
        cuts.push(col + g.width(p));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut segments = Vec::new();
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let mut sum: Option<Id> = None;
        for &(col, p) in pieces {
            if col <= lo && hi <= col + g.width(p) {
                let s = g.slice(p, lo - col, hi - lo);
                sum = Some(match sum {
                    None => s,
                    Some(acc) => g.binary(Binary::Add, acc, s),
                });
            }
        }
        let seg = match sum {
            Some(s) => s,
            None => g.constant_node(0.0, hi - lo),
        };
        segments.push(seg);
    }
    g.concat(segments)
}

/// Rebuilds the graph under `roots` with every sum that has a product used
/// only there folded into that product: `a·W + b·V + bias` becomes one
/// [`Op::Linear`] whose products accumulate onto `bias`. Returns the map
/// from old to new ids.
pub(crate) fn fuse_products(g: &mut Graph, roots: &[Id]) -> HashMap<Id, Id> {
    let mut uses: HashMap<Id, usize> = HashMap::new();
    for v in g.topo(roots) {
        for o in g.node(v).op.operands() {
            *uses.entry(o).or_default() += 1;
        }
    }
    for r in roots {
        *uses.entry(*r).or_default() += 1;
    }
    g.rebuild(roots, |g, _, node, map| {
        let Op::Binary(Binary::Add, a, b) = node.op else {
            return None;
        };
        let single =
            |x: Id, g: &Graph| uses[&x] == 1 && matches!(g.node(map[&x]).op, Op::Linear { .. });
        let (na, nb) = (map[&a], map[&b]);
        let (lin, other) = if single(a, g) {
            (na, Some(nb))
        } else if single(b, g) {
            (nb, Some(na))
        } else {
            return None;
        };
        let Op::Linear { init, mut terms } = g.node(lin).op.clone() else {
            return None;
        };
        let mut init = init;
        let mut extra = other;
        if let Some(o) = other
            && uses[&if lin == na { b } else { a }] == 1
            && let Op::Linear {
                init: i2,
                terms: t2,
            } = g.node(o).op.clone()
        {
            terms.extend(t2);
            extra = i2;
        }
        init = match (init, extra) {
            (Some(x), Some(y)) => Some(g.binary(Binary::Add, x, y)),
            (x, y) => x.or(y),
        };
        Some(g.linear(init, terms, node.width))
    })
}
