//! The closed forms of HSM and ISM.
//!
//! For a fixed budget both costs are convex and piecewise linear in `t`, with
//! slope rising by one at each of a sequence of kinks `L_0 = 0 < L_1 < ...`:
//!
//! - HSM with `u` hidden states affordable: `L_r = C(u + r, u + 1)`, which is
//!   Revolve's `Q_HSM(t, m) = t + p(t, m + 1)` written as a sum of hinges;
//! - ISM with `k` tapes affordable: `L_r = C(k + 1 + r, r) - 1`.
//!
//! So `Q(t) = sum over r of (t - L_r)^+`, evaluated in as many terms as the
//! slope at `t` (a handful at useful budgets). Tests compare both with the
//! exact table. Because `Q(., m)` is convex, each candidate split
//! `y + Q(t - y, m') + Q(y or y - 1, m)` is convex in `y`, and a binary search
//! over its differences finds the optimal first move exactly.

use super::choice::Choice;

/// Which closed form: how many checkpoints of which kind are affordable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// HSM with this many hidden states.
    Hidden(u64),
    /// ISM with this many tapes.
    Tape(u64),
}

impl Form {
    /// The form one checkpoint fewer leaves to a right part.
    fn fewer(self) -> Self {
        match self {
            Form::Hidden(u) => Form::Hidden(u - 1),
            Form::Tape(k) => Form::Tape(k - 1),
        }
    }

    /// The kinks in increasing order, unbounded (saturating at `u64::MAX`).
    fn kinks(self) -> impl Iterator<Item = u64> {
        // The running binomial and the index of the next kink.
        let (n, first) = match self {
            Form::Hidden(u) => (u, 0u128),
            Form::Tape(k) => (k, 1u128),
        };
        let tape = matches!(self, Form::Tape(_));
        let mut state: (u128, u64) = (first, 0);
        std::iter::from_fn(move || {
            let (b, r) = state;
            let kink = if tape { b - 1 } else { b };
            let n = u128::from(n);
            let r128 = u128::from(r);
            let next = if tape {
                // C(n + 1 + r + 1, r + 1) = C(n + 1 + r, r) (n + 2 + r) / (r + 1)
                b.saturating_mul(n + 2 + r128) / (r128 + 1)
            } else if r == 0 {
                1
            } else {
                // C(n + r + 1, n + 1) = C(n + r, n + 1) (n + r + 1) / r
                b.saturating_mul(n + r128 + 1) / r128
            };
            state = (next.min(u128::from(u64::MAX) + 1), r + 1);
            Some(u64::try_from(kink).unwrap_or(u64::MAX))
        })
    }

    /// `Q(t) - Q(t - 1)` for `t >= 1`: the kinks below `t`.
    pub(crate) fn slope(self, t: u64) -> u64 {
        self.kinks().take_while(|&l| l < t).count() as u64
    }

    /// `Q(t)`, saturating at `cap` (any value at least `cap` is returned as `cap`).
    pub(crate) fn cost(self, t: u64, cap: u64) -> u64 {
        let mut sum = 0u64;
        for l in self.kinks().take_while(|&l| l < t) {
            sum = sum.saturating_add(t - l);
            if sum >= cap {
                return cap;
            }
        }
        sum
    }

    /// The optimal first move for `t` steps and its cost (saturated at `cap`):
    /// `End`, or the best split, found by bisection on its convex differences.
    pub(crate) fn choice(self, t: u64, cap: u64) -> (Choice, u64) {
        let end = t.saturating_add(self.cost(t - 1, cap)).min(cap);
        let affordable = match self {
            Form::Hidden(u) | Form::Tape(u) => u >= 1,
        };
        if t < 2 || !affordable {
            return (Choice::End, end);
        }
        let tape = matches!(self, Form::Tape(_));
        let right = self.fewer();
        // f(y + 1) - f(y) >= 0, for 1 <= y < t - 1; non-decreasing in y.
        let rises = |y: u64| {
            let left = if tape { y } else { y + 1 };
            1 + self.slope(left) >= right.slope(t - y)
        };
        let (mut lo, mut hi) = (1u64, t - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if rises(mid) { hi = mid } else { lo = mid + 1 }
        }
        let y = lo;
        let left = if tape { y - 1 } else { y };
        let split = y
            .saturating_add(right.cost(t - y, cap))
            .saturating_add(self.cost(left, cap))
            .min(cap);
        if split < end {
            let y = y as u32;
            (
                if tape {
                    Choice::Tape(y)
                } else {
                    Choice::Hidden(y)
                },
                split,
            )
        } else {
            (Choice::End, end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_checkpoint_costs_the_triangle() {
        for t in 0..50 {
            assert_eq!(Form::Hidden(0).cost(t, u64::MAX), t * (t + 1) / 2);
            assert_eq!(Form::Tape(0).cost(t, u64::MAX), t * (t + 1) / 2);
        }
    }

    #[test]
    fn enough_tapes_is_store_all() {
        assert_eq!(Form::Tape(9).cost(10, u64::MAX), 10);
        assert_eq!(Form::Tape(8).cost(10, u64::MAX), 11);
    }

    #[test]
    fn the_cap_saturates() {
        assert_eq!(Form::Hidden(0).cost(1 << 20, 1000), 1000);
    }

    #[test]
    fn kinks_of_hsm_are_binomials() {
        let kinks: Vec<u64> = Form::Hidden(2).kinks().take(5).collect();
        assert_eq!(kinks, [0, 1, 4, 10, 20]);
        let kinks: Vec<u64> = Form::Tape(1).kinks().take(4).collect();
        assert_eq!(kinks, [0, 2, 5, 9]);
    }
}
