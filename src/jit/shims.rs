//! The `extern "C"` functions that compiled code calls, one per kind of
//! lowered [`Call`].
//!
//! Compiled code holds a pointer to a [`RunFrame`] (the execution in progress and
//! a failure flag) and passes it to every shim with the call's step and arena
//! offsets. A shim forwards to the matching primitive of
//! [`Execution`], which bounds-checks every offset. Panics never cross into
//! compiled code: each shim catches them, records the message in the frame and
//! turns every later shim of the run into a no-op; the driver then returns an
//! error.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bptt_runtime::{ArenaLayout, Execution, Region};

use crate::error::Error;
use crate::lower::Call;

/// What compiled code receives a pointer to: one training step in progress,
/// and the message of the first kernel panic, if any.
pub(crate) struct RunFrame<'e> {
    exec: Execution<'e>,
    failure: Option<String>,
}

impl<'e> RunFrame<'e> {
    /// A frame around a started execution, with no failure yet.
    pub(crate) fn new(exec: Execution<'e>) -> Self {
        RunFrame {
            exec,
            failure: None,
        }
    }

    /// Whether a shim caught a panic.
    pub(crate) fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// The execution back, or the message of the panic that stopped it.
    pub(crate) fn into_result(self) -> Result<Execution<'e>, String> {
        match self.failure {
            None => Ok(self.exec),
            Some(message) => Err(message),
        }
    }
}

/// The shims, one per kind of [`Call`]; the discriminant indexes
/// [`Shim::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shim {
    RestoreInitial,
    CopyState,
    StateFromTape,
    Forward,
    ForwardTape,
    Backward,
}

impl Shim {
    /// Every shim, in the order compiled functions import them.
    pub(crate) const ALL: [Shim; 6] = [
        Shim::RestoreInitial,
        Shim::CopyState,
        Shim::StateFromTape,
        Shim::Forward,
        Shim::ForwardTape,
        Shim::Backward,
    ];

    /// The symbol name, as the IR shows it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Shim::RestoreInitial => "bptt_restore_initial",
            Shim::CopyState => "bptt_copy_state",
            Shim::StateFromTape => "bptt_state_from_tape",
            Shim::Forward => "bptt_forward",
            Shim::ForwardTape => "bptt_forward_tape",
            Shim::Backward => "bptt_backward",
        }
    }

    /// How many `i64` arguments follow the frame pointer.
    pub(crate) fn arity(self) -> usize {
        match self {
            Shim::RestoreInitial => 1,
            Shim::CopyState | Shim::StateFromTape => 2,
            Shim::Forward => 3,
            Shim::ForwardTape | Shim::Backward => 4,
        }
    }

    /// The address the JIT links calls of this shim to.
    pub(crate) fn address(self) -> *const u8 {
        match self {
            Shim::RestoreInitial => bptt_restore_initial as *const u8,
            Shim::CopyState => bptt_copy_state as *const u8,
            Shim::StateFromTape => bptt_state_from_tape as *const u8,
            Shim::Forward => bptt_forward as *const u8,
            Shim::ForwardTape => bptt_forward_tape as *const u8,
            Shim::Backward => bptt_backward as *const u8,
        }
    }
}

/// The arguments of one call after the frame pointer: at most four.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Args {
    values: [i64; 4],
    len: usize,
}

impl Args {
    /// The arguments, in the shim's parameter order.
    pub(crate) fn as_slice(&self) -> &[i64] {
        &self.values[..self.len]
    }
}

/// The offset of a region in `layout`, in floats from the arena base,
/// refusing a checkpoint that runs past the layout's stack (an error, never a
/// panic).
fn offset(layout: &ArenaLayout, region: Region) -> Result<i64, Error> {
    let checkpoint = match region {
        Region::Hidden(p) => Some(("hidden state", p, layout.ticks_per_state)),
        Region::Tape(p) => Some(("tape", p, layout.ticks_per_tape)),
        _ => None,
    };
    if let Some((kind, p, ticks)) = checkpoint
        && u64::from(p) + u64::from(ticks) > u64::from(layout.capacity_ticks)
    {
        return Err(Error::Verify(format!(
            "a call uses a {kind} at tick {p}, past the arena's stack of {} ticks",
            layout.capacity_ticks
        )));
    }
    i64::try_from(layout.offset(region))
        .map_err(|_| Error::Verify(format!("the offset of {region:?} does not fit in 64 bits")))
}

