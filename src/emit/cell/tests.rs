//! The expansion's fallbacks and the emitter's refusals; the emitted code
//! itself is tested by running it, in `bptt-macros`' `tests/cell.rs`.

use quote::quote;

use super::*;
use crate::cell_lang::{Binary, Buffer, FusedLoop, Instr, Kernel, LoopOp, Reg, Sink, Unary, View};

const RNN: &str = include_str!("../../../cells/rnn.cell");

fn rnn() -> CellProgram {
    let def = CellDef::parse_str(RNN).unwrap();
    def.compile(&[("input", 3), ("hidden", 4)]).unwrap()
}

/// The tokens as text without spaces.
fn text(tokens: TokenStream) -> String {
    tokens.to_string().replace(' ', "")
}

#[test]
fn a_cell_that_does_not_parse_or_compile_leaves_a_placeholder() {
    let unparsed = expand_cell(quote! {
        /// Doc.
        #[sizes(input = 3)]
        pub(crate) cell Rnn { size input; input x: [input]; state h: [input]; h = ; }
    });
    let out = text(unparsed);
    assert!(out.contains("compile_error!"), "{out}");
    assert!(
        out.ends_with("#[doc=r\"Doc.\"]pub(crate)structRnn{}"),
        "{out}"
    );

    let uncompiled = expand_cell(quote! {
        #[sizes(input = 3)]
        cell Rnn { size input; input x: [input]; state h: [input]; h = hh; }
    });
    let out = text(uncompiled);
    assert!(out.contains("unknownname`hh`"), "{out}");
    assert!(out.ends_with("structRnn{}"), "{out}");
}

#[test]
fn a_schedule_is_planned_with_the_programs_alpha() {
    let out = text(expand_cell(quote! {
        #[sizes(input = 3, hidden = 4)]
        #[bptt(seq_len = 10, budget = "50%")]
        cell Rnn {
            size input, hidden;
            input x: [input];
            state h: [hidden];
            param w: [input, hidden];
            h = tanh(matmul(x, w));
        }
    }));
    assert!(!out.contains("compile_error"), "{out}");
    assert!(out.contains("pubfntrain_step("), "{out}");
    assert!(out.contains("pubconstTICKS_PER_TAPE:u32=1;"), "{out}");
}

#[test]
fn a_name_that_is_not_an_identifier_is_refused() {
    let err = emit_cell_rust(&rnn(), "not a name").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot emit cell `rnn` as Rust: `not a name` is not a Rust identifier"
    );
}

/// The first fused loop of `kernel`.
fn first_loop(kernel: &mut Kernel) -> &mut FusedLoop {
    kernel
        .instrs
        .iter_mut()
        .find_map(|i| match i {
            Instr::Loop(l) => Some(l),
            _ => None,
        })
        .unwrap()
}

#[test]
fn programs_that_break_their_invariants_are_refused() {
    let reason = |edit: &dyn Fn(&mut CellProgram)| {
        let mut program = rnn();
        edit(&mut program);
        emit_cell_rust(&program, "Rnn").unwrap_err().reason
    };
    // A store into the input.
    let x = View::Rows {
        buffer: Buffer::Input,
        stride: 3,
        col: 0,
    };
    assert_eq!(
        reason(&|p| {
            let l = first_loop(&mut p.forward);
            l.ops.push(LoopOp::Const(0.0));
            l.sinks.push(Sink::Store(x, Reg(l.ops.len() as u32 - 1)));
        }),
        "forward instruction 0 writes Input, which this method does not receive mutably"
    );
    // A product in a method without its operand (or scratch).
    assert_eq!(
        reason(&|p| {
            let product = p
                .forward
                .instrs
                .iter()
                .find(|i| matches!(i, Instr::MatMul { .. }));
            p.state_from_tape.instrs.insert(0, product.unwrap().clone());
        }),
        "state_from_tape instruction 0 reads x, which this method does not receive"
    );
    // A register read before it is defined.
    assert_eq!(
        reason(&|p| {
            let l = first_loop(&mut p.backward);
            l.ops.insert(0, LoopOp::Unary(Unary::Neg, Reg(3)));
        }),
        "backward instruction 0 uses r3 before it is defined"
    );
}

#[test]
fn a_row_that_a_loop_reads_and_writes_is_split_apart() {
    let def = CellDef::parse_str(RNN).unwrap();
    let mut program = def.compile(&[("input", 3), ("hidden", 15)]).unwrap();
    let h_next = |col| View::Rows {
        buffer: Buffer::StateNext,
        stride: 15,
        col,
    };
    program.forward.instrs.push(Instr::Loop(FusedLoop {
        width: 5,
        ops: vec![
            LoopOp::Load(h_next(0)),
            LoopOp::Load(h_next(2)),
            LoopOp::Binary(Binary::Add, Reg(0), Reg(1)),
        ],
        sinks: vec![Sink::Store(h_next(10), Reg(2))],
    }));
    let code = emit_cell_rust(&program, "Rnn").unwrap();
    let expected = "
                        fn columns(v0: &[f32], v1: &[f32], v2: &mut [f32]) {
                            for j in 0..5 {
                                let r0 = v0[j];
                                let r1 = v1[j];
                                let r2 = r0 + r1;
                                v2[j] = r2;
                            }
                        }";
    assert!(code.contains(expected), "{code}");
    let expected = "
                        for a0 in h_next.chunks_exact_mut(15) {
                            let (a0_0, a0) = a0.split_at_mut(7);
                            let v0 = &a0_0[0..5];
                            let v1 = &a0_0[2..7];
                            let (_, a0) = a0.split_at_mut(3);
                            let v2 = &mut a0[..5];
                            simd_columns(v0, v1, v2);
                        }";
    assert!(code.contains(expected), "{code}");
    // Writing what the loop reads is refused.
    let Some(Instr::Loop(l)) = program.forward.instrs.last_mut() else {
        unreachable!()
    };
    l.sinks = vec![Sink::Store(h_next(4), Reg(2))];
    assert!(
        emit_cell_rust(&program, "Rnn")
            .unwrap_err()
            .reason
            .ends_with("a loop writes columns of a row that it also reads")
    );
}

