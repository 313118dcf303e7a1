//! µs per call of each method of the runtime's cells, at one size.
//!
//! `cargo run --release -p bptt-runtime --example step_bench -- [input hidden batch]`
//! (default: the paper benchmark's LSTM 64×256 at batch 16). Every row is
//! the median of interleaved rounds; set `BPTT_THREADS=1` for one thread.

use bptt_runtime::{Cell, Gru, Lstm, Rng, Rnn};
use ndarray::Array2;
use std::hint::black_box;
use std::time::Instant;

/// Median µs per call of `f` over rounds of `calls` calls.
fn median_us(rounds: usize, calls: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / calls as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[rounds / 2]
}

fn bench(name: &str, cell: &dyn Cell, batch: usize) {
    let mut rng = Rng::new(5);
    let mut fill =
        |r: usize, c: usize| Array2::from_shape_simple_fn((r, c), || rng.uniform(-1.0, 1.0));
    let x = fill(batch, cell.input_size());
    let h = fill(batch, cell.state_size());
    let dh = fill(batch, cell.state_size());
    let mut tape = Array2::zeros((batch, cell.tape_size()));
    let mut next = Array2::zeros((batch, cell.state_size()));
    let mut dprev = Array2::zeros((batch, cell.state_size()));
    let mut scratch = Array2::zeros((batch, cell.scratch_size()));
    let mut grads = vec![0.0; cell.params().len()];
    cell.forward_tape(
        x.view(),
        h.view(),
        tape.view_mut(),
        next.view_mut(),
        scratch.view_mut(),
    );
    let (rounds, calls) = (15, 40);
    let fwd = median_us(rounds, calls, || {
        cell.forward_tape(
            x.view(),
            h.view(),
            tape.view_mut(),
            next.view_mut(),
            scratch.view_mut(),
        );
        black_box(&next);
    });
    let rebuild = median_us(rounds, calls, || {
        cell.state_from_tape(tape.view(), next.view_mut(), scratch.view_mut());
        black_box(&next);
    });
    let bwd = median_us(rounds, calls, || {
        cell.backward(
            x.view(),
            tape.view(),
            dh.view(),
            dprev.view_mut(),
            &mut grads,
            scratch.view_mut(),
        );
        black_box(&dprev);
    });
    println!("{name:<6} {fwd:>14.1} {rebuild:>16.1} {bwd:>12.1}");
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (input, hidden, batch) = match args[..] {
        [i, h, b] => (i, h, b),
        _ => (64, 256, 16),
    };
    let mut rng = Rng::new(1);
    println!("input {input}, hidden {hidden}, batch {batch}: µs per call, median of 15 rounds");
    println!(
        "{:<6} {:>14} {:>16} {:>12}",
        "cell", "forward_tape", "state_from_tape", "backward"
    );
    bench("lstm", &Lstm::new(input, hidden, &mut rng), batch);
    bench("gru", &Gru::new(input, hidden, &mut rng), batch);
    bench("rnn", &Rnn::new(input, hidden, &mut rng), batch);
}
