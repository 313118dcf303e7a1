//! The Cranelift JIT for derived cells: inline activations bitwise equal to
//! the runtime's, every instruction kind bitwise equal to the interpreter
//! (`DerivedCell`), every example cell bitwise equal in all four methods and
//! through a schedule, programs that would touch memory out of bounds
//! rejected, and a stable IR snapshot.

mod common;

use bptt::cell_lang::{
    Binary, Buffer, CellDef, CellProgram, DerivedCell, FusedLoop, Instr, Kernel, LoopOp, Matrix,
    ParamMatrix, ParamSlot, Reg, RowProduct, Sink, Slot, Temp, Unary, View,
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
        backward_deferred: Kernel::default(),
        deferred: Vec::new(),
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
        // 33 rows: forward methods split them over threads (MIN_ROWS each).
        for (input, hidden, batch) in [(3, 5, 4), (16, 37, 7), (1, 4, 1), (3, 5, 33)] {
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
    assert!(
        matches!(
            &err,
            Error::Shape { what: "the cell's parameters", expected, got }
                if *expected == vec![program.param_count] && *got == vec![3]
        ),
        "{err:?}"
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
        (
            |p| &mut p.forward,
            Instr::RowProduct {
                op: RowProduct::Outer,
                m: H,
                n: 1,
                a: T_PRE,
                b: Temp {
                    offset: H,
                    width: 1,
                },
                out: T_PRE,
            },
            "multiplies into a temporary that overlaps its operand",
        ),
        (
            |p| &mut p.forward,
            Instr::RowProduct {
                op: RowProduct::MatVec,
                m: 2,
                n: H,
                a: T_WIDE,
                b: T_HIN,
                out: T_PRE,
            },
            "uses a temporary of width 7 as 2 wide",
        ),
        (
            |p| &mut p.backward,
            Instr::RowProduct {
                op: RowProduct::Outer,
                m: H,
                n: H,
                a: T_PRE,
                b: T_HIN,
                out: Temp {
                    offset: 2 * H,
                    width: H * H,
                },
            },
            "beyond the 42 floats of a scratch row",
        ),
        (
            |p| &mut p.forward,
            Instr::RowProduct {
                op: RowProduct::VecMat,
                m: usize::MAX,
                n: 2,
                a: T_PRE,
                b: T_HIN,
                out: T_DH,
            },
            "multiplies 18446744073709551615x2 matrices, too many floats",
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
    let text = emit_cell_clif(&program).unwrap();
    let (kernels, deferred) = text.split_once("\n; backward_deferred\n").unwrap();
    expect![[r#"
        ; bptt cell tiny (input = 1, hidden = 17): rows of x 1, state 17, tape 34 (alpha 2) and scratch 51 floats; 323 parameters
        ; each kernel is fn(rows, x, state_prev, state_next, tape, grad_state, grad_state_prev, params, grads, scratch, packed, packed_at), null where the method has no such buffer;
        ; sN[W] is the scratch temporary at rows * N floats, W wide; bptt_cell_gemm_*(m, k, n, a, b, c) add products, b packed for nn_packed

        ; forward
        function %forward(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn_packed sig0
            fn1 = %bptt_cell_gemm_tn sig1

        block0(v0: i64, v1: i64, v2: i64, v3: i64, v4: i64, v5: i64, v6: i64, v7: i64, v8: i64, v9: i64, v10: i64, v11: i64):
            v12 = iconst.i64 68
            v13 = imul v0, v12  ; v12 = 68
            v14 = iadd v9, v13
            v16 = iconst.i64 0
            brif v0, block1(v16), block2  ; v16 = 0

        block1(v15: i64):
            v17 = iconst.i64 68
            v18 = imul v15, v17  ; v17 = 68
            v19 = iadd.i64 v2, v18
            v20 = iconst.i64 68
            v21 = imul v15, v20  ; v20 = 68
            v22 = iadd.i64 v9, v21
            v23 = iconst.i64 68
            v24 = imul v15, v23  ; v23 = 68
            v25 = iadd.i64 v14, v24
            v27 = iconst.i64 0
            jump block3(v27)  ; v27 = 0

        block3(v26: i64):
            v28 = iadd.i64 v7, v26
            v29 = iadd.i64 v19, v26
            v30 = iadd.i64 v22, v26
            v31 = iadd.i64 v25, v26
            v32 = load.f32x4 notrap v28+1224
            v33 = load.f32x4 notrap v28+1240
            v34 = load.f32x4 notrap v28+1256
            v35 = load.f32x4 notrap v28+1272
            v36 = load.f32x4 notrap v29
            v37 = load.f32x4 notrap v29+16
            v38 = load.f32x4 notrap v29+32
            v39 = load.f32x4 notrap v29+48
            store notrap v32, v30
            store notrap v33, v30+16
            store notrap v34, v30+32
            store notrap v35, v30+48
            store notrap v36, v31
            store notrap v37, v31+16
            store notrap v38, v31+32
            store notrap v39, v31+48
            v40 = iconst.i64 64
            v41 = iadd v26, v40  ; v40 = 64
            v42 = iconst.i64 64
            v43 = icmp ult v41, v42  ; v42 = 64
            brif v43, block3(v41), block4

        block4:
            v44 = load.f32 notrap v7+1288
            v45 = scalar_to_vector.f32x4 v44
            v46 = load.f32 notrap v19+64
            v47 = scalar_to_vector.f32x4 v46
            v48 = extractlane v45, 0
            store notrap v48, v22+64
            v49 = extractlane v47, 0
            store notrap v49, v25+64
            v50 = iconst.i64 1
            v51 = iadd.i64 v15, v50  ; v50 = 1
            v52 = icmp ult v51, v0
            brif v52, block1(v51), block2

        block2:
            v53 = iconst.i64 1
            v54 = iconst.i64 17
            v55 = load.i64 notrap readonly v11
            v56 = iconst.i64 4
            v57 = imul v55, v56  ; v56 = 4
            v58 = iadd.i64 v10, v57
            call fn0(v0, v53, v54, v1, v58, v9)  ; s0[17] += x . w[0..1]
            v59 = iconst.i64 17
            v60 = iconst.i64 17
            v61 = iconst.i64 68
            v62 = imul.i64 v0, v61  ; v61 = 68
            v63 = iadd.i64 v9, v62
            v64 = load.i64 notrap readonly v11+8
            v65 = iconst.i64 4
            v66 = imul v64, v65  ; v65 = 4
            v67 = iadd.i64 v10, v66
            call fn0(v0, v59, v60, v63, v67, v9) ; s0[17] += s17[17] . w[1..18]
            v69 = iconst.i64 0
            brif.i64 v0, block5(v69), block6  ; v69 = 0

        block5(v68: i64):
            v70 = iconst.i64 68
            v71 = imul v68, v70  ; v70 = 68
            v72 = iadd.i64 v9, v71
            v73 = iconst.i64 68
            v74 = imul v68, v73  ; v73 = 68
            v75 = iadd.i64 v3, v74
            v77 = iconst.i64 0
            jump block7(v77)  ; v77 = 0

        block7(v76: i64):
            v78 = iadd.i64 v72, v76
            v79 = iadd.i64 v75, v76
            v80 = load.f32x4 notrap v78
            v81 = load.f32x4 notrap v78+16
            v82 = load.f32x4 notrap v78+32
            v83 = load.f32x4 notrap v78+48
            v84 = f32const 0.0
            v85 = splat.f32x4 v84  ; v84 = 0.0
            v86 = fcmp gt v80, v85
            v87 = fcmp gt v81, v85
            v88 = fcmp gt v82, v85
            v89 = fcmp gt v83, v85
            v90 = bitcast.f32x4 v86
            v91 = bitcast.f32x4 v87
            v92 = bitcast.f32x4 v88
            v93 = bitcast.f32x4 v89
            v94 = bitselect v90, v80, v85
            v95 = bitselect v91, v81, v85
            v96 = bitselect v92, v82, v85
            v97 = bitselect v93, v83, v85
            store notrap v94, v79
            store notrap v95, v79+16
            store notrap v96, v79+32
            store notrap v97, v79+48
            v98 = iconst.i64 64
            v99 = iadd v76, v98  ; v98 = 64
            v100 = iconst.i64 64
            v101 = icmp ult v99, v100  ; v100 = 64
            brif v101, block7(v99), block8

        block8:
            v102 = load.f32 notrap v72+64
            v103 = scalar_to_vector.f32x4 v102
            v104 = f32const 0.0
            v105 = splat.f32x4 v104  ; v104 = 0.0
            v106 = fcmp gt v103, v105
            v107 = bitcast.f32x4 v106
            v108 = bitselect v107, v103, v105
            v109 = extractlane v108, 0
            store notrap v109, v75+64
            v110 = iconst.i64 1
            v111 = iadd.i64 v68, v110  ; v110 = 1
            v112 = icmp ult v111, v0
            brif v112, block5(v111), block6

        block6:
            return
        }

        ; forward_tape
        function %forward_tape(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn_packed sig0
            fn1 = %bptt_cell_gemm_tn sig1

        block0(v0: i64, v1: i64, v2: i64, v3: i64, v4: i64, v5: i64, v6: i64, v7: i64, v8: i64, v9: i64, v10: i64, v11: i64):
            v12 = iconst.i64 68
            v13 = imul v0, v12  ; v12 = 68
            v14 = iadd v9, v13
            v16 = iconst.i64 0
            brif v0, block1(v16), block2  ; v16 = 0

        block1(v15: i64):
            v17 = iconst.i64 68
            v18 = imul v15, v17  ; v17 = 68
            v19 = iadd.i64 v2, v18
            v20 = iconst.i64 68
            v21 = imul v15, v20  ; v20 = 68
            v22 = iadd.i64 v9, v21
            v23 = iconst.i64 68
            v24 = imul v15, v23  ; v23 = 68
            v25 = iadd.i64 v14, v24
            v26 = iconst.i64 136
            v27 = imul v15, v26  ; v26 = 136
            v28 = iadd.i64 v4, v27
            v30 = iconst.i64 0
            jump block3(v30)  ; v30 = 0

        block3(v29: i64):
            v31 = iadd.i64 v7, v29
            v32 = iadd.i64 v19, v29
            v33 = iadd.i64 v22, v29
            v34 = iadd.i64 v25, v29
            v35 = iadd.i64 v28, v29
            v36 = load.f32x4 notrap v31+1224
            v37 = load.f32x4 notrap v31+1240
            v38 = load.f32x4 notrap v31+1256
            v39 = load.f32x4 notrap v31+1272
            v40 = load.f32x4 notrap v32
            v41 = load.f32x4 notrap v32+16
            v42 = load.f32x4 notrap v32+32
            v43 = load.f32x4 notrap v32+48
            store notrap v36, v33
            store notrap v37, v33+16
            store notrap v38, v33+32
            store notrap v39, v33+48
            store notrap v40, v34
            store notrap v41, v34+16
            store notrap v42, v34+32
            store notrap v43, v34+48
            store notrap v40, v35
            store notrap v41, v35+16
            store notrap v42, v35+32
            store notrap v43, v35+48
            v44 = iconst.i64 64
            v45 = iadd v29, v44  ; v44 = 64
            v46 = iconst.i64 64
            v47 = icmp ult v45, v46  ; v46 = 64
            brif v47, block3(v45), block4

        block4:
            v48 = load.f32 notrap v7+1288
            v49 = scalar_to_vector.f32x4 v48
            v50 = load.f32 notrap v19+64
            v51 = scalar_to_vector.f32x4 v50
            v52 = extractlane v49, 0
            store notrap v52, v22+64
            v53 = extractlane v51, 0
            store notrap v53, v25+64
            v54 = extractlane v51, 0
            store notrap v54, v28+64
            v55 = iconst.i64 1
            v56 = iadd.i64 v15, v55  ; v55 = 1
            v57 = icmp ult v56, v0
            brif v57, block1(v56), block2

        block2:
            v58 = iconst.i64 1
            v59 = iconst.i64 17
            v60 = load.i64 notrap readonly v11
            v61 = iconst.i64 4
            v62 = imul v60, v61  ; v61 = 4
            v63 = iadd.i64 v10, v62
            call fn0(v0, v58, v59, v1, v63, v9)  ; s0[17] += x . w[0..1]
            v64 = iconst.i64 17
            v65 = iconst.i64 17
            v66 = iconst.i64 68
            v67 = imul.i64 v0, v66  ; v66 = 68
            v68 = iadd.i64 v9, v67
            v69 = load.i64 notrap readonly v11+8
            v70 = iconst.i64 4
            v71 = imul v69, v70  ; v70 = 4
            v72 = iadd.i64 v10, v71
            call fn0(v0, v64, v65, v68, v72, v9) ; s0[17] += s17[17] . w[1..18]
            v74 = iconst.i64 0
            brif.i64 v0, block5(v74), block6  ; v74 = 0

        block5(v73: i64):
            v75 = iconst.i64 68
            v76 = imul v73, v75  ; v75 = 68
            v77 = iadd.i64 v9, v76
            v78 = iconst.i64 68
            v79 = imul v73, v78  ; v78 = 68
            v80 = iadd.i64 v3, v79
            v81 = iconst.i64 136
            v82 = imul v73, v81  ; v81 = 136
            v83 = iadd.i64 v4, v82
            v85 = iconst.i64 0
            jump block7(v85)  ; v85 = 0

        block7(v84: i64):
            v86 = iadd.i64 v77, v84
            v87 = iadd.i64 v80, v84
            v88 = iadd.i64 v83, v84
            v89 = load.f32x4 notrap v86
            v90 = load.f32x4 notrap v86+16
            v91 = load.f32x4 notrap v86+32
            v92 = load.f32x4 notrap v86+48
            v93 = f32const 0.0
            v94 = splat.f32x4 v93  ; v93 = 0.0
            v95 = fcmp gt v89, v94
            v96 = fcmp gt v90, v94
            v97 = fcmp gt v91, v94
            v98 = fcmp gt v92, v94
            v99 = bitcast.f32x4 v95
            v100 = bitcast.f32x4 v96
            v101 = bitcast.f32x4 v97
            v102 = bitcast.f32x4 v98
            v103 = bitselect v99, v89, v94
            v104 = bitselect v100, v90, v94
            v105 = bitselect v101, v91, v94
            v106 = bitselect v102, v92, v94
            store notrap v103, v87
            store notrap v104, v87+16
            store notrap v105, v87+32
            store notrap v106, v87+48
            store notrap v103, v88+68
            store notrap v104, v88+84
            store notrap v105, v88+100
            store notrap v106, v88+116
            v107 = iconst.i64 64
            v108 = iadd v84, v107  ; v107 = 64
            v109 = iconst.i64 64
            v110 = icmp ult v108, v109  ; v109 = 64
            brif v110, block7(v108), block8

        block8:
            v111 = load.f32 notrap v77+64
            v112 = scalar_to_vector.f32x4 v111
            v113 = f32const 0.0
            v114 = splat.f32x4 v113  ; v113 = 0.0
            v115 = fcmp gt v112, v114
            v116 = bitcast.f32x4 v115
            v117 = bitselect v116, v112, v114
            v118 = extractlane v117, 0
            store notrap v118, v80+64
            v119 = extractlane v117, 0
            store notrap v119, v83+132
            v120 = iconst.i64 1
            v121 = iadd.i64 v73, v120  ; v120 = 1
            v122 = icmp ult v121, v0
            brif v122, block5(v121), block6

        block6:
            return
        }

        ; state_from_tape
        function %state_from_tape(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn_packed sig0
            fn1 = %bptt_cell_gemm_tn sig1

        block0(v0: i64, v1: i64, v2: i64, v3: i64, v4: i64, v5: i64, v6: i64, v7: i64, v8: i64, v9: i64, v10: i64, v11: i64):
            v13 = iconst.i64 0
            brif v0, block1(v13), block2  ; v13 = 0

        block1(v12: i64):
            v14 = iconst.i64 136
            v15 = imul v12, v14  ; v14 = 136
            v16 = iadd.i64 v4, v15
            v17 = iconst.i64 68
            v18 = imul v12, v17  ; v17 = 68
            v19 = iadd.i64 v3, v18
            v21 = iconst.i64 0
            jump block3(v21)  ; v21 = 0

        block3(v20: i64):
            v22 = iadd.i64 v16, v20
            v23 = iadd.i64 v19, v20
            v24 = load.f32x4 notrap v22+68
            v25 = load.f32x4 notrap v22+84
            v26 = load.f32x4 notrap v22+100
            v27 = load.f32x4 notrap v22+116
            store notrap v24, v23
            store notrap v25, v23+16
            store notrap v26, v23+32
            store notrap v27, v23+48
            v28 = iconst.i64 64
            v29 = iadd v20, v28  ; v28 = 64
            v30 = iconst.i64 64
            v31 = icmp ult v29, v30  ; v30 = 64
            brif v31, block3(v29), block4

        block4:
            v32 = load.f32 notrap v16+132
            v33 = scalar_to_vector.f32x4 v32
            v34 = extractlane v33, 0
            store notrap v34, v19+64
            v35 = iconst.i64 1
            v36 = iadd.i64 v12, v35  ; v35 = 1
            v37 = icmp ult v36, v0
            brif v37, block1(v36), block2

        block2:
            return
        }

        ; backward
        function %backward(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn_packed sig0
            fn1 = %bptt_cell_gemm_tn sig1

        block0(v0: i64, v1: i64, v2: i64, v3: i64, v4: i64, v5: i64, v6: i64, v7: i64, v8: i64, v9: i64, v10: i64, v11: i64):
            v12 = iconst.i64 68
            v13 = imul v0, v12  ; v12 = 68
            v14 = iadd v9, v13
            v15 = iconst.i64 136
            v16 = imul v0, v15  ; v15 = 136
            v17 = iadd v9, v16
            v19 = iconst.i64 0
            brif v0, block1(v19), block2  ; v19 = 0

        block1(v18: i64):
            v20 = iconst.i64 68
            v21 = imul v18, v20  ; v20 = 68
            v22 = iadd.i64 v5, v21
            v23 = iconst.i64 136
            v24 = imul v18, v23  ; v23 = 136
            v25 = iadd.i64 v4, v24
            v26 = iconst.i64 68
            v27 = imul v18, v26  ; v26 = 68
            v28 = iadd.i64 v9, v27
            v29 = iconst.i64 68
            v30 = imul v18, v29  ; v29 = 68
            v31 = iadd.i64 v14, v30
            v32 = iconst.i64 68
            v33 = imul v18, v32  ; v32 = 68
            v34 = iadd.i64 v17, v33
            v35 = f32const 0.0
            v36 = splat.f32x4 v35  ; v35 = 0.0
            v38 = iconst.i64 0
            jump block3(v38)  ; v38 = 0

        block3(v37: i64):
            v39 = iadd.i64 v22, v37
            v40 = iadd.i64 v25, v37
            v41 = iadd.i64 v28, v37
            v42 = iadd.i64 v31, v37
            v43 = iadd.i64 v8, v37
            v44 = iadd.i64 v34, v37
            v45 = load.f32x4 notrap v39
            v46 = load.f32x4 notrap v39+16
            v47 = load.f32x4 notrap v39+32
            v48 = load.f32x4 notrap v39+48
            v49 = load.f32x4 notrap v40+68
            v50 = load.f32x4 notrap v40+84
            v51 = load.f32x4 notrap v40+100
            v52 = load.f32x4 notrap v40+116
            v53 = f32const 0.0
            v54 = splat.f32x4 v53  ; v53 = 0.0
            v55 = fcmp gt v49, v54
            v56 = fcmp gt v50, v54
            v57 = fcmp gt v51, v54
            v58 = fcmp gt v52, v54
            v59 = bitcast.f32x4 v55
            v60 = bitcast.f32x4 v56
            v61 = bitcast.f32x4 v57
            v62 = bitcast.f32x4 v58
            v63 = bitselect v59, v45, v54
            v64 = bitselect v60, v46, v54
            v65 = bitselect v61, v47, v54
            v66 = bitselect v62, v48, v54
            v67 = load.f32x4 notrap v40
            v68 = load.f32x4 notrap v40+16
            v69 = load.f32x4 notrap v40+32
            v70 = load.f32x4 notrap v40+48
            store.f32x4 notrap v36, v41
            store.f32x4 notrap v36, v41+16
            store.f32x4 notrap v36, v41+32
            store.f32x4 notrap v36, v41+48
            store notrap v63, v42
            store notrap v64, v42+16
            store notrap v65, v42+32
            store notrap v66, v42+48
            v71 = load.f32x4 notrap v43+1224
            v72 = load.f32x4 notrap v43+1240
            v73 = load.f32x4 notrap v43+1256
            v74 = load.f32x4 notrap v43+1272
            v75 = fadd v71, v63
            v76 = fadd v72, v64
            v77 = fadd v73, v65
            v78 = fadd v74, v66
            store notrap v75, v43+1224
            store notrap v76, v43+1240
            store notrap v77, v43+1256
            store notrap v78, v43+1272
            store notrap v67, v44
            store notrap v68, v44+16
            store notrap v69, v44+32
            store notrap v70, v44+48
            v79 = iconst.i64 64
            v80 = iadd v37, v79  ; v79 = 64
            v81 = iconst.i64 64
            v82 = icmp ult v80, v81  ; v81 = 64
            brif v82, block3(v80), block4

        block4:
            v83 = load.f32 notrap v22+64
            v84 = scalar_to_vector.f32x4 v83
            v85 = load.f32 notrap v25+132
            v86 = scalar_to_vector.f32x4 v85
            v87 = f32const 0.0
            v88 = splat.f32x4 v87  ; v87 = 0.0
            v89 = fcmp gt v86, v88
            v90 = bitcast.f32x4 v89
            v91 = bitselect v90, v84, v88
            v92 = load.f32 notrap v25+64
            v93 = scalar_to_vector.f32x4 v92
            v94 = extractlane.f32x4 v36, 0
            store notrap v94, v28+64
            v95 = extractlane v91, 0
            store notrap v95, v31+64
            v96 = load.f32 notrap v8+1288
            v97 = scalar_to_vector.f32x4 v96
            v98 = fadd v97, v91
            v99 = extractlane v98, 0
            store notrap v99, v8+1288
            v100 = extractlane v93, 0
            store notrap v100, v34+64
            v101 = iconst.i64 1
            v102 = iadd.i64 v18, v101  ; v101 = 1
            v103 = icmp ult v102, v0
            brif v103, block1(v102), block2

        block2:
            v104 = iconst.i64 17
            v105 = iconst.i64 17
            v106 = iconst.i64 68
            v107 = imul.i64 v0, v106  ; v106 = 68
            v108 = iadd.i64 v9, v107
            v109 = load.i64 notrap readonly v11+16
            v110 = iconst.i64 4
            v111 = imul v109, v110  ; v110 = 4
            v112 = iadd.i64 v10, v111
            call fn0(v0, v104, v105, v108, v112, v9) ; s0[17] += s17[17] . w[1..18]^T
            v114 = iconst.i64 0
            brif.i64 v0, block5(v114), block6  ; v114 = 0

        block5(v113: i64):
            v115 = iconst.i64 68
            v116 = imul v113, v115  ; v115 = 68
            v117 = iadd.i64 v9, v116
            v118 = iconst.i64 68
            v119 = imul v113, v118  ; v118 = 68
            v120 = iadd.i64 v6, v119
            v122 = iconst.i64 0
            jump block7(v122)  ; v122 = 0

        block7(v121: i64):
            v123 = iadd.i64 v117, v121
            v124 = iadd.i64 v120, v121
            v125 = load.f32x4 notrap v123
            v126 = load.f32x4 notrap v123+16
            v127 = load.f32x4 notrap v123+32
            v128 = load.f32x4 notrap v123+48
            store notrap v125, v124
            store notrap v126, v124+16
            store notrap v127, v124+32
            store notrap v128, v124+48
            v129 = iconst.i64 64
            v130 = iadd v121, v129  ; v129 = 64
            v131 = iconst.i64 64
            v132 = icmp ult v130, v131  ; v131 = 64
            brif v132, block7(v130), block8

        block8:
            v133 = load.f32 notrap v117+64
            v134 = scalar_to_vector.f32x4 v133
            v135 = extractlane v134, 0
            store notrap v135, v120+64
            v136 = iconst.i64 1
            v137 = iadd.i64 v113, v136  ; v136 = 1
            v138 = icmp ult v137, v0
            brif v138, block5(v137), block6

        block6:
            v139 = iconst.i64 1
            v140 = iconst.i64 17
            v141 = iconst.i64 68
            v142 = imul.i64 v0, v141  ; v141 = 68
            v143 = iadd.i64 v9, v142
            call fn1(v139, v0, v140, v1, v143, v8) ; dw[0..1] += x^T . s17[17]
            v144 = iconst.i64 17
            v145 = iconst.i64 17
            v146 = iconst.i64 136
            v147 = imul.i64 v0, v146  ; v146 = 136
            v148 = iadd.i64 v9, v147
            v149 = iconst.i64 68
            v150 = imul.i64 v0, v149  ; v149 = 68
            v151 = iadd.i64 v9, v150
            v152 = iconst.i64 68
            v153 = iadd.i64 v8, v152  ; v152 = 68
            call fn1(v144, v0, v145, v148, v151, v153) ; dw[1..18] += s34[17]^T . s17[17]
            return
        }
    "#]]
    .assert_eq(kernels);
    // backward_deferred is backward without its weight gradients' products.
    let tn = |text: &str| {
        let name = "fn1 = %bptt_cell_gemm_tn";
        assert!(text.contains(name), "{text}");
        text.matches("call fn1(").count()
    };
    let backward = kernels.split_once("\n; backward\n").unwrap().1;
    assert_eq!((tn(backward), tn(deferred)), (2, 0));
}

/// A cell with matrix-valued states calls the row-product shims, each call
/// annotated with its product; a cell without them imports none.
#[test]
fn only_matrix_cells_import_the_row_product_shims() {
    let matrix = emit_cell_clif(&program("cells/linear_attention.cell", 2, 3)).unwrap();
    for line in [
        "fn2 = %bptt_cell_outer",
        "fn3 = %bptt_cell_vecmat",
        "fn4 = %bptt_cell_matvec",
        "= outer[2x3](",
        "= vecmat[2x3](",
        "= matvec[2x3](",
    ] {
        assert!(matrix.contains(line), "{line}");
    }
    let vector = emit_cell_clif(&program("cells/lstm.cell", 2, 3)).unwrap();
    assert!(!vector.contains("bptt_cell_outer"));
}
