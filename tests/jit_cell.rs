//! The Cranelift JIT for derived cells: inline activations bitwise equal to
//! the runtime's, every instruction kind bitwise equal to the interpreter
//! (`DerivedCell`), every example cell bitwise equal in all four methods and
//! through a schedule, programs that would touch memory out of bounds
//! rejected, and a stable IR snapshot.

mod common;

use bptt::cell_lang::{
    Binary, Buffer, CellDef, CellProgram, DerivedCell, FusedLoop, Instr, Kernel, LoopOp, Matrix,
    ParamMatrix, ParamSlot, Reg, Sink, Slot, Temp, Unary, View,
};
use bptt::jit::cell::{JitCell, emit_cell_clif};
use bptt::{Budget, Error, Policy};
use bptt_runtime::{Cell, Rng, kernels};
use common::{DERIVED, Problem, program, step};
use expect_test::expect;
use ndarray::Array2;

/// A program with the given sizes and kernels, no parameters of its own
/// and one state `h`.
fn bare(input: usize, state: usize, tape: usize, scratch: usize) -> CellProgram {
    CellProgram {
        name: "hand".to_owned(),
        sizes: vec![],
        input_size: input,
        state_size: state,
        states: vec![Slot {
            name: "h".to_owned(),
            offset: 0,
            width: state,
        }],
        output_size: state,
        tape: vec![],
        tape_size: tape,
        scratch_size: scratch,
        params: vec![],
        param_count: 0,
        forward: Kernel::default(),
        forward_tape: Kernel::default(),
        state_from_tape: Kernel::default(),
        backward: Kernel::default(),
    }
}

fn rows(buffer: Buffer, stride: usize, col: usize) -> View {
    View::Rows {
        buffer,
        stride,
        col,
    }
}

fn fused(width: usize, ops: Vec<LoopOp>, sinks: Vec<Sink>) -> Instr {
    Instr::Loop(FusedLoop { width, ops, sinks })
}

fn bits(a: &Array2<f32>) -> Vec<u32> {
    a.iter().map(|x| x.to_bits()).collect()
}

fn random(rng: &mut Rng, shape: (usize, usize), scale: f32) -> Array2<f32> {
    Array2::from_shape_simple_fn(shape, || rng.uniform(-scale, scale))
}

/// Inputs that reach every branch of the activations: a dense grid, the
/// thresholds and their neighbours, zeros, subnormals, infinities, NaNs
/// (with payloads and both signs), and every 1021st bit pattern.
fn activation_inputs() -> Vec<f32> {
    let mut v: Vec<f32> = (0..=200_000)
        .map(|i| -120.0 + 240.0 * i as f32 / 200_000.0)
        .collect();
    let specials = [
        0.0,
        f32::MIN_POSITIVE,
        f32::MIN_POSITIVE / 2.0,
        f32::from_bits(1),
        1e-30,
        1e-7,
        0.3,
        0.624_999_9,
        0.625,
        0.625_000_06,
        9.1,
        17.0,
        88.72,
        88.73,
        88.8,
        88.800_01,
        103.97,
        104.0,
        104.000_01,
        1e10,
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
        f32::from_bits(0x7FC0_1234),
        f32::from_bits(0x7F80_0001),
    ];
    for s in [1.0f32, -1.0] {
        v.extend(specials.iter().map(|&x| s * x));
    }
    v.extend((0..u32::MAX).step_by(1021).map(f32::from_bits));
    v
}

/// One loop: `h_next = f(x)` elementwise over rows of `width`.
fn activation_program(f: Unary, width: usize) -> CellProgram {
    let mut p = bare(width, width, width, 0);
    p.forward.instrs = vec![fused(
        width,
        vec![
            LoopOp::Load(rows(Buffer::Input, width, 0)),
            LoopOp::Unary(f, Reg(0)),
        ],
        vec![Sink::Store(rows(Buffer::StateNext, width, 0), Reg(1))],
    )];
    p
}

/// `h_next` of a one-loop cell's forward step on `x`, from a zero state of
/// `width` features and no scratch.
fn forward(cell: &JitCell, x: &Array2<f32>, width: usize) -> Array2<f32> {
    let n = x.nrows();
    let mut h = Array2::zeros((n, width));
    cell.forward(
        x.view(),
        Array2::zeros((n, width)).view(),
        h.view_mut(),
        Array2::zeros((n, 0)).view_mut(),
    );
    h
}

/// A runtime activation.
type Activation = fn(f32) -> f32;

#[test]
fn inline_activations_are_bitwise_the_runtimes() {
    let xs = activation_inputs();
    let cases: [(Unary, Activation); 7] = [
        (Unary::Exp, kernels::exp),
        (Unary::Sigmoid, kernels::sigmoid),
        (Unary::Tanh, kernels::tanh),
        (Unary::Sqrt, f32::sqrt),
        (Unary::Abs, f32::abs),
        (Unary::Log, kernels::log),
        (Unary::Softplus, kernels::softplus),
    ];
    for (f, reference) in cases {
        // Widths below, at and above a vector, so that every column of the
        // grid goes through both the vector loop and the tail.
        for width in [1, 3, 4, 7, 16, 29, 67] {
            let cell = JitCell::compile(&activation_program(f, width), vec![]).unwrap();
            let n = xs.len().div_ceil(width);
            let mut padded = xs.clone();
            padded.resize(n * width, 0.0);
            let x = Array2::from_shape_vec((n, width), padded).unwrap();
            let h = forward(&cell, &x, width);
            for (&x, &y) in x.iter().zip(h.iter()) {
                assert_eq!(
                    y.to_bits(),
                    reference(x).to_bits(),
                    "{f:?}({x:e} = {:#010x}) at width {width}: {y:e}, want {:e}",
                    x.to_bits(),
                    reference(x)
                );
            }
        }
    }
}

