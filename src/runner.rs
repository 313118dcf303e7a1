//! One schedule runner over any engine.
//!
//! A [`Runner`] owns a [`Verified`] schedule, its [`Lowered`] calls and the
//! [`Arena`] they address. Its constructor is the one place a schedule is
//! verified (if it is not already), its arena laid out and its calls lowered;
//! [`Runner::run`] starts an [`Execution`], hands it to the [`Engine`] and
//! finishes it. The engines are the interpreter
//! ([`Interpret`](crate::interp::Interpret), which walks the calls) and, with
//! the `jit` feature, compiled code (`bptt::jit::JitEngine`); a `Box<dyn
//! Engine>` is one too, for an engine chosen at run time.

use std::fmt;

use bptt_runtime::{Arena, ArenaLayout, Cell, Execution, Gradients, Readout, Targets};
use ndarray::{ArrayView2, ArrayView3};

use crate::error::Error;
use crate::lower::Lowered;
use crate::schedule::{Header, IntoVerified, Verified};

/// What runs a lowered schedule's calls on a started [`Execution`].
pub trait Engine: fmt::Debug {
    /// Runs every call of `lowered` (the calls the engine was built for) on
    /// `exec`, in order, and hands the execution back.
    fn run<'e>(&mut self, lowered: &Lowered, exec: Execution<'e>) -> Result<Execution<'e>, Error>;
}

impl<E: Engine + ?Sized> Engine for Box<E> {
    fn run<'e>(&mut self, lowered: &Lowered, exec: Execution<'e>) -> Result<Execution<'e>, Error> {
        (**self).run(lowered, exec)
    }
}

/// The arena layout of a schedule's checkpoint stack (what its header
/// promises) for a cell, a read-out and a batch size; fails if the cell's
/// tape exceeds the planned `alpha`.
pub fn arena_layout(
    header: &Header,
    cell: &dyn Cell,
    readout: &Readout,
    batch: usize,
) -> Result<ArenaLayout, Error> {
    let alpha = header.alpha;
    Ok(ArenaLayout::new(
        cell,
        readout,
        batch,
        (alpha.denominator(), alpha.numerator()),
        header.capacity.0,
    )?)
}

/// A verified schedule, lowered, with its arena and the engine that runs it.
#[derive(Debug)]
pub struct Runner<E> {
    schedule: Verified,
    lowered: Lowered,
    arena: Arena,
    engine: E,
}

impl<E: Engine> Runner<E> {
    /// Verifies the schedule (unless it is [`Verified`] already), lays out
    /// the arena for a cell, a read-out and a batch size, lowers the
    /// schedule and builds the engine from the calls and the layout.
    pub fn with_engine(
        schedule: impl IntoVerified,
        cell: &dyn Cell,
        readout: &Readout,
        batch: usize,
        engine: impl FnOnce(&Lowered, &ArenaLayout) -> Result<E, Error>,
    ) -> Result<Self, Error> {
        let schedule = schedule.into_verified()?;
        let layout = arena_layout(schedule.header(), cell, readout, batch)?;
        let lowered = Lowered::new(&schedule);
        let engine = engine(&lowered, &layout)?;
        Ok(Runner {
            schedule,
            lowered,
            arena: Arena::new(layout),
            engine,
        })
    }

    /// What the schedule being run promises.
    pub fn header(&self) -> &Header {
        self.schedule.header()
    }

    /// The schedule being run, with the verifier's report.
    pub fn verified(&self) -> &Verified {
        &self.schedule
    }

    /// The lowered calls the engine runs.
    pub fn lowered(&self) -> &Lowered {
        &self.lowered
    }

    /// How many calls one run makes.
    pub fn calls(&self) -> usize {
        self.lowered.count()
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The arena's layout (slot counts and sizes).
    pub fn layout(&self) -> &ArenaLayout {
        self.arena.layout()
    }

    /// Zeroed gradients of the right sizes.
    pub fn gradients(&self, cell: &dyn Cell, readout: &Readout) -> Gradients {
        Gradients::zeros(cell, readout, self.layout().batch)
    }

    /// One training step: the forward and backward passes of the schedule.
    ///
    /// `inputs` is `[T, batch, input]`, `h0` is `[batch, state]`. The cell and
    /// read-out must have the sizes the arena was laid out for, and the
    /// shapes must fit them ([`Error::Shape`] otherwise, before anything
    /// runs). The loss is the mean over batch rows and targeted steps;
    /// `grads` is overwritten with its gradients. Allocates nothing.
    pub fn run(
        &mut self,
        cell: &dyn Cell,
        readout: &Readout,
        inputs: ArrayView3<f32>,
        h0: ArrayView2<f32>,
        targets: Targets,
        grads: &mut Gradients,
    ) -> Result<f64, Error> {
        let len = self.header().len;
        let exec = Execution::start(
            cell,
            readout,
            &mut self.arena,
            len,
            inputs,
            h0,
            targets,
            grads,
        )?;
        let final_grad = exec.layout().offset(self.lowered.final_grad());
        let exec = self.engine.run(&self.lowered, exec)?;
        Ok(exec.finish(final_grad))
    }
}