/// Which shim a call becomes and its arguments: the step (if any), then
/// region offsets in the order of the [`Execution`] primitive.
pub(crate) fn shim_args(call: &Call, layout: &ArenaLayout) -> Result<(Shim, Args), Error> {
    let at = |region| offset(layout, region);
    let (shim, values, len) = match *call {
        Call::RestoreInitial { dst } => (Shim::RestoreInitial, [at(dst)?, 0, 0, 0], 1),
        Call::CopyState { src, dst } => (Shim::CopyState, [at(src)?, at(dst)?, 0, 0], 2),
        Call::StateFromTape { tape, dst } => (Shim::StateFromTape, [at(tape)?, at(dst)?, 0, 0], 2),
        Call::Forward { step, src, dst } => {
            (Shim::Forward, [i64::from(step), at(src)?, at(dst)?, 0], 3)
        }
        Call::ForwardTape {
            step,
            src,
            tape,
            dst,
        } => (
            Shim::ForwardTape,
            [i64::from(step), at(src)?, at(tape)?, at(dst)?],
            4,
        ),
        Call::Backward {
            step,
            tape,
            grad,
            grad_prev,
        } => (
            Shim::Backward,
            [i64::from(step), at(tape)?, at(grad)?, at(grad_prev)?],
            4,
        ),
    };
    debug_assert_eq!(len, shim.arity());
    Ok((shim, Args { values, len }))
}

/// The text of a panic payload.
fn describe(payload: Box<dyn Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a kernel panicked".to_owned()
    }
}

/// Runs `body` on the frame's execution unless an earlier shim failed,
/// catching a panic into the frame.
///
/// # Safety
///
/// `frame` must point to a live [`RunFrame`] that nothing else accesses for the
/// duration of the call: the pointer the driver passes to compiled code.
unsafe fn guard<'e>(frame: *mut RunFrame<'e>, body: impl FnOnce(&mut Execution<'e>)) {
    // SAFETY: the caller guarantees `frame` is live and exclusive for this call.
    let frame = unsafe { &mut *frame };
    if frame.failure.is_some() {
        return;
    }
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| body(&mut frame.exec))) {
        frame.failure = Some(describe(payload));
    }
}

/// An offset from compiled code; a negative one panics (and is caught).
fn at(offset: i64) -> usize {
    usize::try_from(offset).expect("arena offsets are not negative")
}

/// A step from compiled code; one beyond `u32` panics (and is caught).
fn step(step: i64) -> u32 {
    u32::try_from(step).expect("steps fit in 32 bits")
}

/// `exec.restore_initial(dst)`.
///
/// # Safety
///
/// `frame` is the driver's live, exclusive [`RunFrame`] (see [`guard`]).
unsafe extern "C" fn bptt_restore_initial(frame: *mut RunFrame<'_>, dst: i64) {
    // SAFETY: the caller's contract is passed through.
    unsafe { guard(frame, |exec| exec.restore_initial(at(dst))) }
}

/// `exec.copy_state(src, dst)`.
///
/// # Safety
///
/// `frame` is the driver's live, exclusive [`RunFrame`] (see [`guard`]).
unsafe extern "C" fn bptt_copy_state(frame: *mut RunFrame<'_>, src: i64, dst: i64) {
    // SAFETY: the caller's contract is passed through.
    unsafe { guard(frame, |exec| exec.copy_state(at(src), at(dst))) }
}

/// `exec.state_from_tape(tape, dst)`.
///
/// # Safety
///
/// `frame` is the driver's live, exclusive [`RunFrame`] (see [`guard`]).
unsafe extern "C" fn bptt_state_from_tape(frame: *mut RunFrame<'_>, tape: i64, dst: i64) {
    // SAFETY: the caller's contract is passed through.
    unsafe { guard(frame, |exec| exec.state_from_tape(at(tape), at(dst))) }
}

