//! Training: a character-level LSTM language model (or the adding problem)
//! under a memory budget, with Adam, clipping, evaluation, sampling and
//! resumable checkpoints.
//!
//! Every step draws its batch from its own generator, seeded by the run's seed
//! and the step number, so a run resumed from a checkpoint continues exactly
//! where it stopped.

mod adam;
mod checkpoint;
mod corpus;
#[cfg(test)]
mod heap_tests;
mod task;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use bptt_runtime::{Cell, Gradients, Lstm, Readout, Rng};
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

pub use adam::{Adam, clip_global_norm};
pub use checkpoint::check_writable;
pub use corpus::Corpus;
pub use task::{Batch, Task};

use bptt::Error;
use bptt::Policy;
use bptt::cell_lang::DerivedCell;
use bptt::jit::cell::JitCell;
use bptt::planner::Plan;
use bptt::{Alpha, Budget};
use bptt::{Backend, BackendKind};

use crate::app::memory::{self, CellShape};

/// Which task to train on, as stored in checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskSpec {
    /// Next-character prediction on the text shipped with bptt: the Book of
    /// Genesis, King James Version (public domain; see data/README.md).
    Genesis,
    /// Next-character prediction on a text file.
    Text {
        /// The file.
        path: PathBuf,
    },
    /// The adding problem.
    Adding,
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The data.
    pub task: TaskSpec,
    /// Sequence length `T` of each training window.
    pub len: u32,
    /// Windows per batch.
    pub batch: usize,
    /// Hidden size (of the LSTM, or the size `hidden` of a derived cell).
    pub hidden: usize,
    /// A cell file to train instead of the runtime's LSTM (see
    /// [`cell_lang`](bptt::cell_lang)); its input's size is the task's.
    #[serde(default)]
    pub cell: Option<PathBuf>,
    /// Sizes of the cell besides its input's and `hidden` (`--size NAME=N`).
    #[serde(default)]
    pub sizes: Vec<(String, usize)>,
    /// Checkpoint memory: units (`200`) or percent of store-all (`5%`).
    pub budget: Budget,
    /// All the memory the run may hold, in bytes, instead of `budget`: the
    /// plan with the most checkpoints within it ([`bptt::planner::plan_within`]).
    /// Like the budget, it may change on resuming.
    #[serde(default)]
    pub memory: Option<u64>,
    /// Planning policy.
    pub policy: Policy,
    /// Adam's learning rate.
    pub lr: f32,
    /// Gradients are clipped to this global L2 norm.
    pub clip: f32,
    /// Seed of the parameters and of every batch.
    pub seed: u64,
    /// The most memory the run may allocate, in bytes (`None`: the memory
    /// available). Not part of the run: not saved, not compared on resuming.
    #[serde(skip)]
    pub max_memory: Option<u64>,
    /// The engine of a derived cell's kernels, chosen independently of the
    /// schedule's backend: [`BackendKind::Interpreter`] for the interpreting
    /// [`DerivedCell`], [`BackendKind::Jit`] for the compiled [`JitCell`].
    /// `None` follows the schedule's backend. Not part of the run: not
    /// saved, not compared on resuming.
    #[serde(skip)]
    pub cell_engine: Option<BackendKind>,
}

/// Hashes of what a model was trained on, recorded in its checkpoints and
/// compared on resuming, so that a checkpoint continues only the run it
/// came from, whatever the paths are called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The cell's definition (its tokens, so comments and spacing do not
    /// count), or 0 for the runtime's LSTM.
    pub cell: u64,
    /// The text's characters (0 for the adding problem).
    pub corpus: u64,
    /// The vocabulary, the text's distinct characters in order.
    pub vocabulary: u64,
}

/// A 64-bit FNV-1a hash: stable across platforms and releases.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a checkpoint's header holds besides the step and the sections.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    config: TrainConfig,
    fingerprint: Fingerprint,
}

impl Fingerprint {
    /// The fingerprint of a task and a cell definition's tokens.
    fn new(task: &Task, cell_tokens: Option<&str>) -> Self {
        let (corpus, vocabulary) = match task {
            Task::Text(c) => {
                let ids = c.train().iter().chain(c.held_out());
                let chars = |id: &u32| c.char(*id) as u32;
                (
                    fnv1a(ids.map(chars).flat_map(u32::to_le_bytes)),
                    fnv1a(c.chars().iter().flat_map(|&ch| (ch as u32).to_le_bytes())),
                )
            }
            Task::Adding => (0, 0),
        };
        Fingerprint {
            cell: cell_tokens.map_or(0, |t| fnv1a(t.bytes())),
            corpus,
            vocabulary,
        }
    }

