//! A plan: one policy's answer for one sequence length and budget.

use serde::Serialize;

use super::choice::Choice;
use super::closed_plan::ClosedPlanner;
use super::table::Table;
use super::walk::measure;
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
    /// A dynamic program answered without a table (closed forms, the MSM
    /// regime, a certified plan between), with the budget of the root.
    Closed(ClosedPlanner, Ticks),
}

/// How a plan was answered, as `bptt plan --json` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The exact table of the dynamic program.
    Table,
    /// A closed form (HSM, ISM, or MSM where its lower bound is attained): exact.
    ClosedForm,
    /// A feasible plan and a lower bound on the optimum, with their gap.
    Certified,
    /// A baseline's rule (store-all, sqrt, interval).
    Rule,
    /// The time-weighted table.
    WeightedTable,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Table => "table",
            Method::ClosedForm => "closed-form",
            Method::Certified => "certified",
            Method::Rule => "rule",
            Method::WeightedTable => "weighted-table",
        })
    }
}

/// Which planner [`Plan::with_planner`] may use for a dynamic program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planner {
    /// The exact table where it is cheap ([`TABLE_CELLS`]), closed forms or a
    /// certified plan beyond.
    Auto,
    /// Always the exact table (refused beyond [`super::MAX_CELLS`]).
    Table,
    /// Never a table.
    Closed,
}

/// [`Planner::Auto`] builds the exact table up to this many `(t, m)` cells
/// (a few tens of milliseconds).
pub const TABLE_CELLS: u64 = 1 << 20;

impl Strategy {
    /// The first move for a segment of `t` steps with `m` free ticks.
    pub fn choice(&self, t: u32, m: Ticks) -> Choice {
        match self {
            Strategy::Table(table) => table.choice(t, m),
            Strategy::Interval(k) if t > *k => Choice::Hidden(*k),
            Strategy::Interval(_) if t > 1 => Choice::Tape(1),
            Strategy::Interval(_) => Choice::End,
            Strategy::Weighted(table) => table.choice(t, m, Origin::Hidden),
            Strategy::Closed(planner, _) => planner.choice(t, m),
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
            Strategy::Table(_) | Strategy::Weighted(_) | Strategy::Closed(..) => {
                Ticks(m.0 - cost.0)
            }
            Strategy::Interval(_) => Ticks(0),
        }
    }

    /// The budget the root segment is planned with: a table's, zero for
    /// interval baselines.
    fn root_budget(&self) -> Ticks {
        match self {
            Strategy::Table(table) => table.budget(),
            Strategy::Weighted(table) => table.budget(),
            Strategy::Closed(_, budget) => *budget,
            Strategy::Interval(_) => Ticks(0),
        }
    }

    fn method(&self, exact: bool) -> Method {
        match self {
            Strategy::Table(_) => Method::Table,
            Strategy::Weighted(_) => Method::WeightedTable,
            Strategy::Interval(_) => Method::Rule,
            Strategy::Closed(..) if exact => Method::ClosedForm,
            Strategy::Closed(..) => Method::Certified,
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
    method: Method,
    lower_bound: u64,
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
    /// How the plan was answered.
    pub method: Method,
    /// A proven lower bound on the policy's least forward steps (equal to
    /// `forward_steps` where the method is exact; the baselines' own cost).
    pub lower_bound: u64,
    /// `forward_steps - lower_bound`: zero where the plan is proven optimal.
    pub gap: u64,
}

impl Plan {
    /// Plans `policy` for `len` steps within `budget`, with the exact table
    /// where it is cheap and without one beyond ([`Planner::Auto`]).
    ///
    /// Dynamic programs fit any budget; a baseline whose checkpoints do not fit
    /// returns [`Error::Infeasible`] naming the smallest budget that works.
    pub fn new(policy: Policy, alpha: Alpha, len: u32, budget: Budget) -> Result<Self, Error> {
        Self::with_planner(policy, alpha, len, budget, Planner::Auto)
    }

    /// Plans as [`Plan::new`] with the given choice of planner for the
    /// dynamic programs (baselines ignore it).
    ///
    /// A budget whose plan would take 2^30 forward steps or more returns
    /// [`Error::TooExpensive`] naming a budget whose plan does not
    /// ([`Plan::sufficient_units`]).
    pub fn with_planner(
        policy: Policy,
        alpha: Alpha,
        len: u32,
        budget: Budget,
        planner: Planner,
    ) -> Result<Self, Error> {
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
                // More than store-all's memory never helps: cap the budget there.
                let cap = Ticks(alpha.tape().0.saturating_mul(len - 1));
                let root = ticks.min(cap);
                let cells = (u64::from(len) + 1) * (u64::from(root.0) + 1);
                let table = match planner {
                    Planner::Auto => cells <= TABLE_CELLS,
                    Planner::Table => true,
                    Planner::Closed => false,
                };
                if table {
                    Strategy::Table(Table::build(policy, alpha, len, root)?)
                } else {
                    let closed = ClosedPlanner::new(policy, alpha);
                    if closed.bounds(len, root).1 >= u64::from(super::COST_CAP) {
                        return Err(Self::too_expensive(policy, alpha, len, units));
                    }
                    Strategy::Closed(closed, root)
                }
            }
            Policy::StoreAll => Strategy::Interval(len),
            Policy::Sqrt => Strategy::Interval(sqrt_interval(alpha, len)),
            Policy::Interval(k) => Strategy::Interval(k.min(len)),
        };
        Self::from_strategy(policy, alpha, len, ticks, units, strategy)
    }

