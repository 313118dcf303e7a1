//! The recurrent cell interface that every executor drives.

use ndarray::{ArrayView2, ArrayViewMut2};

/// A recurrent cell `h[k] = f(h[k-1], x[k])`, batched over rows.
///
/// Every array is `[batch, features]`, row-major and contiguous. A cell owns its
/// parameters as one flat vector; parameter gradients use the same layout.
/// Every method that computes receives a `scratch` region of
/// `[batch, scratch_size()]` floats for intermediates; its contents on entry
/// are unspecified (whatever the previous call left there), so a cell must not
/// read scratch it has not written in the same call.
///
/// # Contract
///
/// * `forward` and `forward_tape` write bitwise the same `h_next`, and
///   `state_from_tape` rebuilds bitwise the same `h[k]` from a tape: this is what
///   makes every schedule give gradients identical to store-all BPTT.
/// * No method allocates on the heap; scratch space comes from the caller.
/// * Results do not depend on thread timing (kernels split work statically).
pub trait Cell: Send + Sync {
    /// Features per batch row of the input `x[k]`.
    fn input_size(&self) -> usize;
    /// Floats per batch row of the hidden state `h[k]` (an LSTM holds `h` and `c`).
    fn state_size(&self) -> usize;
    /// Floats per batch row of the tape: all that `backward` needs for one step.
    fn tape_size(&self) -> usize;
    /// Floats per batch row of the output that a loss reads: the first
    /// `output_size` features of the state.
    fn output_size(&self) -> usize;
    /// Floats per batch row of scratch space that the forward steps,
    /// `state_from_tape` and `backward` need.
    fn scratch_size(&self) -> usize;
    /// The flat parameter vector.
    fn params(&self) -> &[f32];
    /// The flat parameter vector, mutable (for optimisers and finite differences).
    fn params_mut(&mut self) -> &mut [f32];
    /// Floats of the packed copies of the weights the cell keeps for its
    /// matrix products (refreshed after [`Cell::params_mut`]): fixed memory
    /// beside the parameters, counted by memory budgets. 0 by default.
    fn packed_floats(&self) -> usize {
        0
    }

    /// One step: `h_next = f(h_prev, x)`, using `scratch`
    /// (`[batch, scratch_size()]`) for intermediates.
    fn forward(
        &self,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        h_next: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    );

    /// One step that also records the step's tape, using `scratch`
    /// (`[batch, scratch_size()]`) for intermediates.
    fn forward_tape(
        &self,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        tape: ArrayViewMut2<f32>,
        h_next: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    );

    /// Rebuilds `h[k]` from the tape of step `k`, using `scratch`
    /// (`[batch, scratch_size()]`) for intermediates.
    fn state_from_tape(
        &self,
        tape: ArrayView2<f32>,
        h: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    );

    /// The backward step: given the tape of step `k` and `dh = dL/dh[k]`, writes
    /// `dh_prev = dL/dh[k-1]` (overwriting it) and adds the step's parameter
    /// gradients into `grads`, using `scratch` (`[batch, scratch_size()]`)
    /// for intermediates.
    fn backward(
        &self,
        x: ArrayView2<f32>,
        tape: ArrayView2<f32>,
        dh: ArrayView2<f32>,
        dh_prev: ArrayViewMut2<f32>,
        grads: &mut [f32],
        scratch: ArrayViewMut2<f32>,
    );

    /// The weight-gradient products that [`backward_deferred`](Cell::backward_deferred)
    /// leaves to its caller. Empty (the default) when the cell adds every
    /// parameter gradient itself.
    fn weight_gradients(&self) -> &[WeightGradient] {
        &[]
    }

    /// [`backward`](Cell::backward), except that the products of
    /// [`weight_gradients`](Cell::weight_gradients) are not added into
    /// `grads`: the step's rows of their operands are written into
    /// `operands` instead, for the caller to sum a window of steps at once
    /// (see [`WeightGradient`]). Every other parameter gradient is added as
    /// `backward` adds it, and `dh_prev` is written as `backward` writes it.
    ///
    /// Adding the deferred products of the steps `k, k-1, …` in that order, as
    /// [`WeightGradient::add`] does, must give `grads` bitwise equal to calling
    /// `backward` for the same steps in the same order. The default, for cells
    /// without deferred products, is `backward`.
    #[allow(clippy::too_many_arguments)]
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
        debug_assert_eq!(operands.products(), 0);
        self.backward(x, tape, dh, dh_prev, grads, scratch);
    }

    /// The tape's size over the hidden state's: the planning model's `alpha`.
    fn alpha(&self) -> f64 {
        self.tape_size() as f64 / self.state_size() as f64
    }
}

