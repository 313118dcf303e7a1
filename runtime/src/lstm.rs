//! The LSTM cell (gates `i, f, g, o`; no peepholes).

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::elementwise::{
    GateBlock, check_hidden, gather_cols, in_row_blocks, init_params, row_span,
};
use crate::kernels::{sigmoid, simd_fn, tanh};
use crate::packed::{Packed, PackedWeights};
use crate::par_rows::par_rows_mut;
use crate::shape::{check_grads, rows, rows_mut, scatter_cols, scratch_rows};
use crate::{Cell, Operands, Rng, ShapeError, WeightGradient};

/// Forward temporaries per row, in units of `H`: the four gates.
const FORWARD_PER_H: usize = 4;

/// A long short-term memory cell:
/// `[i f g o] = [σ σ tanh σ](x·W_x + h·W_h + b)`, `c' = f⊙c + i⊙g`, `h' = o⊙tanh(c')`.
///
/// * Parameters: `W_x [input × 4H]` row-major, `W_h [H × 4H]` row-major,
///   `b [4H]`; the `4H` columns are the gates `i | f | g | o`, `H` each. The
///   forget-gate bias starts at 1, everything else at `uniform(-1/√H, 1/√H)`.
/// * State row: `[h (H) | c (H)]`; output: `h`, the first `H`.
/// * Tape row: `[h_prev (H) | c_prev (H) | i | f | g | o]` (activated gates),
///   `6H` floats, so `alpha = 3`; `backward` recomputes `c'` and `tanh(c')`.
/// * Scratch row: `input + 5H` floats.
/// * `backward_deferred` leaves `[dW_x; dW_h] += [x | h_prev]ᵀ·dpre` and
///   `db += Σ dpre` (one [`WeightGradient`]) to the executor.
/// * The forward steps compute the gates in row blocks in a stack buffer of at
///   most 512 KiB; `H` must be in `1..=32768` (constructors panic otherwise).
#[derive(Clone, Debug)]
pub struct Lstm {
    input: usize,
    hidden: usize,
    gates: GateBlock,
    /// `[dW_x; dW_h] += [x | h_prev]ᵀ·dpre`, `db += Σ dpre`: left to the
    /// executor by `backward_deferred`.
    deferred: [WeightGradient; 1],
    params: Vec<f32>,
    /// `W_x`, `W_h` and `W_hᵀ` packed for the gates' products.
    packed: PackedWeights,
}

/// `c' = f·c + i·g`.
#[inline(always)]
fn cell_state(i: f32, f: f32, g: f32, c_prev: f32) -> f32 {
    f * c_prev + i * g
}

/// `(h', c')` from the activated gates: the one code path of `forward`,
/// `forward_tape` and `state_from_tape`.
#[inline(always)]
fn lstm_out(i: f32, f: f32, g: f32, o: f32, c_prev: f32) -> (f32, f32) {
    let c = cell_state(i, f, g, c_prev);
    (o * tanh(c), c)
}

/// Splits a row of `4H` gate values into `(i, f, g, o)`.
#[inline(always)]
fn split4(row: &[f32], n: usize) -> (&[f32], &[f32], &[f32], &[f32]) {
    let (i, rest) = row.split_at(n);
    let (f, rest) = rest.split_at(n);
    let (g, o) = rest.split_at(n);
    (i, f, g, &o[..n])
}

/// Mutable version of [`split4`].
#[inline(always)]
fn split4_mut(row: &mut [f32], n: usize) -> (&mut [f32], &mut [f32], &mut [f32], &mut [f32]) {
    let (i, rest) = row.split_at_mut(n);
    let (f, rest) = rest.split_at_mut(n);
    let (g, o) = rest.split_at_mut(n);
    (i, f, g, &mut o[..n])
}

/// Lanes of [`forward_lanes`]: one AVX-512 vector.
const LANES: usize = 16;

/// Features `j..j + LANES` of `s` as an array.
#[inline(always)]
fn arr(s: &mut [f32], j: usize) -> &mut [f32; LANES] {
    <&mut [f32; LANES]>::try_from(&mut s[j..j + LANES]).expect("LANES floats")
}

