//! The recurrent cell interface that every executor drives.

use ndarray::{ArrayView2, ArrayViewMut2};

/// A recurrent cell `h[k] = f(h[k-1], x[k])`, batched over rows.
///
/// Every array is `[batch, features]`, row-major and contiguous. A cell owns its
/// parameters as one flat vector; parameter gradients use the same layout.
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
    /// Floats per batch row of scratch space that `backward` needs.
    fn scratch_size(&self) -> usize;
    /// The flat parameter vector.
    fn params(&self) -> &[f32];
    /// The flat parameter vector, mutable (for optimisers and finite differences).
    fn params_mut(&mut self) -> &mut [f32];

    /// One step: `h_next = f(h_prev, x)`.
    fn forward(&self, x: ArrayView2<f32>, h_prev: ArrayView2<f32>, h_next: ArrayViewMut2<f32>);

    /// One step that also records the step's tape.
    fn forward_tape(
        &self,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        tape: ArrayViewMut2<f32>,
        h_next: ArrayViewMut2<f32>,
    );

    /// Rebuilds `h[k]` from the tape of step `k`.
    fn state_from_tape(&self, tape: ArrayView2<f32>, h: ArrayViewMut2<f32>);

    /// The backward step: given the tape of step `k` and `dh = dL/dh[k]`, writes
    /// `dh_prev = dL/dh[k-1]` (overwriting it) and adds the step's parameter
    /// gradients into `grads`.
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
