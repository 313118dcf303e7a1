//! The cell's own costs, measured, and what they predict for a schedule.
//!
//! Each primitive that a backend calls ([`Execution::forward`],
//! [`Execution::forward_tape`], [`Execution::backward`],
//! [`Execution::copy_state`], [`Execution::state_from_tape`], and the
//! per-iteration set-up of [`Execution::start`] with [`Execution::finish`])
//! is timed over repeated calls on a real arena, in several interleaved rounds;
//! the median round gives its cost. A schedule's predicted time is then the
//! sum over its lowered calls.

use std::time::{Duration, Instant};

use bptt_runtime::{Arena, ArenaLayout, Cell, Execution, Gradients, Readout, Region, Targets};
use ndarray::{ArrayView2, ArrayView3};
use serde::Serialize;

use bptt::Alpha;
use bptt::Error;
use bptt::Lowered;
use bptt::planner::Weights;
use bptt::schedule::Verified;

/// Tape slots the timed forward and backward steps cycle through, so that
/// their tapes are not all one hot buffer.
const TAPE_SLOTS: u32 = 16;

/// Seconds per call of each primitive of one cell, read-out and batch size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CellCosts {
    /// A forward step `F`.
    pub forward: f64,
    /// A forward step keeping its tape `F*`.
    pub forward_tape: f64,
    /// A backward step: the state rebuilt from the tape, the read-out's loss
    /// and gradient, and the cell's backward.
    pub backward: f64,
    /// Copying a hidden state (storing or restoring it, or `h[0]`).
    pub copy: f64,
    /// Restoring the running state from a tape.
    pub from_tape: f64,
    /// Once per iteration: checking shapes, zeroing the gradients, copying
    /// `dL/dh[0]` out.
    pub setup: f64,
}

impl CellCosts {
    /// The costs as planner weights (seconds).
    pub fn weights(&self) -> Weights {
        Weights {
            forward: self.forward,
            forward_tape: self.forward_tape,
            backward: self.backward,
            copy: self.copy,
            from_tape: self.from_tape,
        }
    }

    /// A backward step over a forward step, `b / f`.
    pub fn backward_over_forward(&self) -> f64 {
        self.backward / self.forward
    }

    /// The predicted seconds of one iteration of `schedule`: the cost of its
    /// lowered calls ([`Lowered::cost`]), plus the set-up.
    pub fn predict(&self, schedule: &Verified) -> f64 {
        self.setup + Lowered::new(schedule).cost(&self.weights())
    }

    /// The unit model's time relative to store-all with the measured `b / f`:
    /// `(Q/T + b/f) / (1 + b/f)`, for `Q/T` forward steps per time step.
    pub fn unit_ratio(&self, forward_per_step: f64) -> f64 {
        let r = self.backward_over_forward();
        (forward_per_step + r) / (1.0 + r)
    }
}

/// Seconds per call of `op`, run in batches that double until one takes at
/// least `min_time` (the last batch is the measurement; `op` gets the call's
/// index).
fn per_call(min_time: Duration, mut op: impl FnMut(usize)) -> f64 {
    let mut n = 1usize;
    let mut index = 0;
    loop {
        let start = Instant::now();
        for _ in 0..n {
            op(index);
            index += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= min_time || n >= 1 << 24 {
            return elapsed.as_secs_f64() / n as f64;
        }
        n *= 2;
    }
}

/// Times a cell's primitives in rounds; [`CostSampler::costs`] is the median
/// over the rounds. Rounds can be spread over a longer measurement (the
/// benchmark runs one between its timed rounds), so that the costs see the
/// same machine load as the iterations they predict.
pub struct CostSampler<'a> {
    cell: &'a dyn Cell,
    readout: &'a Readout,
    inputs: ArrayView3<'a, f32>,
    h0: ArrayView2<'a, f32>,
    targets: Targets<'a>,
    arena: Arena,
    grads: Gradients,
    min_time: Duration,
    /// Seconds per call of forward, forward*, backward, copy, from tape, set-up.
    samples: [Vec<f64>; 6],
}

