//! The GRU cell (the standard variant, as in PyTorch: `r` gates `h·W_hn + b_hn`).

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::cell::add_window;
use crate::elementwise::{GateBlock, check_hidden, in_row_blocks, init_params, row_span};
use crate::kernels::{sigmoid, simd_fn, tanh};
use crate::packed::{Packed, PackedWeights};
use crate::par_rows::par_rows_mut;
use crate::shape::{check_grads, rows, rows_mut, scratch_rows};
use crate::{Cell, Operands, Rng, ShapeError, WeightGradient};

/// Forward temporaries per row, in units of `H`: `r`, `z`, `n` and `h·W_hn + b_hn`.
const FORWARD_PER_H: usize = 4;

/// A gated recurrent unit:
/// `r = σ(x·W_xr + h·W_hr + b_r)`, `z = σ(x·W_xz + h·W_hz + b_z)`,
/// `n = tanh(x·W_xn + b_xn + r⊙(h·W_hn + b_hn))`, `h' = (1-z)⊙n + z⊙h`.
///
/// * Parameters, three blocks one after the other:
///   1. `W_x,rz [input × 2H]`, `W_h,rz [H × 2H]`, `b_rz [2H]` (columns `r | z`);
///   2. `W_xn [input × H]`, `b_xn [H]`;
///   3. `W_hn [H × H]`, `b_hn [H]`.
///
///   All matrices row-major; `3H·(input + H) + 4H` floats, drawn from
///   `uniform(-1/√H, 1/√H)`.
/// * State and output: `h` (`H` floats per row).
/// * Tape row: `[h_prev | r | z | n | h·W_hn + b_hn]`, `5H` floats, so `alpha = 5`.
/// * Scratch row: `2·input + 6H` floats.
/// * `backward_deferred` leaves the three blocks' weight gradients (three
///   [`WeightGradient`]s) to the executor.
/// * The forward steps compute the gates in row blocks in a stack buffer of at
///   most 512 KiB; `H` must be in `1..=32768` (constructors panic otherwise).
#[derive(Clone, Debug)]
pub struct Gru {
    input: usize,
    hidden: usize,
    rz: GateBlock,
    xn: GateBlock,
    hn: GateBlock,
    /// The three blocks' weight gradients (`rz`, `xn`, `hn`), left to the
    /// executor by `backward_deferred`.
    deferred: [WeightGradient; 3],
    params: Vec<f32>,
    /// The blocks' weights (`rz`, `xn`, `hn`) packed for the products.
    packed: PackedWeights,
}

/// `h' = (1-z)·n + z·h`: the one code path of `forward`, `forward_tape` and
/// `state_from_tape`.
#[inline(always)]
fn gru_out(z: f32, n: f32, h_prev: f32) -> f32 {
    (1.0 - z) * n + z * h_prev
}

/// One row of the forward step: activates `rz` (`2H`) in place, overwrites `xn`
/// (`x·W_xn + b_xn`) with `n`, reads `hn` (`h·W_hn + b_hn`) and writes `h_next`.
#[inline(always)]
fn forward_row(rz: &mut [f32], xn: &mut [f32], hn: &[f32], h_prev: &[f32], h_next: &mut [f32]) {
    let len = h_prev.len();
    let (r, z) = rz.split_at_mut(len);
    let (z, xn, hn, h_next) = (
        &mut z[..len],
        &mut xn[..len],
        &hn[..len],
        &mut h_next[..len],
    );
    for j in 0..len {
        let (rj, zj) = (sigmoid(r[j]), sigmoid(z[j]));
        let nj = tanh(xn[j] + rj * hn[j]);
        (r[j], z[j], xn[j]) = (rj, zj, nj);
        h_next[j] = gru_out(zj, nj, h_prev[j]);
    }
}

simd_fn! {
    /// [`forward_row`] for every row of a block.
    fn forward_rows(
        n: usize,
        rz: &mut [f32],
        xn: &mut [f32],
        hn: &[f32],
        hp: &[f32],
        hnext: &mut [f32],
    ) {
        for ((((rz, xn), hn), hp), out) in rz
            .chunks_exact_mut(2 * n)
            .zip(xn.chunks_exact_mut(n))
            .zip(hn.chunks_exact(n))
            .zip(hp.chunks_exact(n))
            .zip(hnext.chunks_exact_mut(n))
        {
            forward_row(rz, xn, hn, hp, out);
        }
    }
}

