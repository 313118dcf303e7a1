//! The `extern "C"` shims through which compiled kernels call the runtime's
//! matrix products.
//!
//! Each shim takes `m, k, n` and three raw pointers, rebuilds the slices of
//! exactly the lengths the product checks (`a`: `m·k`, `b`: `k·n`, or
//! `packed_len(k, n)` when packed, `c`: `m·n`) and calls the kernel, so compiled code computes bitwise what
//! [`DerivedCell`](crate::cell_lang::DerivedCell) computes. The operands are in bounds and
//! `c` overlaps neither `a` nor `b` by construction ([`super::check`]); a
//! panic in a kernel (never expected) aborts, as it cannot unwind through
//! compiled code.

use bptt_runtime::kernels::{gemm_nn_packed_acc, gemm_tn_acc, packed_len};
use cranelift_codegen::ir::{AbiParam, Signature};
use cranelift_codegen::isa::TargetFrontendConfig;

/// A matrix product of the runtime; the discriminant indexes [`Gemm::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gemm {
    /// `gemm_nn_packed_acc`: `C += A · B`, `B` packed (`W` or `Wᵀ`).
    NnPacked,
    /// `gemm_tn_acc`: `C += Aᵀ · B`.
    Tn,
}

impl Gemm {
    /// Every product, in the order compiled functions import them.
    pub(super) const ALL: [Gemm; 2] = [Gemm::NnPacked, Gemm::Tn];

    /// The shim's symbol name, as the IR shows it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Gemm::NnPacked => "bptt_cell_gemm_nn_packed",
            Gemm::Tn => "bptt_cell_gemm_tn",
        }
    }

    /// The address the JIT links calls of the shim to.
    pub(super) fn address(self) -> *const u8 {
        match self {
            Gemm::NnPacked => bptt_cell_gemm_nn_packed as *const u8,
            Gemm::Tn => bptt_cell_gemm_tn as *const u8,
        }
    }
}

/// The shims' signature: `m, k, n` then the pointers `a, b, c`, all
/// pointer-sized, nothing returned.
pub(super) fn gemm_signature(config: TargetFrontendConfig) -> Signature {
    let mut sig = Signature::new(config.default_call_conv);
    sig.params
        .extend((0..6).map(|_| AbiParam::new(config.pointer_type())));
    sig
}

/// The operands of a product as slices of the lengths its kernel checks.
///
/// # Safety
///
/// `a`, `b` and `c` must be valid for `m·k`, `b_len` and `m·n` floats
/// (reads, reads, and reads and writes) for the returned lifetime, and `c`
/// must overlap neither `a` nor `b`. A pointer to zero floats may be
/// anything.
unsafe fn operands<'a>(
    (m, k, n): (usize, usize, usize),
    a: *const f32,
    (b, b_len): (*const f32, usize),
    c: *mut f32,
) -> (&'a [f32], &'a [f32], &'a mut [f32]) {
    // SAFETY: the caller's contract; empty operands are never dereferenced,
    // so they need no valid pointer.
    unsafe {
        let slice = |p: *const f32, len: usize| -> &'a [f32] {
            if len == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(p, len)
            }
        };
        let out: &'a mut [f32] = if m * n == 0 {
            &mut []
        } else {
            std::slice::from_raw_parts_mut(c, m * n)
        };
        (slice(a, m * k), slice(b, b_len), out)
    }
}

/// Defines an `extern "C"` shim that calls a runtime product on the
/// operands rebuilt by [`operands`], `b` of `$b_len(k, n)` floats.
macro_rules! shim {
    ($(#[$doc:meta])* $name:ident => $kernel:ident, $b_len:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// As for [`operands`] with `b_len` as said.
        unsafe extern "C" fn $name(m: usize, k: usize, n: usize, a: *const f32, b: *const f32, c: *mut f32) {
            // SAFETY: the caller's contract, passed on.
            let (a, b, c) = unsafe { operands((m, k, n), a, (b, $b_len(k, n)), c) };
            $kernel(m, k, n, a, b, c);
        }
    };
}

shim!(
    /// `c[m×n] += a[m×k] · b` for `b` (`k×n`) packed: `packed_len(k, n)`
    /// floats.
    bptt_cell_gemm_nn_packed => gemm_nn_packed_acc, packed_len
);
shim!(
    /// `c[m×n] += a[k×m]ᵀ · b[k×n]`.
    bptt_cell_gemm_tn => gemm_tn_acc, |k: usize, n: usize| k * n
);
