//! The primitives of schedule execution, shared by every backend.
//!
//! An [`Execution`] is one training step in progress. Its primitives address
//! the arena by float offsets from its base (see [`ArenaLayout::offset`]): the
//! interpreter computes them as it walks a lowered schedule, generated code
//! and JIT-compiled code pass them as constants (the JIT through `extern "C"`
//! shims). Keeping one implementation is what makes every backend's gradients
//! bitwise the same. Offsets are checked: a wrong one panics, never reads
//! outside the arena.

use std::fmt;

use ndarray::{Array2, ArrayView2, ArrayView3, Axis};

use crate::arena::{Arena, ArenaLayout, Region};
use crate::cell::{Cell, Operands, add_window};
use crate::readout::{Readout, Targets};

/// Gradients of one training step.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// `dL/dθ` of the cell, in the cell's parameter layout.
    pub cell: Vec<f32>,
    /// `dL/dθ` of the read-out, in its parameter layout.
    pub readout: Vec<f32>,
    /// `dL/dh[0]`, `[batch, state]`.
    pub h0: Array2<f32>,
}

impl Gradients {
    /// Zeroed gradients for a cell, a read-out and a batch size.
    pub fn zeros(cell: &dyn Cell, readout: &Readout, batch: usize) -> Self {
        Gradients {
            cell: vec![0.0; cell.params().len()],
            readout: vec![0.0; readout.params().len()],
            h0: Array2::zeros((batch, cell.state_size())),
        }
    }

    /// Whether two gradients are the same bit for bit.
    pub fn bitwise_eq(&self, other: &Gradients) -> bool {
        fn same<'a>(
            a: impl ExactSizeIterator<Item = &'a f32>,
            b: impl ExactSizeIterator<Item = &'a f32>,
        ) -> bool {
            a.len() == b.len() && a.zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        }
        same(self.cell.iter(), other.cell.iter())
            && same(self.readout.iter(), other.readout.iter())
            && self.h0.shape() == other.h0.shape()
            && same(self.h0.iter(), other.h0.iter())
    }
}

/// Arguments whose shapes do not fit the cell, the read-out or each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// What was checked.
    pub what: &'static str,
    /// The shape that fits.
    pub expected: Vec<usize>,
    /// The shape that was given.
    pub got: Vec<usize>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shape mismatch for {}: expected {:?}, got {:?}",
            self.what, self.expected, self.got
        )
    }
}

impl std::error::Error for Mismatch {}

fn expect(what: &'static str, expected: &[usize], got: &[usize]) -> Result<(), Mismatch> {
    if expected == got {
        Ok(())
    } else {
        Err(Mismatch {
            what,
            expected: expected.to_vec(),
            got: got.to_vec(),
        })
    }
}

fn contiguous(what: &'static str, standard: bool, shape: &[usize]) -> Result<(), Mismatch> {
    if standard {
        Ok(())
    } else {
        Err(Mismatch {
            what,
            expected: shape.to_vec(),
            got: Vec::new(),
        })
    }
}

/// One training step in progress over an arena.
pub struct Execution<'a> {
    cell: &'a dyn Cell,
    readout: &'a Readout,
    arena: &'a mut Arena,
    inputs: ArrayView3<'a, f32>,
    h0: ArrayView2<'a, f32>,
    targets: Targets<'a>,
    grads: &'a mut Gradients,
    len: u32,
    /// The backward step that must run next (`T` down to 1, then `T` again).
    next_backward: u32,
    scale: f32,
    loss: f64,
}

