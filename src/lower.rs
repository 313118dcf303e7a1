//! Lowering: a schedule's operations become calls on arena regions.
//!
//! The schedule names slots and leaves the running state implicit; a backend
//! needs to know which buffer each call reads and writes. Lowering resolves
//! that statically: the running state and the gradient each ping-pong between
//! two buffers, and which one is current after every operation is known at
//! compile time. `Free` operations vanish. Every backend (the interpreter, the
//! `#[bptt]` macro, the JIT) runs the same lowered calls on
//! [`bptt_runtime::Execution`].

use bptt_runtime::Region;

use crate::schedule::{Op, Schedule, Source, Tape};

/// One call on an [`Execution`](bptt_runtime::Execution), regions resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `dst := h[0]`.
    RestoreInitial {
        /// The state written.
        dst: Region,
    },
    /// `dst := src` (restoring or storing a hidden state).
    CopyState {
        /// The state read.
        src: Region,
        /// The state written.
        dst: Region,
    },
    /// `dst :=` the state that `tape` yields.
    StateFromTape {
        /// The tape read.
        tape: Region,
        /// The state written.
        dst: Region,
    },
    /// `dst := f(src, x[step])`.
    Forward {
        /// The step.
        step: u32,
        /// The state read.
        src: Region,
        /// The state written.
        dst: Region,
    },
    /// `dst := f(src, x[step])`, recording the tape.
    ForwardTape {
        /// The step.
        step: u32,
        /// The state read.
        src: Region,
        /// The tape written.
        tape: Region,
        /// The state written.
        dst: Region,
    },
    /// Backpropagate `step` from `tape`, `dL/dh[step]` at `grad`, writing
    /// `dL/dh[step-1]` at `grad_prev`.
    Backward {
        /// The step.
        step: u32,
        /// The tape read.
        tape: Region,
        /// The incoming gradient.
        grad: Region,
        /// The outgoing gradient.
        grad_prev: Region,
    },
}

/// A lowered schedule: the calls, and where `dL/dh[0]` ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lowered {
    /// The calls, in order.
    pub calls: Vec<Call>,
    /// The gradient buffer holding `dL/dh[0]` at the end.
    pub final_grad: Region,
}

fn tape_region(tape: Tape) -> Region {
    match tape {
        Tape::Work => Region::WorkTape,
        Tape::Slot(slot) => Region::Tape(slot.0),
    }
}

/// Lowers a schedule's operations to calls on regions.
pub fn lower(schedule: &Schedule) -> Lowered {
    let (mut run, mut grad) = (0u8, 0u8);
    let mut calls = Vec::with_capacity(schedule.ops().len());
    for op in schedule.ops() {
        let now = Region::Run(run);
        let next = Region::Run(1 - run);
        let call = match *op {
            Op::Restore {
                from: Source::Initial,
                ..
            } => Call::RestoreInitial { dst: now },
            Op::Restore {
                from: Source::Hidden(slot),
                ..
            } => Call::CopyState {
                src: Region::Hidden(slot.0),
                dst: now,
            },
            Op::Restore {
                from: Source::Tape(slot),
                ..
            } => Call::StateFromTape {
                tape: Region::Tape(slot.0),
                dst: now,
            },
            Op::Forward { step } => {
                run = 1 - run;
                Call::Forward {
                    step,
                    src: now,
                    dst: next,
                }
            }
            Op::ForwardTape { step, tape } => {
                run = 1 - run;
                Call::ForwardTape {
                    step,
                    src: now,
                    tape: tape_region(tape),
                    dst: next,
                }
            }
            Op::StoreHidden { slot, .. } => Call::CopyState {
                src: now,
                dst: Region::Hidden(slot.0),
            },
            Op::Backward { step, tape } => {
                grad = 1 - grad;
                Call::Backward {
                    step,
                    tape: tape_region(tape),
                    grad: Region::Grad(1 - grad),
                    grad_prev: Region::Grad(grad),
                }
            }
            Op::FreeHidden(_) | Op::FreeTape(_) => continue,
        };
        calls.push(call);
    }
    Lowered {
        calls,
        final_grad: Region::Grad(grad),
    }
}
