//! MSM where its lower bound is attained: `Q(t, m) = max(t, 2t - 1 - k)`.
//!
//! With `k = floor(m / alpha)` tapes affordable, no schedule does better than
//! `2t - 1 - k` forward steps: a step computed only once must keep its tape
//! from then until its backward step, and those intervals nest (backward steps
//! run in reverse), so at the moment the last of them is computed all their
//! tapes are live: at most `k` in the budget and one in the working tape.
//! Every other step is computed at least twice. Store-all (`Q = t`) is the
//! case `t <= k + 1`.
//!
//! The bound is attained exactly for `t <= T2(m)` with
//! `T2(m) = j (k + 1) + (k + 1)(k + 4) / 2`, where `j = floor(m - k alpha)`
//! counts the hidden states affordable beside the `k` tapes. Sketch (the
//! full argument is in `docs/planning-model.md`, and tests check it against
//! the exact table): a root move attains the bound only if its parts attain
//! theirs, and working through the three moves shows that the only ones that
//! do are `I(y)` with `y <= k + 2` and a right part of at least `k` steps
//! (which attains with `k - 1` tapes), and `H(y)` with `y <= k + 1` when the
//! hidden state leaves all `k` tapes affordable and the right part has at
//! least `k + 1` steps. So `T2(k, j) = max(k + 2 + T2(k - 1, j), k + 1 +
//! T2(k, j - 1))` from `T2(0, j) = j + 2`, whose maximum over the lattice
//! paths takes the `j` hidden states first.

use super::choice::Choice;
use crate::units::{Alpha, Ticks};

/// The MSM regime for one tape-to-state ratio.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Regime {
    hidden: u64,
    tape: u64,
}

impl Regime {
    /// The regime of `alpha`.
    pub(crate) fn new(alpha: Alpha) -> Self {
        Regime {
            hidden: u64::from(alpha.hidden().0),
            tape: u64::from(alpha.tape().0),
        }
    }

    /// `k`: the tapes affordable with `m` ticks.
    pub(crate) fn tapes(&self, m: Ticks) -> u64 {
        u64::from(m.0) / self.tape
    }

    /// `j`: the hidden states affordable beside `k` tapes.
    fn hidden_beside(&self, m: Ticks) -> u64 {
        (u64::from(m.0) - self.tapes(m) * self.tape) / self.hidden
    }

    /// `T2(m)`: the longest segment whose cost is the lower bound.
    pub(crate) fn threshold(&self, m: Ticks) -> u64 {
        let (k, j) = (self.tapes(m), self.hidden_beside(m));
        j * (k + 1) + (k + 1) * (k + 4) / 2
    }

    /// The lower bound `max(t, 2t - 1 - k)` of every schedule (0 for `t = 0`).
    pub(crate) fn lower_bound(&self, t: u64, m: Ticks) -> u64 {
        if t == 0 {
            return 0;
        }
        t.max((2 * t - 1).saturating_sub(self.tapes(m)))
    }

    /// Whether `(t, m)` is in the regime, where [`Regime::lower_bound`] is `Q`.
    pub(crate) fn contains(&self, t: u64, m: Ticks) -> bool {
        t <= self.threshold(m)
    }

    /// The first move of a schedule that attains the bound, for `(t, m)` in
    /// the regime. Its parts are in the regime again.
    pub(crate) fn choice(&self, t: u64, m: Ticks) -> Choice {
        debug_assert!(self.contains(t, m));
        let k = self.tapes(m);
        if t <= k + 1 {
            return if t == 1 { Choice::End } else { Choice::Tape(1) };
        }
        if k == 0 && t == 2 {
            return Choice::End;
        }
        let less_tape = Ticks(m.0.saturating_sub(self.tape as u32));
        if k >= 1 && t <= k + 2 + self.threshold(less_tape) {
            // A store-all left part of y - 1 <= k + 1 steps, a right part of >= k.
            return Choice::Tape((k + 2).min(t - k) as u32);
        }
        // A store-all left part of y <= k + 1 steps, a right part of >= k + 1
        // with the same k tapes: `contains` guarantees j >= 1 here.
        debug_assert!(self.hidden_beside(m) >= 1);
        Choice::Hidden((k + 1).min(t - k - 1) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_at_least_the_tapes_triangle() {
        let r = Regime::new(Alpha::new(4.0).unwrap());
        for m in 0..200 {
            let k = r.tapes(Ticks(m));
            assert!(r.threshold(Ticks(m)) >= (k + 1) * (k + 4) / 2);
        }
        // T = 1e6 is covered from k = 1413 tapes up: 0.14% of store-all at alpha 4.
        assert!(r.threshold(Ticks(4 * 1413)) >= 1_000_000);
        assert!(r.threshold(Ticks(4 * 1411)) < 1_000_000);
    }
}
