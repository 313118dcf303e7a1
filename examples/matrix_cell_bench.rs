//! The matrix-memory cells (`cells/linear_attention.cell`, `cells/mlstm.cell`)
//! at key = value = 64: the time of a training step's cell work
//! (`forward_tape` + `backward`) against its flop count, interpreted and
//! JIT-compiled, and the memory a 5% budget saves at T = 1000.
//!
//! ```sh
//! cargo run --release --example matrix_cell_bench          # batch 16
//! cargo run --release --example matrix_cell_bench -- 4     # batch 4
//! ```
//!
//! Rows are interleaved and reported as medians, from one run.

use std::path::Path;
use std::time::Instant;

use bptt::cell_lang::{CellProgram, DerivedCell, compile_file};
use bptt::jit::cell::JitCell;
use bptt::{Alpha, Budget, Plan, Policy};
use bptt_runtime::{Cell, Rng};
use ndarray::Array2;

const INPUT: usize = 64;
const KEY: usize = 64;
const VALUE: usize = 64;
const LEN: u32 = 1000;

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

/// Seconds of one `forward_tape` and one `backward` of `cell` on `batch` rows.
fn step_seconds(cell: &dyn Cell, batch: usize, reps: usize) -> f64 {
    let mut rng = Rng::new(7);
    let x = Array2::from_shape_simple_fn((batch, cell.input_size()), || rng.uniform(-1.0, 1.0));
    let h = Array2::from_shape_simple_fn((batch, cell.state_size()), || rng.uniform(-0.5, 0.5));
    let dh = h.clone();
    let mut next = Array2::zeros((batch, cell.state_size()));
    let mut tape = Array2::zeros((batch, cell.tape_size()));
    let mut scratch = Array2::zeros((batch, cell.scratch_size()));
    let mut dh_prev = Array2::zeros((batch, cell.state_size()));
    let mut grads = vec![0.0; cell.params().len()];
    median(reps, || {
        cell.forward_tape(
            x.view(),
            h.view(),
            tape.view_mut(),
            next.view_mut(),
            scratch.view_mut(),
        );
        cell.backward(
            x.view(),
            tape.view(),
            dh.view(),
            dh_prev.view_mut(),
            &mut grads,
            scratch.view_mut(),
        );
    })
}

/// Floating-point operations of one forward step per batch row, counted
/// from the cell's definition: its products with parameters and of
/// activations (two per multiply-add), and one per element of its
/// elementwise work on the matrix memory. The backward step of each product
/// is two products of the same size, so a step of `forward_tape` and
/// `backward` is about three times this.
fn forward_flops(name: &str) -> f64 {
    let (i, k, v) = (INPUT as f64, KEY as f64, VALUE as f64);
    match name {
        // q, k, v and the [1] decay; g·s + k⊗v (3 per element); qᵀs.
        "linear_attention" => 2.0 * i * (2.0 * k + v + 1.0) + 3.0 * k * v + 2.0 * k * v,
        // q, k, v, o and the [1] gates i and f; f·c + i·(k⊗v) (4 per
        // element); qᵀc; f·n + i·k and n·q (6 per key).
        _ => 2.0 * i * (2.0 * k + 2.0 * v + 2.0) + 4.0 * k * v + 2.0 * k * v + 6.0 * k,
    }
}

fn program(name: &str) -> CellProgram {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("cells/{name}.cell"));
    let sizes = [("key".to_string(), KEY), ("value".to_string(), VALUE)];
    compile_file(&path, INPUT, VALUE, &sizes).expect("the example cells compile")
}

fn main() {
    let batch: usize = std::env::args()
        .nth(1)
        .map_or(16, |b| b.parse().expect("a batch size"));
    println!("## Matrix-memory cells: input {INPUT}, key {KEY}, value {VALUE}, batch {batch}\n");
    println!(
        "| cell | engine | alpha | us per step (forward_tape + backward) | GFLOP/s (3 x forward flops) | store-all at T = {LEN} | 5% budget | forward steps per step |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for name in ["linear_attention", "mlstm"] {
        let program = program(name);
        let mut rng = Rng::new(1);
        let params = program.init_params(&mut rng);
        let interp = DerivedCell::from_params(program.clone(), params.clone()).expect("sizes fit");
        let jit = JitCell::compile(&program, params).expect("compiles");
        let cells: [(&str, &dyn Cell); 2] = [("interpreter", &interp), ("JIT", &jit)];
        let mut rounds = vec![Vec::new(); cells.len()];
        for _ in 0..7 {
            for (k, (_, cell)) in cells.iter().enumerate() {
                rounds[k].push(step_seconds(*cell, batch, 20));
            }
        }
        let alpha = interp.alpha();
        let plan = Plan::new(
            Policy::Msm,
            Alpha::new(alpha).expect("alpha at least 1"),
            LEN,
            Budget::Percent(5.0),
        )
        .expect("plans");
        let state_mb = (interp.state_size() * batch * 4) as f64 / 1e6;
        let store_all = Alpha::new(alpha).unwrap().store_all_units(LEN) * state_mb;
        let budgeted = plan.summary().peak_units * state_mb;
        for (k, (engine, _)) in cells.iter().enumerate() {
            rounds[k].sort_by(f64::total_cmp);
            let seconds = rounds[k][rounds[k].len() / 2];
            let flops = 3.0 * forward_flops(name) * batch as f64;
            println!(
                "| {name} | {engine} | {alpha:.2} | {:.1} | {:.1} | {store_all:.1} MB | {budgeted:.2} MB | {:.3} |",
                seconds * 1e6,
                flops / seconds / 1e9,
                plan.summary().cost_per_step,
            );
        }
    }
}
