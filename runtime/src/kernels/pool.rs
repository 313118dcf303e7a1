//! A persistent, allocation-free worker pool for the matrix kernels.
//!
//! The pool starts lazily on first use with `BPTT_THREADS` threads (default:
//! `available_parallelism()` capped at 8), the calling thread included. A job
//! is a borrowed closure called once for each part index `0..parts`; the
//! calling thread (participant 0) and the workers (1 to `threads - 1`) claim
//! parts in a shared bit set, each first its own parts `me, me + threads,
//! ...` and then any left over, and
//! [`run`] returns only when every part has finished and no worker still
//! holds the closure, which makes lending a stack borrow sound. Which thread
//! runs a part never changes what the part computes, so results do not depend
//! on scheduling.
//!
//! Affinity: work cut the same way in every step goes to the same thread
//! while no one is late, so each core keeps its share of the weights, and of
//! the batch rows a row-parallel step owns, in its own cache.
//!
//! Back-off: when the caller had to wait for workers longer than it worked
//! itself (the OS preempted a worker in the middle of a part, as happens when
//! other processes compete for the cores), the pool runs jobs on the calling
//! thread for a while (1 ms, doubling up to 128 ms while it keeps happening)
//! before it tries again. A job that had to wake parked workers is not
//! judged: its wait is the wake-up's latency, not preemption (in a virtual
//! machine an idle vCPU halts and the host must schedule it again, which
//! can take longer than the job). Judging those jobs made the back-off feed
//! itself on a quiet KVM guest: a back-off left the worker idle, so it
//! parked; the next job's wake-up looked like preemption and backed off
//! again, and two threads ran the benchmark LSTM no faster than one (0.233 s
//! against 0.219 s per iteration; 0.111 to 0.124 s with the rule). How a job
//! is split never changes its result.
//!
//! Protocol: `epoch` is odd while a job is open. A worker registers in
//! `active` and then re-checks that the epoch is the one it saw before it
//! touches the job; the caller closes the epoch and then waits for `active`
//! to reach zero (a Dekker handshake over sequentially consistent atomics).

use std::cell::{Cell, UnsafeCell};
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The most parts a job is split into (one bit each in a `u64`).
pub(crate) const MAX_PARTS: usize = 64;
/// Hard cap on the default number of threads.
const MAX_DEFAULT_THREADS: usize = 8;
/// How long an idle worker spins (yielding now and then) before it parks.
const SPIN_TIME: Duration = Duration::from_micros(200);
/// Waits for workers shorter than this never trigger the back-off. At 50 µs
/// the back-off also caught the shared host's short hiccups on a quiet
/// machine, and two threads ran the benchmark LSTM 5 to 9% slower than with
/// no back-off at all; at 250 µs they ran as fast as with none, and with
/// the other core busy two threads stayed within 5 to 16% of one, as with
/// 50 µs (one run each, `bptt demo`, hidden 256, batch 16).
const WAIT_GRACE: Duration = Duration::from_micros(250);
/// The first back-off.
const BACKOFF_MIN: Duration = Duration::from_millis(1);
/// The longest back-off.
const BACKOFF_MAX: Duration = Duration::from_millis(128);

/// A type-erased `&F` with `F: Fn(usize) + Sync`.
#[derive(Clone, Copy)]
struct Job {
    data: *const (),
    call: unsafe fn(*const (), usize),
    parts: usize,
}

/// Calls the `F` behind `data` on part `i`.
///
/// # Safety
/// `data` must point to a live `F`.
unsafe fn call_erased<F: Fn(usize) + Sync>(data: *const (), i: usize) {
    // SAFETY: the caller guarantees `data` came from a live `&F`.
    let f = unsafe { &*data.cast::<F>() };
    f(i);
}

/// No-op job installed before the first real one.
unsafe fn call_nothing(_: *const (), _: usize) {}

