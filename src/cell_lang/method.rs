//! The methods of a cell that a program's kernels implement, and the
//! buffers each one receives.

use super::program::{Buffer, CellProgram, Kernel};

/// A [`Cell`](bptt_runtime::Cell) method with a kernel of its own; the
/// discriminant indexes [`Method::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `forward`.
    Forward,
    /// `forward_tape`.
    ForwardTape,
    /// `state_from_tape`.
    StateFromTape,
    /// `backward`.
    Backward,
    /// `backward_deferred`: `backward` without the program's deferred
    /// weight gradients.
    BackwardDeferred,
}

impl Method {
    /// Every method, in the order of [`CellProgram::kernels`].
    pub const ALL: [Method; 5] = [
        Method::Forward,
        Method::ForwardTape,
        Method::StateFromTape,
        Method::Backward,
        Method::BackwardDeferred,
    ];

    /// The method's name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Forward => "forward",
            Method::ForwardTape => "forward_tape",
            Method::StateFromTape => "state_from_tape",
            Method::Backward => "backward",
            Method::BackwardDeferred => "backward_deferred",
        }
    }

    /// The method's kernel in `program`.
    pub fn kernel(self, program: &CellProgram) -> &Kernel {
        match self {
            Method::Forward => &program.forward,
            Method::ForwardTape => &program.forward_tape,
            Method::StateFromTape => &program.state_from_tape,
            Method::Backward => &program.backward,
            Method::BackwardDeferred => &program.backward_deferred,
        }
    }

    /// Whether the method receives `buffer`.
    pub fn reads(self, buffer: Buffer) -> bool {
        use Buffer::*;
        match self {
            Method::Forward => matches!(buffer, Input | StatePrev | StateNext | Scratch),
            Method::ForwardTape => matches!(buffer, Input | StatePrev | StateNext | Tape | Scratch),
            Method::StateFromTape => matches!(buffer, Tape | StateNext | Scratch),
            Method::Backward | Method::BackwardDeferred => {
                matches!(buffer, Input | Tape | GradState | GradStatePrev | Scratch)
            }
        }
    }

    /// Whether the method may write `buffer` (it receives it mutably).
    pub fn writes(self, buffer: Buffer) -> bool {
        use Buffer::*;
        match self {
            Method::Forward => matches!(buffer, StateNext | Scratch),
            Method::ForwardTape => matches!(buffer, StateNext | Tape | Scratch),
            Method::StateFromTape => matches!(buffer, StateNext | Scratch),
            Method::Backward | Method::BackwardDeferred => {
                matches!(buffer, GradStatePrev | Scratch)
            }
        }
    }

    /// Whether the method receives the parameter gradients (the backward
    /// methods).
    pub fn has_grads(self) -> bool {
        matches!(self, Method::Backward | Method::BackwardDeferred)
    }
}