/// [`forward_row`] on `LANES` features: fixed-size, distinct arrays, so the
/// compiler vectorises it without run-time overlap checks.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_lanes(
    pi: &mut [f32; LANES],
    pf: &mut [f32; LANES],
    pg: &mut [f32; LANES],
    po: &mut [f32; LANES],
    c_prev: &[f32; LANES],
    h: &mut [f32; LANES],
    c: &mut [f32; LANES],
) {
    for j in 0..LANES {
        let (i, f, g, o) = (sigmoid(pi[j]), sigmoid(pf[j]), tanh(pg[j]), sigmoid(po[j]));
        (pi[j], pf[j], pg[j], po[j]) = (i, f, g, o);
        (h[j], c[j]) = lstm_out(i, f, g, o, c_prev[j]);
    }
}

/// One row of the forward step: activates the gate pre-activations `pre` (`4H`)
/// in place and writes `out = [h' | c']` from them and `c_prev`, `LANES`
/// features at a time, then the rest one by one (the same operations).
#[inline(always)]
fn forward_row(pre: &mut [f32], c_prev: &[f32], out: &mut [f32]) {
    let n = c_prev.len();
    let (pi, pf, pg, po) = split4_mut(pre, n);
    let (h, c) = out.split_at_mut(n);
    let c = &mut c[..n];
    let whole = n - n % LANES;
    for j in (0..whole).step_by(LANES) {
        let lanes = j..j + LANES;
        forward_lanes(
            arr(pi, j),
            arr(pf, j),
            arr(pg, j),
            arr(po, j),
            <&[f32; LANES]>::try_from(&c_prev[lanes]).expect("LANES floats"),
            arr(h, j),
            arr(c, j),
        );
    }
    for j in whole..n {
        let (i, f, g, o) = (sigmoid(pi[j]), sigmoid(pf[j]), tanh(pg[j]), sigmoid(po[j]));
        (pi[j], pf[j], pg[j], po[j]) = (i, f, g, o);
        (h[j], c[j]) = lstm_out(i, f, g, o, c_prev[j]);
    }
}

simd_fn! {
    /// [`forward_row`] for every row of a block: `pre` rows of `4H`, states of `2H`.
    fn forward_rows(n: usize, pre: &mut [f32], s_prev: &[f32], s_next: &mut [f32]) {
        for ((p, s), out) in pre
            .chunks_exact_mut(4 * n)
            .zip(s_prev.chunks_exact(2 * n))
            .zip(s_next.chunks_exact_mut(2 * n))
        {
            forward_row(p, &s[n..], out);
        }
    }
}

simd_fn! {
    /// `state_from_tape` for every row: tape rows of `6H`, states of `2H`.
    fn rebuild_rows(n: usize, tape: &[f32], h: &mut [f32]) {
        for (t, out) in tape.chunks_exact(6 * n).zip(h.chunks_exact_mut(2 * n)) {
            let c_prev = &t[n..2 * n];
            let (i, f, g, o) = split4(&t[2 * n..], n);
            let (h, c) = out.split_at_mut(n);
            let c = &mut c[..n];
            for j in 0..n {
                (h[j], c[j]) = lstm_out(i[j], f[j], g[j], o[j], c_prev[j]);
            }
        }
    }
}

simd_fn! {
    /// The elementwise part of `backward` for every row: the gate
    /// pre-activation gradients `dpre` (`4H`) and `dc_prev` (the `c` half of
    /// `dh_prev`), with the weight gradient's other operand `xh = [x | h_prev]`
    /// (`nx + H`) gathered from `x` (`nx`) and the tape.
    #[allow(clippy::too_many_arguments)]
    fn backward_rows(
        n: usize,
        nx: usize,
        x: &[f32],
        tape: &[f32],
        dh: &[f32],
        xh: &mut [f32],
        dpre: &mut [f32],
        dh_prev: &mut [f32],
    ) {
        for r in 0..dh.len() / (2 * n) {
            let t = &tape[r * 6 * n..(r + 1) * 6 * n];
            let (ax, ah) = xh[r * (nx + n)..(r + 1) * (nx + n)].split_at_mut(nx);
            ax.copy_from_slice(&x[r * nx..(r + 1) * nx]);
            ah.copy_from_slice(&t[..n]);
            let c_prev = &t[n..2 * n];
            let (i, f, g, o) = split4(&t[2 * n..], n);
            let (dh_h, dh_c) = dh[r * 2 * n..(r + 1) * 2 * n].split_at(n);
            let (dpi, dpf, dpg, dpo) = split4_mut(&mut dpre[r * 4 * n..(r + 1) * 4 * n], n);
            let dc_prev = &mut dh_prev[r * 2 * n + n..(r + 1) * 2 * n];
            for j in 0..n {
                let tc = tanh(cell_state(i[j], f[j], g[j], c_prev[j]));
                let dc = dh_c[j] + dh_h[j] * o[j] * (1.0 - tc * tc);
                dpi[j] = dc * g[j] * i[j] * (1.0 - i[j]);
                dpf[j] = dc * c_prev[j] * f[j] * (1.0 - f[j]);
                dpg[j] = dc * i[j] * (1.0 - g[j] * g[j]);
                dpo[j] = dh_h[j] * tc * o[j] * (1.0 - o[j]);
                dc_prev[j] = dc * f[j];
            }
        }
    }
}

