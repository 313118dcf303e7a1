//! Matrix products `C += op(A) · op(B)`, split over the worker pool.
//!
//! # Summation order (determinism)
//!
//! Every output element is computed by exactly one thread, in an order that
//! depends only on `k` and on the machine's instruction set, never on the
//! tiling, the thread split or the calling thread:
//!
//! * [`gemm_nn_acc`] and [`gemm_tn_acc`]: one accumulator that starts at
//!   `C[i,j]` and adds `A[i,p]·B[p,j]` for `p = 0, 1, …, k-1` with one fused
//!   multiply-add each (`c = fma(a, b, c)`), the same on every x86 path.
//! * [`gemm_nt_acc`] (dot products of contiguous rows): `W` lane sums
//!   (`W` = 16 with AVX-512, 8 otherwise), lane `l` adding the products of
//!   `p ≡ l (mod W)` in increasing `p` with fused multiply-adds from `+0`, then
//!   a halving tree (lane `i` of the upper half onto lane `i` of the lower
//!   half, until one lane is left), then `C[i,j] += sum`.
//!
//! The instruction set is detected once per machine: AVX-512F, else AVX2+FMA
//! (x86-64), else portable lanes that LLVM vectorises, which keep the orders
//! above with `W` = 8 but round `a·b + c` twice.

use super::pool;
use super::simd::{Portable, Simd};
use std::mem::MaybeUninit;
use std::ops::Range;

/// Rows (`k` extent) of a packed block of `B`.
const KC: usize = 64;
/// Columns of a packed block of `B`: a multiple of every tile width, and long
/// enough (1 KiB) that reading a block row by row streams at full speed.
const NC: usize = 256;
/// Parts per thread a product is cut into: the threads claim parts as they
/// come free, so a thread that the OS preempts delays at most its own part.
const PARTS_PER_THREAD: usize = 2;
/// Products with fewer multiply-adds than this run on the calling thread.
const PAR_MIN_FMAS: usize = 1 << 16;

/// Panics with the sizes unless the slice lengths match the shape.
fn check(name: &str, m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &[f32]) {
    let (la, lb, lc) = (a.len(), b.len(), c.len());
    assert!(
        Some(la) == m.checked_mul(k)
            && Some(lb) == k.checked_mul(n)
            && Some(lc) == m.checked_mul(n),
        "{name}: m={m} k={k} n={n} needs a.len()=m*k, b.len()=k*n, c.len()=m*n, \
         got a.len()={la} b.len()={lb} c.len()={lc}"
    );
}

/// C[m×n] += A[m×k] · B[k×n]; all row-major and contiguous.
///
/// Each `C[i,j]` is `C[i,j] + Σ_p A[i,p]·B[p,j]` accumulated in `p` order with
/// fused multiply-adds, bitwise reproducible for any thread count. Does not
/// allocate (the worker pool starts on the first call).
///
/// # Panics
/// If `a.len() != m*k`, `b.len() != k*n` or `c.len() != m*n`.
pub fn gemm_nn_acc(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    check("gemm_nn_acc", m, k, n, a, b, c);
    let a = Strided {
        p: a.as_ptr(),
        rs: k,
        cs: 1,
    };
    broadcast(m, k, n, a, b, false, c);
}

/// C[m×n] += Aᵀ · B where A is [k×m] row-major and B is [k×n] row-major
/// (weight gradients: dW[in×out] += xᵀ·dg).
///
/// Same summation order and guarantees as [`gemm_nn_acc`].
///
/// # Panics
/// If `a.len() != k*m`, `b.len() != k*n` or `c.len() != m*n`.
pub fn gemm_tn_acc(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    check("gemm_tn_acc", m, k, n, a, b, c);
    let a = Strided {
        p: a.as_ptr(),
        rs: 1,
        cs: m,
    };
    broadcast(m, k, n, a, b, false, c);
}

/// C[m×n] += A[m×k] · Bᵀ where B is [n×k] row-major
/// (dh_prev[batch×in] += dg[batch×out] · Wᵀ with W [in×out]).
///
/// Each `C[i,j]` gets the dot product of row `i` of A and row `j` of B summed
/// in fixed lanes (see the module docs), bitwise reproducible for any thread
/// count. Does not allocate (the worker pool starts on the first call).
///
/// # Panics
/// If `a.len() != m*k`, `b.len() != n*k` or `c.len() != m*n`.
pub fn gemm_nt_acc(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    check("gemm_nt_acc", m, k, n, a, b, c);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let g = Dot {
        a: a.as_ptr(),
        b: b.as_ptr(),
        c: c.as_mut_ptr(),
        k,
        ldc: n,
    };
    let isa = Isa::detect();
    let shape = isa.shape();
    split(m, n, k, shape.dot_mr, shape.dot_nr, &|rows, cols| {
        // SAFETY: `isa` runs on this CPU; `g` describes the checked slices and
        // `split` hands out disjoint in-bounds blocks.
        unsafe { isa.run(Block::Dot(&g), rows, cols) }
    });
}

/// C[m×n] += A[m×k] · B for a row-major `A` and `B` (`k×n`) packed by
/// [`pack_b`] or [`pack_bt`] into `panels` (the gates' `h·W_h` with `W_h`
/// packed once per parameter update).
///
/// Bitwise equal to [`gemm_nn_acc`] with `B` row-major: the same sums in the
/// same order; only where `B` is read from differs.
///
/// # Panics
/// If `a.len() != m*k`, `c.len() != m*n` or `panels.len() != packed_len(k, n)`.
pub fn gemm_nn_packed_acc(m: usize, k: usize, n: usize, a: &[f32], panels: &[f32], c: &mut [f32]) {
    let (la, lp, lc) = (a.len(), panels.len(), c.len());
    assert!(
        Some(la) == m.checked_mul(k) && Some(lc) == m.checked_mul(n) && lp == packed_len(k, n),
        "gemm_nn_packed_acc: m={m} k={k} n={n} needs a.len()=m*k, c.len()=m*n, \
         panels.len()={}, got a.len()={la} c.len()={lc} panels.len()={lp}",
        packed_len(k, n)
    );
    let a = Strided {
        p: a.as_ptr(),
        rs: k,
        cs: 1,
    };
    broadcast(m, k, n, a, panels, true, c);
}

/// Vectors per panel: every instruction set's tile is two vectors wide
/// (`Shape::nv`), so a panel is one tile wide.
const PANEL_VECTORS: usize = 2;

