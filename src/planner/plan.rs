//! A plan: one policy's answer for one sequence length and budget.

use std::collections::HashMap;

use serde::Serialize;

use super::choice::Choice;
use super::table::Table;
use super::weighted::{Origin, WeightedTable};
use crate::error::Error;
use crate::policy::Policy;
use crate::units::{Alpha, Budget, Ticks};

/// How a plan picks the first move of each segment.
#[derive(Debug, Clone)]
pub enum Strategy {
    /// The arg-min table of a dynamic program.
    Table(Table),
    /// A hidden state every `k` steps, each segment backpropagated store-all.
    /// Store-all is `k >= T`; Chen's sqrt(t) is the `k` with least memory.
    Interval(u32),
    /// The arg-min tables of the time-weighted dynamic program, whose first
    /// move also depends on where the segment's start is stored.
    Weighted(WeightedTable),
}

impl Strategy {
    /// The first move for a segment of `t` steps with `m` free ticks.
    pub fn choice(&self, t: u32, m: Ticks) -> Choice {
        match self {
            Strategy::Table(table) => table.choice(t, m),
            Strategy::Interval(k) if t > *k => Choice::Hidden(*k),
            Strategy::Interval(_) if t > 1 => Choice::Tape(1),
            Strategy::Interval(_) => Choice::End,
            Strategy::Weighted(table) => table.choice(t, m, Origin::Hidden),
        }
    }

    /// The first move for a segment of `t` steps with `m` free ticks whose
    /// start state is stored as `origin`: only time-weighted tables tell the
    /// origins apart.
    pub fn choice_from(&self, t: u32, m: Ticks, origin: Origin) -> Choice {
        match self {
            Strategy::Weighted(table) => table.choice(t, m, origin),
            _ => self.choice(t, m),
        }
    }

    /// The ticks left to the right part after storing a checkpoint of `cost`
    /// ticks. Interval strategies ignore budgets, so they keep zero.
    pub fn after_storing(&self, m: Ticks, cost: Ticks) -> Ticks {
        match self {
            Strategy::Table(_) | Strategy::Weighted(_) => Ticks(m.0 - cost.0),
            Strategy::Interval(_) => Ticks(0),
        }
    }
}

/// The plan of one policy for a sequence length and a budget.
#[derive(Debug, Clone)]
pub struct Plan {
    policy: Policy,
    alpha: Alpha,
    len: u32,
    budget: Ticks,
    strategy: Strategy,
    forward_steps: u64,
    peak: Ticks,
}

/// What a plan costs, in the form `bptt plan --json` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanSummary {
    /// The policy.
    pub policy: Policy,
    /// The sequence length `T`.
    pub len: u32,
    /// The budget in hidden-state units (after rounding down to ticks).
    pub budget: f64,
    /// The tape-to-state ratio (after rounding up to a sixteenth).
    pub alpha: f64,
    /// Forward steps, `Q(T, m)` for the dynamic programs.
    pub forward_steps: u64,
    /// Backward steps: always `T`.
    pub backward_steps: u64,
    /// The most checkpoint memory held at once, in hidden-state units.
    pub peak_units: f64,
    /// Forward steps per time step.
    pub cost_per_step: f64,
    /// Store-all's memory `alpha (T - 1)` for comparison.
    pub store_all_units: f64,
}

impl Plan {
    /// Plans `policy` for `len` steps within `budget`.
    ///
    /// Dynamic programs fit any budget; a baseline whose checkpoints do not fit
    /// returns [`Error::Infeasible`] naming the smallest budget that works.
    pub fn new(policy: Policy, alpha: Alpha, len: u32, budget: Budget) -> Result<Self, Error> {
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        if len > super::MAX_LEN {
            return Err(Error::TooLong(u64::from(len)));
        }
        let units = budget.units(alpha, len);
        let ticks = alpha.to_ticks(units)?;
        let strategy = match policy {
            Policy::Hsm | Policy::Ism | Policy::Msm => {
                // More than store-all's memory never helps: cap the table there.
                let cap = Ticks(alpha.tape().0.saturating_mul(len - 1));
                Strategy::Table(Table::build(policy, alpha, len, ticks.min(cap))?)
            }
            Policy::StoreAll => Strategy::Interval(len),
            Policy::Sqrt => Strategy::Interval(sqrt_interval(alpha, len)),
            Policy::Interval(k) => Strategy::Interval(k.min(len)),
        };
        Self::from_strategy(policy, alpha, len, ticks, units, strategy)
    }

