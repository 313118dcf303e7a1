//! The kernel program of a derived cell: what every backend runs.
//!
//! [`CellDef::compile`](super::CellDef::compile) turns a cell's equations into a
//! [`CellProgram`] for concrete sizes: five [`Kernel`]s (forward, forward
//! keeping the tape, rebuilding the state from a tape, backward, and
//! backward leaving its weight gradients to the executor), each a
//! straight-line list of [`Instr`]uctions over the buffers a
//! [`bptt_runtime::Cell`] method receives. An instruction is either a matrix
//! product that calls one of the runtime's kernels or one fused elementwise
//! loop over `rows × width` elements.
//!
//! # Numerics: one meaning for every backend
//!
//! The interpreter ([`DerivedCell`](super::DerivedCell)), the Rust emitter
//! and the Cranelift JIT must give bitwise the same results, so the meaning
//! of every instruction is fixed here, to the last bit:
//!
//! * Matrix products call `bptt_runtime::kernels::gemm_*_acc` with exactly
//!   the operands below.
//! * A [`FusedLoop`] runs rows `b = 0..rows` in order and, in each row,
//!   columns `j = 0..width` in any order or vector width. Each column
//!   evaluates the loop's [`LoopOp`]s in order, every op one IEEE-754 f32
//!   operation (no fused multiply-add), with `sigmoid`, `tanh` and `exp`
//!   exactly `bptt_runtime::kernels::{sigmoid, tanh, exp}` (plain f32
//!   operations, replicable op by op; `log` and `softplus` likewise
//!   `bptt_runtime::kernels::{log, softplus}`), then performs its [`Sink`]s.
//!   `sqrt` and `/` are IEEE-754's correctly rounded operations; `abs`
//!   clears the sign bit; `max`, `min`, `relu` and their gradients are the
//!   compare-and-select forms their docs give (one `>` or `<`, so NaN
//!   handling is fixed too). [`LoopOp::LoadScalar`] and
//!   [`LoopOp::ParamScalar`] read one float per row (or one in all) and use
//!   it in every column.
//! * [`Instr::RowProduct`] calls `bptt_runtime::kernels::row_product`,
//!   whose every element has one fixed order of operations.
//! * [`Instr::RowSum`] adds a row's columns left to right, one f32 addition
//!   each, starting from `0.0`.
//!   [`Sink::AccumulateGrad`] adds row by row (`g[j] = g[j] + v[b, j]` for
//!   `b = 0, 1, ...`), so its sum has a fixed order too.
//! * Within one loop no sink writes an element that a load of the same loop
//!   reads, so columns may be processed in any order or in vectors.

use std::fmt;

use bptt_runtime::Packing;
pub use bptt_runtime::kernels::RowProduct;

/// Which buffer of a [`Cell`](bptt_runtime::Cell) method a view addresses.
/// Every buffer is a row-major `[rows, features]` matrix except the two flat
/// parameter vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Buffer {
    /// `x`: `[rows, input_size]`.
    Input,
    /// `h_prev` (forward steps): `[rows, state_size]`.
    StatePrev,
    /// `h_next` (forward steps) or `h` (`state_from_tape`): `[rows, state_size]`.
    StateNext,
    /// The step's tape: `[rows, tape_size]`.
    Tape,
    /// `dh = dL/dh[k]` (backward): `[rows, state_size]`.
    GradState,
    /// `dh_prev = dL/dh[k-1]` (backward): `[rows, state_size]`.
    GradStatePrev,
    /// Scratch: `[rows, scratch_size]` as one flat slice of `rows ·
    /// scratch_size` floats, carved into [`Temp`]s.
    Scratch,
}

/// A temporary matrix in scratch: `[rows, width]`, row-major and
/// contiguous, starting at float `rows · offset` of the scratch slice (so
/// that it can be a matrix-product operand whatever the batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Temp {
    /// Start in units of `rows` floats.
    pub offset: usize,
    /// Columns.
    pub width: usize,
}