/// Columns per panel of a packed `B` on this machine: two vectors of its
/// instruction set, 16 floats with AVX2 (and the portable lanes), 32 with
/// AVX-512F.
///
/// A packed `k×n` matrix is `n / width` column panels (rounded up, the last
/// zero-padded), each `k` contiguous rows of `width` floats: a tile then
/// reads its `B` sequentially instead of `k` rows a row stride apart, which
/// for weights larger than L1 is what limits the gates' product.
pub fn panel_width() -> usize {
    panel_width_for(Isa::detect())
}

fn panel_width_for(isa: Isa) -> usize {
    PANEL_VECTORS * isa.shape().lanes
}

/// Floats of a packed `k×n` matrix on this machine: `k` times `n` rounded up
/// to whole panels.
///
/// # Panics
/// If that overflows.
pub fn packed_len(k: usize, n: usize) -> usize {
    packed_len_for(panel_width(), k, n)
}

fn packed_len_for(width: usize, k: usize, n: usize) -> usize {
    n.div_ceil(width)
        .checked_mul(width)
        .and_then(|w| w.checked_mul(k))
        .expect("packed_len: k·n overflows")
}

/// Packs the row-major `b` (`k×n`) into `panels` ([`packed_len`] floats) for
/// [`gemm_nn_packed_acc`], in place: every float of `panels` is written.
///
/// # Panics
/// If `b.len() != k*n` or `panels.len() != packed_len(k, n)`.
pub fn pack_b(k: usize, n: usize, b: &[f32], panels: &mut [f32]) {
    pack_for(panel_width(), k, n, b, false, panels);
}

/// Packs the transpose of the row-major `bt` (`n×k`) into `panels` as `B`
/// (`k×n`), so `A·Wᵀ` for a row-major `W` runs as [`gemm_nn_packed_acc`].
///
/// # Panics
/// If `bt.len() != k*n` or `panels.len() != packed_len(k, n)`.
pub fn pack_bt(k: usize, n: usize, bt: &[f32], panels: &mut [f32]) {
    pack_for(panel_width(), k, n, bt, true, panels);
}

/// [`pack_b`] (`transposed` false) or [`pack_bt`] with panels `width` wide.
fn pack_for(width: usize, k: usize, n: usize, src: &[f32], transposed: bool, panels: &mut [f32]) {
    let (what, rows, cols) = if transposed {
        ("pack_bt", n, k)
    } else {
        ("pack_b", k, n)
    };
    assert!(
        Some(src.len()) == k.checked_mul(n) && panels.len() == packed_len_for(width, k, n),
        "{what}: a {rows}×{cols} matrix needs {} floats and {} of panels, got {} and {}",
        k * n,
        packed_len_for(width, k, n),
        src.len(),
        panels.len()
    );
    // The padding columns of the last panel.
    panels.fill(0.0);
    if transposed {
        for (j, row) in src.chunks_exact(k.max(1)).enumerate().take(n) {
            let panel = j / width * k * width + j % width;
            for (p, &x) in row.iter().enumerate() {
                panels[panel + p * width] = x;
            }
        }
    } else {
        for (p, row) in src.chunks_exact(n.max(1)).enumerate().take(k) {
            for (q, part) in row.chunks(width).enumerate() {
                let at = q * k * width + p * width;
                panels[at..at + part.len()].copy_from_slice(part);
            }
        }
    }
}

/// `C += A · B` through broadcast tiles; `a` is A with its strides, `b` is
/// row-major (`panels` false) or packed ([`pack_b`]).
fn broadcast(m: usize, k: usize, n: usize, a: Strided, b: &[f32], panels: bool, c: &mut [f32]) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let g = Broadcast {
        a,
        b: b.as_ptr(),
        panels,
        c: c.as_mut_ptr(),
        k,
        n,
    };
    let isa = Isa::detect();
    let shape = isa.shape();
    let mr = if panels { shape.packed_mr } else { shape.mr };
    // Column cuts fall on whole tiles, which are whole panels.
    split(m, n, k, mr, shape.nv * shape.lanes, &|rows, cols| {
        // SAFETY: `isa` runs on this CPU; `g` describes the checked slices and
        // `split` hands out disjoint in-bounds blocks.
        unsafe { isa.run(Block::Broadcast(&g), rows, cols) }
    });
}

/// Calls `f(rows, cols)` on blocks that tile `[0,m)×[0,n)`, on the pool when
/// the product has at least `PAR_MIN_FMAS` multiply-adds. Blocks are whole
/// `mr`×`nr` tiles cut along the dimension with more tiles; the cut never
/// changes what is computed, only where.
fn split<F: Fn(Range<usize>, Range<usize>) + Sync>(
    m: usize,
    n: usize,
    k: usize,
    mr: usize,
    nr: usize,
    f: &F,
) {
    let threads = if m.saturating_mul(n).saturating_mul(k) >= PAR_MIN_FMAS {
        pool::threads()
    } else {
        1
    };
    let wanted = if threads > 1 {
        (threads * PARTS_PER_THREAD).min(pool::MAX_PARTS)
    } else {
        1
    };
    let (row_tiles, col_tiles) = (m.div_ceil(mr), n.div_ceil(nr));
    let by_cols = col_tiles >= wanted.min(row_tiles);
    let (tiles, unit, len) = if by_cols {
        (col_tiles, nr, n)
    } else {
        (row_tiles, mr, m)
    };
    let parts = wanted.min(tiles);
    if parts <= 1 {
        f(0..m, 0..n);
        return;
    }
    pool::run(parts, &|part| {
        let lo = (part * tiles / parts * unit).min(len);
        let hi = ((part + 1) * tiles / parts * unit).min(len);
        if by_cols {
            f(0..m, lo..hi)
        } else {
            f(lo..hi, 0..n)
        }
    });
}

/// An instruction set the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// AVX-512F (with AVX2 and FMA).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Portable lanes.
    Portable,
}

/// Tile shapes of an instruction set: broadcast tiles of `mr` rows × `nv`
/// vectors of `lanes` (`packed_mr` rows when `B` is packed),
/// dot-product tiles of `dot_mr` × `dot_nr`.
#[derive(Clone, Copy)]
struct Shape {
    lanes: usize,
    mr: usize,
    packed_mr: usize,
    nv: usize,
    dot_mr: usize,
    dot_nr: usize,
}