/// A parameter-gradient product `dW += Aᵀ·D`, with `db += Σ_rows D` when it
/// has a bias, that a cell's backward step leaves to its executor.
///
/// Per step, `A` is `[batch × rows]` (what multiplied `W` in the forward
/// step, e.g. `[x | h_prev]`) and `D` is `[batch × cols]` (the gradient of
/// the product). Stacking the rows of a window of steps, the latest step
/// first, turns a rank-`batch` update per step, which streams all of `dW`
/// through memory each step, into one product whose reduction is the
/// window's rows. The matrix kernels sum each element in row order with one
/// fused multiply-add per row (see [`kernels`](crate::kernels)), so the
/// window adds exactly what the steps would have added one by one, in the
/// same order: the result is bitwise the same for any window length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightGradient {
    /// Columns of `A`: rows of `dW`.
    pub rows: usize,
    /// Columns of `D`: columns of `dW` and floats of `db`.
    pub cols: usize,
    /// First float of `dW` (`[rows × cols]`, row-major) in the gradients.
    pub weight: usize,
    /// First float of `db` (`[cols]`) in the gradients, if there is a bias.
    pub bias: Option<usize>,
}

impl WeightGradient {
    /// Floats of one batch row of the operands: `rows + cols`.
    pub fn operand_floats(&self) -> usize {
        self.rows + self.cols
    }

    /// Adds `Aᵀ·D` (and `Σ_rows D`) into `grads`, for `a` of `[n × rows]` and
    /// `d` of `[n × cols]` floats, summing rows in order.
    ///
    /// # Panics
    /// If the slices do not have `n` whole rows or the product lies outside
    /// `grads`.
    pub fn add(&self, a: &[f32], d: &[f32], grads: &mut [f32]) {
        let n = d.len() / self.cols.max(1);
        let dw = &mut grads[self.weight..self.weight + self.rows * self.cols];
        crate::kernels::gemm_tn_acc(self.rows, n, self.cols, a, d, dw);
        if let Some(b) = self.bias {
            let db = &mut grads[b..b + self.cols];
            for row in d.chunks_exact(self.cols) {
                for (g, v) in db.iter_mut().zip(row) {
                    *g += v;
                }
            }
        }
    }
}

/// Where one backward step writes the operands of its deferred weight
/// gradients: for product `i` of [`Cell::weight_gradients`], `batch` rows of
/// `A` and `batch` rows of `D` inside an executor's window.
#[derive(Debug)]
pub struct Operands<'a> {
    window: &'a mut [f32],
    products: &'a [WeightGradient],
    steps: usize,
    batch: usize,
    position: usize,
}

impl<'a> Operands<'a> {
    /// The rows of step `position` (`0..steps`) in a window of `steps` steps
    /// of `batch` rows laid out as [`window_floats`](Self::window_floats) says.
    ///
    /// # Panics
    /// If the window is too small or the position is past its end.
    pub fn new(
        window: &'a mut [f32],
        products: &'a [WeightGradient],
        steps: usize,
        batch: usize,
        position: usize,
    ) -> Self {
        assert!(
            position < steps.max(1) && window.len() >= Self::window_floats(products, steps, batch),
            "operands of step {position} do not fit a window of {steps} steps"
        );
        Operands {
            window,
            products,
            steps,
            batch,
            position,
        }
    }

    /// No operands: for cells without deferred products.
    pub fn none() -> Operands<'static> {
        Operands {
            window: &mut [],
            products: &[],
            steps: 0,
            batch: 0,
            position: 0,
        }
    }

    /// Floats of a window of `steps` steps: for each product in turn, its
    /// `A` block (`[steps·batch × rows]`) then its `D` block
    /// (`[steps·batch × cols]`), step `s` at rows `s·batch..(s+1)·batch`.
    pub fn window_floats(products: &[WeightGradient], steps: usize, batch: usize) -> usize {
        products
            .iter()
            .map(|p| steps * batch * p.operand_floats())
            .sum()
    }

    /// How many products there are.
    pub fn products(&self) -> usize {
        self.products.len()
    }

    /// The `(A, D)` rows of this step for each product, in order.
    pub fn each(self) -> impl Iterator<Item = (&'a mut [f32], &'a mut [f32])> {
        let (steps, batch, position) = (self.steps, self.batch, self.position);
        window_blocks(self.window, self.products, steps, batch).map(move |(p, a, d)| {
            let a = &mut a[position * batch * p.rows..(position + 1) * batch * p.rows];
            let d = &mut d[position * batch * p.cols..(position + 1) * batch * p.cols];
            (a, d)
        })
    }

    /// The `(A, D)` rows of this step for each of the `N` products.
    ///
    /// # Panics
    /// If the cell has not exactly `N` deferred products.
    pub fn rows<const N: usize>(self) -> [(&'a mut [f32], &'a mut [f32]); N] {
        assert_eq!(self.products.len(), N, "the cell defers {N} products");
        let mut each = self.each();
        [(); N].map(|()| each.next().expect("one block per product"))
    }
}

