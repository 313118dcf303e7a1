//! `#[bptt]`: plan a recurrent cell's memory-budgeted backpropagation at
//! compile time and emit it as straight-line code.
//!
//! ```ignore
//! use bptt_macros::bptt;
//!
//! #[bptt(seq_len = 1000, budget = "5%", alpha = 3, policy = "msm")]
//! pub struct MyLstm(bptt_runtime::Lstm); // implements bptt_runtime::Cell
//!
//! let mut arena = cell.new_arena(&readout, batch);
//! let loss = cell.train_step(&readout, &mut arena, x.view(), h0.view(), targets, &mut grads)?;
//! ```
//!
//! This crate is a thin shim: the parsing, planning and emitting live in
//! [`bptt::emit::expand`], whose documentation lists the arguments and what
//! is emitted. Generated code names the runtime only through
//! `::bptt_runtime::__private`, so a crate that uses the attribute depends on
//! `bptt-runtime` and `bptt-macros`.

use proc_macro::TokenStream;

/// Plans `seq_len` steps of backpropagation within `budget` at compile time
/// and adds to the annotated cell type the training step that runs the
/// schedule: `SEQ_LEN`, `HIDDEN_SLOTS`, `TAPE_SLOTS`, `FORWARD_STEPS`,
/// `arena_layout`, `new_arena` and `train_step` (or the method `name`d).
///
/// Arguments: `seq_len = T` (integer), `budget = M` (hidden-state units, or
/// `"5%"` of store-all), `alpha = A` (the cell's tape size over its state
/// size), optional `policy = "msm"` (`hsm`, `ism`, `msm`, `store-all`,
/// `sqrt`, `interval:K`) and `name = "train_step"`. See [`bptt::emit`].
#[proc_macro_attribute]
pub fn bptt(args: TokenStream, item: TokenStream) -> TokenStream {
    bptt::emit::expand(args.into(), item.into()).into()
}
