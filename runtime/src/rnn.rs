//! The Elman cell `h' = tanh(x·W_x + h·W_h + b)`.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::elementwise::{GateBlock, check_hidden, gather_cols, init_params};
use crate::kernels::{simd_fn, tanh};
use crate::packed::{Packed, PackedWeights};
use crate::par_rows::par_rows_mut;
use crate::shape::{check_grads, rows, rows_mut, scratch_rows};
use crate::{Cell, Operands, Rng, ShapeError, WeightGradient};

/// An Elman recurrent cell: `h' = tanh(x·W_x + h·W_h + b)`.
///
/// * Parameters: `W_x [input × H]` row-major, `W_h [H × H]` row-major, `b [H]`.
/// * State and output: `h` (`H` floats per row).
/// * Tape row: `[h_prev (H) | h' (H)]`, so `alpha = 2`.
/// * Scratch row: `input + 2H` floats.
/// * `backward_deferred` leaves `[dW_x; dW_h] += [x | h_prev]ᵀ·dpre` and
///   `db += Σ dpre` (one [`WeightGradient`]) to the executor.
/// * `H` must be positive (constructors panic otherwise).
#[derive(Clone, Debug)]
pub struct Rnn {
    input: usize,
    hidden: usize,
    block: GateBlock,
    /// `[dW_x; dW_h] += [x | h_prev]ᵀ·dpre`, `db += Σ dpre`: left to the
    /// executor by `backward_deferred`.
    deferred: [WeightGradient; 1],
    params: Vec<f32>,
    /// `W_x`, `W_h` and `W_hᵀ` packed for the products.
    packed: PackedWeights,
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
            deferred: [Self::block(input, hidden).weight_gradient()],
            params,
            packed: PackedWeights::new(
                [Self::block(input, hidden)]
                    .iter()
                    .flat_map(GateBlock::packings)
                    .collect(),
            ),
        }
    }

    /// `H`, the features of the hidden state.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Scratch floats per batch row that `backward` uses.
    fn scratch_per_row(&self) -> usize {
        self.input + 2 * self.hidden
    }

    /// The backward step up to the products: writes `dpre = dh ⊙ (1 - h'²)`
    /// and the weight gradient's operand `xh = [x | h_prev]`, and returns
    /// `dh_prev`'s rows.
    #[allow(clippy::too_many_arguments)]
    fn backward_operands<'d>(
        &self,
        what: &str,
        x: ArrayView2<f32>,
        tape: ArrayView2<f32>,
        dh: ArrayView2<f32>,
        dh_prev: ArrayViewMut2<'d, f32>,
        xh: &mut [f32],
        dpre: &mut [f32],
    ) -> &'d mut [f32] {
        let (batch, n) = (x.nrows(), self.hidden);
        let x = rows(what, "x", x, batch, self.input);
        let tape = rows(what, "tape", tape, batch, 2 * n);
        let dh = rows(what, "dh", dh, batch, n);
        let dh_prev = rows_mut(what, "dh_prev", dh_prev, batch, n);
        assert!(
            xh.len() == batch * (self.input + n) && dpre.len() == batch * n,
            "{what}: operand rows of the wrong size"
        );
        backward_rows(n, self.input, x, tape, dh, xh, dpre);
        dh_prev
    }

    /// Writes `dh_prev = dpre·W_hᵀ`.
    fn write_dh_prev(&self, dpre: &[f32], dh_prev: &mut [f32]) {
        let batch = dpre.len() / self.hidden;
        dh_prev.fill(0.0);
        self.block
            .add_dh(&self.packed.get(&self.params), 0, batch, dpre, dh_prev);
    }

    /// The forward step (with a tape for `forward_tape`) on some rows: the
    /// pre-activations go straight into `h_next`, then `tanh` in place.
    fn forward_block(
        &self,
        packs: &Packed,
        x: &[f32],
        h_prev: &[f32],
        tape: Option<&mut [f32]>,
        h_next: &mut [f32],
    ) {
        let h = self.hidden;
        let m = h_prev.len() / h;
        self.block.pre(&self.params, packs, 0, m, x, h_prev, h_next);
        tanh_in_place(h_next);
        if let Some(tape) = tape {
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

    fn state_from_tape(
        &self,
        tape: ArrayView2<f32>,
        h: ArrayViewMut2<f32>,
        _scratch: ArrayViewMut2<f32>,
    ) {
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
        let batch = x.nrows();
        check_grads(WHAT, grads, self.params.len());
        let scratch = scratch_rows(WHAT, scratch, batch, self.scratch_per_row());
        let (xh, dpre) = scratch.split_at_mut(batch * (self.input + self.hidden));
        let dh_prev = self.backward_operands(WHAT, x, tape, dh, dh_prev, xh, dpre);
        self.deferred[0].add(xh, dpre, grads);
        self.write_dh_prev(dpre, dh_prev);
    }

    fn weight_gradients(&self) -> &[WeightGradient] {
        &self.deferred
    }

    fn backward_deferred(
        &self,
        x: ArrayView2<f32>,
        tape: ArrayView2<f32>,
        dh: ArrayView2<f32>,
        dh_prev: ArrayViewMut2<f32>,
        grads: &mut [f32],
        _scratch: ArrayViewMut2<f32>,
        operands: Operands<'_>,
    ) {
        const WHAT: &str = "Rnn::backward_deferred";
        check_grads(WHAT, grads, self.params.len());
        let [(xh, dpre)] = operands.rows::<1>();
        let (batch, n) = (x.nrows(), self.hidden);
        let dh_prev = self.backward_operands(WHAT, x, tape, dh, dh_prev, xh, dpre);
        par_rows_mut(batch, [(dpre, n), (dh_prev, n)], |_, [dpre, dh_prev]| {
            self.write_dh_prev(dpre, dh_prev);
        });
    }
}

simd_fn! {
    /// `v = tanh(v)` for every float.
    fn tanh_in_place(v: &mut [f32]) {
        for v in v.iter_mut() {
            *v = tanh(*v);
        }
    }
}

simd_fn! {
    /// `dpre = dh ⊙ (1 - h'²)` and `xh = [x | h_prev]` for every row (`x` of
    /// `nx`, tape rows `[h_prev | h']` of `2n`).
    fn backward_rows(
        n: usize,
        nx: usize,
        x: &[f32],
        tape: &[f32],
        dh: &[f32],
        xh: &mut [f32],
        dpre: &mut [f32],
    ) {
        for r in 0..dh.len() / n {
            let (t_hp, t_hn) = tape[r * 2 * n..(r + 1) * 2 * n].split_at(n);
            let (ax, ah) = xh[r * (nx + n)..(r + 1) * (nx + n)].split_at_mut(nx);
            ax.copy_from_slice(&x[r * nx..(r + 1) * nx]);
            ah.copy_from_slice(t_hp);
            let d = &dh[r * n..(r + 1) * n];
            for ((dp, &d), &hn) in dpre[r * n..(r + 1) * n].iter_mut().zip(d).zip(t_hn) {
                *dp = d * (1.0 - hn * hn);
            }
        }
    }
}
