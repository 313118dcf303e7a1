//! The Cranelift JIT backend: a verified schedule compiled to native code at
//! run time, for when the sequence length or the budget is known only then.
//!
//! [`CompiledSchedule`] is the [`Runner`] over the [`JitEngine`]:
//! [`CompiledSchedule::compile`] verifies a schedule and lowers it to calls
//! on arena regions (as for the interpreter), and the engine compiles the
//! calls with cranelift-jit. Each call is one native call of an `extern "C"`
//! shim (`bptt_forward`, `bptt_backward`, ...) with the step and the regions'
//! offsets from the arena base; the shim runs the same [`Execution`]
//! primitive the interpreter runs, so gradients are bitwise the same. Runs of
//! calls whose arguments step by a constant or alternate (`runs.rs`) become
//! loops, so the code grows with the schedule's runs, not its calls (a
//! streamed schedule is compiled without ever being listed); a single call
//! passes its arguments as constants. Long schedules are split into
//! functions of at most [`JitOptions::runs_per_function`] runs, run in
//! order.
//! [`CompiledSchedule::clif`] and [`emit_clif`] print the functions'
//! Cranelift IR. [`cell::JitCell`] compiles a derived cell's kernels likewise.
//!
//! ```
//! use bptt::jit::CompiledSchedule;
//! use bptt::{Alpha, Budget, Plan, Policy, Schedule};
//! use bptt_runtime::{Cell, LossKind, Readout, Rng, Rnn, Targets};
//! use ndarray::{Array2, Array3};
//!
//! let mut rng = Rng::new(1);
//! let cell = Rnn::new(3, 8, &mut rng);
//! let readout = Readout::new(LossKind::SquaredError, 8, 2, &mut rng);
//! let alpha = Alpha::new(cell.alpha()).unwrap();
//! let plan = Plan::new(Policy::Msm, alpha, 20, Budget::Units(4.0)).unwrap();
//! let mut compiled =
//!     CompiledSchedule::compile(Schedule::from_plan(&plan), &cell, &readout, 5).unwrap();
//! let x = Array3::<f32>::zeros((20, 5, 3));
//! let y = Array3::<f32>::ones((20, 5, 2));
//! let h0 = Array2::<f32>::zeros((5, 8));
//! let mut grads = compiled.gradients(&cell, &readout);
//! let loss = compiled
//!     .run(&cell, &readout, x.view(), h0.view(), Targets::Values(y.view()), &mut grads)
//!     .unwrap();
//! assert!(loss > 0.0);
//! assert!(compiled.clif().unwrap().contains("%bptt_forward"));
//! ```

pub mod cell;
mod codegen;
mod module;
mod shims;
mod text;

use bptt_runtime::{ArenaLayout, Cell, Execution, Readout};

use crate::error::Error;
use crate::lower::Lowered;
use crate::runner::{Engine, Runner};
use crate::runs::{Run, Runs};
use crate::schedule::{Header, IntoVerified, StreamMemory, Verified};
use codegen::Jit;
use shims::RunFrame;
use shims::{Shim, shim_args};

/// How a schedule is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitOptions {
    /// The most runs (a single call, or a loop over a run of calls) in one
    /// compiled function (at least 1). Cranelift's compile time grows with a
    /// function's size, so long schedules are split into several functions
    /// run in order.
    pub runs_per_function: usize,
    /// Whether Cranelift verifies the IR of every function before compiling
    /// it. Defaults to on in debug builds (and tests), off in release builds.
    pub verifier: bool,
    /// Whether runs of calls compile as loops (the default) or every call
    /// as its own constant-argument call, fully unrolled (to compare).
    pub loops: bool,
}

impl JitOptions {
    /// The default size of a compiled function, in runs. Measured at
    /// T = 100,000 when every call was its own run (`examples/jit_bench.rs`):
    /// 512 to 4096 compiled equally fast; one function of all 300,000 calls
    /// compiled 2 to 3 times slower and peaked at about 8 times the memory.
    pub const DEFAULT_RUNS_PER_FUNCTION: usize = 2048;
}

