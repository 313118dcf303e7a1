//! bptt: memory-budgeted backpropagation through time, as a compiler.
//!
//! Plan a budget with [`Plan`], expand it to a [`Schedule`] of operations over
//! checkpoint slots, prove it ([`Verified`]), lower it to calls on arena
//! regions ([`Lowered`]), and run it on any [`bptt_runtime::Cell`]: with a
//! [`Runner`] over an [`Engine`], the [`Interpreter`] or JIT-compiled code
//! ([`jit::CompiledSchedule`]), or as Rust generated at compile time by the
//! `#[bptt]` attribute ([`emit`]). The `bptt` command line, beside this
//! library, trains models with them and measures them against the paper.

#![warn(missing_docs)]

#[cfg(feature = "jit")]
pub mod backend;
pub mod cell_lang;
pub mod emit;
pub mod error;
pub mod interp;
#[cfg(feature = "jit")]
pub mod jit;
pub mod lower;
pub mod planner;
pub mod policy;
pub mod runner;
mod runs;
pub mod schedule;
pub mod units;

#[cfg(feature = "jit")]
pub use backend::{Backend, BackendKind};
pub use bptt_runtime::Gradients;
pub use error::Error;
pub use interp::Interpreter;
pub use lower::{Call, Lowered};
pub use planner::{Choice, Plan, PlanSummary, Strategy, Table, WeightedTable, Weights};
pub use policy::Policy;
pub use runner::{Engine, Runner};
pub use schedule::{Op, Report, Schedule, Verified, simulate, verify};
pub use units::{Alpha, Budget, Ticks};
