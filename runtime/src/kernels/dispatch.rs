//! Elementwise loops compiled for the best vector instruction set of the CPU.
//!
//! The runtime is built for the baseline target (SSE2 on x86-64), so the
//! cells' elementwise loops would run four lanes at a time. [`simd_fn!`]
//! compiles a function body three times, for AVX-512F, for AVX2 and for the
//! baseline, and calls the best one this CPU has ([`Level::detect`], the same
//! answer every time).
//!
//! This changes no result bit: the bodies are plain scalar Rust without
//! `mul_add`, and Rust never contracts `a * b + c` into a fused multiply-add,
//! so every lane of every width performs the same IEEE operations in the same
//! order as the scalar code.

/// The vector instruction sets the elementwise loops are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// AVX-512F (with AVX2 and FMA available).
    Avx512,
    /// AVX2 (with FMA available).
    Avx2,
    /// The build's baseline target.
    Baseline,
}

impl Level {
    /// The best level of this CPU (detected by `std`, which caches it).
    #[inline]
    pub fn detect() -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                if is_x86_feature_detected!("avx512f") {
                    return Level::Avx512;
                }
                return Level::Avx2;
            }
        }
        Level::Baseline
    }
}

/// Defines a function whose body is compiled for each [`Level`] and run at
/// the best one the CPU has:
///
/// ```
/// bptt_runtime::simd_fn! {
///     /// Adds `b` into `a`.
///     fn add(a: &mut [f32], b: &[f32]) {
///         for (x, y) in a.iter_mut().zip(b) { *x += *y; }
///     }
/// }
/// let mut a = [1.0, 2.0];
/// add(&mut a, &[0.5, 0.25]);
/// assert_eq!(a, [1.5, 2.25]);
/// ```
///
/// The body must be safe code that calls only `#[inline]` functions (the
/// activations), so that it inlines into each compiled copy; it may not be
/// generic. Without `mul_add` in the body every copy computes the same
/// bits (Rust never contracts `a * b + c`): the interpreter of derived cells
/// and the code `cell!` generates run their elementwise loops through it.
#[macro_export]
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            fn avx512($($arg: $ty),*) {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) {
                body($($arg),*)
            }

            match $crate::kernels::Level::detect() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU has AVX-512F, AVX2 and FMA.
                $crate::kernels::Level::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU has AVX2 and FMA.
                $crate::kernels::Level::Avx2 => unsafe { avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