    /// A budget, in units, whose plan takes fewer than 2^30 forward steps
    /// (the closed planner's bound says so; the least such budget wherever
    /// that bound is exact), found without building a table.
    pub fn sufficient_units(policy: Policy, alpha: Alpha, len: u32) -> Option<f64> {
        if !policy.is_dynamic() || len == 0 || len > super::MAX_LEN {
            return None;
        }
        let steps = u64::from(super::COST_CAP) - 1;
        super::inverse::sufficient_budget(policy, alpha, len, steps).map(|t| alpha.to_units(t))
    }

    /// The error of a plan of `budget` units that would take 2^30 forward
    /// steps or more, naming a budget that does not (store-all's, if the
    /// closed planner's bound names none).
    fn too_expensive(policy: Policy, alpha: Alpha, len: u32, budget: f64) -> Error {
        Error::TooExpensive {
            policy,
            len,
            budget,
            minimum: Self::sufficient_units(policy, alpha, len)
                .unwrap_or_else(|| alpha.store_all_units(len)),
        }
    }

    /// Plans with a time-weighted table (see [`WeightedTable`]) within
    /// `budget`; a budget beyond the table's capacity is planned with the
    /// capacity. The plan's forward steps may exceed the unit model's least
    /// `Q(T, m)`: it minimises the weighted time instead.
    pub fn weighted(table: &WeightedTable, budget: Budget) -> Result<Self, Error> {
        let (alpha, len) = (table.alpha(), table.max_len());
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
        let root = strategy.root_budget();
        let (forward_steps, peak) = measure(&strategy, alpha, len, root);
        let (lower_bound, exact) = match &strategy {
            Strategy::Closed(planner, _) => {
                (planner.bounds(len, root).0, planner.is_exact(len, root))
            }
            _ => (forward_steps, true),
        };
        let plan = Plan {
            policy,
            alpha,
            len,
            budget: ticks,
            method: strategy.method(exact),
            strategy,
            forward_steps,
            peak,
            lower_bound,
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
            return Err(Self::too_expensive(policy, alpha, len, units));
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
    pub fn seq_len(&self) -> u32 {
        self.len
    }

    /// The budget in ticks, as given (rounded down).
    pub fn budget(&self) -> Ticks {
        self.budget
    }

    /// The budget the root segment is planned with: the given one, capped at
    /// store-all's memory for dynamic programs, zero for interval baselines.
    pub fn root_budget(&self) -> Ticks {
        self.strategy.root_budget()
    }

    /// How the plan was answered.
    pub fn method(&self) -> Method {
        self.method
    }

    /// A proven lower bound on the policy's least forward steps: the plan's
    /// own where it is exact, below it for a certified plan.
    pub fn lower_bound(&self) -> u64 {
        self.lower_bound
    }

    /// `forward_steps - lower_bound`: zero where the plan is proven optimal.
    pub fn gap(&self) -> u64 {
        self.forward_steps - self.lower_bound
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
            method: self.method,
            lower_bound: self.lower_bound,
            gap: self.gap(),
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

    /// A budget too small to plan names one that can be planned, found
    /// without a table: far below store-all's (which it used to name).
    #[test]
    fn a_budget_too_small_to_plan_names_one_that_plans() {
        for (policy, len) in [(Policy::Msm, 100_000), (Policy::Hsm, 100_000)] {
            let a = alpha(3.0);
            let err = Plan::new(policy, a, len, Budget::Units(0.0)).unwrap_err();
            let Error::TooExpensive { minimum, .. } = err else {
                panic!("{policy}: {err:?}")
            };
            assert!(minimum > 0.0 && minimum < 10.0, "{policy}: {minimum}");
            let plan = Plan::new(policy, a, len, Budget::Units(minimum)).unwrap();
            assert!(plan.forward_steps() < u64::from(crate::planner::COST_CAP));
        }
    }

    #[test]
    fn zero_length_is_refused() {
        assert!(matches!(
            Plan::new(Policy::Msm, alpha(4.0), 0, Budget::Units(1.0)).unwrap_err(),
            Error::ZeroLength
        ));
    }
}
