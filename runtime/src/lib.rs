//! bptt-runtime: what bptt's executors and generated code link to.
//!
//! It holds the [`Cell`] trait, three batched cells ([`Rnn`], [`Lstm`], [`Gru`]),
//! a linear [`Readout`] with its losses, the matrix [`kernels`], and the slot
//! [`Arena`] that a schedule's executor allocates once, and the per-operation
//! primitives of an [`Execution`] that every backend calls.

#![warn(missing_docs)]

pub mod alloc;
pub mod arena;
pub mod cell;
mod elementwise;
pub mod exec;
pub mod gru;
pub mod kernels;
pub mod lstm;
pub mod readout;
pub mod rng;
pub mod rnn;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use alloc::CountingAllocator;
pub use arena::*;
pub use cell::Cell;
pub use exec::{Execution, Gradients, Mismatch};
pub use gru::Gru;
pub use lstm::Lstm;
pub use readout::*;
pub use rng::Rng;
pub use rnn::Rnn;
