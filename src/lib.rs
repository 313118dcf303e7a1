//! bptt: memory-budgeted backpropagation through time, as a compiler.
//!
//! Plan a budget with [`Plan`], expand it to a [`Schedule`] of operations over
//! checkpoint slots, prove it ([`Verified`]), lower it to calls on arena
//! regions ([`Lowered`]), and run it on any [`bptt_runtime::Cell`]: with a
//! [`Runner`] over an [`Engine`], the [`Interpreter`] or JIT-compiled code
//! ([`jit::CompiledSchedule`]), or as Rust generated at compile time by the
//! `#[bptt]` attribute ([`emit`]). The `bptt` command line, beside this
//! library, trains models with them and measures them against the paper.
//!
//! The subsystems are modules ([`planner`], [`schedule`], [`cell_lang`],
//! [`emit`], [`jit`]); the small pieces every one of them uses (errors,
//! policies, units, the runner, the interpreter, lowering, backends) are
//! private modules whose items are re-exported here, each with one path.

#![warn(missing_docs)]

#[cfg(feature = "jit")]
mod backend;
pub mod cell_lang;
pub mod emit;
mod error;
mod interp;
#[cfg(feature = "jit")]
pub mod jit;
mod lower;
pub mod planner;
mod policy;
mod runner;
mod runs;
pub mod schedule;
mod units;

#[cfg(feature = "jit")]
pub use backend::{Backend, BackendKind};
pub use bptt_runtime::Gradients;
pub use error::{Error, MemoryShortfall};
pub use interp::{Interpret, Interpreter};
pub use lower::{Call, Lowered};
pub use planner::{Choice, Plan, PlanSummary, Strategy, Table, WeightedTable, Weights};
pub use policy::Policy;
pub use runner::{Engine, Runner, arena_layout};
pub use schedule::{Op, Report, Schedule, Verified, simulate, verify};
pub use units::{Alpha, Budget, ByteSizes, MAX_DENOMINATOR, Ticks, parse_bytes};