/// 8 rows × 32 columns (16 zmm accumulators), also on packed panels
/// (measured on an AVX-512 Xeon at 16×256×1024: 151 GFLOP/s with 8 rows,
/// 134 with 6, 122 with 4), dot 4 × 4 (16 accumulators).
#[cfg(target_arch = "x86_64")]
const AVX512: Shape = Shape {
    lanes: 16,
    mr: 8,
    packed_mr: 8,
    nv: 2,
    dot_mr: 4,
    dot_nr: 4,
};
/// 6 rows × 16 columns (12 ymm accumulators); on packed panels 4 rows,
/// measured faster on Zen 4 (77 against 59 GFLOP/s at 16×256×1024: the
/// batch of 16 is four whole tiles, and the panel streams from L1 for each);
/// dot 2 × 6 (12 accumulators).
#[cfg(target_arch = "x86_64")]
const AVX2: Shape = Shape {
    lanes: 8,
    mr: 6,
    packed_mr: 4,
    nv: 2,
    dot_mr: 2,
    dot_nr: 6,
};
/// Small tiles: the portable lanes may be emulated with 4-lane registers.
const PORTABLE: Shape = Shape {
    lanes: 8,
    mr: 4,
    packed_mr: 4,
    nv: 2,
    dot_mr: 2,
    dot_nr: 4,
};

/// One thread's share of a product.
#[derive(Clone, Copy)]
enum Block<'a> {
    Broadcast(&'a Broadcast),
    Dot(&'a Dot),
}

impl Isa {
    /// The best instruction set of this CPU (the same answer every time).
    #[inline]
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                if is_x86_feature_detected!("avx512f") {
                    return Isa::Avx512;
                }
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Its tile shapes.
    fn shape(self) -> Shape {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => AVX512,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => AVX2,
            Isa::Portable => PORTABLE,
        }
    }

    /// Computes `C[rows, cols]` of the block's product.
    ///
    /// # Safety
    /// This CPU has the instruction set; the product describes live matrices
    /// of the right sizes; `rows` and `cols` lie in `C`; no one else accesses
    /// `C[rows, cols]` meanwhile.
    unsafe fn run(self, block: Block, rows: Range<usize>, cols: Range<usize>) {
        // SAFETY: forwarded contract.
        unsafe {
            match self {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => run_avx512(block, rows, cols),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => run_avx2(block, rows, cols),
                Isa::Portable => match block {
                    Block::Broadcast(g) => broadcast_shaped::<
                        Portable,
                        { PORTABLE.mr },
                        { PORTABLE.packed_mr },
                        { PORTABLE.nv },
                    >(g, rows, cols),
                    Block::Dot(g) => {
                        dot_region::<Portable, { PORTABLE.dot_mr }, { PORTABLE.dot_nr }>(
                            g, rows, cols,
                        )
                    }
                },
            }
        }
    }
}

/// [`Isa::run`] compiled for AVX-512F.
///
/// # Safety
/// As for [`Isa::run`] with [`Isa::Avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn run_avx512(block: Block, rows: Range<usize>, cols: Range<usize>) {
    use super::simd::Avx512;
    // SAFETY: forwarded contract.
    unsafe {
        match block {
            Block::Broadcast(g) => {
                broadcast_shaped::<Avx512, { AVX512.mr }, { AVX512.packed_mr }, { AVX512.nv }>(
                    g, rows, cols,
                )
            }
            Block::Dot(g) => {
                dot_region::<Avx512, { AVX512.dot_mr }, { AVX512.dot_nr }>(g, rows, cols)
            }
        }
    }
}

/// [`Isa::run`] compiled for AVX2 and FMA.
///
/// # Safety
/// As for [`Isa::run`] with [`Isa::Avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(block: Block, rows: Range<usize>, cols: Range<usize>) {
    use super::simd::Avx2;
    // SAFETY: forwarded contract.
    unsafe {
        match block {
            Block::Broadcast(g) => {
                broadcast_shaped::<Avx2, { AVX2.mr }, { AVX2.packed_mr }, { AVX2.nv }>(
                    g, rows, cols,
                )
            }
            Block::Dot(g) => dot_region::<Avx2, { AVX2.dot_mr }, { AVX2.dot_nr }>(g, rows, cols),
        }
    }
}

/// A read-only matrix with element `(i, j)` at `p + i*rs + j*cs`.
#[derive(Clone, Copy)]
struct Strided {
    p: *const f32,
    rs: usize,
    cs: usize,
}

/// `C[m×n] += A·B` for a strided `A` (`m×k`) and `B` (`k×n`), row-major or
/// packed.
struct Broadcast {
    a: Strided,
    b: *const f32,
    /// `B` is packed ([`pack_b`]) rather than row-major.
    panels: bool,
    c: *mut f32,
    k: usize,
    /// Row stride of `C` (and of `B` when row-major).
    n: usize,
}

// SAFETY: a `Broadcast` is shared by the parts of one product only; they read
// `a` and `b` and write disjoint blocks of `c`, all alive for the call.
unsafe impl Sync for Broadcast {}

/// [`broadcast_region`] with `MR`×`NV` tiles, or 2×4 tiles when the region
/// has at most 2 rows (more independent accumulators for the one or two rows).
///
/// # Safety
/// As for [`broadcast_region`].
#[inline(always)]
unsafe fn broadcast_shaped<S: Simd, const MR: usize, const PMR: usize, const NV: usize>(
    g: &Broadcast,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    const { assert!(NV == PANEL_VECTORS) };
    // SAFETY: forwarded contract.
    unsafe {
        match (g.panels, rows.len() <= 2) {
            (true, true) => broadcast_panels::<S, 2, 4>(g, rows, cols),
            (true, false) => broadcast_panels::<S, PMR, NV>(g, rows, cols),
            (false, true) => broadcast_region::<S, 2, 4>(g, rows, cols),
            (false, false) => broadcast_region::<S, MR, NV>(g, rows, cols),
        }
    }
}

