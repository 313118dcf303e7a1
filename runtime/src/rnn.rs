//! The Elman cell `h' = tanh(x·W_x + h·W_h + b)`.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::elementwise::{GateBlock, check_hidden, gather_cols, init_params};
use crate::kernels::tanh;
use crate::shape::{check_grads, rows, rows_mut, scratch_rows};
use crate::{Cell, Rng, ShapeError};

/// An Elman recurrent cell: `h' = tanh(x·W_x + h·W_h + b)`.
///
/// * Parameters: `W_x [input × H]` row-major, `W_h [H × H]` row-major, `b [H]`.
/// * State and output: `h` (`H` floats per row).
/// * Tape row: `[h_prev (H) | h' (H)]`, so `alpha = 2`.
/// * Scratch row: `2H` floats.
/// * `H` must be positive (constructors panic otherwise).
#[derive(Clone, Debug)]
pub struct Rnn {
    input: usize,
    hidden: usize,
    block: GateBlock,
    params: Vec<f32>,
}

impl Rnn {
    /// Floats of the parameters of a cell of these sizes: `(input + H + 1)·H`.
    pub fn param_count(input_size: usize, hidden_size: usize) -> usize {
        Self::block(input_size, hidden_size).len()
    }

    fn block(input: usize, hidden: usize) -> GateBlock {
        GateBlock {
            offset: 0,
            input,
            hidden,
            width: hidden,
        }
    }

    /// A cell with parameters drawn from `uniform(-1/√H, 1/√H)`.
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut Rng) -> Self {
        let n = Self::param_count(input_size, hidden_size);
        Self::with(input_size, hidden_size, init_params(n, hidden_size, rng))
    }

    /// A cell with the given parameters (layout in the type's docs), or an error
    /// if their length is not [`Rnn::param_count`].
    pub fn from_params(
        input_size: usize,
        hidden_size: usize,
        params: Vec<f32>,
    ) -> Result<Self, ShapeError> {
        ShapeError::check(
            || format!("Rnn(input {input_size}, hidden {hidden_size})"),
            Self::param_count(input_size, hidden_size),
            params.len(),
        )?;
        Ok(Self::with(input_size, hidden_size, params))
    }

    fn with(input: usize, hidden: usize, params: Vec<f32>) -> Self {
        // The forward writes straight into h_next: no stack temporaries.
        check_hidden("Rnn", hidden, 0);
        Rnn {
            input,
            hidden,
            block: Self::block(input, hidden),
            params,
        }
    }

    /// `H`, the features of the hidden state.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Scratch floats per batch row that `backward` uses.
    fn scratch_per_row(&self) -> usize {
        2 * self.hidden
    }

    /// The forward step shared by `forward` and `forward_tape`: the whole batch's
    /// pre-activations go straight into `h_next`, then `tanh` in place.
    fn run(
        &self,
        what: &str,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        tape: Option<ArrayViewMut2<f32>>,
        h_next: ArrayViewMut2<f32>,
    ) {
        let (batch, h) = (x.nrows(), self.hidden);
        let x = rows(what, "x", x, batch, self.input);
        let h_prev = rows(what, "h_prev", h_prev, batch, h);
        let h_next = rows_mut(what, "h_next", h_next, batch, h);
        self.block.pre(&self.params, batch, x, h_prev, h_next);
        for v in h_next.iter_mut() {
            *v = tanh(*v);
        }
        if let Some(tape) = tape {
            let tape = rows_mut(what, "tape", tape, batch, 2 * h);
            for ((t, hp), hn) in tape
                .chunks_exact_mut(2 * h)
                .zip(h_prev.chunks_exact(h))
                .zip(h_next.chunks_exact(h))
            {
                t[..h].copy_from_slice(hp);
                t[h..].copy_from_slice(hn);
            }
        }
    }
}

impl Cell for Rnn {
    cell_plumbing!("Rnn", state = 1, tape = 2);

    fn state_from_tape(&self, tape: ArrayView2<f32>, h: ArrayViewMut2<f32>) {
        const WHAT: &str = "Rnn::state_from_tape";
        let (batch, n) = (tape.nrows(), self.hidden);
        let tape = rows(WHAT, "tape", tape, batch, 2 * n);
        gather_cols(tape, 2 * n, n..2 * n, rows_mut(WHAT, "h", h, batch, n));
    }

    fn backward(
        &self,
        x: ArrayView2<f32>,
        tape: ArrayView2<f32>,
        dh: ArrayView2<f32>,
        dh_prev: ArrayViewMut2<f32>,
        grads: &mut [f32],
        scratch: ArrayViewMut2<f32>,
    ) {
        const WHAT: &str = "Rnn::backward";
        let (batch, n) = (x.nrows(), self.hidden);
        let x = rows(WHAT, "x", x, batch, self.input);
        let tape = rows(WHAT, "tape", tape, batch, 2 * n);
        let dh = rows(WHAT, "dh", dh, batch, n);
        let dh_prev = rows_mut(WHAT, "dh_prev", dh_prev, batch, n);
        check_grads(WHAT, grads, self.params.len());
        let (dpre, h_prev) = scratch_rows(WHAT, scratch, batch, 2 * n).split_at_mut(batch * n);

        // dpre = dh ⊙ (1 - h'²); h_prev gathered contiguous for the weight gradient.
        for (((t, d), dp), hp) in tape
            .chunks_exact(2 * n)
            .zip(dh.chunks_exact(n))
            .zip(dpre.chunks_exact_mut(n))
            .zip(h_prev.chunks_exact_mut(n))
        {
            let (t_hp, t_hn) = t.split_at(n);
            hp.copy_from_slice(t_hp);
            for ((dp, &d), &hn) in dp.iter_mut().zip(d).zip(t_hn) {
                *dp = d * (1.0 - hn * hn);
            }
        }
        self.block.add_grads(batch, x, h_prev, dpre, grads);
        dh_prev.fill(0.0);
        self.block.add_dh(&self.params, batch, dpre, dh_prev);
    }
}
