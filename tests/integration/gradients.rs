//! Gradients through the interpreter: bitwise identical to plain BPTT for every
//! policy and budget, and plain BPTT agrees with finite differences; for the
//! runtime's cells and for the cells derived from `cells/*.cell`.

use crate::common::{CELLS, DERIVED, Problem, bits};
use bptt::{Budget, Policy};

const POLICIES: [Policy; 7] = [
    Policy::Hsm,
    Policy::Ism,
    Policy::Msm,
    Policy::StoreAll,
    Policy::Sqrt,
    Policy::Interval(3),
    Policy::Interval(7),
];

#[test]
fn every_policy_and_budget_gives_plain_bptt_bitwise() {
    for name in CELLS.into_iter().chain(DERIVED) {
        let problem = Problem::new(name, 37, 3, 7);
        let (want_loss, want) = problem.plain_bptt();
        for policy in POLICIES {
            let budgets: &[f64] = if policy.is_dynamic() {
                &[0.0, 2.0, 5.0, 20.0, 100.0]
            } else {
                &[100.0]
            };
            for &percent in budgets {
                let (loss, grads) = problem.run(policy, Budget::Percent(percent));
                let case = format!("{name} {policy} {percent}%");
                assert_eq!(loss.to_bits(), want_loss.to_bits(), "loss of {case}");
                assert!(
                    grads
                        .cell
                        .iter()
                        .zip(&want.cell)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "cell grads of {case}"
                );
                assert!(
                    grads
                        .readout
                        .iter()
                        .zip(&want.readout)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "read-out grads of {case}"
                );
                assert!(
                    grads
                        .h0
                        .iter()
                        .zip(&want.h0)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "dh0 of {case}"
                );
            }
        }
    }
}

/// Long enough for several windows of deferred weight gradients (43 steps
/// each at batch 3) and a partial last one: every schedule still gives
/// plain BPTT's bits, for the runtime's cells and the derived ones, which
/// defer theirs too.
#[test]
fn windows_of_deferred_weight_gradients_give_plain_bptt_bitwise() {
    for name in CELLS.into_iter().chain(DERIVED) {
        let problem = Problem::new(name, 100, 3, 4);
        let (want_loss, want) = problem.plain_bptt();
        for (policy, percent) in [(Policy::StoreAll, 100.0), (Policy::Msm, 10.0)] {
            let (loss, grads) = problem.run(policy, Budget::Percent(percent));
            assert_eq!(
                (loss.to_bits(), bits(&grads)),
                (want_loss.to_bits(), bits(&want)),
                "{name} {policy} {percent}%"
            );
        }
    }
}

/// Central finite differences of the interpreter's loss (f32 cells, loss
/// accumulated in f64). Gradients here are of order 1e-2 (the loss is a mean);
/// eps = 3e-3: the layer norms of `cells/layernorm_lstm.cell` curve enough
/// that at 1e-2 the truncation error (which scales as eps², measured) reached
/// 4.4 tolerances; at 3e-3 every cell stays below 0.41 of the tolerance, 5e-5
/// absolute plus 1% relative, which still rejects gradients off by 5%
/// (checked below). The matrix-memory cells (`linear_attention`, `mlstm`,
/// `tests/cells/matrix.cell`) measured at most 0.10 of it, and above 4.3
/// with the 5% skew: their products are bilinear, so the truncation error
/// comes only from the gates around them.
///
/// Returns the worst `|fd - analytic| / tolerance` over every `dh0` entry and
/// about 40 cell parameters, with the analytic gradient scaled by `skew`.
fn worst_violation(name: &str, policy: Policy, budget: Budget, skew: f64) -> f64 {
    let mut problem = Problem::new(name, 9, 2, 11);
    let (_, grads) = problem.run(policy, budget);
    let eps = 3e-3f32;
    let central = |problem: &mut Problem, set: &dyn Fn(&mut Problem, f32)| {
        set(problem, eps);
        let (up, _) = problem.run(policy, budget);
        set(problem, -eps);
        let (down, _) = problem.run(policy, budget);
        set(problem, 0.0);
        (up - down) / (2.0 * f64::from(eps))
    };
    let mut worst = 0.0f64;
    let mut judge = |fd: f64, an: f64| {
        let an = an * skew;
        worst = worst.max((fd - an).abs() / (5e-5 + 0.01 * an.abs().max(fd.abs())));
    };
    let n = problem.cell.params().len();
    for i in (0..n).step_by((n / 40).max(1)) {
        let orig = problem.cell.params()[i];
        let fd = central(&mut problem, &|p, d| p.cell.params_mut()[i] = orig + d);
        judge(fd, f64::from(grads.cell[i]));
    }
    for j in 0..problem.h0.len() {
        let at = [j / problem.h0.ncols(), j % problem.h0.ncols()];
        let orig = problem.h0[at];
        let fd = central(&mut problem, &|p, d| p.h0[at] = orig + d);
        judge(fd, f64::from(grads.h0[at]));
    }
    worst
}

#[test]
fn store_all_matches_finite_differences() {
    for name in CELLS.into_iter().chain(DERIVED) {
        let worst = worst_violation(name, Policy::StoreAll, Budget::Percent(100.0), 1.0);
        assert!(worst <= 1.0, "{name}: worst violation {worst}");
    }
}

#[test]
fn a_tight_msm_budget_matches_finite_differences() {
    for name in CELLS.into_iter().chain(DERIVED) {
        let worst = worst_violation(name, Policy::Msm, Budget::Units(2.0), 1.0);
        assert!(worst <= 1.0, "{name}: worst violation {worst}");
    }
}

#[test]
fn the_finite_difference_check_rejects_a_gradient_five_percent_off() {
    for name in CELLS.into_iter().chain(DERIVED) {
        let worst = worst_violation(name, Policy::StoreAll, Budget::Percent(100.0), 1.05);
        assert!(
            worst > 1.0,
            "{name}: a 5% error passed (worst violation {worst})"
        );
    }
}

/// A long schedule runs streamed from its plan (its calls never listed):
/// the same calls as the listed schedule, and bitwise its loss and
/// gradients.
#[test]
fn a_long_schedule_streams_bitwise_as_listed() {
    use bptt::schedule::{StreamMemory, Verified};
    use bptt::{Alpha, Call, Lowered, Plan, Schedule};
    let problem = Problem::new("rnn", 20_000, 1, 3);
    let alpha = Alpha::new(problem.cell.alpha()).unwrap();
    let plan = Plan::new(Policy::Msm, alpha, problem.len(), Budget::Percent(1.0)).unwrap();
    let streamed = Lowered::new(&Verified::stream(plan.clone()).unwrap());
    let listed = Lowered::new(&Verified::new(Schedule::from_plan(&plan)).unwrap());
    let calls = |lowered: &Lowered| {
        let mut calls: Vec<Call> = Vec::new();
        lowered.for_each(&mut StreamMemory::default(), |call| calls.push(call));
        calls
    };
    let (streamed_calls, listed_calls) = (calls(&streamed), calls(&listed));
    assert_eq!(streamed_calls, listed_calls);
    assert_eq!(streamed.count(), listed_calls.len());
    assert_eq!(streamed.final_grad(), listed.final_grad());
    let (loss, grads) = problem.run_on(plan.clone());
    let (want_loss, want) = problem.run_on(Schedule::from_plan(&plan));
    assert_eq!(loss.to_bits(), want_loss.to_bits());
    assert_eq!(bits(&grads), bits(&want));
}
