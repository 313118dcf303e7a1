//! A training step through the interpreter allocates nothing on the heap once
//! the arena exists: a counting global allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bptt::{Alpha, Budget, Interpreter, Plan, Policy, Schedule};
use bptt_runtime::{Cell, Gru, LossKind, Lstm, Readout, Rng, Rnn, Targets};
use ndarray::{Array2, Array3};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed through.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_of_one_step(cell: &dyn Cell, policy: Policy) -> usize {
    let (len, batch, input, classes) = (60, 16, 32, 10);
    let hidden = cell.output_size();
    let mut rng = Rng::new(3);
    let readout = Readout::new(LossKind::SoftmaxCrossEntropy, hidden, classes, &mut rng);
    let alpha = Alpha::new(cell.alpha()).unwrap();
    let plan = Plan::new(
        policy,
        alpha,
        len,
        if policy.is_dynamic() {
            Budget::Percent(10.0)
        } else {
            Budget::Percent(100.0)
        },
    )
    .unwrap();
    let mut interp = Interpreter::new(Schedule::from_plan(&plan), cell, &readout, batch).unwrap();
    let x = Array3::from_shape_simple_fn((len as usize, batch, input), || rng.uniform(-1.0, 1.0));
    let y = Array2::from_shape_simple_fn((len as usize, batch), || rng.below(classes) as u32);
    let h0 = Array2::zeros((batch, cell.state_size()));
    let targets = Targets::Classes(y.view());
    let mut grads = interp.gradients(cell, &readout);
    // Warm-up: the kernels start their thread pool on first use, and a new
    // thread allocates its name as it starts, which may be after the first
    // step returns: give the workers a moment to finish starting.
    interp
        .run(cell, &readout, x.view(), h0.view(), targets, &mut grads)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..3 {
        interp
            .run(cell, &readout, x.view(), h0.view(), targets, &mut grads)
            .unwrap();
    }
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

/// One test in this binary: the counter is process-wide, and the test
/// harness allocates when another test finishes.
#[test]
fn a_training_step_allocates_nothing() {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let v = std::hint::black_box(vec![1u8; 100]);
    assert!(
        ALLOCATIONS.load(Ordering::SeqCst) > before,
        "the counter sees allocations"
    );
    drop(v);
    let mut rng = Rng::new(5);
    let cells: [Box<dyn Cell>; 3] = [
        Box::new(Rnn::new(32, 64, &mut rng)),
        Box::new(Lstm::new(32, 64, &mut rng)),
        Box::new(Gru::new(32, 64, &mut rng)),
    ];
    for cell in &cells {
        for policy in [Policy::Msm, Policy::Hsm, Policy::Sqrt] {
            assert_eq!(allocations_of_one_step(&**cell, policy), 0, "{policy}");
        }
    }
}