/// The blocks of a window laid out as [`Operands::window_floats`] says:
/// for each product, its `A` block (`[steps·batch × rows]`) and its `D`
/// block (`[steps·batch × cols]`).
fn window_blocks<'w, 'p>(
    window: &'w mut [f32],
    products: &'p [WeightGradient],
    steps: usize,
    batch: usize,
) -> impl Iterator<Item = (&'p WeightGradient, &'w mut [f32], &'w mut [f32])> {
    let mut rest = window;
    products.iter().map(move |p| {
        let (a, tail) = std::mem::take(&mut rest).split_at_mut(steps * batch * p.rows);
        let (d, tail) = tail.split_at_mut(steps * batch * p.cols);
        rest = tail;
        (p, a, d)
    })
}

/// Adds the deferred products of the first `filled` steps of a window of
/// `steps` steps (laid out as [`Operands::window_floats`] says) into
/// `grads`, the window's rows in order.
pub(crate) fn add_window(
    window: &mut [f32],
    products: &[WeightGradient],
    steps: usize,
    batch: usize,
    filled: usize,
    grads: &mut [f32],
) {
    for (p, a, d) in window_blocks(window, products, steps, batch) {
        p.add(
            &a[..filled * batch * p.rows],
            &d[..filled * batch * p.cols],
            grads,
        );
    }
}

