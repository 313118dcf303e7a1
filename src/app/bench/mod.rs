//! The measured reproduction of the paper: real time and memory of an LSTM
//! at `T = 1000` for every policy and backend (`bptt bench`).
//!
//! One run of [`run`] builds a random LSTM problem, measures the cell's own
//! costs ([`costs::measure`]), plans store-all, Chen's sqrt(t), a fixed
//! interval, and HSM, ISM and MSM at each budget (with the unit model and, for
//! the policies asked, with time-weighted planning), builds every schedule on
//! every backend, and times iterations interleaved over all of them, so that
//! every ratio compares rows measured under the same load. For each row it
//! reports the median time per iteration, its ratio to store-all, the ratios
//! that the cost model predicts, the arena's checkpoint bytes and the peak heap
//! from a [`CountingAllocator`] when the program installs one and passes it.
//!
//! [`BenchReport`] prints the table (text, Markdown, CSV, JSON) and checks the
//! targets of `BENCHMARKS.md`; [`plot`] draws the figures.

pub mod costs;
pub mod plot;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use bptt_runtime::{Cell, CountingAllocator, Gradients, LossKind, Lstm, Readout, Rng, Targets};
use ndarray::{Array2, Array3};
use serde::Serialize;

pub use costs::CellCosts;

use bptt::backend::{Backend, BackendKind};
use bptt::error::Error;
use bptt::planner::{Plan, WeightedTable};
use bptt::policy::Policy;
use bptt::schedule::{MemorySizes, Op, Schedule, Verified, simulate};
use bptt::units::{Alpha, Budget};

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct BenchConfig {
    /// Sequence length `T`.
    pub len: u32,
    /// LSTM hidden size.
    pub hidden: usize,
    /// Input features.
    pub input: usize,
    /// Batch rows.
    pub batch: usize,
    /// Classes of the softmax read-out.
    pub classes: usize,
    /// Timed iterations per row (the median is reported).
    pub runs: usize,
    /// Untimed iterations per row before timing (at least one is always run:
    /// it measures the heap and checks the gradients).
    pub warmup: usize,
    /// Least seconds of one timed sample: short iterations are repeated and
    /// averaged up to it.
    pub sample_seconds: f64,
    /// Budgets of HSM, ISM and MSM, in percent of store-all's memory.
    pub percents: Vec<f64>,
    /// The fixed interval `k` of the interval baseline.
    pub interval: u32,
    /// The backends, by name.
    pub backends: Vec<String>,
    /// The policies also planned with measured weights.
    pub weighted: Vec<Policy>,
    /// Seed of the parameters and data.
    pub seed: u64,
    /// Rounds of the cost measurement.
    pub cost_rounds: usize,
    /// Least time per primitive per round of the cost measurement, seconds.
    pub cost_seconds: f64,
    /// The schedule whose memory over one iteration is drawn: a policy and a
    /// percent of store-all.
    pub trace: (Policy, f64),
}

impl Default for BenchConfig {
    /// The paper's setting: an LSTM with hidden 256, input 64, batch 16 at
    /// `T = 1000`, five timed runs, budgets of 1, 2, 5, 10 and 20%.
    fn default() -> Self {
        BenchConfig {
            len: 1000,
            hidden: 256,
            input: 64,
            batch: 16,
            classes: 32,
            runs: 5,
            warmup: 1,
            sample_seconds: 0.05,
            percents: vec![1.0, 2.0, 5.0, 10.0, 20.0],
            interval: 100,
            backends: BackendKind::ALL.iter().map(ToString::to_string).collect(),
            weighted: vec![Policy::Hsm, Policy::Ism, Policy::Msm],
            seed: 1,
            cost_rounds: 5,
            cost_seconds: 0.05,
            trace: (Policy::Msm, 5.0),
        }
    }
}

impl BenchConfig {
    /// A configuration that runs in well under a minute (`bptt bench --quick`):
    /// `T = 200`, hidden 64, input 16, batch 4, three runs.
    pub fn quick() -> Self {
        BenchConfig {
            len: 200,
            hidden: 64,
            input: 16,
            batch: 4,
            runs: 3,
            interval: 20,
            cost_rounds: 3,
            cost_seconds: 0.01,
            ..BenchConfig::default()
        }
    }