impl<'a> CostSampler<'a> {
    /// A sampler for `cell` with this read-out and data (`inputs` is
    /// `[T, batch, input]`) timing each primitive for at least `min_time` per
    /// round. Runs one untimed round to warm up.
    pub fn new(
        cell: &'a dyn Cell,
        readout: &'a Readout,
        inputs: ArrayView3<'a, f32>,
        h0: ArrayView2<'a, f32>,
        targets: Targets<'a>,
        min_time: Duration,
    ) -> Result<Self, Error> {
        let batch = inputs.shape()[1];
        if inputs.shape()[0] == 0 {
            return Err(Error::ZeroLength);
        }
        let alpha = Alpha::new(cell.alpha())?;
        let (den, num) = (alpha.denominator(), alpha.numerator());
        // TAPE_SLOTS tapes, then two hidden states.
        let capacity = TAPE_SLOTS * num + 2 * den;
        let layout = ArenaLayout::new(cell, readout, batch, (den, num), capacity)?;
        let mut sampler = CostSampler {
            cell,
            readout,
            inputs,
            h0,
            targets,
            arena: Arena::new(layout),
            grads: Gradients::zeros(cell, readout, batch),
            min_time: min_time / 4,
            samples: Default::default(),
        };
        sampler.round()?;
        sampler.samples = Default::default();
        sampler.min_time = min_time;
        Ok(sampler)
    }

    /// Times every primitive once more.
    pub fn round(&mut self) -> Result<(), Error> {
        let layout = *self.arena.layout();
        let len = self.inputs.shape()[0];
        let len32 = len as u32;
        let (den, num) = (layout.ticks_per_state, layout.ticks_per_tape);
        let step = |i: usize| (i % len) as u32 + 1;
        let tape = |i: usize| layout.offset(Region::Tape((i as u32 % TAPE_SLOTS) * num));
        let hidden =
            |i: usize| layout.offset(Region::Hidden(TAPE_SLOTS * num + (i as u32 % 2) * den));
        let run = |i: usize| layout.offset(Region::Run((i % 2) as u8));
        let grad = |i: usize| layout.offset(Region::Grad((i % 2) as u8));
        let min_time = self.min_time;
        let (cell, readout, inputs, h0, targets) =
            (self.cell, self.readout, self.inputs, self.h0, self.targets);
        {
            let mut exec = Execution::start(
                cell,
                readout,
                &mut self.arena,
                len32,
                inputs,
                h0,
                targets,
                &mut self.grads,
            )?;
            exec.restore_initial(run(0));
            // Real tapes in every slot before anything reads one.
            for i in 0..TAPE_SLOTS as usize {
                exec.forward_tape(step(i), run(i), tape(i), run(i + 1));
            }
            let s = &mut self.samples;
            s[0].push(per_call(min_time, |i| {
                exec.forward(step(i), run(i), run(i + 1))
            }));
            s[1].push(per_call(min_time, |i| {
                exec.forward_tape(step(i), run(i), tape(i), run(i + 1))
            }));
            s[2].push(per_call(min_time, |i| {
                // Backward steps run T..1, each from its own tape slot.
                let k = len - 1 - i % len;
                exec.backward(k as u32 + 1, tape(k), grad(i), grad(i + 1))
            }));
            s[3].push(per_call(min_time, |i| exec.copy_state(run(i), hidden(i))));
            s[4].push(per_call(min_time, |i| {
                exec.state_from_tape(tape(i), run(i))
            }));
            exec.finish(grad(0));
        }
        let (arena, grads) = (&mut self.arena, &mut self.grads);
        let mut failed = None;
        self.samples[5].push(per_call(min_time, |_| {
            match Execution::start(cell, readout, arena, len32, inputs, h0, targets, grads) {
                Ok(exec) => {
                    exec.finish(grad(0));
                }
                Err(e) => failed = Some(e),
            }
        }));
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The median cost of each primitive over the rounds so far.
    pub fn costs(&self) -> CellCosts {
        let [forward, forward_tape, backward, copy, from_tape, setup] =
            self.samples.each_ref().map(|s| median(s));
        CellCosts {
            forward,
            forward_tape,
            backward,
            copy,
            from_tape,
            setup,
        }
    }
}

/// The median of samples (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let mut xs = samples.to_vec();
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}
