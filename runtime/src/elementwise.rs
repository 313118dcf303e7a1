//! Plumbing shared by the cells: gate blocks (`pre = b + x·W_x + h·W_h`), row
//! blocks for the tape-less forward, and column gathers and scatters.

use std::ops::Range;

use crate::kernels::{gemm_nn_packed_acc, gemm_tn_acc};
use crate::packed::{Packed, Packing};
use crate::{Rng, WeightGradient};

/// One affine gate block `pre[m × width] = b + x·W_x + h·W_h` inside a flat
/// parameter vector, laid out from `offset` as `W_x [input × width]` row-major,
/// then `W_h [hidden × width]` row-major, then `b [width]`. Either `input` or
/// `hidden` may be 0 (the term is then absent). Gradients use the same layout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GateBlock {
    /// First float of the block in the parameter vector.
    pub offset: usize,
    /// Rows of `W_x` (features of `x`).
    pub input: usize,
    /// Rows of `W_h` (features of `h`).
    pub hidden: usize,
    /// Columns of `W_x`, `W_h` and `b`.
    pub width: usize,
}

impl GateBlock {
    /// Floats the block occupies.
    pub fn len(&self) -> usize {
        (self.input + self.hidden + 1) * self.width
    }

    /// First float after the block.
    pub fn end(&self) -> usize {
        self.offset + self.len()
    }

    fn wx(&self) -> Range<usize> {
        self.offset..self.offset + self.input * self.width
    }

    fn wh(&self) -> Range<usize> {
        let start = self.wx().end;
        start..start + self.hidden * self.width
    }

    /// The bias range.
    pub fn bias(&self) -> Range<usize> {
        let start = self.wh().end;
        start..start + self.width
    }

    /// Its packed copies, [`GateBlock::PACKINGS`] of them: `W_x`, `W_h` and
    /// `W_hᵀ`.
    pub fn packings(&self) -> [Packing; Self::PACKINGS] {
        let at = |offset, rows, cols, transposed| Packing {
            offset,
            rows,
            cols,
            transposed,
        };
        [
            at(self.wx().start, self.input, self.width, false),
            at(self.wh().start, self.hidden, self.width, false),
            at(self.wh().start, self.hidden, self.width, true),
        ]
    }

    /// Packed copies per block.
    pub const PACKINGS: usize = 3;

    /// Overwrites `out[m × width]` with `b + x·W_x + h·W_h` (`x` is `[m × input]`,
    /// `h` is `[m × hidden]`; pass an empty slice for an absent term), the
    /// weights read from the copies of [`GateBlock::packings`] at `first` in
    /// `packed`.
    #[allow(clippy::too_many_arguments)]
    pub fn pre(
        &self,
        params: &[f32],
        packed: &Packed,
        first: usize,
        m: usize,
        x: &[f32],
        h: &[f32],
        out: &mut [f32],
    ) {
        let b = &params[self.bias()];
        for row in out.chunks_exact_mut(self.width) {
            row.copy_from_slice(b);
        }
        let (k, n) = (self.input, self.width);
        if k > 0 {
            gemm_nn_packed_acc(m, k, n, x, packed.matrix(first), out);
        }
        if self.hidden > 0 {
            gemm_nn_packed_acc(m, self.hidden, n, h, packed.matrix(first + 1), out);
        }
    }

    /// Adds the parameter gradients of `m` rows into `grads` (same layout as the
    /// parameters): `dW_x += xᵀ·dpre`, `dW_h += hᵀ·dpre`, `db += Σ_rows dpre`.
    pub fn add_grads(&self, m: usize, x: &[f32], h: &[f32], dpre: &[f32], grads: &mut [f32]) {
        if self.input > 0 {
            gemm_tn_acc(self.input, m, self.width, x, dpre, &mut grads[self.wx()]);
        }
        if self.hidden > 0 {
            gemm_tn_acc(self.hidden, m, self.width, h, dpre, &mut grads[self.wh()]);
        }
        let db = &mut grads[self.bias()];
        for row in dpre.chunks_exact(self.width) {
            for (g, d) in db.iter_mut().zip(row) {
                *g += d;
            }
        }
    }

