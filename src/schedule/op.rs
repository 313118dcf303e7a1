//! The operations of a schedule and the slots they name.

use std::fmt;

use serde::Serialize;

/// A slot that holds one hidden state, named by its offset in the checkpoint
/// stack in ticks (`1/den` of a hidden state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HiddenSlot(pub u32);

/// A slot that holds one tape, named by its offset in the checkpoint stack in
/// ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TapeSlot(pub u32);

/// Where a tape goes: a budgeted slot or the working tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Tape {
    /// The one working tape outside the budget, for the step about to be
    /// differentiated.
    Work,
    /// A checkpoint slot inside the budget.
    Slot(TapeSlot),
}

/// Where a stored hidden state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Source {
    /// `h[0]`, held by the caller.
    Initial,
    /// A hidden-state slot.
    Hidden(HiddenSlot),
    /// A tape slot (a tape also yields the state its step produced).
    Tape(TapeSlot),
}

/// One operation of a straight-line schedule. Steps are numbered `1..=T`;
/// state `h[k]` is the state after step `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Op {
    /// Set the running state to the stored `h[state]`.
    Restore {
        /// Where it is stored.
        from: Source,
        /// Which state it is.
        state: u32,
    },
    /// Advance the running state through `step`.
    Forward {
        /// The step computed.
        step: u32,
    },
    /// Advance the running state through `step`, recording its tape.
    ForwardTape {
        /// The step computed.
        step: u32,
        /// Where the tape goes.
        tape: Tape,
    },
    /// Copy the running state `h[state]` into a slot.
    StoreHidden {
        /// The slot written.
        slot: HiddenSlot,
        /// Which state it is.
        state: u32,
    },
    /// Backpropagate `step` from its tape and `dL/dh[step]`.
    Backward {
        /// The step differentiated.
        step: u32,
        /// Where its tape is.
        tape: Tape,
    },
    /// Mark a hidden-state slot free (no work at run time).
    FreeHidden(HiddenSlot),
    /// Mark a tape slot free (no work at run time).
    FreeTape(TapeSlot),
}

impl Op {
    /// Whether the op runs the cell forward (what `Q` counts).
    pub fn is_forward(&self) -> bool {
        matches!(self, Op::Forward { .. } | Op::ForwardTape { .. })
    }
}

impl fmt::Display for HiddenSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "H{}", self.0)
    }
}

impl fmt::Display for TapeSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{}", self.0)
    }
}

impl fmt::Display for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tape::Work => f.write_str("W"),
            Tape::Slot(slot) => slot.fmt(f),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Initial => f.write_str("h0"),
            Source::Hidden(slot) => slot.fmt(f),
            Source::Tape(slot) => slot.fmt(f),
        }
    }
}

impl fmt::Display for Op {
    /// One line per op, slots named by kind and offset: `H3` a hidden state at
    /// tick 3 of the checkpoint stack, `T0` a tape at tick 0, `W` the working
    /// tape.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Restore { from, state } => write!(f, "restore   h[{state}] <- {from}"),
            Op::Forward { step } => write!(f, "forward   h[{step}]"),
            Op::ForwardTape { step, tape } => write!(f, "forward*  h[{step}] tape -> {tape}"),
            Op::StoreHidden { slot, state } => write!(f, "store     h[{state}] -> {slot}"),
            Op::Backward { step, tape } => write!(f, "backward  step {step} with {tape}"),
            Op::FreeHidden(slot) => write!(f, "free      {slot}"),
            Op::FreeTape(slot) => write!(f, "free      {slot}"),
        }
    }
}
