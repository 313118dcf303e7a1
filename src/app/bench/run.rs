//! Running the benchmark: a random LSTM problem, the cell's costs, the
//! plans, every plan built on every backend, and the timed rounds,
//! interleaved over all of them; then one [`Row`] per backend and plan.

use std::time::{Duration, Instant};

use bptt_runtime::{Cell, CountingAllocator, Gradients, LossKind, Lstm, Readout, Rng, Targets};
use ndarray::{Array2, Array3};

use bptt::Error;
use bptt::Policy;
use bptt::planner::{Plan, WeightedTable};
use bptt::schedule::{MemorySizes, Schedule, Verified, simulate};
use bptt::{Alpha, Budget};
use bptt::{Backend, BackendKind};

use super::BenchConfig;
use super::costs::{CellCosts, CostSampler, median};
use super::report::{BenchReport, Machine, PlanTime, Row, Trace};

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
    check_sizes(config)?;
    let kinds = config
        .backends
        .iter()
        .map(|name| name.parse::<BackendKind>())
        .collect::<Result<Vec<_>, _>>()?;
    let load_before = load_average();
    let heap = Heap::global(heap);
    let problem = Problem::new(config)?;

    log(&format!(
        "LSTM input {} hidden {} batch {}, T = {}, alpha = {}: measuring the cell's costs",
        config.input, config.hidden, config.batch, config.len, problem.alpha
    ));
    let mut sampler = CostSampler::new(
        &problem.cell,
        &problem.readout,
        problem.x.view(),
        problem.h0.view(),
        problem.targets(),
        Duration::from_secs_f64(config.cost_seconds.max(0.0)),
    )?;
    for _ in 0..config.cost_rounds.max(1) {
        sampler.round()?;
    }
    let planning_costs = sampler.costs();
    let c = &planning_costs;
    log(&format!(
        "  forward {:.1} us, forward* {:.1} us, backward {:.1} us (b/f = {:.2}), copy {:.2} us, from tape {:.2} us",
        c.forward * 1e6,
        c.forward_tape * 1e6,
        c.backward * 1e6,
        c.backward_over_forward(),
        c.copy * 1e6,
        c.from_tape * 1e6
    ));

    log("planning");
    let (specs, planning) = plan(config, problem.alpha, &planning_costs)?;
    let schedules = specs
        .iter()
        .map(|s| Verified::new(Schedule::from_plan(&s.plan)))
        .collect::<Result<Vec<_>, _>>()?;
    let trace = trace(config, &specs, &schedules)?;

    let mut built = build(config, &kinds, &specs, &problem, heap, log)?;
    time(
        config,
        &mut built,
        &problem,
        heap,
        &mut sampler,
        started,
        log,
    )?;
    let costs = sampler.costs();
    drop(sampler);
    let predicted: Vec<f64> = schedules.iter().map(|s| costs.predict(s)).collect();
    let mut rows = Vec::new();
    for kind in &kinds {
        let mine: Vec<&Built> = built.iter().filter(|b| b.backend == *kind).collect();
        rows.extend(rows_of(
            &mine, &specs, &schedules, &predicted, &costs, &problem, heap,
        )?);
    }
    drop(built);
    let mut report = BenchReport {
        config: config.clone(),
        machine: Machine {
            cpu: cpu_name(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads: std::env::var("BPTT_THREADS").ok(),
            load_before,
            load_after: load_average(),
        },
        alpha: problem.alpha.value(),
        state_bytes: problem.sizes.state_bytes,
        tape_bytes: problem.sizes.tape_bytes,
        costs,
        planning_costs,
        heap_counted: heap.counted(),
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

/// Refuses sizes no benchmark runs with: `T` below 2, anything else zero.
fn check_sizes(config: &BenchConfig) -> Result<(), Error> {
    let got = vec![
        config.len as usize,
        config.hidden,
        config.input,
        config.batch,
        config.classes,
        config.runs,
    ];
    let expected = vec![2, 1, 1, 1, 1, 1];
    if got.iter().zip(&expected).all(|(g, least)| g >= least) {
        return Ok(());
    }
    Err(Error::Shape {
        what: "bench sizes [len, hidden, input, batch, classes, runs] (len at least 2, the others at least 1)",
        expected,
        got,
    })
}

/// `/proc/loadavg`'s 1, 5 and 15 minute loads (`n/a` where there is none).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".to_string())
}

/// The CPU's model name (the architecture where it is not known).
fn cpu_name() -> String {
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

/// The program's counting allocator, when it is the global one.
#[derive(Clone, Copy)]
struct Heap<'a>(Option<&'a CountingAllocator>);

impl<'a> Heap<'a> {
    /// `heap`, if an allocation here shows in it (it is the global
    /// allocator); else nothing is counted.
    fn global(heap: Option<&'a CountingAllocator>) -> Self {
        Heap(heap.filter(|h| {
            let before = h.allocations();
            drop(std::hint::black_box(Box::new(0u64)));
            h.allocations() > before
        }))
    }

    /// Whether the heap is counted.
    fn counted(self) -> bool {
        self.0.is_some()
    }

    /// Bytes allocated now (0 when not counted).
    fn live(self) -> usize {
        self.0.map_or(0, CountingAllocator::live_bytes)
    }

    /// Allocations so far (0 when not counted).
    fn allocations(self) -> usize {
        self.0.map_or(0, CountingAllocator::allocations)
    }

    /// Starts a new peak at the bytes allocated now.
    fn reset_peak(self) {
        if let Some(h) = self.0 {
            h.reset_peak();
        }
    }

    /// The peak since the last reset over `base` bytes (0 when not counted).
    fn peak_above(self, base: usize) -> usize {
        self.0.map_or(0, |h| h.peak_bytes().saturating_sub(base))
    }
}

/// The random LSTM problem every row runs: the cell, the read-out, the
/// data, and the sizes of a state and a tape.
struct Problem {
    cell: Lstm,
    readout: Readout,
    x: Array3<f32>,
    y: Array2<u32>,
    h0: Array2<f32>,
    alpha: Alpha,
    sizes: MemorySizes,
}

impl Problem {
    /// The problem of `config`'s sizes, drawn from its seed.
    fn new(config: &BenchConfig) -> Result<Self, Error> {
        let mut rng = Rng::new(config.seed);
        let cell = Lstm::new(config.input, config.hidden, &mut rng);
        let readout = Readout::new(
            LossKind::SoftmaxCrossEntropy,
            config.hidden,
            config.classes,
            &mut rng,
        );
        let len = config.len as usize;
        let x = Array3::from_shape_simple_fn((len, config.batch, config.input), || {
            rng.uniform(-1.0, 1.0)
        });
        let y =
            Array2::from_shape_simple_fn((len, config.batch), || rng.below(config.classes) as u32);
        let h0 = Array2::from_shape_simple_fn((config.batch, cell.state_size()), || {
            rng.uniform(-0.1, 0.1)
        });
        let alpha = Alpha::new(cell.alpha())?;
        let sizes = MemorySizes {
            state_bytes: (4 * config.batch * cell.state_size()) as u64,
            tape_bytes: (4 * config.batch * cell.tape_size()) as u64,
        };
        Ok(Problem {
            cell,
            readout,
            x,
            y,
            h0,
            alpha,
            sizes,
        })
    }

    /// The targets: a class per step and row.
    fn targets(&self) -> Targets<'_> {
        Targets::Classes(self.y.view())
    }

    /// One iteration on `runner`; the loss.
    fn run(&self, runner: &mut Backend, grads: &mut Gradients) -> Result<f64, Error> {
        runner.run(
            &self.cell,
            &self.readout,
            self.x.view(),
            self.h0.view(),
            self.targets(),
            grads,
        )
    }
}

