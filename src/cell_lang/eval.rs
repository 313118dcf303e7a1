//! [`DerivedCell`]: a [`CellProgram`] run by an interpreter, as a
//! [`Cell`].
//!
//! Products call the runtime's matrix kernels; a fused loop is evaluated
//! op by op over chunks of up to [`CHUNK`] columns of one row, each op a tight
//! loop that LLVM vectorises, with the registers in a stack buffer. That is
//! the meaning [`program`](super::program) gives every instruction, so the
//! JIT and the Rust emitter reproduce it bit for bit.

use std::sync::Arc;

use bptt_runtime::kernels::{
    exp, gemm_nn_packed_acc, gemm_tn_acc, log, row_product_in, sigmoid, softplus, tanh,
};
use bptt_runtime::{Rng, ShapeError};

use super::cell::{CellEngine, Frame, ProgramCell};
use super::graph::{apply_binary, apply_unary};
use super::method::Method;
use super::program::{
    Binary, Buffer, CellProgram, FusedLoop, Instr, Kernel, LoopOp, Matrix, Sink, Temp, Unary, View,
};

/// Columns evaluated per op at most.
pub const CHUNK: usize = 256;
/// Floats of the register buffer on the stack (64 KiB).
const REGISTER_FLOATS: usize = 1 << 14;
/// The register buffer of loops of at most 16 ops (16 KiB).
const SMALL_REGISTER_FLOATS: usize = 16 * CHUNK;
/// The most registers one loop may use (a column each).
pub const MAX_REGISTERS: usize = REGISTER_FLOATS;

/// A cell defined by equations, run by interpreting its [`CellProgram`].
///
/// ```
/// use bptt::cell_lang::{CellDef, DerivedCell};
/// use bptt_runtime::{Cell, Rng};
///
/// let def = CellDef::parse_str(include_str!("../../cells/mgu.cell")).unwrap();
/// let program = def.compile(&[("input", 3), ("hidden", 8)]).unwrap();
/// let cell = DerivedCell::new(program, &mut Rng::new(1));
/// assert_eq!((cell.state_size(), cell.tape_size()), (8, 24));
/// ```
pub type DerivedCell = ProgramCell<Interpreted>;

/// The [`CellEngine`] that interprets a program's kernels.
#[derive(Debug, Clone, Copy, Default)]
pub struct Interpreted;

impl DerivedCell {
    /// A cell with fresh parameters ([`CellProgram::init_params`]).
    pub fn new(program: impl Into<Arc<CellProgram>>, rng: &mut Rng) -> Self {
        let program = program.into();
        let params = program.init_params(rng);
        Self::with_engine(program, params, Interpreted)
            .unwrap_or_else(|e| unreachable!("init_params gives param_count floats: {e}"))
    }

    /// A cell with the given parameters, or an error if their length is not
    /// the program's parameter count.
    pub fn from_params(
        program: impl Into<Arc<CellProgram>>,
        params: Vec<f32>,
    ) -> Result<Self, ShapeError> {
        Self::with_engine(program, params, Interpreted)
    }
}

impl CellEngine for Interpreted {
    fn run(&self, program: &CellProgram, method: Method, mut frame: Frame<'_>) {
        frame.run(method.kernel(program));
    }
}

