//! The dynamic program of the planning model, as a table over `(t, m)`.
//!
//! Columns are filled in order of `m`, each from `t = 1` up. Every cell is a
//! min-plus search: `Q(t, m) = min(E, H(y), I(y))` where the `H` candidates
//! are `P(y) + R(t - y)` with `P(y) = Q(y, m) + y` (this column, rows below
//! `t`) and `R = Q(., m - h)` (an earlier column); the `I` candidates have the
//! same shape with `Q(y - 1, m) + y` and `R = Q(., m - a)`. MSM's `Q` is not
//! convex in `t`, so the split point is not monotone and pointer tricks are not
//! exact; the search is a branch and bound over the split points instead.
//!
//! Its nodes are aligned blocks of `s = t - y` (the length of the right part)
//! of every power-of-two size from `2^LEAF_LOG` up. Besides the costs, the
//! table keeps for every column and every aligned block the least and the
//! greatest difference `Q(s + 1, m) - Q(s, m)` inside it. Over a node's range
//! of `y`, those extreme slopes give each of `P` and `R` a lower envelope: the
//! upper of the two lines through the range's end points with the least and
//! the greatest slope. The sum of the envelopes is convex with at most two
//! kinks, so its least value on the integers is at an end or next to a kink;
//! it bounds every candidate of the node from below, and a node whose bound is
//! no better than the best candidate so far is skipped whole. Only the slopes'
//! extremes enter the bound, never convexity, so the search is exact; and the
//! bound is tight wherever `P` and `R` each bend at most once in the node:
//! `Q` is piecewise linear with few pieces in most columns, so most searches
//! end at the root. The end points of every node visited are tried as
//! candidates, the previous row's split points are tried first, and the
//! smallest nodes that survive are scanned whole. Property tests compare the
//! table with the brute-force recursion.
//!
//! Large tables are filled by two threads taking alternate columns: column `m`
//! reads only columns `m - h` and `m - a`, and at row `t` only their rows
//! below `t`, so a thread waits until the columns it reads have published
//! enough rows. A new difference widens its smallest block at once and the
//! larger ones when that block is complete, so a reader takes the smallest
//! block at the end of its range with the larger one; extremes only ever
//! widen, so what a reader sees covers every difference it needs.
//!
//! Costs are stored saturated at [`COST_CAP`]: every candidate whose true cost
//! is below the cap is computed exactly, so a saturated entry only ever means
//! "at least the cap", and `Q` stays non-decreasing in `t`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::thread;

use super::choice::Choice;
use crate::error::Error;
use crate::policy::Policy;
use crate::units::{Alpha, Ticks};

/// Costs at or above this many forward steps are reported as too expensive.
pub const COST_CAP: u32 = 1 << 30;

/// The largest table, in `(t, m)` cells, that the planner builds.
pub const MAX_CELLS: u64 = 600_000_000;

/// The smallest blocks of the branch and bound hold `2^LEAF_LOG` split points.
const LEAF_LOG: u32 = 4;

/// Tables of at least this many cells are filled by two threads.
const PARALLEL_CELLS: usize = 1 << 16;

/// The cost and arg-min tables of one policy for every `t <= len` and
/// `m <= budget`.
#[derive(Debug, Clone)]
pub struct Table {
    policy: Policy,
    alpha: Alpha,
    len: u32,
    budget: Ticks,
    /// `Q(t, m) + t`, column-major: `[m * (len + 1) + t]`.
    cost_plus_t: Vec<u32>,
    /// Packed [`Choice`], same layout.
    choice: Vec<u32>,
}

impl Table {
    /// Runs the dynamic program of `policy` (HSM, ISM or MSM) for every length
    /// up to `len` and every budget up to `budget`.
    pub fn build(policy: Policy, alpha: Alpha, len: u32, budget: Ticks) -> Result<Self, Error> {
        assert!(policy.is_dynamic(), "{policy} is not a dynamic program");
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        if len > super::MAX_LEN {
            return Err(Error::TooLong(u64::from(len)));
        }
        let rows = len as usize + 1;
        let cols = budget.0 as usize + 1;
        let cells = rows as u64 * cols as u64;
        if cells > MAX_CELLS {
            return Err(Error::TableTooLarge {
                cells,
                max: MAX_CELLS,
            });
        }
        super::memory::ensure_fits(
            || format!("the {policy} table of {rows} x {cols} cells"),
            super::memory::table_bytes(cells),
        )?;
        let mut choice = vec![0; rows * cols];
        let cost_plus_t = fill(policy, alpha, rows, cols, &mut choice);
        Ok(Table {
            policy,
            alpha,
            len,
            budget,
            cost_plus_t,
            choice,
        })
    }