struct Shared {
    /// Odd while a job is open; bumped twice per job.
    epoch: AtomicUsize,
    /// The open job; see the `Sync` impl for who may touch it when.
    job: UnsafeCell<Job>,
    /// Parts of the open job already claimed, one bit each.
    claimed: AtomicU64,
    /// Workers registered on the current epoch.
    active: AtomicUsize,
    /// Held by the one caller that owns the pool for a job.
    busy: AtomicBool,
    /// Workers parked (or about to park) on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    /// Back-off: jobs run serially until this time (ns since `START`).
    serial_until: AtomicU64,
    /// Back-off: the next back-off's length in ns (0: `BACKOFF_MIN`).
    backoff: AtomicU64,
}

// SAFETY: every field but `job` is Sync. `job` is written only by the caller
// that holds `busy` while the epoch is even (closed) and `active` has drained,
// and read only by workers that registered in `active` and then saw the epoch
// still odd and unchanged; the caller's SeqCst close-then-drain and the
// workers' SeqCst register-then-recheck exclude each other. The pointer inside
// is only dereferenced under that same registration.
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared {
    epoch: AtomicUsize::new(0),
    job: UnsafeCell::new(Job {
        data: std::ptr::null(),
        call: call_nothing,
        parts: 0,
    }),
    claimed: AtomicU64::new(0),
    active: AtomicUsize::new(0),
    busy: AtomicBool::new(false),
    sleepers: AtomicUsize::new(0),
    lock: Mutex::new(()),
    wake: Condvar::new(),
    serial_until: AtomicU64::new(0),
    backoff: AtomicU64::new(0),
};

/// The time origin of the back-off, set when the pool starts.
static START: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the pool started.
fn now_ns() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Threads of the pool (the caller included), fixed at first use.
static THREADS: OnceLock<usize> = OnceLock::new();

thread_local! {
    /// Set on pool workers: kernels called from inside a job run serially.
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
    /// This thread's participant index: 0 on callers, 1.. on workers.
    static PARTICIPANT: Cell<usize> = const { Cell::new(0) };
}

/// The number of threads that jobs are split over (starting the pool if needed).
pub(crate) fn threads() -> usize {
    *THREADS.get_or_init(start)
}

/// Reads the configuration and spawns the workers; returns the thread count.
fn start() -> usize {
    now_ns();
    let default = || {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_DEFAULT_THREADS)
    };
    let wanted = match std::env::var("BPTT_THREADS") {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(default),
        Err(_) => default(),
    };
    let mut spawned = 1;
    for me in 1..wanted {
        let worker = std::thread::Builder::new()
            .name("bptt-kernels".into())
            .spawn(move || worker(me));
        if worker.is_err() {
            break;
        }
        spawned += 1;
    }
    spawned
}

/// Aborts the process if a job part panics on a worker: the caller could
/// otherwise never learn that its part is missing.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::process::abort();
        }
    }
}

fn worker(me: usize) {
    IN_WORKER.set(true);
    PARTICIPANT.set(me);
    let _abort = AbortOnUnwind;
    let s = &SHARED;
    let mut seen = 0;
    loop {
        let e = wait_for_job(seen);
        s.active.fetch_add(1, Ordering::SeqCst);
        if s.epoch.load(Ordering::SeqCst) == e {
            // SAFETY: registered in `active` with the epoch still open, so the
            // job is not being rewritten and its closure is alive (see `Shared`).
            let job = unsafe { *s.job.get() };
            // SAFETY: as above; `data` points to the `F` that `call` expects.
            claim_parts(job.parts, |i| unsafe { (job.call)(job.data, i) });
        }
        s.active.fetch_sub(1, Ordering::Release);
        seen = e;
    }
}

/// Spins, then parks, until an open epoch other than `seen` appears.
fn wait_for_job(seen: usize) -> usize {
    let s = &SHARED;
    let is_new = |e: usize| e & 1 == 1 && e != seen;
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let e = s.epoch.load(Ordering::SeqCst);
        if is_new(e) {
            return e;
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) {
            if start.elapsed() > SPIN_TIME {
                break;
            }
            // Let other threads on this core run: on a busy machine a
            // spinning worker would otherwise take the caller's time.
            std::thread::yield_now();
        } else {
            spin_loop();
        }
    }
    let mut guard = s.lock.lock().unwrap_or_else(|p| p.into_inner());
    s.sleepers.fetch_add(1, Ordering::SeqCst);
    let e = loop {
        let e = s.epoch.load(Ordering::SeqCst);
        if is_new(e) {
            break e;
        }
        guard = s.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
    };
    s.sleepers.fetch_sub(1, Ordering::SeqCst);
    e
}