impl<'a> Execution<'a> {
    /// Checks every shape, zeroes the gradients and starts a step of `len`
    /// time steps. `inputs` is `[T, batch, input]`, `h0` is `[batch, state]`.
    #[allow(clippy::too_many_arguments)]
    pub fn start<'i: 'a, 'h: 'a, 't: 'a>(
        cell: &'a dyn Cell,
        readout: &'a Readout,
        arena: &'a mut Arena,
        len: u32,
        inputs: ArrayView3<'i, f32>,
        h0: ArrayView2<'h, f32>,
        targets: Targets<'t>,
        grads: &'a mut Gradients,
    ) -> Result<Self, Mismatch> {
        // Array views are invariant in their lifetime: shorten each to 'a.
        let (inputs, h0) = (inputs.reborrow(), h0.reborrow());
        let targets = match targets {
            Targets::Classes(c) => Targets::Classes(c.reborrow()),
            Targets::Values(v) => Targets::Values(v.reborrow()),
            Targets::FinalValues(v) => Targets::FinalValues(v.reborrow()),
        };
        let layout = *arena.layout();
        let batch = layout.batch;
        let ticks = (layout.ticks_per_state, layout.ticks_per_tape);
        let want = ArenaLayout::new(cell, readout, batch, ticks, layout.capacity_ticks)?;
        expect(
            "cell sizes [state, tape, scratch, read-out scratch, window row] (the arena was made for another cell)",
            &[
                layout.state_size,
                layout.tape_size,
                layout.scratch_size,
                layout.readout_scratch_size,
                layout.window_row,
            ],
            &[
                want.state_size,
                want.tape_size,
                want.scratch_size,
                want.readout_scratch_size,
                want.window_row,
            ],
        )?;
        let t = len as usize;
        expect(
            "inputs [T, batch, input]",
            &[t, batch, cell.input_size()],
            inputs.shape(),
        )?;
        contiguous(
            "inputs (must be contiguous, row-major)",
            inputs.is_standard_layout(),
            inputs.shape(),
        )?;
        expect("h0 [batch, state]", &[batch, cell.state_size()], h0.shape())?;
        expect(
            "read-out input [state features]",
            &[cell.output_size()],
            &[readout.in_size()],
        )?;
        let out = readout.out_size();
        match targets {
            Targets::Classes(c) => {
                expect("targets [T, batch]", &[t, batch], c.shape())?;
                contiguous(
                    "targets (must be contiguous, row-major)",
                    c.is_standard_layout(),
                    c.shape(),
                )?;
                if let Some(&bad) = c.iter().find(|&&k| k as usize >= out) {
                    return Err(Mismatch {
                        what: "target class (must be below the read-out's outputs)",
                        expected: vec![out],
                        got: vec![bad as usize],
                    });
                }
            }
            Targets::Values(v) => expect("targets [T, batch, out]", &[t, batch, out], v.shape())?,
            Targets::FinalValues(v) => expect("targets [batch, out]", &[batch, out], v.shape())?,
        }
        expect(
            "gradients [cell, read-out, batch, state]",
            &[
                cell.params().len(),
                readout.params().len(),
                batch,
                cell.state_size(),
            ],
            &[
                grads.cell.len(),
                grads.readout.len(),
                grads.h0.nrows(),
                grads.h0.ncols(),
            ],
        )?;
        grads.cell.fill(0.0);
        grads.readout.fill(0.0);
        let targeted_steps = targets.len().unwrap_or(1);
        Ok(Execution {
            cell,
            readout,
            arena,
            inputs,
            h0,
            targets,
            grads,
            len,
            next_backward: len,
            scale: 1.0 / (batch * targeted_steps) as f32,
            loss: 0.0,
        })
    }

