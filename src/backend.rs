//! Backends behind one interface, chosen at run time.

use std::fmt;
use std::str::FromStr;

use bptt_runtime::{ArenaLayout, Cell, Gradients, Readout, Targets};
use ndarray::{ArrayView2, ArrayView3};

use crate::error::Error;
use crate::interp::Interpreter;
use crate::jit::CompiledSchedule;
use crate::schedule::Schedule;

/// What runs a schedule: the interpreter or JIT-compiled code.
pub trait Backend {
    /// One training step; see [`Interpreter::run`].
    fn run(
        &mut self,
        cell: &dyn Cell,
        readout: &Readout,
        inputs: ArrayView3<f32>,
        h0: ArrayView2<f32>,
        targets: Targets,
        grads: &mut Gradients,
    ) -> Result<f64, Error>;

    /// The arena's layout: slot counts and sizes.
    fn layout(&self) -> &ArenaLayout;
}

impl Backend for Interpreter {
    fn run(
        &mut self,
        cell: &dyn Cell,
        readout: &Readout,
        inputs: ArrayView3<f32>,
        h0: ArrayView2<f32>,
        targets: Targets,
        grads: &mut Gradients,
    ) -> Result<f64, Error> {
        Interpreter::run(self, cell, readout, inputs, h0, targets, grads)
    }

    fn layout(&self) -> &ArenaLayout {
        Interpreter::layout(self)
    }
}

impl Backend for CompiledSchedule {
    fn run(
        &mut self,
        cell: &dyn Cell,
        readout: &Readout,
        inputs: ArrayView3<f32>,
        h0: ArrayView2<f32>,
        targets: Targets,
        grads: &mut Gradients,
    ) -> Result<f64, Error> {
        CompiledSchedule::run(self, cell, readout, inputs, h0, targets, grads)
    }

    fn layout(&self) -> &ArenaLayout {
        CompiledSchedule::layout(self)
    }
}

/// The backends a user can pick by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// [`Interpreter`]: walks the lowered schedule.
    Interpreter,
    /// [`CompiledSchedule`]: the schedule compiled to native code by Cranelift.
    Jit,
}

impl BackendKind {
    /// Every backend that runs a schedule chosen at run time.
    pub const ALL: [BackendKind; 2] = [BackendKind::Interpreter, BackendKind::Jit];
}

impl BackendKind {
    /// Verifies the schedule and builds the backend for a cell, a read-out and
    /// a batch size.
    pub fn build(
        self,
        schedule: Schedule,
        cell: &dyn Cell,
        readout: &Readout,
        batch: usize,
    ) -> Result<Box<dyn Backend>, Error> {
        Ok(match self {
            BackendKind::Interpreter => Box::new(Interpreter::new(schedule, cell, readout, batch)?),
            BackendKind::Jit => {
                Box::new(CompiledSchedule::compile(schedule, cell, readout, batch)?)
            }
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