impl Default for JitOptions {
    fn default() -> Self {
        JitOptions {
            runs_per_function: Self::DEFAULT_RUNS_PER_FUNCTION,
            verifier: cfg!(debug_assertions),
            loops: true,
        }
    }
}

/// The compiling engine: a schedule's lowered calls as native functions.
///
/// It owns the compiled code and frees it when dropped.
#[derive(Debug)]
pub struct JitEngine {
    jit: Jit,
    options: JitOptions,
    /// The runs compiled, and how many calls they hold (for the IR text).
    runs: Vec<Run<Shim>>,
    calls: usize,
}

impl JitEngine {
    /// Compiles `lowered`'s calls for an arena `layout`, grouped into runs
    /// as they are lowered (a streamed schedule's are never listed); a
    /// region outside the layout returns [`Error::Verify`], a Cranelift
    /// failure [`Error::Codegen`].
    pub fn compile(
        lowered: &Lowered,
        layout: &ArenaLayout,
        options: JitOptions,
    ) -> Result<Self, Error> {
        let (runs, calls) = group_runs(lowered, layout, options.loops)?;
        let mut jit = Jit::new(options.verifier)?;
        jit.compile(&runs, options.runs_per_function)?;
        Ok(JitEngine {
            jit,
            options,
            runs,
            calls,
        })
    }

    /// The options it was compiled with.
    pub fn options(&self) -> JitOptions {
        self.options
    }

    /// How many native functions the schedule was split into.
    pub fn functions(&self) -> usize {
        self.jit.functions()
    }

    /// How many runs (single calls and loops) were compiled.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The Cranelift IR of the compiled functions of the schedule `header`
    /// describes, for `layout` (what the engine was compiled for).
    fn clif(&self, header: &Header, layout: &ArenaLayout) -> Result<String, Error> {
        text::render(
            header,
            (&self.runs, self.calls),
            layout,
            self.options.runs_per_function,
            self.jit.config(),
        )
    }
}

impl Engine for JitEngine {
    /// Runs the compiled functions in order. A kernel that panics (never
    /// expected: every offset is valid by construction) stops the run with
    /// [`Error::KernelPanic`].
    fn run<'e>(&mut self, _: &Lowered, exec: Execution<'e>) -> Result<Execution<'e>, Error> {
        let mut frame = RunFrame::new(exec);
        self.jit.run(&mut frame);
        frame.into_result().map_err(Error::KernelPanic)
    }
}

/// A verified schedule compiled to native code, with its arena: the
/// [`Runner`] over the [`JitEngine`].
///
/// Run it like the [`Interpreter`](crate::Interpreter): same arguments, same
/// results bit for bit. A kernel that panics (never expected) stops the run
/// with [`Error::KernelPanic`].
pub type CompiledSchedule = Runner<JitEngine>;

impl CompiledSchedule {
    /// Verifies the schedule (unless it is [`Verified`] already), allocates
    /// the arena for a cell, a read-out and a batch size, and compiles the
    /// schedule with the default [`JitOptions`].
    ///
    /// A schedule that fails verification returns [`Error::Verify`]; a
    /// Cranelift failure returns [`Error::Codegen`].
    pub fn compile(
        schedule: impl IntoVerified,
        cell: &dyn Cell,
        readout: &Readout,
        batch: usize,
    ) -> Result<Self, Error> {
        Self::compile_with(schedule, cell, readout, batch, JitOptions::default())
    }

    /// [`compile`](Self::compile) with explicit options.
    pub fn compile_with(
        schedule: impl IntoVerified,
        cell: &dyn Cell,
        readout: &Readout,
        batch: usize,
        options: JitOptions,
    ) -> Result<Self, Error> {
        Runner::with_engine(schedule, cell, readout, batch, |lowered, layout| {
            JitEngine::compile(lowered, layout, options)
        })
    }

