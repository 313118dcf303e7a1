//! Which weight gradients of a backward kernel the executor may sum once
//! per window of steps instead ([`bptt_runtime::Cell::backward_deferred`]).
//!
//! A [`Instr::WeightGrad`] adds `aᵀ·dy` into `grads[W]` with
//! `gemm_tn_acc`, whose every element adds its row products in row order
//! after what it held. The executor's window adds the same rows, step
//! after step, in the same order, so deferring changes no bit, provided
//! that:
//!
//! * no two weight gradients touch the same gradient floats, and no
//!   parameter-vector gradient ([`Sink::AccumulateGrad`]) touches theirs
//!   (a window would move one sum past the other);
//! * no instruction after a weight gradient writes its operands, so that
//!   they are still there, unchanged, when the kernel ends and the cell
//!   copies them into the window.
//!
//! If any of this fails, nothing is deferred. Weight gradients of the same
//! `dy` over adjacent weights (`W_x` then `W_h` of `matmul(x, W_x) +
//! matmul(h, W_h)`) become one product over the operands side by side,
//! `[dW_x; dW_h] += [x | h]ᵀ·dy`: each element's sum is unchanged, and one
//! product with a longer reduction runs faster than two.

use std::ops::Range;

use super::program::{DeferredProduct, Instr, Kernel, Matrix, ParamMatrix, Sink, Temp, View};

/// The kernel without its deferred weight gradients, and those gradients;
/// an empty kernel and none when nothing can be deferred.
pub(super) fn defer(backward: &Kernel) -> (Kernel, Vec<DeferredProduct>) {
    let grads: Vec<(usize, Matrix, Temp, ParamMatrix)> = backward
        .instrs
        .iter()
        .enumerate()
        .filter_map(|(i, instr)| match *instr {
            Instr::WeightGrad { a, dy, w } => Some((i, a, dy, w)),
            _ => None,
        })
        .collect();
    if grads.is_empty() || !deferrable(backward, &grads) {
        return (Kernel::default(), Vec::new());
    }
    let kernel = Kernel {
        instrs: backward
            .instrs
            .iter()
            .filter(|i| !matches!(i, Instr::WeightGrad { .. }))
            .cloned()
            .collect(),
    };
    (kernel, merged(&grads))
}

/// Whether the conditions of the module's docs hold.
fn deferrable(kernel: &Kernel, grads: &[(usize, Matrix, Temp, ParamMatrix)]) -> bool {
    let weights: Vec<Range<usize>> = grads.iter().map(|g| g.3.floats()).collect();
    let disjoint = weights
        .iter()
        .enumerate()
        .all(|(i, a)| weights[i + 1..].iter().all(|b| !overlaps(a, b)));
    let vectors_apart = kernel.instrs.iter().all(|instr| match instr {
        Instr::Loop(l) => l.sinks.iter().all(|sink| match *sink {
            Sink::AccumulateGrad(offset, _) => {
                let floats = offset..offset + l.width;
                weights.iter().all(|w| !overlaps(w, &floats))
            }
            Sink::Store(..) => true,
        }),
        _ => true,
    });
    let operands_kept = grads.iter().all(|&(at, a, dy, _)| {
        let operands: Vec<Temp> = match a {
            Matrix::Temp(t) => vec![t, dy],
            Matrix::Input => vec![dy],
        };
        kernel.instrs[at + 1..].iter().all(|later| {
            written(later)
                .iter()
                .all(|w| operands.iter().all(|o| !overlaps(&units(*w), &units(*o))))
        })
    });
    disjoint && vectors_apart && operands_kept
}

/// The scratch temporaries an instruction writes (whole, for a loop's
/// stores into part of one).
fn written(instr: &Instr) -> Vec<Temp> {
    match instr {
        Instr::MatMul { out, .. }
        | Instr::MatMulT { out, .. }
        | Instr::RowSum { out, .. }
        | Instr::RowProduct { out, .. } => vec![*out],
        Instr::WeightGrad { .. } => Vec::new(),
        Instr::Loop(l) => l
            .sinks
            .iter()
            .filter_map(|sink| match sink {
                Sink::Store(View::Temp { temp, .. }, _) => Some(*temp),
                _ => None,
            })
            .collect(),
    }
}

