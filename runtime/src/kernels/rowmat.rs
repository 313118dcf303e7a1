//! Small-matrix products per batch row, for the cell language's
//! matrix-valued values (a `[m, n]` value is `m·n` floats per row,
//! row-major): an outer product, a vector times a matrix and a matrix times
//! a vector, each row of the batch with its own operands.
//!
//! Every output element is computed by one fixed sequence of IEEE-754 f32
//! multiplications and additions (never a fused multiply-add), the same on
//! every CPU and instruction set, so the cell language's interpreter, its
//! Cranelift JIT (through a shim) and `cell!` (through
//! `bptt_runtime::__private`), which all call these functions, agree to the
//! bit. The loops are plain scalar code compiled per instruction set by
//! `simd_fn!`: the outer product and the vector-matrix product vectorise
//! over the output's columns, the matrix-vector product over eight partial
//! sums. Large products are split over the worker pool by batch rows,
//! which changes no bit. They do not allocate (after the pool has started).

use std::ops::Range;

use crate::par_rows::{MIN_ROWS, par_rows_mut};
use crate::simd_fn;

/// A product per batch row; `m` and `n` are the matrix's rows and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowProduct {
    /// `out[i, j] = a[i] · b[j]`: `a` is `[m]`, `b` is `[n]`, `out` is `[m, n]`.
    Outer,
    /// `out[j] = Σ_i a[i] · b[i, j]`, `i = 0, 1, ..` added in order onto
    /// `0.0`: `a` is `[m]`, `b` is `[m, n]`, `out` is `[n]`.
    VecMat,
    /// `out[i] = Σ_j a[i, j] · b[j]`: `a` is `[m, n]`, `b` is `[n]`, `out`
    /// is `[m]`. Partial sum `p_l` (`l = 0..8`) adds the products of the
    /// columns `j ≡ l (mod 8)` in order onto `0.0`; the result is
    /// `((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))`.
    MatVec,
}

impl RowProduct {
    /// Every product.
    pub const ALL: [RowProduct; 3] = [RowProduct::Outer, RowProduct::VecMat, RowProduct::MatVec];

    /// The floats per row of `a`, `b` and `out`.
    pub fn widths(self, m: usize, n: usize) -> (usize, usize, usize) {
        match self {
            RowProduct::Outer => (m, n, m * n),
            RowProduct::VecMat => (m, m * n, n),
            RowProduct::MatVec => (m * n, n, m),
        }
    }

    /// Its name, as messages and generated code write it.
    pub fn name(self) -> &'static str {
        match self {
            RowProduct::Outer => "outer",
            RowProduct::VecMat => "vecmat",
            RowProduct::MatVec => "matvec",
        }
    }
}

/// Writes `out` for every one of `rows` batch rows (see [`RowProduct`]);
/// `a`, `b` and `out` hold `rows` rows of the widths
/// [`RowProduct::widths`] gives, contiguous.
///
/// # Panics
/// If a slice's length is not `rows` times its width.
pub fn row_product(
    op: RowProduct,
    rows: usize,
    m: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
) {
    let (wa, wb, wo) = op.widths(m, n);
    let len = |w: usize| rows.checked_mul(w);
    assert!(
        Some(a.len()) == len(wa) && Some(b.len()) == len(wb) && Some(out.len()) == len(wo),
        "{}: rows={rows} m={m} n={n} needs a.len()={wa}·rows, b.len()={wb}·rows, \
         out.len()={wo}·rows, got {}, {}, {}",
        op.name(),
        a.len(),
        b.len(),
        out.len()
    );
    if m == 0 || n == 0 || rows == 0 {
        out.fill(0.0);
        return;
    }
    // Every row's floats depend on that row alone, so blocks of rows on
    // the pool's threads give bitwise what one thread gives.
    if rows >= 2 * MIN_ROWS && rows.saturating_mul(m).saturating_mul(n) >= PAR_MIN_WORK {
        par_rows_mut(rows, [(out, wo)], |r, [out]| {
            let (a, b) = (&a[r.start * wa..r.end * wa], &b[r.start * wb..r.end * wb]);
            rows_serial(op, m, n, a, b, out);
        });
    } else {
        rows_serial(op, m, n, a, b, out);
    }
}

