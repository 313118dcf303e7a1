//! `bptt train`: the main job.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::memory::human;
use crate::app::train::{TaskSpec, TrainConfig, Trainer};
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
    #[arg(long, default_value = "5%", allow_hyphen_values = true)]
    budget: String,
    /// All the memory the run may hold (e.g. 256MiB), instead of --budget:
    /// the plan with the most checkpoints whose parameters, optimiser,
    /// batches, arena and schedule fit in it.
    #[arg(long, value_parser = super::memory_size, conflicts_with = "budget")]
    memory: Option<u64>,
    /// hsm, ism, msm, store-all, sqrt or interval:K.
    #[arg(long, default_value = "msm")]
    policy: String,
    /// interp (the interpreter) or jit (Cranelift-compiled native code).
    #[arg(long, default_value = "interp")]
    backend: String,
    /// The engine of a --cell's kernels: interp (interpreted) or jit
    /// (Cranelift-compiled); default: the --backend's.
    #[arg(long)]
    cell_engine: Option<String>,
    /// Optimisation steps (in all, counting those of a resumed checkpoint).
    #[arg(long, default_value_t = 500)]
    steps: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-2, allow_hyphen_values = true)]
    lr: f32,
    /// Clip gradients to this global norm.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    clip: f32,
    /// Seed of parameters and batches.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Evaluate on held-out data and write a checkpoint every this many steps.
    #[arg(long, default_value_t = 50)]
    eval_every: u64,
    /// Where checkpoints are written (atomically; folders are created), in
    /// the current folder by default.
    #[arg(long, default_value = "bptt-train.ckpt")]
    checkpoint: PathBuf,
    /// Continue from this checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Characters to sample at the end (at most 1,000,000).
    #[arg(long, default_value_t = 400)]
    sample: usize,
    /// Sampling temperature (0 takes the likeliest character every time).
    #[arg(long, default_value_t = 0.7, allow_hyphen_values = true)]
    temperature: f32,
    /// Print one line per evaluation instead of a progress bar (the default
    /// when standard error is not a terminal).
    #[arg(long)]
    quiet: bool,
    /// The most memory training may allocate (e.g. 2GB) [default: the
    /// memory available].
    #[arg(long, value_parser = super::memory_size)]
    max_memory: Option<u64>,
}

/// The most characters `--sample` takes.
const MAX_SAMPLE: usize = 1_000_000;

impl TrainArgs {
    /// Every flag checked before any work: numbers finite and in range,
    /// no flag that the others would ignore, a checkpoint path that can
    /// be written and is none of the inputs.
    fn check(&self) -> Result<(), Error> {
        use super::in_range;
        in_range("--lr", self.lr, 0.0, 1.0, "in (0, 1]", false)?;
        in_range("--clip", self.clip, 0.0, 1e6, "in (0, 1e6]", false)?;
        in_range(
            "--temperature",
            self.temperature,
            0.0,
            100.0,
            "in [0, 100] (0 is greedy)",
            true,
        )?;
        if self.eval_every == 0 {
            return Err(Error::Flag("--eval-every must be at least 1".to_string()));
        }
        if self.sample > MAX_SAMPLE {
            return Err(Error::Flag(format!(
                "--sample {} is too many characters (at most {MAX_SAMPLE})",
                self.sample
            )));
        }
        if self.task == TaskName::Adding && self.text.is_some() {
            return Err(Error::Flag(
                "--text has no use with --task adding: give one or the other".to_string(),
            ));
        }
        if self.cell.is_none() && self.cell_engine.is_some() {
            return Err(Error::Flag(
                "--cell-engine chooses how a --cell runs: give the cell file too".to_string(),
            ));
        }
        if self.cell.is_none() && !self.sizes.is_empty() {
            return Err(Error::Flag(
                "--size sets a size of a --cell: give the cell file too".to_string(),
            ));
        }
        super::budget_in_range(&self.budget)?;
        let inputs: Vec<&std::path::Path> = self
            .text
            .iter()
            .chain(&self.cell)
            .map(|p| p.as_path())
            .collect();
        crate::app::train::check_writable(&self.checkpoint, &inputs)
    }
}

pub fn train(args: &TrainArgs) -> Result<(), Error> {
    args.check()?;
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
        budget: args.budget.parse()?,
        memory: args.memory,
        policy: args.policy.parse()?,
        lr: args.lr,
        clip: args.clip,
        seed: args.seed,
        max_memory: args.max_memory,
        cell_engine: args.cell_engine.as_deref().map(str::parse).transpose()?,
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
        "{cell} {}, T = {}, batch {}, {} {} at {:.1} units ({:.1}% of store-all): {:.3} forward steps per step",
        trainer.sizes_text(),
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
    println!(
        "memory: this run holds {} in all{}; store-all would hold {}",
        human(trainer.planned_bytes()),
        args.memory
            .map(|m| format!(" (--memory {})", human(u128::from(m))))
            .unwrap_or_default(),
        human(trainer.store_all_total_bytes()),
    );
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
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
            if bar.is_hidden() {
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
    println!(
        "peak heap of the process {} (counted {}{})",
        human(crate::HEAP.peak_bytes() as u128),
        human(trainer.planned_bytes()),
        args.memory
            .map(|m| format!(", --memory {}", human(u128::from(m))))
            .unwrap_or_default(),
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
