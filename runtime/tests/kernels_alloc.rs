//! After a warm-up call (which starts the worker pool), the kernels allocate
//! nothing: neither on the calling thread nor on the pool's workers.

use bptt_runtime::kernels::{exp, gemm_nn_acc, gemm_nt_acc, gemm_tn_acc, sigmoid, tanh};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting allocations in every thread.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs every product on small (serial) and large (pooled) shapes.
fn products(a: &[f32], b: &[f32], c: &mut [f32]) {
    for (m, k, n) in [
        (1, 3, 5),
        (16, 64, 256),
        (16, 256, 1024),
        (37, 129, 301),
        (256, 16, 1024),
    ] {
        gemm_nn_acc(m, k, n, &a[..m * k], &b[..k * n], &mut c[..m * n]);
        gemm_tn_acc(m, k, n, &a[..k * m], &b[..k * n], &mut c[..m * n]);
        gemm_nt_acc(m, k, n, &a[..m * k], &b[..n * k], &mut c[..m * n]);
    }
}

fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::SeqCst)
}

#[test]
fn kernels_do_not_allocate_after_warm_up() {
    let len = 1 << 18;
    let (a, b, mut c) = (vec![0.5f32; len], vec![0.25f32; len], vec![0.0f32; len]);
    let mut act = vec![0.1f32; 4096];
    assert!(allocations() > 0, "the counting allocator is not installed");
    products(&a, &b, &mut c);

    let start = allocations();
    for _ in 0..20 {
        products(&a, &b, &mut c);
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
            let start = allocations();
            products(&a, &b, &mut c);
            allocations() - start
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
