//! [`ProgramCell`]: a [`CellProgram`] with its parameters, as a [`Cell`],
//! whatever runs its kernels: the interpreter ([`DerivedCell`]) or native
//! code (`bptt::jit::cell::JitCell`).
//!
//! The cell checks every array's shape against the program's sizes (panics
//! name the method, the array and both shapes, as the runtime's cells do),
//! gathers them in a [`Frame`], and hands the method's kernel to its
//! [`CellEngine`].
//!
//! [`DerivedCell`]: super::DerivedCell

use std::sync::Arc;

use bptt_runtime::shape::{check_grads, rows, rows_mut, scatter_cols, scratch_rows};
use bptt_runtime::{
    Cell, Operands, Packed, PackedWeights, ShapeError, WeightGradient, par_rows_mut,
};
use ndarray::{ArrayView2, ArrayViewMut2};

use super::method::Method;
use super::program::{Buffer, CellProgram, Matrix};

/// A buffer as a method received it.
#[derive(Debug)]
pub enum Buf<'a> {
    /// The method has no such buffer.
    Absent,
    /// Received read-only.
    Read(&'a [f32]),
    /// Received mutably.
    Write(&'a mut [f32]),
}

impl Buf<'_> {
    /// Its floats (none if absent).
    pub fn read(&self) -> &[f32] {
        match self {
            Buf::Read(s) => s,
            Buf::Write(s) => s,
            Buf::Absent => &[],
        }
    }

    /// Its floats, mutably (none unless received mutably).
    pub fn write(&mut self) -> &mut [f32] {
        match self {
            Buf::Write(s) => s,
            _ => &mut [],
        }
    }
}

/// The arrays of one method call, shape-checked: the batch rows, a
/// [`Buf`] per [`Buffer`], the parameters, their packed copies and (in
/// `backward`) the parameter gradients.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Batch rows.
    pub rows: usize,
    /// Indexed by [`Frame::index`].
    pub buffers: [Buf<'a>; 7],
    /// The flat parameter vector.
    pub params: &'a [f32],
    /// The packed copies of [`CellProgram::packings`], in that order.
    pub packed: &'a Packed<'a>,
    /// The flat parameter gradients (empty but in `backward`).
    pub grads: &'a mut [f32],
}

impl<'a> Frame<'a> {
    /// The position of `buffer` in [`Frame::buffers`].
    pub fn index(buffer: Buffer) -> usize {
        match buffer {
            Buffer::Input => 0,
            Buffer::StatePrev => 1,
            Buffer::StateNext => 2,
            Buffer::Tape => 3,
            Buffer::GradState => 4,
            Buffer::GradStatePrev => 5,
            Buffer::Scratch => 6,
        }
    }

    fn new(rows: usize, params: &'a [f32], packed: &'a Packed<'a>) -> Self {
        Frame {
            rows,
            buffers: std::array::from_fn(|_| Buf::Absent),
            params,
            packed,
            grads: &mut [],
        }
    }

    fn with(mut self, buffer: Buffer, buf: Buf<'a>) -> Self {
        self.buffers[Self::index(buffer)] = buf;
        self
    }

    /// The buffer `buffer`.
    pub fn buf(&self, buffer: Buffer) -> &Buf<'a> {
        &self.buffers[Self::index(buffer)]
    }
}

/// What runs a program's kernels.
pub trait CellEngine: Send + Sync {
    /// Runs `method`'s kernel of `program` on `frame`, whose arrays were
    /// checked against the program's sizes and hold every buffer the method
    /// receives ([`Method::reads`]).
    fn run(&self, program: &CellProgram, method: Method, frame: Frame<'_>);
}

/// A cell program with its parameters and the engine that runs it.
#[derive(Debug, Clone)]
pub struct ProgramCell<E> {
    program: Arc<CellProgram>,
    params: Vec<f32>,
    /// The weights the products read, packed ([`CellProgram::packings`]).
    packed: PackedWeights,
    /// `cell NAME::method` per method, for messages (made once, so that a
    /// step does not allocate).
    what: [String; Method::ALL.len()],
    /// The program's deferred products ([`CellProgram::deferred`]).
    weight_gradients: Vec<WeightGradient>,
    engine: E,
}

impl<E> ProgramCell<E> {
    /// A cell of `program` with `params`, run by `engine`, or an error if
    /// the parameters' length is not the program's parameter count.
    pub fn with_engine(
        program: impl Into<Arc<CellProgram>>,
        params: Vec<f32>,
        engine: E,
    ) -> Result<Self, ShapeError> {
        let program = program.into();
        ShapeError::check(
            || format!("cell {}", program.name),
            program.param_count,
            params.len(),
        )?;
        let what = Method::ALL.map(|m| format!("cell {}::{}", program.name, m.name()));
        Ok(ProgramCell {
            packed: PackedWeights::new(program.packings()),
            weight_gradients: program
                .deferred
                .iter()
                .map(|d| d.weight_gradient())
                .collect(),
            program,
            params,
            what,
            engine,
        })
    }

