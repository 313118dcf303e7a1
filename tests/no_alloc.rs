//! A training step allocates nothing on the heap once the arena exists, on
//! every backend: a counting global allocator proves it.

use bptt::Interpret;
use bptt::cell_lang::{CellDef, DerivedCell};
use bptt::jit::{JitEngine, JitOptions};
use bptt::{Alpha, Backend, BackendKind, Budget, Engine, Plan, Policy, Runner, Schedule};
use bptt_runtime::{
    Cell, CountingAllocator, Gradients, Gru, LossKind, Lstm, Readout, Rng, Rnn, Targets,
};
use ndarray::{Array2, Array3};

#[global_allocator]
static HEAP: CountingAllocator = CountingAllocator::new();

/// The backends under test: the interpreter streaming the schedule (as
/// `BackendKind` builds it) and walking it listed, the JIT, and the JIT
/// split into many small functions.
const BACKENDS: [&str; 4] = [
    "interp",
    "interp, listed",
    "jit",
    "jit, 5 calls per function",
];

fn backend(name: &str, plan: &Plan, cell: &dyn Cell, readout: &Readout, batch: usize) -> Backend {
    let schedule = Schedule::from_plan(plan);
    match name {
        "interp" | "jit" => name
            .parse::<BackendKind>()
            .unwrap()
            .build(plan, cell, readout, batch),
        "interp, listed" => Runner::with_engine(schedule, cell, readout, batch, |_, _| {
            Ok(Box::<Interpret>::default() as Box<dyn Engine>)
        }),
        _ => {
            let options = JitOptions {
                runs_per_function: 5,
                ..JitOptions::default()
            };
            Runner::with_engine(schedule, cell, readout, batch, |lowered, layout| {
                let engine = JitEngine::compile(lowered, layout, options)?;
                Ok(Box::new(engine) as Box<dyn Engine>)
            })
        }
    }
    .unwrap()
}

fn allocations_of_one_step(cell: &dyn Cell, policy: Policy, name: &str) -> usize {
    let (len, batch, input, classes) = (60, 16, 32, 10);
    let mut rng = Rng::new(3);
    let readout = Readout::new(
        LossKind::SoftmaxCrossEntropy,
        cell.output_size(),
        classes,
        &mut rng,
    );
    let alpha = Alpha::new(cell.alpha()).unwrap();
    let budget = if policy.is_dynamic() { 10.0 } else { 100.0 };
    let plan = Plan::new(policy, alpha, len, Budget::Percent(budget)).unwrap();
    let mut runner = backend(name, &plan, cell, &readout, batch);
    let x = Array3::from_shape_simple_fn((len as usize, batch, input), || rng.uniform(-1.0, 1.0));
    let y = Array2::from_shape_simple_fn((len as usize, batch), || rng.below(classes) as u32);
    let h0 = Array2::zeros((batch, cell.state_size()));
    let targets = Targets::Classes(y.view());
    let mut grads = Gradients::zeros(cell, &readout, batch);
    let mut step = || {
        runner
            .run(cell, &readout, x.view(), h0.view(), targets, &mut grads)
            .unwrap()
    };
    // Warm-up: the kernels start their thread pool on first use, and a new
    // thread allocates its name as it starts, which may be after the first
    // step returns: give the workers a moment to finish starting.
    step();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = HEAP.allocations();
    for _ in 0..3 {
        step();
    }
    HEAP.allocations() - before
}

/// One test in this binary: the counter is process-wide, and the test
/// harness allocates when another test finishes.
#[test]
fn a_training_step_allocates_nothing() {
    let before = HEAP.allocations();
    let v = std::hint::black_box(vec![1u8; 100]);
    assert!(HEAP.allocations() > before, "the counter sees allocations");
    drop(v);
    let mut rng = Rng::new(5);
    let mgu = CellDef::parse_str(include_str!("../cells/mgu.cell"))
        .unwrap()
        .compile(&[("input", 32), ("hidden", 64)])
        .unwrap();
    let cells: [Box<dyn Cell>; 4] = [
        Box::new(Rnn::new(32, 64, &mut rng)),
        Box::new(Lstm::new(32, 64, &mut rng)),
        Box::new(Gru::new(32, 64, &mut rng)),
        Box::new(DerivedCell::new(mgu, &mut rng)),
    ];
    for cell in &cells {
        for policy in [Policy::Msm, Policy::Hsm, Policy::Sqrt] {
            for name in BACKENDS {
                assert_eq!(
                    allocations_of_one_step(&**cell, policy, name),
                    0,
                    "{policy} on {name}"
                );
            }
        }
    }
}