    /// The options it was compiled with.
    pub fn options(&self) -> JitOptions {
        self.engine().options()
    }

    /// How many native functions the schedule was split into.
    pub fn functions(&self) -> usize {
        self.engine().functions()
    }

    /// The Cranelift IR of the compiled functions, as text: shims by name,
    /// each call annotated with what it does, no addresses (so it is stable).
    ///
    /// The text is rebuilt on each call rather than kept (it is about 250
    /// bytes per call), with the same builder and chunking as the compiled
    /// code.
    pub fn clif(&self) -> Result<String, Error> {
        self.engine().clif(self.header(), self.layout())
    }
}

/// How many runs (single calls and loops, see `runs.rs`) the JIT compiles
/// `verified` into for `layout`: what its code's size grows with. Streams
/// the calls, holding only the runs.
pub fn count_runs(verified: &Verified, layout: &ArenaLayout) -> Result<usize, Error> {
    Ok(group_runs(&Lowered::new(verified), layout, true)?.0.len())
}

/// The runs of `lowered`'s calls for `layout` and how many calls they hold,
/// grouped as the calls are lowered.
fn group_runs(
    lowered: &Lowered,
    layout: &ArenaLayout,
    loops: bool,
) -> Result<(Vec<Run<Shim>>, usize), Error> {
    let mut runs = Runs::new(loops);
    let mut failure = None;
    lowered.for_each(&mut StreamMemory::default(), |call| {
        if failure.is_none() {
            match shim_args(&call, layout) {
                Ok((shim, args)) => runs.push(call, shim, args.as_slice()),
                Err(err) => failure = Some(err),
            }
        }
    });
    match failure {
        Some(err) => Err(err),
        None => Ok(runs.finish()),
    }
}

/// Compiles a verified schedule for an arena layout and returns the
/// Cranelift IR text of its functions (what `bptt emit clif` prints); the
/// code is freed on return.
///
/// The layout must have the schedule's ticks per state and per tape (its
/// `alpha`) and a stack of at least its capacity, [`Error::Shape`] otherwise.
pub fn emit_clif(verified: &Verified, layout: &ArenaLayout) -> Result<String, Error> {
    let header = verified.header();
    let alpha = header.alpha;
    let capacity = header.capacity.0;
    let fits = layout.ticks_per_state == alpha.denominator()
        && layout.ticks_per_tape == alpha.numerator()
        && layout.capacity_ticks >= capacity;
    if !fits {
        return Err(Error::Shape {
            what: "the layout's [ticks per state, ticks per tape, stack ticks] (made for another schedule)",
            expected: [alpha.denominator(), alpha.numerator(), capacity]
                .map(|n| n as usize)
                .to_vec(),
            got: [
                layout.ticks_per_state,
                layout.ticks_per_tape,
                layout.capacity_ticks,
            ]
            .map(|n| n as usize)
            .to_vec(),
        });
    }
    let lowered = Lowered::new(verified);
    JitEngine::compile(&lowered, layout, JitOptions::default())?.clif(header, layout)
}

/// A layout for a schedule without a cell, for printing IR: one batch row, a
/// state of `den` floats and a tape of `num` floats when `alpha = num / den`,
/// so a checkpoint at tick `p` starts `p` floats into the stack, and no
/// scratch.
pub fn layout_for_alpha(header: &Header) -> ArenaLayout {
    let alpha = header.alpha;
    ArenaLayout {
        batch: 1,
        state_size: alpha.denominator() as usize,
        tape_size: alpha.numerator() as usize,
        scratch_size: 0,
        readout_scratch_size: 0,
        ticks_per_state: alpha.denominator(),
        ticks_per_tape: alpha.numerator(),
        capacity_ticks: header.capacity.0,
        window_steps: 0,
        window_row: 0,
    }
}
