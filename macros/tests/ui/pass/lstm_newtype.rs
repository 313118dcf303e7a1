//! A user crate's LSTM newtype: annotate, allocate the arena up front, train.

use bptt_macros::bptt;
use bptt_runtime::{Cell, Gradients, LossKind, Lstm, Readout, Rng, Targets};
use ndarray::{Array2, Array3};

#[bptt(seq_len = 50, budget = "10%", alpha = 3)]
pub struct MyLstm(Lstm);

bptt_runtime::delegate_cell!(MyLstm, 0);

fn main() {
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
    assert!(MyLstm::FORWARD_STEPS > 50);
    assert!(MyLstm::CAPACITY_TICKS <= 14);
}
