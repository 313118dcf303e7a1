//! Time-weighted planning: the planning model's dynamic program with every
//! operation weighted by what it costs on a real cell.
//!
//! The unit model counts forward steps. A real iteration also pays for the
//! backward steps (a constant `T b`), for a forward step that keeps its tape
//! (`f*`, a little more than `f`), for storing a hidden state (a copy `c`) and
//! for restoring the running state from a checkpoint: a copy from a stored
//! hidden state (or `h[0]`), or rebuilding it from a stored tape (`r`). With
//! measured [`Weights`], `W(t, m, k)` is the least time to backpropagate a
//! segment of `t` steps with `m` free ticks whose start state is stored as `k`
//! (a hidden state or a tape) and already in the running buffer:
//!
//! ```text
//! W(0, m, k) = 0
//! E    : (t-1) f + f* + b + [t > 1] (r_k + W(t-1, m, k))
//! H(y) : y f + c + W(t-y, m-h, Hidden) + r_k + W(y, m, k)          1 <= y < t
//! I(y) : (y-1) f + f* + W(t-y, m-a, Tape) + b + [y > 1] (r_k + W(y-1, m, k))
//! ```
//!
//! This is exactly the time of the operations that [`Schedule::from_plan`]
//! emits (a segment's left part restores its start from where it is stored;
//! the right part of a split starts where its checkpoint was just written),
//! minus the one restore of `h[0]` and the fixed per-iteration set-up. With
//! unit weights (`f = f* = 1`, everything else free) `W` is the unit model's
//! `Q`, which the tests check against [`Table`](super::Table).
//!
//! The table is filled by a straightforward `O(T^2 m)` search over every split
//! point (the branch and bound of [`Table`](super::Table) relies on integer
//! slopes), over the same memory discretisation in ticks: `T = 1000` with
//! `m = 600` plans in about a second in a release build.
//!
//! [`Schedule::from_plan`]: crate::Schedule::from_plan

use std::sync::Arc;

use serde::Serialize;

use super::choice::Choice;
use crate::error::Error;
use crate::policy::Policy;
use crate::units::{Alpha, Ticks};

/// The largest weighted table, in `(t, m)` cells, that the planner builds.
pub const WEIGHTED_MAX_CELLS: u64 = 20_000_000;

/// Measured costs of a cell's primitives, in any one unit of time.
///
/// Negative or non-finite weights count as zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weights {
    /// A forward step `F`.
    pub forward: f64,
    /// A forward step keeping its tape `F*`.
    pub forward_tape: f64,
    /// A backward step (with the read-out's loss and the state rebuilt from
    /// the tape): the same count in every schedule, so it never changes a
    /// choice, but it makes `W` a time.
    pub backward: f64,
    /// Copying a hidden state: storing the running state, or restoring it
    /// from a stored hidden state or `h[0]`.
    pub copy: f64,
    /// Restoring the running state from a stored tape.
    pub from_tape: f64,
}

impl Weights {
    /// The unit model: a forward step costs 1 with or without its tape, and
    /// nothing else costs anything. Its `W` is `Q`.
    pub const UNIT: Weights = Weights {
        forward: 1.0,
        forward_tape: 1.0,
        backward: 0.0,
        copy: 0.0,
        from_tape: 0.0,
    };

    /// The weights with negative or non-finite ones set to zero.
    fn cleaned(self) -> Weights {
        let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
        Weights {
            forward: clean(self.forward),
            forward_tape: clean(self.forward_tape),
            backward: clean(self.backward),
            copy: clean(self.copy),
            from_tape: clean(self.from_tape),
        }
    }

    /// What restoring the running state from a checkpoint of `origin` costs.
    pub fn restore(&self, origin: Origin) -> f64 {
        match origin {
            Origin::Hidden => self.copy,
            Origin::Tape => self.from_tape,
        }
    }
}

/// Where a segment's start state is stored, which decides what restoring it
/// costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Origin {
    /// A hidden-state slot, or `h[0]`: restored by a copy.
    Hidden,
    /// A tape slot: the state is rebuilt from the tape.
    Tape,
}

/// The cost and arg-min tables of the time-weighted dynamic program of one
/// policy, for every `t <= len`, `m <= capacity` and [`Origin`].
///
/// Cloning is cheap (the tables are shared), so one table built for the
/// largest budget serves plans for every smaller one: see
/// [`WeightedTable::with_budget`] and [`Plan::weighted`](super::Plan::weighted).
#[derive(Debug, Clone)]
pub struct WeightedTable {
    inner: Arc<Inner>,
    /// The budget a plan's root segment gets.
    root: Ticks,
}

