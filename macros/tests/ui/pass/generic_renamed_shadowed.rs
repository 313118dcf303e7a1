//! A generic cell type, a renamed method, a bare policy name, a fractional
//! budget, and a crate that shadows every name the generated code could
//! collide with: it names the runtime only through its hidden module.

#![allow(dead_code)]

use bptt_macros::bptt;
use bptt_runtime::{Cell as RuntimeCell, Gradients as Grads, LossKind, Readout as Out, Rng, Rnn};
use ndarray::{Array2, Array3, ArrayView2, ArrayViewMut2};

struct Arena;
struct Execution;
struct Offsets;
struct Cell;
struct Readout;
mod bptt_runtime_shadow {}
type Result = ();
type Option = ();

#[bptt(seq_len = 30, budget = 6.5, alpha = 2, policy = hsm, name = "step")]
pub struct Wrapped<C: RuntimeCell> {
    inner: C,
}

impl<C: RuntimeCell> RuntimeCell for Wrapped<C> {
    fn input_size(&self) -> usize {
        self.inner.input_size()
    }
    fn state_size(&self) -> usize {
        self.inner.state_size()
    }
    fn tape_size(&self) -> usize {
        self.inner.tape_size()
    }
    fn output_size(&self) -> usize {
        self.inner.output_size()
    }
    fn scratch_size(&self) -> usize {
        self.inner.scratch_size()
    }
    fn params(&self) -> &[f32] {
        self.inner.params()
    }
    fn params_mut(&mut self) -> &mut [f32] {
        self.inner.params_mut()
    }
    fn forward(
        &self,
        x: ArrayView2<f32>,
        h: ArrayView2<f32>,
        next: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    ) {
        self.inner.forward(x, h, next, scratch)
    }
    fn forward_tape(
        &self,
        x: ArrayView2<f32>,
        h: ArrayView2<f32>,
        tape: ArrayViewMut2<f32>,
        next: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    ) {
        self.inner.forward_tape(x, h, tape, next, scratch)
    }
    fn state_from_tape(&self, tape: ArrayView2<f32>, h: ArrayViewMut2<f32>) {
        self.inner.state_from_tape(tape, h)
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
        self.inner.backward(x, tape, dh, dh_prev, grads, scratch)
    }
}

fn main() {
    let mut rng = Rng::new(2);
    let cell = Wrapped {
        inner: Rnn::new(2, 4, &mut rng),
    };
    let readout = Out::new(LossKind::SoftmaxCrossEntropy, 4, 3, &mut rng);
    let x = Array3::from_shape_simple_fn((30, 2, 2), || rng.uniform(-1.0, 1.0));
    let classes = Array2::from_shape_simple_fn((30, 2), || rng.below(3) as u32);
    let h0 = Array2::zeros((2, 4));
    let mut arena = cell.new_arena(&readout, 2).unwrap();
    let mut grads = Grads::zeros(&cell, &readout, 2);
    let targets = bptt_runtime::Targets::Classes(classes.view());
    let loss = cell
        .step(
            &readout,
            &mut arena,
            x.view(),
            h0.view(),
            targets,
            &mut grads,
        )
        .unwrap();
    assert!(loss > 0.0);
    assert_eq!(Wrapped::<Rnn>::SEQ_LEN, 30);
    assert_eq!(Wrapped::<Rnn>::CAPACITY_TICKS, 6);
}