/// One loop: `h_next = f(a, b)` elementwise, `a` and `b` the two halves
/// of the rows of `x`.
fn binary_program(f: Binary, width: usize) -> CellProgram {
    let mut p = bare(2 * width, width, width, 0);
    p.forward.instrs = vec![fused(
        width,
        vec![
            LoopOp::Load(rows(Buffer::Input, 2 * width, 0)),
            LoopOp::Load(rows(Buffer::Input, 2 * width, width)),
            LoopOp::Binary(f, Reg(0), Reg(1)),
        ],
        vec![Sink::Store(rows(Buffer::StateNext, width, 0), Reg(2))],
    )];
    p
}

/// A two-operand function as Rust computes it.
type Operation = fn(f32, f32) -> f32;

/// The compare-and-select and correctly rounded binary operations are the
/// Rust expressions the program documents, on every pair of special values
/// (NaN, infinities, signed zeros, subnormals) and on random pairs.
#[test]
fn binary_operations_are_bitwise_their_definitions() {
    let specials = [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        0.5,
        f32::MIN_POSITIVE,
        1e-45,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        3.0,
    ];
    let mut pairs: Vec<(f32, f32)> = specials
        .iter()
        .flat_map(|&a| specials.iter().map(move |&b| (a, b)))
        .collect();
    let mut rng = Rng::new(3);
    pairs.extend((0..500).map(|_| (rng.uniform(-4.0, 4.0), rng.uniform(-4.0, 4.0))));
    let cases: [(Binary, Operation); 4] = [
        (Binary::Div, |a, b| a / b),
        (Binary::Max, |a, b| if a > b { a } else { b }),
        (Binary::Min, |a, b| if a < b { a } else { b }),
        (Binary::Greater, |a, b| if a > b { 1.0 } else { 0.0 }),
    ];
    for (f, reference) in cases {
        for width in [1, 5, 16, 21] {
            let cell = JitCell::compile(&binary_program(f, width), vec![]).unwrap();
            let n = pairs.len().div_ceil(width);
            let mut x = Array2::zeros((n, 2 * width));
            for (k, &(a, b)) in pairs.iter().enumerate() {
                x[(k / width, k % width)] = a;
                x[(k / width, width + k % width)] = b;
            }
            let h = forward(&cell, &x, width);
            for ((r, j), &y) in h.indexed_iter() {
                let (a, b) = (x[(r, j)], x[(r, width + j)]);
                let want = reference(a, b);
                assert_eq!(
                    y.to_bits(),
                    want.to_bits(),
                    "{f:?}({a:e}, {b:e}) at width {width}"
                );
            }
        }
    }
}

/// Parameter layout of the hand-built cell: `w_x [I, H]`, `w_h [H, H]`,
/// `b [H]`.
const I: usize = 5;
const H: usize = 7;
const WX: ParamMatrix = ParamMatrix {
    offset: 0,
    rows: I,
    cols: H,
};
const WH: ParamMatrix = ParamMatrix {
    offset: I * H,
    rows: H,
    cols: H,
};
const B: usize = (I + H) * H;

/// Scratch temporaries of the hand-built cell.
const T_PRE: Temp = Temp {
    offset: 0,
    width: H,
};
const T_HIN: Temp = Temp {
    offset: H,
    width: H,
};
const T_DPRE: Temp = Temp {
    offset: 2 * H,
    width: H,
};
const T_DH: Temp = Temp {
    offset: 3 * H,
    width: H,
};
const T_WIDE: Temp = Temp {
    offset: 4 * H,
    width: 2 * H,
};

/// The state update from the pre-activation and the previous state: every
/// unary and binary function and a constant.
fn update(pre: View, h_prev: View) -> Vec<LoopOp> {
    use Binary::*;
    use LoopOp::{Binary as Bin, Const, Load, Unary as Un};
    vec![
        Load(pre),                      // r0
        Load(h_prev),                   // r1
        Un(Unary::Sigmoid, Reg(0)),     // r2
        Un(Unary::Tanh, Reg(0)),        // r3
        Un(Unary::Exp, Reg(0)),         // r4
        Un(Unary::Relu, Reg(0)),        // r5
        Un(Unary::Neg, Reg(4)),         // r6
        Const(0.25),                    // r7
        Bin(Mul, Reg(2), Reg(1)),       // r8
        Bin(Sub, Reg(3), Reg(8)),       // r9
        Bin(Add, Reg(9), Reg(5)),       // r10
        Bin(Mul, Reg(6), Reg(7)),       // r11
        Bin(Add, Reg(10), Reg(11)),     // r12
        Bin(ReluGrad, Reg(12), Reg(3)), // r13
    ]
}