    /// The policy this table plans for.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The tape-to-state ratio used.
    pub fn alpha(&self) -> Alpha {
        self.alpha
    }

    /// The longest segment the table answers.
    pub fn max_len(&self) -> u32 {
        self.len
    }

    /// The largest budget the table answers.
    pub fn budget(&self) -> Ticks {
        self.budget
    }

    fn index(&self, t: u32, m: Ticks) -> usize {
        assert!(
            t <= self.len && m <= self.budget,
            "table asked for ({t}, {}) beyond ({}, {})",
            m.0,
            self.len,
            self.budget.0
        );
        m.0 as usize * (self.len as usize + 1) + t as usize
    }

    /// `Q(t, m)`: the least number of forward steps, or `None` when it is at
    /// least [`COST_CAP`].
    pub fn cost(&self, t: u32, m: Ticks) -> Option<u64> {
        let q = self.cost_plus_t[self.index(t, m)] - t;
        (q < COST_CAP).then_some(u64::from(q))
    }

    /// `D(t, m)`: the first move of an optimal schedule.
    pub fn choice(&self, t: u32, m: Ticks) -> Choice {
        Choice::unpack(self.choice[self.index(t, m)])
    }
}

/// The state of a fill shared by its threads. Column `m` is written by one
/// thread only, which publishes in `progress[m]` how many of its rows are
/// final; its costs below that row never change again, and its block
/// extremes only widen, so a reader's view of them stays sound.
struct Shared {
    rows: usize,
    hidden: usize,
    tape: usize,
    use_h: bool,
    use_i: bool,
    blocks: Blocks,
    /// `Q(t, m) + t`, column-major.
    costs: Vec<AtomicU32>,
    /// Packed block [`Extremes`] of every column.
    slopes: Vec<AtomicU64>,
    /// The rows of each column already filled.
    progress: Vec<AtomicUsize>,
    /// Set when a thread panics, so that the others stop waiting for it.
    failed: AtomicBool,
}

/// Sets [`Shared::failed`] if its thread unwinds.
struct PanicFlag<'a>(&'a AtomicBool);

impl Drop for PanicFlag<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

impl Shared {
    /// Fills the given columns, in order; `choices` is each one's arg-min column.
    fn fill_lane(&self, lane: Vec<(usize, &mut [u32])>) {
        let _flag = PanicFlag(&self.failed);
        let mut p = vec![0; self.rows];
        let mut own = vec![EMPTY; self.blocks.len];
        for (m, choices) in lane {
            own.fill(EMPTY);
            self.fill_column(m, choices, &mut p, &mut own);
        }
    }

