//! What a model learns: a text's next character, or the adding problem.

use bptt_runtime::{LossKind, Rng, Targets};
use ndarray::{Array2, Array3, Axis};

use super::corpus::Corpus;
use bptt::Error;

/// A training task and its data.
#[derive(Debug, Clone)]
pub enum Task {
    /// Character-level language modelling: predict every next character.
    Text(Corpus),
    /// Hochreiter and Schmidhuber's adding problem: a sequence of (value,
    /// marker) pairs with two markers, one in each half; predict the sum of the
    /// two marked values at the last step. Long-range by construction.
    Adding,
}

/// One batch, with buffers reused from step to step.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[T, batch, input]`.
    pub inputs: Array3<f32>,
    /// `[T, batch]` next-character targets (text).
    pub classes: Array2<u32>,
    /// `[batch, 1]` sums (adding problem).
    pub sums: Array2<f32>,
}

impl Task {
    /// Features per input step.
    pub fn input_size(&self) -> usize {
        match self {
            Task::Text(corpus) => corpus.chars().len(),
            Task::Adding => 2,
        }
    }

    /// Bytes the task holds: a text's characters as ids and its vocabulary,
    /// and the text itself while it loads; nothing for the adding problem.
    pub fn bytes(&self) -> u128 {
        match self {
            Task::Text(corpus) => {
                let ids = (corpus.train().len() + corpus.held_out().len()) as u128;
                // An id is 4 bytes, its UTF-8 character at most 4 more.
                ids.saturating_mul(8) + 4 * corpus.chars().len() as u128
            }
            Task::Adding => 0,
        }
    }

    /// Outputs of the read-out.
    pub fn output_size(&self) -> usize {
        match self {
            Task::Text(corpus) => corpus.chars().len(),
            Task::Adding => 1,
        }
    }

    /// The read-out's loss.
    pub fn loss_kind(&self) -> LossKind {
        match self {
            Task::Text(_) => LossKind::SoftmaxCrossEntropy,
            Task::Adding => LossKind::SquaredError,
        }
    }

    /// Checks that a window of `len + 1` characters fits in the training
    /// part and one of at least two in the held-out part (evaluation reads
    /// windows of [`Task::eval_len`]).
    pub fn check_len(&self, len: u32) -> Result<(), Error> {
        if let Task::Text(corpus) = self {
            let parts = [
                ("training", len as usize + 1, corpus.train().len()),
                ("held-out", 2, corpus.held_out().len()),
            ];
            for (part, need, have) in parts {
                if have < need {
                    return Err(Error::TextTooShort {
                        part,
                        need,
                        have,
                        len,
                    });
                }
            }
        }
        Ok(())
    }

    /// Steps of an evaluation window for training sequences of `len`: `len`,
    /// or for a text whose held-out part is shorter than a training window
    /// (the built-in Genesis holds 19,745 characters out, training at
    /// T = 100,000 reads windows of 100,001), as long as the held-out part
    /// allows. Evaluation is a forward pass, which any length can run.
    pub fn eval_len(&self, len: u32) -> u32 {
        match self {
            Task::Text(corpus) => {
                let most = u32::try_from(corpus.held_out().len() - 1).unwrap_or(u32::MAX);
                len.min(most)
            }
            Task::Adding => len,
        }
    }

    /// Zeroed buffers for a batch.
    pub fn batch(&self, len: u32, batch: usize) -> Batch {
        let len = len as usize;
        Batch {
            inputs: Array3::zeros((len, batch, self.input_size())),
            classes: Array2::zeros((len, batch)),
            sums: Array2::zeros((batch, 1)),
        }
    }

    /// Fills a batch: random training windows of the text, or fresh adding
    /// problems.
    pub fn fill(&self, rng: &mut Rng, batch: &mut Batch) {
        let (len, rows, _) = batch.inputs.dim();
        batch.inputs.fill(0.0);
        match self {
            Task::Text(corpus) => {
                let ids = corpus.train();
                for row in 0..rows {
                    let start = rng.below(ids.len() - len);
                    one_hot_window(&ids[start..=start + len], batch, row);
                }
            }
            Task::Adding => {
                let half = (len / 2).max(1);
                for row in 0..rows {
                    let first = rng.below(half);
                    let second = if len > 1 {
                        half + rng.below(len - half)
                    } else {
                        first
                    };
                    let mut sum = 0.0;
                    for k in 0..len {
                        let value = rng.uniform(0.0, 1.0);
                        let marked = k == first || k == second;
                        batch.inputs[[k, row, 0]] = value;
                        if marked {
                            batch.inputs[[k, row, 1]] = 1.0;
                            sum += value;
                        }
                    }
                    batch.sums[[row, 0]] = sum;
                }
            }
        }
    }

    /// The batch's targets.
    pub fn targets<'b>(&self, batch: &'b Batch) -> Targets<'b> {
        match self {
            Task::Text(_) => Targets::Classes(batch.classes.view()),
            Task::Adding => Targets::FinalValues(batch.sums.view()),
        }
    }
}

/// Writes `window[..len]` one-hot into the inputs of `row` and
/// `window[1..]` into its targets.
pub(crate) fn one_hot_window(window: &[u32], batch: &mut Batch, row: usize) {
    for (k, pair) in window.windows(2).enumerate() {
        batch.inputs.index_axis_mut(Axis(0), k)[[row, pair[0] as usize]] = 1.0;
        batch.classes[[k, row]] = pair[1];
    }
}
