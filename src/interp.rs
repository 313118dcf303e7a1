//! The interpreter: runs a verified schedule on a cell.

use bptt_runtime::{Arena, ArenaLayout, Cell, Execution, Gradients, Readout, Targets};
use ndarray::{ArrayView2, ArrayView3};

use crate::error::Error;
use crate::lower::{Call, Lowered, lower};
use crate::schedule::{Schedule, verify};

/// The arena layout of a schedule's checkpoint stack for a cell, a read-out
/// and a batch size; fails if the cell's tape exceeds the planned `alpha`.
pub fn arena_layout(
    schedule: &Schedule,
    cell: &dyn Cell,
    readout: &Readout,
    batch: usize,
) -> Result<ArenaLayout, Error> {
    let alpha = schedule.alpha();
    Ok(ArenaLayout::new(
        cell,
        readout,
        batch,
        (alpha.denominator(), alpha.numerator()),
        schedule.capacity().0,
    )?)
}

/// Runs a verified [`Schedule`] on any [`Cell`], owning the arena.
///
/// ```
/// use bptt::{Alpha, Budget, Interpreter, Plan, Policy, Schedule};
/// use bptt_runtime::{Cell, LossKind, Readout, Rng, Rnn, Targets};
/// use ndarray::{Array2, Array3};
///
/// let mut rng = Rng::new(1);
/// let cell = Rnn::new(3, 8, &mut rng);
/// let readout = Readout::new(LossKind::SquaredError, 8, 2, &mut rng);
/// let alpha = Alpha::new(cell.alpha()).unwrap();
/// let plan = Plan::new(Policy::Msm, alpha, 20, Budget::Units(4.0)).unwrap();
/// let mut interp = Interpreter::new(Schedule::from_plan(&plan), &cell, &readout, 5).unwrap();
/// let x = Array3::<f32>::zeros((20, 5, 3));
/// let y = Array3::<f32>::ones((20, 5, 2));
/// let h0 = Array2::<f32>::zeros((5, 8));
/// let mut grads = interp.gradients(&cell, &readout);
/// let loss = interp
///     .run(&cell, &readout, x.view(), h0.view(), Targets::Values(y.view()), &mut grads)
///     .unwrap();
/// assert!(loss > 0.0);
/// ```
#[derive(Debug)]
pub struct Interpreter {
    schedule: Schedule,
    lowered: Lowered,
    arena: Arena,
}

impl Interpreter {
    /// Verifies the schedule and allocates the arena for a cell, a read-out and
    /// a batch size.
    pub fn new(
        schedule: Schedule,
        cell: &dyn Cell,
        readout: &Readout,
        batch: usize,
    ) -> Result<Self, Error> {
        verify(&schedule)?;
        let layout = arena_layout(&schedule, cell, readout, batch)?;
        Ok(Interpreter {
            lowered: lower(&schedule),
            schedule,
            arena: Arena::new(layout),
        })
    }

    /// The schedule being run.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
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
    /// `inputs` is `[T, batch, input]`, `h0` is `[batch, state]`. The loss is
    /// the mean over batch rows and targeted steps; `grads` is overwritten with
    /// its gradients. Allocates nothing.
    pub fn run(
        &mut self,
        cell: &dyn Cell,
        readout: &Readout,
        inputs: ArrayView3<f32>,
        h0: ArrayView2<f32>,
        targets: Targets,
        grads: &mut Gradients,
    ) -> Result<f64, Error> {
        let len = self.schedule.len();
        let mut exec = Execution::start(
            cell,
            readout,
            &mut self.arena,
            len,
            inputs,
            h0,
            targets,
            grads,
        )?;
        let layout = *exec.layout();
        let at = |region| layout.offset(region);
        for call in &self.lowered.calls {
            match *call {
                Call::RestoreInitial { dst } => exec.restore_initial(at(dst)),
                Call::CopyState { src, dst } => exec.copy_state(at(src), at(dst)),
                Call::StateFromTape { tape, dst } => exec.state_from_tape(at(tape), at(dst)),
                Call::Forward { step, src, dst } => exec.forward(step, at(src), at(dst)),
                Call::ForwardTape {
                    step,
                    src,
                    tape,
                    dst,
                } => exec.forward_tape(step, at(src), at(tape), at(dst)),
                Call::Backward {
                    step,
                    tape,
                    grad,
                    grad_prev,
                } => exec.backward(step, at(tape), at(grad), at(grad_prev)),
            }
        }
        Ok(exec.finish(at(self.lowered.final_grad)))
    }
}