impl Temp {
    /// The floats it occupies in the scratch slice for `rows` batch rows.
    pub fn floats(self, rows: usize) -> std::ops::Range<usize> {
        rows * self.offset..rows * (self.offset + self.width)
    }
}

/// Where a fused loop's column `j` of row `b` lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// `buffer[b · stride + col + j]`, for every buffer but scratch
    /// (`stride` is the buffer's row width).
    Rows {
        /// The buffer.
        buffer: Buffer,
        /// The buffer's row width in floats.
        stride: usize,
        /// The first column.
        col: usize,
    },
    /// `scratch[rows · temp.offset + b · temp.width + col + j]`.
    Temp {
        /// The temporary.
        temp: Temp,
        /// The first column.
        col: usize,
    },
}

impl View {
    /// The same view `col` columns further on.
    pub fn shifted(self, col: usize) -> View {
        match self {
            View::Rows {
                buffer,
                stride,
                col: c,
            } => View::Rows {
                buffer,
                stride,
                col: c + col,
            },
            View::Temp { temp, col: c } => View::Temp { temp, col: c + col },
        }
    }
}

/// A contiguous `[rows, width]` matrix operand of a product: the whole of
/// `x` (when the input is used as is) or a scratch temporary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Matrix {
    /// `x`, `[rows, input_size]`.
    Input,
    /// A scratch temporary.
    Temp(Temp),
}

/// A parameter matrix: `rows × cols` floats, row-major, starting at float
/// `offset` of the flat parameter vector (the same offset in the gradient).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParamMatrix {
    /// First float in the parameter vector.
    pub offset: usize,
    /// Rows (the product's inner dimension `k` for `x · W`).
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl ParamMatrix {
    /// The packed copy of it (`transposed` false: `B = W` for `a·W`) or of
    /// its transpose (`B = Wᵀ` for `a·Wᵀ`).
    pub fn packing(self, transposed: bool) -> Packing {
        Packing {
            offset: self.offset,
            rows: self.rows,
            cols: self.cols,
            transposed,
        }
    }

    /// Its floats in the parameter vector (and in the gradient).
    pub fn floats(self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.rows * self.cols
    }
}

/// One instruction of a [`Kernel`].
#[derive(Debug, Clone, PartialEq)]
pub enum Instr {
    /// `out[rows × w.cols] += a[rows × w.rows] · W`:
    /// `gemm_nn_packed_acc(rows, w.rows, w.cols, a, W, out)` with `W` packed
    /// (bitwise `gemm_nn_acc` on `W` itself).
    MatMul {
        /// Left operand.
        a: Matrix,
        /// The weights.
        w: ParamMatrix,
        /// Accumulated into; `[rows, w.cols]`.
        out: Temp,
    },
    /// `out[rows × w.rows] += a[rows × w.cols] · Wᵀ`:
    /// `gemm_nn_packed_acc(rows, w.cols, w.rows, a, Wᵀ, out)` with `Wᵀ`
    /// packed (a gradient through a product; each element sums its `w.cols`
    /// products in order).
    MatMulT {
        /// Left operand, `[rows, w.cols]`.
        a: Temp,
        /// The weights.
        w: ParamMatrix,
        /// Accumulated into; `[rows, w.rows]`.
        out: Temp,
    },
    /// `grads[W] += aᵀ · dy`: `gemm_tn_acc(w.rows, rows, w.cols, a, dy,
    /// &mut grads[w.offset..][..w.rows · w.cols])`.
    WeightGrad {
        /// The product's left operand, `[rows, w.rows]`.
        a: Matrix,
        /// The gradient of the product's output, `[rows, w.cols]`.
        dy: Temp,
        /// Whose gradient.
        w: ParamMatrix,
    },
    /// `out[b] = ((0.0 + a[b, 0]) + a[b, 1]) + … + a[b, width - 1]` for every
    /// row `b`, added left to right in this order on every backend: a sum
    /// over the feature axis (`out` is one column wide).
    RowSum {
        /// The rows summed, `[rows, a.width]`.
        a: Temp,
        /// Written; `[rows, 1]`.
        out: Temp,
    },
    /// `op` on each row's small matrices: `bptt_runtime::kernels::
    /// row_product(op, rows, m, n, a, b, out)`, which writes `out` (the
    /// products of matrix-valued values; [`RowProduct`] fixes every
    /// element's order of operations).
    RowProduct {
        /// Which product.
        op: RowProduct,
        /// The matrix's rows.
        m: usize,
        /// The matrix's columns.
        n: usize,
        /// The first operand, `[rows, op.widths(m, n).0]`.
        a: Temp,
        /// The second operand, `[rows, op.widths(m, n).1]` (may be `a`).
        b: Temp,
        /// Written; `[rows, op.widths(m, n).2]`, disjoint from both operands.
        out: Temp,
    },
    /// One fused elementwise loop.
    Loop(FusedLoop),
}