/// A planned row, before it runs.
struct Spec {
    plan: Plan,
    percent: Option<f64>,
}

/// Plans every row: the baselines (store-all, sqrt(t), the interval), HSM,
/// ISM and MSM at each budget, and the policies asked with time-weighted
/// planning on `costs`; with how long the largest tables took to build.
fn plan(
    config: &BenchConfig,
    alpha: Alpha,
    costs: &CellCosts,
) -> Result<(Vec<Spec>, Vec<PlanTime>), Error> {
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
    Ok((specs, planning))
}

/// The live memory of the schedule `config.trace` names (unit-planned), if
/// it was planned.
fn trace(
    config: &BenchConfig,
    specs: &[Spec],
    schedules: &[Verified],
) -> Result<Option<Trace>, Error> {
    let (policy, percent) = config.trace;
    specs
        .iter()
        .zip(schedules)
        .find(|(s, _)| {
            !s.plan.is_weighted() && s.plan.policy() == policy && s.percent == Some(percent)
        })
        .map(|(s, schedule)| {
            Ok(Trace::of(
                schedule.schedule()?,
                format!("{} at {percent}% of store-all", s.plan.policy()),
            ))
        })
        .transpose()
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

/// Builds every row on every backend. One untimed run of each measures its
/// heap and checks its loss and gradients against the first row's
/// (store-all's on the first backend); the warm-up sets how many iterations
/// a timed sample takes.
fn build(
    config: &BenchConfig,
    kinds: &[BackendKind],
    specs: &[Spec],
    problem: &Problem,
    heap: Heap,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Built>, Error> {
    let mut built: Vec<Built> = Vec::new();
    let mut reference: Option<(f64, Gradients)> = None;
    let (cell, readout) = (&problem.cell, &problem.readout);
    for kind in kinds {
        log(&format!("building {} schedules on {kind}", specs.len()));
        for (index, spec) in specs.iter().enumerate() {
            let base = heap.live();
            let mut runner = kind.build(&spec.plan, cell, readout, config.batch)?;
            let mut grads = Gradients::zeros(cell, readout, config.batch);
            let held = heap.live().saturating_sub(base);
            heap.reset_peak();
            let before = heap.live();
            let loss = problem.run(&mut runner, &mut grads)?;
            let extra = heap.peak_above(before);
            let start = Instant::now();
            let mut warmups = 0u32;
            while warmups < (config.warmup as u32).saturating_sub(1) || warmups == 0 {
                problem.run(&mut runner, &mut grads)?;
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
                heap_bytes: heap.counted().then_some((held + extra) as u64),
                identical,
            });
        }
    }
    Ok(built)
}

/// The timed iterations: `config.runs` rounds over every row in a new random
/// order each, with a round of the cost measurement after each, so that the
/// rows and the costs see the same load.
fn time(
    config: &BenchConfig,
    built: &mut [Built],
    problem: &Problem,
    heap: Heap,
    sampler: &mut CostSampler,
    started: Instant,
    log: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let mut order: Vec<usize> = (0..built.len()).collect();
    let mut shuffler = Rng::new(config.seed ^ 0x5eed);
    for round in 0..config.runs {
        for i in (1..order.len()).rev() {
            order.swap(i, shuffler.below(i + 1));
        }
        for &i in &order {
            let b = &mut built[i];
            let allocated = heap.allocations();
            let start = Instant::now();
            for _ in 0..b.reps {
                problem.run(&mut b.runner, &mut b.grads)?;
            }
            b.samples
                .push(start.elapsed().as_secs_f64() / f64::from(b.reps));
            b.run_alloc += (heap.allocations() - allocated) as u64;
        }
        sampler.round()?;
        log(&format!(
            "timed round {}/{} ({:.0} s so far)",
            round + 1,
            config.runs,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// The rows of one backend's built plans (`mine`), each against that
/// backend's store-all; `predicted` is each plan's predicted seconds.
fn rows_of(
    mine: &[&Built],
    specs: &[Spec],
    schedules: &[Verified],
    predicted: &[f64],
    costs: &CellCosts,
    problem: &Problem,
    heap: Heap,
) -> Result<Vec<Row>, Error> {
    let base = mine
        .iter()
        .find(|b| specs[b.spec_index].plan.policy() == Policy::StoreAll)
        .expect("store-all is always planned");
    let base_seconds = median(&base.samples);
    let base_predicted = predicted[base.spec_index];
    let mut rows = Vec::new();
    for b in mine {
        let spec = &specs[b.spec_index];
        let plan = &spec.plan;
        let summary = plan.summary();
        let sim = simulate(schedules[b.spec_index].schedule()?, problem.sizes)?;
        let seconds = median(&b.samples);
        let budget_units = if plan.policy().is_dynamic() {
            summary.budget
        } else {
            summary.peak_units
        };
        rows.push(Row {
            backend: b.backend,
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
            budget_bytes: (budget_units * problem.sizes.state_bytes as f64).floor() as u64,
            checkpoint_ratio: b.checkpoint_bytes as f64 / base.checkpoint_bytes.max(1) as f64,
            heap_bytes: b.heap_bytes,
            heap_ratio: b
                .heap_bytes
                .zip(base.heap_bytes)
                .map(|(h, s)| h as f64 / s.max(1) as f64),
            run_allocations: heap.counted().then_some(b.run_alloc),
            identical: b.identical,
        });
    }
    Ok(rows)
}