impl Frame<'_> {
    /// The buffer and the start of row `b` at column 0 of the view.
    fn locate(&self, view: View, b: usize) -> (Buffer, usize) {
        match view {
            View::Rows {
                buffer,
                stride,
                col,
            } => (buffer, b * stride + col),
            View::Temp { temp, col } => (
                Buffer::Scratch,
                self.rows * temp.offset + b * temp.width + col,
            ),
        }
    }

    fn load(&self, view: View, b: usize, j: usize, out: &mut [f32]) {
        let (buffer, start) = self.locate(view, b);
        let at = start + j;
        out.copy_from_slice(&self.buffers[Frame::index(buffer)].read()[at..at + out.len()]);
    }

    fn store(&mut self, view: View, b: usize, j: usize, src: &[f32]) {
        let (buffer, start) = self.locate(view, b);
        let at = start + j;
        self.buffers[Frame::index(buffer)].write()[at..at + src.len()].copy_from_slice(src);
    }

    /// A read-only operand and a disjoint temporary to accumulate into.
    fn operand_and_out(&mut self, a: Matrix, out: Temp) -> (&[f32], &mut [f32]) {
        let out_range = out.floats(self.rows);
        let [input, .., scratch] = &mut self.buffers;
        let scratch = scratch.write();
        match a {
            Matrix::Input => (input.read(), &mut scratch[out_range]),
            Matrix::Temp(t) => disjoint(scratch, t.floats(self.rows), out_range),
        }
    }

    fn run(&mut self, kernel: &Kernel) {
        let (rows, packed) = (self.rows, self.packed);
        for instr in &kernel.instrs {
            match instr {
                Instr::MatMul { a, w, out } => {
                    let wm = packed.find(w.packing(false));
                    let (a, out) = self.operand_and_out(*a, *out);
                    gemm_nn_packed_acc(rows, w.rows, w.cols, a, wm, out);
                }
                Instr::MatMulT { a, w, out } => {
                    let wt = packed.find(w.packing(true));
                    let (a, out) = self.operand_and_out(Matrix::Temp(*a), *out);
                    gemm_nn_packed_acc(rows, w.cols, w.rows, a, wt, out);
                }
                Instr::WeightGrad { a, dy, w } => {
                    let dy = dy.floats(rows);
                    let Frame { buffers, grads, .. } = self;
                    let a = match *a {
                        Matrix::Input => buffers[Frame::index(Buffer::Input)].read(),
                        Matrix::Temp(t) => {
                            &buffers[Frame::index(Buffer::Scratch)].read()[t.floats(rows)]
                        }
                    };
                    let dy = &buffers[Frame::index(Buffer::Scratch)].read()[dy];
                    let g = &mut grads[w.floats()];
                    gemm_tn_acc(w.rows, rows, w.cols, a, dy, g);
                }
                Instr::RowSum { a, out } => {
                    let (a, out) = disjoint(
                        self.buffers[Frame::index(Buffer::Scratch)].write(),
                        a.floats(rows),
                        out.floats(rows),
                    );
                    row_sums(a, out);
                }
                Instr::RowProduct {
                    op,
                    m,
                    n,
                    a,
                    b,
                    out,
                } => {
                    let scratch = self.buffers[Frame::index(Buffer::Scratch)].write();
                    let (a, b, out) = (a.floats(rows), b.floats(rows), out.floats(rows));
                    row_product_in(*op, rows, *m, *n, scratch, a, b, out);
                }
                Instr::Loop(l) => self.fused(l),
            }
        }
    }

    /// Runs a fused loop with registers in the smallest of two stack
    /// buffers that holds a full chunk of every register (zeroing 64 KiB for
    /// a small loop would cost more than the loop).
    fn fused(&mut self, l: &FusedLoop) {
        if l.ops.len() * CHUNK <= SMALL_REGISTER_FLOATS {
            self.fused_in(l, &mut [0.0f32; SMALL_REGISTER_FLOATS]);
        } else {
            self.fused_in(l, &mut [0.0f32; REGISTER_FLOATS]);
        }
    }

    fn fused_in(&mut self, l: &FusedLoop, regs: &mut [f32]) {
        let chunk = (regs.len() / l.ops.len().max(1)).min(CHUNK);
        let invariant = Invariant::of(l);
        for b in 0..self.rows {
            let mut j = 0;
            while j < l.width {
                let n = chunk.min(l.width - j);
                for (r, op) in l.ops.iter().enumerate() {
                    let (before, after) = regs.split_at_mut(r * chunk);
                    let out = &mut after[..n];
                    if invariant.has(r) {
                        // Once per row, in the first chunk (the widest).
                        if j == 0 {
                            let first = |x: super::Reg| before[x.0 as usize * chunk];
                            out.fill(match *op {
                                LoopOp::Unary(f, a) => apply_unary(f, first(a)),
                                LoopOp::Binary(f, a, c) => apply_binary(f, first(a), first(c)),
                                LoopOp::Const(c) => c,
                                LoopOp::ParamScalar(offset) => self.params[offset],
                                LoopOp::LoadScalar(view) => {
                                    let (buffer, at) = self.locate(view, b);
                                    self.buffers[Frame::index(buffer)].read()[at]
                                }
                                LoopOp::Load(_) | LoopOp::Param(_) => {
                                    unreachable!("a column's own value is not invariant")
                                }
                            });
                        }
                        continue;
                    }
                    let reg = |x: super::Reg| &before[x.0 as usize * chunk..][..n];
                    match *op {
                        LoopOp::Load(view) => self.load(view, b, j, out),
                        LoopOp::Param(offset) => {
                            out.copy_from_slice(&self.params[offset + j..offset + j + n])
                        }
                        LoopOp::Const(_) | LoopOp::LoadScalar(_) | LoopOp::ParamScalar(_) => {
                            unreachable!("filled once per row above")
                        }
                        LoopOp::Unary(f, a) => unary(f, reg(a), out),
                        LoopOp::Binary(f, a, c) => binary(f, reg(a), reg(c), out),
                    }
                }
                for sink in &l.sinks {
                    match *sink {
                        Sink::Store(view, r) => {
                            let src = &regs[r.0 as usize * chunk..][..n];
                            self.store(view, b, j, src);
                        }
                        Sink::AccumulateGrad(offset, r) => {
                            let src = &regs[r.0 as usize * chunk..][..n];
                            for (g, v) in self.grads[offset + j..offset + j + n].iter_mut().zip(src)
                            {
                                *g += *v;
                            }
                        }
                    }
                }
                j += n;
            }
        }
    }
}