/// A register of a fused loop: the value of its `n`-th [`LoopOp`] in the
/// current column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u32);

/// A one-operand elementwise function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unary {
    /// `-a`.
    Neg,
    /// `bptt_runtime::kernels::sigmoid(a)`.
    Sigmoid,
    /// `bptt_runtime::kernels::tanh(a)`.
    Tanh,
    /// `bptt_runtime::kernels::exp(a)`.
    Exp,
    /// `if a > 0.0 { a } else { 0.0 }` (so `relu(NaN) = 0`, `relu(-0) = 0`).
    Relu,
    /// `f32::sqrt(a)`, IEEE-754 correctly rounded (`sqrt(-1) = NaN`).
    Sqrt,
    /// `f32::abs(a)`: the sign bit cleared.
    Abs,
    /// `bptt_runtime::kernels::log(a)`.
    Log,
    /// `bptt_runtime::kernels::softplus(a)`: `log(1 + e^a)` in its
    /// overflow-free form.
    Softplus,
}

/// A two-operand elementwise function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binary {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `if b > 0.0 { a } else { 0.0 }`: the gradient `a` through a relu whose
    /// output is `b`.
    ReluGrad,
    /// `a / b`, IEEE-754 correctly rounded.
    Div,
    /// `if a > b { a } else { b }` (so `max(NaN, b) = b`, `max(a, NaN) = NaN`).
    Max,
    /// `if a < b { a } else { b }` (so `min(NaN, b) = b`, `min(a, NaN) = NaN`).
    Min,
    /// `if a > b { 1.0 } else { 0.0 }`: which operand `max` took, for its
    /// gradient.
    Greater,
}

/// One operation of a fused loop; the `n`-th op defines [`Reg`]`(n)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoopOp {
    /// Reads the view at the current row and column.
    Load(View),
    /// Reads `params[offset + j]` (a parameter vector broadcast over rows).
    Param(usize),
    /// Reads the view at the current row and its first column, whatever the
    /// column: a `[1]` value broadcast over the loop's width.
    LoadScalar(View),
    /// Reads `params[offset]` in every row and column: a `[1]` parameter
    /// broadcast over the loop's width and the batch.
    ParamScalar(usize),
    /// A constant.
    Const(f32),
    /// `f(a)`.
    Unary(Unary, Reg),
    /// `f(a, b)`.
    Binary(Binary, Reg, Reg),
}

impl LoopOp {
    /// Whether the op's value is the same in every column of a row, given
    /// which earlier registers are: constants, broadcast scalars and what is
    /// computed from them alone. An engine may compute such a register once
    /// per row (the same operation on the same operands, so the same bits).
    pub fn is_row_invariant(&self, invariant: impl Fn(Reg) -> bool) -> bool {
        match *self {
            LoopOp::Const(_) | LoopOp::ParamScalar(_) | LoopOp::LoadScalar(_) => true,
            LoopOp::Unary(_, a) => invariant(a),
            LoopOp::Binary(_, a, b) => invariant(a) && invariant(b),
            LoopOp::Load(_) | LoopOp::Param(_) => false,
        }
    }
}

