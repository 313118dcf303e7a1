//! GFLOP/s of the `bptt_runtime::kernels` matrix products on typical shapes.
//!
//! `cargo run --release -p bptt-runtime --example gemm_bench [-- WORD...]`
//! (with words: only the shapes whose description contains one of them)
//!
//! The pool reads `BPTT_THREADS` once per process, so the benchmark re-runs
//! itself with `BPTT_THREADS=1` and with the default thread count (or the
//! `BPTT_THREADS` it was given) and prints both next to two naive loops: the
//! textbook `i,j,p` dot-product loop and the `i,p,j` loop that LLVM vectorises.

use bptt_runtime::kernels::{
    gemm_nn_acc, gemm_nn_packed_acc, gemm_nt_acc, gemm_tn_acc, pack_b, packed_len,
};
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

/// Which product.
#[derive(Clone, Copy)]
enum Op {
    Nn,
    /// `Nn` with `B` packed once beforehand (`pack_b`).
    NnPacked,
    Tn,
    Nt,
}

/// The benchmarked shapes: (op, m, k, n, what).
const SHAPES: &[(Op, usize, usize, usize, &str)] = &[
    (Op::Nn, 16, 256, 1024, "LSTM gates h·W, H=256"),
    (
        Op::NnPacked,
        16,
        256,
        1024,
        "LSTM gates h·W, H=256, W packed",
    ),
    (Op::Nn, 16, 512, 2048, "LSTM gates, H=512"),
    (Op::Nn, 16, 1024, 4096, "LSTM gates, H=1024"),
    (Op::Nn, 64, 1024, 4096, "gates, batch 64"),
    (Op::NnPacked, 16, 1024, 4096, "LSTM gates, H=1024, W packed"),
    (Op::Nn, 1, 256, 1024, "batch 1"),
    (Op::NnPacked, 1, 256, 1024, "batch 1, W packed"),
    (Op::Nn, 4, 256, 1024, "batch 4"),
    (Op::NnPacked, 4, 256, 1024, "batch 4, W packed"),
    (Op::Nn, 16, 64, 256, "small"),
    (Op::Nn, 128, 64, 1024, "windowed x·W_x, H=256"),
    (Op::Tn, 256, 16, 1024, "dW += hᵀ·dg, H=256"),
    (Op::Tn, 320, 128, 1024, "windowed [dW_x; dW_h], H=256"),
    (Op::Tn, 1088, 128, 4096, "windowed [dW_x; dW_h], H=1024"),
    (Op::Tn, 1024, 16, 4096, "dW, H=1024"),
    (Op::Tn, 1024, 64, 4096, "dW, batch 64"),
    (Op::Nt, 16, 1024, 256, "dh += dg·Wᵀ, H=256"),
    (Op::NnPacked, 16, 1024, 256, "dh += dg·Wᵀ, H=256, Wᵀ packed"),
    (Op::Nt, 16, 4096, 1024, "dh, H=1024"),
    (Op::NnPacked, 16, 4096, 1024, "dh, H=1024, Wᵀ packed"),
    (Op::Nt, 64, 4096, 1024, "dh, batch 64"),
    (Op::Nt, 1, 1024, 256, "dh, batch 1"),
    (Op::NnPacked, 1, 1024, 256, "dh, batch 1, Wᵀ packed"),
    (Op::Nt, 4, 1024, 256, "dh, batch 4"),
    (Op::NnPacked, 4, 1024, 256, "dh, batch 4, Wᵀ packed"),
    (Op::NnPacked, 16, 64, 1024, "per-step x·W_x, H=256, packed"),
    (
        Op::NnPacked,
        256,
        64,
        1024,
        "16 steps of x·W_x, H=256, packed",
    ),
];

/// Deterministic pseudo-random floats in [-1, 1).
fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The textbook loop: one dot product per element.
fn naive_dot(op: Op, m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for p in 0..k {
                let (x, y) = match op {
                    Op::Nn | Op::NnPacked => (a[i * k + p], b[p * n + j]),
                    Op::Tn => (a[p * m + i], b[p * n + j]),
                    Op::Nt => (a[i * k + p], b[j * k + p]),
                };
                s += x * y;
            }
            c[i * n + j] += s;
        }
    }
}

/// The loop order LLVM vectorises: `C[i,:] += A[i,p] · B[p,:]` (`Nt` reads
/// `B` transposed and cannot use it, so it falls back to the dot loop).
fn naive_axpy(op: Op, m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    if let Op::Nt = op {
        return naive_dot(op, m, k, n, a, b, c);
    }
    for (i, row) in c.chunks_exact_mut(n).enumerate() {
        for (p, brow) in b.chunks_exact(n).enumerate() {
            let x = if let Op::Nn | Op::NnPacked = op {
                a[i * k + p]
            } else {
                a[p * m + i]
            };
            for (y, &z) in row.iter_mut().zip(brow) {
                *y += x * z;
            }
        }
    }
}