    /// Column `k`, once `rows` of its rows are final.
    fn column(&self, k: usize, rows: usize) -> Column<'_> {
        let progress = &self.progress[k];
        while progress.load(Ordering::Acquire) < rows {
            assert!(
                !self.failed.load(Ordering::Relaxed),
                "a table thread panicked"
            );
            thread::yield_now();
        }
        Column {
            costs: &self.costs[k * self.rows..][..self.rows],
            slopes: &self.slopes[k * self.blocks.len..][..self.blocks.len],
        }
    }

    /// Fills column `m` into `p` (`Q + t`), `own` (its block extremes) and
    /// `choices`, publishing each row.
    fn fill_column(&self, m: usize, choices: &mut [u32], p: &mut [u32], own: &mut [Extremes]) {
        let (rows, blocks) = (self.rows, &self.blocks);
        let costs = &self.costs[m * rows..][..rows];
        let slopes = &self.slopes[m * blocks.len..][..blocks.len];
        let (mut last_h, mut last_i) = (1usize, 1usize);
        p[0] = 0;
        choices[0] = Choice::End.pack();
        for t in 1..rows {
            // Enough memory for every tape but the last: store-all, Q = t.
            let (q, pick) = if self.use_i && m >= self.tape * (t - 1) {
                (t as u32, if t == 1 { Choice::End } else { Choice::Tape(1) })
            } else {
                let mut best = Best {
                    cost: p[t - 1] + 1,
                    choice: Choice::End,
                };
                // H(y) = P(y) + R(t - y) for y in 1..t; I(y) = (Q(y - 1, m) + y - 1)
                // + R(t - 1 - (y - 1)) + 1, searched as j = y - 1 in 0..t-1.
                let searches = [
                    (self.use_h && m >= self.hidden && t > 1).then(|| {
                        let r = self.column(m - self.hidden, t);
                        (
                            Search::new(blocks, &p[..t], own, r, Kind::Hidden),
                            1,
                            last_h,
                        )
                    }),
                    (self.use_i && m >= self.tape && t > 1).then(|| {
                        let r = self.column(m - self.tape, t);
                        (
                            Search::new(blocks, &p[..t - 1], own, r, Kind::Tape),
                            0,
                            last_i - 1,
                        )
                    }),
                ];
                // The previous row's split points first, to start with a low bound.
                for (search, lo, guess) in searches.iter().flatten() {
                    search.try_at(*guess.max(lo), &mut best);
                }
                for (search, lo, _) in searches.iter().flatten() {
                    search.run(*lo, &mut best);
                }
                match best.choice {
                    Choice::Hidden(y) => last_h = y as usize,
                    Choice::Tape(y) => last_i = y as usize,
                    Choice::End => {}
                }
                (saturate(best.cost), best.choice)
            };
            p[t] = q + t as u32;
            choices[t] = pick.pack();
            costs[t].store(p[t], Ordering::Relaxed);
            if t > 1 {
                let previous = p[t - 1] - (t as u32 - 1);
                blocks.record(own, slopes, t - 2, q - previous);
            }
            self.progress[m].store(t + 1, Ordering::Release);
        }
        // Readers never need this last merge (see `Search::may_beat`): it only
        // completes the column's larger blocks.
        blocks.close(own, slopes, rows.saturating_sub(3));
    }
}

/// A column being or done being filled: its costs `Q + t` and block extremes.
struct Column<'a> {
    costs: &'a [AtomicU32],
    slopes: &'a [AtomicU64],
}

impl Column<'_> {
    /// `Q(s)`.
    fn cost(&self, s: usize) -> u32 {
        self.costs[s].load(Ordering::Relaxed) - s as u32
    }
}

/// Packs extremes into one atomic word.
fn pack([lo, hi]: Extremes) -> u64 {
    u64::from(lo) | u64::from(hi) << 32
}

/// The inverse of [`pack`].
fn unpack(word: u64) -> Extremes {
    [word as u32, (word >> 32) as u32]
}

/// Fills the costs `Q(t, m) + t` (returned) and the packed choices of every
/// cell of a `rows` by `cols` table, column-major.
fn fill(policy: Policy, alpha: Alpha, rows: usize, cols: usize, choice: &mut [u32]) -> Vec<u32> {
    let blocks = Blocks::new(rows);
    let shared = Shared {
        rows,
        hidden: alpha.hidden().0 as usize,
        tape: alpha.tape().0 as usize,
        use_h: policy.allows_hidden(),
        use_i: policy.allows_tape(),
        costs: (0..rows * cols).map(|_| AtomicU32::new(0)).collect(),
        slopes: (0..blocks.len * cols)
            .map(|_| AtomicU64::new(pack(EMPTY)))
            .collect(),
        blocks,
        progress: (0..cols).map(|_| AtomicUsize::new(0)).collect(),
        failed: AtomicBool::new(false),
    };
    let lanes = if rows * cols >= PARALLEL_CELLS && cols > 1 {
        thread::available_parallelism().map_or(1, |n| n.get().min(2))
    } else {
        1
    };
    let mut work: Vec<Vec<(usize, &mut [u32])>> = (0..lanes).map(|_| Vec::new()).collect();
    for (m, choices) in choice.chunks_mut(rows).enumerate() {
        work[m % lanes].push((m, choices));
    }
    thread::scope(|scope| {
        for lane in work {
            scope.spawn(|| shared.fill_lane(lane));
        }
    });
    shared
        .costs
        .into_iter()
        .map(AtomicU32::into_inner)
        .collect()
}

/// Caps a cost at [`COST_CAP`].
fn saturate(q: u32) -> u32 {
    q.min(COST_CAP)
}

/// The least and the greatest of a block's differences.
type Extremes = [u32; 2];

/// The extremes of a block with no differences yet.
const EMPTY: Extremes = [u32::MAX, 0];

