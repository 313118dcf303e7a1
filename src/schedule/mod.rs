//! Schedules: a plan expanded into straight-line operations over numbered
//! slots, so that a backend needs no planner at run time.

mod expand;
mod op;
mod verify;

use serde::Serialize;

pub use op::{HiddenSlot, Op, Source, Tape, TapeSlot};
pub use verify::{MemorySizes, Report, Simulation, simulate, verify};

use crate::planner::Plan;
use crate::policy::Policy;
use crate::units::{Alpha, Ticks};

/// A plan expanded into operations; build one with [`Schedule::from_plan`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    policy: Policy,
    #[serde(skip)]
    alpha: Alpha,
    len: u32,
    #[serde(skip)]
    budget: Ticks,
    forward_steps: u64,
    #[serde(skip)]
    capacity: Ticks,
    ops: Vec<Op>,
}

impl Schedule {
    /// Expands a plan. The result is checked with [`verify`] before any
    /// backend runs it.
    pub fn from_plan(plan: &Plan) -> Self {
        expand::expand(plan)
    }

    /// The policy the plan came from.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The tape-to-state ratio the plan used.
    pub fn alpha(&self) -> Alpha {
        self.alpha
    }

    /// The sequence length `T`.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the schedule is for an empty sequence (never).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The budget, in ticks, that the peak must stay within.
    pub fn budget(&self) -> Ticks {
        self.budget
    }

    /// The forward steps the plan promised: `Q(T, m)` for dynamic programs.
    pub fn forward_steps(&self) -> u64 {
        self.forward_steps
    }

    /// The checkpoint stack an executor allocates, in ticks: the plan's peak.
    /// Slots are named by their offset in it.
    pub fn capacity(&self) -> Ticks {
        self.capacity
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Replaces the operations (for tests that tamper with schedules, and for
    /// tools that rewrite them); the result must be verified again.
    pub fn with_ops(mut self, ops: Vec<Op>) -> Self {
        self.ops = ops;
        self
    }
}
