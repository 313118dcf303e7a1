//! The dynamic program of the planning model, as a table over `(t, m)`.
//!
//! `Q(t, m) = min(E, H(y), I(y))` is a min-plus recursion: for a fixed
//! column `m`, the `H` candidates are `P[y] + R[y]` with `P[y] = Q(y, m) + y`
//! non-decreasing and `R[y] = Q(t - y, m - 1)` non-increasing in `y` (the `I`
//! candidates have the same shape). MSM's `Q` is not convex in `t`, so the
//! split point is not monotone and pointer tricks are not exact; instead the
//! search is a branch and bound over ranges of `y`: on `[a, b]` every
//! candidate is at least `P[a] + R[b]`, so a range whose bound is no better
//! than the best found so far is skipped whole, and the rest is scanned in
//! short vectorised leaves. The result is exact (property tests compare it
//! with the brute-force recursion) and visits a small fraction of the `y`.
//!
//! Costs are stored saturated at [`COST_CAP`]: every candidate whose true cost
//! is below the cap is computed exactly, so a saturated entry only ever means
//! "at least the cap".

use super::choice::Choice;
use crate::error::Error;
use crate::policy::Policy;
use crate::units::{Alpha, Ticks};

/// Costs at or above this many forward steps are reported as too expensive.
pub const COST_CAP: u32 = 1 << 30;

/// The largest table, in `(t, m)` cells, that the planner builds.
pub const MAX_CELLS: u64 = 600_000_000;

/// Leaves of the branch and bound at most this long are scanned directly.
const LEAF: usize = 48;

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
        let mut table = Table {
            policy,
            alpha,
            len,
            budget,
            cost_plus_t: vec![0; rows * cols],
            choice: vec![0; rows * cols],
        };
        table.fill(rows, cols);
        Ok(table)
    }

    fn fill(&mut self, rows: usize, cols: usize) {
        let hidden = self.alpha.hidden().0 as usize;
        let tape = self.alpha.tape().0 as usize;
        let (use_h, use_i) = (self.policy.allows_hidden(), self.policy.allows_tape());
        // `reversed[m][j] = Q(len - j, m)`, so that `Q(t - y, m)` runs forwards in `y`.
        let mut reversed = vec![0u32; rows * cols];
        for m in 0..cols {
            let column = &mut self.cost_plus_t[m * rows..(m + 1) * rows];
            let choices = &mut self.choice[m * rows..(m + 1) * rows];
            let (mut last_h, mut last_i) = (1usize, 1usize);
            column[0] = 0;
            choices[0] = Choice::End.pack();
            for t in 1..rows {
                // Enough memory for every tape but the last: store-all, Q = t.
                if use_i && m >= tape * (t - 1) {
                    column[t] = 2 * t as u32;
                    choices[t] = if t == 1 { Choice::End } else { Choice::Tape(1) }.pack();
                    continue;
                }
                let mut best = column[t - 1] + 1;
                let mut pick = Choice::End;
                if use_h && m >= hidden && t > 1 {
                    let right = &reversed[(m - hidden) * rows + rows - 1 - t..][..t];
                    // candidate(y) = P[y] + R[y], y in 1..t, P = this column.
                    if let Some(y) = min_plus(&column[..t], right, 1, t - 1, last_h, &mut best) {
                        pick = Choice::Hidden(y as u32);
                        last_h = y;
                    }
                }
                if use_i && m >= tape && t > 1 {
                    let right = &reversed[(m - tape) * rows + rows - t..][..t - 1];
                    // candidate(y) = P[y-1] + 1 + R[y-1]: search j = y - 1 in 0..t-1
                    // against best - 1.
                    let mut shifted = best - 1;
                    let guess = last_i.saturating_sub(1);
                    if let Some(j) =
                        min_plus(&column[..t - 1], right, 0, t - 2, guess, &mut shifted)
                    {
                        best = shifted + 1;
                        pick = Choice::Tape(j as u32 + 1);
                        last_i = j + 1;
                    }
                }
                column[t] = saturate(best) + t as u32;
                choices[t] = pick.pack();
            }
            let rev = &mut reversed[m * rows..(m + 1) * rows];
            for (j, slot) in rev.iter_mut().enumerate() {
                let t = rows - 1 - j;
                *slot = column[t] - t as u32;
            }
        }
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
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the table is empty (never: lengths start at 1).
    pub fn is_empty(&self) -> bool {
        false
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

fn saturate(q: u32) -> u32 {
    q.min(COST_CAP)
}

/// Finds `min over j in lo..=hi of p[j] + r[j]` if it is below `*best`, where
/// `p` is non-decreasing and `r` non-increasing; updates `*best` and returns
/// the arg-min. `guess` is tried first to tighten the bound early.
fn min_plus(
    p: &[u32],
    r: &[u32],
    lo: usize,
    hi: usize,
    guess: usize,
    best: &mut u32,
) -> Option<usize> {
    let mut arg = None;
    let guess = guess.clamp(lo, hi);
    let seed = p[guess] + r[guess];
    if seed < *best {
        *best = seed;
        arg = Some(guess);
    }
    bound(p, r, lo, hi, best, &mut arg);
    arg
}

fn bound(p: &[u32], r: &[u32], lo: usize, hi: usize, best: &mut u32, arg: &mut Option<usize>) {
    if p[lo] + r[hi] >= *best {
        return;
    }
    if hi - lo < LEAF {
        let min = p[lo..=hi]
            .iter()
            .zip(&r[lo..=hi])
            .map(|(a, b)| a + b)
            .min()
            .expect("a leaf is never empty");
        if min < *best {
            *best = min;
            *arg = (lo..=hi).find(|&j| p[j] + r[j] == min);
        }
        return;
    }
    let mid = lo + (hi - lo) / 2;
    if p[lo] + r[mid] <= p[mid + 1] + r[hi] {
        bound(p, r, lo, mid, best, arg);
        bound(p, r, mid + 1, hi, best, arg);
    } else {
        bound(p, r, mid + 1, hi, best, arg);
        bound(p, r, lo, mid, best, arg);
    }
}