/// The layout of block extremes over one column's differences
/// `d(e) = Q(e + 2, m) - Q(e + 1, m)`: for every level `k` from [`LEAF_LOG`]
/// up, the aligned blocks `e` in `[i 2^k, (i + 1) 2^k)`. (`Q(1) - Q(0)` is left
/// out: no split point needs it, and it would spoil the root's slopes.)
struct Blocks {
    /// Where each level starts, level `LEAF_LOG + n` at `offsets[n]`.
    offsets: Vec<usize>,
    /// The number of blocks per column.
    len: usize,
}

impl Blocks {
    /// The layout for a column of `rows` rows.
    fn new(rows: usize) -> Self {
        let mut offsets = Vec::new();
        let mut len = 0;
        let mut k = LEAF_LOG;
        loop {
            offsets.push(len);
            len += rows.div_ceil(1 << k);
            if 1 << k >= rows {
                break;
            }
            k += 1;
        }
        Blocks { offsets, len }
    }

    /// Where the level-`k` block holding difference `e` is kept.
    fn slot(&self, k: u32, e: usize) -> usize {
        self.offsets[(k - LEAF_LOG) as usize] + (e >> k)
    }

    /// Records difference `e` (differences arrive in order of `e`) in
    /// `extremes` and its copy `shared`. Only its smallest block is updated at
    /// once; a finished smallest block is merged into the larger ones, see
    /// [`Blocks::close`].
    fn record(&self, extremes: &mut [Extremes], shared: &[AtomicU64], e: usize, diff: u32) {
        let i = self.slot(LEAF_LOG, e);
        let [lo, hi] = extremes[i];
        extremes[i] = [lo.min(diff), hi.max(diff)];
        shared[i].store(pack(extremes[i]), Ordering::Relaxed);
        if (e + 1).is_multiple_of(1 << LEAF_LOG) {
            self.close(extremes, shared, e);
        }
    }

    /// Merges the smallest block holding difference `e` into every larger block.
    fn close(&self, extremes: &mut [Extremes], shared: &[AtomicU64], e: usize) {
        let [lo, hi] = extremes[self.slot(LEAF_LOG, e)];
        for k in LEAF_LOG + 1..LEAF_LOG + self.offsets.len() as u32 {
            let i = self.slot(k, e);
            extremes[i] = [extremes[i][0].min(lo), extremes[i][1].max(hi)];
            shared[i].store(pack(extremes[i]), Ordering::Relaxed);
        }
    }

    /// The extremes of the level-`k` block holding difference `e`.
    fn get(&self, extremes: &[Extremes], k: u32, e: usize) -> Extremes {
        extremes[self.slot(k, e)]
    }

    /// [`Blocks::get`] on a shared copy.
    fn load(&self, shared: &[AtomicU64], k: u32, e: usize) -> Extremes {
        unpack(shared[self.slot(k, e)].load(Ordering::Relaxed))
    }
}

/// The kind of split a search looks for.
#[derive(Clone, Copy)]
enum Kind {
    /// `H(y)`, searched at `j = y`.
    Hidden,
    /// `I(y)`, searched at `j = y - 1`: its candidates cost one more.
    Tape,
}

impl Kind {
    /// The choice splitting at `j`.
    fn choice(self, j: usize) -> Choice {
        match self {
            Kind::Hidden => Choice::Hidden(j as u32),
            Kind::Tape => Choice::Tape(j as u32 + 1),
        }
    }

    /// What a candidate costs beyond `p[j] + R(c - j)`.
    fn extra(self) -> u32 {
        match self {
            Kind::Hidden => 0,
            Kind::Tape => 1,
        }
    }
}

/// The best candidate of a cell so far.
struct Best {
    cost: u32,
    choice: Choice,
}

/// One min-plus search over `j`: the least `p[j] + R(c - j)` (plus the
/// kind's extra) where `p[j] = Q(j, m) + j` is the column being filled, `j` in
/// `lo..c`.
struct Search<'a> {
    blocks: &'a Blocks,
    p: &'a [u32],
    /// The block extremes of `Q(., m)`, complete up to `p`'s end but for the
    /// smallest block there.
    p_slopes: &'a [Extremes],
    /// The column `R`, final at least below row `c`.
    r: Column<'a>,
    c: usize,
    kind: Kind,
}