/// The RNN of `cells/rnn.cell` with `#[bptt(args)]`, expanded, as text.
fn rnn_with(args: TokenStream) -> String {
    let cell: TokenStream = RNN.parse().unwrap();
    text(expand_cell(quote! {
        #[sizes(input = 3, hidden = 4)]
        #[bptt(#args)]
        #cell
    }))
}

#[test]
fn a_cell_plans_within_memory_from_its_own_sizes() {
    let out = rnn_with(quote!(
        seq_len = 50,
        memory = "20KiB",
        batch = 4,
        classes = 3
    ));
    assert!(!out.contains("compile_error"), "{out}");
    assert!(out.contains("pubconstMEMORY_BYTES:u64=20480;"), "{out}");
    // The gradients count: the cell's, the read-out's and dL/dh0.
    assert!(
        out.contains(
            "__bptt::check_memory(&layout,<Selfas__bptt::Cell>::params(self).len()+readout.params().len()+batch*<Selfas__bptt::Cell>::state_size(self),Self::MEMORY_BYTES,"
        ),
        "{out}"
    );
}

#[test]
fn a_cells_memory_sizes_are_batch_and_classes_and_need_memory() {
    let out = rnn_with(quote! {
        seq_len = 50, memory = "20KiB", batch = 4, classes = 3, state_bytes = 64
    });
    assert!(
        out.contains("`state_bytes`iscomputedfromthecell'ssizesin`cell!`"),
        "{out}"
    );
    let out = rnn_with(quote!(seq_len = 50, memory = "20KiB", batch = 4));
    assert!(out.contains("missingargument`classes`"), "{out}");
    let out = rnn_with(quote!(seq_len = 50, budget = "5%", batch = 4));
    assert!(out.contains("`batch`sizesabudgetinbytes"), "{out}");
}

#[test]
fn a_cells_memory_below_any_plan_names_both_figures() {
    let out = rnn_with(quote!(seq_len = 50, memory = 1000, batch = 4, classes = 3));
    assert!(out.contains("memory=1000bytesislessthanthe"), "{out}");
    assert!(out.contains("ofgradients"), "{out}");
}

#[test]
fn a_cells_footprint_is_the_runtime_arenas() {
    use bptt_runtime::{ArenaLayout, Cell, LossKind, Readout, Rng};
    let def = CellDef::parse_str(include_str!("../../../cells/lstm.cell")).unwrap();
    let program = def.compile(&[("input", 3), ("hidden", 5)]).unwrap();
    assert!(!program.deferred.is_empty(), "the window counts");
    let alpha = crate::Alpha::new(program.alpha()).unwrap();
    let cell = crate::cell_lang::DerivedCell::new(program.clone(), &mut Rng::new(1));
    let readout = Readout::new(LossKind::SoftmaxCrossEntropy, 5, 7, &mut Rng::new(2));
    for batch in [1, 6, 200] {
        let footprint =
            super::super::memory::Footprint::of_program(&program, batch, 7, alpha).unwrap();
        let ticks = (alpha.denominator(), alpha.numerator());
        let layout = ArenaLayout::new(&cell, &readout, batch, ticks, 40).unwrap();
        assert_eq!(footprint.working, layout.working_bytes() as u64);
        assert_eq!(footprint.state, 4 * (batch * cell.state_size()) as u64);
        assert_eq!(
            footprint.working as u128 + footprint.stack(alpha, crate::Ticks(40)),
            4 * layout.total() as u128
        );
        let grads = bptt_runtime::Gradients::zeros(&cell, &readout, batch);
        let floats = grads.cell.len() + grads.readout.len() + grads.h0.len();
        assert_eq!(footprint.gradients, 4 * floats as u64);
    }
}

/// Every register of a fused loop that is the same in every column (here
/// the mLSTM's scalar gates, broadcast over its matrix memory) is computed
/// once per row, before the column loop, as the interpreter and the JIT
/// compute it: no exponential or softplus is left inside a loop over more
/// than one column, and at least one is hoisted before one.
#[test]
fn row_invariant_registers_are_computed_before_the_column_loop() {
    let def = CellDef::parse_str(include_str!("../../../cells/mlstm.cell")).unwrap();
    let program = def
        .compile(&[("input", 3), ("key", 4), ("value", 5)])
        .unwrap();
    let code = emit_cell_rust(&program, "Mlstm").unwrap();
    let mut hoisted = 0;
    for function in code.split("fn columns(").skip(1) {
        let body = &function[..function.find("simd_fn!").unwrap()];
        let (before, in_loop) = body.split_at(body.find("for j in 0..").unwrap());
        let width: usize = in_loop["for j in 0..".len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let costly = |s: &str| s.matches("__bptt::exp(").count() + s.matches("softplus(").count();
        if width > 1 {
            assert_eq!(
                costly(in_loop),
                0,
                "a loop over {width} columns:\n{function}"
            );
            hoisted += costly(before);
        }
    }
    assert!(hoisted >= 3, "{hoisted} hoisted:\n{code}");
}
