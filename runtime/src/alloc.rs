//! A counting global allocator, to prove that a training step allocates
//! nothing and to measure peak heap use.
//!
//! ```ignore
//! #[global_allocator]
//! static HEAP: bptt_runtime::CountingAllocator = bptt_runtime::CountingAllocator::new();
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// Allocations made by this thread (const-initialised: reading it never
    /// allocates).
    static THIS_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting allocations and live and peak bytes.
///
/// The totals are process-wide: a test that reads them should be the only
/// test in its binary (the test harness allocates when a test finishes).
/// [`CountingAllocator::this_thread`] counts the calling thread only.
#[derive(Debug)]
pub struct CountingAllocator {
    allocations: AtomicUsize,
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl CountingAllocator {
    /// A fresh allocator with zero counts.
    pub const fn new() -> Self {
        CountingAllocator {
            allocations: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Allocations (including reallocations) made so far by the calling thread.
    pub fn this_thread() -> usize {
        THIS_THREAD.try_with(Cell::get).unwrap_or(0)
    }

    /// Allocations (including reallocations) so far.
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::SeqCst)
    }

    /// Bytes allocated and not yet freed.
    pub fn live_bytes(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// The most live bytes since the start or the last [`reset_peak`](Self::reset_peak).
    pub fn peak_bytes(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Restarts the peak from the bytes live now.
    pub fn reset_peak(&self) {
        self.peak.store(self.live_bytes(), Ordering::SeqCst);
    }

    fn grew(&self, bytes: usize) {
        let _ = THIS_THREAD.try_with(|n| n.set(n.get() + 1));
        let live = self.live.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(live, Ordering::SeqCst);
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are atomics and never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocations.fetch_add(1, Ordering::SeqCst);
        self.grew(layout.size());
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.allocations.fetch_add(1, Ordering::SeqCst);
        self.grew(layout.size());
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.allocations.fetch_add(1, Ordering::SeqCst);
        self.live.fetch_sub(layout.size(), Ordering::SeqCst);
        self.grew(new_size);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
