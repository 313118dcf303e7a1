//! Planning without a table: the closed forms, the MSM regime, and a
//! certified plan between them.
//!
//! [`ClosedPlanner`] answers the first move of any segment `(t, m)` in time
//! that depends on neither `T` nor the budget's size (a few binomials, or a
//! bisection over them), so a plan of `T = 1e6` needs no table at all:
//!
//! - HSM and ISM follow their closed forms (`closed.rs`), exactly;
//! - MSM inside its regime (`regime.rs`) attains its lower bound, exactly;
//! - MSM outside it takes the better of the HSM and ISM moves wherever the
//!   segment is outside the regime, and the regime's moves inside. Its cost is
//!   then at most the better closed form and at least the regime's bound plus
//!   one (the bound is not attained outside the regime): the plan is
//!   *certified* with the gap between its cost and that lower bound.

use super::choice::Choice;
use super::closed::Form;
use super::regime::Regime;
use super::table::COST_CAP;
use crate::policy::Policy;
use crate::units::{Alpha, Ticks};

/// A table-free planner of HSM, ISM or MSM.
#[derive(Debug, Clone)]
pub struct ClosedPlanner {
    policy: Policy,
    alpha: Alpha,
    regime: Regime,
}

const CAP: u64 = COST_CAP as u64;

impl ClosedPlanner {
    /// The planner of a dynamic program (HSM, ISM or MSM).
    pub fn new(policy: Policy, alpha: Alpha) -> Self {
        assert!(policy.is_dynamic(), "{policy} is not a dynamic program");
        ClosedPlanner {
            policy,
            alpha,
            regime: Regime::new(alpha),
        }
    }

    fn hsm(&self, m: Ticks) -> Form {
        Form::Hidden(u64::from(m.0 / self.alpha.hidden().0))
    }

    fn ism(&self, m: Ticks) -> Form {
        Form::Tape(u64::from(m.0 / self.alpha.tape().0))
    }

    /// The better closed form's move and cost (HSM on ties).
    fn better_form(&self, t: u64, m: Ticks) -> (Choice, u64) {
        let h = self.hsm(m).choice(t, CAP);
        let i = self.ism(m).choice(t, CAP);
        if i.1 < h.1 { i } else { h }
    }

    /// The first move for a segment of `t >= 1` steps with `m` free ticks.
    pub fn choice(&self, t: u32, m: Ticks) -> Choice {
        let t = u64::from(t);
        match self.policy {
            Policy::Hsm => self.hsm(m).choice(t, CAP).0,
            Policy::Ism => self.ism(m).choice(t, CAP).0,
            _ if self.regime.contains(t, m) => self.regime.choice(t, m),
            _ => self.better_form(t, m).0,
        }
    }

    /// Bounds on `Q(t, m)` and on the cost of this planner's schedule:
    /// `(lower, upper)`, equal where the planner is exact. Costs at or above
    /// [`COST_CAP`] are reported as the cap.
    pub fn bounds(&self, t: u32, m: Ticks) -> (u64, u64) {
        let t = u64::from(t);
        match self.policy {
            Policy::Hsm => {
                let q = self.hsm(m).cost(t, CAP);
                (q, q)
            }
            Policy::Ism => {
                let q = self.ism(m).cost(t, CAP);
                (q, q)
            }
            _ if self.regime.contains(t, m) => {
                let q = self.regime.lower_bound(t, m);
                (q, q)
            }
            _ => {
                let upper = self.better_form(t, m).1;
                (self.regime.lower_bound(t, m) + 1, upper)
            }
        }
    }

    /// Whether the planner's answer for `(t, m)` is provably optimal.
    pub fn is_exact(&self, t: u32, m: Ticks) -> bool {
        self.policy != Policy::Msm || self.regime.contains(u64::from(t), m)
    }
}
