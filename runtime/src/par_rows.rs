//! Row-parallel steps: a cell's step split over the pool by batch rows.
//!
//! Every result of a cell's step but the weight gradient is per batch row,
//! and a row's floats do not depend on the rows computed beside it (each
//! product's element sums in a fixed order, whatever the tile; the
//! elementwise passes are per element). So a step may hand each thread a
//! block of rows and let it run the whole step on them: the products (run
//! serially inside, see `kernels::pool`), the activations and the tape
//! copies, bitwise as one thread would. A thread then reads only its own
//! rows of the state, which stay in its cache from step to step, and the
//! read-only weights; splitting each product by columns instead makes every
//! thread read all of the state the other one just wrote.
//!
//! Batches too small to give every thread [`MIN_ROWS`] rows run on the
//! calling thread, where each product is split by columns as before (the
//! latency regime, batch 1 to 4).

use std::marker::PhantomData;
use std::ops::Range;

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::elementwise::row_span;
use crate::kernels::{pool_threads, run_parts};
use crate::shape::{rows, rows_mut};

/// Fewest rows per thread: one tile of the widest instruction set's packed
/// product (8 rows with AVX-512F).
pub const MIN_ROWS: usize = 8;

/// Calls `f(rows)` for blocks of rows covering `0..batch`, one block per
/// thread of the pool (the same block to the same thread every time while
/// no one is late), or `f(0..batch)` on the calling thread when the batch
/// is small.
pub fn par_rows(batch: usize, f: impl Fn(Range<usize>) + Sync) {
    let parts = pool_threads().min(batch / MIN_ROWS).max(1);
    if parts == 1 {
        f(0..batch);
        return;
    }
    run_parts(parts, &|p| f(p * batch / parts..(p + 1) * batch / parts));
}

/// [`par_rows`] with mutable arrays: `f(rows, [that block of each array])`
/// for each part, where array `i` is `writes[i].0`, rows of `writes[i].1`
/// floats (at least `batch` of them).
///
/// # Panics
/// If an array has fewer than `batch` rows.
pub fn par_rows_mut<const W: usize>(
    batch: usize,
    writes: [(&mut [f32], usize); W],
    f: impl Fn(Range<usize>, [&mut [f32]; W]) + Sync,
) {
    let lent = writes.map(|(data, width)| {
        assert!(
            data.len() >= batch.saturating_mul(width),
            "par_rows_mut: {} floats hold fewer than {batch} rows of {width}",
            data.len()
        );
        RowsMut::new(data, width)
    });
    par_rows(batch, |r| {
        // SAFETY: `par_rows` hands each part its own rows, so no two
        // parts' blocks overlap.
        f(
            r.clone(),
            std::array::from_fn(|i| unsafe { lent[i].rows(r.clone()) }),
        );
    });
}

/// A mutable array of rows of `width` floats lent to the parts of a
/// [`par_rows`] job, each taking its own rows (only through
/// [`par_rows_mut`]).
struct RowsMut<'a> {
    ptr: *mut f32,
    len: usize,
    width: usize,
    _lent: PhantomData<&'a mut [f32]>,
}

// SAFETY: `RowsMut` is a `&mut [f32]` whose rows are taken by one part each
// (the contract of `rows`); `f32` is `Send`.
unsafe impl Sync for RowsMut<'_> {}

impl<'a> RowsMut<'a> {
    /// Lends `data`, rows of `width` floats.
    fn new(data: &'a mut [f32], width: usize) -> Self {
        RowsMut {
            ptr: data.as_mut_ptr(),
            len: data.len(),
            width,
            _lent: PhantomData,
        }
    }

    /// Rows `r`.
    ///
    /// # Safety
    /// No other live slice from this `RowsMut` overlaps rows `r` (the parts
    /// of a `par_rows` job take disjoint blocks).
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, r: Range<usize>) -> &mut [f32] {
        assert!(
            r.start <= r.end && r.end.saturating_mul(self.width) <= self.len,
            "rows out of range"
        );
        // SAFETY: in bounds (checked); exclusive by the caller's contract.
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.add(r.start * self.width), r.len() * self.width)
        }
    }
}

/// A forward step row-parallel: checks `x` (`input` features), `h_prev`
/// and `h_next` (`state`) and `tape` (`tape_width`) as `what`'s arrays, then
/// calls `f(x, h_prev, tape, h_next)` on each part's rows of them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_by_rows(
    what: &str,
    x: ArrayView2<f32>,
    h_prev: ArrayView2<f32>,
    tape: Option<ArrayViewMut2<f32>>,
    h_next: ArrayViewMut2<f32>,
    (input, state, tape_width): (usize, usize, usize),
    f: impl Fn(&[f32], &[f32], Option<&mut [f32]>, &mut [f32]) + Sync,
) {
    let batch = x.nrows();
    let x = rows(what, "x", x, batch, input);
    let h_prev = rows(what, "h_prev", h_prev, batch, state);
    let h_next = rows_mut(what, "h_next", h_next, batch, state);
    let inputs = |r: &Range<usize>| (&x[row_span(r, input)], &h_prev[row_span(r, state)]);
    match tape {
        Some(tape) => {
            let tape = rows_mut(what, "tape", tape, batch, tape_width);
            par_rows_mut(
                batch,
                [(tape, tape_width), (h_next, state)],
                |r, [t, hn]| {
                    let (x, h) = inputs(&r);
                    f(x, h, Some(t), hn)
                },
            );
        }
        None => par_rows_mut(batch, [(h_next, state)], |r, [hn]| {
            let (x, h) = inputs(&r);
            f(x, h, None, hn)
        }),
    }
}
