//! Training within a budget in bytes (`--memory`) that store-all exceeds:
//! the plan fills the budget, the process's heap stays within it, and the
//! model learns. The test runs alone in its process
//! ([`crate::app::alone`]): the heap counter is process-wide.

use bptt::{BackendKind, Budget, Policy};

use super::{TaskSpec, TrainConfig, Trainer};
use crate::HEAP;

fn config(memory: Option<u64>) -> TrainConfig {
    TrainConfig {
        task: TaskSpec::Genesis,
        len: 4000,
        batch: 2,
        hidden: 128,
        cell: None,
        sizes: Vec::new(),
        budget: Budget::Percent(5.0),
        memory,
        policy: Policy::Msm,
        lr: 1e-2,
        clip: 1.0,
        seed: 5,
        max_memory: None,
        cell_engine: None,
    }
}

#[test]
fn trains_within_a_byte_budget_that_store_all_exceeds() {
    if !crate::app::alone::alone(
        "app::train::heap_tests::trains_within_a_byte_budget_that_store_all_exceeds",
    ) {
        return;
    }
    let store_all = Trainer::new(config(None), BackendKind::Interpreter)
        .unwrap()
        .store_all_total_bytes();
    // A third of what store-all would hold.
    let memory = (store_all / 3) as u64;
    HEAP.reset_peak();
    let base = HEAP.live_bytes() as u64;
    let mut trainer = Trainer::new(config(Some(memory)), BackendKind::Interpreter).unwrap();
    let planned = trainer.planned_bytes();
    assert!(planned <= u128::from(memory), "{planned} > {memory}");
    assert!(
        planned * 100 >= u128::from(memory) * 99,
        "the plan leaves more than 1% of {memory} unused: {planned}"
    );
    // What `bptt train` does: evaluate, then step.
    trainer.evaluate();
    let first = trainer.step().unwrap().loss;
    let mut last = first;
    for _ in 0..5 {
        last = trainer.step().unwrap().loss;
    }
    let peak = HEAP.peak_bytes() as u64 - base;
    assert!(
        peak <= memory,
        "the heap peaked at {peak} bytes, over the --memory {memory}"
    );
    // The count is a bound: it holds a checkpoint's copy of the parameters
    // (for resuming) that a fresh run never makes, 4% of this small model's
    // 12.9 MB; at T = 100,000 and 256 MiB the peak is 96% of the budget.
    assert!(
        peak * 100 >= memory * 85,
        "the heap peaked at {peak} bytes: the count of {memory} is loose"
    );
    assert!(last < first - 0.3, "it did not learn: {first} then {last}");
}
