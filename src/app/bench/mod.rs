//! The measured reproduction of the paper: real time and memory of an LSTM
//! at `T = 1000` for every policy and backend (`bptt bench`).
//!
//! One [`run`] builds a random LSTM problem, measures the cell's own costs
//! ([`costs`]), plans store-all, Chen's sqrt(t), a fixed interval, and HSM,
//! ISM and MSM at each budget (with the unit model and, for the policies
//! asked, with time-weighted planning), builds every schedule on every
//! backend, and times iterations interleaved over all of them, so that every
//! ratio compares rows measured under the same load. For each row it reports
//! the median time per iteration, its ratio to store-all, the ratios that the
//! cost model predicts, the arena's checkpoint bytes and the peak heap from a
//! [`CountingAllocator`](bptt_runtime::CountingAllocator) when the program
//! installs one and passes it.
//!
//! The [`BenchReport`](report::BenchReport) it returns ([`report`]) is
//! checked against the targets of `BENCHMARKS.md` ([`targets`]), printed and
//! written as text, Markdown, CSV and JSON ([`output`]), and drawn
//! ([`plot`]).

pub mod costs;
pub mod output;
pub mod plot;
pub mod report;
pub mod run;
pub mod targets;
#[cfg(test)]
mod tests;

use serde::Serialize;

use bptt::BackendKind;
use bptt::Policy;

pub use run::run;

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
