//! The engine of a schedule's runner, chosen at run time by name.

use std::fmt;
use std::str::FromStr;

use bptt_runtime::{Cell, Readout};

use crate::error::Error;
use crate::interp::Interpret;
use crate::jit::{JitEngine, JitOptions};
use crate::runner::{Engine, Runner};
use crate::schedule::IntoVerified;

/// A runner whose engine was chosen at run time ([`BackendKind::build`]).
pub type Backend = Runner<Box<dyn Engine>>;

/// The backends a user can pick by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Verifies the schedule (unless it is [`Verified`](crate::schedule::Verified)
    /// already) and builds the runner on this backend's engine for a cell, a
    /// read-out and a batch size.
    pub fn build(
        self,
        schedule: impl IntoVerified,
        cell: &dyn Cell,
        readout: &Readout,
        batch: usize,
    ) -> Result<Backend, Error> {
        Runner::with_engine(schedule, cell, readout, batch, |lowered, layout| {
            Ok(match self {
                BackendKind::Interpreter => Box::new(Interpret) as Box<dyn Engine>,
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

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Interpreter => "interp",
            BackendKind::Jit => "jit",
        })
    }
}