/// A cell built by hand that uses every instruction, op and sink, views with
/// column offsets, and temporaries that are product operands.
fn hand_program() -> CellProgram {
    let mut p = bare(I, H, 2 * H, 6 * H);
    p.param_count = (I + H + 1) * H;
    p.params = vec![
        ParamSlot {
            name: "w_x".to_owned(),
            offset: WX.offset,
            shape: vec![I, H],
            init: Vec::new(),
        },
        ParamSlot {
            name: "w_h".to_owned(),
            offset: WH.offset,
            shape: vec![H, H],
            init: Vec::new(),
        },
        ParamSlot {
            name: "b".to_owned(),
            offset: B,
            shape: vec![H],
            init: Vec::new(),
        },
    ];
    let state_next = rows(Buffer::StateNext, H, 0);
    let state_prev = rows(Buffer::StatePrev, H, 0);
    let tape_h = rows(Buffer::Tape, 2 * H, 0);
    let tape_pre = rows(Buffer::Tape, 2 * H, H);
    let pre = View::Temp {
        temp: T_PRE,
        col: 0,
    };
    let temp = |t: Temp| View::Temp { temp: t, col: 0 };
    let gates = |tape: bool| {
        let mut instrs = vec![
            fused(H, vec![LoopOp::Param(B)], vec![Sink::Store(pre, Reg(0))]),
            fused(
                H,
                vec![LoopOp::Load(state_prev)],
                vec![Sink::Store(temp(T_HIN), Reg(0))],
            ),
            Instr::MatMul {
                a: Matrix::Input,
                w: WX,
                out: T_PRE,
            },
            Instr::MatMul {
                a: Matrix::Temp(T_HIN),
                w: WH,
                out: T_PRE,
            },
        ];
        let mut sinks = vec![Sink::Store(state_next, Reg(13))];
        if tape {
            sinks.push(Sink::Store(tape_h, Reg(1)));
            sinks.push(Sink::Store(tape_pre, Reg(0)));
        }
        instrs.push(fused(H, update(pre, state_prev), sinks));
        instrs
    };
    p.forward.instrs = gates(false);
    p.forward_tape.instrs = gates(true);
    p.state_from_tape.instrs = vec![fused(
        H,
        update(tape_pre, tape_h),
        vec![Sink::Store(state_next, Reg(13))],
    )];
    p.backward.instrs = vec![
        fused(
            H,
            vec![
                LoopOp::Load(rows(Buffer::GradState, H, 0)),
                LoopOp::Load(tape_pre),
                LoopOp::Unary(Unary::Sigmoid, Reg(1)),
                LoopOp::Binary(Binary::Mul, Reg(0), Reg(2)),
                LoopOp::Binary(Binary::ReluGrad, Reg(3), Reg(1)),
            ],
            vec![
                Sink::Store(temp(T_DPRE), Reg(4)),
                Sink::AccumulateGrad(B, Reg(4)),
                Sink::Store(
                    View::Temp {
                        temp: T_WIDE,
                        col: H,
                    },
                    Reg(3),
                ),
            ],
        ),
        fused(
            H,
            vec![LoopOp::Load(tape_h)],
            vec![Sink::Store(temp(T_HIN), Reg(0))],
        ),
        Instr::WeightGrad {
            a: Matrix::Input,
            dy: T_DPRE,
            w: WX,
        },
        Instr::WeightGrad {
            a: Matrix::Temp(T_HIN),
            dy: T_DPRE,
            w: WH,
        },
        fused(
            H,
            vec![LoopOp::Const(0.0)],
            vec![Sink::Store(temp(T_DH), Reg(0))],
        ),
        Instr::MatMulT {
            a: T_DPRE,
            w: WH,
            out: T_DH,
        },
        fused(
            H,
            vec![
                LoopOp::Load(temp(T_DH)),
                LoopOp::Load(View::Temp {
                    temp: T_WIDE,
                    col: H,
                }),
                LoopOp::Binary(Binary::Add, Reg(0), Reg(1)),
            ],
            vec![Sink::Store(rows(Buffer::GradStatePrev, H, 0), Reg(2))],
        ),
    ];
    p
}

/// Every output of the four methods of a cell on one random problem:
/// `h_next` of `forward`, then of `forward_tape` with its tape, the state
/// rebuilt from that tape, and `dh_prev` with the gradients (added to
/// random ones).
fn outputs(cell: &dyn Cell, batch: usize, seed: u64) -> Vec<(&'static str, Vec<u32>)> {
    let mut rng = Rng::new(seed);
    let s = cell.state_size();
    let x = random(&mut rng, (batch, cell.input_size()), 2.0);
    let h_prev = random(&mut rng, (batch, s), 1.0);
    let dh = random(&mut rng, (batch, s), 1.0);
    let grads0: Vec<f32> = (0..cell.params().len())
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    // Stale scratch, as a previous call leaves it.
    let scratch = random(&mut rng, (batch, cell.scratch_size()), 3.0);
    let out = step(cell, &x, &h_prev, &dh, scratch, grads0);
    vec![
        ("h_next", bits(&out.next)),
        ("tape", bits(&out.tape)),
        ("state_from_tape h", bits(&out.rebuilt)),
        ("backward dh_prev", bits(&out.dh_prev)),
        (
            "backward grads",
            out.grads.iter().map(|g| g.to_bits()).collect(),
        ),
    ]
}

/// A JitCell and a DerivedCell of `program` with the same parameters give
/// bitwise the same outputs in every method.
fn assert_same(program: &CellProgram, batch: usize, seed: u64) {
    let derived = DerivedCell::new(program.clone(), &mut Rng::new(seed));
    let jit = JitCell::compile(program, derived.params().to_vec()).unwrap();
    let want = outputs(&derived, batch, seed + 1);
    let got = outputs(&jit, batch, seed + 1);
    for ((what, want), (_, got)) in want.iter().zip(&got) {
        assert_eq!(got, want, "cell {} batch {batch}: {what}", program.name);
    }
}

#[test]
fn every_instruction_matches_the_interpreter() {
    let program = hand_program();
    for batch in [0, 1, 3, 8] {
        assert_same(&program, batch, 11 + batch as u64);
    }
}

#[test]
fn example_cells_match_the_interpreter_in_every_method() {
    for path in DERIVED {
        for (input, hidden, batch) in [(3, 5, 4), (16, 37, 7), (1, 4, 1)] {
            assert_same(&program(path, input, hidden), batch, 5);
        }
    }
}

#[test]
fn a_schedule_gives_the_interpreters_gradients() {
    for path in DERIVED {
        let mut problem = Problem::new(path, 12, 3, 9);
        let (loss, want) = problem.run(Policy::Msm, Budget::Percent(40.0));
        let cell = problem.cell;
        let derived = program(path, 3, 5);
        problem.cell = Box::new(JitCell::compile(&derived, cell.params().to_vec()).unwrap());
        let (jit_loss, got) = problem.run(Policy::Msm, Budget::Percent(40.0));
        assert_eq!(jit_loss.to_bits(), loss.to_bits(), "{path}: loss");
        assert_eq!(got.cell, want.cell, "{path}: cell gradients");
        assert_eq!(got.h0, want.h0, "{path}: dL/dh0");
    }
}