/// What a fused loop does with a register.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sink {
    /// Writes the register to the view at the current row and column.
    Store(View, Reg),
    /// `grads[offset + j] += reg`, row after row: a parameter vector's
    /// gradient, summed over the batch.
    AccumulateGrad(usize, Reg),
}

/// An elementwise loop over `rows × width` elements, fused: every value
/// lives in a register between its op and its last use.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedLoop {
    /// Columns per row.
    pub width: usize,
    /// The operations, in order; op `n` defines `Reg(n)` and reads only
    /// earlier registers.
    pub ops: Vec<LoopOp>,
    /// What is written, after every op of the column has run.
    pub sinks: Vec<Sink>,
}

/// A weight gradient that `backward_deferred` leaves to the executor
/// ([`bptt_runtime::Cell::weight_gradients`]): `grads[w] += [a₀ | a₁ | …]ᵀ ·
/// dy`, one or more [`Instr::WeightGrad`]s of the backward kernel over the
/// same `dy` and adjacent weights, as one product.
#[derive(Debug, Clone, PartialEq)]
pub struct DeferredProduct {
    /// The left operands, side by side: their widths add up to `w.rows`.
    pub a: Vec<Matrix>,
    /// The gradient of the product's output, `[rows, w.cols]`.
    pub dy: Temp,
    /// The weights whose gradient it is (the operands' weights, adjacent).
    pub w: ParamMatrix,
}

impl DeferredProduct {
    /// The runtime's description of it (no bias: bias gradients stay in the
    /// kernel).
    pub fn weight_gradient(&self) -> bptt_runtime::WeightGradient {
        bptt_runtime::WeightGradient {
            rows: self.w.rows,
            cols: self.w.cols,
            weight: self.w.offset,
            bias: None,
        }
    }
}

/// A straight-line list of instructions, run in order. Every kernel takes
/// the number of batch rows at run time; all widths and offsets are fixed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Kernel {
    /// The instructions.
    pub instrs: Vec<Instr>,
}

/// A named tensor of a cell and where it lives.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// The name in the cell's definition.
    pub name: String,
    /// First column in its buffer's rows (for parameters: first float).
    pub offset: usize,
    /// Floats per row (for parameters: the shape, see [`ParamSlot`]).
    pub width: usize,
}

/// A parameter of a derived cell.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSlot {
    /// The name in the cell's definition.
    pub name: String,
    /// First float in the flat parameter vector.
    pub offset: usize,
    /// `[cols]` for a vector, `[rows, cols]` for a row-major matrix.
    pub shape: Vec<usize>,
    /// How it is initialised: empty draws `rng.uniform(-k, k)` for each
    /// float in order, with `k = 1/√(output_size)` as the runtime's cells
    /// do; `[c]` fills it with the constant `c`; `[c0, c1, ..]` (`n`
    /// values) cuts its last dimension into `n` equal blocks and fills
    /// block `i` with `ci` (the gates of a fused bias, `[4 * hidden] = [0,
    /// 1, 0, 0]`, or of a fused matrix's columns). Parameters are
    /// initialised in declaration order from one `Rng`.
    pub init: Vec<f32>,
}

impl ParamSlot {
    /// Floats in the parameter.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it holds no floats.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The constant float `index` starts at, or `None` if it is drawn at
    /// random (see [`ParamSlot::init`]).
    pub fn constant(&self, index: usize) -> Option<f32> {
        let cols = self.shape.last().copied().unwrap_or(1).max(1);
        let block = (cols / self.init.len().max(1)).max(1);
        let k = (index % cols) / block;
        self.init
            .get(k.min(self.init.len().saturating_sub(1)))
            .copied()
    }
}