    /// Plans with a time-weighted table (see [`WeightedTable`]) within
    /// `budget`; a budget beyond the table's capacity is planned with the
    /// capacity. The plan's forward steps may exceed the unit model's least
    /// `Q(T, m)`: it minimises the weighted time instead.
    pub fn weighted(table: &WeightedTable, budget: Budget) -> Result<Self, Error> {
        let (alpha, len) = (table.alpha(), table.len());
        let units = budget.units(alpha, len);
        let ticks = alpha.to_ticks(units)?;
        let strategy = Strategy::Weighted(table.with_budget(ticks));
        Self::from_strategy(table.policy(), alpha, len, ticks, units, strategy)
    }

    /// Measures a strategy's schedule and checks it against the budget.
    fn from_strategy(
        policy: Policy,
        alpha: Alpha,
        len: u32,
        ticks: Ticks,
        units: f64,
        strategy: Strategy,
    ) -> Result<Self, Error> {
        let table_budget = match &strategy {
            Strategy::Table(table) => table.budget(),
            Strategy::Weighted(table) => table.budget(),
            Strategy::Interval(_) => Ticks(0),
        };
        let (forward_steps, peak) = measure(&strategy, alpha, len, table_budget);
        let plan = Plan {
            policy,
            alpha,
            len,
            budget: ticks,
            strategy,
            forward_steps,
            peak,
        };
        if peak > ticks {
            return Err(Error::Infeasible {
                policy,
                len,
                alpha: alpha.value(),
                budget: units,
                minimum: alpha.to_units(peak),
            });
        }
        if forward_steps >= u64::from(super::COST_CAP) {
            return Err(Error::TooExpensive {
                policy,
                len,
                budget: units,
                minimum: alpha.store_all_units(len),
            });
        }
        Ok(plan)
    }

    /// The policy planned.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The tape-to-state ratio used.
    pub fn alpha(&self) -> Alpha {
        self.alpha
    }

    /// The sequence length `T`.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the plan is for an empty sequence (never).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The budget in ticks, as given (rounded down).
    pub fn budget(&self) -> Ticks {
        self.budget
    }

    /// The budget the root segment is planned with: the given one, capped at
    /// store-all's memory for dynamic programs, zero for interval baselines.
    pub fn root_budget(&self) -> Ticks {
        match &self.strategy {
            Strategy::Table(table) => table.budget(),
            Strategy::Weighted(table) => table.budget(),
            Strategy::Interval(_) => Ticks(0),
        }
    }

    /// Whether the plan minimises measured time (a [`Strategy::Weighted`])
    /// rather than forward steps.
    pub fn is_weighted(&self) -> bool {
        matches!(self.strategy, Strategy::Weighted(_))
    }

    /// How the plan picks moves.
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// Forward steps of the whole schedule.
    pub fn forward_steps(&self) -> u64 {
        self.forward_steps
    }

    /// The most checkpoint memory held at once, in ticks.
    pub fn peak(&self) -> Ticks {
        self.peak
    }

    /// The plan's figures for printing.
    pub fn summary(&self) -> PlanSummary {
        PlanSummary {
            policy: self.policy,
            len: self.len,
            budget: self.alpha.to_units(self.budget),
            alpha: self.alpha.value(),
            forward_steps: self.forward_steps,
            backward_steps: u64::from(self.len),
            peak_units: self.alpha.to_units(self.peak),
            cost_per_step: self.forward_steps as f64 / f64::from(self.len),
            store_all_units: self.alpha.store_all_units(self.len),
        }
    }
}

/// Chen's interval: the `k` whose interval schedule holds the least memory
/// (ties to the larger `k`, which recomputes less).
fn sqrt_interval(alpha: Alpha, len: u32) -> u32 {
    (1..=len)
        .min_by_key(|&k| (interval_peak(alpha, len, k), std::cmp::Reverse(k)))
        .expect("len >= 1")
}

/// The peak ticks of the interval-`k` schedule: with `n` segments, segment
/// `j` runs store-all while the `j` checkpoints before it are held.
pub(crate) fn interval_peak(alpha: Alpha, len: u32, k: u32) -> Ticks {
    let (h, a) = (u64::from(alpha.hidden().0), u64::from(alpha.tape().0));
    let (len, k) = (u64::from(len), u64::from(k.min(len)));
    let n = len.div_ceil(k);
    let last = len - (n - 1) * k;
    let last_peak = (n - 1) * h + a * (last - 1);
    let inner_peak = if n >= 2 { (n - 2) * h + a * (k - 1) } else { 0 };
    Ticks(last_peak.max(inner_peak).min(u64::from(u32::MAX)) as u32)
}