/// Best GFLOP/s of `f` over batches of at least `budget / 5`.
fn gflops(flops: f64, budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    let start = Instant::now();
    while start.elapsed() < budget {
        let (t, mut reps) = (Instant::now(), 0u32);
        while t.elapsed() < budget / 5 {
            f();
            reps += 1;
        }
        best = best.min(t.elapsed().as_secs_f64() / f64::from(reps));
    }
    flops / best / 1e9
}

/// A product: the kernel or a naive loop.
type Product = fn(Op, usize, usize, usize, &[f32], &[f32], &mut [f32]);

/// GFLOP/s of `run` on shape `i`.
fn measure(i: usize, budget: Duration, run: Product) -> f64 {
    let (op, m, k, n, _) = SHAPES[i];
    let (a, b, mut c) = (data(m * k, 1), data(k * n, 2), data(m * n, 3));
    gflops(2.0 * (m * k * n) as f64, budget, || {
        run(op, m, k, n, black_box(&a), black_box(&b), black_box(&mut c));
    })
}

/// GFLOP/s of the kernel on shape `i` (a packed `B` is packed before timing).
fn measure_kernel(i: usize, budget: Duration) -> f64 {
    let (op, m, k, n, _) = SHAPES[i];
    if let Op::NnPacked = op {
        let (a, mut c) = (data(m * k, 1), data(m * n, 3));
        let mut b = vec![0.0; packed_len(k, n)];
        pack_b(k, n, &data(k * n, 2), &mut b);
        return gflops(2.0 * (m * k * n) as f64, budget, || {
            gemm_nn_packed_acc(m, k, n, black_box(&a), black_box(&b), black_box(&mut c));
        });
    }
    measure(i, budget, kernel)
}

fn kernel(op: Op, m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    match op {
        Op::Nn | Op::NnPacked => gemm_nn_acc(m, k, n, a, b, c),
        Op::Tn => gemm_tn_acc(m, k, n, a, b, c),
        Op::Nt => gemm_nt_acc(m, k, n, a, b, c),
    }
}

/// Runs this program on shape `i` with `BPTT_THREADS=threads` (unset: the
/// default) and reads its figure.
fn child(i: usize, threads: Option<&str>) -> f64 {
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.env("GEMM_BENCH_CHILD", i.to_string());
    match threads {
        Some(t) => cmd.env("BPTT_THREADS", t),
        None => cmd.env_remove("BPTT_THREADS"),
    };
    let out = cmd.output().expect("run benchmark child");
    assert!(out.status.success(), "benchmark child failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("child output")
}

fn main() {
    let budget = Duration::from_millis(500);
    if let Ok(i) = std::env::var("GEMM_BENCH_CHILD") {
        println!(
            "{}",
            measure_kernel(i.parse().expect("shape index"), budget)
        );
        return;
    }
    let inherited = std::env::var("BPTT_THREADS").ok();
    println!(
        "GFLOP/s, best of 100 ms batches; threaded = BPTT_THREADS={}, available_parallelism = {}",
        inherited.as_deref().unwrap_or("default"),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<4} {:>5} {:>5} {:>5}  {:>9} {:>9} {:>7}  {:>9} {:>9}  shape",
        "op", "m", "k", "n", "1 thread", "threaded", "speedup", "naive ijp", "naive ipj"
    );
    // Arguments, if any, keep the shapes whose description contains one.
    let only: Vec<String> = std::env::args().skip(1).collect();
    for (i, &(op, m, k, n, what)) in SHAPES.iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|o| what.contains(o.as_str())) {
            continue;
        }
        // One process per figure (the pool reads `BPTT_THREADS` once), the
        // two thread counts back to back so that they see the same load.
        let one = child(i, Some("1"));
        let many = child(i, inherited.as_deref());
        let dot = measure(i, budget / 5, naive_dot);
        let axpy = measure(i, budget / 5, naive_axpy);
        let name = match op {
            Op::Nn => "nn",
            Op::NnPacked => "nnp",
            Op::Tn => "tn",
            Op::Nt => "nt",
        };
        println!(
            "{name:<4} {m:>5} {k:>5} {n:>5}  {one:>9.1} {many:>9.1} {:>6.2}x  {dot:>9.2} {axpy:>9.2}  {what}",
            many / one
        );
    }
}
