//! `#[bptt]`: plan a recurrent cell's memory-budgeted backpropagation at
//! compile time and emit it as straight-line code.
//!
//! ```
//! use bptt_macros::bptt;
//! use bptt_runtime::{Cell, Gradients, LossKind, Lstm, Readout, Rng, Targets};
//! use ndarray::{Array2, Array3};
//! # use ndarray::{ArrayView2, ArrayViewMut2};
//!
//! /// Any type that implements `bptt_runtime::Cell`: here an LSTM in a newtype.
//! #[bptt(seq_len = 100, budget = "5%", alpha = 3)] // policy = "msm" by default
//! pub struct MyCell(Lstm);
//!
//! impl Cell for MyCell {
//!     // sizes, params, forward, forward_tape, state_from_tape, backward
//! #   fn input_size(&self) -> usize { self.0.input_size() }
//! #   fn state_size(&self) -> usize { self.0.state_size() }
//! #   fn tape_size(&self) -> usize { self.0.tape_size() }
//! #   fn output_size(&self) -> usize { self.0.output_size() }
//! #   fn scratch_size(&self) -> usize { self.0.scratch_size() }
//! #   fn params(&self) -> &[f32] { self.0.params() }
//! #   fn params_mut(&mut self) -> &mut [f32] { self.0.params_mut() }
//! #   fn forward(&self, x: ArrayView2<f32>, h: ArrayView2<f32>, n: ArrayViewMut2<f32>, s: ArrayViewMut2<f32>) {
//! #       self.0.forward(x, h, n, s)
//! #   }
//! #   fn forward_tape(&self, x: ArrayView2<f32>, h: ArrayView2<f32>, t: ArrayViewMut2<f32>, n: ArrayViewMut2<f32>,
//! #                   s: ArrayViewMut2<f32>) {
//! #       self.0.forward_tape(x, h, t, n, s)
//! #   }
//! #   fn state_from_tape(&self, t: ArrayView2<f32>, h: ArrayViewMut2<f32>, s: ArrayViewMut2<f32>) {
//! #       self.0.state_from_tape(t, h, s)
//! #   }
//! #   fn backward(&self, x: ArrayView2<f32>, t: ArrayView2<f32>, dh: ArrayView2<f32>, dp: ArrayViewMut2<f32>,
//! #               g: &mut [f32], s: ArrayViewMut2<f32>) { self.0.backward(x, t, dh, dp, g, s) }
//! }
//!
//! # fn main() -> Result<(), bptt_runtime::Mismatch> {
//! let (batch, mut rng) = (8, Rng::new(1));
//! let mut cell = MyCell(Lstm::new(32, 128, &mut rng));
//! let readout = Readout::new(LossKind::SoftmaxCrossEntropy, 128, 16, &mut rng);
//! // Allocated once: the working set and a checkpoint stack of
//! // MyCell::CAPACITY_TICKS ticks (here 14 hidden states).
//! let mut arena = cell.new_arena(&readout, batch)?;
//! let mut grads = Gradients::zeros(&cell, &readout, batch);
//! let x = Array3::from_shape_simple_fn((100, batch, 32), || rng.uniform(-1.0, 1.0));
//! let y = Array2::from_shape_simple_fn((100, batch), || rng.below(16) as u32);
//! let h0 = Array2::zeros((batch, cell.state_size()));
//! for _ in 0..3 {
//!     let targets = Targets::Classes(y.view());
//!     let loss = cell.train_step(&readout, &mut arena, x.view(), h0.view(), targets, &mut grads)?;
//!     for (w, g) in cell.params_mut().iter_mut().zip(&grads.cell) {
//!         *w -= 0.1 * g;
//!     }
//!     assert!(loss > 0.0);
//! }
//! assert_eq!(MyCell::CAPACITY_TICKS, 14);
//! # Ok(())
//! # }
//! ```
//!
//! This crate is a thin shim: the parsing, planning and emitting live in
//! [`bptt::emit::expand`], whose documentation lists the arguments and what
//! is emitted. Generated code names the runtime only through
//! `::bptt_runtime::__private`, so a crate that uses the attribute depends on
//! `bptt-runtime` and `bptt-macros`.