/// [`broadcast_region`] for a packed `B` ([`pack_b`]): every tile reads its panels where
/// they lie, `k` contiguous rows of one panel width, over the whole
/// reduction; all row tiles pass over a panel while it is in L1. The sums are
/// those of the row-major paths, so the result is bitwise theirs.
///
/// # Safety
/// As for [`broadcast_region`], `g.b` holds the panels of a packed `B` of
/// `g.k` rows for `S`, and `cols.start` is a multiple of the panel width.
#[inline(always)]
unsafe fn broadcast_panels<S: Simd, const MR: usize, const NV: usize>(
    g: &Broadcast,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    let nr = PANEL_VECTORS * S::LANES;
    let pstride = g.k * nr;
    // SAFETY: column `j` starts panel `j / nr`, inside the panels, which are
    // zero-padded to whole vectors; the rest is the caller's contract.
    unsafe {
        whole_reduction::<S, MR, NV>(g, rows, cols, |j| (g.b.add(j / nr * pstride), nr, pstride))
    }
}

/// A packed block of `B`: up to `KC`×`NC` floats, stored as panels of one
/// tile width, each `KC` rows of `nr` floats.
#[repr(C, align(64))]
struct Packed([MaybeUninit<f32>; KC * NC]);

/// `C[rows, cols] += A[rows, :] · B[:, cols]` in `MR` × `NV` vector tiles.
///
/// Walks `KC`×`NC` blocks of `B`: each is copied row by row (so that `B` is
/// read sequentially, which streams several times faster than walking
/// column panels of rows a power of two apart) into tile-wide panels on the
/// stack, zero-padded to whole vectors; then every row tile runs over every
/// panel while the block is in cache.
///
/// # Safety
/// `g` describes live matrices of the right sizes; `rows` and `cols` lie in
/// `C`; no one else accesses `C[rows, cols]` meanwhile; `S` runs on this CPU.
#[inline(always)]
unsafe fn broadcast_region<S: Simd, const MR: usize, const NV: usize>(
    g: &Broadcast,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    let nr = const { NV * S::LANES };
    const { assert!(NC.is_multiple_of(NV * S::LANES)) };
    if rows.len() <= DIRECT_ROWS && g.k <= DIRECT_K && cols.len().is_multiple_of(nr) {
        // SAFETY: forwarded contract; every panel of `cols` is whole.
        unsafe { broadcast_direct::<S, MR, NV>(g, rows, cols) };
        return;
    }
    let mut packed = Packed([MaybeUninit::uninit(); KC * NC]);
    let packed = packed.0.as_mut_ptr().cast::<f32>();
    for jc in cols.clone().step_by(NC) {
        let nc = NC.min(cols.end - jc);
        for pc in (0..g.k).step_by(KC) {
            let kc = KC.min(g.k - pc);
            // SAFETY: the block is `kc <= KC` rows of `nc <= NC` floats inside
            // `B`, and the buffer holds `KC * NC` floats.
            unsafe { pack_block::<S, NV>(g.b.add(pc * g.n + jc), g.n, kc, nc, packed) };
            for i in rows.clone().step_by(MR) {
                for (q, j) in (jc..jc + nc).step_by(nr).enumerate() {
                    let t = Tile {
                        k: kc,
                        a: Strided {
                            // SAFETY: `(i, pc)` is inside `A`.
                            p: unsafe { g.a.p.add(i * g.a.rs + pc * g.a.cs) },
                            ..g.a
                        },
                        // SAFETY: panel `q` lies inside the buffer.
                        b: unsafe { packed.add(q * KC * nr) },
                        ldb: nr,
                        pstride: PANEL_VECTORS * S::LANES,
                        // SAFETY: `(i, j)` is inside `C`.
                        c: unsafe { g.c.add(i * g.n + j) },
                        ldc: g.n,
                        cols: nr.min(jc + nc - j),
                    };
                    // SAFETY: the tile's rows and columns lie in the region;
                    // its panel holds whole, zero-padded vectors.
                    unsafe { broadcast_rows::<S, MR, NV>(&t, MR.min(rows.end - i)) };
                }
            }
        }
    }
}

/// Regions of at most this many rows read `B` where it lies instead of
/// packing it: with one or two row tiles a packed block is used once or
/// twice, so packing costs about as much as it saves.
const DIRECT_ROWS: usize = 16;
/// ... and at most this long a reduction: a tile walks `k` rows of `B` a row
/// stride apart, and past about 512 of them (pages, with `B` out of cache)
/// packing wins again (`examples/gemm_bench.rs`: 16×256·256×1024 went from
/// 62 to 95 GFLOP/s, 16×1024·1024×4096 from 44 to 27 without this bound).
const DIRECT_K: usize = 512;

/// [`broadcast_region`] for a few rows and whole panels: every tile reads its
/// `k` rows of `B` in place (row stride `n`) over the whole reduction. Each
/// element is still `C[i,j]` plus the products in `p` order, one fused
/// multiply-add each, so the result is bitwise the packed path's.
///
/// # Safety
/// As for [`broadcast_region`], and `cols.len()` is a multiple of `NV·LANES`.
#[inline(always)]
unsafe fn broadcast_direct<S: Simd, const MR: usize, const NV: usize>(
    g: &Broadcast,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    let pstride = PANEL_VECTORS * S::LANES;
    // SAFETY: `(0, j)` is inside `B`, and whole tiles fit the region's
    // columns; the rest is the caller's contract.
    unsafe { whole_reduction::<S, MR, NV>(g, rows, cols, |j| (g.b.add(j), g.n, pstride)) }
}

/// The tiles of a region over the whole reduction, `B` read where it lies:
/// the tile at column `j` reads `b_at(j) = (first float, row stride, floats
/// from one pair of vectors to the next)`.
///
/// # Safety
/// As for [`broadcast_region`], and `b_at(j)` describes `k` rows of `B`
/// with whole vectors readable for the tile's columns.
#[inline(always)]
unsafe fn whole_reduction<S: Simd, const MR: usize, const NV: usize>(
    g: &Broadcast,
    rows: Range<usize>,
    cols: Range<usize>,
    b_at: impl Fn(usize) -> (*const f32, usize, usize),
) {
    let nr = NV * S::LANES;
    for j in cols.clone().step_by(nr) {
        let (b, ldb, pstride) = b_at(j);
        for i in rows.clone().step_by(MR) {
            let t = Tile {
                k: g.k,
                a: Strided {
                    // SAFETY: `(i, 0)` is inside `A`.
                    p: unsafe { g.a.p.add(i * g.a.rs) },
                    ..g.a
                },
                b,
                ldb,
                pstride,
                // SAFETY: `(i, j)` is inside `C`.
                c: unsafe { g.c.add(i * g.n + j) },
                ldc: g.n,
                cols: nr.min(cols.end - j),
            };
            // SAFETY: the tile's rows and columns lie in the region; `B`'s
            // vectors are readable by the caller's contract.
            unsafe { broadcast_rows::<S, MR, NV>(&t, MR.min(rows.end - i)) };
        }
    }
}