    /// The smallest end-to-end configuration, for tests: `T = 60`, hidden 16,
    /// batch 2, one run.
    #[cfg(test)]
    pub fn tiny() -> Self {
        BenchConfig {
            len: 60,
            hidden: 16,
            input: 4,
            batch: 2,
            classes: 4,
            runs: 1,
            warmup: 1,
            sample_seconds: 0.0,
            interval: 6,
            cost_rounds: 1,
            cost_seconds: 0.001,
            ..BenchConfig::default()
        }
    }
}

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

impl Machine {
    fn load() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "n/a".to_string())
    }

    fn cpu() -> String {
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string())
    }
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
                        tape: bptt::schedule::Tape::Slot(_),
                        ..
                    } => live += a,
                    Op::FreeHidden(_) => live -= h,
                    Op::FreeTape(_) => live -= a,
                    _ => {}
                }
                alpha.to_units(bptt::units::Ticks(live))
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
    /// [`CountingAllocator`] and passed it to [`run`]).
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

/// A planned row, before it runs.
struct Spec {
    plan: Plan,
    percent: Option<f64>,
}

/// A row built on a backend, being timed.
struct Built {
    backend: BackendKind,
    spec_index: usize,
    runner: Backend,
    grads: Gradients,
    samples: Vec<f64>,
    /// Iterations per timed sample.
    reps: u32,
    run_alloc: u64,
    heap_bytes: Option<u64>,
    identical: bool,
    checkpoint_bytes: u64,
}

fn shape_error(config: &BenchConfig) -> Error {
    Error::Shape {
        what: "bench sizes [len, hidden, input, batch, classes, runs] (len at least 2, the others at least 1)",
        expected: vec![2, 1, 1, 1, 1, 1],
        got: vec![
            config.len as usize,
            config.hidden,
            config.input,
            config.batch,
            config.classes,
            config.runs,
        ],
    }
}