    /// The block's weight gradient as one product: `[dW_x; dW_h] +=
    /// [x | h]ᵀ·dpre` (`W_x` and `W_h` are contiguous), `db += Σ dpre`.
    pub fn weight_gradient(&self) -> WeightGradient {
        WeightGradient {
            rows: self.input + self.hidden,
            cols: self.width,
            weight: self.offset,
            bias: Some(self.bias().start),
        }
    }

    /// Adds `dpre·W_hᵀ` into `dh[m × hidden]`, reading `W_hᵀ` from the
    /// copies at `first` in `packed`: each element sums its `width` products
    /// in order, after what `dh` held.
    pub fn add_dh(&self, packed: &Packed, first: usize, m: usize, dpre: &[f32], dh: &mut [f32]) {
        let wh_t = packed.matrix(first + 2);
        gemm_nn_packed_acc(m, self.width, self.hidden, dpre, wh_t, dh);
    }
}

/// `n` draws of `uniform(-1/√hidden, 1/√hidden)`: the cells' initial parameters.
pub(crate) fn init_params(n: usize, hidden: usize, rng: &mut Rng) -> Vec<f32> {
    let k = 1.0 / (hidden.max(1) as f32).sqrt();
    (0..n).map(|_| rng.uniform(-k, k)).collect()
}

/// Panics unless `hidden > 0` and a row of `per_hidden · hidden` forward
/// temporaries fits the stack buffer of [`in_row_blocks`].
pub(crate) fn check_hidden(what: &str, hidden: usize, per_hidden: usize) {
    assert!(hidden > 0, "{what}: the hidden size must be positive");
    let max = STACK_FLOATS / per_hidden.max(1);
    assert!(
        hidden <= max,
        "{what}: hidden size {hidden} exceeds {max}, the largest whose forward temporaries fit the stack buffer"
    );
}

/// Largest stack buffer, in floats (512 KiB), that `in_row_blocks` uses.
pub(crate) const STACK_FLOATS: usize = 1 << 17;

/// Calls `f(rows, buf)` for consecutive blocks of `rows` covering `0..batch`,
/// each with `buf` of `rows.len() · per_row` floats from one stack buffer.
///
/// `Cell::forward` has no scratch argument, so the cells compute gate
/// pre-activations block by block in a stack buffer: the smallest of 16 KiB,
/// 128 KiB or 512 KiB that holds the whole batch, else 512 KiB and several
/// blocks (each block streams all the packed weights once, so many small
/// blocks cost time). `forward_tape` runs the very same blocks (same
/// matrix-product shapes), so both write bitwise equal states.
pub(crate) fn in_row_blocks(batch: usize, per_row: usize, f: impl FnMut(Range<usize>, &mut [f32])) {
    assert!(
        per_row <= STACK_FLOATS,
        "a row needs {per_row} temporary floats, more than the {STACK_FLOATS} of the stack buffer"
    );
    let need = batch.saturating_mul(per_row);
    if need <= 1 << 12 {
        blocks::<{ 1 << 12 }>(batch, per_row, f);
    } else if need <= 1 << 15 {
        blocks::<{ 1 << 15 }>(batch, per_row, f);
    } else {
        blocks::<STACK_FLOATS>(batch, per_row, f);
    }
}

/// [`in_row_blocks`] with a stack buffer of `N` floats.
#[inline(never)]
fn blocks<const N: usize>(
    batch: usize,
    per_row: usize,
    mut f: impl FnMut(Range<usize>, &mut [f32]),
) {
    let mut buf = [0.0f32; N];
    let block = N / per_row.max(1);
    let mut start = 0;
    while start < batch {
        let end = (start + block).min(batch);
        f(start..end, &mut buf[..(end - start) * per_row]);
        start = end;
    }
}

/// Copies column block `cols` of every row of `src` (rows of `src_width` floats)
/// into the rows of `dst` (rows of `cols.len()` floats).
pub(crate) fn gather_cols(src: &[f32], src_width: usize, cols: Range<usize>, dst: &mut [f32]) {
    let w = cols.len();
    for (s, d) in src.chunks_exact(src_width).zip(dst.chunks_exact_mut(w)) {
        d.copy_from_slice(&s[cols.clone()]);
    }
}

/// The floats of rows `r` in an array of rows of `width` floats.
pub(crate) fn row_span(r: &Range<usize>, width: usize) -> Range<usize> {
    r.start * width..r.end * width
}
