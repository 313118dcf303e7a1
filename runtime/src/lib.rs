//! bptt-runtime: what bptt's executors and generated code link to.
//!
//! It holds the [`Cell`] trait, three batched cells ([`Rnn`], [`Lstm`], [`Gru`]),
//! a linear [`Readout`] with its losses, the matrix [`kernels`], and the slot
//! [`Arena`] that a schedule's executor allocates once, and the per-operation
//! primitives of an [`Execution`] that every backend calls.

#![warn(missing_docs)]

/// The methods every runtime cell implements the same way: sizes as
/// multiples of the hidden size (scratch from the cell's own
/// `scratch_per_row`), the flat parameters, and `forward` /
/// `forward_tape` as the cell's one `forward_block` with or without a tape
/// (which is what makes them write bitwise the same state), row-parallel
/// (`par_rows::forward_by_rows`). The runtime cells' forward steps
/// need no scratch, so they ignore it (`backward` still uses it).
macro_rules! cell_plumbing {
    ($name:literal, state = $state:literal, tape = $tape:literal) => {
        fn input_size(&self) -> usize {
            self.input
        }

        fn state_size(&self) -> usize {
            $state * self.hidden
        }

        fn tape_size(&self) -> usize {
            $tape * self.hidden
        }

        fn output_size(&self) -> usize {
            self.hidden
        }

        fn scratch_size(&self) -> usize {
            self.scratch_per_row()
        }

        fn params(&self) -> &[f32] {
            &self.params
        }

        fn params_mut(&mut self) -> &mut [f32] {
            self.packed.invalidate();
            &mut self.params
        }

        fn packed_floats(&self) -> usize {
            self.packed.floats()
        }

        fn forward(
            &self,
            x: ArrayView2<f32>,
            h_prev: ArrayView2<f32>,
            h_next: ArrayViewMut2<f32>,
            _scratch: ArrayViewMut2<f32>,
        ) {
            let packs = self.packed.get(&self.params);
            let widths = (self.input, $state * self.hidden, $tape * self.hidden);
            let what = concat!($name, "::forward");
            $crate::par_rows::forward_by_rows(
                what,
                x,
                h_prev,
                None,
                h_next,
                widths,
                |x, h, t, hn| self.forward_block(&packs, x, h, t, hn),
            );
        }

        fn forward_tape(
            &self,
            x: ArrayView2<f32>,
            h_prev: ArrayView2<f32>,
            tape: ArrayViewMut2<f32>,
            h_next: ArrayViewMut2<f32>,
            _scratch: ArrayViewMut2<f32>,
        ) {
            let packs = self.packed.get(&self.params);
            let widths = (self.input, $state * self.hidden, $tape * self.hidden);
            let what = concat!($name, "::forward_tape");
            let tape = Some(tape);
            $crate::par_rows::forward_by_rows(
                what,
                x,
                h_prev,
                tape,
                h_next,
                widths,
                |x, h, t, hn| self.forward_block(&packs, x, h, t, hn),
            );
        }
    };
}

pub mod alloc;
pub mod arena;
pub mod cell;
mod elementwise;
pub mod exec;
pub mod gru;
pub mod kernels;
pub mod lstm;
mod packed;
mod par_rows;
pub mod readout;
pub mod rng;
pub mod rnn;
pub mod shape;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use alloc::CountingAllocator;
pub use arena::*;
pub use cell::{Cell, Operands, WeightGradient};
pub use exec::{Execution, Gradients, Mismatch};
pub use gru::Gru;
pub use lstm::Lstm;
pub use packed::{Packed, PackedWeights, Packing};
pub use par_rows::{MIN_ROWS, par_rows, par_rows_mut};
pub use readout::*;
pub use rng::Rng;
pub use rnn::Rnn;
