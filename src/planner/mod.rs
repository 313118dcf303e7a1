//! The planner: the paper's dynamic programs and the baselines.
//!
//! A [`Table`] holds `Q(t, m)` and the arg-min `D(t, m)` of HSM, ISM or MSM
//! for every shorter length and smaller budget; [`Plan`] wraps a table (or a
//! baseline rule) for one `(T, m)` and answers the cost and peak memory.

mod choice;
mod closed;
mod closed_plan;
mod inverse;
pub mod memory;
mod plan;
mod reference;
mod regime;
mod table;
pub(crate) mod walk;
mod weighted;
mod within;

pub use choice::Choice;
pub use closed_plan::ClosedPlanner;
pub use inverse::least_budget;
pub use plan::{Method, Plan, PlanSummary, Planner, Strategy, TABLE_CELLS};
#[doc(hidden)]
pub use reference::brute_force_costs;
pub use table::{COST_CAP, MAX_CELLS, Table};
pub use walk::{Event, Segment, Stored, Walk};
pub use weighted::{Origin, WEIGHTED_MAX_CELLS, WeightedTable, Weights};
pub use within::plan_within;

/// The longest sequence bptt plans for.
pub const MAX_LEN: u32 = 1 << 24;