#[derive(Debug)]
struct Inner {
    policy: Policy,
    alpha: Alpha,
    len: u32,
    capacity: Ticks,
    weights: Weights,
    /// `W(t, m, k)`, column-major: `[k][m * (len + 1) + t]`; one kind only
    /// when the policy stores no tapes.
    cost: Vec<Vec<f64>>,
    /// Packed [`Choice`], same layout.
    choice: Vec<Vec<u32>>,
}

impl WeightedTable {
    /// Runs the time-weighted dynamic program of `policy` (HSM, ISM or MSM)
    /// for every length up to `len` and every budget up to `budget` ticks
    /// (capped at store-all's `alpha (len - 1)`: more never helps).
    pub fn build(
        policy: Policy,
        alpha: Alpha,
        len: u32,
        budget: Ticks,
        weights: Weights,
    ) -> Result<Self, Error> {
        if !policy.is_dynamic() {
            return Err(Error::UnknownPolicy(format!(
                "{policy} (time-weighted planning needs hsm, ism or msm)"
            )));
        }
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        if len > super::MAX_LEN {
            return Err(Error::TooLong(u64::from(len)));
        }
        let cap = Ticks(alpha.tape().0.saturating_mul(len - 1));
        let capacity = budget.min(cap);
        let rows = len as usize + 1;
        let cols = capacity.0 as usize + 1;
        let cells = rows as u64 * cols as u64;
        if cells > WEIGHTED_MAX_CELLS {
            return Err(Error::TableTooLarge {
                cells,
                max: WEIGHTED_MAX_CELLS,
            });
        }
        let weights = weights.cleaned();
        let (cost, choice) = fill(policy, alpha, rows, cols, &weights);
        Ok(WeightedTable {
            inner: Arc::new(Inner {
                policy,
                alpha,
                len,
                capacity,
                weights,
                cost,
                choice,
            }),
            root: capacity,
        })
    }

    /// The same tables, answering a plan's root segment with `budget` ticks
    /// (capped at the capacity).
    pub fn with_budget(&self, budget: Ticks) -> WeightedTable {
        WeightedTable {
            inner: Arc::clone(&self.inner),
            root: budget.min(self.inner.capacity),
        }
    }

    /// The policy planned for.
    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    /// The tape-to-state ratio used.
    pub fn alpha(&self) -> Alpha {
        self.inner.alpha
    }

    /// The longest segment the table answers.
    pub fn max_len(&self) -> u32 {
        self.inner.len
    }

    /// The weights planned with (negative or non-finite ones zeroed).
    pub fn weights(&self) -> Weights {
        self.inner.weights
    }

    /// The budget of a plan's root segment (see [`WeightedTable::with_budget`]).
    pub fn budget(&self) -> Ticks {
        self.root
    }

    /// The largest budget the table answers.
    pub fn capacity(&self) -> Ticks {
        self.inner.capacity
    }

    fn index(&self, t: u32, m: Ticks, origin: Origin) -> (usize, usize) {
        let inner = &*self.inner;
        assert!(
            t <= inner.len && m <= inner.capacity,
            "weighted table asked for ({t}, {}) beyond ({}, {})",
            m.0,
            inner.len,
            inner.capacity.0
        );
        let kind = (origin as usize).min(inner.cost.len() - 1);
        (kind, m.0 as usize * (inner.len as usize + 1) + t as usize)
    }

    /// `W(t, m, origin)`: the least time to backpropagate a segment of `t`
    /// steps with `m` free ticks, its start stored as `origin` and already in
    /// the running buffer.
    pub fn cost(&self, t: u32, m: Ticks, origin: Origin) -> f64 {
        let (k, i) = self.index(t, m, origin);
        self.inner.cost[k][i]
    }

    /// The first move of a least-time schedule for that segment.
    pub fn choice(&self, t: u32, m: Ticks, origin: Origin) -> Choice {
        let (k, i) = self.index(t, m, origin);
        Choice::unpack(self.inner.choice[k][i])
    }
}

/// The least `a[i] + r[n - 1 - i]` over `i < n` and its `i` (the first on
/// ties), `n` being the common length.
fn min_plus_reversed(a: &[f64], r: &[f64]) -> (f64, usize) {
    debug_assert_eq!(a.len(), r.len());
    let mut best = (f64::INFINITY, 0);
    for (i, (x, y)) in a.iter().zip(r.iter().rev()).enumerate() {
        let v = x + y;
        if v < best.0 {
            best = (v, i);
        }
    }
    best
}

