//! Packed copies of a cell's weight matrices, refreshed after its parameters
//! change: products read `W` (or `Wᵀ`) as column panels
//! ([`pack_b`](crate::kernels::pack_b)) instead of rows a row stride apart.
//!
//! The copies are made when a step first needs them after
//! [`PackedWeights::invalidate`] (which `Cell::params_mut` calls), in place
//! in one buffer allocated with the cell, so a training step allocates
//! nothing. Packing moves floats and never changes one, and the packed
//! product is bitwise the row-major one
//! ([`gemm_nn_packed_acc`](crate::kernels::gemm_nn_packed_acc)), so results
//! do not depend on when a copy was made. A transposed copy turns `A·Wᵀ`
//! into such a product, which sums each element's products in order (not in
//! the dot-product lanes of `gemm_nt_acc`).

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use crate::kernels::{pack_b, pack_bt, packed_len};

/// One packed matrix: the row-major `rows × cols` matrix at `offset` in the
/// parameters, packed as it is (`transposed` false: `B` is `rows × cols`) or
/// as its transpose (`B` is `cols × rows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packing {
    /// First float of the matrix in the parameter vector.
    pub offset: usize,
    /// Rows of the matrix as stored.
    pub rows: usize,
    /// Columns of the matrix as stored.
    pub cols: usize,
    /// Pack the transpose.
    pub transposed: bool,
}

impl Packing {
    /// `(k, n)` of the packed `B`.
    pub fn shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    /// Its floats in the parameter vector.
    pub fn source(&self) -> Range<usize> {
        self.offset..self.offset + self.rows * self.cols
    }

    /// Floats of its packed copy on this machine.
    pub fn floats(&self) -> usize {
        let (k, n) = self.shape();
        packed_len(k, n)
    }
}

/// Packed copies of some of a parameter vector's matrices (a cell's
/// weights), made lazily after each change of the parameters.
pub struct PackedWeights {
    packings: Vec<Packing>,
    /// Where each copy starts in `panels`.
    starts: Vec<usize>,
    panels: RwLock<Vec<f32>>,
    /// The copies do not reflect the parameters.
    stale: AtomicBool,
}

/// The packed copies, current, while borrowed.
pub struct Packed<'a> {
    panels: RwLockReadGuard<'a, Vec<f32>>,
    weights: &'a PackedWeights,
}

impl Packed<'_> {
    /// The panels of copy `i` (in [`PackedWeights::new`]'s order).
    pub fn matrix(&self, i: usize) -> &[f32] {
        let w = self.weights;
        &self.panels[w.starts[i]..w.starts[i] + w.packings[i].floats()]
    }

    /// The panels of the copy made for `p`.
    ///
    /// # Panics
    /// If there is none.
    pub fn find(&self, p: Packing) -> &[f32] {
        let i = self.weights.packings.iter().position(|q| *q == p);
        self.matrix(i.unwrap_or_else(|| panic!("no packed copy of {p:?}")))
    }

    /// Where each copy starts in [`Packed::all`], in order.
    pub fn starts(&self) -> &[usize] {
        &self.weights.starts
    }

    /// All copies, back to back (copy `i` at [`Packed::starts`]`[i]`).
    pub fn all(&self) -> &[f32] {
        &self.panels
    }
}

impl PackedWeights {
    /// Buffers for `packings`, stale until first used.
    pub fn new(packings: Vec<Packing>) -> PackedWeights {
        let (starts, len) = Self::layout(&packings);
        PackedWeights {
            packings,
            starts,
            panels: RwLock::new(vec![0.0; len]),
            stale: AtomicBool::new(true),
        }
    }

    /// Where each copy of `packings` starts on this machine, and the floats
    /// of all of them: the layout of [`Packed::all`].
    ///
    /// # Panics
    /// If the size overflows.
    fn layout(packings: &[Packing]) -> (Vec<usize>, usize) {
        let mut starts = Vec::with_capacity(packings.len());
        let mut len = 0usize;
        for p in packings {
            starts.push(len);
            len = len
                .checked_add(p.floats())
                .expect("PackedWeights: size overflows");
        }
        (starts, len)
    }

    /// Floats the copies occupy (part of a cell's fixed memory).
    pub fn floats(&self) -> usize {
        self.read().len()
    }

    /// Marks the copies stale: the parameters are about to change.
    pub fn invalidate(&mut self) {
        *self.stale.get_mut() = true;
    }

    /// The copies of `params`' matrices, packed now if they are stale.
    ///
    /// # Panics
    /// If a matrix lies outside `params`.
    pub fn get(&self, params: &[f32]) -> Packed<'_> {
        if self.stale.load(Ordering::Acquire) {
            let mut panels = self.panels.write().unwrap_or_else(PoisonError::into_inner);
            if self.stale.load(Ordering::Acquire) {
                for (p, &start) in self.packings.iter().zip(&self.starts) {
                    let (k, n) = p.shape();
                    let out = &mut panels[start..start + p.floats()];
                    let src = &params[p.source()];
                    if p.transposed {
                        pack_bt(k, n, src, out);
                    } else {
                        pack_b(k, n, src, out);
                    }
                }
                self.stale.store(false, Ordering::Release);
            }
        }
        Packed {
            panels: self.read(),
            weights: self,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<f32>> {
        self.panels.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clone for PackedWeights {
    fn clone(&self) -> PackedWeights {
        PackedWeights {
            packings: self.packings.clone(),
            starts: self.starts.clone(),
            panels: RwLock::new(self.read().clone()),
            stale: AtomicBool::new(self.stale.load(Ordering::Acquire)),
        }
    }
}

impl fmt::Debug for Packed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packed")
            .field("floats", &self.panels.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PackedWeights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackedWeights")
            .field("packings", &self.packings)
            .field("stale", &self.stale.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::panel_width;

    /// Copies follow the parameters: packed on first use, again after
    /// `invalidate`, never from stale values.
    #[test]
    fn copies_follow_the_parameters() {
        let mut params: Vec<f32> = (0..30).map(|i| i as f32).collect();
        let packings = vec![
            Packing {
                offset: 0,
                rows: 2,
                cols: 3,
                transposed: false,
            },
            Packing {
                offset: 6,
                rows: 4,
                cols: 6,
                transposed: true,
            },
        ];
        let mut w = PackedWeights::new(packings.clone());
        let expect = |params: &[f32]| -> Vec<Vec<f32>> {
            packings
                .iter()
                .map(|p| {
                    let (k, n) = p.shape();
                    let mut out = vec![0.0; p.floats()];
                    if p.transposed {
                        pack_bt(k, n, &params[p.source()], &mut out);
                    } else {
                        pack_b(k, n, &params[p.source()], &mut out);
                    }
                    out
                })
                .collect()
        };
        let got = |w: &PackedWeights, params: &[f32]| -> Vec<Vec<f32>> {
            let packed = w.get(params);
            (0..2).map(|i| packed.matrix(i).to_vec()).collect()
        };
        assert_eq!(got(&w, &params), expect(&params));
        assert_eq!(w.get(&params).starts(), [0, packings[0].floats()]);
        assert_eq!(w.floats(), 8 * panel_width());
        params[7] = -1.0;
        w.invalidate();
        assert_eq!(got(&w, &params), expect(&params));
        let copy = w.clone();
        assert_eq!(got(&copy, &params), expect(&params));
    }
}
