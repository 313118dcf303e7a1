//! [`Native`] as the [`CellEngine`] of a [`JitCell`](super::JitCell): the
//! checked arrays of a frame passed as pointers to the method's compiled
//! kernel.

use crate::cell_lang::{Buf, Buffer, CellEngine, CellProgram, Frame, Method};

use super::native::{Buffers, Native};

/// The pointer to a buffer of the frame, null if the method has none.
fn ptr(frame: &mut Frame<'_>, buffer: Buffer) -> *mut f32 {
    match &mut frame.buffers[Frame::index(buffer)] {
        Buf::Absent => std::ptr::null_mut(),
        // Read only: `check` rejected kernels that write a buffer their
        // method receives read-only.
        Buf::Read(s) => s.as_ptr().cast_mut(),
        Buf::Write(s) => s.as_mut_ptr(),
    }
}

impl CellEngine for Native {
    fn run(&self, _program: &CellProgram, method: Method, mut frame: Frame<'_>) {
        let args = Buffers {
            rows: frame.rows,
            x: ptr(&mut frame, Buffer::Input),
            state_prev: ptr(&mut frame, Buffer::StatePrev),
            state_next: ptr(&mut frame, Buffer::StateNext),
            tape: ptr(&mut frame, Buffer::Tape),
            grad_state: ptr(&mut frame, Buffer::GradState),
            grad_state_prev: ptr(&mut frame, Buffer::GradStatePrev),
            params: frame.params.as_ptr(),
            grads: if method.has_grads() {
                frame.grads.as_mut_ptr()
            } else {
                std::ptr::null_mut()
            },
            scratch: ptr(&mut frame, Buffer::Scratch),
            packed: frame.packed.all().as_ptr(),
            packed_at: frame.packed.starts().as_ptr(),
        };
        // SAFETY: every pointer comes from a slice of `frame.rows` rows of
        // its buffer's width in the program (checked by `ProgramCell` with
        // the runtime's shape helpers; scratch has at least `scratch_size`
        // columns), the parameters have `param_count` floats (checked when
        // the cell was made), the packed copies are those of the program's
        // `packings` with their starts, the mutable ones come from `&mut` slices that
        // nothing else borrows, and each method passes every buffer its
        // kernel may use (the others are null, and `check` rejected programs
        // whose kernels use them or write a buffer received read-only).
        unsafe { self.run(method, &args) }
    }
}