/// Implements [`Cell`] for a wrapper type by delegating every method to one of
/// its fields: `delegate_cell!(MyLstm, 0)` for `struct MyLstm(Lstm)`, or
/// `delegate_cell!(Model, inner)` for a named field. Handy for giving a
/// runtime cell its own type, e.g. to put `#[bptt(...)]` on it.
///
/// ```
/// use bptt_runtime::{Cell, Lstm, Rng};
///
/// struct MyLstm(Lstm);
/// bptt_runtime::delegate_cell!(MyLstm, 0);
///
/// let cell = MyLstm(Lstm::new(3, 4, &mut Rng::new(1)));
/// assert_eq!(cell.state_size(), 8);
/// ```
#[macro_export]
macro_rules! delegate_cell {
    ($ty:ty, $field:tt) => {
        impl $crate::Cell for $ty {
            fn input_size(&self) -> usize {
                $crate::Cell::input_size(&self.$field)
            }
            fn state_size(&self) -> usize {
                $crate::Cell::state_size(&self.$field)
            }
            fn tape_size(&self) -> usize {
                $crate::Cell::tape_size(&self.$field)
            }
            fn output_size(&self) -> usize {
                $crate::Cell::output_size(&self.$field)
            }
            fn scratch_size(&self) -> usize {
                $crate::Cell::scratch_size(&self.$field)
            }
            fn params(&self) -> &[f32] {
                $crate::Cell::params(&self.$field)
            }
            fn params_mut(&mut self) -> &mut [f32] {
                $crate::Cell::params_mut(&mut self.$field)
            }
            fn packed_floats(&self) -> usize {
                $crate::Cell::packed_floats(&self.$field)
            }
            fn forward(
                &self,
                x: $crate::__private::ArrayView2<f32>,
                h_prev: $crate::__private::ArrayView2<f32>,
                h_next: $crate::__private::ArrayViewMut2<f32>,
                scratch: $crate::__private::ArrayViewMut2<f32>,
            ) {
                $crate::Cell::forward(&self.$field, x, h_prev, h_next, scratch)
            }
            fn forward_tape(
                &self,
                x: $crate::__private::ArrayView2<f32>,
                h_prev: $crate::__private::ArrayView2<f32>,
                tape: $crate::__private::ArrayViewMut2<f32>,
                h_next: $crate::__private::ArrayViewMut2<f32>,
                scratch: $crate::__private::ArrayViewMut2<f32>,
            ) {
                $crate::Cell::forward_tape(&self.$field, x, h_prev, tape, h_next, scratch)
            }
            fn state_from_tape(
                &self,
                tape: $crate::__private::ArrayView2<f32>,
                h: $crate::__private::ArrayViewMut2<f32>,
                scratch: $crate::__private::ArrayViewMut2<f32>,
            ) {
                $crate::Cell::state_from_tape(&self.$field, tape, h, scratch)
            }
            fn backward(
                &self,
                x: $crate::__private::ArrayView2<f32>,
                tape: $crate::__private::ArrayView2<f32>,
                dh: $crate::__private::ArrayView2<f32>,
                dh_prev: $crate::__private::ArrayViewMut2<f32>,
                grads: &mut [f32],
                scratch: $crate::__private::ArrayViewMut2<f32>,
            ) {
                $crate::Cell::backward(&self.$field, x, tape, dh, dh_prev, grads, scratch)
            }
            fn weight_gradients(&self) -> &[$crate::WeightGradient] {
                $crate::Cell::weight_gradients(&self.$field)
            }
            fn backward_deferred(
                &self,
                x: $crate::__private::ArrayView2<f32>,
                tape: $crate::__private::ArrayView2<f32>,
                dh: $crate::__private::ArrayView2<f32>,
                dh_prev: $crate::__private::ArrayViewMut2<f32>,
                grads: &mut [f32],
                scratch: $crate::__private::ArrayViewMut2<f32>,
                operands: $crate::Operands<'_>,
            ) {
                $crate::Cell::backward_deferred(
                    &self.$field,
                    x,
                    tape,
                    dh,
                    dh_prev,
                    grads,
                    scratch,
                    operands,
                )
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    /// A window of steps summed at once adds bitwise what the steps add one
    /// by one, latest first, for any window length and batch.
    #[test]
    fn a_window_adds_bitwise_what_its_steps_add() {
        let mut rng = Rng::new(3);
        for (rows, cols, batch, steps) in [(5, 7, 3, 4), (9, 33, 1, 11), (17, 16, 4, 2)] {
            let product = WeightGradient {
                rows,
                cols,
                weight: 2,
                bias: Some(2 + rows * cols),
            };
            let len = 2 + rows * cols + cols;
            let start: Vec<f32> = (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let a: Vec<f32> = (0..steps * batch * rows)
                .map(|_| rng.uniform(-1.0, 1.0))
                .collect();
            let d: Vec<f32> = (0..steps * batch * cols)
                .map(|_| rng.uniform(-1.0, 1.0))
                .collect();
            let mut one_by_one = start.clone();
            for s in 0..steps {
                let a = &a[s * batch * rows..(s + 1) * batch * rows];
                let d = &d[s * batch * cols..(s + 1) * batch * cols];
                product.add(a, d, &mut one_by_one);
            }
            let mut at_once = start.clone();
            product.add(&a, &d, &mut at_once);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one_by_one), bits(&at_once));
            assert_ne!(bits(&start), bits(&at_once));
        }
    }

    /// Each step's operand rows land at its position in the window.
    #[test]
    fn operands_address_their_step() {
        let products = [
            WeightGradient {
                rows: 2,
                cols: 3,
                weight: 0,
                bias: None,
            },
            WeightGradient {
                rows: 1,
                cols: 1,
                weight: 0,
                bias: None,
            },
        ];
        let (steps, batch) = (3, 2);
        let mut window = vec![0.0; Operands::window_floats(&products, steps, batch)];
        assert_eq!(window.len(), 3 * 2 * (5 + 2));
        let [(a0, d0), (a1, d1)] =
            Operands::new(&mut window, &products, steps, batch, 1).rows::<2>();
        a0.fill(1.0);
        d0.fill(2.0);
        a1.fill(3.0);
        d1.fill(4.0);
        let expect: Vec<f32> = [
            vec![0.0; 4],
            vec![1.0; 4],
            vec![0.0; 4],
            vec![0.0; 6],
            vec![2.0; 6],
            vec![0.0; 6],
            vec![0.0; 2],
            vec![3.0; 2],
            vec![0.0; 2],
            vec![0.0; 2],
            vec![4.0; 2],
            vec![0.0; 2],
        ]
        .concat();
        assert_eq!(window, expect);
    }
}
