//! After a warm-up call (which starts the worker pool), the kernels allocate
//! nothing: neither on the calling thread nor on the pool's workers.

use bptt_runtime::CountingAllocator;
use bptt_runtime::kernels::{
    exp, gemm_nn_acc, gemm_nn_packed_acc, gemm_nt_acc, gemm_tn_acc, pack_b, pack_bt, packed_len,
    sigmoid, tanh,
};

#[global_allocator]
static HEAP: CountingAllocator = CountingAllocator::new();

/// The shapes `products` runs: small (serial) and large (pooled).
const SHAPES: [(usize, usize, usize); 5] = [
    (1, 3, 5),
    (16, 64, 256),
    (16, 256, 1024),
    (37, 129, 301),
    (256, 16, 1024),
];

/// Runs every product on every shape; `packed` holds `B` packed for each
/// shape, repacked in place here.
fn products(a: &[f32], b: &[f32], c: &mut [f32], packed: &mut [Vec<f32>]) {
    for ((m, k, n), p) in SHAPES.into_iter().zip(packed) {
        gemm_nn_acc(m, k, n, &a[..m * k], &b[..k * n], &mut c[..m * n]);
        pack_b(k, n, &b[..k * n], p);
        gemm_nn_packed_acc(m, k, n, &a[..m * k], p, &mut c[..m * n]);
        pack_bt(k, n, &b[..k * n], p);
        gemm_tn_acc(m, k, n, &a[..k * m], &b[..k * n], &mut c[..m * n]);
        gemm_nt_acc(m, k, n, &a[..m * k], &b[..n * k], &mut c[..m * n]);
    }
}

fn allocations() -> usize {
    HEAP.allocations()
}

#[test]
fn kernels_do_not_allocate_after_warm_up() {
    let len = 1 << 18;
    let (a, b, mut c) = (vec![0.5f32; len], vec![0.25f32; len], vec![0.0f32; len]);
    let mut act = vec![0.1f32; 4096];
    let mut packed: Vec<_> = SHAPES.map(|(_, k, n)| vec![0.0; packed_len(k, n)]).into();
    assert!(allocations() > 0, "the counting allocator is not installed");
    products(&a, &b, &mut c, &mut packed);
    // The pool's workers allocate their names as they start, possibly after
    // the first products return: let them finish starting.
    std::thread::sleep(std::time::Duration::from_millis(100));

    let start = allocations();
    for _ in 0..20 {
        products(&a, &b, &mut c, &mut packed);
        for x in act.iter_mut() {
            *x = tanh(sigmoid(*x) - exp(-*x));
        }
    }
    assert_eq!(
        allocations() - start,
        0,
        "the kernels allocated after warm-up"
    );

    // Another calling thread shares the pool and allocates nothing either.
    let on_other_thread = std::thread::scope(|s| {
        s.spawn(|| {
            let mut c = vec![0.0f32; len];
            let mut packed = packed.clone();
            // This thread's own allocations: the spawning thread's
            // bookkeeping runs concurrently.
            let start = CountingAllocator::this_thread();
            products(&a, &b, &mut c, &mut packed);
            CountingAllocator::this_thread() - start
        })
        .join()
        .expect("thread")
    });
    assert_eq!(
        on_other_thread, 0,
        "the kernels allocated on another thread"
    );
    assert!(c.iter().all(|x| x.is_finite()) && act.iter().all(|x| x.is_finite()));
}
