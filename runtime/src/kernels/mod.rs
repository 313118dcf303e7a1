//! Allocation-free, deterministic, multi-threaded f32 kernels.
//!
//! * Matrix products [`gemm_nn_acc`], [`gemm_tn_acc`] and [`gemm_nt_acc`]
//!   accumulate into row-major `C`. Large products are split by rows or
//!   columns of `C` over a persistent worker pool (`BPTT_THREADS` threads,
//!   default `available_parallelism()` capped at 8, started on first use);
//!   every element is summed by one thread in a fixed order, so results are
//!   bitwise identical for any thread count and calling thread. On x86-64
//!   CPUs with AVX2 and FMA the register-blocked micro-kernels use them; other
//!   CPUs run the same code on portable lanes.
//! * Activations [`exp`], [`sigmoid`] and [`tanh`] are branch-free scalar
//!   functions that inline into, and vectorise with, the cells' loops.
//!
//! None of them allocates after the pool has started.

mod act;
mod gemm;
mod pool;
mod simd;

pub use act::{exp, sigmoid, tanh};
pub use gemm::{gemm_nn_acc, gemm_nt_acc, gemm_tn_acc};