simd_fn! {
    /// The elementwise part of `backward` for every row: the pre-activation
    /// gradients of every block and `dh_prev`'s direct term `z⊙dh`, with
    /// `h_prev` gathered contiguous.
    #[allow(clippy::too_many_arguments)]
    fn backward_rows(
        n: usize,
        tape: &[f32],
        dh: &[f32],
        dh_prev: &mut [f32],
        d_rz: &mut [f32],
        d_xn: &mut [f32],
        d_hn: &mut [f32],
        h_prev: &mut [f32],
    ) {
        for (((t, (d, dhp)), (drz, dxn)), (dhn, hp)) in tape
            .chunks_exact(5 * n)
            .zip(dh.chunks_exact(n).zip(dh_prev.chunks_exact_mut(n)))
            .zip(d_rz.chunks_exact_mut(2 * n).zip(d_xn.chunks_exact_mut(n)))
            .zip(d_hn.chunks_exact_mut(n).zip(h_prev.chunks_exact_mut(n)))
        {
            hp.copy_from_slice(&t[..n]);
            let (t_hp, r, z, nn, hn) = (
                &t[..n],
                &t[n..2 * n],
                &t[2 * n..3 * n],
                &t[3 * n..4 * n],
                &t[4 * n..5 * n],
            );
            let (dr, dz) = drz.split_at_mut(n);
            let dz = &mut dz[..n];
            for j in 0..n {
                let dpn = d[j] * (1.0 - z[j]) * (1.0 - nn[j] * nn[j]);
                dxn[j] = dpn;
                dhn[j] = dpn * r[j];
                dr[j] = dpn * hn[j] * r[j] * (1.0 - r[j]);
                dz[j] = d[j] * (t_hp[j] - nn[j]) * z[j] * (1.0 - z[j]);
                dhp[j] = d[j] * z[j];
            }
        }
    }
}

impl Gru {
    /// Floats of the parameters of a cell of these sizes: `3H·(input + H) + 4H`.
    pub fn param_count(input_size: usize, hidden_size: usize) -> usize {
        Self::blocks(input_size, hidden_size)[2].end()
    }

    /// The parameter blocks `rz`, `xn` and `hn`.
    fn blocks(input: usize, hidden: usize) -> [GateBlock; 3] {
        let rz = GateBlock {
            offset: 0,
            input,
            hidden,
            width: 2 * hidden,
        };
        let xn = GateBlock {
            offset: rz.end(),
            input,
            hidden: 0,
            width: hidden,
        };
        let hn = GateBlock {
            offset: xn.end(),
            input: 0,
            hidden,
            width: hidden,
        };
        [rz, xn, hn]
    }