/// Copies `kc` rows of `nc` floats (row stride `ldb`) to `dst` as panels of
/// `nr = NV·LANES` columns: panel `q` at `dst + q·KC·nr`, row `p` of it at
/// `+ p·nr`; the last panel is zero-padded to `nr`. Reads each row in order.
///
/// # Safety
/// Source rows readable; `kc <= KC` and `nc <= NC`; `dst` writable for
/// `KC·NC` floats; `S` runs here.
#[inline(always)]
unsafe fn pack_block<S: Simd, const NV: usize>(
    b: *const f32,
    ldb: usize,
    kc: usize,
    nc: usize,
    dst: *mut f32,
) {
    let (l, nr) = (S::LANES, NV * S::LANES);
    let full = nc / nr;
    // SAFETY: reads stay within `nc` floats of each row; writes within the
    // `nc.div_ceil(nr)` panels of `KC·nr` floats.
    unsafe {
        for p in 0..kc {
            let (src, dst) = (b.add(p * ldb), dst.add(p * nr));
            for q in 0..full {
                for v in 0..NV {
                    let x = S::load(src.add(q * nr + v * l));
                    S::store(dst.add(q * KC * nr + v * l), x);
                }
            }
            if full * nr < nc {
                for v in 0..NV {
                    let col = full * nr + v * l;
                    let x = S::load_part(src.add(col), nc.saturating_sub(col).min(l));
                    S::store(dst.add(full * KC * nr + v * l), x);
                }
            }
        }
    }
}

/// One micro-kernel call: `C[0..R, 0..cols] += A[0..R, 0..k] · B[0..k, 0..cols]`.
struct Tile {
    k: usize,
    a: Strided,
    /// `B`, with whole vectors readable for `cols` columns in each of `k` rows.
    b: *const f32,
    ldb: usize,
    /// Floats from one pair of `B`'s vectors to the next: `2·LANES` when `B`'s
    /// rows are contiguous, a panel's length when `B` is packed.
    pstride: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
}

/// Runs the tile with `rows` (1 to `MR <= 8`) rows.
///
/// # Safety
/// As for [`broadcast_tile`].
#[inline(always)]
unsafe fn broadcast_rows<S: Simd, const MR: usize, const NV: usize>(t: &Tile, rows: usize) {
    const { assert!(MR <= 8) };
    // SAFETY: forwarded contract.
    unsafe {
        match rows {
            1 if MR > 1 => broadcast_cols::<S, 1, NV>(t),
            2 if MR > 2 => broadcast_cols::<S, 2, NV>(t),
            3 if MR > 3 => broadcast_cols::<S, 3, NV>(t),
            4 if MR > 4 => broadcast_cols::<S, 4, NV>(t),
            5 if MR > 5 => broadcast_cols::<S, 5, NV>(t),
            6 if MR > 6 => broadcast_cols::<S, 6, NV>(t),
            7 if MR > 7 => broadcast_cols::<S, 7, NV>(t),
            _ => broadcast_cols::<S, MR, NV>(t),
        }
    }
}

/// Runs the `R`-row tile with as many vectors (1 to `NV <= 4`) as its
/// columns need.
///
/// # Safety
/// As for [`broadcast_tile`].
#[inline(always)]
unsafe fn broadcast_cols<S: Simd, const R: usize, const NV: usize>(t: &Tile) {
    const { assert!(NV <= 4) };
    // SAFETY: forwarded contract.
    unsafe {
        match t.cols.div_ceil(S::LANES) {
            1 if NV > 1 => broadcast_tile::<S, R, 1>(t),
            2 if NV > 2 => broadcast_tile::<S, R, 2>(t),
            3 if NV > 3 => broadcast_tile::<S, R, 3>(t),
            _ => broadcast_tile::<S, R, NV>(t),
        }
    }
}

/// The broadcast micro-kernel: `R`×`V` vector accumulators loaded from `C`,
/// then for each `p` one row of `B` as `V` vectors times `A[r,p]` broadcast,
/// then stored back; only the last vector may be partial (`cols`).
///
/// # Safety
/// `R` rows of `A` readable for `k` steps, `k` rows of `V` whole vectors of
/// `B`, `R` rows of `cols` floats of `C` exclusively ours, with
/// `(V-1)·LANES < cols <= V·LANES`; `S` runs on this CPU.
#[inline(always)]
unsafe fn broadcast_tile<S: Simd, const R: usize, const V: usize>(t: &Tile) {
    let l = S::LANES;
    // Lanes of the last vector; the others are whole.
    let last = t.cols - (V - 1) * l;
    // SAFETY: every access below stays within the bounds of the contract.
    unsafe {
        let mut acc = [[S::splat(0.0); V]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = S::load_n(
                    t.c.add(r * t.ldc + v * l),
                    if v + 1 == V { last } else { l },
                );
            }
        }
        let (mut a, mut b) = (t.a.p, t.b);
        for _ in 0..t.k {
            let mut bv = [S::splat(0.0); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = S::load(b.add(v / PANEL_VECTORS * t.pstride + v % PANEL_VECTORS * l));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = S::splat(*a.add(r * t.a.rs));
                for (x, &bx) in row.iter_mut().zip(&bv) {
                    *x = S::fma(ar, bx, *x);
                }
            }
            a = a.add(t.a.cs);
            b = b.add(t.ldb);
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                S::store_n(
                    t.c.add(r * t.ldc + v * l),
                    if v + 1 == V { last } else { l },
                    x,
                );
            }
        }
    }
}

/// `C[m×n] += A[m×k] · B[n×k]ᵀ`, all row-major (row stride `k` for A and B).
struct Dot {
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    k: usize,
    ldc: usize,
}

// SAFETY: as for `Broadcast`: parts read `a`, `b` and write disjoint blocks of `c`.
unsafe impl Sync for Dot {}

