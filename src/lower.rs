//! Lowering: a schedule's operations become calls on arena regions.
//!
//! The schedule names slots and leaves the running state implicit; a backend
//! needs to know which buffer each call reads and writes. Lowering resolves
//! that statically: the running state and the gradient each ping-pong between
//! two buffers, and which one is current after every operation is known at
//! compile time. `Free` operations vanish. Every backend (the interpreter, the
//! `#[bptt]` macro, the JIT) runs the same lowered calls on
//! [`bptt_runtime::Execution`].

use std::sync::Arc;

use bptt_runtime::Region;

use crate::planner::{Plan, Weights};
use crate::schedule::{Op, OpStream, Ops, Source, StreamMemory, Tape, Verified};

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

/// A verified schedule lowered: the calls, and where `dL/dh[0]` ends up.
///
/// Made only from a [`Verified`] schedule, so the calls an engine runs are
/// those of a proved schedule. A listed schedule's calls are listed; a
/// streamed one's are lowered again from its plan's stream at every run
/// ([`Lowered::for_each`]), in memory of the recursion's depth.
#[derive(Debug, Clone)]
pub struct Lowered {
    calls: Calls,
    count: usize,
    final_grad: Region,
}

#[derive(Debug, Clone)]
enum Calls {
    Listed(Vec<Call>),
    Streamed(Arc<Plan>),
}

fn tape_region(tape: Tape) -> Region {
    match tape {
        Tape::Work => Region::WorkTape,
        Tape::Slot(slot) => Region::Tape(slot.0),
    }
}

/// The lowering's state between operations: which running-state and
/// gradient buffer is current.
#[derive(Debug, Clone, Copy, Default)]
struct Lowering {
    run: u8,
    grad: u8,
}

impl Lowering {
    /// The call of one operation (none for a `Free`), moving the ping-pong on.
    fn call(&mut self, op: Op) -> Option<Call> {
        let now = Region::Run(self.run);
        let next = Region::Run(1 - self.run);
        Some(match op {
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
                self.run = 1 - self.run;
                Call::Forward {
                    step,
                    src: now,
                    dst: next,
                }
            }
            Op::ForwardTape { step, tape } => {
                self.run = 1 - self.run;
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
                self.grad = 1 - self.grad;
                Call::Backward {
                    step,
                    tape: tape_region(tape),
                    grad: Region::Grad(1 - self.grad),
                    grad_prev: Region::Grad(self.grad),
                }
            }
            Op::FreeHidden(_) | Op::FreeTape(_) => return None,
        })
    }

    /// The gradient buffer that holds the last gradient written.
    fn final_grad(self) -> Region {
        Region::Grad(self.grad)
    }
}

impl Lowered {
    /// Lowers a verified schedule's operations to calls on regions (a
    /// streamed schedule's in one pass that keeps none of them).
    pub fn new(schedule: &Verified) -> Self {
        let mut lowering = Lowering::default();
        let (calls, count) = match schedule.ops() {
            Ops::Streamed(plan) => {
                let count = OpStream::new(plan)
                    .filter_map(|op| lowering.call(op))
                    .count();
                (Calls::Streamed(Arc::clone(plan)), count)
            }
            Ops::Listed(listed) => {
                let calls: Vec<Call> = listed
                    .ops()
                    .iter()
                    .filter_map(|&op| lowering.call(op))
                    .collect();
                let count = calls.len();
                (Calls::Listed(calls), count)
            }
        };
        Lowered {
            calls,
            count,
            final_grad: lowering.final_grad(),
        }
    }

    /// Runs `f` on every call in order: a listed schedule's from its list, a
    /// streamed one's lowered from its plan's stream in `memory` (reused, so
    /// a run as deep as an earlier one allocates nothing).
    pub fn for_each(&self, memory: &mut StreamMemory, mut f: impl FnMut(Call)) {
        match &self.calls {
            Calls::Listed(calls) => calls.iter().copied().for_each(f),
            Calls::Streamed(plan) => {
                let mut lowering = Lowering::default();
                let mut stream = OpStream::reusing(plan, std::mem::take(memory));
                for op in stream.by_ref() {
                    if let Some(call) = lowering.call(op) {
                        f(call);
                    }
                }
                *memory = stream.into_memory();
            }
        }
    }

    /// The time of one run's calls under `weights`: the time-weighted
    /// planner's cost model, in which restoring `h[0]` is a copy (a weighted
    /// plan's schedule costs its table's cost and that first copy).
    pub fn cost(&self, weights: &Weights) -> f64 {
        let mut time = 0.0;
        self.for_each(&mut StreamMemory::default(), |call| {
            time += match call {
                Call::RestoreInitial { .. } | Call::CopyState { .. } => weights.copy,
                Call::StateFromTape { .. } => weights.from_tape,
                Call::Forward { .. } => weights.forward,
                Call::ForwardTape { .. } => weights.forward_tape,
                Call::Backward { .. } => weights.backward,
            }
        });
        time
    }

    /// How many calls one run makes.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The gradient buffer holding `dL/dh[0]` at the end.
    pub fn final_grad(&self) -> Region {
        self.final_grad
    }
}
