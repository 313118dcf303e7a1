//! The engine of a schedule's runner, chosen at run time by name.

use std::fmt;
use std::str::FromStr;

use bptt_runtime::{Cell, Readout};

use crate::error::Error;
use crate::interp::Interpret;
use crate::jit::{JitEngine, JitOptions};
use crate::planner::Plan;
use crate::runner::{Engine, Runner};
use crate::schedule::Verified;

/// A runner whose engine was chosen at run time ([`BackendKind::build`]).
pub type Backend = Runner<Box<dyn Engine>>;

/// The backends a user can pick by name (serialised by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub enum BackendKind {
    /// [`Interpreter`](crate::Interpreter): walks the lowered schedule.
    Interpreter,
    /// [`CompiledSchedule`](crate::jit::CompiledSchedule): the schedule
    /// compiled to native code by Cranelift.
    Jit,
}

impl BackendKind {
    /// Every backend that runs a schedule chosen at run time.
    pub const ALL: [BackendKind; 2] = [BackendKind::Interpreter, BackendKind::Jit];

    /// Verifies `plan`'s schedule and builds its runner on this backend's
    /// engine for a cell, a read-out and a batch size. Both engines take the
    /// schedule streamed from the plan (verified in one pass, never listed):
    /// the interpreter lowers it again at each run, the JIT compiles it once
    /// as runs of calls.
    pub fn build(
        self,
        plan: &Plan,
        cell: &dyn Cell,
        readout: &Readout,
        batch: usize,
    ) -> Result<Backend, Error> {
        let schedule = Verified::stream(plan.clone())?;
        Runner::with_engine(schedule, cell, readout, batch, |lowered, layout| {
            Ok(match self {
                BackendKind::Interpreter => Box::<Interpret>::default() as Box<dyn Engine>,
                BackendKind::Jit => {
                    Box::new(JitEngine::compile(lowered, layout, JitOptions::default())?)
                }
            })
        })
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "interp" | "interpreter" => Ok(BackendKind::Interpreter),
            "jit" => Ok(BackendKind::Jit),
            other => Err(Error::UnknownBackend(other.to_string())),
        }
    }
}

impl From<BackendKind> for String {
    fn from(kind: BackendKind) -> String {
        kind.to_string()
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Interpreter => "interp",
            BackendKind::Jit => "jit",
        })
    }
}