    /// The compiled program.
    pub fn program(&self) -> &CellProgram {
        &self.program
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }
}

impl<E: CellEngine> ProgramCell<E> {
    /// A forward step's `x` and `h_prev`, checked, with their widths.
    fn inputs<'a>(
        &self,
        what: &str,
        x: ArrayView2<'a, f32>,
        h_prev: ArrayView2<'a, f32>,
    ) -> [(Buffer, &'a [f32], usize); 2] {
        let (p, n) = (&*self.program, x.nrows());
        [
            (
                Buffer::Input,
                rows(what, "x", x, n, p.input_size),
                p.input_size,
            ),
            (
                Buffer::StatePrev,
                rows(what, "h_prev", h_prev, n, p.state_size),
                p.state_size,
            ),
        ]
    }

    /// A method's scratch for `n` rows, checked, with its width.
    fn scratch<'a>(
        &self,
        what: &str,
        scratch: ArrayViewMut2<'a, f32>,
        n: usize,
    ) -> (Buffer, &'a mut [f32], usize) {
        let width = self.program.scratch_size;
        (
            Buffer::Scratch,
            scratch_rows(what, scratch, n, width),
            width,
        )
    }

    /// Runs `method`, which reads `reads` and writes `writes` (buffers of
    /// `batch` rows with their widths, shape-checked), row-parallel
    /// ([`par_rows_mut`]): a block of rows of every buffer per part. Only for
    /// the forward methods, whose every instruction works row by row (no
    /// parameter gradient sums over rows there), so the result is bitwise
    /// that of one call on the whole batch.
    fn run_by_rows<const R: usize, const W: usize>(
        &self,
        method: Method,
        batch: usize,
        reads: [(Buffer, &[f32], usize); R],
        writes: [(Buffer, &mut [f32], usize); W],
    ) {
        debug_assert!(!method.has_grads());
        let packed = self.packed.get(&self.params);
        let names = writes.each_ref().map(|w| w.0);
        par_rows_mut(
            batch,
            writes.map(|(_, data, width)| (data, width)),
            |r, blocks| {
                let mut frame = Frame::new(r.len(), &self.params, &packed);
                for (buffer, data, width) in &reads {
                    frame = frame.with(*buffer, Buf::Read(&data[r.start * width..r.end * width]));
                }
                for (buffer, block) in names.into_iter().zip(blocks) {
                    frame = frame.with(buffer, Buf::Write(block));
                }
                self.engine.run(&self.program, method, frame);
            },
        );
    }
}

impl<E: CellEngine> Cell for ProgramCell<E> {
    fn input_size(&self) -> usize {
        self.program.input_size
    }

    fn state_size(&self) -> usize {
        self.program.state_size
    }

    fn tape_size(&self) -> usize {
        self.program.tape_size
    }

    fn output_size(&self) -> usize {
        self.program.output_size
    }

    fn scratch_size(&self) -> usize {
        self.program.scratch_size
    }

    fn params(&self) -> &[f32] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [f32] {
        self.packed.invalidate();
        &mut self.params
    }

    fn packed_floats(&self) -> usize {
        self.packed.floats()
    }

    fn forward(
        &self,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        h_next: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    ) {
        let (p, what, n) = (&*self.program, &self.what[0], x.nrows());
        let next = rows_mut(what, "h_next", h_next, n, p.state_size);
        let writes = [
            (Buffer::StateNext, next, p.state_size),
            self.scratch(what, scratch, n),
        ];
        self.run_by_rows(Method::Forward, n, self.inputs(what, x, h_prev), writes);
    }

    fn forward_tape(
        &self,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        tape: ArrayViewMut2<f32>,
        h_next: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    ) {
        let (p, what, n) = (&*self.program, &self.what[1], x.nrows());
        let tape = rows_mut(what, "tape", tape, n, p.tape_size);
        let next = rows_mut(what, "h_next", h_next, n, p.state_size);
        let writes = [
            (Buffer::Tape, tape, p.tape_size),
            (Buffer::StateNext, next, p.state_size),
            self.scratch(what, scratch, n),
        ];
        self.run_by_rows(Method::ForwardTape, n, self.inputs(what, x, h_prev), writes);
    }

