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
