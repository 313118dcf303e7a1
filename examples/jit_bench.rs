//! The JIT backend's figures: compile time and code against the sequence
//! length (runs as loops against every call unrolled), the function size,
//! and run time against the interpreter and against unrolled code.
//!
//! Run with `cargo run --release --example jit_bench` (about a minute;
//! `--quick` skips T = 1,000,000). Every figure is from one run of this
//! program, so ratios compare like with like.

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
        "## Compile time and code (LSTM input {input} hidden {hidden} batch {batch}, {} runs per function, verifier {})\n",
        options.runs_per_function,
        if options.verifier { "on" } else { "off" },
    );
    println!(
        "Runs of calls as loops against every call unrolled (the code before loops), one run of this program.\n"
    );
    println!(
        "| T | policy | budget | plan ms | calls | runs | code | functions | compile ms | peak MB |"
    );
    println!("|---:|---|---|---:|---:|---:|---|---:|---:|---:|");
    let mut cases = vec![
        (1_000, Policy::Msm, Budget::Percent(5.0)),
        (1_000, Policy::Sqrt, Budget::Percent(100.0)),
        (100_000, Policy::Msm, Budget::Percent(5.0)),
        (100_000, Policy::Sqrt, Budget::Percent(100.0)),
    ];
    if !quick {
        cases.push((1_000_000, Policy::Msm, Budget::Percent(5.0)));
        cases.push((1_000_000, Policy::Msm, Budget::Percent(1.0)));
    }
    for (len, policy, budget) in cases {
        let (schedule, planning) = plan(&cell, policy, len, budget);
        // Unrolled code at T = 1e6 would hold millions of calls: not built.
        let forms: &[bool] = if len > 100_000 {
            &[true]
        } else {
            &[true, false]
        };
        for &loops in forms {
            let options = JitOptions { loops, ..options };
            reset_peak();
            let (compiled, time) = compile(schedule.clone(), &cell, &readout, batch, options);
            let budget = match budget {
                Budget::Percent(p) => format!("{p}%"),
                Budget::Units(u) => format!("{u} states"),
            };
            println!(
                "| {len} | {policy} | {budget} | {:.0} | {} | {} | {} | {} | {:.0} | {} |",
                ms(planning),
                compiled.calls(),
                compiled.engine().runs(),
                if loops { "loops" } else { "unrolled" },
                compiled.functions(),
                ms(time),
                peak_mb(),
            );
        }
    }

    println!("\n## Function size (T = 100000, sqrt, unrolled, verifier off)\n");
    println!("| calls per function | functions | compile ms | peak MB |");
    println!("|---:|---:|---:|---:|");
    let (schedule, _) = plan(&cell, Policy::Sqrt, 100_000, Budget::Percent(100.0));
    for per in [512, 1024, 2048, 4096, 8192, 16384, usize::MAX] {
        let options = JitOptions {
            runs_per_function: per,
            verifier: false,
            loops: false,
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

/// Median time per training step of the interpreter, the JIT with loops and
/// the JIT unrolled, timed in alternation so all see the same machine state,
/// and the calls of a step.
fn run_times(
    cell: &dyn Cell,
    schedule: Schedule,
    batch: usize,
    runs: usize,
) -> ([Duration; 3], usize) {
    let len = schedule.seq_len() as usize;
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
    let jit = |loops| {
        let options = JitOptions {
            loops,
            ..JitOptions::default()
        };
        compile(schedule.clone(), cell, &readout, batch, options).0
    };
    let (mut loops, mut unrolled) = (jit(true), jit(false));
    let mut grads = [0, 1, 2].map(|_| interp.gradients(cell, &readout));
    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..=runs {
        let mut time = |k: usize, run: &mut dyn FnMut(&mut bptt::Gradients)| {
            let start = Instant::now();
            run(&mut grads[k]);
            if round > 0 {
                times[k].push(start.elapsed());
            }
        };
        time(0, &mut |g| {
            interp
                .run(cell, &readout, x.view(), h0.view(), targets, g)
                .expect("runs");
        });
        time(1, &mut |g| {
            loops
                .run(cell, &readout, x.view(), h0.view(), targets, g)
                .expect("runs");
        });
        time(2, &mut |g| {
            unrolled
                .run(cell, &readout, x.view(), h0.view(), targets, g)
                .expect("runs");
        });
    }
    assert!(
        grads[0].bitwise_eq(&grads[1]) && grads[0].bitwise_eq(&grads[2]),
        "the backends disagree"
    );
    let median = |t: &mut Vec<Duration>| {
        t.sort();
        t[runs / 2]
    };
    let [a, b, c] = &mut times;
    ([median(a), median(b), median(c)], interp.calls())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    compile_times(quick);

    println!("\n## Run time against the interpreter (median of alternating runs)\n");
    println!(
        "| case | calls | interpreter ms | JIT loops ms | JIT unrolled ms | loops / interpreter | loops / unrolled |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let row = |case: &str, ([interp, loops, unrolled], calls): ([Duration; 3], usize)| {
        println!(
            "| {case} | {calls} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} |",
            ms(interp),
            ms(loops),
            ms(unrolled),
            loops.as_secs_f64() / interp.as_secs_f64(),
            loops.as_secs_f64() / unrolled.as_secs_f64(),
        );
    };
    let mut rng = Rng::new(3);
    let lstm = Lstm::new(32, 128, &mut rng);
    let (schedule, _) = plan(&lstm, Policy::Msm, 1000, Budget::Percent(5.0));
    row(
        "LSTM input 32 hidden 128 batch 8, T 1000, MSM 5%",
        run_times(&lstm, schedule, 8, 31),
    );
    // A cell of one unit: the kernels cost next to nothing, so this shows
    // what each backend spends per call.
    let tiny = Rnn::new(1, 1, &mut rng);
    let (schedule, _) = plan(&tiny, Policy::Sqrt, 100_000, Budget::Percent(100.0));
    row(
        "RNN of one unit, batch 1, T 100000, sqrt (dispatch cost)",
        run_times(&tiny, schedule, 1, 21),
    );
    let (schedule, _) = plan(&tiny, Policy::Msm, 100_000, Budget::Percent(5.0));
    row(
        "RNN of one unit, batch 1, T 100000, MSM 5% (dispatch cost)",
        run_times(&tiny, schedule, 1, 21),
    );
}