/// `C[rows, cols] += A[rows, :] · B[cols, :]ᵀ` in `MR`×`NR` tiles, column
/// tiles outside so that a tile's rows of `B` stay in L1 while all row tiles
/// of `A` pass.
///
/// # Safety
/// `g` describes live matrices of the right sizes; `rows` and `cols` lie in
/// `C`; no one else accesses `C[rows, cols]` meanwhile; `S` runs on this CPU.
#[inline(always)]
unsafe fn dot_region<S: Simd, const MR: usize, const NR: usize>(
    g: &Dot,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    const { assert!(MR <= 4 && NR <= 8) };
    for j in cols.clone().step_by(NR) {
        let nc = NR.min(cols.end - j);
        for i in rows.clone().step_by(MR) {
            // SAFETY: rows `i..i+mr` of A, rows `j..j+nc` of B and that block
            // of C are in bounds and ours.
            unsafe {
                let t = (
                    g,
                    g.a.add(i * g.k),
                    g.b.add(j * g.k),
                    g.c.add(i * g.ldc + j),
                );
                match MR.min(rows.end - i) {
                    1 if MR > 1 => dot_cols::<S, 1, NR>(t, nc),
                    2 if MR > 2 => dot_cols::<S, 2, NR>(t, nc),
                    3 if MR > 3 => dot_cols::<S, 3, NR>(t, nc),
                    _ => dot_cols::<S, MR, NR>(t, nc),
                }
            }
        }
    }
}

/// A dot-product tile: the product, and the first rows of A, B and C.
type DotTile<'a> = (&'a Dot, *const f32, *const f32, *mut f32);

/// Runs the `R`-row dot tile with `nc` (1 to `NR`) columns.
///
/// # Safety
/// As for [`dot_tile`].
#[inline(always)]
unsafe fn dot_cols<S: Simd, const R: usize, const NR: usize>(t: DotTile, nc: usize) {
    // SAFETY: forwarded contract.
    unsafe {
        match nc {
            1 if NR > 1 => dot_tile::<S, R, 1>(t),
            2 if NR > 2 => dot_tile::<S, R, 2>(t),
            3 if NR > 3 => dot_tile::<S, R, 3>(t),
            4 if NR > 4 => dot_tile::<S, R, 4>(t),
            5 if NR > 5 => dot_tile::<S, R, 5>(t),
            6 if NR > 6 => dot_tile::<S, R, 6>(t),
            7 if NR > 7 => dot_tile::<S, R, 7>(t),
            _ => dot_tile::<S, R, NR>(t),
        }
    }
}

/// One vector step of [`dot_tile`]: `acc[r][j] += A[r, 0..lanes] ∘ B[j, 0..lanes]`
/// lane-wise, for rows of A at `a` and of B at `b` with stride `k`.
///
/// # Safety
/// `lanes <= LANES` floats readable in each row; `S` runs on this CPU.
#[inline(always)]
unsafe fn dot_step<S: Simd, const R: usize, const N: usize>(
    acc: &mut [[S::V; N]; R],
    a: *const f32,
    b: *const f32,
    k: usize,
    lanes: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let mut av = [S::splat(0.0); R];
        for (r, x) in av.iter_mut().enumerate() {
            *x = S::load_n(a.add(r * k), lanes);
        }
        for j in 0..N {
            let bv = S::load_n(b.add(j * k), lanes);
            for (row, &ar) in acc.iter_mut().zip(&av) {
                row[j] = S::fma(ar, bv, row[j]);
            }
        }
    }
}

