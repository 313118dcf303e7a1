//! [`JitCell`] as a [`Cell`]: every array's shape checked with the runtime's
//! helpers, then one call of the method's compiled kernel.

use bptt_runtime::Cell;
use bptt_runtime::shape::{check_grads, rows, rows_mut, scratch_rows};
use ndarray::{ArrayView2, ArrayViewMut2};

use super::JitCell;
use super::method::Method;
use super::native::Buffers;

impl JitCell {
    /// Runs `method`'s kernel on `args`, whose arrays were checked against
    /// the program's sizes; the parameters are added here.
    fn call(&self, method: Method, mut args: Buffers) {
        args.params = self.params.as_ptr();
        // SAFETY: every pointer comes from a slice of `args.rows` rows of
        // its buffer's width in the program (checked by the callers with
        // the runtime's shape helpers; scratch has at least `scratch_size`
        // columns), the parameters have `param_count` floats (`compile`
        // checked), the mutable ones come from `&mut` slices that nothing
        // else borrows, and each method passes every buffer its kernel may
        // use (the others are null, and `check` rejected programs whose
        // kernels use them or write a buffer received read-only).
        unsafe { self.native.run(method, &args) }
    }
}

impl Cell for JitCell {
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
        &mut self.params
    }

    fn forward(
        &self,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        h_next: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    ) {
        const WHAT: &str = "JitCell::forward";
        let p = &self.program;
        let n = x.nrows();
        let mut args = Buffers::rows(n);
        args.x = rows(WHAT, "x", x, n, p.input_size).as_ptr();
        args.state_prev = rows(WHAT, "h_prev", h_prev, n, p.state_size).as_ptr();
        args.state_next = rows_mut(WHAT, "h_next", h_next, n, p.state_size).as_mut_ptr();
        args.scratch = scratch_rows(WHAT, scratch, n, p.scratch_size).as_mut_ptr();
        self.call(Method::Forward, args);
    }

    fn forward_tape(
        &self,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        tape: ArrayViewMut2<f32>,
        h_next: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    ) {
        const WHAT: &str = "JitCell::forward_tape";
        let p = &self.program;
        let n = x.nrows();
        let mut args = Buffers::rows(n);
        args.x = rows(WHAT, "x", x, n, p.input_size).as_ptr();
        args.state_prev = rows(WHAT, "h_prev", h_prev, n, p.state_size).as_ptr();
        args.tape = rows_mut(WHAT, "tape", tape, n, p.tape_size).as_mut_ptr();
        args.state_next = rows_mut(WHAT, "h_next", h_next, n, p.state_size).as_mut_ptr();
        args.scratch = scratch_rows(WHAT, scratch, n, p.scratch_size).as_mut_ptr();
        self.call(Method::ForwardTape, args);
    }

    fn state_from_tape(&self, tape: ArrayView2<f32>, h: ArrayViewMut2<f32>) {
        const WHAT: &str = "JitCell::state_from_tape";
        let p = &self.program;
        let n = tape.nrows();
        let mut args = Buffers::rows(n);
        // Read only: `check` rejected kernels that write the tape here.
        args.tape = rows(WHAT, "tape", tape, n, p.tape_size).as_ptr().cast_mut();
        args.state_next = rows_mut(WHAT, "h", h, n, p.state_size).as_mut_ptr();
        self.call(Method::StateFromTape, args);
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
        const WHAT: &str = "JitCell::backward";
        let p = &self.program;
        let n = x.nrows();
        check_grads(WHAT, grads, p.param_count);
        let mut args = Buffers::rows(n);
        args.x = rows(WHAT, "x", x, n, p.input_size).as_ptr();
        args.tape = rows(WHAT, "tape", tape, n, p.tape_size).as_ptr().cast_mut();
        args.grad_state = rows(WHAT, "dh", dh, n, p.state_size).as_ptr();
        args.grad_state_prev = rows_mut(WHAT, "dh_prev", dh_prev, n, p.state_size).as_mut_ptr();
        args.grads = grads.as_mut_ptr();
        args.scratch = scratch_rows(WHAT, scratch, n, p.scratch_size).as_mut_ptr();
        self.call(Method::Backward, args);
    }
}
