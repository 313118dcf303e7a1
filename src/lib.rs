//! bptt: memory-budgeted backpropagation through time, as a compiler.
//!
//! Plan a budget with [`Plan`], expand it to a [`Schedule`] of operations over
//! numbered slots, [`verify`] it, and run it with the [`Interpreter`] on any
//! [`Cell`] of the runtime.

pub mod backend;
pub mod emit;
pub mod error;
pub mod interp;
pub mod jit;
pub mod lower;
pub mod planner;
pub mod policy;
pub mod schedule;
pub mod train;
pub mod units;

pub use backend::{Backend, BackendKind};
pub use bptt_runtime::Gradients;
pub use error::Error;
pub use interp::Interpreter;
pub use lower::{Call, Lowered, lower};
pub use planner::{Choice, Plan, PlanSummary, Strategy, Table};
pub use policy::Policy;
pub use schedule::{Op, Report, Schedule, simulate, verify};
pub use units::{Alpha, Budget, Ticks};
