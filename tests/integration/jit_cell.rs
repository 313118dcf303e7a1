//! The Cranelift JIT for derived cells: inline activations bitwise equal to
//! the runtime's, every instruction kind bitwise equal to the interpreter
//! (`DerivedCell`), every example cell bitwise equal in all four methods and
//! through a schedule, programs that would touch memory out of bounds
//! rejected, and a stable IR snapshot.

use crate::common::{DERIVED, Problem, clif_shape, program, step};
use bptt::cell_lang::{
    Binary, Buffer, CellDef, CellProgram, DerivedCell, FusedLoop, Instr, Kernel, LoopOp, Matrix,
    ParamMatrix, ParamSlot, Reg, RowProduct, Sink, Slot, Temp, Unary, View,
};
use bptt::jit::cell::{JitCell, emit_cell_clif};
use bptt::{Budget, Error, Policy};
use bptt_runtime::{Cell, Rng, kernels};
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
                vec![LoopOp::Load(rows(Buffer::Input, I, 0))],
                vec![Sink::Store(rows(Buffer::StateNext, H, 0), Reg(0))],
            ),
            "state_from_tape instruction 0 reads Input, which this method does not receive",
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

/// The snapshot records the code's shape, with value numbers erased
/// (`clif_shape`).
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

        block0(v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64):
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd v, v
            v = iconst.i64 0
            brif v, block1(v), block2  ; v = 0

        block1(v: i64):
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 0
            jump block3(v)  ; v = 0

        block3(v: i64):
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = load.f32x4 notrap v+1224
            v = load.f32x4 notrap v+1240
            v = load.f32x4 notrap v+1256
            v = load.f32x4 notrap v+1272
            v = load.f32x4 notrap v
            v = load.f32x4 notrap v+16
            v = load.f32x4 notrap v+32
            v = load.f32x4 notrap v+48
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            v = iconst.i64 64
            v = iadd v, v  ; v = 64
            v = iconst.i64 64
            v = icmp ult v, v  ; v = 64
            brif v, block3(v), block4

        block4:
            v = load.f32 notrap v+1288
            v = scalar_to_vector.f32x4 v
            v = load.f32 notrap v+64
            v = scalar_to_vector.f32x4 v
            v = extractlane v, 0
            store notrap v, v+64
            v = extractlane v, 0
            store notrap v, v+64
            v = iconst.i64 1
            v = iadd.i64 v, v  ; v = 1
            v = icmp ult v, v
            brif v, block1(v), block2

        block2:
            v = iconst.i64 1
            v = iconst.i64 17
            v = load.i64 notrap readonly v
            v = iconst.i64 4
            v = imul v, v  ; v = 4
            v = iadd.i64 v, v
            call fn0(v, v, v, v, v, v)  ; s0[17] += x . w[0..1]
            v = iconst.i64 17
            v = iconst.i64 17
            v = iconst.i64 68
            v = imul.i64 v, v  ; v = 68
            v = iadd.i64 v, v
            v = load.i64 notrap readonly v+8
            v = iconst.i64 4
            v = imul v, v  ; v = 4
            v = iadd.i64 v, v
            call fn0(v, v, v, v, v, v) ; s0[17] += s17[17] . w[1..18]
            v = iconst.i64 0
            brif.i64 v, block5(v), block6  ; v = 0

        block5(v: i64):
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 0
            jump block7(v)  ; v = 0

        block7(v: i64):
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = load.f32x4 notrap v
            v = load.f32x4 notrap v+16
            v = load.f32x4 notrap v+32
            v = load.f32x4 notrap v+48
            v = f32const 0.0
            v = splat.f32x4 v  ; v = 0.0
            v = fcmp gt v, v
            v = fcmp gt v, v
            v = fcmp gt v, v
            v = fcmp gt v, v
            v = bitcast.f32x4 v
            v = bitcast.f32x4 v
            v = bitcast.f32x4 v
            v = bitcast.f32x4 v
            v = bitselect v, v, v
            v = bitselect v, v, v
            v = bitselect v, v, v
            v = bitselect v, v, v
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            v = iconst.i64 64
            v = iadd v, v  ; v = 64
            v = iconst.i64 64
            v = icmp ult v, v  ; v = 64
            brif v, block7(v), block8

        block8:
            v = load.f32 notrap v+64
            v = scalar_to_vector.f32x4 v
            v = f32const 0.0
            v = splat.f32x4 v  ; v = 0.0
            v = fcmp gt v, v
            v = bitcast.f32x4 v
            v = bitselect v, v, v
            v = extractlane v, 0
            store notrap v, v+64
            v = iconst.i64 1
            v = iadd.i64 v, v  ; v = 1
            v = icmp ult v, v
            brif v, block5(v), block6

        block6:
            return
        }

        ; forward_tape
        function %forward_tape(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn_packed sig0
            fn1 = %bptt_cell_gemm_tn sig1

        block0(v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64):
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd v, v
            v = iconst.i64 0
            brif v, block1(v), block2  ; v = 0

        block1(v: i64):
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 136
            v = imul v, v  ; v = 136
            v = iadd.i64 v, v
            v = iconst.i64 0
            jump block3(v)  ; v = 0

        block3(v: i64):
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = load.f32x4 notrap v+1224
            v = load.f32x4 notrap v+1240
            v = load.f32x4 notrap v+1256
            v = load.f32x4 notrap v+1272
            v = load.f32x4 notrap v
            v = load.f32x4 notrap v+16
            v = load.f32x4 notrap v+32
            v = load.f32x4 notrap v+48
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            v = iconst.i64 64
            v = iadd v, v  ; v = 64
            v = iconst.i64 64
            v = icmp ult v, v  ; v = 64
            brif v, block3(v), block4

        block4:
            v = load.f32 notrap v+1288
            v = scalar_to_vector.f32x4 v
            v = load.f32 notrap v+64
            v = scalar_to_vector.f32x4 v
            v = extractlane v, 0
            store notrap v, v+64
            v = extractlane v, 0
            store notrap v, v+64
            v = extractlane v, 0
            store notrap v, v+64
            v = iconst.i64 1
            v = iadd.i64 v, v  ; v = 1
            v = icmp ult v, v
            brif v, block1(v), block2

        block2:
            v = iconst.i64 1
            v = iconst.i64 17
            v = load.i64 notrap readonly v
            v = iconst.i64 4
            v = imul v, v  ; v = 4
            v = iadd.i64 v, v
            call fn0(v, v, v, v, v, v)  ; s0[17] += x . w[0..1]
            v = iconst.i64 17
            v = iconst.i64 17
            v = iconst.i64 68
            v = imul.i64 v, v  ; v = 68
            v = iadd.i64 v, v
            v = load.i64 notrap readonly v+8
            v = iconst.i64 4
            v = imul v, v  ; v = 4
            v = iadd.i64 v, v
            call fn0(v, v, v, v, v, v) ; s0[17] += s17[17] . w[1..18]
            v = iconst.i64 0
            brif.i64 v, block5(v), block6  ; v = 0

        block5(v: i64):
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 136
            v = imul v, v  ; v = 136
            v = iadd.i64 v, v
            v = iconst.i64 0
            jump block7(v)  ; v = 0

        block7(v: i64):
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = load.f32x4 notrap v
            v = load.f32x4 notrap v+16
            v = load.f32x4 notrap v+32
            v = load.f32x4 notrap v+48
            v = f32const 0.0
            v = splat.f32x4 v  ; v = 0.0
            v = fcmp gt v, v
            v = fcmp gt v, v
            v = fcmp gt v, v
            v = fcmp gt v, v
            v = bitcast.f32x4 v
            v = bitcast.f32x4 v
            v = bitcast.f32x4 v
            v = bitcast.f32x4 v
            v = bitselect v, v, v
            v = bitselect v, v, v
            v = bitselect v, v, v
            v = bitselect v, v, v
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            store notrap v, v+68
            store notrap v, v+84
            store notrap v, v+100
            store notrap v, v+116
            v = iconst.i64 64
            v = iadd v, v  ; v = 64
            v = iconst.i64 64
            v = icmp ult v, v  ; v = 64
            brif v, block7(v), block8

        block8:
            v = load.f32 notrap v+64
            v = scalar_to_vector.f32x4 v
            v = f32const 0.0
            v = splat.f32x4 v  ; v = 0.0
            v = fcmp gt v, v
            v = bitcast.f32x4 v
            v = bitselect v, v, v
            v = extractlane v, 0
            store notrap v, v+64
            v = extractlane v, 0
            store notrap v, v+132
            v = iconst.i64 1
            v = iadd.i64 v, v  ; v = 1
            v = icmp ult v, v
            brif v, block5(v), block6

        block6:
            return
        }

        ; state_from_tape
        function %state_from_tape(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn_packed sig0
            fn1 = %bptt_cell_gemm_tn sig1

        block0(v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64):
            v = iconst.i64 0
            brif v, block1(v), block2  ; v = 0

        block1(v: i64):
            v = iconst.i64 136
            v = imul v, v  ; v = 136
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 0
            jump block3(v)  ; v = 0

        block3(v: i64):
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = load.f32x4 notrap v+68
            v = load.f32x4 notrap v+84
            v = load.f32x4 notrap v+100
            v = load.f32x4 notrap v+116
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            v = iconst.i64 64
            v = iadd v, v  ; v = 64
            v = iconst.i64 64
            v = icmp ult v, v  ; v = 64
            brif v, block3(v), block4

        block4:
            v = load.f32 notrap v+132
            v = scalar_to_vector.f32x4 v
            v = extractlane v, 0
            store notrap v, v+64
            v = iconst.i64 1
            v = iadd.i64 v, v  ; v = 1
            v = icmp ult v, v
            brif v, block1(v), block2

        block2:
            return
        }

        ; backward
        function %backward(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) system_v {
            sig0 = (i64, i64, i64, i64, i64, i64) system_v
            sig1 = (i64, i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_cell_gemm_nn_packed sig0
            fn1 = %bptt_cell_gemm_tn sig1

        block0(v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64, v: i64):
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd v, v
            v = iconst.i64 136
            v = imul v, v  ; v = 136
            v = iadd v, v
            v = iconst.i64 0
            brif v, block1(v), block2  ; v = 0

        block1(v: i64):
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 136
            v = imul v, v  ; v = 136
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = f32const 0.0
            v = splat.f32x4 v  ; v = 0.0
            v = iconst.i64 0
            jump block3(v)  ; v = 0

        block3(v: i64):
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = load.f32x4 notrap v
            v = load.f32x4 notrap v+16
            v = load.f32x4 notrap v+32
            v = load.f32x4 notrap v+48
            v = load.f32x4 notrap v+68
            v = load.f32x4 notrap v+84
            v = load.f32x4 notrap v+100
            v = load.f32x4 notrap v+116
            v = f32const 0.0
            v = splat.f32x4 v  ; v = 0.0
            v = fcmp gt v, v
            v = fcmp gt v, v
            v = fcmp gt v, v
            v = fcmp gt v, v
            v = bitcast.f32x4 v
            v = bitcast.f32x4 v
            v = bitcast.f32x4 v
            v = bitcast.f32x4 v
            v = bitselect v, v, v
            v = bitselect v, v, v
            v = bitselect v, v, v
            v = bitselect v, v, v
            v = load.f32x4 notrap v
            v = load.f32x4 notrap v+16
            v = load.f32x4 notrap v+32
            v = load.f32x4 notrap v+48
            store.f32x4 notrap v, v
            store.f32x4 notrap v, v+16
            store.f32x4 notrap v, v+32
            store.f32x4 notrap v, v+48
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            v = load.f32x4 notrap v+1224
            v = load.f32x4 notrap v+1240
            v = load.f32x4 notrap v+1256
            v = load.f32x4 notrap v+1272
            v = fadd v, v
            v = fadd v, v
            v = fadd v, v
            v = fadd v, v
            store notrap v, v+1224
            store notrap v, v+1240
            store notrap v, v+1256
            store notrap v, v+1272
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            v = iconst.i64 64
            v = iadd v, v  ; v = 64
            v = iconst.i64 64
            v = icmp ult v, v  ; v = 64
            brif v, block3(v), block4

        block4:
            v = load.f32 notrap v+64
            v = scalar_to_vector.f32x4 v
            v = load.f32 notrap v+132
            v = scalar_to_vector.f32x4 v
            v = f32const 0.0
            v = splat.f32x4 v  ; v = 0.0
            v = fcmp gt v, v
            v = bitcast.f32x4 v
            v = bitselect v, v, v
            v = load.f32 notrap v+64
            v = scalar_to_vector.f32x4 v
            v = extractlane.f32x4 v, 0
            store notrap v, v+64
            v = extractlane v, 0
            store notrap v, v+64
            v = load.f32 notrap v+1288
            v = scalar_to_vector.f32x4 v
            v = fadd v, v
            v = extractlane v, 0
            store notrap v, v+1288
            v = extractlane v, 0
            store notrap v, v+64
            v = iconst.i64 1
            v = iadd.i64 v, v  ; v = 1
            v = icmp ult v, v
            brif v, block1(v), block2

        block2:
            v = iconst.i64 17
            v = iconst.i64 17
            v = iconst.i64 68
            v = imul.i64 v, v  ; v = 68
            v = iadd.i64 v, v
            v = load.i64 notrap readonly v+16
            v = iconst.i64 4
            v = imul v, v  ; v = 4
            v = iadd.i64 v, v
            call fn0(v, v, v, v, v, v) ; s0[17] += s17[17] . w[1..18]^T
            v = iconst.i64 0
            brif.i64 v, block5(v), block6  ; v = 0

        block5(v: i64):
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 0
            jump block7(v)  ; v = 0

        block7(v: i64):
            v = iadd.i64 v, v
            v = iadd.i64 v, v
            v = load.f32x4 notrap v
            v = load.f32x4 notrap v+16
            v = load.f32x4 notrap v+32
            v = load.f32x4 notrap v+48
            store notrap v, v
            store notrap v, v+16
            store notrap v, v+32
            store notrap v, v+48
            v = iconst.i64 64
            v = iadd v, v  ; v = 64
            v = iconst.i64 64
            v = icmp ult v, v  ; v = 64
            brif v, block7(v), block8

        block8:
            v = load.f32 notrap v+64
            v = scalar_to_vector.f32x4 v
            v = extractlane v, 0
            store notrap v, v+64
            v = iconst.i64 1
            v = iadd.i64 v, v  ; v = 1
            v = icmp ult v, v
            brif v, block5(v), block6

        block6:
            v = iconst.i64 1
            v = iconst.i64 17
            v = iconst.i64 68
            v = imul.i64 v, v  ; v = 68
            v = iadd.i64 v, v
            call fn1(v, v, v, v, v, v) ; dw[0..1] += x^T . s17[17]
            v = iconst.i64 17
            v = iconst.i64 17
            v = iconst.i64 136
            v = imul.i64 v, v  ; v = 136
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = imul.i64 v, v  ; v = 68
            v = iadd.i64 v, v
            v = iconst.i64 68
            v = iadd.i64 v, v  ; v = 68
            call fn1(v, v, v, v, v, v) ; dw[1..18] += s34[17]^T . s17[17]
            return
        }
    "#]]
    .assert_eq(&clif_shape(kernels));
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
