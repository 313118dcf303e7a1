//! The table-free planner against the exact table: closed forms, the MSM
//! regime, certified plans, and the lazy schedule stream at long lengths.

use bptt::planner::{ClosedPlanner, Method, Planner};
use bptt::schedule::{OpStream, verify_plan};
use bptt::{Alpha, Budget, Plan, Policy, Schedule, Table, Ticks, verify};
use proptest::prelude::*;

fn alphas() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![
        1.0,
        1.5,
        2.0,
        2.25,
        3.0,
        3.5,
        4.0,
        5.0,
        7.0 / 3.0,
        13.0 / 4.0,
    ])
}

fn dynamic_policies() -> impl Strategy<Value = Policy> {
    prop::sample::select(vec![Policy::Hsm, Policy::Ism, Policy::Msm])
}

/// `max(t, 2t - 1 - k)`: the regime's lower bound, restated here.
fn lower_bound(t: u64, k: u64) -> u64 {
    if t == 0 {
        0
    } else {
        t.max((2 * t - 1).saturating_sub(k))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Wherever the closed planner claims to be exact its bounds meet at the
    /// table's cost; elsewhere (MSM outside the regime) they enclose it and
    /// the lower one is the regime's bound plus one, so the table is strictly
    /// above the bound there: the regime's threshold is exact both ways.
    #[test]
    fn bounds_enclose_the_table_everywhere(policy in dynamic_policies(), a in alphas(), len in 1u32..90, budget in 0u32..60) {
        let alpha = Alpha::new(a).unwrap();
        let table = Table::build(policy, alpha, len, Ticks(budget)).unwrap();
        let closed = ClosedPlanner::new(policy, alpha);
        for t in 1..=len {
            for m in 0..=budget {
                let q = table.cost(t, Ticks(m)).unwrap();
                let (lower, upper) = closed.bounds(t, Ticks(m));
                prop_assert!(lower <= q && q <= upper, "{policy} t {t} m {m}: {lower} <= {q} <= {upper}");
                if closed.is_exact(t, Ticks(m)) {
                    prop_assert_eq!(lower, q, "{} t {} m {}", policy, t, m);
                    prop_assert_eq!(upper, q);
                }
                if policy == Policy::Msm {
                    let k = u64::from(m / alpha.tape().0);
                    let bound = lower_bound(u64::from(t), k);
                    prop_assert_eq!(closed.is_exact(t, Ticks(m)), q == bound, "t {} m {}", t, m);
                }
            }
        }
    }

    /// A plan without a table costs what the table says where it is exact, at
    /// least that (and no more than its certificate) elsewhere; its schedule
    /// is verified and within budget.
    #[test]
    fn closed_plans_equal_the_table(policy in dynamic_policies(), a in alphas(), len in 1u32..300, percent in 0.0f64..100.0) {
        let alpha = Alpha::new(a).unwrap();
        let budget = Budget::Percent(percent);
        let closed = Plan::with_planner(policy, alpha, len, budget, Planner::Closed);
        let table = Plan::with_planner(policy, alpha, len, budget, Planner::Table);
        let (closed, table) = match (closed, table) {
            (Ok(c), Ok(t)) => (c, t),
            (Err(c), Err(t)) => { prop_assert_eq!(c.to_string(), t.to_string()); return Ok(()); }
            (c, t) => { prop_assert!(false, "one planner failed: {c:?} {t:?}"); unreachable!() }
        };
        prop_assert_eq!(table.method(), Method::Table);
        prop_assert!(closed.lower_bound() <= table.forward_steps());
        prop_assert!(closed.forward_steps() >= table.forward_steps());
        match closed.method() {
            Method::ClosedForm => {
                prop_assert_eq!(closed.forward_steps(), table.forward_steps());
                prop_assert_eq!(closed.gap(), 0);
            }
            Method::Certified => prop_assert_eq!(policy, Policy::Msm),
            other => prop_assert!(false, "unexpected method {other:?}"),
        }
        prop_assert!(closed.peak() <= closed.budget());
        let report = verify_plan(&closed).unwrap();
        prop_assert_eq!(report.forward_steps, closed.forward_steps());
        prop_assert_eq!(report.peak, closed.peak());
    }

    /// The collected stream is the schedule, and it verifies as a slice too.
    #[test]
    fn the_stream_is_the_schedule(policy in dynamic_policies(), a in alphas(), len in 1u32..200, percent in 0.0f64..30.0) {
        let alpha = Alpha::new(a).unwrap();
        let plan = Plan::with_planner(policy, alpha, len, Budget::Percent(percent), Planner::Closed).unwrap();
        let schedule = Schedule::from_plan(&plan);
        let streamed: Vec<_> = OpStream::new(&plan).collect();
        prop_assert_eq!(schedule.ops(), &streamed[..]);
        prop_assert_eq!(verify(&schedule).unwrap(), verify_plan(&plan).unwrap());
    }
}

/// The targets answer without a table, exactly for HSM, ISM and
/// MSM in its regime.
#[test]
fn long_plans_need_no_table() {
    for a in [1.0, 3.0, 3.5, 4.0] {
        let alpha = Alpha::new(a).unwrap();
        for (len, percent) in [(100_000, 1.0), (100_000, 20.0), (1_000_000, 5.0)] {
            for policy in [Policy::Hsm, Policy::Ism, Policy::Msm] {
                let plan = Plan::new(policy, alpha, len, Budget::Percent(percent)).unwrap();
                assert_eq!(
                    plan.method(),
                    Method::ClosedForm,
                    "{policy} {len} {percent}% alpha {a}"
                );
                assert_eq!(plan.gap(), 0);
                assert!(plan.peak() <= plan.budget());
                if policy == Policy::Msm {
                    let k = u64::from(plan.root_budget().0 / alpha.tape().0);
                    assert_eq!(plan.forward_steps(), lower_bound(u64::from(len), k));
                }
            }
        }
    }
}

/// A million steps stream and verify in one pass whose memory is the
/// recursion's stack: the stream never holds more than a few entries per
/// live checkpoint.
#[test]
fn a_million_steps_stream_in_bounded_memory() {
    let alpha = Alpha::new(4.0).unwrap();
    let plan = Plan::new(Policy::Msm, alpha, 1_000_000, Budget::Percent(0.5)).unwrap();
    let mut stream = OpStream::new(&plan);
    let (mut ops, mut forward, mut deepest) = (0u64, 0u64, 0usize);
    for op in stream.by_ref() {
        ops += 1;
        forward += u64::from(op.is_forward());
    }
    deepest = deepest.max(stream.depth());
    assert_eq!(forward, plan.forward_steps());
    assert!(ops > 2_000_000);
    // The deepest point: the live checkpoints of the plan bound the stack.
    let mut stream = OpStream::new(&plan);
    let checkpoints = plan.peak().0 as usize;
    while stream.next().is_some() {
        deepest = deepest.max(stream.depth());
    }
    assert!(
        deepest <= 4 * checkpoints + 8,
        "stack {deepest} for {checkpoints} ticks"
    );
    let report = verify_plan(&plan).unwrap();
    assert_eq!(report.forward_steps, plan.forward_steps());
}

/// Outside the regime at a length the table cannot reach, the plan is
/// certified: a feasible schedule, and a gap to a proven lower bound.
#[test]
fn tiny_budgets_at_long_lengths_are_certified() {
    let alpha = Alpha::new(4.0).unwrap();
    let plan = Plan::new(Policy::Msm, alpha, 200_000, Budget::Units(400.0)).unwrap();
    assert_eq!(plan.method(), Method::Certified);
    assert!(plan.lower_bound() < plan.forward_steps());
    let summary = plan.summary();
    assert_eq!(summary.gap, plan.forward_steps() - plan.lower_bound());
    verify_plan(&plan).unwrap();
}