/// The registers of a fused loop whose value is the same in every column
/// of a row ([`LoopOp::is_row_invariant`]). The interpreter computes each
/// once per row: a scalar gate broadcast over a matrix memory's 4,096
/// columns is one `softplus` per row, not 4,096.
struct Invariant([u64; MAX_REGISTERS / 64]);

impl Invariant {
    fn of(l: &FusedLoop) -> Self {
        let mut set = Invariant([0; MAX_REGISTERS / 64]);
        for (r, op) in l.ops.iter().enumerate() {
            if op.is_row_invariant(|a| set.has(a.0 as usize)) {
                set.0[r / 64] |= 1 << (r % 64);
            }
        }
        set
    }

    fn has(&self, r: usize) -> bool {
        (self.0[r / 64] >> (r % 64)) & 1 == 1
    }
}

/// Two disjoint ranges of one slice, the first read-only.
fn disjoint(
    s: &mut [f32],
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
) -> (&[f32], &mut [f32]) {
    if a.end <= b.start {
        let (lo, hi) = s.split_at_mut(b.start);
        (&lo[a], &mut hi[..b.end - b.start])
    } else {
        let (lo, hi) = s.split_at_mut(a.start);
        (&hi[..a.end - a.start], &mut lo[b])
    }
}

/// `out[b] = Σ_j a[b, j]` for every row, added left to right from `0.0`
/// ([`Instr::RowSum`]); `a` holds `out.len()` rows.
pub(crate) fn row_sums(a: &[f32], out: &mut [f32]) {
    if out.is_empty() {
        return;
    }
    for (row, o) in a.chunks_exact(a.len() / out.len()).zip(out.iter_mut()) {
        let mut s = 0.0f32;
        for &v in row {
            s += v;
        }
        *o = s;
    }
}

bptt_runtime::simd_fn! {
    /// `out[k] = f(a[k])`, at the machine's vector width.
    fn unary(f: Unary, a: &[f32], out: &mut [f32]) {
        match f {
            Unary::Neg => map(a, out, |x| -x),
            Unary::Sigmoid => map(a, out, sigmoid),
            Unary::Tanh => map(a, out, tanh),
            Unary::Exp => map(a, out, exp),
            Unary::Relu => map(a, out, |x| apply_unary(Unary::Relu, x)),
            Unary::Sqrt => map(a, out, f32::sqrt),
            Unary::Abs => map(a, out, f32::abs),
            // Loops of their own: passed to `map`, these two larger
            // functions stayed out of line, one call per element.
            Unary::Log => {
                for (o, &x) in out.iter_mut().zip(a) {
                    *o = log(x);
                }
            }
            Unary::Softplus => {
                for (o, &x) in out.iter_mut().zip(a) {
                    *o = softplus(x);
                }
            }
        }
    }
}

/// `out[k] = g(a[k])`, monomorphised per function so that it inlines and
/// vectorises.
#[inline(always)]
fn map(a: &[f32], out: &mut [f32], g: impl Fn(f32) -> f32) {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = g(x);
    }
}

bptt_runtime::simd_fn! {
    /// `out[k] = f(a[k], b[k])`, at the machine's vector width.
    fn binary(f: Binary, a: &[f32], b: &[f32], out: &mut [f32]) {
        match f {
            Binary::Add => zip(a, b, out, |x, y| x + y),
            Binary::Sub => zip(a, b, out, |x, y| x - y),
            Binary::Mul => zip(a, b, out, |x, y| x * y),
            Binary::ReluGrad => zip(a, b, out, |g, y| apply_binary(Binary::ReluGrad, g, y)),
            Binary::Div => zip(a, b, out, |x, y| x / y),
            Binary::Max => zip(a, b, out, |x, y| apply_binary(Binary::Max, x, y)),
            Binary::Min => zip(a, b, out, |x, y| apply_binary(Binary::Min, x, y)),
            Binary::Greater => zip(a, b, out, |x, y| apply_binary(Binary::Greater, x, y)),
        }
    }
}

/// `out[k] = g(a[k], b[k])`, monomorphised like [`map`].
#[inline(always)]
fn zip(a: &[f32], b: &[f32], out: &mut [f32], g: impl Fn(f32, f32) -> f32) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = g(x, y);
    }
}