/// Closes the open job on drop (also when a part panics on the caller) and
/// waits until no worker holds it.
struct Close {
    epoch: usize,
}

impl Drop for Close {
    fn drop(&mut self) {
        let s = &SHARED;
        s.epoch.store(self.epoch + 1, Ordering::SeqCst);
        let mut spins = 0u32;
        while s.active.load(Ordering::SeqCst) != 0 {
            spins = spins.wrapping_add(1);
            if spins < 1 << 12 {
                spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        s.busy.store(false, Ordering::Release);
    }
}

/// Calls `f(i)` for every `i` in `0..parts`, split over the pool, and returns
/// when all calls have finished.
///
/// Runs serially on the calling thread when there are more than
/// [`MAX_PARTS`] parts, when the pool has one thread, when
/// called from inside a job, when another thread is using the pool, or while
/// backing off. Does not allocate (after the pool has started).
pub(crate) fn run<F: Fn(usize) + Sync>(parts: usize, f: &F) {
    let s = &SHARED;
    if parts <= 1
        || parts > MAX_PARTS
        || IN_WORKER.get()
        || threads() == 1
        || now_ns() < s.serial_until.load(Ordering::Relaxed)
        || s.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        (0..parts).for_each(f);
        return;
    }
    let job = Job {
        data: std::ptr::from_ref(f).cast(),
        call: call_erased::<F>,
        parts,
    };
    // SAFETY: we hold `busy`, the epoch is even and the previous owner drained
    // `active`, so no worker reads `job` now (see `Shared`).
    unsafe { *s.job.get() = job };
    s.claimed.store(0, Ordering::Relaxed);
    let epoch = s.epoch.load(Ordering::Relaxed) + 1;
    s.epoch.store(epoch, Ordering::SeqCst);
    let woke = s.sleepers.load(Ordering::SeqCst) > 0;
    if woke {
        let _guard = s.lock.lock().unwrap_or_else(|p| p.into_inner());
        s.wake.notify_all();
    }
    let close = Close { epoch };
    let start = now_ns();
    claim_parts(parts, f);
    let worked = now_ns();
    drop(close);
    let done = now_ns();
    // A wake-up's latency is not preemption: see the module's "Back-off".
    if !woke {
        back_off_if_slowed(worked - start, done - worked, done);
    }
}

/// Runs the calling participant's parts of the open job (`me, me + threads,
/// ...`, those not yet claimed), then any part no one has claimed.
fn claim_parts(parts: usize, f: impl Fn(usize)) {
    let s = &SHARED;
    let claim = |i: usize| s.claimed.fetch_or(1 << i, Ordering::AcqRel) & (1 << i) == 0;
    let (me, threads) = (PARTICIPANT.get(), threads());
    for i in (me..parts).step_by(threads) {
        if claim(i) {
            f(i);
        }
    }
    for i in 0..parts {
        if claim(i) {
            f(i);
        }
    }
}

/// Updates the back-off after a job in which the caller worked for `worked`
/// ns and then waited `waited` ns for the workers, ending at `now`.
fn back_off_if_slowed(worked: u64, waited: u64, now: u64) {
    let s = &SHARED;
    let ns = |d: Duration| d.as_nanos() as u64;
    if waited > worked.max(ns(WAIT_GRACE)) {
        let backoff = s.backoff.load(Ordering::Relaxed).max(ns(BACKOFF_MIN));
        s.serial_until.store(now + backoff, Ordering::Relaxed);
        s.backoff
            .store((2 * backoff).min(ns(BACKOFF_MAX)), Ordering::Relaxed);
    } else {
        s.backoff.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn runs_every_part_once() {
        for parts in [0, 1, 2, 3, 7, 64] {
            let hits: Vec<AtomicU64> = (0..parts).map(|_| AtomicU64::new(0)).collect();
            for _ in 0..200 {
                run(parts, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 200));
        }
    }

    #[test]
    fn nested_and_concurrent_calls_finish() {
        let total = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        run(4, &|_| {
                            run(3, &|_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 3 * 100 * 4 * 3);
    }
}
