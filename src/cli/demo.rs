//! `bptt demo`: the budgeted schedule against store-all on a real LSTM.

use std::time::Instant;

use clap::Args;
use ndarray::{Array2, Array3};

use crate::app::memory::CellShape;
use bptt::{Alpha, BackendKind, Budget, Error, Gradients, Plan, Policy};
use bptt_runtime::{Cell, LossKind, Lstm, Readout, Rng, Targets};

/// Arguments of `bptt demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Sequence length T.
    #[arg(long, default_value_t = 1000)]
    len: u32,
    /// LSTM hidden size.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Input features.
    #[arg(long, default_value_t = 32)]
    input: usize,
    /// Batch rows.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Checkpoint budget: units of hidden state or percent of store-all.
    #[arg(long, default_value = "5%", allow_hyphen_values = true)]
    budget: String,
    /// Policy of the budgeted run.
    #[arg(long, default_value = "msm")]
    policy: String,
    /// interp or jit.
    #[arg(long, default_value = "interp")]
    backend: String,
    /// Timed iterations per schedule (the median is reported).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Seed of the parameters and data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The most memory the demo may allocate (e.g. 2GB) [default: the
    /// memory available].
    #[arg(long, value_parser = super::memory_size)]
    max_memory: Option<u64>,
}

/// The most timed iterations `--iters` takes.
const MAX_ITERS: usize = 10_000;

struct Measured {
    plan: Plan,
    seconds: f64,
    checkpoint_bytes: usize,
    loss: f64,
    grads: Gradients,
}

pub fn demo(args: &DemoArgs) -> Result<(), Error> {
    super::budget_in_range(&args.budget)?;
    let policy: Policy = args.policy.parse()?;
    let budget: Budget = args.budget.parse()?;
    let backend: BackendKind = args.backend.parse()?;
    if args.batch == 0 || args.hidden == 0 || args.input == 0 || args.iters == 0 {
        return Err(Error::Shape {
            what: "demo sizes [batch, hidden, input, iters] (each at least 1)",
            expected: vec![1, 1, 1, 1],
            got: vec![args.batch, args.hidden, args.input, args.iters],
        });
    }
    if args.iters > MAX_ITERS {
        return Err(Error::Flag(format!(
            "--iters {} is too many (at most {MAX_ITERS})",
            args.iters
        )));
    }
    let classes = 16;
    // Both plans first, then what they need, then the allocations.
    let shape = CellShape::lstm(args.input, args.hidden);
    let alpha = Alpha::new(shape.alpha())?;
    let base_plan = Plan::new(Policy::StoreAll, alpha, args.len, Budget::Percent(100.0))?;
    let budgeted_plan = Plan::new(policy, alpha, args.len, budget)?;
    let (len, rows) = (u128::from(args.len), args.batch as u128);
    shape
        .run(&base_plan, args.batch, classes, backend)
        .and(shape.run(&budgeted_plan, args.batch, classes, backend))
        .floats(
            "data",
            len.saturating_mul(rows)
                .saturating_mul((args.input as u128).saturating_add(1)),
        )
        .check("the demo", args.max_memory)?;
    let mut rng = Rng::new(args.seed);
    let cell = Lstm::new(args.input, args.hidden, &mut rng);
    let readout = Readout::new(
        LossKind::SoftmaxCrossEntropy,
        args.hidden,
        classes,
        &mut rng,
    );
    let len = args.len as usize;
    let x = Array3::from_shape_simple_fn((len, args.batch, args.input), || rng.uniform(-1.0, 1.0));
    let y = Array2::from_shape_simple_fn((len, args.batch), || rng.below(classes) as u32);
    let h0 = Array2::zeros((args.batch, cell.state_size()));
    let targets = Targets::Classes(y.view());
    println!(
        "LSTM input {} hidden {} batch {}, T = {}, alpha = {} (tape {} floats, state {} per row)",
        args.input,
        args.hidden,
        args.batch,
        args.len,
        alpha,
        cell.tape_size(),
        cell.state_size()
    );
    let measure = |plan: Plan| -> Result<Measured, Error> {
        let mut runner = backend.build(&plan, &cell, &readout, args.batch)?;
        let mut grads = Gradients::zeros(&cell, &readout, args.batch);
        let mut times = Vec::with_capacity(args.iters);
        let mut loss = 0.0;
        for _ in 0..args.iters {
            let start = Instant::now();
            loss = runner.run(&cell, &readout, x.view(), h0.view(), targets, &mut grads)?;
            times.push(start.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok(Measured {
            checkpoint_bytes: runner.layout().checkpoint_bytes(),
            plan,
            seconds: times[times.len() / 2],
            loss,
            grads,
        })
    };
    let base = measure(base_plan)?;
    let budgeted = measure(budgeted_plan)?;
    println!(
        "{:<10} {:>9} {:>10} {:>12} {:>9} {:>10} {:>10} {:>10}",
        "policy", "budget", "fwd/step", "checkpoints", "memory", "s/iter", "time", "predicted"
    );
    for m in [&base, &budgeted] {
        let s = m.plan.summary();
        // The unit model with a backward step worth two forward steps.
        let predicted = (s.cost_per_step + 2.0) / 3.0;
        println!(
            "{:<10} {:>9.1} {:>10.3} {:>10.2}MB {:>8.1}% {:>10.3} {:>9.2}x {:>9.2}x",
            s.policy.to_string(),
            s.budget,
            s.cost_per_step,
            m.checkpoint_bytes as f64 / 1e6,
            100.0 * m.checkpoint_bytes as f64 / base.checkpoint_bytes.max(1) as f64,
            m.seconds,
            m.seconds / base.seconds,
            predicted,
        );
    }
    let identical =
        budgeted.loss.to_bits() == base.loss.to_bits() && budgeted.grads.bitwise_eq(&base.grads);
    println!(
        "loss {:.6} (store-all {:.6}); gradients {} to store-all's",
        budgeted.loss,
        base.loss,
        if identical {
            "bitwise identical"
        } else {
            "DIFFERENT"
        }
    );
    if identical {
        Ok(())
    } else {
        Err(Error::Verify(
            "the budgeted gradients differ from store-all's".to_string(),
        ))
    }
}
