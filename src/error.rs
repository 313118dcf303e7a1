//! The one error type of bptt: every message is a single clear line.

use thiserror::Error;

use crate::policy::Policy;

/// Everything that can go wrong when planning, scheduling or executing.
#[derive(Debug, Error)]
pub enum Error {
    /// The sequence length was zero.
    #[error("the sequence length must be at least 1")]
    ZeroLength,
    /// The sequence length is beyond what bptt plans.
    #[error("the sequence length {0} is too long (at most {max})", max = crate::planner::MAX_LEN)]
    TooLong(u64),
    /// `alpha` below one, or not a number.
    #[error("alpha must be a number >= 1 (a tape is at least a hidden state), got {0}")]
    AlphaBelowOne(f64),
    /// `alpha` absurdly large.
    #[error("alpha {0} is too large (at most 1e6)")]
    AlphaTooLarge(f64),
    /// A budget that does not parse.
    #[error(
        "cannot read the budget '{0}': give units of hidden state (200) or a percentage of store-all (5%)"
    )]
    BadBudget(String),
    /// A budget outside the representable range.
    #[error("the budget {0} is out of range")]
    BudgetOutOfRange(f64),
    /// A policy name that does not exist.
    #[error("unknown policy '{0}': expected hsm, ism, msm, store-all, sqrt or interval:K")]
    UnknownPolicy(String),
    /// A cell definition with a mistake, or sizes it cannot take.
    #[error("{0}")]
    Cell(String),
    /// A file could not be read or written: what bptt was doing, and the
    /// system's error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (`cannot read the text genesis.txt`).
        what: String,
        /// Why the system refused.
        #[source]
        source: std::io::Error,
    },
    /// A file bptt will not use or cannot make, for a reason of its own (too
    /// large, not UTF-8, a directory, a figure that cannot be drawn).
    #[error("{0}")]
    File(String),
    /// A text with nothing in it.
    #[error("{0} is empty: a corpus needs at least one character")]
    EmptyText(String),
    /// A text whose training part is shorter than one training window (or
    /// whose held-out part has not two characters).
    #[error(
        "the text is too short for sequences of length {len}: its {part} part needs {need} characters and has {have}"
    )]
    TextTooShort {
        /// Which part of the text: `training` or `held-out`.
        part: &'static str,
        /// Characters it needs (`len + 1` for training, 2 held out).
        need: usize,
        /// Characters it has.
        have: usize,
        /// The sequence length asked for.
        len: u32,
    },
    /// A checkpoint that is corrupted or belongs to another run.
    #[error("checkpoint {0}")]
    Checkpoint(String),
    /// A backend name that does not exist.
    #[error("unknown backend '{0}': expected interp or jit")]
    UnknownBackend(String),
    /// The budget cannot hold the policy's checkpoints.
    #[error(
        "a budget of {budget} units is too small for {policy} at length {len} with alpha {alpha}: the smallest that works is {minimum}"
    )]
    Infeasible {
        /// The policy asked for.
        policy: Policy,
        /// The sequence length.
        len: u32,
        /// `alpha` as a float.
        alpha: f64,
        /// The budget given, in hidden-state units.
        budget: f64,
        /// The smallest budget that works, in hidden-state units.
        minimum: f64,
    },
    /// The dynamic program's table would be too large to hold.
    #[error(
        "the planning table would have {cells} cells (at most {max}): lower the length or the budget"
    )]
    TableTooLarge {
        /// Cells asked for.
        cells: u64,
        /// The limit.
        max: u64,
    },
    /// The schedule would need more forward steps than bptt counts.
    #[error(
        "{policy} at length {len} with {budget} units needs at least 2^30 forward steps: raise the budget ({minimum} units bring it below)"
    )]
    TooExpensive {
        /// The policy.
        policy: Policy,
        /// The sequence length.
        len: u32,
        /// The budget given, in units.
        budget: f64,
        /// A budget that works: the least the closed planner's bound proves
        /// sufficient ([`crate::Plan::sufficient_units`]).
        minimum: f64,
    },
    /// A schedule failed verification.
    #[error("schedule rejected by the verifier: {0}")]
    Verify(String),
    /// Code generation asked for the operations of a streamed schedule.
    #[error(
        "the schedule of T = {0} is streamed from its plan, not listed; code generation needs it listed (Schedule::from_plan)"
    )]
    Streamed(u32),
    /// Arrays whose shapes do not fit the cell or each other.
    #[error("shape mismatch for {what}: expected {expected:?}, got {got:?}")]
    Shape {
        /// What was being checked.
        what: &'static str,
        /// The shape that fits.
        expected: Vec<usize>,
        /// The shape that was given.
        got: Vec<usize>,
    },
    /// Cranelift could not compile a schedule or a cell's kernels.
    #[error("the JIT could not compile: {0}")]
    Codegen(String),
    /// A byte size that does not parse.
    #[error(
        "cannot read the size '{0}': give bytes (4096) or a number with a unit (256MiB, 1.5GB, 64k)"
    )]
    BadSize(String),
    /// A memory budget in bytes below what one step holds outside the checkpoints.
    #[error("a memory budget of {memory} bytes is smaller than the working set of {working} bytes")]
    MemoryBelowWorkingSet {
        /// The budget given, in bytes.
        memory: u64,
        /// The working set, in bytes.
        working: u64,
    },
    /// A byte budget without the sizes it is spent on.
    #[error(
        "--memory needs the sizes it is spent on: --state-bytes and --tape-bytes, or --hidden and --batch"
    )]
    MissingSizes,
    /// A size that must be positive was zero.
    #[error("{0} must be at least 1 byte")]
    ZeroSize(&'static str),
    /// No budget reaches the asked slowdown.
    #[error(
        "no budget reaches a slowdown of {asked}: {policy} at length {len} is at best {best:.4} (store-all is 1)"
    )]
    SlowdownUnreachable {
        /// The policy.
        policy: Policy,
        /// The sequence length.
        len: u32,
        /// The slowdown asked for.
        asked: f64,
        /// The least slowdown of the policy.
        best: f64,
    },
    /// A planning structure larger than the memory this machine has free.
    #[error("{what} would need {need} bytes, more than the {available} bytes available")]
    OutOfMemory {
        /// What would be built.
        what: String,
        /// Bytes it needs.
        need: u64,
        /// Bytes available.
        available: u64,
    },
    /// A kernel panicked inside JIT-compiled code; the run stopped there.
    #[error("a kernel panicked in JIT-compiled code: {0}")]
    KernelPanic(String),
    /// A command would need more memory than its limit, `--max-memory` or
    /// what is available (both figures, and the largest item, in the message).
    #[error("{0}")]
    MemoryLimit(String),
    /// A budget in bytes below what the plan of a policy with the fewest
    /// checkpoints needs (see [`crate::planner::plan_within`]).
    #[error("{0}")]
    MemoryTooSmall(MemoryShortfall),
    /// A flag out of range, or one that the other flags would ignore.
    #[error("{0}")]
    Flag(String),
}

/// A memory in bytes below the smallest plan of its policy and length: both
/// figures and what the smallest plan is made of, for each caller to word
/// in its own terms (a flag, an attribute argument).
#[derive(Debug, Clone, PartialEq, Error)]
#[error(
    "{memory} bytes are less than the {need} bytes that the smallest {policy} plan of T = {len} needs ({units:.1} units of checkpoints)"
)]
pub struct MemoryShortfall {
    /// The bytes given.
    pub memory: u64,
    /// The bytes the smallest plan needs.
    pub need: u128,
    /// The policy planned.
    pub policy: Policy,
    /// The sequence length.
    pub len: u32,
    /// The smallest plan's checkpoint peak, in hidden-state units.
    pub units: f64,
}

impl From<bptt_runtime::Mismatch> for Error {
    fn from(m: bptt_runtime::Mismatch) -> Self {
        Error::Shape {
            what: m.what,
            expected: m.expected,
            got: m.got,
        }
    }
}

impl Error {
    /// The [`Error::Io`] of `what` for a system error, for `map_err`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