/// Products of at least this many multiply-adds are split over the pool by
/// batch rows (as `gemm`'s are by rows or columns).
const PAR_MIN_WORK: usize = 1 << 16;

/// [`row_product`] on the calling thread.
fn rows_serial(op: RowProduct, m: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    match op {
        RowProduct::Outer => outer(m, n, a, b, out),
        RowProduct::VecMat => vecmat(m, n, a, b, out),
        RowProduct::MatVec => matvec(m, n, a, b, out),
    }
}

/// [`row_product`] on operands that lie in one slice (a kernel's scratch):
/// `a` and `b` are read from their ranges, `out` is written; `out` must
/// overlap neither operand (the operands may be the same range).
///
/// # Panics
/// If `out` overlaps an operand, a range is out of bounds, or as
/// [`row_product`] does.
#[allow(clippy::too_many_arguments)]
pub fn row_product_in(
    op: RowProduct,
    rows: usize,
    m: usize,
    n: usize,
    scratch: &mut [f32],
    a: Range<usize>,
    b: Range<usize>,
    out: Range<usize>,
) {
    let (lo, rest) = scratch.split_at_mut(out.start);
    let (o, hi) = rest.split_at_mut(out.end - out.start);
    let read = |r: Range<usize>| -> &[f32] {
        if r.end <= out.start {
            &lo[r]
        } else if r.start >= out.end {
            &hi[r.start - out.end..r.end - out.end]
        } else {
            panic!("{}: operand {r:?} overlaps the output {out:?}", op.name())
        }
    };
    row_product(op, rows, m, n, read(a.clone()), read(b.clone()), o);
}

simd_fn! {
    /// [`RowProduct::Outer`] on whole rows.
    fn outer(m: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
        for ((a, b), out) in a.chunks_exact(m).zip(b.chunks_exact(n)).zip(out.chunks_exact_mut(m * n)) {
            for (&x, o) in a.iter().zip(out.chunks_exact_mut(n)) {
                for (o, &y) in o.iter_mut().zip(b) {
                    *o = x * y;
                }
            }
        }
    }
}

simd_fn! {
    /// [`RowProduct::VecMat`] on whole rows.
    fn vecmat(m: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
        for ((a, s), out) in a.chunks_exact(m).zip(b.chunks_exact(m * n)).zip(out.chunks_exact_mut(n)) {
            out.fill(0.0);
            for (&x, s) in a.iter().zip(s.chunks_exact(n)) {
                for (o, &y) in out.iter_mut().zip(s) {
                    *o += x * y;
                }
            }
        }
    }
}