    fn input(&self, step: u32) -> ArrayView2<'a, f32> {
        self.inputs.index_axis_move(Axis(0), step as usize - 1)
    }

    /// The arena's layout: [`ArenaLayout::offset`] gives the offsets that the
    /// primitives take.
    pub fn layout(&self) -> &ArenaLayout {
        self.arena.layout()
    }

    /// Writes `h[0]` into the state at `dst`.
    pub fn restore_initial(&mut self, dst: usize) {
        let cols = self.layout().state_size;
        let [mut state] = self.arena.spans([(dst, cols)]);
        state.assign(&self.h0);
    }

    /// Copies the state at `src` into the state at `dst`.
    pub fn copy_state(&mut self, src: usize, dst: usize) {
        let cols = self.layout().state_size;
        let [from, mut to] = self.arena.spans([(src, cols), (dst, cols)]);
        to.assign(&from);
    }

    /// Writes the state that the tape at `tape` yields into `dst`.
    pub fn state_from_tape(&mut self, tape: usize, dst: usize) {
        let l = *self.layout();
        let [tape, state, scratch] = self.arena.spans([
            (tape, l.tape_size),
            (dst, l.state_size),
            (l.offset(Region::Scratch), l.scratch_size),
        ]);
        self.cell.state_from_tape(tape.view(), state, scratch);
    }

    /// Runs `step` (`1..=T`) from the state at `src` into the state at `dst`.
    pub fn forward(&mut self, step: u32, src: usize, dst: usize) {
        let x = self.input(step);
        let l = *self.layout();
        let [now, next, scratch] = self.arena.spans([
            (src, l.state_size),
            (dst, l.state_size),
            (l.offset(Region::Scratch), l.scratch_size),
        ]);
        self.cell.forward(x, now.view(), next, scratch);
    }

    /// Runs `step` from the state at `src` into the state at `dst`, recording
    /// its tape at `tape`.
    pub fn forward_tape(&mut self, step: u32, src: usize, tape: usize, dst: usize) {
        let x = self.input(step);
        let l = *self.layout();
        let [now, tape, next, scratch] = self.arena.spans([
            (src, l.state_size),
            (tape, l.tape_size),
            (dst, l.state_size),
            (l.offset(Region::Scratch), l.scratch_size),
        ]);
        self.cell.forward_tape(x, now.view(), tape, next, scratch);
    }

    /// Backpropagates `step` from the tape at `tape`: the loss of step `k` on
    /// `h[k]` rebuilt from the tape joins `dL/dh[k]` at `grad` (zeroed first
    /// when `k = T`), then the cell's backward writes `dL/dh[k-1]` at
    /// `grad_prev`.
    ///
    /// Backward steps run `T, T-1, …, 1` (then, to time them, may start over
    /// at `T`), as every verified schedule runs them. The cell's deferred weight gradients
    /// ([`Cell::backward_deferred`]) are summed per window of
    /// [`ArenaLayout::window_steps`] steps counted from `T`, which adds
    /// bitwise what per-step products would.
    ///
    /// # Panics
    /// If `step` is not the next step in that order.
    pub fn backward(&mut self, step: u32, tape: usize, grad: usize, grad_prev: usize) {
        assert!(
            step == self.next_backward,
            "backward step {step} out of order: step {} is next",
            self.next_backward
        );
        self.next_backward = if step == 1 { self.len } else { step - 1 };
        let x = self.input(step);
        let target = self.targets.at(step as usize, self.len as usize);
        let l = *self.layout();
        let (s, t) = (l.state_size, l.tape_size);
        let [
            tape,
            mut state,
            mut dh,
            dh_prev,
            mut scratch,
            readout_scratch,
            mut window,
        ] = self.arena.spans([
            (tape, t),
            (l.offset(Region::State), s),
            (grad, s),
            (grad_prev, s),
            (l.offset(Region::Scratch), l.scratch_size),
            (l.offset(Region::ReadoutScratch), l.readout_scratch_size),
            (l.offset(Region::Window), l.shape(Region::Window).1),
        ]);
        if step == self.len {
            dh.fill(0.0);
        }
        self.cell
            .state_from_tape(tape.view(), state.view_mut(), scratch.view_mut());
        self.loss += self.readout.step(
            state.view(),
            target,
            self.scale,
            dh.view_mut(),
            &mut self.grads.readout,
            readout_scratch,
        );
        let products = self.cell.weight_gradients();
        if products.is_empty() {
            self.cell.backward(
                x,
                tape.view(),
                dh.view(),
                dh_prev,
                &mut self.grads.cell,
                scratch,
            );
            return;
        }
        let window = window
            .as_slice_mut()
            .expect("the window is one contiguous span");
        let steps = l.window_steps;
        let position = (self.len - step) as usize % steps;
        self.cell.backward_deferred(
            x,
            tape.view(),
            dh.view(),
            dh_prev,
            &mut self.grads.cell,
            scratch,
            Operands::new(window, products, steps, l.batch, position),
        );
        if position + 1 == steps || step == 1 {
            add_window(
                window,
                products,
                steps,
                l.batch,
                position + 1,
                &mut self.grads.cell,
            );
        }
    }

    /// Ends the step: copies `dL/dh[0]` from `grad` into the gradients and
    /// returns the loss (the mean over batch rows and targeted steps).
    pub fn finish(self, grad: usize) -> f64 {
        let cols = self.layout().state_size;
        let [dh0] = self.arena.spans([(grad, cols)]);
        self.grads.h0.assign(&dh0);
        self.loss
    }
}
