//! `bptt train`: the main job.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use bptt::train::{TaskSpec, TrainConfig, Trainer};
use bptt::{BackendKind, Error};

/// Which data to train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TaskName {
    /// Character-level language model on a text (default: the built-in Genesis).
    Text,
    /// The adding problem: a long-range synthetic task.
    Adding,
}

/// Arguments of `bptt train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The data.
    #[arg(long, value_enum, default_value_t = TaskName::Text)]
    task: TaskName,
    /// A UTF-8 text file to model instead of the built-in Genesis.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Sequence length T.
    #[arg(long, default_value_t = 1000)]
    len: u32,
    /// Sequences per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Hidden size (of the LSTM, or the size `hidden` of a --cell).
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Train a cell defined by equations in this file (e.g. cells/mgu.cell)
    /// instead of the runtime's LSTM: bptt derives its backward pass, its
    /// tape and its alpha.
    #[arg(long)]
    cell: Option<PathBuf>,
    /// A size of the --cell besides its input's and `hidden`: NAME=N
    /// (repeatable).
    #[arg(long = "size", value_parser = super::cell_size)]
    sizes: Vec<(String, usize)>,
    /// Checkpoint memory: units of hidden state or percent of store-all.
    #[arg(long, default_value = "5%")]
    budget: String,
    /// hsm, ism, msm, store-all, sqrt or interval:K.
    #[arg(long, default_value = "msm")]
    policy: String,
    /// interp (the interpreter) or jit (Cranelift-compiled native code).
    #[arg(long, default_value = "interp")]
    backend: String,
    /// Optimisation steps (in all, counting those of a resumed checkpoint).
    #[arg(long, default_value_t = 500)]
    steps: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-2)]
    lr: f32,
    /// Clip gradients to this global norm.
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Seed of parameters and batches.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Evaluate on held-out data and write a checkpoint every this many steps.
    #[arg(long, default_value_t = 50)]
    eval_every: u64,
    /// Where checkpoints are written (atomically).
    #[arg(long, default_value = "target/bptt-train.ckpt")]
    checkpoint: PathBuf,
    /// Continue from this checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Characters to sample at the end.
    #[arg(long, default_value_t = 400)]
    sample: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// Print one line per evaluation instead of a progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn train(args: &TrainArgs) -> Result<(), Error> {
    let task = match (args.task, &args.text) {
        (TaskName::Text, None) => TaskSpec::Genesis,
        (TaskName::Text, Some(path)) => TaskSpec::Text { path: path.clone() },
        (TaskName::Adding, _) => TaskSpec::Adding,
    };
    let config = TrainConfig {
        task,
        len: args.len,
        batch: args.batch,
        hidden: args.hidden,
        cell: args.cell.clone(),
        sizes: args.sizes.clone(),
        budget: args.budget.clone(),
        policy: args.policy.clone(),
        lr: args.lr,
        clip: args.clip,
        seed: args.seed,
    };
    let backend: BackendKind = args.backend.parse()?;
    let mut trainer = match &args.resume {
        Some(path) => Trainer::resume(path, config, backend)?,
        None => Trainer::new(config, backend)?,
    };
    let text = matches!(
        trainer.config().task,
        TaskSpec::Genesis | TaskSpec::Text { .. }
    );
    let unit = if text { "bits/char" } else { "mse" };
    let summary = trainer.plan().summary();
    let cell = match &args.cell {
        Some(path) => format!(
            "cell {} (derived, alpha {})",
            path.display(),
            trainer.alpha()
        ),
        None => "LSTM".to_string(),
    };
    println!(
        "{cell} hidden {}, T = {}, batch {}, {} {} at {:.1} units ({:.1}% of store-all): {:.3} forward steps per step",
        args.hidden,
        args.len,
        args.batch,
        summary.policy,
        backend,
        summary.budget,
        100.0 * summary.budget / summary.store_all_units,
        summary.cost_per_step
    );
    println!(
        "checkpoint memory {:.2} MB (store-all {:.2} MB); starting at step {}, held-out {:.3} {unit}",
        trainer.checkpoint_bytes() as f64 / 1e6,
        trainer.store_all_bytes() as f64 / 1e6,
        trainer.steps_taken(),
        trainer.evaluate()
    );
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.steps)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec} {msg}")
            .expect("a valid template"),
    );
    bar.set_position(trainer.steps_taken());
    let start = Instant::now();
    let first = trainer.steps_taken();
    let mut last_loss = f64::NAN;
    let mut held_out = f64::NAN;
    while trainer.steps_taken() < args.steps {
        let stats = trainer.step()?;
        last_loss = if text {
            stats.loss / std::f64::consts::LN_2
        } else {
            stats.loss
        };
        bar.set_message(format!(
            "loss {last_loss:.3} {unit}, peak {:.2} MB",
            trainer.checkpoint_bytes() as f64 / 1e6
        ));
        bar.inc(1);
        let step = trainer.steps_taken();
        if step % args.eval_every == 0 || step == args.steps {
            held_out = trainer.evaluate();
            trainer.save(&args.checkpoint)?;
            let line =
                format!("step {step:>5}  train {last_loss:.3}  held-out {held_out:.3} {unit}");
            if args.quiet {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let steps = trainer.steps_taken() - first;
    println!(
        "done: {steps} steps in {seconds:.1} s ({:.2} steps/s); train {last_loss:.3}, held-out {held_out:.3} {unit}; checkpoint memory {:.2} MB of store-all's {:.2} MB; saved {}",
        steps as f64 / seconds.max(1e-9),
        trainer.checkpoint_bytes() as f64 / 1e6,
        trainer.store_all_bytes() as f64 / 1e6,
        args.checkpoint.display()
    );
    if text && args.sample > 0 {
        println!("--- sample (temperature {}) ---", args.temperature);
        println!(
            "{}",
            trainer.sample(args.sample, args.temperature, args.seed)
        );
    }
    Ok(())
}
