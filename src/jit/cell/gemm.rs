//! The `extern "C"` shims through which compiled kernels call the runtime's
//! matrix products and its per-row small-matrix products
//! (`bptt_runtime::kernels::row_product`).
//!
//! Each shim takes `m, k, n` and three raw pointers, rebuilds the slices of
//! exactly the lengths the product checks (`a`: `m·k`, `b`: `k·n`, or
//! `packed_len(k, n)` when packed, `c`: `m·n`) and calls the kernel, so compiled code computes bitwise what
//! [`DerivedCell`](crate::cell_lang::DerivedCell) computes. The operands are in bounds and
//! `c` overlaps neither `a` nor `b` by construction ([`super::check`]); a
//! panic in a kernel (never expected) aborts, as it cannot unwind through
//! compiled code.

use bptt_runtime::kernels::{RowProduct, gemm_nn_packed_acc, gemm_tn_acc, packed_len, row_product};
use cranelift_codegen::ir::{AbiParam, FuncRef, Signature};
use cranelift_codegen::isa::TargetFrontendConfig;

use crate::cell_lang::{CellProgram, Instr, Method};

/// The shims a kernel may call, by [`Gemm::index`]; `None` where the
/// program has no such product ([`Gemm::imported`]).
pub(super) type Shims = [Option<FuncRef>; Gemm::ALL.len()];

/// A product of the runtime, listed in [`Gemm::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gemm {
    /// `gemm_nn_packed_acc`: `C += A · B`, `B` packed (`W` or `Wᵀ`).
    NnPacked,
    /// `gemm_tn_acc`: `C += Aᵀ · B`.
    Tn,
    /// `row_product(op, rows, m, n, a, b, out)`.
    Row(RowProduct),
}

impl Gemm {
    /// Every product, in the order compiled functions import them.
    pub(super) const ALL: [Gemm; 5] = [
        Gemm::NnPacked,
        Gemm::Tn,
        Gemm::Row(RowProduct::Outer),
        Gemm::Row(RowProduct::VecMat),
        Gemm::Row(RowProduct::MatVec),
    ];

    /// The products a program's kernels are linked to: the matrix products
    /// always, the row products when a kernel has one (so that the IR of a
    /// cell without matrix-valued values names only what it calls).
    pub(super) fn imported(program: &CellProgram) -> Vec<Gemm> {
        let rows = Method::ALL.iter().any(|m| {
            m.kernel(program)
                .instrs
                .iter()
                .any(|i| matches!(i, Instr::RowProduct { .. }))
        });
        let n = if rows { Gemm::ALL.len() } else { 2 };
        Gemm::ALL[..n].to_vec()
    }

    /// Where it stands in [`Gemm::ALL`].
    pub(super) fn index(self) -> usize {
        match self {
            Gemm::NnPacked => 0,
            Gemm::Tn => 1,
            Gemm::Row(RowProduct::Outer) => 2,
            Gemm::Row(RowProduct::VecMat) => 3,
            Gemm::Row(RowProduct::MatVec) => 4,
        }
    }

    /// The shim's symbol name, as the IR shows it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Gemm::NnPacked => "bptt_cell_gemm_nn_packed",
            Gemm::Tn => "bptt_cell_gemm_tn",
            Gemm::Row(RowProduct::Outer) => "bptt_cell_outer",
            Gemm::Row(RowProduct::VecMat) => "bptt_cell_vecmat",
            Gemm::Row(RowProduct::MatVec) => "bptt_cell_matvec",
        }
    }

    /// The address the JIT links calls of the shim to.
    pub(super) fn address(self) -> *const u8 {
        match self {
            Gemm::NnPacked => bptt_cell_gemm_nn_packed as *const u8,
            Gemm::Tn => bptt_cell_gemm_tn as *const u8,
            Gemm::Row(RowProduct::Outer) => bptt_cell_outer as *const u8,
            Gemm::Row(RowProduct::VecMat) => bptt_cell_vecmat as *const u8,
            Gemm::Row(RowProduct::MatVec) => bptt_cell_matvec as *const u8,
        }
    }
}

/// The shims' signature: `m, k, n` (for a row product: `rows, m, n`) then
/// the pointers `a, b, c`, all pointer-sized, nothing returned.
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
    // SAFETY: the caller's contract.
    unsafe { (slice(a, m * k), slice(b, b_len), slice_mut(c, m * n)) }
}

/// `len` floats at `p` to read; any pointer when `len` is zero (never
/// dereferenced then).
///
/// # Safety
///
/// `p` must be valid for reads of `len` floats for the returned lifetime.
unsafe fn slice<'a>(p: *const f32, len: usize) -> &'a [f32] {
    match len {
        0 => &[],
        // SAFETY: the caller's contract.
        _ => unsafe { std::slice::from_raw_parts(p, len) },
    }
}

/// `len` floats at `p` to write, as [`slice`].
///
/// # Safety
///
/// `p` must be valid for reads and writes of `len` floats, and nothing else
/// may access them, for the returned lifetime.
unsafe fn slice_mut<'a>(p: *mut f32, len: usize) -> &'a mut [f32] {
    match len {
        0 => &mut [],
        // SAFETY: the caller's contract.
        _ => unsafe { std::slice::from_raw_parts_mut(p, len) },
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

/// Defines an `extern "C"` shim that calls [`row_product`] with `$op` on
/// operands of the lengths it checks.
macro_rules! row_shim {
    ($(#[$doc:meta])* $name:ident => $op:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// `a`, `b` and `c` must be valid for `rows` rows of the widths
        /// `RowProduct::widths(m, n)` gives (reads, reads, writes) and `c`
        /// must overlap neither `a` nor `b`.
        unsafe extern "C" fn $name(rows: usize, m: usize, n: usize, a: *const f32, b: *const f32, c: *mut f32) {
            let (wa, wb, wo) = $op.widths(m, n);
            // SAFETY: the caller's contract, passed on.
            let (a, b, c) = unsafe { (slice(a, rows * wa), slice(b, rows * wb), slice_mut(c, rows * wo)) };
            row_product($op, rows, m, n, a, b, c);
        }
    };
}

row_shim!(
    /// `c = outer(a, b)` per row.
    bptt_cell_outer => RowProduct::Outer
);
row_shim!(
    /// `c = a · B` per row.
    bptt_cell_vecmat => RowProduct::VecMat
);
row_shim!(
    /// `c = A · b` per row.
    bptt_cell_matvec => RowProduct::MatVec
);