/// The dot-product micro-kernel: `C[r,j] += A[r,:]·B[j,:]` for an `R`×`N`
/// block, one vector of lanes per product, the last partial vector masked.
///
/// # Safety
/// `R` rows of A and `N` rows of B (stride `k`) and the block of C (stride
/// `ldc`) in bounds and ours; `S` runs on this CPU.
#[inline(always)]
unsafe fn dot_tile<S: Simd, const R: usize, const N: usize>((g, a, b, c): DotTile) {
    let (k, l) = (g.k, S::LANES);
    // SAFETY: every access below stays within the bounds of the contract.
    unsafe {
        let mut acc = [[S::splat(0.0); N]; R];
        let whole = k - k % l;
        for p in (0..whole).step_by(l) {
            dot_step::<S, R, N>(&mut acc, a.add(p), b.add(p), k, l);
        }
        if whole < k {
            dot_step::<S, R, N>(&mut acc, a.add(whole), b.add(whole), k, k - whole);
        }
        for (r, row) in acc.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                *c.add(r * g.ldc + j) += S::hsum(x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Nn,
        /// `Nn` with `B` packed.
        NnPacked,
        Tn,
        Nt,
    }
    const OPS: [Op; 4] = [Op::Nn, Op::NnPacked, Op::Tn, Op::Nt];

    /// A product's shape and operands.
    struct Case {
        op: Op,
        m: usize,
        k: usize,
        n: usize,
        a: Vec<f32>,
        b: Vec<f32>,
        c: Vec<f32>,
    }

    impl Case {
        fn new(op: Op, (m, k, n): (usize, usize, usize), seed: u64) -> Case {
            let (a, b, c) = (
                data(m * k, seed),
                data(k * n, seed + 1),
                data(m * n, seed + 2),
            );
            Case {
                op,
                m,
                k,
                n,
                a,
                b,
                c,
            }
        }

        /// `(A[i,p], B[p,j])` of the logical operands.
        fn at(&self, i: usize, j: usize, p: usize) -> (f32, f32) {
            let (m, k, n, a, b) = (self.m, self.k, self.n, &self.a, &self.b);
            match self.op {
                Op::Nn | Op::NnPacked => (a[i * k + p], b[p * n + j]),
                Op::Tn => (a[p * m + i], b[p * n + j]),
                Op::Nt => (a[i * k + p], b[j * k + p]),
            }
        }

        /// `C + op(A)·op(B)` through the public function.
        fn public(&self) -> Vec<f32> {
            let (m, k, n, a, b, mut c) = (self.m, self.k, self.n, &self.a, &self.b, self.c.clone());
            match self.op {
                Op::Nn => gemm_nn_acc(m, k, n, a, b, &mut c),
                Op::NnPacked => gemm_nn_packed_acc(m, k, n, a, &self.packed(Isa::detect()), &mut c),
                Op::Tn => gemm_tn_acc(m, k, n, a, b, &mut c),
                Op::Nt => gemm_nt_acc(m, k, n, a, b, &mut c),
            }
            c
        }

        /// `B` packed for `isa`.
        fn packed(&self, isa: Isa) -> Vec<f32> {
            let width = panel_width_for(isa);
            let mut p = vec![f32::NAN; packed_len_for(width, self.k, self.n)];
            pack_for(width, self.k, self.n, &self.b, false, &mut p);
            p
        }

        /// `C + op(A)·op(B)` with `isa` on the calling thread, one region of
        /// `C` at a time.
        fn regions(&self, isa: Isa, blocks: &[(Range<usize>, Range<usize>)]) -> Vec<f32> {
            assert!(isas().contains(&isa));
            let mut c = self.c.clone();
            let packed = self.packed(isa);
            let panels = matches!(self.op, Op::NnPacked);
            let (a, b, cp, k, n) = (
                self.a.as_ptr(),
                if panels {
                    packed.as_ptr()
                } else {
                    self.b.as_ptr()
                },
                c.as_mut_ptr(),
                self.k,
                self.n,
            );
            let strided = match self.op {
                Op::Nn | Op::NnPacked => Strided { p: a, rs: k, cs: 1 },
                Op::Tn => Strided {
                    p: a,
                    rs: 1,
                    cs: self.m,
                },
                Op::Nt => Strided { p: a, rs: k, cs: 1 },
            };
            let broadcast = Broadcast {
                a: strided,
                b,
                panels,
                c: cp,
                k,
                n,
            };
            let dot = Dot {
                a,
                b,
                c: cp,
                k,
                ldc: n,
            };
            let block = match self.op {
                Op::Nt => Block::Dot(&dot),
                _ => Block::Broadcast(&broadcast),
            };
            for (rows, cols) in blocks {
                // SAFETY: the CPU runs `isa`; the vectors match the shape; the
                // blocks are in bounds and run one after another.
                unsafe { isa.run(block, rows.clone(), cols.clone()) };
            }
            c
        }

        /// Checks `got` against an f64 reference with an error bound
        /// proportional to `k` and to the magnitudes summed.
        fn assert_close(&self, got: &[f32]) {
            let Case { op, m, k, n, .. } = *self;
            for i in 0..m {
                for j in 0..n {
                    let c0 = self.c[i * n + j];
                    let (mut s, mut mag) = (f64::from(c0), f64::from(c0.abs()));
                    for p in 0..k {
                        let (x, y) = self.at(i, j, p);
                        s += f64::from(x) * f64::from(y);
                        mag += f64::from((x * y).abs());
                    }
                    let tol = (k as f64 + 2.0) * f64::from(f32::EPSILON) * mag;
                    let e = (f64::from(got[i * n + j]) - s).abs();
                    assert!(
                        e <= tol,
                        "{op:?} m={m} k={k} n={n} at ({i},{j}): got {} want {s}, error {e:e} > {tol:e}",
                        got[i * n + j]
                    );
                }
            }
        }

        /// The documented summation order with `w` dot-product lanes, one
        /// element at a time with `f32::mul_add`: what the x86 kernels must
        /// match bit for bit.
        fn documented(&self, w: usize) -> Vec<f32> {
            let (k, n) = (self.k, self.n);
            let mut c = self.c.clone();
            for (e, c) in c.iter_mut().enumerate() {
                let (i, j) = (e / n, e % n);
                let fma = |s: f32, p: usize| {
                    let (x, y) = self.at(i, j, p);
                    x.mul_add(y, s)
                };
                if let Op::Nt = self.op {
                    let mut lanes: Vec<f32> =
                        (0..w).map(|l| (l..k).step_by(w).fold(0.0, fma)).collect();
                    while lanes.len() > 1 {
                        let half = lanes.len() / 2;
                        lanes = (0..half).map(|i| lanes[i] + lanes[i + half]).collect();
                    }
                    *c += lanes[0];
                } else {
                    *c = (0..k).fold(*c, fma);
                }
            }
            c
        }
    }

    /// The instruction sets this CPU can run.
    fn isas() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.push(Isa::Avx2);
            if is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
        }
        v
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Odd and prime sizes around the tile sizes, up to 70.
    const SIZES: [usize; 13] = [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 33, 67];

    fn shapes() -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        for &m in &SIZES {
            for &k in &SIZES {
                for &n in &SIZES {
                    v.push((m, k, n));
                }
            }
        }
        // Random shapes in 1..=70.
        let r = data(3 * 150, 99);
        for t in r.chunks_exact(3) {
            let d = |x: f32| 1 + ((x + 1.0) * 35.0) as usize;
            v.push((d(t[0]), d(t[1]), d(t[2])));
        }
        // Large ones: several k blocks, several threads, tails everywhere.
        v.extend([
            (16, 256, 1024),
            (19, 600, 530),
            (70, 257, 70),
            (256, 16, 1024),
            (3, 1000, 301),
        ]);
        v
    }

    /// The public functions are accurate and follow the documented order of
    /// the machine's instruction set exactly.
    #[test]
    fn public_functions_match_reference() {
        let best = Isa::detect();
        for (s, shape) in shapes().into_iter().enumerate() {
            for op in OPS {
                let case = Case::new(op, shape, 3 * s as u64);
                let got = case.public();
                case.assert_close(&got);
                if best != Isa::Portable {
                    assert_eq!(
                        bits(&got),
                        bits(&case.documented(best.shape().lanes)),
                        "{op:?} {shape:?}"
                    );
                }
            }
        }
    }

    /// Every instruction set the CPU has: the x86 ones follow the documented
    /// order exactly, the portable one is accurate.
    #[test]
    fn every_instruction_set_matches_reference() {
        for isa in isas() {
            for (s, shape @ (m, _, n)) in shapes().into_iter().enumerate() {
                for op in OPS {
                    let case = Case::new(op, shape, 5 * s as u64);
                    let got = case.regions(isa, &[(0..m, 0..n)]);
                    if let Op::NnPacked = op {
                        let row_major = Case { op: Op::Nn, ..case };
                        let want = row_major.regions(isa, &[(0..m, 0..n)]);
                        assert_eq!(bits(&got), bits(&want), "{isa:?} packed {shape:?}");
                        continue;
                    }
                    if isa == Isa::Portable {
                        case.assert_close(&got);
                    } else {
                        assert_eq!(
                            bits(&got),
                            bits(&case.documented(isa.shape().lanes)),
                            "{isa:?} {op:?} {shape:?}"
                        );
                    }
                }
            }
        }
    }

    /// Any cut of `C` into blocks (even ones that split tiles) gives the same
    /// bits as the pool, which gives the same bits from any thread, every time.
    #[test]
    fn bitwise_deterministic_across_splits_threads_and_repeats() {
        let cut = |len: usize, parts: usize| -> Vec<Range<usize>> {
            (0..parts)
                .map(|p| p * len / parts..(p + 1) * len / parts)
                .collect()
        };
        for shape @ (m, _, n) in [
            (16, 256, 1024),
            (37, 300, 211),
            (256, 16, 1024),
            (5, 77, 900),
            (64, 64, 64),
        ] {
            for op in OPS {
                let case = Case::new(op, shape, 1);
                let want = bits(&case.public());
                for _ in 0..3 {
                    assert_eq!(
                        bits(&case.public()),
                        want,
                        "{op:?} {shape:?}: repeat differs"
                    );
                }
                let other =
                    std::thread::scope(|s| s.spawn(|| bits(&case.public())).join().unwrap());
                assert_eq!(other, want, "{op:?} {shape:?}: another thread differs");
                // A packed `B`'s regions start on a panel.
                let align = match op {
                    Op::NnPacked => panel_width(),
                    _ => 1,
                };
                let cols = |parts: usize| -> Vec<Range<usize>> {
                    let at = |p: usize| (p * n / parts / align * align).min(n);
                    (0..parts)
                        .map(|p| at(p)..if p + 1 == parts { n } else { at(p + 1) })
                        .collect()
                };
                for (rp, cp) in [(1, 1), (1, 3), (3, 1), (2, 5), (7, 2)] {
                    let blocks: Vec<_> = cut(m, rp)
                        .into_iter()
                        .flat_map(|r| cols(cp).into_iter().map(move |c| (r.clone(), c)))
                        .collect();
                    let got = case.regions(Isa::detect(), &blocks);
                    assert_eq!(
                        bits(&got),
                        want,
                        "{op:?} {shape:?}: split {rp}x{cp} differs"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_shapes_do_nothing() {
        for op in OPS {
            for shape in [(2, 0, 3), (0, 4, 3), (2, 4, 0)] {
                let case = Case::new(op, shape, 1);
                assert_eq!(case.public(), case.c);
            }
        }
    }

    #[test]
    fn non_finite_values_propagate() {
        for op in OPS {
            let mut case = Case::new(op, (5, 9, 17), 1);
            // Element 0 of A is A[0,0] in all three layouts.
            case.a[0] = f32::INFINITY;
            let got = case.public();
            assert!(
                got[..17].iter().all(|x| x.is_infinite() || x.is_nan()),
                "{op:?}"
            );
            assert!(got[17..].iter().all(|x| x.is_finite()), "{op:?}");
        }
    }

    #[test]
    #[should_panic(expected = "gemm_nn_acc: m=2 k=3 n=4")]
    fn nn_panics_naming_sizes() {
        gemm_nn_acc(2, 3, 4, &[0.0; 6], &[0.0; 11], &mut [0.0; 8]);
    }

    #[test]
    #[should_panic(expected = "gemm_nn_packed_acc: m=2 k=3 n=4")]
    fn nn_packed_panics_naming_sizes() {
        let panels = vec![0.0; packed_len(3, 4)];
        gemm_nn_packed_acc(2, 3, 4, &[0.0; 5], &panels, &mut [0.0; 8]);
    }

    #[test]
    #[should_panic(expected = "gemm_nn_packed_acc: m=2 k=3 n=4")]
    fn nn_packed_panics_on_short_panels() {
        let panels = vec![0.0; packed_len(3, 4) - 1];
        gemm_nn_packed_acc(2, 3, 4, &[0.0; 6], &panels, &mut [0.0; 8]);
    }

    #[test]
    #[should_panic(expected = "pack_b: a 3×4 matrix needs 12 floats")]
    fn pack_panics_naming_sizes() {
        pack_b(3, 4, &[0.0; 11], &mut vec![0.0; packed_len(3, 4)]);
    }

    #[test]
    #[should_panic(expected = "pack_bt: a 4×3 matrix needs 12 floats")]
    fn pack_transposed_panics_naming_sizes() {
        pack_bt(3, 4, &[0.0; 13], &mut vec![0.0; packed_len(3, 4)]);
    }

    /// Panels are whole and zero-padded, whatever the buffer held.
    #[test]
    fn packing_writes_whole_padded_panels() {
        let nr = panel_width();
        for (k, n) in [(1, 1), (3, nr), (5, nr + 1), (7, 3 * nr - 1)] {
            let len = packed_len(k, n);
            assert_eq!(len, k * n.div_ceil(nr) * nr);
            let mut p = vec![f32::NAN; len];
            let b = data(k * n, 1);
            pack_b(k, n, &b, &mut p);
            for r in 0..k {
                for j in 0..n.div_ceil(nr) * nr {
                    let want = if j < n { b[r * n + j] } else { 0.0 };
                    assert_eq!(p[j / nr * k * nr + r * nr + j % nr], want);
                }
            }
        }
    }

    /// Packing the transpose of `Bᵀ` is packing `B`.
    #[test]
    fn transposed_packing_is_packing_the_transpose() {
        let nr = panel_width();
        for (k, n) in [(1, 1), (4, nr + 3), (9, 2 * nr)] {
            let b = data(k * n, 7);
            let bt: Vec<f32> = (0..n * k).map(|e| b[e % k * n + e / k]).collect();
            let (mut p, mut q) = (vec![1.0; packed_len(k, n)], vec![2.0; packed_len(k, n)]);
            pack_b(k, n, &b, &mut p);
            pack_bt(k, n, &bt, &mut q);
            assert_eq!(bits(&p), bits(&q), "{k}×{n}");
        }
    }

    #[test]
    #[should_panic(expected = "gemm_tn_acc: m=2 k=3 n=4")]
    fn tn_panics_naming_sizes() {
        gemm_tn_acc(2, 3, 4, &[0.0; 6], &[0.0; 12], &mut [0.0; 7]);
    }

    #[test]
    #[should_panic(expected = "gemm_nt_acc: m=2 k=3 n=4")]
    fn nt_panics_naming_sizes() {
        gemm_nt_acc(2, 3, 4, &[0.0; 5], &[0.0; 12], &mut [0.0; 8]);
    }
}
