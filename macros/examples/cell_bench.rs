//! The derived LSTM (cells/lstm.cell) against the runtime's hand-written
//! `Lstm`, per step: forward, forward keeping the tape, rebuilding the state
//! from the tape, and backward; derived three ways: interpreted
//! (`DerivedCell`), compiled by Cranelift (`JitCell`) and generated as Rust
//! at compile time (`cell!`). Input 64, hidden 256 (the paper benchmark's
//! LSTM), batch 16 or as given; then the GRU and the Elman RNN against
//! their derived twins.
//!
//! ```sh
//! cargo run --release -p bptt-macros --features jit --example cell_bench        # batch 16
//! cargo run --release -p bptt-macros --features jit --example cell_bench -- 32  # batch 32
//! ```
//!
//! Every row is measured in the same run, interleaved, and reported as the
//! median of many repetitions with its ratio to the hand-written cell. A
//! second table times whole training iterations (T = 1000, a 32-class
//! read-out, store-all and MSM at 5%), where each cell's weight gradients
//! are summed once per window of steps; a third the fused elementwise loops
//! alone (the derived programs with their matrix products removed), where
//! the backends differ.
//! Last, the matrix-memory cells (`cells/linear_attention.cell`,
//! `cells/mlstm.cell`, key = value = 64) on both engines, with their step's
//! GFLOP/s and the memory a 5% budget saves at T = 1000.

use std::time::Instant;

use bptt::cell_lang::{CellDef, CellProgram, DerivedCell, Instr};
use bptt::jit::cell::JitCell;
use bptt::{Alpha, Budget, Interpreter, Plan, Policy};
use bptt_runtime::{Cell, Gru, LossKind, Lstm, Readout, Rng, Rnn, Targets};
use ndarray::{Array2, Array3};

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
        median(reps, || {
            cell.state_from_tape(tape.view(), next.view_mut(), scratch.view_mut())
        }),
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
const INPUT: usize = 64;
const HIDDEN: usize = 256;

bptt_macros::cell! {
    /// cells/lstm.cell, generated as Rust at compile time.
    #[sizes(input = 64, hidden = 256)]
    cell GeneratedLstm {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        state c: [hidden];
        param w_x: [input, 4 * hidden];
        param w_h: [hidden, 4 * hidden];
        param b: [4 * hidden];

        let (i, f, g, o) = split(matmul(x, w_x) + matmul(h, w_h) + b);
        let c_next = sigmoid(f) * c + sigmoid(i) * tanh(g);
        h = sigmoid(o) * tanh(c_next);
        c = c_next;
    }
}

