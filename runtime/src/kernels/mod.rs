//! Allocation-free, deterministic, multi-threaded f32 kernels.
//!
//! * Matrix products [`gemm_nn_acc`], [`gemm_tn_acc`] and [`gemm_nt_acc`]
//!   accumulate into row-major `C`. Products of at least 2^16 multiply-adds
//!   are split by rows or columns of `C` over a persistent worker pool
//!   (`BPTT_THREADS` threads, default `available_parallelism()` capped at 8,
//!   started on first use; `BPTT_THREADS=1` keeps everything on the calling
//!   thread). Every element is summed by one thread in a fixed order, so
//!   results are bitwise identical for any thread count and calling thread.
//!   Register-blocked micro-kernels use AVX-512F, else AVX2+FMA, on x86-64
//!   (detected once: a machine always takes the same path), else portable
//!   lanes. Each call uses about 64 KiB of the calling thread's stack.
//!   [`gemm_nn_packed_acc`] reads `B` packed in column panels ([`pack_b`],
//!   [`pack_bt`] for a transpose), bitwise equal to [`gemm_nn_acc`]: weights
//!   packed once per update stream through L1 in every step.
//! * Activations [`exp`], [`sigmoid`] and [`tanh`] are branch-free scalar
//!   functions that inline into, and vectorise with, the cells' loops, which
//!   [`simd_fn!`](crate::simd_fn) compiles for AVX-512F, AVX2 or the baseline
//!   ([`Level`]) without changing a bit.
//! * [`row_product`]: outer, vector-matrix and matrix-vector products of
//!   each batch row's small matrices ([`RowProduct`]), in a fixed order,
//!   for the cell language's matrix-valued states.
//!
//! None of them allocates after the pool has started.

pub mod act;
pub mod batched;
mod dispatch;
mod gemm;
mod pool;
mod rowmat;
mod simd;

pub(crate) use crate::simd_fn;
pub use act::{exp, sigmoid, tanh};
pub use batched::{log, softplus};
pub use dispatch::Level;
pub use gemm::{
    gemm_nn_acc, gemm_nn_packed_acc, gemm_nt_acc, gemm_tn_acc, pack_b, pack_bt, packed_len,
    panel_width,
};
pub(crate) use pool::{run as run_parts, threads as pool_threads};
pub use rowmat::{RowProduct, row_product, row_product_in};
