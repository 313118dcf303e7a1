//! Run-time overhead of the `#[bptt]` training step against the interpreter:
//! an LSTM (input 32, hidden 128, batch 8) at T = 1000 under MSM at 5% of
//! store-all's memory, both in one process, alternating, with the gradients
//! checked bitwise equal.
//!
//! ```sh
//! cargo run --release -p bptt-macros --example macro_bench [-- ROUNDS]
//! ```

use std::time::{Duration, Instant};

use bptt::{Alpha, Budget, Interpreter, Plan, Policy, Schedule};
use bptt_macros::bptt;
use bptt_runtime::{Cell, Gradients, LossKind, Lstm, Readout, Rng, Targets};
use ndarray::{Array2, Array3};

/// The LSTM with its schedule compiled in.
#[bptt(seq_len = 1000, budget = "5%", alpha = 3, policy = "msm")]
struct BenchLstm(Lstm);

bptt_runtime::delegate_cell!(BenchLstm, 0);

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 15,
    };
    let (input, hidden, batch, classes) = (32, 128, 8, 16);
    let len = BenchLstm::SEQ_LEN as usize;
    let mut rng = Rng::new(1);
    let cell = BenchLstm(Lstm::new(input, hidden, &mut rng));
    let readout = Readout::new(LossKind::SoftmaxCrossEntropy, hidden, classes, &mut rng);
    let x = Array3::from_shape_simple_fn((len, batch, input), || rng.uniform(-1.0, 1.0));
    let y = Array2::from_shape_simple_fn((len, batch), || rng.below(classes) as u32);
    let h0 = Array2::zeros((batch, cell.state_size()));

    let plan = Plan::new(
        Policy::Msm,
        Alpha::new(3.0)?,
        BenchLstm::SEQ_LEN,
        Budget::Percent(5.0),
    )?;
    let mut interp = Interpreter::new(Schedule::from_plan(&plan), &cell, &readout, batch)?;
    let mut arena = cell.new_arena(&readout, batch)?;
    let mut g_interp = interp.gradients(&cell, &readout);
    let mut g_macro = Gradients::zeros(&cell, &readout, batch);

    let mut run_interp = |grads: &mut Gradients| {
        let start = Instant::now();
        let loss = interp.run(
            &cell,
            &readout,
            x.view(),
            h0.view(),
            Targets::Classes(y.view()),
            grads,
        );
        (loss.expect("the interpreter runs"), start.elapsed())
    };
    let mut run_macro = |grads: &mut Gradients| {
        let start = Instant::now();
        let loss = cell.train_step(
            &readout,
            &mut arena,
            x.view(),
            h0.view(),
            Targets::Classes(y.view()),
            grads,
        );
        (loss.expect("the generated step runs"), start.elapsed())
    };

    // Warm up (thread pool, caches) and check the two agree bit for bit.
    let (l_interp, _) = run_interp(&mut g_interp);
    let (l_macro, _) = run_macro(&mut g_macro);
    let identical = l_interp.to_bits() == l_macro.to_bits() && g_interp.bitwise_eq(&g_macro);
    let (mut t_interp, mut t_macro) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first, so drift favours neither.
        if round % 2 == 0 {
            t_interp.push(run_interp(&mut g_interp).1);
            t_macro.push(run_macro(&mut g_macro).1);
        } else {
            t_macro.push(run_macro(&mut g_macro).1);
            t_interp.push(run_interp(&mut g_interp).1);
        }
    }
    let (mi, mm) = (median(t_interp), median(t_macro));
    println!(
        "LSTM input {input}, hidden {hidden}, batch {batch}, T = {len}, msm at 5% of store-all: \
         {} forward steps, {} rounds (median)",
        BenchLstm::FORWARD_STEPS,
        rounds
    );
    println!("interpreter      {:>9.2} ms/step", mi.as_secs_f64() * 1e3);
    println!("#[bptt] method   {:>9.2} ms/step", mm.as_secs_f64() * 1e3);
    println!(
        "ratio macro/interpreter {:.3}",
        mm.as_secs_f64() / mi.as_secs_f64()
    );
    println!("gradients bitwise identical: {identical}");
    if !identical {
        return Err("the generated step and the interpreter disagree".into());
    }
    Ok(())
}
