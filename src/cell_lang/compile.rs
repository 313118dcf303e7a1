//! [`CellDef::compile`]: equations to a [`CellProgram`].

use std::collections::{HashMap, HashSet};

use super::build;
use super::defer::defer;
use super::diff::{differentiate, fuse_products};
use super::error::CellError;
use super::eval::MAX_REGISTERS;
use super::graph::{Graph, Id, Op};
use super::lower::{Leaves, Root, lower};
use super::program::{Buffer, CellProgram, Instr, Slot};
use super::syntax::CellDef;
use super::tape;

impl CellDef {
    /// The cell's name.
    pub fn cell_name(&self) -> String {
        self.name.to_string()
    }

    /// The size names, in declaration order.
    pub fn size_names(&self) -> Vec<String> {
        self.sizes.iter().map(|s| s.to_string()).collect()
    }

    /// Compiles the cell for concrete sizes (every declared size, by name):
    /// checks names and shapes, differentiates, chooses the tape and lowers
    /// the four kernels. Errors point at the offending token.
    pub fn compile(&self, sizes: &[(&str, usize)]) -> Result<CellProgram, CellError> {
        let fwd = build::forward(self, sizes)?;
        let mut g = fwd.graph;
        let map = fuse_products(&mut g, &fwd.outputs);
        let outputs: Vec<Id> = fwd.outputs.iter().map(|o| map[o]).collect();
        let labels: HashMap<Id, String> = fwd
            .labels
            .iter()
            .filter_map(|(id, name)| map.get(id).map(|n| (*n, name.clone())))
            .collect();
        let widths: Vec<usize> = fwd.states.iter().map(|s| s.width).collect();
        let state_size: usize = widths.iter().sum();
        let back = differentiate(&mut g, &outputs, &widths);

        // What the backward step reads of the forward step.
        let forward_order = g.topo(&outputs);
        let in_forward: HashSet<Id> = forward_order.iter().copied().collect();
        let mut back_roots: Vec<Id> = back.dstates.clone();
        back_roots.extend(back.bias_grads.iter().map(|b| b.1));
        back_roots.extend(back.weight_grads.iter().flat_map(|w| [w.0, w.1]));
        let mut needed: HashSet<Id> = outputs.iter().copied().collect();
        needed.extend(back_roots.iter().filter(|r| in_forward.contains(r)));
        for v in g.topo(&back_roots) {
            if !in_forward.contains(&v) {
                needed.extend(
                    g.node(v)
                        .op
                        .operands()
                        .into_iter()
                        .filter(|o| in_forward.contains(o)),
                );
            }
        }
        // The backward step reads `x` itself, so neither `x` nor an input's
        // block of it is kept on the tape.
        needed.retain(|&v| match g.node(v).op {
            Op::Input | Op::Param(_) | Op::Const(_) => false,
            Op::Slice(a, _) => g.node(a).op != Op::Input,
            _ => true,
        });
        let stored = tape::choose(&g, &forward_order, &needed);

        let mut tape = Vec::new();
        let mut offset = 0;
        for &s in &stored {
            let width = g.width(s);
            tape.push(Slot {
                name: describe(&g, s, &labels),
                offset,
                width,
            });
            offset += width;
        }
        let tape_size = offset.max(state_size);
        let state_offsets: Vec<usize> = fwd.states.iter().map(|s| s.offset).collect();
        let tape_offsets: Vec<usize> = tape.iter().map(|s| s.offset).collect();
        let leaves = Leaves {
            input_size: fwd.input_size,
            state_size,
            state_offsets: &state_offsets,
            tape_size,
            tape_offsets: &tape_offsets,
        };
        let store = |buffer, stride, col, node| Root::Store {
            buffer,
            stride,
            col,
            node,
        };
        let new_states = |outs: &[Id]| -> Vec<Root> {
            outs.iter()
                .zip(&state_offsets)
                .map(|(&o, &col)| store(Buffer::StateNext, state_size, col, o))
                .collect()
        };

        let forward = lower(&g, &new_states(&outputs), &leaves);
        let mut with_tape = new_states(&outputs);
        for (&s, slot) in stored.iter().zip(&tape) {
            with_tape.push(store(Buffer::Tape, tape_size, slot.offset, s));
        }
        let forward_tape = lower(&g, &with_tape, &leaves);

        // From here on the stored nodes are tape leaves.
        let on_tape = |g: &mut Graph, roots: &[Id]| {
            g.rebuild(roots, |g, id, node, _| {
                stored
                    .iter()
                    .position(|&s| s == id)
                    .map(|k| g.raw(Op::Tape(k), node.width))
            })
        };
        let map = on_tape(&mut g, &outputs);
        let rebuilt: Vec<Id> = outputs.iter().map(|o| map[o]).collect();
        self.check_recomputable(&g, &rebuilt, false)?;
        let state_from_tape = lower(&g, &new_states(&rebuilt), &leaves);

        let map = on_tape(&mut g, &back_roots);
        let subst: Vec<Id> = back_roots.iter().map(|r| map[r]).collect();
        let fused = fuse_products(&mut g, &subst);
        let m = |id: &Id| fused[&map[id]];
        self.check_recomputable(
            &g,
            &subst.iter().map(|r| fused[r]).collect::<Vec<_>>(),
            true,
        )?;
        let mut roots: Vec<Root> = back
            .dstates
            .iter()
            .zip(&state_offsets)
            .map(|(d, &col)| store(Buffer::GradStatePrev, state_size, col, m(d)))
            .collect();
        roots.extend(back.bias_grads.iter().map(|(offset, gr)| Root::Accumulate {
            offset: *offset,
            node: m(gr),
        }));
        roots.extend(back.weight_grads.iter().map(|(a, dy, w)| Root::WeightGrad {
            a: m(a),
            dy: m(dy),
            w: *w,
        }));
        let backward = lower(&g, &roots, &leaves);

        let kernels = [forward, forward_tape, state_from_tape, backward];
        for k in &kernels {
            for i in &k.kernel.instrs {
                if let Instr::Loop(l) = i
                    && l.ops.len() > MAX_REGISTERS
                {
                    return Err(CellError::new(
                        self.name.span(),
                        format!(
                            "cell `{}` is too large: one fused loop needs {} registers (at most {MAX_REGISTERS})",
                            self.name,
                            l.ops.len()
                        ),
                    ));
                }
            }
        }
        let scratch_size = kernels.iter().map(|k| k.scratch).max().unwrap_or(0);
        let [forward, forward_tape, state_from_tape, backward] = kernels.map(|k| k.kernel);
        let (backward_deferred, deferred) = defer(&backward);
        let param_count = fwd.params.iter().map(|p| p.len()).sum();
        Ok(CellProgram {
            name: self.name.to_string(),
            sizes: sizes.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            input_size: fwd.input_size,
            state_size,
            output_size: widths[0],
            states: fwd.states,
            tape,
            tape_size,
            scratch_size,
            params: fwd.params,
            param_count,
            forward,
            forward_tape,
            state_from_tape,
            backward,
            backward_deferred,
            deferred,
        })
    }