/// A temporary's place in scratch, in units of batch rows (the same order
/// and overlaps as its floats for any batch).
fn units(t: Temp) -> Range<usize> {
    t.offset..t.offset + t.width
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The weight gradients as products, in kernel order, each run of the same
/// `dy` over adjacent weights of the same width joined into one.
fn merged(grads: &[(usize, Matrix, Temp, ParamMatrix)]) -> Vec<DeferredProduct> {
    let mut out: Vec<DeferredProduct> = Vec::new();
    for &(_, a, dy, w) in grads {
        if let Some(last) = out.last_mut()
            && last.dy == dy
            && last.w.cols == w.cols
            && last.w.floats().end == w.offset
        {
            last.a.push(a);
            last.w.rows += w.rows;
            continue;
        }
        out.push(DeferredProduct { a: vec![a], dy, w });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell_lang::program::{FusedLoop, LoopOp, Reg};

    fn temp(offset: usize, width: usize) -> Temp {
        Temp { offset, width }
    }

    fn weight(offset: usize, rows: usize, cols: usize) -> ParamMatrix {
        ParamMatrix { offset, rows, cols }
    }

    fn grad(a: Matrix, dy: Temp, w: ParamMatrix) -> Instr {
        Instr::WeightGrad { a, dy, w }
    }

    /// A loop of `width` columns that stores into `into` or adds into the
    /// gradient at `grad`.
    fn store(into: Temp, width: usize) -> Instr {
        Instr::Loop(FusedLoop {
            width,
            ops: vec![LoopOp::Const(1.0)],
            sinks: vec![Sink::Store(View::Temp { temp: into, col: 0 }, Reg(0))],
        })
    }

    fn accumulate(grad: usize, width: usize) -> Instr {
        Instr::Loop(FusedLoop {
            width,
            ops: vec![LoopOp::Const(1.0)],
            sinks: vec![Sink::AccumulateGrad(grad, Reg(0))],
        })
    }

    #[test]
    fn adjacent_weights_of_one_gradient_become_one_product() {
        let (dy, h) = (temp(0, 16), temp(16, 4));
        let kernel = Kernel {
            instrs: vec![
                store(dy, 16),
                grad(Matrix::Input, dy, weight(0, 8, 16)),
                grad(Matrix::Temp(h), dy, weight(128, 4, 16)),
            ],
        };
        let (rest, products) = defer(&kernel);
        assert_eq!(rest.instrs, vec![store(dy, 16)]);
        assert_eq!(
            products,
            vec![DeferredProduct {
                a: vec![Matrix::Input, Matrix::Temp(h)],
                dy,
                w: weight(0, 12, 16),
            }]
        );
    }

    #[test]
    fn weights_apart_or_of_other_gradients_stay_separate() {
        let (d1, d2) = (temp(0, 16), temp(16, 16));
        let kernel = Kernel {
            instrs: vec![
                grad(Matrix::Input, d1, weight(0, 8, 16)),
                grad(Matrix::Input, d2, weight(128, 8, 16)),
                grad(Matrix::Input, d2, weight(300, 8, 16)),
            ],
        };
        let (_, products) = defer(&kernel);
        assert_eq!(products.len(), 3);
        assert_eq!(products[2].w, weight(300, 8, 16));
    }

    #[test]
    fn an_operand_overwritten_later_defers_nothing() {
        let (dy, h) = (temp(0, 16), temp(16, 4));
        for later in [store(temp(18, 1), 1), store(temp(10, 2), 2)] {
            let kernel = Kernel {
                instrs: vec![grad(Matrix::Temp(h), dy, weight(0, 4, 16)), later],
            };
            let (rest, products) = defer(&kernel);
            assert!(rest.instrs.is_empty() && products.is_empty());
        }
        // A write elsewhere in scratch keeps the product deferred.
        let kernel = Kernel {
            instrs: vec![
                grad(Matrix::Temp(h), dy, weight(0, 4, 16)),
                store(temp(20, 4), 4),
            ],
        };
        assert_eq!(defer(&kernel).1.len(), 1);
    }

    #[test]
    fn shared_gradient_floats_defer_nothing() {
        let dy = temp(0, 16);
        let twice = Kernel {
            instrs: vec![
                grad(Matrix::Input, dy, weight(0, 8, 16)),
                grad(Matrix::Input, dy, weight(64, 8, 16)),
            ],
        };
        assert!(defer(&twice).1.is_empty());
        let vector_inside = Kernel {
            instrs: vec![
                grad(Matrix::Input, dy, weight(0, 8, 16)),
                accumulate(120, 16),
            ],
        };
        assert!(defer(&vector_inside).1.is_empty());
        let vector_after = Kernel {
            instrs: vec![
                grad(Matrix::Input, dy, weight(0, 8, 16)),
                accumulate(128, 16),
            ],
        };
        assert_eq!(defer(&vector_after).1.len(), 1);
    }

    #[test]
    fn a_kernel_without_weight_gradients_defers_nothing() {
        let kernel = Kernel {
            instrs: vec![store(temp(0, 4), 4)],
        };
        let (rest, products) = defer(&kernel);
        assert!(rest.instrs.is_empty() && products.is_empty());
    }
}