    /// A cell with parameters drawn from `uniform(-1/√H, 1/√H)`.
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut Rng) -> Self {
        let n = Self::param_count(input_size, hidden_size);
        Self::with(input_size, hidden_size, init_params(n, hidden_size, rng))
    }

    /// A cell with the given parameters (layout in the type's docs), or an error
    /// if their length is not [`Gru::param_count`].
    pub fn from_params(
        input_size: usize,
        hidden_size: usize,
        params: Vec<f32>,
    ) -> Result<Self, ShapeError> {
        ShapeError::check(
            || format!("Gru(input {input_size}, hidden {hidden_size})"),
            Self::param_count(input_size, hidden_size),
            params.len(),
        )?;
        Ok(Self::with(input_size, hidden_size, params))
    }

    fn with(input: usize, hidden: usize, params: Vec<f32>) -> Self {
        check_hidden("Gru", hidden, FORWARD_PER_H);
        let [rz, xn, hn] = Self::blocks(input, hidden);
        Gru {
            input,
            hidden,
            rz,
            xn,
            hn,
            deferred: [rz, xn, hn].map(|b| b.weight_gradient()),
            params,
            packed: PackedWeights::new([rz, xn, hn].iter().flat_map(GateBlock::packings).collect()),
        }
    }

    /// `H`, the features of the hidden state.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// The backward step but for the weight-gradient products: writes the
    /// operands of the three blocks' products (`[x | h_prev]` and `d_rz`, `x`
    /// and `d_xn`, `h_prev` and `d_hn`) and all of `dh_prev`
    /// (`z⊙dh + d_rz·W_h,rzᵀ + d_hn·W_hnᵀ`).
    fn backward_operands(
        &self,
        what: &str,
        x: ArrayView2<f32>,
        tape: ArrayView2<f32>,
        dh: ArrayView2<f32>,
        dh_prev: ArrayViewMut2<f32>,
        [(a_rz, d_rz), (a_xn, d_xn), (a_hn, d_hn)]: [(&mut [f32], &mut [f32]); 3],
    ) {
        let (batch, n, nx) = (x.nrows(), self.hidden, self.input);
        let x = rows(what, "x", x, batch, nx);
        let tape = rows(what, "tape", tape, batch, 5 * n);
        let dh = rows(what, "dh", dh, batch, n);
        let dh_prev = rows_mut(what, "dh_prev", dh_prev, batch, n);
        let writes = [
            (dh_prev, n),
            (a_rz, nx + n),
            (d_rz, 2 * n),
            (a_xn, nx),
            (d_xn, n),
            (a_hn, n),
            (d_hn, n),
        ];
        let packs = self.packed.get(&self.params);
        par_rows_mut(
            batch,
            writes,
            |r, [dh_prev, a_rz, d_rz, a_xn, d_xn, a_hn, d_hn]| {
                let m = r.len();
                let (x, tape, dh) = (
                    &x[row_span(&r, nx)],
                    &tape[row_span(&r, 5 * n)],
                    &dh[row_span(&r, n)],
                );
                // Pre-activation gradients of every block and dh_prev's direct term
                // (z⊙dh), one fused pass per row; h_prev gathered contiguous.
                backward_rows(n, tape, dh, dh_prev, d_rz, d_xn, d_hn, a_hn);
                a_xn.copy_from_slice(x);
                for b in 0..m {
                    let a = &mut a_rz[b * (nx + n)..(b + 1) * (nx + n)];
                    a[..nx].copy_from_slice(&x[b * nx..(b + 1) * nx]);
                    a[nx..].copy_from_slice(&a_hn[b * n..(b + 1) * n]);
                }
                self.rz.add_dh(&packs, 0, m, d_rz, dh_prev);
                self.hn
                    .add_dh(&packs, 2 * GateBlock::PACKINGS, m, d_hn, dh_prev);
            },
        );
    }

    /// Scratch floats per batch row that `backward` uses.
    fn scratch_per_row(&self) -> usize {
        2 * self.input + 6 * self.hidden
    }

    /// The forward step (with a tape for `forward_tape`) on some rows, in
    /// stack buffers block by block so that it needs no scratch: `x`,
    /// `h_prev`, `tape` and `h_next` hold the same rows.
    fn forward_block(
        &self,
        packs: &Packed,
        x: &[f32],
        h_prev: &[f32],
        mut tape: Option<&mut [f32]>,
        h_next: &mut [f32],
    ) {
        let (n, nx) = (self.hidden, self.input);
        in_row_blocks(h_prev.len() / n, FORWARD_PER_H * n, |r, buf| {
            let m = r.len();
            let (rz, rest) = buf.split_at_mut(2 * n * m);
            let (xn, hn) = rest.split_at_mut(n * m);
            let (x, hp) = (&x[row_span(&r, nx)], &h_prev[row_span(&r, n)]);
            self.rz.pre(&self.params, packs, 0, m, x, hp, rz);
            self.xn
                .pre(&self.params, packs, GateBlock::PACKINGS, m, x, &[], xn);
            self.hn
                .pre(&self.params, packs, 2 * GateBlock::PACKINGS, m, &[], hp, hn);
            let hnext = &mut h_next[row_span(&r, n)];
            forward_rows(n, rz, xn, hn, hp, hnext);
            if let Some(tape) = tape.as_deref_mut() {
                let tape = &mut tape[row_span(&r, 5 * n)];
                for ((((t, hp), rz), nn), hn) in tape
                    .chunks_exact_mut(5 * n)
                    .zip(hp.chunks_exact(n))
                    .zip(rz.chunks_exact(2 * n))
                    .zip(xn.chunks_exact(n))
                    .zip(hn.chunks_exact(n))
                {
                    t[..n].copy_from_slice(hp);
                    t[n..3 * n].copy_from_slice(rz);
                    t[3 * n..4 * n].copy_from_slice(nn);
                    t[4 * n..].copy_from_slice(hn);
                }
            }
        });
    }
}

impl Cell for Gru {
    cell_plumbing!("Gru", state = 1, tape = 5);

    fn state_from_tape(
        &self,
        tape: ArrayView2<f32>,
        h: ArrayViewMut2<f32>,
        _scratch: ArrayViewMut2<f32>,
    ) {
        const WHAT: &str = "Gru::state_from_tape";
        let (batch, n) = (tape.nrows(), self.hidden);
        let tape = rows(WHAT, "tape", tape, batch, 5 * n);
        let h = rows_mut(WHAT, "h", h, batch, n);
        for (t, out) in tape.chunks_exact(5 * n).zip(h.chunks_exact_mut(n)) {
            let (hp, z, nn) = (&t[..n], &t[2 * n..3 * n], &t[3 * n..4 * n]);
            for j in 0..n {
                out[j] = gru_out(z[j], nn[j], hp[j]);
            }
        }
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
        const WHAT: &str = "Gru::backward";
        let batch = x.nrows();
        check_grads(WHAT, grads, self.params.len());
        // The scratch is a window of one step: the operands, then their sum.
        let window = scratch_rows(WHAT, scratch, batch, self.scratch_per_row());
        let operands = Operands::new(window, &self.deferred, 1, batch, 0);
        self.backward_operands(WHAT, x, tape, dh, dh_prev, operands.rows::<3>());
        add_window(window, &self.deferred, 1, batch, 1, grads);
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
        const WHAT: &str = "Gru::backward_deferred";
        check_grads(WHAT, grads, self.params.len());
        self.backward_operands(WHAT, x, tape, dh, dh_prev, operands.rows::<3>());
    }
}
