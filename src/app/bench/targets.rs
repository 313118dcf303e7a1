//! The targets of `BENCHMARKS.md`, checked against a report's rows: the
//! paper's headline, the cost model's predictions, memory, and time-weighted
//! planning against the unit planner, for each backend.

use serde::Serialize;

use bptt::BackendKind;
use bptt::Policy;

use super::report::{BenchReport, Row};

/// A target of `BENCHMARKS.md`, met or missed.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is asked.
    pub name: String,
    /// What was measured.
    pub measured: String,
    /// Whether it was met.
    pub met: bool,
}

/// The largest error allowed between a measurement and its prediction.
const PREDICTION_TOLERANCE: f64 = 0.05;

impl BenchReport {
    /// The targets of `BENCHMARKS.md`, checked against the rows.
    pub fn check_targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for backend in self.backends() {
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.backend == backend).collect();
            targets.extend(headline(backend, &rows));
            targets.push(predicted_time(backend, &rows));
            targets.push(predicted_ratio(backend, &rows));
            targets.push(memory(backend, &rows, self.heap_counted));
            targets.extend(weighted(backend, &rows));
        }
        targets
    }
}

/// The paper's headline: MSM at 5% of store-all's memory within 1.33x its
/// time (when 5% was measured).
fn headline(backend: BackendKind, rows: &[&Row]) -> Option<Target> {
    let msm = rows
        .iter()
        .find(|r| r.policy == Policy::Msm && !r.weighted && r.percent == Some(5.0))?;
    let best = rows
        .iter()
        .filter(|r| r.percent == Some(5.0))
        .min_by(|a, b| a.ratio.total_cmp(&b.ratio))
        .expect("msm is one");
    Some(Target {
        name: format!("{backend}: at 5% of store-all's memory, at most 1.33x its time"),
        measured: format!(
            "msm {:.3}x (checkpoints {:.1}% of store-all's; best at 5%: {} {:.3}x)",
            msm.ratio,
            100.0 * msm.checkpoint_ratio,
            best.label(),
            best.ratio
        ),
        met: msm.ratio <= 1.33,
    })
}

/// The row with the largest `error` in size, and how many rows are outside
/// the tolerance.
fn worst<'r>(rows: &[&'r Row], error: impl Fn(&Row) -> f64) -> (&'r Row, usize) {
    let worst = rows
        .iter()
        .max_by(|a, b| error(a).abs().total_cmp(&error(b).abs()))
        .expect("rows exist");
    let misses = rows
        .iter()
        .filter(|r| error(r).abs() > PREDICTION_TOLERANCE)
        .count();
    (worst, misses)
}

/// Every row's measured time within 5% of the cost model's prediction.
fn predicted_time(backend: BackendKind, rows: &[&Row]) -> Target {
    let (worst, misses) = worst(rows, Row::prediction_error);
    Target {
        name: format!(
            "{backend}: measured time within 5% of the cost model's prediction, every policy"
        ),
        measured: format!(
            "{misses} of {} rows outside; worst {} {}: {:+.1}%",
            rows.len(),
            worst.label(),
            worst.budget_label(),
            100.0 * worst.prediction_error()
        ),
        met: misses == 0,
    }
}

/// Every row's ratio to store-all within 5% of the predicted ratio.
fn predicted_ratio(backend: BackendKind, rows: &[&Row]) -> Target {
    let (worst, misses) = worst(rows, |r| r.ratio / r.predicted_ratio - 1.0);
    Target {
        name: format!(
            "{backend}: measured ratio to store-all within 5% of the predicted ratio, every policy"
        ),
        measured: format!(
            "{misses} of {} rows outside; worst {} {}: {:.3}x measured, {:.3}x predicted",
            rows.len(),
            worst.label(),
            worst.budget_label(),
            worst.ratio,
            worst.predicted_ratio
        ),
        met: misses == 0,
    }
}

/// Every row's arena holds the plan's peak, within the budget, and the
/// timed iterations allocate nothing.
fn memory(backend: BackendKind, rows: &[&Row], heap_counted: bool) -> Target {
    let over: Vec<&&Row> = rows
        .iter()
        .filter(|r| {
            r.checkpoint_bytes > r.plan_bytes
                || r.plan_bytes > r.budget_bytes
                || r.run_allocations.unwrap_or(0) > 0
        })
        .collect();
    Target {
        name: format!("{backend}: peak memory never above the plan"),
        measured: if over.is_empty() {
            format!(
                "every row: arena checkpoints = the plan's peak <= the budget{}",
                if heap_counted {
                    "; no allocation during the timed iterations"
                } else {
                    " (heap not counted)"
                }
            )
        } else {
            format!(
                "{} rows over: {}",
                over.len(),
                over.iter()
                    .map(|r| format!("{} {}", r.label(), r.budget_label()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        met: over.is_empty(),
    }
}

/// Time-weighted plans against the unit planner's at the same policy and
/// budget: measured and predicted changes (when any was planned).
fn weighted(backend: BackendKind, rows: &[&Row]) -> Option<Target> {
    let pairs: Vec<(&Row, &Row)> = rows
        .iter()
        .filter(|r| r.weighted)
        .filter_map(|w| {
            let unit = rows
                .iter()
                .find(|u| !u.weighted && u.policy == w.policy && u.percent == w.percent)?;
            Some((*w, *unit))
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    // Geometric means of weighted over unit.
    let mean = |ratio: &dyn Fn(&Row, &Row) -> f64| {
        (pairs.iter().map(|(w, u)| ratio(w, u).ln()).sum::<f64>() / pairs.len() as f64).exp()
    };
    let measured = mean(&|w, u| w.seconds / u.seconds);
    let predicted = mean(&|w, u| w.predicted_seconds / u.predicted_seconds);
    let faster = pairs.iter().filter(|(w, u)| w.seconds < u.seconds).count();
    let each: Vec<String> = pairs
        .iter()
        .map(|(w, u)| {
            format!(
                "{} {} {:+.1}%",
                w.policy,
                w.budget_label(),
                100.0 * (w.seconds / u.seconds - 1.0)
            )
        })
        .collect();
    Some(Target {
        name: format!(
            "{backend}: time-weighted plans beat the unit planner in measured time (comparison)"
        ),
        measured: format!(
            "{:+.2}% on average (the model predicted {:+.2}%); faster in {faster} of {}: {}",
            100.0 * (measured - 1.0),
            100.0 * (predicted - 1.0),
            pairs.len(),
            each.join(", ")
        ),
        met: measured < 1.0,
    })
}