#[test]
fn wrong_parameter_counts_are_errors() {
    let program = hand_program();
    let err = JitCell::compile(&program, vec![0.0; 3]).unwrap_err();
    assert_eq!(
        err,
        Error::Shape {
            what: "the cell's parameters",
            expected: vec![program.param_count],
            got: vec![3],
        }
    );
}

/// Which kernel of a program a case changes.
type KernelOf = fn(&mut CellProgram) -> &mut Kernel;

/// Programs whose compiled code would be unsound: each is rejected with a
/// message naming the method, the instruction and the fault.
#[test]
fn out_of_bounds_programs_are_rejected() {
    let store = |view: View| fused(H, vec![LoopOp::Const(1.0)], vec![Sink::Store(view, Reg(0))]);
    let cases: Vec<(KernelOf, Instr, &str)> = vec![
        (
            |p| &mut p.forward,
            store(rows(Buffer::Tape, 2 * H, 0)),
            "forward instruction 0 writes Tape, which this method does not receive mutably",
        ),
        (
            |p| &mut p.backward,
            store(rows(Buffer::Tape, 2 * H, 0)),
            "backward instruction 0 writes Tape",
        ),
        (
            |p| &mut p.forward,
            store(rows(Buffer::StateNext, H, 1)),
            "uses columns 1..8 of StateNext, whose rows are 7 wide",
        ),
        (
            |p| &mut p.forward,
            store(rows(Buffer::StateNext, H + 1, 0)),
            "addresses StateNext with stride 8, but its rows are 7 wide",
        ),
        (
            |p| &mut p.state_from_tape,
            fused(
                H,
                vec![LoopOp::Load(View::Temp {
                    temp: T_PRE,
                    col: 0,
                })],
                vec![Sink::Store(rows(Buffer::StateNext, H, 0), Reg(0))],
            ),
            "state_from_tape instruction 0 reads Scratch, which this method does not receive",
        ),
        (
            |p| &mut p.forward,
            store(View::Temp {
                temp: Temp {
                    offset: 6 * H - 1,
                    width: H,
                },
                col: 0,
            }),
            "beyond the 42 floats of a scratch row",
        ),
        (
            |p| &mut p.forward,
            fused(
                H,
                vec![LoopOp::Unary(Unary::Neg, Reg(0))],
                vec![Sink::Store(rows(Buffer::StateNext, H, 0), Reg(0))],
            ),
            "uses r0 before it is defined",
        ),
        (
            |p| &mut p.forward,
            fused(
                H,
                vec![LoopOp::Const(1.0)],
                vec![Sink::AccumulateGrad(B, Reg(0))],
            ),
            "adds to parameter gradients, which this method does not receive",
        ),
        (
            |p| &mut p.backward,
            fused(
                H,
                vec![LoopOp::Const(1.0)],
                vec![Sink::AccumulateGrad(B + 1, Reg(0))],
            ),
            "uses parameters 85..92, but there are 91",
        ),
        (
            |p| &mut p.forward,
            Instr::MatMul {
                a: Matrix::Temp(T_PRE),
                w: WH,
                out: T_PRE,
            },
            "multiplies into a temporary that overlaps its operand",
        ),
        (
            |p| &mut p.forward,
            Instr::MatMul {
                a: Matrix::Temp(T_HIN),
                w: WX,
                out: T_PRE,
            },
            "uses a temporary of width 7 as 5 wide",
        ),
    ];
    for (kernel, instr, message) in cases {
        let mut program = hand_program();
        kernel(&mut program).instrs.insert(0, instr);
        let params = vec![0.0; program.param_count];
        match JitCell::compile(&program, params) {
            Err(Error::Codegen(text)) => assert!(
                text.contains(message) && text.starts_with("cell hand: "),
                "{text:?} should mention {message:?}"
            ),
            other => panic!("{message}: expected an error, got {other:?}"),
        }
    }
}

#[test]
#[should_panic(expected = "cell hand::forward: h_prev has shape [2, 6], expected [2, 7]")]
fn wrong_shapes_panic_with_both_shapes() {
    let program = hand_program();
    let cell = JitCell::new(&program, &mut Rng::new(1)).unwrap();
    cell.forward(
        Array2::zeros((2, I)).view(),
        Array2::zeros((2, H - 1)).view(),
        Array2::zeros((2, H)).view_mut(),
        Array2::zeros((2, 6 * H)).view_mut(),
    );
}

#[test]
fn a_jit_cell_is_a_shareable_cell() {
    fn shareable<T: Cell + Send + Sync + 'static>() {}
    shareable::<JitCell>();
    let program = program("cells/rnn.cell", 2, 3);
    let cell = JitCell::new(&program, &mut Rng::new(1)).unwrap();
    assert_eq!(cell.program(), &program);
    assert_eq!(
        (cell.state_size(), cell.tape_size(), cell.params().len()),
        (3, program.tape_size, program.param_count)
    );
}

/// A small cell whose IR shows every part of a kernel (at hidden 17: a
/// pass of the column loop and a last column) without the long inline
/// activations (which the tests above check bit by bit).
const SNAPSHOT_CELL: &str = "
cell tiny {
    size input, hidden;
    input x: [input];
    state h: [hidden];
    param w: [input + hidden, hidden];
    param b: [hidden];

    h = relu(matmul(concat(x, h), w) + b);
}";