/// Fills `W` and the packed choices of a `rows` by `cols` table for each
/// origin (one when the policy stores no tapes).
fn fill(
    policy: Policy,
    alpha: Alpha,
    rows: usize,
    cols: usize,
    w: &Weights,
) -> (Vec<Vec<f64>>, Vec<Vec<u32>>) {
    let (h, a) = (alpha.hidden().0 as usize, alpha.tape().0 as usize);
    let (use_h, use_i) = (policy.allows_hidden(), policy.allows_tape());
    let kinds = if use_i { 2 } else { 1 };
    let origins = [Origin::Hidden, Origin::Tape];
    let mut cost = vec![vec![0.0f64; rows * cols]; kinds];
    let mut choice = vec![vec![Choice::End.pack(); rows * cols]; kinds];
    // `acc[k][j] = W(j, m, k) + j f` for the column being filled.
    let mut acc = vec![vec![0.0f64; rows]; kinds];
    let mut column = vec![vec![0.0f64; rows]; kinds];
    let mut picks = vec![vec![Choice::End.pack(); rows]; kinds];
    let (f, ft, b, c) = (w.forward, w.forward_tape, w.backward, w.copy);
    for m in 0..cols {
        for k in 0..kinds {
            acc[k][0] = 0.0;
            column[k][0] = 0.0;
            picks[k][0] = Choice::End.pack();
        }
        let hidden_col = (use_h && m >= h).then(|| &cost[0][(m - h) * rows..][..rows]);
        let tape_col = (use_i && m >= a).then(|| &cost[1][(m - a) * rows..][..rows]);
        for t in 1..rows {
            for k in 0..kinds {
                let r = w.restore(origins[k]);
                let ak = &acc[k];
                // E: run to the end, differentiate with the working tape.
                let mut best = ft + b + ak[t - 1] + if t > 1 { r } else { 0.0 };
                let mut pick = Choice::End;
                if t > 1 {
                    if let Some(rh) = hidden_col {
                        // H(y), y in 1..t: acc[y] + W(t - y, m - h, Hidden) + c + r.
                        let (v, i) = min_plus_reversed(&ak[1..t], &rh[1..t]);
                        let v = v + c + r;
                        if v < best {
                            best = v;
                            pick = Choice::Hidden(i as u32 + 1);
                        }
                    }
                    if let Some(rt) = tape_col {
                        // I(1): nothing left of the tape, no restore.
                        let v = rt[t - 1] + ft + b;
                        if v < best {
                            best = v;
                            pick = Choice::Tape(1);
                        }
                        // I(j + 1), j in 1..t-1: acc[j] + r + W(t - 1 - j, m - a, Tape) + f* + b.
                        if t > 2 {
                            let (v, i) = min_plus_reversed(&ak[1..t - 1], &rt[1..t - 1]);
                            let v = v + r + ft + b;
                            if v < best {
                                best = v;
                                pick = Choice::Tape(i as u32 + 2);
                            }
                        }
                    }
                }
                column[k][t] = best;
                picks[k][t] = pick.pack();
            }
            for k in 0..kinds {
                acc[k][t] = column[k][t] + t as f64 * f;
            }
        }
        for k in 0..kinds {
            cost[k][m * rows..][..rows].copy_from_slice(&column[k]);
            choice[k][m * rows..][..rows].copy_from_slice(&picks[k]);
        }
    }
    (cost, choice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::Table;

    #[test]
    fn unit_weights_give_the_unit_model() {
        for policy in [Policy::Hsm, Policy::Ism, Policy::Msm] {
            for a in [1.0, 2.5, 4.0] {
                let alpha = Alpha::new(a).unwrap();
                let table = Table::build(policy, alpha, 40, Ticks(30)).unwrap();
                let weighted =
                    WeightedTable::build(policy, alpha, 40, Ticks(30), Weights::UNIT).unwrap();
                for t in 0..=40 {
                    for m in 0..=weighted.capacity().0 {
                        let q = table.cost(t, Ticks(m)).unwrap() as f64;
                        for origin in [Origin::Hidden, Origin::Tape] {
                            assert_eq!(weighted.cost(t, Ticks(m), origin), q, "{policy} {t} {m}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn non_dynamic_policies_are_refused() {
        let alpha = Alpha::new(3.0).unwrap();
        assert!(WeightedTable::build(Policy::Sqrt, alpha, 10, Ticks(5), Weights::UNIT).is_err());
    }
}