/// A cell compiled for concrete sizes: its sizes, layouts and kernels.
#[derive(Debug, Clone, PartialEq)]
pub struct CellProgram {
    /// The cell's name.
    pub name: String,
    /// The size names with their values, in declaration order.
    pub sizes: Vec<(String, usize)>,
    /// Features of `x`.
    pub input_size: usize,
    /// Floats per row of the state: the states in declaration order.
    pub state_size: usize,
    /// The states (`offset` is the first column in a state row).
    pub states: Vec<Slot>,
    /// Floats per row of the output a loss reads: the first state.
    pub output_size: usize,
    /// The values kept on the tape (`offset` is the first column in a tape row).
    pub tape: Vec<Slot>,
    /// Floats per row of the tape (at least `state_size`, padded if the
    /// values kept need fewer, so that alpha is at least 1).
    pub tape_size: usize,
    /// Floats per row of scratch, for every kernel.
    pub scratch_size: usize,
    /// The parameters, in declaration order, packed.
    pub params: Vec<ParamSlot>,
    /// Floats in the flat parameter vector.
    pub param_count: usize,
    /// `h_next = f(x, h_prev)`, writing `StateNext`.
    pub forward: Kernel,
    /// The same, also writing the tape.
    pub forward_tape: Kernel,
    /// `StateNext` rebuilt from `Tape` alone.
    pub state_from_tape: Kernel,
    /// `GradStatePrev` (overwritten) and parameter gradients (added) from
    /// `Input`, `Tape` and `GradState`.
    pub backward: Kernel,
    /// `backward` without the weight gradients of `deferred`, whose operands
    /// it leaves in place (empty when nothing is deferred).
    pub backward_deferred: Kernel,
    /// The weight gradients `backward_deferred` leaves to the executor, to
    /// be summed once per window of steps: bitwise what `backward` adds
    /// (see [`DeferredProduct`]; none when a later instruction overwrites
    /// an operand or two sums share gradient floats).
    pub deferred: Vec<DeferredProduct>,
}

impl CellProgram {
    /// The packed weight copies its products read, in order of first use
    /// over the kernels ([`Method::ALL`](super::Method::ALL)): `W` for
    /// each `MatMul`, `Wᵀ` for each `MatMulT`.
    pub fn packings(&self) -> Vec<Packing> {
        let mut out: Vec<Packing> = Vec::new();
        for (_, kernel) in self.kernels() {
            for instr in &kernel.instrs {
                let p = match *instr {
                    Instr::MatMul { w, .. } => w.packing(false),
                    Instr::MatMulT { w, .. } => w.packing(true),
                    _ => continue,
                };
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Where the packed copy of `w` (`transposed`: of `Wᵀ`) that a product
    /// of the program reads stands in [`CellProgram::packings`].
    ///
    /// # Panics
    /// If no product of the program reads it.
    pub fn packing_index(&self, w: ParamMatrix, transposed: bool) -> usize {
        let p = w.packing(transposed);
        self.packings()
            .iter()
            .position(|q| *q == p)
            .expect("packings lists every product's weights")
    }

    /// The tape's size over the state's: the planning model's alpha.
    pub fn alpha(&self) -> f64 {
        self.tape_size as f64 / self.state_size as f64
    }

    /// The sizes as written in messages and headers: `input = 8, hidden = 32`.
    pub fn sizes_text(&self) -> String {
        let sizes: Vec<String> = self
            .sizes
            .iter()
            .map(|(name, value)| format!("{name} = {value}"))
            .collect();
        sizes.join(", ")
    }

    /// Fresh parameters, initialised as each [`ParamSlot::init`] says.
    pub fn init_params(&self, rng: &mut bptt_runtime::Rng) -> Vec<f32> {
        let k = 1.0 / (self.output_size.max(1) as f32).sqrt();
        let mut params = Vec::with_capacity(self.param_count);
        for p in &self.params {
            match p.init.is_empty() {
                true => params.extend((0..p.len()).map(|_| rng.uniform(-k, k))),
                false => params.extend((0..p.len()).filter_map(|f| p.constant(f))),
            }
        }
        params
    }

    /// The kernels with their method names, in the order of
    /// [`Method::ALL`](super::Method::ALL).
    pub fn kernels(&self) -> [(&'static str, &Kernel); super::Method::ALL.len()] {
        super::Method::ALL.map(|m| (m.name(), m.kernel(self)))
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}