#[test]
fn clif_snapshot() {
    let def = CellDef::parse_str(SNAPSHOT_CELL).unwrap();
    let program = def.compile(&[("input", 1), ("hidden", 17)]).unwrap();
    expect![[r#"
        ; bptt cell tiny (input = 1, hidden = 17): rows of x 1, state 17, tape 34 (alpha 2) and scratch 51 floats; 323 parameters
        ; each kernel is fn(rows, x, state_prev, state_next, tape, grad_state, grad_state_prev, params, grads, scratch), null where the method has no such buffer;
        ; sN[W] is the scratch temporary at rows * N floats, W wide; bptt_cell_gemm_*(m, k, n, a, b, c) add products

        ; forward
        function %forward(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            sig2 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn sig0
            fn1 = %bptt_cell_gemm_nt sig1
            fn2 = %bptt_cell_gemm_tn sig2

        block0(v0: i64, v1: i64, v2: i64, v3: i64, v4: i64, v5: i64, v6: i64, v7: i64, v8: i64, v9: i64):
            v10 = iconst.i64 68
            v11 = imul v0, v10  ; v10 = 68
            v12 = iadd v9, v11
            v14 = iconst.i64 0
            brif v0, block1(v14), block2  ; v14 = 0

        block1(v13: i64):
            v15 = iconst.i64 68
            v16 = imul v13, v15  ; v15 = 68
            v17 = iadd.i64 v2, v16
            v18 = iconst.i64 68
            v19 = imul v13, v18  ; v18 = 68
            v20 = iadd.i64 v9, v19
            v21 = iconst.i64 68
            v22 = imul v13, v21  ; v21 = 68
            v23 = iadd.i64 v12, v22
            v25 = iconst.i64 0
            jump block3(v25)  ; v25 = 0

        block3(v24: i64):
            v26 = iadd.i64 v7, v24
            v27 = iadd.i64 v17, v24
            v28 = iadd.i64 v20, v24
            v29 = iadd.i64 v23, v24
            v30 = load.f32x4 notrap v26+1224
            v31 = load.f32x4 notrap v26+1240
            v32 = load.f32x4 notrap v26+1256
            v33 = load.f32x4 notrap v26+1272
            v34 = load.f32x4 notrap v27
            v35 = load.f32x4 notrap v27+16
            v36 = load.f32x4 notrap v27+32
            v37 = load.f32x4 notrap v27+48
            store notrap v30, v28
            store notrap v31, v28+16
            store notrap v32, v28+32
            store notrap v33, v28+48
            store notrap v34, v29
            store notrap v35, v29+16
            store notrap v36, v29+32
            store notrap v37, v29+48
            v38 = iconst.i64 64
            v39 = iadd v24, v38  ; v38 = 64
            v40 = iconst.i64 64
            v41 = icmp ult v39, v40  ; v40 = 64
            brif v41, block3(v39), block4

        block4:
            v42 = load.f32 notrap v7+1288
            v43 = scalar_to_vector.f32x4 v42
            v44 = load.f32 notrap v17+64
            v45 = scalar_to_vector.f32x4 v44
            v46 = extractlane v43, 0
            store notrap v46, v20+64
            v47 = extractlane v45, 0
            store notrap v47, v23+64
            v48 = iconst.i64 1
            v49 = iadd.i64 v13, v48  ; v48 = 1
            v50 = icmp ult v49, v0
            brif v50, block1(v49), block2

        block2:
            v51 = iconst.i64 1
            v52 = iconst.i64 17
            call fn0(v0, v51, v52, v1, v7, v9)   ; s0[17] += x . w[0..1]
            v53 = iconst.i64 17
            v54 = iconst.i64 17
            v55 = iconst.i64 68
            v56 = imul.i64 v0, v55  ; v55 = 68
            v57 = iadd.i64 v9, v56
            v58 = iconst.i64 68
            v59 = iadd.i64 v7, v58  ; v58 = 68
            call fn0(v0, v53, v54, v57, v59, v9) ; s0[17] += s17[17] . w[1..18]
            v61 = iconst.i64 0
            brif.i64 v0, block5(v61), block6  ; v61 = 0

        block5(v60: i64):
            v62 = iconst.i64 68
            v63 = imul v60, v62  ; v62 = 68
            v64 = iadd.i64 v9, v63
            v65 = iconst.i64 68
            v66 = imul v60, v65  ; v65 = 68
            v67 = iadd.i64 v3, v66
            v69 = iconst.i64 0
            jump block7(v69)  ; v69 = 0

        block7(v68: i64):
            v70 = iadd.i64 v64, v68
            v71 = iadd.i64 v67, v68
            v72 = load.f32x4 notrap v70
            v73 = load.f32x4 notrap v70+16
            v74 = load.f32x4 notrap v70+32
            v75 = load.f32x4 notrap v70+48
            v76 = f32const 0.0
            v77 = splat.f32x4 v76  ; v76 = 0.0
            v78 = fcmp gt v72, v77
            v79 = fcmp gt v73, v77
            v80 = fcmp gt v74, v77
            v81 = fcmp gt v75, v77
            v82 = bitcast.f32x4 v78
            v83 = bitcast.f32x4 v79
            v84 = bitcast.f32x4 v80
            v85 = bitcast.f32x4 v81
            v86 = bitselect v82, v72, v77
            v87 = bitselect v83, v73, v77
            v88 = bitselect v84, v74, v77
            v89 = bitselect v85, v75, v77
            store notrap v86, v71
            store notrap v87, v71+16
            store notrap v88, v71+32
            store notrap v89, v71+48
            v90 = iconst.i64 64
            v91 = iadd v68, v90  ; v90 = 64
            v92 = iconst.i64 64
            v93 = icmp ult v91, v92  ; v92 = 64
            brif v93, block7(v91), block8

        block8:
            v94 = load.f32 notrap v64+64
            v95 = scalar_to_vector.f32x4 v94
            v96 = f32const 0.0
            v97 = splat.f32x4 v96  ; v96 = 0.0
            v98 = fcmp gt v95, v97
            v99 = bitcast.f32x4 v98
            v100 = bitselect v99, v95, v97
            v101 = extractlane v100, 0
            store notrap v101, v67+64
            v102 = iconst.i64 1
            v103 = iadd.i64 v60, v102  ; v102 = 1
            v104 = icmp ult v103, v0
            brif v104, block5(v103), block6

        block6:
            return
        }

        ; forward_tape
        function %forward_tape(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            sig2 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn sig0
            fn1 = %bptt_cell_gemm_nt sig1
            fn2 = %bptt_cell_gemm_tn sig2

        block0(v0: i64, v1: i64, v2: i64, v3: i64, v4: i64, v5: i64, v6: i64, v7: i64, v8: i64, v9: i64):
            v10 = iconst.i64 68
            v11 = imul v0, v10  ; v10 = 68
            v12 = iadd v9, v11
            v14 = iconst.i64 0
            brif v0, block1(v14), block2  ; v14 = 0

        block1(v13: i64):
            v15 = iconst.i64 68
            v16 = imul v13, v15  ; v15 = 68
            v17 = iadd.i64 v2, v16
            v18 = iconst.i64 68
            v19 = imul v13, v18  ; v18 = 68
            v20 = iadd.i64 v9, v19
            v21 = iconst.i64 68
            v22 = imul v13, v21  ; v21 = 68
            v23 = iadd.i64 v12, v22
            v24 = iconst.i64 136
            v25 = imul v13, v24  ; v24 = 136
            v26 = iadd.i64 v4, v25
            v28 = iconst.i64 0
            jump block3(v28)  ; v28 = 0

        block3(v27: i64):
            v29 = iadd.i64 v7, v27
            v30 = iadd.i64 v17, v27
            v31 = iadd.i64 v20, v27
            v32 = iadd.i64 v23, v27
            v33 = iadd.i64 v26, v27
            v34 = load.f32x4 notrap v29+1224
            v35 = load.f32x4 notrap v29+1240
            v36 = load.f32x4 notrap v29+1256
            v37 = load.f32x4 notrap v29+1272
            v38 = load.f32x4 notrap v30
            v39 = load.f32x4 notrap v30+16
            v40 = load.f32x4 notrap v30+32
            v41 = load.f32x4 notrap v30+48
            store notrap v34, v31
            store notrap v35, v31+16
            store notrap v36, v31+32
            store notrap v37, v31+48
            store notrap v38, v32
            store notrap v39, v32+16
            store notrap v40, v32+32
            store notrap v41, v32+48
            store notrap v38, v33
            store notrap v39, v33+16
            store notrap v40, v33+32
            store notrap v41, v33+48
            v42 = iconst.i64 64
            v43 = iadd v27, v42  ; v42 = 64
            v44 = iconst.i64 64
            v45 = icmp ult v43, v44  ; v44 = 64
            brif v45, block3(v43), block4

        block4:
            v46 = load.f32 notrap v7+1288
            v47 = scalar_to_vector.f32x4 v46
            v48 = load.f32 notrap v17+64
            v49 = scalar_to_vector.f32x4 v48
            v50 = extractlane v47, 0
            store notrap v50, v20+64
            v51 = extractlane v49, 0
            store notrap v51, v23+64
            v52 = extractlane v49, 0
            store notrap v52, v26+64
            v53 = iconst.i64 1
            v54 = iadd.i64 v13, v53  ; v53 = 1
            v55 = icmp ult v54, v0
            brif v55, block1(v54), block2

        block2:
            v56 = iconst.i64 1
            v57 = iconst.i64 17
            call fn0(v0, v56, v57, v1, v7, v9)   ; s0[17] += x . w[0..1]
            v58 = iconst.i64 17
            v59 = iconst.i64 17
            v60 = iconst.i64 68
            v61 = imul.i64 v0, v60  ; v60 = 68
            v62 = iadd.i64 v9, v61
            v63 = iconst.i64 68
            v64 = iadd.i64 v7, v63  ; v63 = 68
            call fn0(v0, v58, v59, v62, v64, v9) ; s0[17] += s17[17] . w[1..18]
            v66 = iconst.i64 0
            brif.i64 v0, block5(v66), block6  ; v66 = 0

        block5(v65: i64):
            v67 = iconst.i64 68
            v68 = imul v65, v67  ; v67 = 68
            v69 = iadd.i64 v9, v68
            v70 = iconst.i64 68
            v71 = imul v65, v70  ; v70 = 68
            v72 = iadd.i64 v3, v71
            v73 = iconst.i64 136
            v74 = imul v65, v73  ; v73 = 136
            v75 = iadd.i64 v4, v74
            v77 = iconst.i64 0
            jump block7(v77)  ; v77 = 0

        block7(v76: i64):
            v78 = iadd.i64 v69, v76
            v79 = iadd.i64 v72, v76
            v80 = iadd.i64 v75, v76
            v81 = load.f32x4 notrap v78
            v82 = load.f32x4 notrap v78+16
            v83 = load.f32x4 notrap v78+32
            v84 = load.f32x4 notrap v78+48
            v85 = f32const 0.0
            v86 = splat.f32x4 v85  ; v85 = 0.0
            v87 = fcmp gt v81, v86
            v88 = fcmp gt v82, v86
            v89 = fcmp gt v83, v86
            v90 = fcmp gt v84, v86
            v91 = bitcast.f32x4 v87
            v92 = bitcast.f32x4 v88
            v93 = bitcast.f32x4 v89
            v94 = bitcast.f32x4 v90
            v95 = bitselect v91, v81, v86
            v96 = bitselect v92, v82, v86
            v97 = bitselect v93, v83, v86
            v98 = bitselect v94, v84, v86
            store notrap v95, v79
            store notrap v96, v79+16
            store notrap v97, v79+32
            store notrap v98, v79+48
            store notrap v95, v80+68
            store notrap v96, v80+84
            store notrap v97, v80+100
            store notrap v98, v80+116
            v99 = iconst.i64 64
            v100 = iadd v76, v99  ; v99 = 64
            v101 = iconst.i64 64
            v102 = icmp ult v100, v101  ; v101 = 64
            brif v102, block7(v100), block8

        block8:
            v103 = load.f32 notrap v69+64
            v104 = scalar_to_vector.f32x4 v103
            v105 = f32const 0.0
            v106 = splat.f32x4 v105  ; v105 = 0.0
            v107 = fcmp gt v104, v106
            v108 = bitcast.f32x4 v107
            v109 = bitselect v108, v104, v106
            v110 = extractlane v109, 0
            store notrap v110, v72+64
            v111 = extractlane v109, 0
            store notrap v111, v75+132
            v112 = iconst.i64 1
            v113 = iadd.i64 v65, v112  ; v112 = 1
            v114 = icmp ult v113, v0
            brif v114, block5(v113), block6

        block6:
            return
        }

        ; state_from_tape
        function %state_from_tape(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            sig2 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn sig0
            fn1 = %bptt_cell_gemm_nt sig1
            fn2 = %bptt_cell_gemm_tn sig2

        block0(v0: i64, v1: i64, v2: i64, v3: i64, v4: i64, v5: i64, v6: i64, v7: i64, v8: i64, v9: i64):
            v11 = iconst.i64 0
            brif v0, block1(v11), block2  ; v11 = 0

        block1(v10: i64):
            v12 = iconst.i64 136
            v13 = imul v10, v12  ; v12 = 136
            v14 = iadd.i64 v4, v13
            v15 = iconst.i64 68
            v16 = imul v10, v15  ; v15 = 68
            v17 = iadd.i64 v3, v16
            v19 = iconst.i64 0
            jump block3(v19)  ; v19 = 0

        block3(v18: i64):
            v20 = iadd.i64 v14, v18
            v21 = iadd.i64 v17, v18
            v22 = load.f32x4 notrap v20+68
            v23 = load.f32x4 notrap v20+84
            v24 = load.f32x4 notrap v20+100
            v25 = load.f32x4 notrap v20+116
            store notrap v22, v21
            store notrap v23, v21+16
            store notrap v24, v21+32
            store notrap v25, v21+48
            v26 = iconst.i64 64
            v27 = iadd v18, v26  ; v26 = 64
            v28 = iconst.i64 64
            v29 = icmp ult v27, v28  ; v28 = 64
            brif v29, block3(v27), block4

        block4:
            v30 = load.f32 notrap v14+132
            v31 = scalar_to_vector.f32x4 v30
            v32 = extractlane v31, 0
            store notrap v32, v17+64
            v33 = iconst.i64 1
            v34 = iadd.i64 v10, v33  ; v33 = 1
            v35 = icmp ult v34, v0
            brif v35, block1(v34), block2

        block2:
            return
        }

        ; backward
        function %backward(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            sig2 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn sig0
            fn1 = %bptt_cell_gemm_nt sig1
            fn2 = %bptt_cell_gemm_tn sig2

        block0(v0: i64, v1: i64, v2: i64, v3: i64, v4: i64, v5: i64, v6: i64, v7: i64, v8: i64, v9: i64):
            v10 = iconst.i64 68
            v11 = imul v0, v10  ; v10 = 68
            v12 = iadd v9, v11
            v13 = iconst.i64 136
            v14 = imul v0, v13  ; v13 = 136
            v15 = iadd v9, v14
            v17 = iconst.i64 0
            brif v0, block1(v17), block2  ; v17 = 0

        block1(v16: i64):
            v18 = iconst.i64 68
            v19 = imul v16, v18  ; v18 = 68
            v20 = iadd.i64 v5, v19
            v21 = iconst.i64 136
            v22 = imul v16, v21  ; v21 = 136
            v23 = iadd.i64 v4, v22
            v24 = iconst.i64 68
            v25 = imul v16, v24  ; v24 = 68
            v26 = iadd.i64 v9, v25
            v27 = iconst.i64 68
            v28 = imul v16, v27  ; v27 = 68
            v29 = iadd.i64 v12, v28
            v30 = iconst.i64 68
            v31 = imul v16, v30  ; v30 = 68
            v32 = iadd.i64 v15, v31
            v34 = iconst.i64 0
            jump block3(v34)  ; v34 = 0

        block3(v33: i64):
            v35 = iadd.i64 v20, v33
            v36 = iadd.i64 v23, v33
            v37 = iadd.i64 v26, v33
            v38 = iadd.i64 v29, v33
            v39 = iadd.i64 v8, v33
            v40 = iadd.i64 v32, v33
            v41 = f32const 0.0
            v42 = splat.f32x4 v41  ; v41 = 0.0
            v43 = load.f32x4 notrap v35
            v44 = load.f32x4 notrap v35+16
            v45 = load.f32x4 notrap v35+32
            v46 = load.f32x4 notrap v35+48
            v47 = load.f32x4 notrap v36+68
            v48 = load.f32x4 notrap v36+84
            v49 = load.f32x4 notrap v36+100
            v50 = load.f32x4 notrap v36+116
            v51 = f32const 0.0
            v52 = splat.f32x4 v51  ; v51 = 0.0
            v53 = fcmp gt v47, v52
            v54 = fcmp gt v48, v52
            v55 = fcmp gt v49, v52
            v56 = fcmp gt v50, v52
            v57 = bitcast.f32x4 v53
            v58 = bitcast.f32x4 v54
            v59 = bitcast.f32x4 v55
            v60 = bitcast.f32x4 v56
            v61 = bitselect v57, v43, v52
            v62 = bitselect v58, v44, v52
            v63 = bitselect v59, v45, v52
            v64 = bitselect v60, v46, v52
            v65 = load.f32x4 notrap v36
            v66 = load.f32x4 notrap v36+16
            v67 = load.f32x4 notrap v36+32
            v68 = load.f32x4 notrap v36+48
            store notrap v42, v37
            store notrap v42, v37+16
            store notrap v42, v37+32
            store notrap v42, v37+48
            store notrap v61, v38
            store notrap v62, v38+16
            store notrap v63, v38+32
            store notrap v64, v38+48
            v69 = load.f32x4 notrap v39+1224
            v70 = load.f32x4 notrap v39+1240
            v71 = load.f32x4 notrap v39+1256
            v72 = load.f32x4 notrap v39+1272
            v73 = fadd v69, v61
            v74 = fadd v70, v62
            v75 = fadd v71, v63
            v76 = fadd v72, v64
            store notrap v73, v39+1224
            store notrap v74, v39+1240
            store notrap v75, v39+1256
            store notrap v76, v39+1272
            store notrap v65, v40
            store notrap v66, v40+16
            store notrap v67, v40+32
            store notrap v68, v40+48
            v77 = iconst.i64 64
            v78 = iadd v33, v77  ; v77 = 64
            v79 = iconst.i64 64
            v80 = icmp ult v78, v79  ; v79 = 64
            brif v80, block3(v78), block4

        block4:
            v81 = f32const 0.0
            v82 = splat.f32x4 v81  ; v81 = 0.0
            v83 = load.f32 notrap v20+64
            v84 = scalar_to_vector.f32x4 v83
            v85 = load.f32 notrap v23+132
            v86 = scalar_to_vector.f32x4 v85
            v87 = f32const 0.0
            v88 = splat.f32x4 v87  ; v87 = 0.0
            v89 = fcmp gt v86, v88
            v90 = bitcast.f32x4 v89
            v91 = bitselect v90, v84, v88
            v92 = load.f32 notrap v23+64
            v93 = scalar_to_vector.f32x4 v92
            v94 = extractlane v82, 0
            store notrap v94, v26+64
            v95 = extractlane v91, 0
            store notrap v95, v29+64
            v96 = load.f32 notrap v8+1288
            v97 = scalar_to_vector.f32x4 v96
            v98 = fadd v97, v91
            v99 = extractlane v98, 0
            store notrap v99, v8+1288
            v100 = extractlane v93, 0
            store notrap v100, v32+64
            v101 = iconst.i64 1
            v102 = iadd.i64 v16, v101  ; v101 = 1
            v103 = icmp ult v102, v0
            brif v103, block1(v102), block2

        block2:
            v104 = iconst.i64 17
            v105 = iconst.i64 17
            v106 = iconst.i64 68
            v107 = imul.i64 v0, v106  ; v106 = 68
            v108 = iadd.i64 v9, v107
            v109 = iconst.i64 68
            v110 = iadd.i64 v7, v109  ; v109 = 68
            call fn1(v0, v104, v105, v108, v110, v9) ; s0[17] += s17[17] . w[1..18]^T
            v112 = iconst.i64 0
            brif.i64 v0, block5(v112), block6  ; v112 = 0

        block5(v111: i64):
            v113 = iconst.i64 68
            v114 = imul v111, v113  ; v113 = 68
            v115 = iadd.i64 v9, v114
            v116 = iconst.i64 68
            v117 = imul v111, v116  ; v116 = 68
            v118 = iadd.i64 v6, v117
            v120 = iconst.i64 0
            jump block7(v120)  ; v120 = 0

        block7(v119: i64):
            v121 = iadd.i64 v115, v119
            v122 = iadd.i64 v118, v119
            v123 = load.f32x4 notrap v121
            v124 = load.f32x4 notrap v121+16
            v125 = load.f32x4 notrap v121+32
            v126 = load.f32x4 notrap v121+48
            store notrap v123, v122
            store notrap v124, v122+16
            store notrap v125, v122+32
            store notrap v126, v122+48
            v127 = iconst.i64 64
            v128 = iadd v119, v127  ; v127 = 64
            v129 = iconst.i64 64
            v130 = icmp ult v128, v129  ; v129 = 64
            brif v130, block7(v128), block8

        block8:
            v131 = load.f32 notrap v115+64
            v132 = scalar_to_vector.f32x4 v131
            v133 = extractlane v132, 0
            store notrap v133, v118+64
            v134 = iconst.i64 1
            v135 = iadd.i64 v111, v134  ; v134 = 1
            v136 = icmp ult v135, v0
            brif v136, block5(v135), block6

        block6:
            v137 = iconst.i64 1
            v138 = iconst.i64 17
            v139 = iconst.i64 68
            v140 = imul.i64 v0, v139  ; v139 = 68
            v141 = iadd.i64 v9, v140
            call fn2(v137, v0, v138, v1, v141, v8) ; dw[0..1] += x^T . s17[17]
            v142 = iconst.i64 17
            v143 = iconst.i64 17
            v144 = iconst.i64 136
            v145 = imul.i64 v0, v144  ; v144 = 136
            v146 = iadd.i64 v9, v145
            v147 = iconst.i64 68
            v148 = imul.i64 v0, v147  ; v147 = 68
            v149 = iadd.i64 v9, v148
            v150 = iconst.i64 68
            v151 = iadd.i64 v8, v150  ; v150 = 68
            call fn2(v142, v0, v143, v146, v149, v151) ; dw[1..18] += s34[17]^T . s17[17]
            return
        }
    "#]]
    .assert_eq(&emit_cell_clif(&program).unwrap());
}
