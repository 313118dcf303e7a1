//! Property tests of the planner against the recursion of the planning model.

use bptt::planner::brute_force_costs;
use bptt::{Alpha, Budget, Choice, Plan, Policy, Table, Ticks};
use proptest::prelude::*;

fn alphas() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![1.0, 1.5, 2.0, 2.25, 3.0, 3.5, 4.0, 5.0, 7.0 / 3.0])
}

fn dynamic_policies() -> impl Strategy<Value = Policy> {
    prop::sample::select(vec![Policy::Hsm, Policy::Ism, Policy::Msm])
}

/// Griewank and Walther's minimal number of extra steps for `t` steps with `s`
/// snapshots: `p(t, s) = r t - C(s + r, r - 1)` where `C(s+r-1, s) < t <= C(s+r, s)`.
fn revolve_extra(t: u64, s: u64) -> u64 {
    fn binomial(n: u64, k: u64) -> u64 {
        let k = k.min(n - k);
        (0..k).fold(1u128, |acc, i| acc * u128::from(n - i) / u128::from(i + 1)) as u64
    }
    let mut r = 0;
    while binomial(s + r, s) < t {
        r += 1;
    }
    if r == 0 {
        return 0;
    }
    r * t - binomial(s + r, r - 1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The fast table equals the brute-force recursion everywhere.
    #[test]
    fn table_equals_brute_force(policy in dynamic_policies(), a in alphas(), len in 1u32..70, budget in 0u32..48) {
        let alpha = Alpha::new(a).unwrap();
        let table = Table::build(policy, alpha, len, Ticks(budget)).unwrap();
        let brute = brute_force_costs(policy, alpha, len, Ticks(budget));
        for t in 0..=len {
            for m in 0..=budget {
                prop_assert_eq!(table.cost(t, Ticks(m)), Some(brute[t as usize][m as usize]), "t {} m {}", t, m);
            }
        }
    }

    /// The same on longer sequences and budgets, where the branch and bound
    /// prunes whole blocks of split points.
    #[test]
    fn longer_table_equals_brute_force(
        policy in dynamic_policies(),
        a in prop::sample::select(vec![1.0, 1.5, 3.5, 4.0]),
        len in 1u32..150,
        budget in 0u32..90,
    ) {
        let alpha = Alpha::new(a).unwrap();
        let table = Table::build(policy, alpha, len, Ticks(budget)).unwrap();
        let brute = brute_force_costs(policy, alpha, len, Ticks(budget));
        for t in 0..=len {
            for m in 0..=budget {
                prop_assert_eq!(table.cost(t, Ticks(m)), Some(brute[t as usize][m as usize]), "t {} m {}", t, m);
            }
        }
    }

    /// MSM is never worse than HSM or ISM, and no policy gets dearer with more memory.
    #[test]
    fn msm_dominates_and_cost_falls_with_memory(a in alphas(), len in 1u32..120, budget in 0u32..60) {
        let alpha = Alpha::new(a).unwrap();
        let tables = [Policy::Hsm, Policy::Ism, Policy::Msm]
            .map(|p| Table::build(p, alpha, len, Ticks(budget)).unwrap());
        for t in 0..=len {
            for m in 0..=budget {
                let [h, i, x] = [0, 1, 2].map(|k| tables[k].cost(t, Ticks(m)).unwrap());
                prop_assert!(x <= h.min(i));
                if m > 0 {
                    for table in &tables {
                        prop_assert!(table.cost(t, Ticks(m)) <= table.cost(t, Ticks(m - 1)));
                    }
                }
            }
        }
    }

    /// HSM is Revolve: Q(t, m) = t + p(t, m + 1).
    #[test]
    fn hsm_is_revolve(len in 1u32..400, m in 0u32..30) {
        let alpha = Alpha::new(1.0).unwrap();
        let table = Table::build(Policy::Hsm, alpha, len, Ticks(m)).unwrap();
        prop_assert_eq!(table.cost(len, Ticks(m)).unwrap(), u64::from(len) + revolve_extra(u64::from(len), u64::from(m) + 1));
    }

    /// Every plan's walked cost equals its table's cost and its peak is within budget.
    #[test]
    fn plans_cost_what_the_table_says_within_budget(policy in dynamic_policies(), a in alphas(), len in 1u32..200, units in 0.0f64..100.0) {
        let alpha = Alpha::new(a).unwrap();
        let plan = Plan::new(policy, alpha, len, Budget::Units(units)).unwrap();
        let table = Table::build(policy, alpha, len, plan.root_budget()).unwrap();
        prop_assert_eq!(Some(plan.forward_steps()), table.cost(len, plan.root_budget()));
        prop_assert!(alpha.to_units(plan.peak()) <= units + 1e-9);
    }
}

#[test]
fn hsm_with_no_memory_is_quadratic() {
    let alpha = Alpha::new(4.0).unwrap();
    let table = Table::build(Policy::Hsm, alpha, 300, Ticks(0)).unwrap();
    for t in 0..=300u64 {
        assert_eq!(table.cost(t as u32, Ticks(0)), Some(t * (t + 1) / 2));
    }
}

#[test]
fn large_table_equals_brute_force_at_the_worked_example_scale() {
    let alpha = Alpha::new(4.0).unwrap();
    let (len, budget) = (400, Ticks(80));
    let table = Table::build(Policy::Msm, alpha, len, budget).unwrap();
    let brute = brute_force_costs(Policy::Msm, alpha, len, budget);
    for t in 0..=len {
        for m in 0..=budget.0 {
            assert_eq!(table.cost(t, Ticks(m)), Some(brute[t as usize][m as usize]));
        }
    }
}

/// Tables this large are filled by two threads (one column each, the later
/// one waiting for the rows it reads): they must still equal the recursion,
/// and every recorded choice must achieve its cost.
#[test]
fn two_thread_tables_equal_brute_force() {
    for a in [1.0, 1.5, 3.5, 4.0] {
        let alpha = Alpha::new(a).unwrap();
        let (h, tape) = (u64::from(alpha.hidden().0), u64::from(alpha.tape().0));
        let (len, budget) = (600, Ticks(130));
        for policy in [Policy::Hsm, Policy::Ism, Policy::Msm] {
            let table = Table::build(policy, alpha, len, budget).unwrap();
            let brute = brute_force_costs(policy, alpha, len, budget);
            for t in 0..=len {
                for m in 0..=budget.0 {
                    let cost = table.cost(t, Ticks(m));
                    assert_eq!(
                        cost,
                        Some(brute[t as usize][m as usize]),
                        "{policy} alpha {a} t {t} m {m}"
                    );
                    let (t, m) = (t as usize, m as usize);
                    let achieved = match table.choice(t as u32, Ticks(m as u32)) {
                        Choice::End => t as u64 + brute[t.saturating_sub(1)][m],
                        Choice::Hidden(y) => {
                            let y = y as usize;
                            y as u64 + brute[t - y][m - h as usize] + brute[y][m]
                        }
                        Choice::Tape(y) => {
                            let y = y as usize;
                            y as u64 + brute[t - y][m - tape as usize] + brute[y - 1][m]
                        }
                    };
                    assert_eq!(cost, Some(achieved), "{policy} alpha {a} t {t} m {m}");
                }
            }
        }
    }
}
