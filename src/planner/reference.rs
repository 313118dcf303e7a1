//! The recursion of the planning model evaluated by brute force.
//!
//! `O(t^2 m)`: the specification in executable form, against which the fast
//! [`Table`](super::Table) is property-tested. Use it only for small cases.

use crate::policy::Policy;
use crate::units::{Alpha, Ticks};

/// `Q(t, m)` for every `t <= len` and `m <= budget` ticks, as `q[t][m]`,
/// computed straight from the recursion with every `y` tried.
pub fn brute_force_costs(policy: Policy, alpha: Alpha, len: u32, budget: Ticks) -> Vec<Vec<u64>> {
    let (h, a) = (alpha.hidden().0 as usize, alpha.tape().0 as usize);
    let (len, cols) = (len as usize, budget.0 as usize + 1);
    let mut q = vec![vec![0u64; cols]; len + 1];
    for t in 1..=len {
        for m in 0..cols {
            let mut best = t as u64 + q[t - 1][m];
            for y in 1..t {
                if policy.allows_hidden() && m >= h {
                    best = best.min(y as u64 + q[t - y][m - h] + q[y][m]);
                }
                if policy.allows_tape() && m >= a {
                    best = best.min(y as u64 + q[t - y][m - a] + q[y - 1][m]);
                }
            }
            q[t][m] = best;
        }
    }
    q
}
