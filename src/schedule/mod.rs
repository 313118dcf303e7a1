//! Schedules: a plan expanded into straight-line operations over numbered
//! slots, so that a backend needs no planner at run time.

mod op;
mod stream;
mod verified;
mod verify;

use serde::Serialize;

pub use op::{HiddenSlot, Op, Source, Tape, TapeSlot};
pub use stream::{OpStream, StreamMemory};
pub use verified::{IntoVerified, Ops, Verified};
pub use verify::{MemorySizes, Report, Simulation, simulate, verify, verify_plan, verify_stream};

use crate::error::Error;
use crate::planner::Plan;
use crate::planner::memory::ensure_fits;
use crate::policy::Policy;
use crate::units::{Alpha, Ticks};

/// What a schedule promises, known before any of its operations: the
/// verifier checks the operations against it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Header {
    /// The policy the plan came from.
    pub policy: Policy,
    /// The tape-to-state ratio the plan used.
    #[serde(skip)]
    pub alpha: Alpha,
    /// The sequence length `T`.
    pub len: u32,
    /// The budget, in ticks, that the peak must stay within.
    #[serde(skip)]
    pub budget: Ticks,
    /// The forward steps the plan promised.
    pub forward_steps: u64,
    /// The checkpoint stack an executor allocates, in ticks: the plan's peak.
    #[serde(skip)]
    pub capacity: Ticks,
}

impl Header {
    /// The header of `plan`'s schedule.
    pub fn of(plan: &Plan) -> Self {
        Header {
            policy: plan.policy(),
            alpha: plan.alpha(),
            len: plan.seq_len(),
            budget: plan.budget(),
            forward_steps: plan.forward_steps(),
            capacity: plan.peak(),
        }
    }
}

/// A plan expanded into operations; build one with [`Schedule::from_plan`].
/// Long plans are better run from an [`OpStream`], which never holds them whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    #[serde(flatten)]
    header: Header,
    ops: Vec<Op>,
}

impl Schedule {
    /// Expands a plan (collecting its [`OpStream`]). Only its [`Verified`]
    /// form can be lowered and run.
    pub fn from_plan(plan: &Plan) -> Self {
        let stream = OpStream::new(plan);
        Schedule {
            header: *stream.header(),
            ops: stream.collect(),
        }
    }

    /// Expands a plan as [`Schedule::from_plan`] does, refusing up front
    /// (naming both figures) a schedule larger than the memory available.
    pub fn try_from_plan(plan: &Plan) -> Result<Self, Error> {
        let what = || {
            format!(
                "the {} schedule of {} forward steps",
                plan.policy(),
                plan.forward_steps()
            )
        };
        ensure_fits(what, Self::bytes_bound(plan))?;
        Ok(Self::from_plan(plan))
    }

    /// An upper bound on the bytes of `plan`'s expanded operations: one op per
    /// forward and backward step, and at most four more (restore, store,
    /// free, backward of a tape) per segment, of which there are at most `2T`.
    pub fn bytes_bound(plan: &Plan) -> u64 {
        let ops = plan.forward_steps() + 9 * u64::from(plan.seq_len());
        ops.saturating_mul(std::mem::size_of::<Op>() as u64)
    }

    /// What the schedule promises.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The policy the plan came from.
    pub fn policy(&self) -> Policy {
        self.header.policy
    }

    /// The tape-to-state ratio the plan used.
    pub fn alpha(&self) -> Alpha {
        self.header.alpha
    }

    /// The sequence length `T`.
    pub fn seq_len(&self) -> u32 {
        self.header.len
    }

    /// The budget, in ticks, that the peak must stay within.
    pub fn budget(&self) -> Ticks {
        self.header.budget
    }

    /// The forward steps the plan promised: `Q(T, m)` for dynamic programs.
    pub fn forward_steps(&self) -> u64 {
        self.header.forward_steps
    }

    /// The checkpoint stack an executor allocates, in ticks: the plan's peak.
    /// Slots are named by their offset in it.
    pub fn capacity(&self) -> Ticks {
        self.header.capacity
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Replaces the operations (for tests that tamper with schedules, and for
    /// tools that rewrite them); the result must be [`Verified`] again
    /// before anything runs it.
    pub fn with_ops(mut self, ops: Vec<Op>) -> Self {
        self.ops = ops;
        self
    }
}