    /// What differs between a checkpoint's fingerprint and this run's, in words.
    fn differs(&self, run: &Fingerprint) -> Option<&'static str> {
        if self.cell != run.cell {
            Some(
                "the cell's definition differs from the one it was trained with (the cell file was edited, or is another cell)",
            )
        } else if self.vocabulary != run.vocabulary {
            Some(
                "the text's vocabulary (its set of characters) differs from the one it was trained on",
            )
        } else if self.corpus != run.corpus {
            Some("the text differs from the one it was trained on (same characters, other content)")
        } else {
            None
        }
    }
}

/// A task in words.
fn task_words(task: &TaskSpec) -> &'static str {
    match task {
        TaskSpec::Genesis | TaskSpec::Text { .. } => "a text",
        TaskSpec::Adding => "the adding problem",
    }
}

/// A cell in words.
fn cell_words(cell: &Option<PathBuf>) -> &'static str {
    match cell {
        None => "the runtime's LSTM",
        Some(_) => "a cell file",
    }
}

/// Sizes in words: `proj=64, gates=8`, or `none`.
fn sizes_words(sizes: &[(String, usize)]) -> String {
    let mut sorted: Vec<String> = sizes.iter().map(|(n, v)| format!("{n}={v}")).collect();
    sorted.sort();
    if sorted.is_empty() {
        "none".to_string()
    } else {
        sorted.join(", ")
    }
}

impl TrainConfig {
    /// The fields that must agree for a checkpoint to be resumed (policy,
    /// budget and backend may change: gradients are identical under all).
    fn resumable_with(&self, other: &TrainConfig) -> Result<(), String> {
        let pairs = [
            (
                "task",
                task_words(&self.task).to_string(),
                task_words(&other.task).to_string(),
            ),
            ("len", self.len.to_string(), other.len.to_string()),
            ("batch", self.batch.to_string(), other.batch.to_string()),
            ("hidden", self.hidden.to_string(), other.hidden.to_string()),
            (
                "cell",
                cell_words(&self.cell).to_string(),
                cell_words(&other.cell).to_string(),
            ),
            ("sizes", sizes_words(&self.sizes), sizes_words(&other.sizes)),
            ("lr", self.lr.to_string(), other.lr.to_string()),
            ("clip", self.clip.to_string(), other.clip.to_string()),
            ("seed", self.seed.to_string(), other.seed.to_string()),
        ];
        match pairs.iter().find(|(_, a, b)| a != b) {
            Some((field, saved, asked)) => Err(format!(
                "was made with {field} {saved}, this run asks for {asked}"
            )),
            None => Ok(()),
        }
    }
}

/// A model in training with its optimiser, backend and buffers.
pub struct Trainer {
    config: TrainConfig,
    task: Task,
    cell: Box<dyn Cell>,
    readout: Readout,
    adam: Adam,
    backend: Backend,
    plan: Plan,
    /// Bytes the run was counted to hold, and what store-all would.
    planned: u128,
    store_all: u128,
    batch: Batch,
    h0: Array2<f32>,
    grads: Gradients,
    step: u64,
    fingerprint: Fingerprint,
    /// The model's sizes as messages write them: `hidden 128` for the
    /// LSTM, the sizes bound for a cell (`input = 65, key = 64, value = 64`).
    sizes: String,
}

/// One step's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Training loss of the batch (nats per target; bits per character is
    /// this over ln 2).
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
}

/// The built-in corpus.
pub const GENESIS: &str = include_str!("../../../data/genesis.txt");