impl<'a> Search<'a> {
    /// A search over `j < p.len()`, with `c = p.len()`.
    fn new(
        blocks: &'a Blocks,
        p: &'a [u32],
        p_slopes: &'a [Extremes],
        r: Column<'a>,
        kind: Kind,
    ) -> Self {
        Search {
            blocks,
            p,
            p_slopes,
            r,
            c: p.len(),
            kind,
        }
    }

    /// Lowers `best` to the least candidate over `j` in `lo..c` (`lo <= 1`)
    /// if that is lower.
    fn run(&self, lo: usize, best: &mut Best) {
        self.try_at(lo, best);
        if self.c >= 2 {
            let top = (self.c - 1)
                .next_power_of_two()
                .trailing_zeros()
                .max(LEAF_LOG);
            self.visit(top, 0, best);
        }
    }

    /// The candidate splitting at `j`.
    fn candidate(&self, j: usize) -> u32 {
        let s = self.c - j;
        self.p[j] + self.r.cost(s) + self.kind.extra()
    }

    /// Lowers `best` to the candidate splitting at `j` if that is lower.
    fn try_at(&self, j: usize, best: &mut Best) {
        let v = self.candidate(j);
        if v < best.cost {
            *best = Best {
                cost: v,
                choice: self.kind.choice(j),
            };
        }
    }

    /// Searches the node of level `k` holding `s - 1` in `[i 2^k, (i + 1) 2^k)`,
    /// clipped to `1..c`.
    fn visit(&self, k: u32, i: usize, best: &mut Best) {
        let s0 = (i << k) + 1;
        let s1 = ((i + 1) << k).min(self.c - 1);
        if s0 > s1 {
            return;
        }
        let (jl, jh) = (self.c - s1, self.c - s0);
        self.try_at(jl, best);
        self.try_at(jh, best);
        if jh - jl <= 1 || !self.may_beat(k, jl, jh, best.cost) {
            return;
        }
        if k == LEAF_LOG {
            for j in jl + 1..jh {
                self.try_at(j, best);
            }
            return;
        }
        self.visit(k - 1, 2 * i + 1, best);
        self.visit(k - 1, 2 * i, best);
    }

    /// Whether some `j` strictly between `jl` and `jh`, in a node of level `k`,
    /// may have a candidate below `best`; `false` only when none can.
    fn may_beat(&self, k: u32, jl: usize, jh: usize, best: u32) -> bool {
        let blocks = self.blocks;
        // `p`'s differences over `jl..=jh` are `Q`'s plus one, at `e = jl - 1 ..= jh - 2`:
        // in at most two blocks of level `k`, the last maybe not yet merged.
        let [p_lo, p_hi] = [
            blocks.get(self.p_slopes, k, jl - 1),
            blocks.get(self.p_slopes, k, jh - 2),
            blocks.get(self.p_slopes, LEAF_LOG, jh - 2),
        ]
        .into_iter()
        .fold(EMPTY, |[lo, hi], [l, h]| [lo.min(l), hi.max(h)]);
        // `R`'s differences over `s` in `c - jh ..= c - jl`, at `e = s - 1`, lie in
        // one block of level `k`, maybe not yet merged at its end.
        let [r_lo, r_hi] = [
            blocks.load(self.r.slopes, k, self.c - jh - 1),
            blocks.load(self.r.slopes, LEAF_LOG, self.c - jl - 2),
        ]
        .into_iter()
        .fold(EMPTY, |[lo, hi], [l, h]| [lo.min(l), hi.max(h)]);
        let (a, amax) = (i64::from(p_lo) + 1, i64::from(p_hi) + 1);
        let (b, bmax) = (i64::from(r_lo), i64::from(r_hi));
        let (p0, p1) = (i64::from(self.p[jl]), i64::from(self.p[jh]));
        let r_at = |j: usize| i64::from(self.r.cost(self.c - j));
        let (r0, r1) = (r_at(jl), r_at(jh));
        let len = (jh - jl) as i64;
        // Lower envelopes at `j = jl + u`; `g(0)` and `g(len)` are the tried ends.
        let g = |u: i64| {
            (p0 + a * u).max(p1 - amax * (len - u)) + (r1 + b * (len - u)).max(r0 - bmax * u)
        };
        let best = i64::from(best) - i64::from(self.kind.extra());
        let below = |u: i64| g(u) < best || g((u + 1).min(len)) < best;
        (amax > a && below((p0 - p1 + amax * len) / (amax - a)))
            || (bmax > b && below((r0 - r1 - b * len) / (bmax - b)))
    }
}
