//! The one validation of a [`CellProgram`], whose result ([`Checked`]) is
//! what the backends that trust a program consume: the Cranelift JIT, whose
//! compiled kernels address raw pointers with the program's offsets and
//! widths, and the `cell!` emitter, whose slices would panic.
//!
//! [`Checked::new`] rejects, before anything is compiled or emitted, every
//! program that could touch memory outside the arrays a method receives,
//! write an array it receives read-only, use a register before its op, or
//! hand a matrix kernel overlapping operands. (The interpreter needs no
//! proof: every access it makes is a checked slice.)

use std::ops::Deref;

use super::Method;
use super::program::{
    Buffer, CellProgram, FusedLoop, Instr, LoopOp, Matrix, ParamMatrix, Reg, Sink, Temp, View,
};

/// The widest row, in floats, whose byte offsets fit the 32-bit immediate
/// offsets of the JIT's loads and stores; no row or count of a checked
/// program is wider.
const MAX_ROW: usize = (i32::MAX / 4) as usize;

/// A program that [`Checked::new`] proved stays within its arrays.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a>(&'a CellProgram);

impl<'a> Checked<'a> {
    /// Checks every kernel of `program`; the error, one line, names the
    /// method and the instruction (the caller names the cell).
    pub fn new(program: &'a CellProgram) -> Result<Self, String> {
        if program.param_count > MAX_ROW {
            return Err(format!(
                "{} parameters are more than a kernel addresses ({MAX_ROW})",
                program.param_count
            ));
        }
        for method in Method::ALL {
            let at = Checker { program, method };
            for (i, instr) in method.kernel(program).instrs.iter().enumerate() {
                at.instr(instr)
                    .map_err(|why| format!("{} instruction {i} {why}", method.name()))?;
            }
        }
        Ok(Checked(program))
    }

    /// The program.
    pub fn program(self) -> &'a CellProgram {
        self.0
    }
}

impl Deref for Checked<'_> {
    type Target = CellProgram;

    fn deref(&self) -> &CellProgram {
        self.0
    }
}

/// Checks the instructions of one method's kernel.
struct Checker<'a> {
    program: &'a CellProgram,
    method: Method,
}

/// Why an instruction is rejected.
type Check = Result<(), String>;

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Check {
    if ok { Ok(()) } else { Err(why()) }
}