/// Times `cells`, interleaving rounds so that load on the machine hits every
/// cell alike, and prints a table of medians with ratios to the first row;
/// returns each cell's `forward_tape` + `backward` seconds.
fn table(title: &str, cells: &[(&str, &dyn Cell)], batch: usize) -> Vec<f64> {
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
    println!("\n{title}");
    print!("{:<24}", "");
    for m in METHODS {
        print!("{m:>24}");
    }
    println!("{:>24}", "fwd_tape + backward");
    for (k, (name, _)) in cells.iter().enumerate() {
        print!("{name:<24}");
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
    (0..cells.len()).map(|k| med(k, 1) + med(k, 3)).collect()
}

/// `program` with its matrix products removed: its fused loops alone.
fn loops_only(program: &CellProgram) -> CellProgram {
    let mut p = program.clone();
    for kernel in [
        &mut p.forward,
        &mut p.forward_tape,
        &mut p.state_from_tape,
        &mut p.backward,
        &mut p.backward_deferred,
    ] {
        kernel.instrs.retain(|i| matches!(i, Instr::Loop(_)));
    }
    p.deferred.clear();
    p
}

/// Steps of the training table.
const LEN: usize = 1000;

/// Times whole training iterations (forward and backward over `LEN` steps)
/// of each cell under store-all and MSM at 5%, interleaved, and prints
/// median s/iter with ratios to the first row.
fn training(title: &str, cells: &[(&str, &dyn Cell)], batch: usize) {
    let mut rng = Rng::new(3);
    let first = cells[0].1;
    let readout = Readout::new(
        LossKind::SoftmaxCrossEntropy,
        first.output_size(),
        32,
        &mut rng,
    );
    let x = Array3::from_shape_simple_fn((LEN, batch, INPUT), || rng.uniform(-1.0, 1.0));
    let classes = Array2::from_shape_simple_fn((LEN, batch), || rng.below(32) as u32);
    let h0 = Array2::zeros((batch, first.state_size()));
    let alpha = Alpha::new(first.alpha()).expect("alpha of a cell");
    let policies = [
        (Policy::StoreAll, Budget::Percent(100.0)),
        (Policy::Msm, Budget::Percent(5.0)),
    ];
    let mut times = vec![vec![Vec::new(); policies.len()]; cells.len()];
    for round in 0..4 {
        for (p, &(policy, budget)) in policies.iter().enumerate() {
            let plan = Plan::new(policy, alpha, LEN as u32, budget).expect("a plan");
            for (k, (_, cell)) in cells.iter().enumerate() {
                let mut interp =
                    Interpreter::new(plan.clone(), *cell, &readout, batch).expect("an arena");
                let mut grads = interp.gradients(*cell, &readout);
                let start = Instant::now();
                interp
                    .run(
                        *cell,
                        &readout,
                        x.view(),
                        h0.view(),
                        Targets::Classes(classes.view()),
                        &mut grads,
                    )
                    .expect("shapes fit");
                // Round 0 warms up.
                if round > 0 {
                    times[k][p].push(start.elapsed().as_secs_f64());
                }
            }
        }
    }
    println!(
        "\n{title}, training iterations, T = {LEN}: s/iter, median of 3, ratio to the first row"
    );
    print!("{:<24}", "");
    for (policy, budget) in policies {
        print!("{:>24}", format!("{policy} {budget}"));
    }
    println!();
    let med = |k: usize, p: usize| {
        let mut v = times[k][p].clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (k, (name, _)) in cells.iter().enumerate() {
        print!("{name:<24}");
        for p in 0..policies.len() {
            print!("{:>14.3} ({:>5.3}x)", med(k, p), med(k, p) / med(0, p));
        }
        println!();
    }
}

fn main() {
    let batch: usize = match std::env::args().nth(1) {
        Some(b) => b.parse().expect("the batch is an integer"),
        None => 16,
    };
    let mut rng = Rng::new(1);
    let hand = Lstm::new(INPUT, HIDDEN, &mut rng);
    let program = CellDef::parse_str(include_str!("../../cells/lstm.cell"))
        .and_then(|def| def.compile(&[("input", INPUT), ("hidden", HIDDEN)]))
        .expect("cells/lstm.cell compiles");
    let params = hand.params().to_vec();
    let derived = DerivedCell::from_params(program.clone(), params.clone()).expect("same layout");
    let jit = JitCell::compile(&program, params.clone()).expect("the JIT compiles it");
    let generated = GeneratedLstm::from_params(params.clone()).expect("same layout");
    println!(
        "LSTM input {INPUT}, hidden {HIDDEN}, batch {batch}: µs per call, median of 9 rounds of 30 calls, ratio to the first row"
    );
    let cells: [(&str, &dyn Cell); 4] = [
        ("hand-written Lstm", &hand),
        ("derived, interpreted", &derived),
        ("derived, JIT", &jit),
        ("derived, cell! (Rust)", &generated),
    ];
    table("whole methods", &cells, batch);
    training("LSTM", &cells, batch);
    twins(batch);
    let loops = loops_only(&program);
    let derived = DerivedCell::from_params(loops.clone(), params.clone()).expect("same layout");
    let jit = JitCell::compile(&loops, params).expect("the JIT compiles it");
    table(
        "fused elementwise loops alone (products removed)",
        &[("derived, interpreted", &derived), ("derived, JIT", &jit)],
        batch,
    );
    matrix_cells(batch);
}

/// The GRU and the Elman RNN against their derived twins (`cells/gru.cell`,
/// `cells/rnn.cell`, which keep the runtime's parameter layouts), per method
/// and in whole training iterations.
fn twins(batch: usize) {
    let compile = |src: &str| {
        CellDef::parse_str(src)
            .and_then(|def| def.compile(&[("input", INPUT), ("hidden", HIDDEN)]))
            .expect("the cell compiles")
    };
    let mut rng = Rng::new(2);
    let gru = Gru::new(INPUT, HIDDEN, &mut rng);
    let rnn = Rnn::new(INPUT, HIDDEN, &mut rng);
    for (name, hand, program) in [
        (
            "GRU",
            &gru as &dyn Cell,
            compile(include_str!("../../cells/gru.cell")),
        ),
        ("RNN", &rnn, compile(include_str!("../../cells/rnn.cell"))),
    ] {
        let params = hand.params().to_vec();
        let derived =
            DerivedCell::from_params(program.clone(), params.clone()).expect("same layout");
        let jit = JitCell::compile(&program, params).expect("the JIT compiles it");
        let cells: [(&str, &dyn Cell); 3] = [
            ("hand-written", hand),
            ("derived, interpreted", &derived),
            ("derived, JIT", &jit),
        ];
        table(name, &cells, batch);
        training(name, &cells, batch);
    }
}

/// The matrix-memory cells' sizes.
const KEY: usize = 64;
const VALUE: usize = 64;

/// Floating-point operations of one forward step per batch row, counted
/// from the cell's definition: its products with parameters and of
/// activations (two per multiply-add), and one per element of its
/// elementwise work on the matrix memory. The backward step of each product
/// is two products of the same size, so `forward_tape` and `backward`
/// together are about three times this.
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

/// The matrix-memory cells (`cells/linear_attention.cell`,
/// `cells/mlstm.cell`) at key = value = 64 on both engines: their step's
/// rate against its flop count, and what 5% of store-all holds at T = 1000.
fn matrix_cells(batch: usize) {
    const LEN: u32 = 1000;
    for (name, src) in [
        (
            "linear_attention",
            include_str!("../../cells/linear_attention.cell"),
        ),
        ("mlstm", include_str!("../../cells/mlstm.cell")),
    ] {
        let program = CellDef::parse_str(src)
            .and_then(|def| def.compile(&[("input", INPUT), ("key", KEY), ("value", VALUE)]))
            .expect("the example cells compile");
        let params = program.init_params(&mut Rng::new(1));
        let interp = DerivedCell::from_params(program.clone(), params.clone()).expect("sizes fit");
        let jit = JitCell::compile(&program, params).expect("the JIT compiles it");
        let title = format!("{name}, input {INPUT}, key {KEY}, value {VALUE}, batch {batch}");
        let steps = table(&title, &[("interpreted", &interp), ("JIT", &jit)], batch);
        let flops = 3.0 * forward_flops(name) * batch as f64;
        let alpha = Alpha::new(interp.alpha()).expect("alpha at least 1");
        let plan = Plan::new(Policy::Msm, alpha, LEN, Budget::Percent(5.0)).expect("plans");
        let state_mb = (interp.state_size() * batch * 4) as f64 / 1e6;
        println!(
            "  GFLOP/s of forward_tape + backward (3 x forward flops): interpreted {:.1}, JIT {:.1}; alpha {alpha}; at T = {LEN} store-all holds {:.1} MB, MSM at 5% {:.2} MB for {:.3} forward steps per step",
            flops / steps[0] / 1e9,
            flops / steps[1] / 1e9,
            alpha.store_all_units(LEN) * state_mb,
            plan.summary().peak_units * state_mb,
            plan.summary().cost_per_step,
        );
    }
}
