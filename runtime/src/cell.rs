//! The recurrent cell interface that every executor drives.

use ndarray::{ArrayView2, ArrayViewMut2};

/// A recurrent cell `h[k] = f(h[k-1], x[k])`, batched over rows.
///
/// Every array is `[batch, features]`, row-major and contiguous. A cell owns its
/// parameters as one flat vector; parameter gradients use the same layout.
/// `forward`, `forward_tape` and `backward` each receive a `scratch` region of
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
    /// Floats per batch row of scratch space that the forward steps and
    /// `backward` need.
    fn scratch_size(&self) -> usize;
    /// The flat parameter vector.
    fn params(&self) -> &[f32];
    /// The flat parameter vector, mutable (for optimisers and finite differences).
    fn params_mut(&mut self) -> &mut [f32];

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

    /// Rebuilds `h[k]` from the tape of step `k`.
    fn state_from_tape(&self, tape: ArrayView2<f32>, h: ArrayViewMut2<f32>);

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

    /// The tape's size over the hidden state's: the planning model's `alpha`.
    fn alpha(&self) -> f64 {
        self.tape_size() as f64 / self.state_size() as f64
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
            ) {
                $crate::Cell::state_from_tape(&self.$field, tape, h)
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
        }
    };
}
