//! The JIT backend's figures: compile time against the sequence length and
//! the function size, and run time against the interpreter on an LSTM.
//!
//! Run with `cargo run --release --example jit_bench` (about a minute: the
//! planner takes most of it at T = 10,000 and 100,000; `--quick` skips those
//! plans). Every figure is from one run of this program, so ratios compare
//! like with like.

use std::time::{Duration, Instant};

use bptt::jit::{CompiledSchedule, JitOptions};
use bptt::{Alpha, Budget, Interpreter, Plan, Policy, Schedule};
use bptt_runtime::{Cell, LossKind, Lstm, Readout, Rng, Rnn, Targets};
use ndarray::{Array2, Array3};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Resets the peak resident memory that [`peak_mb`] reads (Linux only).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident memory since [`reset_peak`], in MB, if known.
fn peak_mb() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0}", kb / 1024.0))
        })
        .unwrap_or_else(|| "n/a".to_owned())
}

fn plan(cell: &dyn Cell, policy: Policy, len: u32, budget: Budget) -> (Schedule, Duration) {
    let alpha = Alpha::new(cell.alpha()).expect("valid alpha");
    let start = Instant::now();
    let plan = Plan::new(policy, alpha, len, budget).expect("plannable");
    let schedule = Schedule::from_plan(&plan);
    (schedule, start.elapsed())
}

fn compile(
    schedule: Schedule,
    cell: &dyn Cell,
    readout: &Readout,
    batch: usize,
    options: JitOptions,
) -> (CompiledSchedule, Duration) {
    let start = Instant::now();
    let compiled =
        CompiledSchedule::compile_with(schedule, cell, readout, batch, options).expect("compiles");
    (compiled, start.elapsed())
}

fn compile_times(quick: bool) {
    let mut rng = Rng::new(1);
    let (input, hidden, batch) = (32, 128, 8);
    let cell = Lstm::new(input, hidden, &mut rng);
    let readout = Readout::new(LossKind::SoftmaxCrossEntropy, hidden, 16, &mut rng);
    let options = JitOptions::default();
    println!(
        "## Compile time (LSTM input {input} hidden {hidden} batch {batch}, {} calls per function, verifier {})\n",
        options.runs_per_function,
        if options.verifier { "on" } else { "off" },
    );
    println!("| T | policy | budget | plan ms | calls | functions | compile ms | us per call |");
    println!("|---:|---|---|---:|---:|---:|---:|---:|");
    let mut cases = vec![
        (1_000, Policy::Msm, Budget::Percent(5.0)),
        (1_000, Policy::Sqrt, Budget::Percent(100.0)),
        (10_000, Policy::Sqrt, Budget::Percent(100.0)),
        (100_000, Policy::Sqrt, Budget::Percent(100.0)),
    ];
    if !quick {
        // 5% of store-all at T = 100,000 is beyond the planner's table: a
        // budget of 50 hidden states plans in about half a minute.
        cases.insert(2, (10_000, Policy::Msm, Budget::Percent(5.0)));
        cases.push((100_000, Policy::Msm, Budget::Units(50.0)));
    }
    for (len, policy, budget) in cases {
        let (schedule, planning) = plan(&cell, policy, len, budget);
        let (compiled, time) = compile(schedule, &cell, &readout, batch, options);
        let budget = match budget {
            Budget::Percent(p) => format!("{p}%"),
            Budget::Units(u) => format!("{u} states"),
        };
        println!(
            "| {len} | {policy} | {budget} | {:.0} | {} | {} | {:.0} | {:.2} |",
            ms(planning),
            compiled.calls(),
            compiled.functions(),
            ms(time),
            time.as_secs_f64() * 1e6 / compiled.calls() as f64,
        );
    }

    println!("\n## Function size (T = 100000, sqrt, verifier off)\n");
    println!("| calls per function | functions | compile ms | peak MB |");
    println!("|---:|---:|---:|---:|");
    let (schedule, _) = plan(&cell, Policy::Sqrt, 100_000, Budget::Percent(100.0));
    for per in [512, 1024, 2048, 4096, 8192, 16384, usize::MAX] {
        let options = JitOptions {
            runs_per_function: per,
            verifier: false,
        };
        reset_peak();
        let (compiled, time) = compile(schedule.clone(), &cell, &readout, batch, options);
        let per = if per == usize::MAX {
            "all".to_owned()
        } else {
            per.to_string()
        };
        println!(
            "| {per} | {} | {:.0} | {} |",
            compiled.functions(),
            ms(time),
            peak_mb()
        );
    }

    println!("\n## The Cranelift verifier (as in tests)\n");
    println!("| T | policy | verifier off ms | verifier on ms |");
    println!("|---:|---|---:|---:|");
    let (schedule, _) = plan(&cell, Policy::Sqrt, 10_000, Budget::Percent(100.0));
    let [off, on] = [false, true].map(|verifier| {
        let options = JitOptions {
            verifier,
            ..JitOptions::default()
        };
        compile(schedule.clone(), &cell, &readout, batch, options).1
    });
    println!("| 10000 | sqrt | {:.0} | {:.0} |", ms(off), ms(on));
}

