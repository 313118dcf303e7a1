//! The interpreter: a [`Runner`] whose engine walks the lowered calls.

use bptt_runtime::{Cell, Execution, Readout};

use crate::error::Error;
use crate::lower::{Call, Lowered};
use crate::runner::{Engine, Runner};
use crate::schedule::{IntoVerified, StreamMemory};

/// Runs a verified [`Schedule`](crate::Schedule) on any [`Cell`], owning
/// the arena: the [`Runner`] over the [`Interpret`] engine.
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
pub type Interpreter = Runner<Interpret>;

/// The interpreting engine: walks the lowered calls, one [`Execution`]
/// primitive each; a streamed schedule's it lowers from the plan's stream
/// as it goes, in memory it keeps between runs.
#[derive(Debug, Default)]
pub struct Interpret {
    memory: StreamMemory,
}

impl Engine for Interpret {
    fn run<'e>(
        &mut self,
        lowered: &Lowered,
        mut exec: Execution<'e>,
    ) -> Result<Execution<'e>, Error> {
        let layout = *exec.layout();
        let at = |region| layout.offset(region);
        lowered.for_each(&mut self.memory, |call| match call {
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
        });
        Ok(exec)
    }
}

impl Interpreter {
    /// Verifies the schedule (unless it is [`Verified`](crate::schedule::Verified)
    /// already; a [`Plan`](crate::Plan) is verified and run as a stream) and
    /// allocates the arena for a cell, a read-out and a batch size.
    pub fn new(
        schedule: impl IntoVerified,
        cell: &dyn Cell,
        readout: &Readout,
        batch: usize,
    ) -> Result<Self, Error> {
        Runner::with_engine(schedule, cell, readout, batch, |_, _| {
            Ok(Interpret::default())
        })
    }
}