impl Checker<'_> {
    fn instr(&self, instr: &Instr) -> Check {
        match *instr {
            Instr::MatMul { a, w, out } => {
                self.matrix(a, w.rows)?;
                self.param_matrix(w)?;
                self.temp(out, w.cols)?;
                self.disjoint(a, out)
            }
            Instr::MatMulT { a, w, out } => {
                self.temp(a, w.cols)?;
                self.param_matrix(w)?;
                self.temp(out, w.rows)?;
                self.disjoint(Matrix::Temp(a), out)
            }
            Instr::WeightGrad { a, dy, w } => {
                ensure(self.method.has_grads(), || {
                    "adds to parameter gradients, which this method does not receive".to_owned()
                })?;
                self.matrix(a, w.rows)?;
                self.temp(dy, w.cols)?;
                self.param_matrix(w)
            }
            Instr::RowProduct {
                op,
                m,
                n,
                a,
                b,
                out,
            } => {
                let Some(mn) = m.checked_mul(n) else {
                    return Err(format!("multiplies {m}x{n} matrices, too many floats"));
                };
                let (wa, wb, wo) = op.widths(m, n);
                ensure(mn <= MAX_ROW, || {
                    format!("multiplies {m}x{n} matrices, too many floats")
                })?;
                self.temp(a, wa)?;
                self.temp(b, wb)?;
                self.temp(out, wo)?;
                self.disjoint(Matrix::Temp(a), out)?;
                self.disjoint(Matrix::Temp(b), out)
            }
            Instr::RowSum { a, out } => {
                self.temp(a, a.width)?;
                self.temp(out, 1)?;
                self.disjoint(Matrix::Temp(a), out)
            }
            Instr::Loop(ref fused) => self.fused(fused),
        }
    }

    /// A product operand with `width` columns.
    fn matrix(&self, a: Matrix, width: usize) -> Check {
        match a {
            Matrix::Input => {
                ensure(self.method.reads(Buffer::Input), || {
                    "reads x, which this method does not receive".to_owned()
                })?;
                ensure(self.program.input_size == width, || {
                    format!(
                        "multiplies x of {} features by a matrix of {width} rows",
                        self.program.input_size
                    )
                })
            }
            Matrix::Temp(t) => self.temp(t, width),
        }
    }

    /// A temporary that must be `width` wide and fit in scratch.
    fn temp(&self, t: Temp, width: usize) -> Check {
        ensure(t.width == width, || {
            format!("uses a temporary of width {} as {width} wide", t.width)
        })?;
        self.in_scratch(t)
    }

    fn in_scratch(&self, t: Temp) -> Check {
        ensure(self.method.reads(Buffer::Scratch), || {
            "uses scratch, which this method does not receive".to_owned()
        })?;
        let end = t.offset.checked_add(t.width);
        ensure(
            end.is_some_and(|end| end <= self.program.scratch_size) && t.width <= MAX_ROW,
            || {
                format!(
                    "uses a temporary at {} of width {}, beyond the {} floats of a scratch row",
                    t.offset, t.width, self.program.scratch_size
                )
            },
        )
    }

    /// Two product operands must not overlap, as the kernel writes one.
    fn disjoint(&self, a: Matrix, out: Temp) -> Check {
        let Matrix::Temp(a) = a else { return Ok(()) };
        ensure(
            a.offset + a.width <= out.offset || out.offset + out.width <= a.offset,
            || "multiplies into a temporary that overlaps its operand".to_owned(),
        )
    }

    fn param_matrix(&self, w: ParamMatrix) -> Check {
        let len = w.rows.checked_mul(w.cols);
        self.param_vector(w.offset, len.unwrap_or(usize::MAX))
            .map_err(|why| format!("{why} (a {}x{} matrix)", w.rows, w.cols))
    }

    /// `width` parameters from `offset`.
    fn param_vector(&self, offset: usize, width: usize) -> Check {
        let count = self.program.param_count;
        ensure(
            offset.checked_add(width).is_some_and(|end| end <= count),
            || {
                format!(
                    "uses parameters {offset}..{}, but there are {count}",
                    offset.saturating_add(width)
                )
            },
        )
    }

    fn fused(&self, fused: &FusedLoop) -> Check {
        let width = fused.width;
        ensure(width <= MAX_ROW, || format!("loops over {width} columns"))?;
        let defined = |r: Reg, n: usize| {
            ensure((r.0 as usize) < n, || {
                format!("uses {r} before it is defined")
            })
        };
        for (n, op) in fused.ops.iter().enumerate() {
            match *op {
                LoopOp::Load(view) => self.view(view, width, false)?,
                LoopOp::Param(offset) => self.param_vector(offset, width)?,
                LoopOp::LoadScalar(view) => self.view(view, width.min(1), false)?,
                LoopOp::ParamScalar(offset) => self.param_vector(offset, width.min(1))?,
                LoopOp::Const(_) => {}
                LoopOp::Unary(_, a) => defined(a, n)?,
                LoopOp::Binary(_, a, b) => {
                    defined(a, n)?;
                    defined(b, n)?;
                }
            }
        }
        for sink in &fused.sinks {
            match *sink {
                Sink::Store(view, r) => {
                    self.view(view, width, true)?;
                    defined(r, fused.ops.len())?;
                }
                Sink::AccumulateGrad(offset, r) => {
                    ensure(self.method.has_grads(), || {
                        "adds to parameter gradients, which this method does not receive".to_owned()
                    })?;
                    self.param_vector(offset, width)?;
                    defined(r, fused.ops.len())?;
                }
            }
        }
        Ok(())
    }

    /// A view of `width` columns, read or written.
    fn view(&self, view: View, width: usize, write: bool) -> Check {
        let buffer = match view {
            View::Rows { buffer, .. } => buffer,
            View::Temp { .. } => Buffer::Scratch,
        };
        let allowed = if write {
            self.method.writes(buffer)
        } else {
            self.method.reads(buffer)
        };
        ensure(allowed, || {
            format!(
                "{} {buffer:?}, which this method {}",
                if write { "writes" } else { "reads" },
                if write {
                    "does not receive mutably"
                } else {
                    "does not receive"
                }
            )
        })?;
        let (named, row, col) = match view {
            View::Rows {
                buffer,
                stride,
                col,
            } => {
                let row = self.row_width(buffer).ok_or_else(|| {
                    "addresses scratch by rows rather than through a temporary".to_owned()
                })?;
                ensure(stride == row, || {
                    format!(
                        "addresses {buffer:?} with stride {stride}, but its rows are {row} wide"
                    )
                })?;
                (Some(buffer), row, col)
            }
            View::Temp { temp, col } => {
                self.in_scratch(temp)?;
                (None, temp.width, col)
            }
        };
        ensure(
            col.checked_add(width).is_some_and(|end| end <= row) && row <= MAX_ROW,
            || {
                let what = named.map_or("a temporary".to_owned(), |b| format!("{b:?}"));
                format!(
                    "uses columns {col}..{} of {what}, whose rows are {row} wide",
                    col.saturating_add(width)
                )
            },
        )
    }

    /// The row width of a buffer other than scratch.
    fn row_width(&self, buffer: Buffer) -> Option<usize> {
        let p = self.program;
        match buffer {
            Buffer::Input => Some(p.input_size),
            Buffer::StatePrev | Buffer::StateNext | Buffer::GradState | Buffer::GradStatePrev => {
                Some(p.state_size)
            }
            Buffer::Tape => Some(p.tape_size),
            Buffer::Scratch => None,
        }
    }
}