/// `exec.forward(k, src, dst)`.
///
/// # Safety
///
/// `frame` is the driver's live, exclusive [`RunFrame`] (see [`guard`]).
unsafe extern "C" fn bptt_forward(frame: *mut RunFrame<'_>, k: i64, src: i64, dst: i64) {
    // SAFETY: the caller's contract is passed through.
    unsafe { guard(frame, |exec| exec.forward(step(k), at(src), at(dst))) }
}

/// `exec.forward_tape(k, src, tape, dst)`.
///
/// # Safety
///
/// `frame` is the driver's live, exclusive [`RunFrame`] (see [`guard`]).
unsafe extern "C" fn bptt_forward_tape(
    frame: *mut RunFrame<'_>,
    k: i64,
    src: i64,
    tape: i64,
    dst: i64,
) {
    // SAFETY: the caller's contract is passed through.
    unsafe {
        guard(frame, |exec| {
            exec.forward_tape(step(k), at(src), at(tape), at(dst))
        })
    }
}

/// `exec.backward(k, tape, grad, grad_prev)`.
///
/// # Safety
///
/// `frame` is the driver's live, exclusive [`RunFrame`] (see [`guard`]).
unsafe extern "C" fn bptt_backward(
    frame: *mut RunFrame<'_>,
    k: i64,
    tape: i64,
    grad: i64,
    grad_prev: i64,
) {
    // SAFETY: the caller's contract is passed through.
    unsafe {
        guard(frame, |exec| {
            exec.backward(step(k), at(tape), at(grad), at(grad_prev))
        })
    }
}

#[cfg(test)]
mod tests {
    use bptt_runtime::{Arena, Gradients, LossKind, Readout, Rng, Rnn, Targets};
    use ndarray::{Array2, Array3};

    use super::*;

    #[test]
    fn a_panicking_primitive_is_caught_and_later_shims_do_nothing() {
        let mut rng = Rng::new(1);
        let cell = Rnn::new(2, 3, &mut rng);
        let readout = Readout::new(LossKind::SquaredError, 3, 1, &mut rng);
        let layout = ArenaLayout::new(&cell, &readout, 2, (1, 2), 3).unwrap();
        let mut arena = Arena::new(layout);
        let x = Array3::<f32>::zeros((2, 2, 2));
        let y = Array3::<f32>::zeros((2, 2, 1));
        let h0 = Array2::<f32>::ones((2, 3));
        let mut grads = Gradients::zeros(&cell, &readout, 2);
        let exec = Execution::start(
            &cell,
            &readout,
            &mut arena,
            2,
            x.view(),
            h0.view(),
            Targets::Values(y.view()),
            &mut grads,
        )
        .unwrap();
        let mut frame = RunFrame::new(exec);
        let run0 = layout.offset(Region::Run(0)) as i64;
        let run1 = layout.offset(Region::Run(1)) as i64;
        // SAFETY: `frame` is live and only reached through this pointer.
        unsafe {
            bptt_copy_state(&mut frame, -16, run0);
            assert!(frame.failed());
            bptt_forward(&mut frame, 3, run0, run1);
            bptt_restore_initial(&mut frame, run0);
        }
        let message = frame.into_result().err().unwrap();
        assert!(message.contains("not negative"), "{message}");
        // The restore after the failure did not run.
        assert_eq!(arena.regions([Region::Run(0)])[0].sum(), 0.0);
    }

    #[test]
    fn every_call_kind_maps_to_a_shim_of_its_arity() {
        let layout = ArenaLayout {
            batch: 1,
            state_size: 1,
            tape_size: 2,
            scratch_size: 1,
            readout_scratch_size: 1,
            ticks_per_state: 1,
            ticks_per_tape: 2,
            capacity_ticks: 3,
            window_steps: 0,
            window_row: 0,
        };
        let calls = [
            Call::RestoreInitial {
                dst: Region::Run(0),
            },
            Call::Forward {
                step: 1,
                src: Region::Run(0),
                dst: Region::Run(1),
            },
        ];
        for call in &calls {
            let (shim, args) = shim_args(call, &layout).unwrap();
            assert_eq!(args.as_slice().len(), shim.arity());
        }
        let beyond = Call::CopyState {
            src: Region::Hidden(3),
            dst: Region::Run(0),
        };
        assert!(matches!(shim_args(&beyond, &layout), Err(Error::Verify(_))));
    }
}