impl Lstm {
    /// Floats of the parameters of a cell of these sizes: `(input + H + 1)·4H`.
    pub fn param_count(input_size: usize, hidden_size: usize) -> usize {
        Self::block(input_size, hidden_size).len()
    }

    fn block(input: usize, hidden: usize) -> GateBlock {
        GateBlock {
            offset: 0,
            input,
            hidden,
            width: 4 * hidden,
        }
    }

    /// A cell with parameters drawn from `uniform(-1/√H, 1/√H)`, forget-gate bias 1.
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut Rng) -> Self {
        let n = Self::param_count(input_size, hidden_size);
        let mut cell = Self::with(input_size, hidden_size, init_params(n, hidden_size, rng));
        let bias = cell.gates.bias();
        cell.params[bias][hidden_size..2 * hidden_size].fill(1.0);
        cell
    }

    /// A cell with the given parameters (layout in the type's docs), or an error
    /// if their length is not [`Lstm::param_count`].
    pub fn from_params(
        input_size: usize,
        hidden_size: usize,
        params: Vec<f32>,
    ) -> Result<Self, ShapeError> {
        ShapeError::check(
            || format!("Lstm(input {input_size}, hidden {hidden_size})"),
            Self::param_count(input_size, hidden_size),
            params.len(),
        )?;
        Ok(Self::with(input_size, hidden_size, params))
    }

    fn with(input: usize, hidden: usize, params: Vec<f32>) -> Self {
        check_hidden("Lstm", hidden, FORWARD_PER_H);
        Lstm {
            input,
            hidden,
            gates: Self::block(input, hidden),
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

    /// `H`, the features of `h` (the state holds `h` and `c`, `2H`).
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Scratch floats per batch row: `backward`'s `[x | h_prev]` and `dpre`.
    fn scratch_per_row(&self) -> usize {
        self.input + 5 * self.hidden
    }

    /// The arrays of a backward step as rows, checked: `x`, `tape`, `dh`
    /// and `dh_prev`.
    fn backward_rows_of<'a, 'd>(
        &self,
        what: &str,
        x: ArrayView2<'a, f32>,
        tape: ArrayView2<'a, f32>,
        dh: ArrayView2<'a, f32>,
        dh_prev: ArrayViewMut2<'d, f32>,
    ) -> (&'a [f32], &'a [f32], &'a [f32], &'d mut [f32]) {
        let (batch, n) = (x.nrows(), self.hidden);
        (
            rows(what, "x", x, batch, self.input),
            rows(what, "tape", tape, batch, 6 * n),
            rows(what, "dh", dh, batch, 2 * n),
            rows_mut(what, "dh_prev", dh_prev, batch, 2 * n),
        )
    }

    /// Checks the weight gradient's operands: `xh = [x | h_prev]`
    /// (`[batch × (input + H)]`) and the gate pre-activation gradients `dpre`
    /// (`[batch × 4H]`).
    fn check_operands(&self, what: &str, batch: usize, xh: &[f32], dpre: &[f32]) {
        assert!(
            xh.len() == batch * (self.input + self.hidden) && dpre.len() == batch * 4 * self.hidden,
            "{what}: operand rows of the wrong size"
        );
    }

    /// Writes `dh_prev`'s `h` half, `dpre·W_hᵀ`, computed contiguous in
    /// `temp` (`[batch × H]`).
    fn add_dh_prev(&self, packs: &Packed, dpre: &[f32], temp: &mut [f32], dh_prev: &mut [f32]) {
        let n = self.hidden;
        let batch = temp.len() / n;
        temp.fill(0.0);
        self.gates.add_dh(packs, 0, batch, dpre, temp);
        scatter_cols(temp, dh_prev, 2 * n, 0..n);
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
        in_row_blocks(h_prev.len() / (2 * n), FORWARD_PER_H * n, |r, pre| {
            let m = r.len();
            let s_prev = &h_prev[row_span(&r, 2 * n)];
            let s_next = &mut h_next[row_span(&r, 2 * n)];
            // The block's h_next rows hold a contiguous copy of h until the rows are written.
            let h = &mut s_next[..m * n];
            gather_cols(s_prev, 2 * n, 0..n, h);
            self.gates
                .pre(&self.params, packs, 0, m, &x[row_span(&r, nx)], h, pre);
            forward_rows(n, pre, s_prev, s_next);
            if let Some(tape) = tape.as_deref_mut() {
                let tape = &mut tape[row_span(&r, 6 * n)];
                for ((t, s), p) in tape
                    .chunks_exact_mut(6 * n)
                    .zip(s_prev.chunks_exact(2 * n))
                    .zip(pre.chunks_exact(4 * n))
                {
                    t[..2 * n].copy_from_slice(s);
                    t[2 * n..].copy_from_slice(p);
                }
            }
        });
    }
}

impl Cell for Lstm {
    cell_plumbing!("Lstm", state = 2, tape = 6);

    fn state_from_tape(
        &self,
        tape: ArrayView2<f32>,
        h: ArrayViewMut2<f32>,
        _scratch: ArrayViewMut2<f32>,
    ) {
        const WHAT: &str = "Lstm::state_from_tape";
        let (batch, n) = (tape.nrows(), self.hidden);
        let tape = rows(WHAT, "tape", tape, batch, 6 * n);
        let h = rows_mut(WHAT, "h", h, batch, 2 * n);
        par_rows_mut(batch, [(h, 2 * n)], |r, [h]| {
            rebuild_rows(n, &tape[row_span(&r, 6 * n)], h);
        });
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
        const WHAT: &str = "Lstm::backward";
        let batch = x.nrows();
        check_grads(WHAT, grads, self.params.len());
        let scratch = scratch_rows(WHAT, scratch, batch, self.scratch_per_row());
        let (xh, rest) = scratch.split_at_mut(batch * (self.input + self.hidden));
        let dpre = &mut rest[..batch * 4 * self.hidden];
        let (x, tape, dh, dh_prev) = self.backward_rows_of(WHAT, x, tape, dh, dh_prev);
        backward_rows(self.hidden, self.input, x, tape, dh, xh, dpre, dh_prev);
        self.deferred[0].add(xh, dpre, grads);
        // xh is free again: dh_prev's h part is computed there.
        let packs = self.packed.get(&self.params);
        self.add_dh_prev(&packs, dpre, &mut xh[..batch * self.hidden], dh_prev);
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
        scratch: ArrayViewMut2<f32>,
        operands: Operands<'_>,
    ) {
        const WHAT: &str = "Lstm::backward_deferred";
        let batch = x.nrows();
        check_grads(WHAT, grads, self.params.len());
        let scratch = scratch_rows(WHAT, scratch, batch, self.scratch_per_row());
        let [(xh, dpre)] = operands.rows::<1>();
        self.check_operands(WHAT, batch, xh, dpre);
        let (x, tape, dh, dh_prev) = self.backward_rows_of(WHAT, x, tape, dh, dh_prev);
        let (n, nx) = (self.hidden, self.input);
        let writes = [
            (xh, nx + n),
            (dpre, 4 * n),
            (dh_prev, 2 * n),
            (scratch, self.scratch_per_row()),
        ];
        let packs = self.packed.get(&self.params);
        par_rows_mut(batch, writes, |r, [xh, dpre, dh_prev, temp]| {
            let (x, tape, dh) = (
                &x[row_span(&r, nx)],
                &tape[row_span(&r, 6 * n)],
                &dh[row_span(&r, 2 * n)],
            );
            backward_rows(n, nx, x, tape, dh, xh, dpre, dh_prev);
            self.add_dh_prev(&packs, dpre, &mut temp[..r.len() * n], dh_prev);
        });
    }
}
