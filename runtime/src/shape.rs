//! Shape checks shared by every cell: the runtime's, derived cells and
//! generated code. Each panics with a message naming the method, the
//! argument and both shapes.

use std::ops::Range;

use ndarray::{ArrayView2, ArrayViewMut2};

fn check_shape(what: &str, name: &str, shape: &[usize], rows: usize, cols: usize) {
    assert!(
        shape == [rows, cols],
        "{what}: {name} has shape {shape:?}, expected [{rows}, {cols}]"
    );
}

/// The contiguous row-major data of `a`, after checking that its shape is
/// `[rows, cols]` (the message names `what`, `name` and both shapes).
pub fn rows<'a>(
    what: &str,
    name: &str,
    a: ArrayView2<'a, f32>,
    rows: usize,
    cols: usize,
) -> &'a [f32] {
    check_shape(what, name, a.shape(), rows, cols);
    a.to_slice()
        .unwrap_or_else(|| panic!("{what}: {name} [{rows}, {cols}] must be contiguous row-major"))
}

/// Mutable version of [`rows`].
pub fn rows_mut<'a>(
    what: &str,
    name: &str,
    a: ArrayViewMut2<'a, f32>,
    rows: usize,
    cols: usize,
) -> &'a mut [f32] {
    check_shape(what, name, a.shape(), rows, cols);
    a.into_slice()
        .unwrap_or_else(|| panic!("{what}: {name} [{rows}, {cols}] must be contiguous row-major"))
}

/// The first `rows · cols` floats of a contiguous scratch array of `rows` rows and
/// at least `cols` columns.
pub fn scratch_rows<'a>(
    what: &str,
    a: ArrayViewMut2<'a, f32>,
    rows: usize,
    cols: usize,
) -> &'a mut [f32] {
    let (r, c) = a.dim();
    assert!(
        r == rows && c >= cols,
        "{what}: scratch has shape [{r}, {c}], expected [{rows}, {cols}] (or wider)"
    );
    let all = a
        .into_slice()
        .unwrap_or_else(|| panic!("{what}: scratch [{r}, {c}] must be contiguous row-major"));
    &mut all[..rows * cols]
}

/// Panics unless `grads` has the parameters' length.
pub fn check_grads(what: &str, grads: &[f32], expected: usize) {
    assert!(
        grads.len() == expected,
        "{what}: grads has {} floats, expected {expected} (the parameters' length)",
        grads.len()
    );
}

/// Copies the rows of `src` (rows of `cols.len()` floats) into column block
/// `cols` of the rows of `dst` (rows of `dst_width` floats), as many rows
/// as both hold.
pub fn scatter_cols(src: &[f32], dst: &mut [f32], dst_width: usize, cols: Range<usize>) {
    let w = cols.len();
    for (s, d) in src.chunks_exact(w).zip(dst.chunks_exact_mut(dst_width)) {
        d[cols.clone()].copy_from_slice(s);
    }
}