    /// An internal check: after the tape substitution nothing reads the
    /// previous state, and `state_from_tape` does not read `x` either.
    fn check_recomputable(&self, g: &Graph, roots: &[Id], input_ok: bool) -> Result<(), CellError> {
        for v in g.topo(roots) {
            let bad = match g.node(v).op {
                Op::State(_) => true,
                Op::Input => !input_ok,
                _ => false,
            };
            if bad {
                return Err(CellError::new(
                    self.name.span(),
                    format!(
                        "internal error: the tape chosen for cell `{}` cannot rebuild the step",
                        self.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A readable name for a tape value: its `let` name, or how it is computed.
fn describe(g: &Graph, id: Id, labels: &HashMap<Id, String>) -> String {
    if let Some(l) = labels.get(&id) {
        return l.clone();
    }
    let node = g.node(id);
    match &node.op {
        Op::Slice(a, col) => format!("{}[{}..{}]", describe(g, *a, labels), col, col + node.width),
        Op::Unary(f, a) => format!(
            "{}({})",
            format!("{f:?}").to_lowercase(),
            describe(g, *a, labels)
        ),
        Op::Linear { .. } => format!("product#{}", id.0),
        Op::RowSum(a) => format!("sum({})", describe(g, *a, labels)),
        Op::RowProduct(op, a, b) => format!(
            "{}({}, {})",
            op.name(),
            describe(g, *a, labels),
            describe(g, *b, labels)
        ),
        Op::Binary(f, a, b) => format!(
            "{}({}, {})",
            format!("{f:?}").to_lowercase(),
            describe(g, *a, labels),
            describe(g, *b, labels)
        ),
        op => format!(
            "{}#{}",
            format!("{op:?}")
                .split('(')
                .next()
                .unwrap_or("value")
                .to_lowercase(),
            id.0
        ),
    }
}