    fn state_from_tape(
        &self,
        tape: ArrayView2<f32>,
        h: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    ) {
        let (p, what, n) = (&*self.program, &self.what[2], tape.nrows());
        let writes = [
            (
                Buffer::StateNext,
                rows_mut(what, "h", h, n, p.state_size),
                p.state_size,
            ),
            self.scratch(what, scratch, n),
        ];
        self.run_by_rows(
            Method::StateFromTape,
            n,
            [(
                Buffer::Tape,
                rows(what, "tape", tape, n, p.tape_size),
                p.tape_size,
            )],
            writes,
        );
    }

    fn backward(
        &self,
        x: ArrayView2<f32>,
        tape: ArrayView2<f32>,
        dh: ArrayView2<f32>,
        dh_prev: ArrayViewMut2<f32>,
        grads: &mut [f32],
        scratch: ArrayViewMut2<f32>,
    ) {
        let args = BackwardArgs {
            x,
            tape,
            dh,
            dh_prev,
            grads,
        };
        self.run_backward(Method::Backward, args, scratch);
    }

    fn weight_gradients(&self) -> &[WeightGradient] {
        &self.weight_gradients
    }

    fn backward_deferred(
        &self,
        x: ArrayView2<f32>,
        tape: ArrayView2<f32>,
        dh: ArrayView2<f32>,
        dh_prev: ArrayViewMut2<f32>,
        grads: &mut [f32],
        scratch: ArrayViewMut2<f32>,
        operands: Operands<'_>,
    ) {
        let (p, n) = (&*self.program, x.nrows());
        assert_eq!(
            operands.products(),
            p.deferred.len(),
            "operands for another cell's products"
        );
        let args = BackwardArgs {
            x,
            tape,
            dh,
            dh_prev,
            grads,
        };
        if self.weight_gradients.is_empty() {
            self.run_backward(Method::Backward, args, scratch);
            return;
        }
        let (x, scratch) = self.run_backward(Method::BackwardDeferred, args, scratch);
        for (d, (a_rows, d_rows)) in p.deferred.iter().zip(operands.each()) {
            let mut col = 0;
            for a in &d.a {
                let (src, width) = match *a {
                    Matrix::Input => (x, p.input_size),
                    Matrix::Temp(t) => (&scratch[t.floats(n)], t.width),
                };
                scatter_cols(src, a_rows, d.w.rows, col..col + width);
                col += width;
            }
            d_rows.copy_from_slice(&scratch[d.dy.floats(n)]);
        }
    }
}

/// The arrays of a backward step but scratch.
struct BackwardArgs<'a, 'g> {
    x: ArrayView2<'a, f32>,
    tape: ArrayView2<'a, f32>,
    dh: ArrayView2<'a, f32>,
    dh_prev: ArrayViewMut2<'a, f32>,
    grads: &'g mut [f32],
}

impl<E: CellEngine> ProgramCell<E> {
    /// Runs a backward method's kernel on checked arrays; returns `x` and
    /// scratch as the kernel left them.
    fn run_backward<'a, 's>(
        &self,
        method: Method,
        args: BackwardArgs<'a, '_>,
        scratch: ArrayViewMut2<'s, f32>,
    ) -> (&'a [f32], &'s mut [f32]) {
        let (p, what, n) = (&*self.program, &self.what[method as usize], args.x.nrows());
        check_grads(what, args.grads, p.param_count);
        let packed = self.packed.get(&self.params);
        let x = rows(what, "x", args.x, n, p.input_size);
        let scratch = scratch_rows(what, scratch, n, p.scratch_size);
        let mut frame = Frame::new(n, &self.params, &packed)
            .with(Buffer::Input, Buf::Read(x))
            .with(
                Buffer::Tape,
                Buf::Read(rows(what, "tape", args.tape, n, p.tape_size)),
            )
            .with(
                Buffer::GradState,
                Buf::Read(rows(what, "dh", args.dh, n, p.state_size)),
            )
            .with(
                Buffer::GradStatePrev,
                Buf::Write(rows_mut(what, "dh_prev", args.dh_prev, n, p.state_size)),
            )
            .with(Buffer::Scratch, Buf::Write(&mut *scratch));
        frame.grads = args.grads;
        self.engine.run(p, method, frame);
        (x, scratch)
    }
}
