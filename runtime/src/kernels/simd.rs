//! The vector operations the matrix micro-kernels are written against.
//!
//! One micro-kernel source is instantiated for each implementation: AVX-512F
//! (16 lanes) and AVX2+FMA (8 lanes) on x86-64, and a portable 8-lane array
//! that LLVM auto-vectorises. The x86 ones fuse `a * b + c`; the portable one
//! rounds twice. `gemm` picks one per machine, always the same.

/// An f32 vector type of `LANES` lanes and its operations.
///
/// Every method is `unsafe`: pointers must be valid for the lanes touched, and
/// the x86 implementations may only run on a CPU with their features, inside
/// functions compiled with them (the methods are `inline(always)`).
pub(super) trait Simd {
    /// The vector.
    type V: Copy;
    /// Lanes per vector.
    const LANES: usize;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// Loads all lanes from `p`.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Loads the first `n <= LANES` lanes from `p` (the rest are zero).
    unsafe fn load_part(p: *const f32, n: usize) -> Self::V;
    /// Stores all lanes to `p`.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Stores the first `n <= LANES` lanes to `p`.
    unsafe fn store_part(p: *mut f32, n: usize, v: Self::V);
    /// `a * b + c` per lane.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The sum of the lanes by halving: lane `i` of the upper half is added to
    /// lane `i` of the lower half until one lane is left (for 8 lanes
    /// `((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7))`).
    unsafe fn hsum(v: Self::V) -> f32;

    /// Loads the first `n <= LANES` lanes (a full load when `n == LANES`).
    #[inline(always)]
    unsafe fn load_n(p: *const f32, n: usize) -> Self::V {
        // SAFETY: forwarded contract.
        unsafe {
            if n == Self::LANES {
                Self::load(p)
            } else {
                Self::load_part(p, n)
            }
        }
    }

    /// Stores the first `n <= LANES` lanes (a full store when `n == LANES`).
    #[inline(always)]
    unsafe fn store_n(p: *mut f32, n: usize, v: Self::V) {
        // SAFETY: forwarded contract.
        unsafe {
            if n == Self::LANES {
                Self::store(p, v)
            } else {
                Self::store_part(p, n, v)
            }
        }
    }
}

/// Lanes of the portable implementation.
const LANES: usize = 8;

/// Portable lanes: plain array code that LLVM vectorises for the target.
pub(super) struct Portable;

impl Simd for Portable {
    type V = [f32; LANES];
    const LANES: usize = LANES;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; LANES]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: the caller guarantees 8 readable floats at `p`.
        unsafe { p.cast::<[f32; LANES]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self::V {
        let mut v = [0.0; LANES];
        // SAFETY: the caller guarantees `n <= 8` readable floats at `p`.
        v[..n].copy_from_slice(unsafe { std::slice::from_raw_parts(p, n) });
        v
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: the caller guarantees 8 writable floats at `p`.
        unsafe { p.cast::<[f32; LANES]>().write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, n: usize, v: Self::V) {
        // SAFETY: the caller guarantees `n <= 8` writable floats at `p`.
        unsafe { std::slice::from_raw_parts_mut(p, n) }.copy_from_slice(&v[..n]);
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn hsum(v: Self::V) -> f32 {
        let s: [f32; 4] = std::array::from_fn(|i| v[i] + v[i + 4]);
        let s = [s[0] + s[2], s[1] + s[3]];
        s[0] + s[1]
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// AVX2 + FMA lanes. Only instantiated inside `#[target_feature(enable =
    /// "avx2,fma")]` functions, into which these `inline(always)` methods and
    /// the intrinsics they call are inlined.
    pub(in super::super) struct Avx2;

    /// `MASK[8 - n..16 - n]` enables the first `n` lanes.
    static MASK: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

    /// The mask of the first `n <= 8` lanes.
    #[inline(always)]
    unsafe fn mask8(n: usize) -> __m256i {
        // SAFETY: `n <= 8`, so the 8 ints at `8 - n` lie inside `MASK`.
        unsafe { _mm256_loadu_si256(MASK.as_ptr().add(8 - n).cast()) }
    }

    /// The halving sum of 8 lanes.
    #[inline(always)]
    unsafe fn hsum8(v: __m256) -> f32 {
        // SAFETY: AVX is available (trait contract).
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }
    }

    impl Simd for Avx2 {
        type V = __m256;
        const LANES: usize = 8;

        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            // SAFETY: AVX is available (trait contract).
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            // SAFETY: 8 readable floats at `p`, AVX available (trait contract).
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize) -> __m256 {
            // SAFETY: masked-off lanes are not accessed; `n` lanes are readable
            // and AVX2 is available (trait contract).
            unsafe { _mm256_maskload_ps(p, mask8(n)) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            // SAFETY: 8 writable floats at `p`, AVX available (trait contract).
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, n: usize, v: __m256) {
            // SAFETY: masked-off lanes are not accessed; `n` lanes are writable
            // and AVX2 is available (trait contract).
            unsafe { _mm256_maskstore_ps(p, mask8(n), v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: FMA is available (trait contract).
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn hsum(v: __m256) -> f32 {
            // SAFETY: AVX is available (trait contract).
            unsafe { hsum8(v) }
        }
    }

    /// AVX-512F lanes. Only instantiated inside `#[target_feature(enable =
    /// "avx512f,avx2,fma")]` functions, like [`Avx2`].
    pub(in super::super) struct Avx512;

    /// The mask of the first `n <= 16` lanes.
    #[inline(always)]
    fn mask16(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    impl Simd for Avx512 {
        type V = __m512;
        const LANES: usize = 16;

        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            // SAFETY: AVX-512F is available (trait contract).
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: 16 readable floats at `p`, AVX-512F available.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize) -> __m512 {
            // SAFETY: masked-off lanes are not accessed (no faults); `n` lanes
            // are readable and AVX-512F is available (trait contract).
            unsafe { _mm512_maskz_loadu_ps(mask16(n), p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            // SAFETY: 16 writable floats at `p`, AVX-512F available.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, n: usize, v: __m512) {
            // SAFETY: masked-off lanes are not accessed; `n` lanes are writable
            // and AVX-512F is available (trait contract).
            unsafe { _mm512_mask_storeu_ps(p, mask16(n), v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            // SAFETY: AVX-512F is available (trait contract).
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn hsum(v: __m512) -> f32 {
            // SAFETY: AVX-512F (and so AVX) is available (trait contract).
            unsafe {
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
                hsum8(_mm256_add_ps(_mm512_castps512_ps256(v), hi))
            }
        }
    }
}
