//! The derived LSTM (cells/lstm.cell) against the runtime's hand-written
//! `Lstm`, per step: forward, forward keeping the tape, rebuilding the state
//! from the tape, and backward, on the interpreter's cell (`DerivedCell`)
//! and the JIT's (`JitCell`).
//!
//! ```sh
//! cargo run --release --example cell_bench            # input 64, hidden 256, batch 16
//! cargo run --release --example cell_bench -- 32 128 8
//! ```
//!
//! Every row is measured in the same run, interleaved, and reported as the
//! median of many repetitions with its ratio to the hand-written cell.

use std::time::Instant;

use bptt::cell_lang::{CellDef, DerivedCell};
use bptt::jit::cell::JitCell;
use bptt_runtime::{Cell, Lstm, Rng};
use ndarray::Array2;

/// Median seconds of `f` over `reps` runs.
fn median(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

/// Median times of the four methods of `cell`, in the order of `METHODS`.
fn time(cell: &dyn Cell, batch: usize, reps: usize) -> [f64; 4] {
    let mut rng = Rng::new(7);
    let x = Array2::from_shape_simple_fn((batch, cell.input_size()), || rng.uniform(-1.0, 1.0));
    let h = Array2::from_shape_simple_fn((batch, cell.state_size()), || rng.uniform(-1.0, 1.0));
    let dh = h.clone();
    let mut next = Array2::zeros((batch, cell.state_size()));
    let mut tape = Array2::zeros((batch, cell.tape_size()));
    let mut scratch = Array2::zeros((batch, cell.scratch_size()));
    let mut dh_prev = Array2::zeros((batch, cell.state_size()));
    let mut grads = vec![0.0; cell.params().len()];
    [
        median(reps, || {
            cell.forward(x.view(), h.view(), next.view_mut(), scratch.view_mut())
        }),
        median(reps, || {
            cell.forward_tape(
                x.view(),
                h.view(),
                tape.view_mut(),
                next.view_mut(),
                scratch.view_mut(),
            )
        }),
        median(reps, || cell.state_from_tape(tape.view(), next.view_mut())),
        median(reps, || {
            cell.backward(
                x.view(),
                tape.view(),
                dh.view(),
                dh_prev.view_mut(),
                &mut grads,
                scratch.view_mut(),
            )
        }),
    ]
}

const METHODS: [&str; 4] = ["forward", "forward_tape", "state_from_tape", "backward"];

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are integers"))
        .collect();
    let (input, hidden, batch) = match args[..] {
        [i, h, b] => (i, h, b),
        _ => (64, 256, 16),
    };
    let mut rng = Rng::new(1);
    let hand = Lstm::new(input, hidden, &mut rng);
    let program = CellDef::parse_str(include_str!("../cells/lstm.cell"))
        .and_then(|def| def.compile(&[("input", input), ("hidden", hidden)]))
        .expect("cells/lstm.cell compiles");
    let derived =
        DerivedCell::from_params(program.clone(), hand.params().to_vec()).expect("same layout");
    let jit = JitCell::compile(&program, hand.params().to_vec()).expect("the JIT compiles it");
    let cells: [(&str, &dyn Cell); 3] = [
        ("hand-written Lstm", &hand),
        ("derived, interpreter", &derived),
        ("derived, JIT", &jit),
    ];
    println!(
        "LSTM input {input}, hidden {hidden}, batch {batch}; median of 9 rounds of 30 calls (µs per call)"
    );
    // Interleave rounds so that load on the machine hits every cell alike.
    let mut rounds: Vec<Vec<[f64; 4]>> = vec![Vec::new(); cells.len()];
    for _ in 0..9 {
        for (k, (_, cell)) in cells.iter().enumerate() {
            rounds[k].push(time(*cell, batch, 30));
        }
    }
    let med = |k: usize, m: usize| {
        let mut v: Vec<f64> = rounds[k].iter().map(|r| r[m]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    print!("{:<22}", "");
    for m in METHODS {
        print!("{m:>24}");
    }
    println!("{:>24}", "fwd_tape + backward");
    for (k, (name, _)) in cells.iter().enumerate() {
        print!("{name:<22}");
        for m in 0..4 {
            print!(
                "{:>14.1} ({:>5.3}x)",
                med(k, m) * 1e6,
                med(k, m) / med(0, m)
            );
        }
        let (step, base) = (med(k, 1) + med(k, 3), med(0, 1) + med(0, 3));
        println!("{:>14.1} ({:>5.3}x)", step * 1e6, step / base);
    }
}
