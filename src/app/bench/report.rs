//! What one run of the benchmark measured: the machine, the cell's costs,
//! the planners' times and one row per backend and plan, serialised as the
//! JSON report; the live memory of one schedule, drawn.

use serde::Serialize;

use bptt::BackendKind;
use bptt::Policy;
use bptt::Ticks;
use bptt::schedule::{Op, Schedule, Tape};

use super::BenchConfig;
use super::costs::CellCosts;
use super::targets::Target;

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: String,
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// `BPTT_THREADS`, which caps the kernels' threads, if set.
    pub threads: Option<String>,
    /// `/proc/loadavg`'s 1, 5 and 15 minute loads when the run started.
    pub load_before: String,
    /// The same when it ended.
    pub load_after: String,
}

/// One measured row: a backend running one plan.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The backend.
    pub backend: BackendKind,
    /// The policy (`msm`, `store-all`, `interval:100`, ...).
    pub policy: Policy,
    /// Whether the plan minimises measured time instead of forward steps.
    pub weighted: bool,
    /// The budget asked, in percent of store-all (dynamic programs only).
    pub percent: Option<f64>,
    /// The budget in hidden-state units (the plan's peak for baselines).
    pub budget_units: f64,
    /// Forward steps per time step.
    pub forward_per_step: f64,
    /// The plan's peak checkpoint memory in hidden-state units.
    pub peak_units: f64,
    /// Median seconds per iteration.
    pub seconds: f64,
    /// The fastest timed iteration, seconds (what the row costs when nothing
    /// else competes for the machine).
    pub best_seconds: f64,
    /// Every timed iteration, seconds.
    pub samples: Vec<f64>,
    /// Median time over store-all's on the same backend.
    pub ratio: f64,
    /// Seconds predicted from the measured costs of the schedule's calls.
    pub predicted_seconds: f64,
    /// That prediction over store-all's.
    pub predicted_ratio: f64,
    /// The unit model's ratio with the measured `b / f`.
    pub unit_ratio: f64,
    /// Checkpoint bytes of the arena (the stack, exactly the plan's peak).
    pub checkpoint_bytes: u64,
    /// The plan's peak checkpoint bytes, from symbolic execution.
    pub plan_bytes: u64,
    /// The budget in bytes (the plan's peak for baselines).
    pub budget_bytes: u64,
    /// Checkpoint bytes over store-all's.
    pub checkpoint_ratio: f64,
    /// Peak heap bytes while the row runs: its schedule, arena, gradients and
    /// anything allocated during an iteration (when counted).
    pub heap_bytes: Option<u64>,
    /// That over store-all's.
    pub heap_ratio: Option<f64>,
    /// Heap allocations during the timed iterations (when counted; should be 0).
    pub run_allocations: Option<u64>,
    /// Whether the loss and gradients are bitwise store-all's.
    pub identical: bool,
}

impl Row {
    /// The policy with a `-w` suffix for time-weighted plans.
    pub fn label(&self) -> String {
        if self.weighted {
            format!("{}-w", self.policy)
        } else {
            self.policy.to_string()
        }
    }

    /// The budget asked, as a label: `5%`, or `-` for a baseline.
    pub fn budget_label(&self) -> String {
        self.percent
            .map_or_else(|| "-".to_string(), |p| format!("{p}%"))
    }

    /// Measured over predicted seconds.
    pub fn prediction_error(&self) -> f64 {
        self.seconds / self.predicted_seconds - 1.0
    }
}

/// How long a planner took.
#[derive(Debug, Clone, Serialize)]
pub struct PlanTime {
    /// The policy.
    pub policy: String,
    /// Whether time-weighted.
    pub weighted: bool,
    /// The budget in percent of store-all the table was built for.
    pub percent: f64,
    /// Seconds to build the table.
    pub seconds: f64,
}

/// Live checkpoint memory over one iteration of a schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// Which schedule.
    pub label: String,
    /// Its budget in hidden-state units.
    pub budget_units: f64,
    /// Live units after each operation.
    pub live_units: Vec<f64>,
}

impl Trace {
    /// The live checkpoint units after each operation of `schedule`.
    pub fn of(schedule: &Schedule, label: String) -> Self {
        let alpha = schedule.alpha();
        let (h, a) = (alpha.hidden().0, alpha.tape().0);
        let mut live = 0u32;
        let live_units = schedule
            .ops()
            .iter()
            .map(|op| {
                match op {
                    Op::StoreHidden { .. } => live += h,
                    Op::ForwardTape {
                        tape: Tape::Slot(_),
                        ..
                    } => live += a,
                    Op::FreeHidden(_) => live -= h,
                    Op::FreeTape(_) => live -= a,
                    _ => {}
                }
                alpha.to_units(Ticks(live))
            })
            .collect();
        Trace {
            label,
            budget_units: alpha.to_units(schedule.budget()),
            live_units,
        }
    }
}

/// What one run of the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// What was asked.
    pub config: BenchConfig,
    /// Where it ran.
    pub machine: Machine,
    /// The LSTM's `alpha` (tape over state).
    pub alpha: f64,
    /// Bytes of one hidden state (whole batch).
    pub state_bytes: u64,
    /// Bytes of one tape (whole batch).
    pub tape_bytes: u64,
    /// The cell's measured costs, seconds per call: the median over every
    /// round (before planning and between the timed rounds); the predictions
    /// use them.
    pub costs: CellCosts,
    /// The costs measured before planning, which the time-weighted plans used.
    pub planning_costs: CellCosts,
    /// Whether the heap was counted (the program installs a
    /// counting allocator and passed it to [`run`](super::run)).
    pub heap_counted: bool,
    /// Table build times.
    pub planning: Vec<PlanTime>,
    /// The rows, grouped by backend.
    pub rows: Vec<Row>,
    /// The targets, met or missed.
    pub targets: Vec<Target>,
    /// Live memory over one iteration of the traced schedule.
    #[serde(skip)]
    pub trace: Option<Trace>,
    /// Seconds the whole run took.
    pub total_seconds: f64,
}

impl BenchReport {
    /// The backends measured, in order.
    pub fn backends(&self) -> Vec<BackendKind> {
        let mut kinds: Vec<BackendKind> = Vec::new();
        for row in &self.rows {
            if !kinds.contains(&row.backend) {
                kinds.push(row.backend);
            }
        }
        kinds
    }
}
