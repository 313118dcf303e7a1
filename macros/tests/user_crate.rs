//! What user crates write compiles and runs: at the root, a generic cell
//! type, a renamed method, a bare policy name, a fractional budget, and a
//! crate that shadows every name the generated code could collide with (it
//! names the runtime only through its hidden module); in `newtype`, an LSTM
//! newtype annotated, its arena allocated up front, and trained. (Ordinary
//! tests rather than trybuild cases: they only need to compile and run, and
//! a single pass case makes trybuild build every dependency in full instead
//! of checking it.)

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
    fn state_from_tape(
        &self,
        tape: ArrayView2<f32>,
        h: ArrayViewMut2<f32>,
        scratch: ArrayViewMut2<f32>,
    ) {
        self.inner.state_from_tape(tape, h, scratch)
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

#[test]
fn a_shadowing_crate_with_a_generic_cell_trains() {
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

/// A user crate's LSTM newtype.
mod newtype {
    use bptt_macros::bptt;
    use bptt_runtime::{Cell, Gradients, LossKind, Lstm, Readout, Rng, Targets};
    use ndarray::{Array2, Array3};

    #[bptt(seq_len = 50, budget = "10%", alpha = 3)]
    pub struct MyLstm(Lstm);

    ::bptt_runtime::delegate_cell!(MyLstm, 0);

    #[test]
    fn an_lstm_newtype_trains() {
        let (batch, input, hidden) = (4, 3, 8);
        let mut rng = Rng::new(1);
        let mut cell = MyLstm(Lstm::new(input, hidden, &mut rng));
        let readout = Readout::new(LossKind::SquaredError, hidden, 2, &mut rng);
        let len = MyLstm::SEQ_LEN as usize;
        let x = Array3::from_shape_simple_fn((len, batch, input), || rng.uniform(-1.0, 1.0));
        let y = Array3::from_shape_simple_fn((len, batch, 2), || rng.uniform(-1.0, 1.0));
        let h0 = Array2::zeros((batch, cell.state_size()));
        let mut arena = cell.new_arena(&readout, batch).unwrap();
        let mut grads = Gradients::zeros(&cell, &readout, batch);
        let mut losses = Vec::new();
        for _ in 0..20 {
            let loss = cell
                .train_step(
                    &readout,
                    &mut arena,
                    x.view(),
                    h0.view(),
                    Targets::Values(y.view()),
                    &mut grads,
                )
                .unwrap();
            losses.push(loss);
            for (w, g) in cell.params_mut().iter_mut().zip(&grads.cell) {
                *w -= 0.1 * g;
            }
        }
        assert!(losses[19] < losses[0], "{losses:?}");
        const { assert!(MyLstm::FORWARD_STEPS > 50) };
        const { assert!(MyLstm::CAPACITY_TICKS <= 14) };
    }
}
