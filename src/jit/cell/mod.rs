//! A Cranelift JIT for derived cells: a [`CellProgram`] compiled to native
//! code, run as a [`bptt_runtime::Cell`].
//!
//! [`JitCell::compile`] checks that the program stays within the arrays its
//! methods receive ([`Checked`]), then compiles
//! its five kernels (`forward`, `forward_tape`, `state_from_tape`,
//! `backward`, `backward_deferred`) into five functions of one signature,
//! `fn(rows, x, state_prev, state_next, tape, grad_state, grad_state_prev,
//! params, grads, scratch)`. Matrix products call the
//! runtime's `gemm_*_acc` through shims; each fused loop becomes a loop over
//! rows and, inside, over columns in interleaved `f32x4` vectors, with
//! `sigmoid`, `tanh` and `exp` inline, operation by operation those of
//! `bptt_runtime::kernels`. So a `JitCell` computes bitwise what the
//! interpreter [`DerivedCell`](crate::cell_lang::DerivedCell) computes, for
//! every input. [`emit_cell_clif`] prints the kernels' Cranelift IR.
//!
//! ```
//! use bptt::cell_lang::{CellDef, DerivedCell};
//! use bptt::jit::cell::JitCell;
//! use bptt_runtime::{Cell, Rng};
//! use ndarray::Array2;
//!
//! let def = CellDef::parse_str(include_str!("../../../cells/gru.cell")).unwrap();
//! let program = def.compile(&[("input", 3), ("hidden", 8)]).unwrap();
//! let derived = DerivedCell::new(program.clone(), &mut Rng::new(1));
//! let jit = JitCell::compile(&program, derived.params().to_vec()).unwrap();
//!
//! let x = Array2::from_shape_fn((4, 3), |(b, i)| (b as f32 - i as f32) / 4.0);
//! let h = Array2::<f32>::zeros((4, 8));
//! let mut scratch = Array2::zeros((4, jit.scratch_size()));
//! let (mut want, mut got) = (Array2::zeros((4, 8)), Array2::zeros((4, 8)));
//! derived.forward(x.view(), h.view(), want.view_mut(), scratch.view_mut());
//! jit.forward(x.view(), h.view(), got.view_mut(), scratch.view_mut());
//! assert_eq!(got, want);
//! ```

mod act;
mod fused;
mod gemm;
mod kernel;
mod native;
mod reduce;
mod run;
mod text;

use bptt_runtime::Rng;

use crate::cell_lang::{CellProgram, Checked, ProgramCell};
use crate::error::Error;
pub use native::Native;

/// A cell program compiled to native code, with its parameters: a
/// [`bptt_runtime::Cell`] that owns its code and frees it when dropped.
///
/// Its methods check every array's shape against the program's sizes and
/// panic with a message naming the method, the array and both shapes, as
/// the runtime's cells do ([`ProgramCell`]).
pub type JitCell = ProgramCell<Native>;

impl JitCell {
    /// Compiles `program` with the flat parameter vector `params`.
    ///
    /// `params` must have `program.param_count` floats ([`Error::Shape`]
    /// otherwise). A program whose kernels would address memory outside the
    /// arrays their methods receive, write one received read-only, use a
    /// register before defining it or multiply into an operand, or a
    /// Cranelift failure, returns [`Error::Codegen`].
    pub fn compile(program: &CellProgram, params: Vec<f32>) -> Result<JitCell, Error> {
        if params.len() != program.param_count {
            return Err(Error::Shape {
                what: "the cell's parameters",
                expected: vec![program.param_count],
                got: vec![params.len()],
            });
        }
        let checked = Checked::new(program)
            .map_err(|why| Error::Codegen(format!("cell {}: {why}", program.name)))?;
        let native = Native::compile(checked)?;
        JitCell::with_engine(program.clone(), params, native).map_err(|e| Error::Shape {
            what: "the cell's parameters",
            expected: vec![e.expected],
            got: vec![e.got],
        })
    }

    /// Compiles `program` with fresh parameters from
    /// [`CellProgram::init_params`].
    pub fn new(program: &CellProgram, rng: &mut Rng) -> Result<JitCell, Error> {
        JitCell::compile(program, program.init_params(rng))
    }

    /// The Cranelift IR of the five kernels, as [`emit_cell_clif`] prints it.
    pub fn clif(&self) -> Result<String, Error> {
        text::render(self.program(), self.engine().config())
    }
}

/// Compiles `program` (with zero parameters) and returns the Cranelift IR
/// of its five kernels as text, each headed by a comment with its method's
/// name; the code is freed on return. Errors as [`JitCell::compile`].
pub fn emit_cell_clif(program: &CellProgram) -> Result<String, Error> {
    JitCell::compile(program, vec![0.0; program.param_count])?.clif()
}