/// Forward steps and peak ticks of the schedule that `strategy` expands to,
/// by a memoised walk of the segment tree (iterative: chains can be `T` deep).
/// Segments are keyed by where their start is stored only for the strategies
/// that tell origins apart.
fn measure(strategy: &Strategy, alpha: Alpha, len: u32, budget: Ticks) -> (u64, Ticks) {
    type Key = (u32, Ticks, Origin);
    let by_origin = matches!(strategy, Strategy::Weighted(_));
    let key = |t: u32, m: Ticks, origin: Origin| -> Key {
        (t, m, if by_origin { origin } else { Origin::Hidden })
    };
    let mut memo: HashMap<Key, (u64, Ticks)> = HashMap::new();
    let children = |(t, m, o): Key| -> [Key; 2] {
        match strategy.choice_from(t, m, o) {
            Choice::End => [key(t - 1, m, o), key(0, m, o)],
            Choice::Hidden(y) => [
                key(
                    t - y,
                    strategy.after_storing(m, alpha.hidden()),
                    Origin::Hidden,
                ),
                key(y, m, o),
            ],
            Choice::Tape(y) => [
                key(t - y, strategy.after_storing(m, alpha.tape()), Origin::Tape),
                key(y - 1, m, o),
            ],
        }
    };
    let root = key(len, budget, Origin::Hidden);
    let mut stack = vec![(root, false)];
    while let Some((node, ready)) = stack.pop() {
        if memo.contains_key(&node) {
            continue;
        }
        let (t, m, o) = node;
        if t == 0 {
            memo.insert(node, (0, Ticks(0)));
            continue;
        }
        let kids = children(node);
        if !ready {
            stack.push((node, true));
            stack.extend(kids.iter().map(|&kid| (kid, false)));
            continue;
        }
        let [(rs, rp), (ls, lp)] = kids.map(|kid| memo[&kid]);
        let value = match strategy.choice_from(t, m, o) {
            Choice::End => (u64::from(t) + rs, rp),
            Choice::Hidden(y) => (
                u64::from(y) + rs + ls,
                Ticks(rp.0 + alpha.hidden().0).max(lp),
            ),
            Choice::Tape(y) => (u64::from(y) + rs + ls, Ticks(rp.0 + alpha.tape().0).max(lp)),
        };
        memo.insert(node, value);
    }
    memo[&root]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alpha(a: f64) -> Alpha {
        Alpha::new(a).unwrap()
    }

    #[test]
    fn worked_example_of_the_planning_model() {
        let a = alpha(4.0);
        let hsm = Plan::new(Policy::Hsm, a, 1000, Budget::Units(200.0)).unwrap();
        let msm = Plan::new(Policy::Msm, a, 1000, Budget::Units(200.0)).unwrap();
        assert_eq!(hsm.forward_steps(), 2797);
        assert_eq!(msm.forward_steps(), 1949);
        assert!(msm.peak() <= Ticks(200));
    }

    #[test]
    fn store_all_costs_t_and_needs_every_tape_but_one() {
        let a = alpha(3.5);
        let plan = Plan::new(Policy::StoreAll, a, 50, Budget::Percent(100.0)).unwrap();
        assert_eq!(plan.forward_steps(), 50);
        assert_eq!(plan.summary().peak_units, 3.5 * 49.0);
    }

    #[test]
    fn interval_peak_formula_matches_the_walk() {
        for len in 1..60 {
            for k in 1..=len {
                for a in [1.0, 2.5, 4.0] {
                    let a = alpha(a);
                    let (_, peak) = measure(&Strategy::Interval(k), a, len, Ticks(0));
                    assert_eq!(peak, interval_peak(a, len, k), "len {len} k {k}");
                }
            }
        }
    }

    #[test]
    fn baseline_below_its_memory_names_the_minimum() {
        let err = Plan::new(Policy::StoreAll, alpha(4.0), 100, Budget::Units(10.0)).unwrap_err();
        match err {
            Error::Infeasible { minimum, .. } => assert_eq!(minimum, 396.0),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn zero_length_is_refused() {
        assert_eq!(
            Plan::new(Policy::Msm, alpha(4.0), 0, Budget::Units(1.0)).unwrap_err(),
            Error::ZeroLength
        );
    }
}