fn step_rng(seed: u64, step: u64) -> Rng {
    Rng::new(seed ^ step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

impl Trainer {
    /// A fresh model for a configuration, its task loaded and its schedule
    /// planned, verified and built on `backend`.
    pub fn new(config: TrainConfig, backend: BackendKind) -> Result<Self, Error> {
        let task = match &config.task {
            TaskSpec::Genesis => Task::Text(Corpus::from_text(GENESIS)?),
            TaskSpec::Text { path } => Task::Text(Corpus::load(path)?),
            TaskSpec::Adding => Task::Adding,
        };
        Self::with_task(config, task, backend)
    }

    /// A fresh model for a configuration and an already loaded task.
    pub fn with_task(config: TrainConfig, task: Task, backend: BackendKind) -> Result<Self, Error> {
        if config.batch == 0 || config.hidden == 0 {
            return Err(Error::Shape {
                what: "training sizes [batch, hidden] (each at least 1)",
                expected: vec![1, 1],
                got: vec![config.batch, config.hidden],
            });
        }
        if config.len == 0 {
            return Err(Error::ZeroLength);
        }
        task.check_len(config.len)?;
        let (policy, budget) = (config.policy, config.budget);
        let (program, tokens) = match &config.cell {
            None => (None, None),
            Some(path) => {
                let program = bptt::cell_lang::compile_file(
                    path,
                    task.input_size(),
                    config.hidden,
                    &config.sizes,
                )?;
                let src = bptt::cell_lang::limits::read_source(path)?;
                let tokens = src
                    .parse::<proc_macro2::TokenStream>()
                    .map(|t| t.to_string())
                    .unwrap_or(src);
                (Some(program), Some(tokens))
            }
        };
        let shape = match &program {
            Some(p) => CellShape::of(p),
            None => CellShape::lstm(task.input_size(), config.hidden),
        };
        let alpha = Alpha::new(shape.alpha())?;
        let (len, batch) = (u128::from(config.len), config.batch as u128);
        let eval_len = u128::from(task.eval_len(config.len));
        let need = |plan: &Plan| {
            shape
                .run(plan, config.batch, task.output_size(), backend)
                .floats(
                    "parameters and gradients",
                    // Adam's two moments, and a checkpoint's copy on resuming.
                    shape
                        .params_with_readout(task.output_size())
                        .saturating_mul(3),
                )
                .floats(
                    "batches",
                    // A training batch and an evaluation batch.
                    (len + eval_len)
                        .saturating_mul(batch)
                        .saturating_mul((task.input_size() as u128).saturating_add(1)),
                )
                .bytes("task", task.bytes())
        };
        let plan = match config.memory {
            None => Plan::new(policy, alpha, config.len, budget)?,
            Some(memory) => bptt::planner::plan_within(
                memory,
                policy,
                alpha,
                config.len,
                (shape.state as u64).saturating_mul(config.batch as u64 * 4),
                |plan| need(plan).total(),
            )
            .map_err(memory::below_any_plan)?,
        };
        let planned = need(&plan);
        planned.check("training", config.max_memory)?;
        let store_all = need(&Plan::new(
            Policy::StoreAll,
            alpha,
            config.len,
            Budget::Percent(100.0),
        )?)
        .total();
        let mut rng = Rng::new(config.seed);
        let sizes = match &program {
            Some(p) => p.sizes_text(),
            None => format!("hidden {}", config.hidden),
        };
        let cell: Box<dyn Cell> = match program {
            None => Box::new(Lstm::new(task.input_size(), config.hidden, &mut rng)),
            Some(program) => {
                let params = program.init_params(&mut rng);
                match config.cell_engine.unwrap_or(backend) {
                    BackendKind::Interpreter => Box::new(
                        DerivedCell::from_params(program, params)
                            .map_err(|e| Error::Cell(e.to_string()))?,
                    ),
                    BackendKind::Jit => Box::new(JitCell::compile(&program, params)?),
                }
            }
        };
        let readout = Readout::new(
            task.loss_kind(),
            cell.output_size(),
            task.output_size(),
            &mut rng,
        );
        let backend = backend.build(&plan, &*cell, &readout, config.batch)?;
        let n = cell.params().len() + readout.params().len();
        Ok(Trainer {
            adam: Adam::new(config.lr, n),
            batch: task.batch(config.len, config.batch),
            h0: Array2::zeros((config.batch, cell.state_size())),
            grads: Gradients::zeros(&*cell, &readout, config.batch),
            fingerprint: Fingerprint::new(&task, tokens.as_deref()),
            config,
            task,
            cell,
            readout,
            backend,
            plan,
            planned: planned.total(),
            store_all,
            step: 0,
            sizes,
        })
    }

    /// Continues a run from a checkpoint; `config` must agree with the one it
    /// was made with (policy, budget and backend may differ).
    pub fn resume(path: &Path, config: TrainConfig, backend: BackendKind) -> Result<Self, Error> {
        let opened = checkpoint::open::<Saved>(path)?;
        let refuse = |why: &str| Error::Checkpoint(format!("{}: {why}", path.display()));
        opened
            .header
            .config
            .config
            .resumable_with(&config)
            .map_err(|why| refuse(&why))?;
        let mut trainer = Self::new(config, backend)?;
        if let Some(why) = opened
            .header
            .config
            .fingerprint
            .differs(&trainer.fingerprint)
        {
            return Err(refuse(why));
        }
        let (header, sections) = opened.sections()?;
        let want = trainer.sections_len();
        if header.sections != want {
            return Err(Error::Checkpoint(format!(
                "{}: holds {} floats of parameters, this model has {}",
                path.display(),
                header.sections.iter().take(2).sum::<usize>(),
                want.iter().take(2).sum::<usize>()
            )));
        }
        let [cell, readout, m, v] =
            <[Vec<f32>; 4]>::try_from(sections).expect("four sections, checked above");
        trainer.cell.params_mut().copy_from_slice(&cell);
        trainer.readout.params_mut().copy_from_slice(&readout);
        trainer.adam.m = m;
        trainer.adam.v = v;
        trainer.adam.t = header.step;
        trainer.step = header.step;
        Ok(trainer)
    }

    fn sections_len(&self) -> Vec<usize> {
        let n = self.adam.m.len();
        vec![self.cell.params().len(), self.readout.params().len(), n, n]
    }

    /// Writes a checkpoint atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let header = checkpoint::Header {
            config: Saved {
                config: self.config.clone(),
                fingerprint: self.fingerprint.clone(),
            },
            step: self.step,
            sections: self.sections_len(),
        };
        checkpoint::save(
            path,
            &header,
            &[
                self.cell.params(),
                self.readout.params(),
                &self.adam.m,
                &self.adam.v,
            ],
        )
    }

    /// One optimisation step on a fresh batch.
    pub fn step(&mut self) -> Result<StepStats, Error> {
        let mut rng = step_rng(self.config.seed, self.step);
        self.task.fill(&mut rng, &mut self.batch);
        let targets = self.task.targets(&self.batch);
        let loss = self.backend.run(
            &*self.cell,
            &self.readout,
            self.batch.inputs.view(),
            self.h0.view(),
            targets,
            &mut self.grads,
        )?;
        let grad_norm = clip_global_norm(
            &mut [&mut self.grads.cell, &mut self.grads.readout],
            self.config.clip,
        );
        let (cell, readout) = (&mut self.cell, &mut self.readout);
        self.adam.update(
            &mut [cell.params_mut(), readout.params_mut()],
            &[&self.grads.cell, &self.grads.readout],
        );
        self.step += 1;
        Ok(StepStats { loss, grad_norm })
    }

    /// The cell's alpha: its tape's size over its state's.
    pub fn alpha(&self) -> f64 {
        self.cell.alpha()
    }

    /// The model's sizes: `hidden N` for the LSTM, the sizes bound for a
    /// cell (`input = 65, key = 64, value = 64`).
    pub fn sizes_text(&self) -> &str {
        &self.sizes
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The plan the schedule came from.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Bytes of checkpoint slots in the arena (what the budget bounds).
    pub fn checkpoint_bytes(&self) -> usize {
        self.backend.layout().checkpoint_bytes()
    }

    /// Bytes the run was counted to hold in all (what `--memory` bounds).
    pub fn planned_bytes(&self) -> u128 {
        self.planned
    }

    /// Bytes the same run would hold in all under store-all.
    pub fn store_all_total_bytes(&self) -> u128 {
        self.store_all
    }

    /// Bytes store-all's arena would need for the same model.
    pub fn store_all_bytes(&self) -> usize {
        let l = self.backend.layout();
        4 * l.batch * l.tape_size * (self.config.len as usize - 1)
    }

    /// Held-out loss in bits per character (text), or the mean squared error
    /// of fresh adding problems: a forward pass only, no schedule needed.
    pub fn evaluate(&self) -> f64 {
        match &self.task {
            Task::Text(corpus) => {
                let ids = corpus.held_out();
                let eval_len = self.task.eval_len(self.config.len);
                let len = eval_len as usize;
                let windows = (ids.len() - 1) / len;
                let rows = windows.clamp(1, self.config.batch);
                let mut batch = self.task.batch(eval_len, rows);
                // Windows spread evenly over the held-out text.
                let span = ids.len() - 1 - len;
                for row in 0..rows {
                    let start = if rows > 1 { row * span / (rows - 1) } else { 0 };
                    task::one_hot_window(&ids[start..=start + len], &mut batch, row);
                }
                let nats = self.forward_loss(&batch);
                nats / std::f64::consts::LN_2
            }
            Task::Adding => {
                let mut batch = self.task.batch(self.config.len, self.config.batch);
                self.task
                    .fill(&mut Rng::new(self.config.seed ^ 0xADD), &mut batch);
                self.forward_loss(&batch)
            }
        }
    }

    /// Mean loss per target of a batch, by a plain forward pass.
    fn forward_loss(&self, batch: &Batch) -> f64 {
        let (len, rows, _) = batch.inputs.dim();
        let mut h = Array2::zeros((rows, self.cell.state_size()));
        let mut next = h.clone();
        let mut scratch = Array2::zeros((rows, self.cell.scratch_size()));
        let mut logits = Array2::zeros((rows, self.readout.out_size()));
        let mut total = 0.0;
        for k in 0..len {
            self.cell.forward(
                batch.inputs.index_axis(Axis(0), k),
                h.view(),
                next.view_mut(),
                scratch.view_mut(),
            );
            std::mem::swap(&mut h, &mut next);
            let last = k + 1 == len;
            if matches!(self.task, Task::Text(_)) || last {
                self.readout.predict(h.view(), logits.view_mut());
                for r in 0..rows {
                    let row = logits.row(r);
                    total += match self.task {
                        Task::Text(_) => {
                            let max = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                            let lse = f64::from(max)
                                + row
                                    .iter()
                                    .map(|&z| f64::from(z - max).exp())
                                    .sum::<f64>()
                                    .ln();
                            lse - f64::from(row[batch.classes[[k, r]] as usize])
                        }
                        Task::Adding => 0.5 * f64::from(row[0] - batch.sums[[r, 0]]).powi(2),
                    };
                }
            }
        }
        let targets = if matches!(self.task, Task::Text(_)) {
            len * rows
        } else {
            rows
        };
        total / targets as f64
    }

    /// Samples `n` characters from the language model, starting after a
    /// newline, at a temperature (lower is more conservative; 0 always takes
    /// the likeliest character). Empty for the adding problem.
    pub fn sample(&self, n: usize, temperature: f32, seed: u64) -> String {
        let Task::Text(corpus) = &self.task else {
            return String::new();
        };
        let mut rng = Rng::new(seed);
        let vocab = corpus.chars().len();
        let mut x = Array2::zeros((1, vocab));
        let mut h = Array2::zeros((1, self.cell.state_size()));
        let mut next = h.clone();
        let mut scratch = Array2::zeros((1, self.cell.scratch_size()));
        let mut logits = Array2::zeros((1, vocab));
        let mut id = corpus.id('\n').unwrap_or(0);
        let mut out = String::with_capacity(n);
        for _ in 0..n {
            x.fill(0.0);
            x[[0, id as usize]] = 1.0;
            self.cell
                .forward(x.view(), h.view(), next.view_mut(), scratch.view_mut());
            std::mem::swap(&mut h, &mut next);
            self.readout.predict(h.view(), logits.view_mut());
            let max = logits.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            if temperature <= 0.0 {
                id = logits.iter().position(|&z| z == max).unwrap_or(0) as u32;
                out.push(corpus.char(id));
                continue;
            }
            let weights: Vec<f64> = logits
                .iter()
                .map(|&z| f64::from((z - max) / temperature).exp())
                .collect();
            let mut pick = f64::from(rng.uniform(0.0, 1.0)) * weights.iter().sum::<f64>();
            id = weights
                .iter()
                .position(|&w| {
                    pick -= w;
                    pick <= 0.0
                })
                .unwrap_or(vocab - 1) as u32;
            out.push(corpus.char(id));
        }
        out
    }
}