/// Median time per training step of the interpreter and the JIT, timed in
/// alternation so both see the same machine state, and the calls of a step.
fn run_times(
    cell: &dyn Cell,
    schedule: Schedule,
    batch: usize,
    runs: usize,
) -> (Duration, Duration, usize) {
    let len = schedule.len() as usize;
    let mut rng = Rng::new(2);
    let (input, classes) = (cell.input_size(), 16);
    let readout = Readout::new(
        LossKind::SoftmaxCrossEntropy,
        cell.output_size(),
        classes,
        &mut rng,
    );
    let x = Array3::from_shape_simple_fn((len, batch, input), || rng.uniform(-1.0, 1.0));
    let y = Array2::from_shape_simple_fn((len, batch), || rng.below(classes) as u32);
    let h0 = Array2::zeros((batch, cell.state_size()));
    let targets = Targets::Classes(y.view());
    let mut interp = Interpreter::new(schedule.clone(), cell, &readout, batch).expect("verified");
    let (mut jit, _) = compile(schedule, cell, &readout, batch, JitOptions::default());
    let mut grads = interp.gradients(cell, &readout);
    let mut jit_grads = jit.gradients(cell, &readout);
    let (mut t_interp, mut t_jit) = (Vec::new(), Vec::new());
    for round in 0..=runs {
        let start = Instant::now();
        interp
            .run(cell, &readout, x.view(), h0.view(), targets, &mut grads)
            .expect("runs");
        let a = start.elapsed();
        let start = Instant::now();
        jit.run(cell, &readout, x.view(), h0.view(), targets, &mut jit_grads)
            .expect("runs");
        let b = start.elapsed();
        if round > 0 {
            t_interp.push(a);
            t_jit.push(b);
        }
    }
    assert!(grads.bitwise_eq(&jit_grads), "the backends disagree");
    t_interp.sort();
    t_jit.sort();
    (t_interp[runs / 2], t_jit[runs / 2], interp.calls())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    compile_times(quick);

    println!("\n## Run time against the interpreter (median of alternating runs)\n");
    println!("| case | calls | interpreter ms | JIT ms | JIT / interpreter |");
    println!("|---|---:|---:|---:|---:|");
    let mut rng = Rng::new(3);
    let lstm = Lstm::new(32, 128, &mut rng);
    let (schedule, _) = plan(&lstm, Policy::Msm, 1000, Budget::Percent(5.0));
    let (interp, jit, calls) = run_times(&lstm, schedule, 8, 31);
    println!(
        "| LSTM input 32 hidden 128 batch 8, T 1000, MSM 5% | {calls} | {:.2} | {:.2} | {:.3} |",
        ms(interp),
        ms(jit),
        jit.as_secs_f64() / interp.as_secs_f64()
    );
    // A cell of one unit: the kernels cost next to nothing, so this shows
    // what each backend spends per call.
    let tiny = Rnn::new(1, 1, &mut rng);
    let (schedule, _) = plan(&tiny, Policy::Sqrt, 100_000, Budget::Percent(100.0));
    let (interp, jit, calls) = run_times(&tiny, schedule, 1, 21);
    println!(
        "| RNN of one unit, batch 1, T 100000, sqrt (dispatch cost) | {calls} | {:.2} | {:.2} | {:.3} |",
        ms(interp),
        ms(jit),
        jit.as_secs_f64() / interp.as_secs_f64()
    );
}