simd_fn! {
    /// [`RowProduct::MatVec`] on whole rows.
    fn matvec(m: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
        for ((s, v), out) in a.chunks_exact(m * n).zip(b.chunks_exact(n)).zip(out.chunks_exact_mut(m)) {
            for (s, o) in s.chunks_exact(n).zip(out.iter_mut()) {
                let mut p = [0.0f32; 8];
                let (body, tail) = (s.chunks_exact(8), v.chunks_exact(8));
                let (s_rest, v_rest) = (body.remainder(), tail.remainder());
                for (s8, v8) in body.zip(tail) {
                    for l in 0..8 {
                        p[l] += s8[l] * v8[l];
                    }
                }
                for (l, (&x, &y)) in s_rest.iter().zip(v_rest).enumerate() {
                    p[l] += x * y;
                }
                *o = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small integers, so that every product and sum is exact and the
    /// reference below (in f64) must match to the bit.
    fn ints(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + seed * 3) % 11) as f32 - 5.0)
            .collect()
    }

    #[test]
    fn products_match_their_definitions() {
        let (rows, m, n) = (3, 5, 19);
        for op in RowProduct::ALL {
            let (wa, wb, wo) = op.widths(m, n);
            let (a, b) = (ints(rows * wa, 1), ints(rows * wb, 2));
            let mut out = vec![f32::NAN; rows * wo];
            row_product(op, rows, m, n, &a, &b, &mut out);
            for r in 0..rows {
                let (a, b) = (&a[r * wa..][..wa], &b[r * wb..][..wb]);
                let want: Vec<f32> = match op {
                    RowProduct::Outer => (0..m * n).map(|k| a[k / n] * b[k % n]).collect(),
                    RowProduct::VecMat => (0..n)
                        .map(|j| (0..m).map(|i| a[i] * b[i * n + j]).sum())
                        .collect(),
                    RowProduct::MatVec => (0..m)
                        .map(|i| (0..n).map(|j| a[i * n + j] * b[j]).sum())
                        .collect(),
                };
                assert_eq!(&out[r * wo..][..wo], &want[..], "{op:?}, row {r}");
            }
        }
    }

    #[test]
    fn the_summation_order_is_the_documented_one() {
        // Values whose sum depends on the order: 1e8 and 1 round differently
        // depending on which partial sum meets which.
        let n = 11;
        let s: Vec<f32> = (0..n).map(|j| if j % 3 == 0 { 1e8 } else { 1.0 }).collect();
        let v: Vec<f32> = (0..n)
            .map(|j| if j % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let mut out = [0.0f32];
        row_product(RowProduct::MatVec, 1, 1, n, &s, &v, &mut out);
        let mut p = [0.0f32; 8];
        for j in 0..n {
            p[j % 8] += s[j] * v[j];
        }
        let want = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        assert_eq!(out[0].to_bits(), want.to_bits());
        let mut q = [0.0f32; 11];
        row_product(RowProduct::VecMat, 1, n, 1, &v, &s, &mut q[..1]);
        let mut acc = 0.0f32;
        for j in 0..n {
            acc += v[j] * s[j];
        }
        assert_eq!(q[0].to_bits(), acc.to_bits());
    }

    #[test]
    fn rows_split_over_threads_give_each_rows_own_product() {
        // 64 rows of 64 x 64: split over the pool; each row again alone.
        let (rows, m, n) = (64, 64, 64);
        for op in RowProduct::ALL {
            let (wa, wb, wo) = op.widths(m, n);
            let a: Vec<f32> = (0..rows * wa)
                .map(|i| ((i * 37) % 101) as f32 / 7.0 - 7.0)
                .collect();
            let b: Vec<f32> = (0..rows * wb)
                .map(|i| ((i * 53) % 97) as f32 / 9.0 - 5.0)
                .collect();
            let mut all = vec![0.0f32; rows * wo];
            row_product(op, rows, m, n, &a, &b, &mut all);
            for r in 0..rows {
                let mut one = vec![0.0f32; wo];
                let (ar, br) = (&a[r * wa..][..wa], &b[r * wb..][..wb]);
                row_product(op, 1, m, n, ar, br, &mut one);
                let bits = |s: &[f32]| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&all[r * wo..][..wo]), bits(&one), "{op:?} row {r}");
            }
        }
    }

    #[test]
    fn in_one_slice_the_operands_may_coincide_but_not_meet_the_output() {
        let mut s = vec![0.0f32; 2 + 4 + 2];
        s[..2].copy_from_slice(&[2.0, 3.0]);
        row_product_in(RowProduct::Outer, 1, 2, 2, &mut s, 0..2, 0..2, 2..6);
        assert_eq!(&s[2..6], &[4.0, 6.0, 6.0, 9.0]);
        row_product_in(RowProduct::MatVec, 1, 2, 2, &mut s, 2..6, 0..2, 6..8);
        assert_eq!(&s[6..8], &[26.0, 39.0]);
        let overlap = std::panic::catch_unwind(move || {
            let mut s = s;
            row_product_in(RowProduct::Outer, 1, 2, 2, &mut s, 0..2, 0..2, 1..5)
        });
        assert!(overlap.is_err());
    }
}