//!
//! [`cell!`] goes further: write a cell's step as equations, and it derives
//! the backward pass, chooses the tape and emits the whole cell as Rust
//! (with, if asked, its schedule).

use proc_macro::TokenStream;

/// Plans `seq_len` steps of backpropagation within `budget` at compile time
/// and adds to the annotated cell type the training step that runs the
/// schedule: `SEQ_LEN`, `TICKS_PER_STATE`, `TICKS_PER_TAPE`, `CAPACITY_TICKS`,
/// `FORWARD_STEPS`,
/// `arena_layout`, `new_arena` and `train_step` (or the method `name`d).
///
/// Arguments: `seq_len = T` (integer), `budget = M` (hidden-state units, or
/// `"5%"` of store-all), `alpha = A` (the cell's tape size over its state
/// size), optional `policy = "msm"` (`hsm`, `ism`, `msm`, `store-all`,
/// `sqrt`, `interval:K`) and `name = "train_step"`. See [`bptt::emit`].
///
/// Instead of `budget`, `memory = "256MiB"` (or an integer of bytes) plans
/// the fastest schedule whose arena fits in that many bytes, given the
/// sizes it needs: `state_bytes = S` (one hidden state of the whole batch,
/// `state_size × batch × 4`) and `working_bytes = W` (the arena outside the
/// checkpoints, `ArenaLayout::working_bytes()`). The type then also gets
/// `MEMORY_BYTES`, and `arena_layout` refuses an arena larger than it (so
/// sizes given too small are caught before anything runs); a memory too
/// small for any plan is a compile error naming both figures.
#[proc_macro_attribute]
pub fn bptt(args: TokenStream, item: TokenStream) -> TokenStream {
    bptt::emit::expand(args.into(), item.into()).into()
}

/// Defines a recurrent cell by its equations: a struct that implements
/// `bptt_runtime::Cell` with straight-line kernels, derived at compile time
/// for the sizes given.
///
/// ```
/// use bptt_runtime::{Cell, Rng};
/// use ndarray::Array2;
///
/// bptt_macros::cell! {
///     /// A minimal gated unit.
///     #[sizes(input = 3, hidden = 8)]
///     pub cell Mgu {
///         size input, hidden;
///         input x: [input];
///         state h: [hidden];
///         param w_f: [input + hidden, hidden];
///         param b_f: [hidden] = 1.0;
///         param w_h: [input + hidden, hidden];
///         param b_h: [hidden];
///
///         let f = sigmoid(matmul(concat(x, h), w_f) + b_f);
///         let candidate = tanh(matmul(concat(x, f * h), w_h) + b_h);
///         h = (1.0 - f) * h + f * candidate;
///     }
/// }
///
/// let cell = Mgu::new(&mut Rng::new(1));
/// assert_eq!((Mgu::STATE_SIZE, Mgu::TAPE_SIZE, Mgu::ALPHA), (8, 24, 3.0));
/// let (x, h) = (Array2::ones((2, 3)), Array2::zeros((2, 8)));
/// let mut next = Array2::zeros((2, 8));
/// let mut scratch = Array2::zeros((2, cell.scratch_size()));
/// cell.forward(x.view(), h.view(), next.view_mut(), scratch.view_mut());
/// ```
///
/// `#[sizes(..)]` binds every size the cell declares; `#[bptt(seq_len = T,
/// budget = M)]` (optional, with `policy` and `name` as for [`bptt`][macro@bptt])
/// also plans a schedule and adds its training step, with the alpha the
/// cell's tape gives (so `alpha` may not be given). `#[bptt(seq_len = T,
/// memory = "1MiB", batch = B, classes = C)]` plans within bytes instead:
/// every size is known here, so the need (the arena for `B` rows and a
/// read-out to `C` classes, plus the gradients the step writes: the cell's
/// and the read-out's parameters and `dL/dh0`) is computed, and
/// `state_bytes`/`working_bytes` may not be given; `MEMORY_BYTES` and
/// `arena_layout`'s check are as for [`bptt`][macro@bptt]. Other attributes, such
/// as doc comments and derives, go on the struct. The language and what is
/// emitted: [`bptt::cell_lang`] and [`bptt::emit::cell`].
#[proc_macro]
pub fn cell(input: TokenStream) -> TokenStream {
    bptt::emit::cell::expand_cell(input.into()).into()
}