/// Runs the benchmark; `log` hears about progress.
///
/// `heap` is the program's global allocator, if it counts: it gives the
/// peak-heap columns and proves that the timed iterations allocate nothing.
/// (An allocator that is not the global one is detected and ignored.)
pub fn run(
    config: &BenchConfig,
    heap: Option<&CountingAllocator>,
    log: &mut dyn FnMut(&str),
) -> Result<BenchReport, Error> {
    let started = Instant::now();
    if config.len < 2
        || config.hidden == 0
        || config.input == 0
        || config.batch == 0
        || config.classes == 0
        || config.runs == 0
    {
        return Err(shape_error(config));
    }
    let kinds = config
        .backends
        .iter()
        .map(|name| name.parse::<BackendKind>())
        .collect::<Result<Vec<_>, _>>()?;
    let machine_before = Machine::load();
    let heap = heap.filter(|h| {
        let before = h.allocations();
        drop(std::hint::black_box(Box::new(0u64)));
        h.allocations() > before
    });
    let heap_counted = heap.is_some();
    let live = || heap.map_or(0, CountingAllocator::live_bytes);
    let allocations = || heap.map_or(0, CountingAllocator::allocations);

    let mut rng = Rng::new(config.seed);
    let cell = Lstm::new(config.input, config.hidden, &mut rng);
    let readout = Readout::new(
        LossKind::SoftmaxCrossEntropy,
        config.hidden,
        config.classes,
        &mut rng,
    );
    let len = config.len as usize;
    let x =
        Array3::from_shape_simple_fn((len, config.batch, config.input), || rng.uniform(-1.0, 1.0));
    let y = Array2::from_shape_simple_fn((len, config.batch), || rng.below(config.classes) as u32);
    let h0 =
        Array2::from_shape_simple_fn((config.batch, cell.state_size()), || rng.uniform(-0.1, 0.1));
    let targets = Targets::Classes(y.view());
    let alpha = Alpha::new(cell.alpha())?;
    let sizes = MemorySizes {
        state_bytes: (4 * config.batch * cell.state_size()) as u64,
        tape_bytes: (4 * config.batch * cell.tape_size()) as u64,
    };

    log(&format!(
        "LSTM input {} hidden {} batch {}, T = {}, alpha = {alpha}: measuring the cell's costs",
        config.input, config.hidden, config.batch, config.len
    ));
    let mut sampler = costs::CostSampler::new(
        &cell,
        &readout,
        x.view(),
        h0.view(),
        targets,
        Duration::from_secs_f64(config.cost_seconds.max(0.0)),
    )?;
    for _ in 0..config.cost_rounds.max(1) {
        sampler.round()?;
    }
    let costs = sampler.costs();
    log(&format!(
        "  forward {:.1} us, forward* {:.1} us, backward {:.1} us (b/f = {:.2}), copy {:.2} us, from tape {:.2} us",
        costs.forward * 1e6,
        costs.forward_tape * 1e6,
        costs.backward * 1e6,
        costs.backward_over_forward(),
        costs.copy * 1e6,
        costs.from_tape * 1e6
    ));

    // Plans.
    log("planning");
    let mut specs = Vec::new();
    let mut planning = Vec::new();
    for policy in [
        Policy::StoreAll,
        Policy::Sqrt,
        Policy::Interval(config.interval.max(1)),
    ] {
        let plan = Plan::new(policy, alpha, config.len, Budget::Percent(100.0))?;
        specs.push(Spec {
            plan,
            percent: None,
        });
    }
    let top = config.percents.iter().copied().fold(0.0, f64::max);
    for policy in [Policy::Hsm, Policy::Ism, Policy::Msm] {
        for &pct in &config.percents {
            let start = Instant::now();
            let plan = Plan::new(policy, alpha, config.len, Budget::Percent(pct))?;
            if pct == top {
                planning.push(PlanTime {
                    policy: policy.to_string(),
                    weighted: false,
                    percent: pct,
                    seconds: start.elapsed().as_secs_f64(),
                });
            }
            specs.push(Spec {
                plan,
                percent: Some(pct),
            });
        }
    }
    for &policy in &config.weighted {
        let start = Instant::now();
        let ticks = alpha.to_ticks(Budget::Percent(top).units(alpha, config.len))?;
        let table = WeightedTable::build(policy, alpha, config.len, ticks, costs.weights())?;
        planning.push(PlanTime {
            policy: policy.to_string(),
            weighted: true,
            percent: top,
            seconds: start.elapsed().as_secs_f64(),
        });
        for &pct in &config.percents {
            let plan = Plan::weighted(&table, Budget::Percent(pct))?;
            specs.push(Spec {
                plan,
                percent: Some(pct),
            });
        }
    }
    let schedules = specs
        .iter()
        .map(|s| Verified::new(Schedule::from_plan(&s.plan)))
        .collect::<Result<Vec<_>, _>>()?;
    let trace = specs
        .iter()
        .zip(&schedules)
        .find(|(s, _)| {
            !s.plan.is_weighted()
                && s.plan.policy() == config.trace.0
                && s.percent == Some(config.trace.1)
        })
        .map(|(s, schedule)| {
            Ok::<_, Error>(Trace::of(
                schedule.schedule()?,
                format!("{} at {}% of store-all", s.plan.policy(), config.trace.1),
            ))
        })
        .transpose()?;

    // Build every row on every backend: one untimed run measures the heap and
    // checks the gradients.
    let mut built: Vec<Built> = Vec::new();
    let mut reference: Option<(f64, Gradients)> = None;
    for kind in &kinds {
        log(&format!("building {} schedules on {kind}", schedules.len()));
        for (index, spec) in specs.iter().enumerate() {
            let base = live();
            let mut runner = kind.build(&spec.plan, &cell, &readout, config.batch)?;
            let mut grads = Gradients::zeros(&cell, &readout, config.batch);
            let held = live().saturating_sub(base);
            if let Some(h) = heap {
                h.reset_peak();
            }
            let before = live();
            let loss = runner.run(&cell, &readout, x.view(), h0.view(), targets, &mut grads)?;
            let extra = heap.map_or(0, |h| h.peak_bytes().saturating_sub(before));
            let start = Instant::now();
            let mut warmups = 0u32;
            while warmups < (config.warmup as u32).saturating_sub(1) || warmups == 0 {
                runner.run(&cell, &readout, x.view(), h0.view(), targets, &mut grads)?;
                warmups += 1;
            }
            let once = start.elapsed().as_secs_f64() / f64::from(warmups);
            let reps = (config.sample_seconds / once.max(1e-9))
                .ceil()
                .clamp(1.0, 1e6) as u32;
            let identical = match &reference {
                None => {
                    reference = Some((loss, grads.clone()));
                    true
                }
                Some((l, g)) => l.to_bits() == loss.to_bits() && g.bitwise_eq(&grads),
            };
            built.push(Built {
                backend: *kind,
                spec_index: index,
                checkpoint_bytes: runner.layout().checkpoint_bytes() as u64,
                runner,
                grads,
                samples: Vec::with_capacity(config.runs),
                reps,
                run_alloc: 0,
                heap_bytes: heap_counted.then_some((held + extra) as u64),
                identical,
            });
        }
    }

    // Timed iterations, interleaved over every row in a new random order each
    // round, with a round of the cost measurement after each.
    let mut order: Vec<usize> = (0..built.len()).collect();
    let mut shuffler = Rng::new(config.seed ^ 0x5eed);
    for round in 0..config.runs {
        for i in (1..order.len()).rev() {
            order.swap(i, shuffler.below(i + 1));
        }
        for &i in &order {
            let b = &mut built[i];
            let allocated = allocations();
            let start = Instant::now();
            for _ in 0..b.reps {
                b.runner
                    .run(&cell, &readout, x.view(), h0.view(), targets, &mut b.grads)?;
            }
            b.samples
                .push(start.elapsed().as_secs_f64() / f64::from(b.reps));
            b.run_alloc += (allocations() - allocated) as u64;
        }
        sampler.round()?;
        log(&format!(
            "timed round {}/{} ({:.0} s so far)",
            round + 1,
            config.runs,
            started.elapsed().as_secs_f64()
        ));
    }

    let planning_costs = costs;
    let costs = sampler.costs();
    drop(sampler);
    let predicted: Vec<f64> = schedules.iter().map(|s| costs.predict(s)).collect();
    let mut rows: Vec<Row> = Vec::new();
    for kind in &kinds {
        let mine: Vec<&Built> = built.iter().filter(|b| b.backend == *kind).collect();
        let base = mine
            .iter()
            .find(|b| specs[b.spec_index].plan.policy() == Policy::StoreAll)
            .expect("store-all is always planned");
        let base_seconds = median(&base.samples);
        let base_predicted = predicted[base.spec_index];
        for b in &mine {
            let spec = &specs[b.spec_index];
            let plan = &spec.plan;
            let summary = plan.summary();
            let sim = simulate(schedules[b.spec_index].schedule()?, sizes)?;
            let seconds = median(&b.samples);
            let budget_units = if plan.policy().is_dynamic() {
                summary.budget
            } else {
                summary.peak_units
            };
            rows.push(Row {
                backend: *kind,
                policy: plan.policy(),
                weighted: plan.is_weighted(),
                percent: spec.percent,
                budget_units,
                forward_per_step: summary.cost_per_step,
                peak_units: summary.peak_units,
                seconds,
                best_seconds: b.samples.iter().copied().fold(f64::INFINITY, f64::min),
                samples: b.samples.clone(),
                ratio: seconds / base_seconds,
                predicted_seconds: predicted[b.spec_index],
                predicted_ratio: predicted[b.spec_index] / base_predicted,
                unit_ratio: costs.unit_ratio(summary.cost_per_step),
                checkpoint_bytes: b.checkpoint_bytes,
                plan_bytes: sim.peak_checkpoint_bytes,
                budget_bytes: (budget_units * sizes.state_bytes as f64).floor() as u64,
                checkpoint_ratio: b.checkpoint_bytes as f64 / base.checkpoint_bytes.max(1) as f64,
                heap_bytes: b.heap_bytes,
                heap_ratio: b
                    .heap_bytes
                    .zip(base.heap_bytes)
                    .map(|(h, s)| h as f64 / s.max(1) as f64),
                run_allocations: heap_counted.then_some(b.run_alloc),
                identical: b.identical,
            });
        }
    }
    drop(built);
    let mut report = BenchReport {
        config: config.clone(),
        machine: Machine {
            cpu: Machine::cpu(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads: std::env::var("BPTT_THREADS").ok(),
            load_before: machine_before,
            load_after: Machine::load(),
        },
        alpha: alpha.value(),
        state_bytes: sizes.state_bytes,
        tape_bytes: sizes.tape_bytes,
        costs,
        planning_costs,
        heap_counted,
        planning,
        rows,
        targets: Vec::new(),
        trace,
        total_seconds: 0.0,
    };
    report.targets = report.check_targets();
    report.total_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The median of samples (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let mut xs = samples.to_vec();
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn pct_label(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_string(), |p| format!("{p}%"))
}

impl BenchReport {
    /// The targets of `BENCHMARKS.md`, checked against the rows.
    pub fn check_targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for backend in self.backends() {
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.backend == backend).collect();
            // The paper's headline.
            if let Some(msm) = rows
                .iter()
                .find(|r| r.policy == Policy::Msm && !r.weighted && r.percent == Some(5.0))
            {
                let best = rows
                    .iter()
                    .filter(|r| r.percent == Some(5.0))
                    .min_by(|a, b| a.ratio.total_cmp(&b.ratio))
                    .expect("msm is one");
                targets.push(Target {
                    name: format!("{backend}: at 5% of store-all's memory, at most 1.33x its time"),
                    measured: format!(
                        "msm {:.3}x (checkpoints {:.1}% of store-all's; best at 5%: {} {:.3}x)",
                        msm.ratio,
                        100.0 * msm.checkpoint_ratio,
                        best.label(),
                        best.ratio
                    ),
                    met: msm.ratio <= 1.33,
                });
            }
            let worst = rows
                .iter()
                .max_by(|a, b| {
                    a.prediction_error()
                        .abs()
                        .total_cmp(&b.prediction_error().abs())
                })
                .expect("rows exist");
            let misses = rows
                .iter()
                .filter(|r| r.prediction_error().abs() > 0.05)
                .count();
            targets.push(Target {
                name: format!(
                    "{backend}: measured time within 5% of the cost model's prediction, every policy"
                ),
                measured: format!(
                    "{misses} of {} rows outside; worst {} {}: {:+.1}%",
                    rows.len(),
                    worst.label(),
                    pct_label(worst.percent),
                    100.0 * worst.prediction_error()
                ),
                met: misses == 0,
            });
            let worst_ratio = rows
                .iter()
                .max_by(|a, b| {
                    (a.ratio / a.predicted_ratio - 1.0)
                        .abs()
                        .total_cmp(&(b.ratio / b.predicted_ratio - 1.0).abs())
                })
                .expect("rows exist");
            let ratio_misses = rows
                .iter()
                .filter(|r| (r.ratio / r.predicted_ratio - 1.0).abs() > 0.05)
                .count();
            targets.push(Target {
                name: format!(
                    "{backend}: measured ratio to store-all within 5% of the predicted ratio, every policy"
                ),
                measured: format!(
                    "{ratio_misses} of {} rows outside; worst {} {}: {:.3}x measured, {:.3}x predicted",
                    rows.len(),
                    worst_ratio.label(),
                    pct_label(worst_ratio.percent),
                    worst_ratio.ratio,
                    worst_ratio.predicted_ratio
                ),
                met: ratio_misses == 0,
            });
            let over: Vec<&&Row> = rows
                .iter()
                .filter(|r| {
                    r.checkpoint_bytes > r.plan_bytes
                        || r.plan_bytes > r.budget_bytes
                        || r.run_allocations.unwrap_or(0) > 0
                })
                .collect();
            targets.push(Target {
                name: format!("{backend}: peak memory never above the plan"),
                measured: if over.is_empty() {
                    format!(
                        "every row: arena checkpoints = the plan's peak <= the budget{}",
                        if self.heap_counted {
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
                            .map(|r| format!("{} {}", r.label(), pct_label(r.percent)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                met: over.is_empty(),
            });
            // Time-weighted plans against the unit planner's at the same
            // policy and budget: measured and predicted changes.
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
            if !pairs.is_empty() {
                let n = pairs.len() as f64;
                // Geometric means of weighted over unit.
                let measured = (pairs
                    .iter()
                    .map(|(w, u)| (w.seconds / u.seconds).ln())
                    .sum::<f64>()
                    / n)
                    .exp();
                let predicted = (pairs
                    .iter()
                    .map(|(w, u)| (w.predicted_seconds / u.predicted_seconds).ln())
                    .sum::<f64>()
                    / n)
                    .exp();
                let faster = pairs.iter().filter(|(w, u)| w.seconds < u.seconds).count();
                let each: Vec<String> = pairs
                    .iter()
                    .map(|(w, u)| {
                        format!(
                            "{} {} {:+.1}%",
                            w.policy,
                            pct_label(w.percent),
                            100.0 * (w.seconds / u.seconds - 1.0)
                        )
                    })
                    .collect();
                targets.push(Target {
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
                });
            }
        }
        targets
    }

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

    /// One line per setting: the problem, the costs, the machine.
    pub fn header(&self) -> String {
        let c = &self.costs;
        let mut s = String::new();
        let cfg = &self.config;
        let _ = writeln!(
            s,
            "LSTM input {} hidden {} batch {} classes {}, T = {}, alpha = {} (state {} KB, tape {} KB per step)",
            cfg.input,
            cfg.hidden,
            cfg.batch,
            cfg.classes,
            cfg.len,
            self.alpha,
            self.state_bytes / 1000,
            self.tape_bytes / 1000
        );
        let _ = writeln!(
            s,
            "measured costs: forward {:.1} us, forward* {:.1} us, backward {:.1} us (b/f = {:.2}), copy {:.2} us, state from tape {:.2} us, set-up {:.1} us",
            c.forward * 1e6,
            c.forward_tape * 1e6,
            c.backward * 1e6,
            c.backward_over_forward(),
            c.copy * 1e6,
            c.from_tape * 1e6,
            c.setup * 1e6
        );
        let _ = writeln!(
            s,
            "machine: {}, {} cores, kernel threads {}; load {} before, {} after; {} timed runs per row, interleaved; {:.0} s in all",
            self.machine.cpu,
            self.machine.cores,
            self.machine.threads.as_deref().map_or_else(
                || "as many as cores".to_string(),
                |t| format!("BPTT_THREADS={t}")
            ),
            self.machine.load_before,
            self.machine.load_after,
            cfg.runs,
            self.total_seconds
        );
        for p in &self.planning {
            let _ = writeln!(
                s,
                "planning {}{} up to {}%: {:.2} s",
                p.policy,
                if p.weighted { " (time-weighted)" } else { "" },
                p.percent,
                p.seconds
            );
        }
        s
    }

    fn cells(&self, r: &Row) -> [String; 16] {
        let heap = r
            .heap_bytes
            .map_or_else(|| "n/a".to_string(), |h| format!("{:.2}", mb(h)));
        let heap_ratio = r
            .heap_ratio
            .map_or_else(|| "n/a".to_string(), |h| format!("{:.1}%", 100.0 * h));
        [
            r.backend.to_string(),
            r.label(),
            pct_label(r.percent),
            format!("{:.1}", r.budget_units),
            format!("{:.3}", r.forward_per_step),
            format!("{:.3}", r.seconds),
            format!("{:.3}", r.best_seconds),
            format!("{:.3}", r.ratio),
            format!("{:.3}", r.predicted_ratio),
            format!("{:.3}", r.unit_ratio),
            format!("{:+.1}%", 100.0 * r.prediction_error()),
            format!("{:.2}", mb(r.checkpoint_bytes)),
            format!("{:.1}%", 100.0 * r.checkpoint_ratio),
            heap,
            heap_ratio,
            if r.identical { "yes" } else { "NO" }.to_string(),
        ]
    }

    const COLUMNS: [&'static str; 16] = [
        "backend",
        "policy",
        "budget",
        "units",
        "fwd/step",
        "s/iter",
        "best s",
        "time x",
        "pred x",
        "unit x",
        "vs pred",
        "ckpt MB",
        "ckpt %",
        "heap MB",
        "heap %",
        "same grads",
    ];

    /// The table as aligned text.
    pub fn table(&self) -> String {
        let body: Vec<[String; 16]> = self.rows.iter().map(|r| self.cells(r)).collect();
        let widths: Vec<usize> = (0..16)
            .map(|i| {
                body.iter()
                    .map(|c| c[i].len())
                    .chain([Self::COLUMNS[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i < 2 {
                        format!("{c:<w$}", w = widths[i])
                    } else {
                        format!("{c:>w$}", w = widths[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        };
        let mut s = line(Self::COLUMNS.to_vec()) + "\n";
        for c in &body {
            s += &line(c.iter().map(String::as_str).collect());
            s += "\n";
        }
        s
    }

    /// The targets as text lines.
    pub fn targets_text(&self) -> String {
        self.targets
            .iter()
            .map(|t| {
                format!(
                    "[{}] {}: {}\n",
                    if t.met { "met" } else { "MISSED" },
                    t.name,
                    t.measured
                )
            })
            .collect()
    }

    /// The header, the table and the targets as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        for line in self.header().lines() {
            let _ = writeln!(s, "- {line}");
        }
        s += "\n| ";
        s += &Self::COLUMNS.join(" | ");
        s += " |\n|";
        s += &Self::COLUMNS
            .iter()
            .enumerate()
            .map(|(i, _)| if i < 2 { " --- |" } else { " ---: |" })
            .collect::<String>();
        s += "\n";
        for r in &self.rows {
            s += "| ";
            s += &self.cells(r).join(" | ");
            s += " |\n";
        }
        s += "\n";
        for t in &self.targets {
            let _ = writeln!(
                s,
                "- **{}** {}: {}",
                if t.met { "met" } else { "missed" },
                t.name,
                t.measured
            );
        }
        s
    }

    /// One CSV line per row.
    pub fn csv(&self) -> String {
        let mut s = String::from(
            "backend,policy,weighted,percent,budget_units,forward_per_step,peak_units,seconds,best_seconds,ratio,predicted_seconds,predicted_ratio,unit_ratio,checkpoint_bytes,plan_bytes,checkpoint_ratio,heap_bytes,heap_ratio,run_allocations,identical\n",
        );
        let opt = |x: Option<f64>| x.map_or_else(String::new, |v| v.to_string());
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.backend,
                r.policy,
                r.weighted,
                opt(r.percent),
                r.budget_units,
                r.forward_per_step,
                r.peak_units,
                r.seconds,
                r.best_seconds,
                r.ratio,
                r.predicted_seconds,
                r.predicted_ratio,
                r.unit_ratio,
                r.checkpoint_bytes,
                r.plan_bytes,
                r.checkpoint_ratio,
                r.heap_bytes.map_or_else(String::new, |h| h.to_string()),
                opt(r.heap_ratio),
                r.run_allocations
                    .map_or_else(String::new, |h| h.to_string()),
                r.identical
            );
        }
        s
    }

    /// Writes `bench.md`, `bench.csv`, `bench.json` and the three figures
    /// (`forward-steps.svg`, `time-memory.svg`, `memory-trace.svg`) into
    /// `dir`, creating it; returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<String>, Error> {
        std::fs::create_dir_all(dir)
            .map_err(Error::io(format!("cannot create {}", dir.display())))?;
        let mut written = Vec::new();
        let mut put = |name: &str, text: String| -> Result<(), Error> {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(Error::io(format!("cannot write {}", path.display())))?;
            written.push(path.display().to_string());
            Ok(())
        };
        put("bench.md", self.markdown())?;
        put("bench.csv", self.csv())?;
        put(
            "bench.json",
            serde_json::to_string_pretty(self)
                .map_err(|e| Error::File(format!("cannot write bench.json: {e}")))?
                + "\n",
        )?;
        let alpha = Alpha::new(self.alpha)?;
        let figures = [
            ("forward-steps.svg", 0),
            ("time-memory.svg", 1),
            ("memory-trace.svg", 2),
        ];
        for (name, which) in figures {
            let path = dir.join(name);
            match which {
                0 => plot::cost_curve(&path, self.config.len, alpha)?,
                1 => plot::time_memory(&path, self)?,
                _ => match &self.trace {
                    Some(trace) => plot::memory_trace(&path, trace, self.config.len)?,
                    None => continue,
                },
            }
            written.push(path.display().to_string());
        }
        Ok(written)
    }
}
