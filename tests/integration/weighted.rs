//! The time-weighted planner: with unit weights it is the unit model; with
//! any weights its schedules verify, its cost is the time the schedule's calls
//! add up to, and no unit-model schedule is predicted faster.

use bptt::planner::{Origin, WeightedTable, Weights, brute_force_costs};
use bptt::{Alpha, Budget, Lowered, Plan, Policy, Schedule, Table, Ticks, Verified, verify};
use proptest::prelude::*;

fn dynamic_policies() -> impl Strategy<Value = Policy> {
    prop_oneof![Just(Policy::Hsm), Just(Policy::Ism), Just(Policy::Msm)]
}

fn alphas() -> impl Strategy<Value = f64> {
    (4u32..=24).prop_map(|q| f64::from(q) / 4.0)
}

/// Positive weights of a plausible shape: backward dearer than forward,
/// copies and rebuilding cheap, with some extreme cases.
fn weights() -> impl Strategy<Value = Weights> {
    (
        0.1f64..4.0,
        0.1f64..4.0,
        0.0f64..8.0,
        0.0f64..2.0,
        0.0f64..2.0,
    )
        .prop_map(
            |(forward, forward_tape, backward, copy, from_tape)| Weights {
                forward,
                forward_tape,
                backward,
                copy,
                from_tape,
            },
        )
}

/// The predicted time of one iteration of `schedule`: its calls' cost under
/// `w`, plus a set-up once per iteration (what the benchmark predicts).
fn predict(w: Weights, setup: f64, schedule: &Verified) -> f64 {
    setup + Lowered::new(schedule).cost(&w)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn unit_weights_reproduce_the_unit_model(
        policy in dynamic_policies(),
        a in alphas(),
        len in 1u32..40,
        budget in 0u32..48,
    ) {
        let alpha = Alpha::new(a).unwrap();
        let weighted = WeightedTable::build(policy, alpha, len, Ticks(budget), Weights::UNIT).unwrap();
        let table = Table::build(policy, alpha, len, Ticks(budget)).unwrap();
        let brute = brute_force_costs(policy, alpha, len, Ticks(budget));
        for t in 0..=len {
            for m in 0..=weighted.capacity().0 {
                let q = table.cost(t, Ticks(m)).unwrap();
                prop_assert_eq!(brute[t as usize][m as usize], q);
                for origin in [Origin::Hidden, Origin::Tape] {
                    prop_assert_eq!(weighted.cost(t, Ticks(m), origin), q as f64, "t {} m {}", t, m);
                }
            }
        }
        // The plan made from it has the unit model's forward steps.
        let units = alpha.to_units(Ticks(budget));
        let unit_plan = Plan::new(policy, alpha, len, Budget::Units(units)).unwrap();
        let plan = Plan::weighted(&weighted, Budget::Units(units)).unwrap();
        prop_assert_eq!(plan.forward_steps(), unit_plan.forward_steps());
        verify(&Schedule::from_plan(&plan)).unwrap();
    }

    #[test]
    fn weighted_plans_verify_and_cost_what_their_calls_cost(
        policy in dynamic_policies(),
        a in alphas(),
        len in 1u32..60,
        budget in 0u32..60,
        w in weights(),
        setup in 0.0f64..3.0,
    ) {
        let alpha = Alpha::new(a).unwrap();
        let table = WeightedTable::build(policy, alpha, len, Ticks(60), w).unwrap();
        let units = alpha.to_units(Ticks(budget));
        let plan = Plan::weighted(&table, Budget::Units(units)).unwrap();
        prop_assert!(plan.is_weighted());
        prop_assert!(plan.peak() <= Ticks(budget));
        let schedule = Verified::new(Schedule::from_plan(&plan)).unwrap();
        prop_assert_eq!(schedule.report().forward_steps, plan.forward_steps());
        // The table's cost is the schedule's calls (less the first restore of
        // h[0] and the set-up).
        let predicted = predict(w, setup, &schedule);
        let root = plan.root_budget();
        let w_cost = table.cost(len, root, Origin::Hidden);
        prop_assert!(close(predicted, setup + w.copy + w_cost), "{} vs {}", predicted, setup + w.copy + w_cost);
        // No unit-model schedule within the same budget is predicted faster.
        let unit = Plan::new(policy, alpha, len, Budget::Units(units)).unwrap();
        let unit_time = predict(w, setup, &Verified::new(Schedule::from_plan(&unit)).unwrap());
        prop_assert!(predicted <= unit_time * (1.0 + 1e-9), "weighted {} unit {}", predicted, unit_time);
    }
}

#[test]
fn planning_the_paper_setting_fits_in_the_table_limit() {
    // T = 1000 at 20% of store-all with alpha = 3: the benchmark's largest.
    let alpha = Alpha::new(3.0).unwrap();
    let ticks = alpha
        .to_ticks(Budget::Percent(20.0).units(alpha, 1000))
        .unwrap();
    let w = Weights {
        forward: 1.0,
        forward_tape: 1.05,
        backward: 1.6,
        copy: 0.01,
        from_tape: 0.04,
    };
    let table = WeightedTable::build(Policy::Msm, alpha, 1000, ticks, w).unwrap();
    for pct in [1.0, 5.0, 20.0] {
        let plan = Plan::weighted(&table, Budget::Percent(pct)).unwrap();
        verify(&Schedule::from_plan(&plan)).unwrap();
    }
}

#[test]
fn budgets_beyond_the_table_are_planned_with_its_capacity() {
    let alpha = Alpha::new(2.0).unwrap();
    let table = WeightedTable::build(Policy::Msm, alpha, 30, Ticks(10), Weights::UNIT).unwrap();
    let plan = Plan::weighted(&table, Budget::Units(40.0)).unwrap();
    assert_eq!(plan.root_budget(), Ticks(10));
    assert!(plan.peak() <= Ticks(10));
    verify(&Schedule::from_plan(&plan)).unwrap();
}
