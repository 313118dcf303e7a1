//! Every schedule of every policy verifies; tampered schedules do not.

use bptt::schedule::{HiddenSlot, MemorySizes, Tape, TapeSlot};
use bptt::{Alpha, Budget, Op, Plan, Policy, Schedule, simulate, verify};
use proptest::prelude::*;

fn policies() -> impl Strategy<Value = Policy> {
    prop::sample::select(vec![
        Policy::Hsm,
        Policy::Ism,
        Policy::Msm,
        Policy::StoreAll,
        Policy::Sqrt,
        Policy::Interval(1),
        Policy::Interval(3),
        Policy::Interval(10),
    ])
}

fn schedule(policy: Policy, alpha: f64, len: u32, budget: Budget) -> Schedule {
    let plan = Plan::new(policy, Alpha::new(alpha).unwrap(), len, budget).unwrap();
    Schedule::from_plan(&plan)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_schedule_verifies_within_its_budget(
        policy in policies(),
        alpha in prop::sample::select(vec![1.0, 1.5, 3.5, 4.0, 2.2]),
        len in 1u32..300,
        percent in 0.0f64..=100.0,
    ) {
        let budget = if policy.is_dynamic() { Budget::Percent(percent) } else { Budget::Percent(100.0) };
        let plan = Plan::new(policy, Alpha::new(alpha).unwrap(), len, budget).unwrap();
        let schedule = Schedule::from_plan(&plan);
        let report = verify(&schedule).unwrap();
        prop_assert_eq!(report.forward_steps, plan.forward_steps());
        prop_assert_eq!(report.backward_steps, u64::from(len));
        prop_assert_eq!(report.peak, plan.peak());
        prop_assert!(report.peak <= schedule.budget());
        let backward: Vec<u32> = schedule.ops().iter().filter_map(|op| match op {
            Op::Backward { step, .. } => Some(*step),
            _ => None,
        }).collect();
        prop_assert_eq!(backward, (1..=len).rev().collect::<Vec<_>>());
        let sizes = MemorySizes { state_bytes: 1000, tape_bytes: (1000.0 * alpha) as u64 };
        let sim = simulate(&schedule, sizes).unwrap();
        prop_assert!(sim.peak_checkpoint_bytes <= sim.arena_checkpoint_bytes);
    }
}

/// Applies `tamper` to the ops of a small MSM schedule and expects the verifier
/// to reject the result with a message containing `expected`.
fn rejects(tamper: impl FnOnce(&mut Vec<Op>), expected: &str) {
    rejects_in(
        schedule(Policy::Msm, 2.0, 30, Budget::Units(8.0)),
        tamper,
        expected,
    );
}

fn rejects_in(good: Schedule, tamper: impl FnOnce(&mut Vec<Op>), expected: &str) {
    verify(&good).expect("the untampered schedule verifies");
    let mut ops = good.ops().to_vec();
    tamper(&mut ops);
    let err = verify(&good.with_ops(ops)).unwrap_err().to_string();
    assert!(err.contains(expected), "{err}");
}

fn position(ops: &[Op], pred: impl Fn(&Op) -> bool) -> usize {
    ops.iter().position(pred).expect("the op exists")
}

#[test]
fn a_missing_forward_step_is_caught() {
    rejects(
        |ops| {
            let i = position(ops, |op| matches!(op, Op::Forward { .. }));
            ops.remove(i);
        },
        "needs h[",
    );
}

#[test]
fn backward_out_of_order_is_caught() {
    rejects(
        |ops| {
            let i = position(ops, |op| matches!(op, Op::Backward { .. }));
            let j = i + 1 + position(&ops[i + 1..], |op| matches!(op, Op::Backward { .. }));
            ops.swap(i, j);
        },
        "due",
    );
}

#[test]
fn a_read_of_a_freed_slot_is_caught() {
    rejects(
        |ops| {
            let i = position(ops, |op| matches!(op, Op::FreeTape(_)));
            let free = ops.remove(i);
            let j = position(ops, |op| {
                matches!(
                    op,
                    Op::ForwardTape {
                        tape: Tape::Slot(_),
                        ..
                    }
                )
            });
            ops.insert(j + 1, free);
        },
        "while free",
    );
}

#[test]
fn overwriting_a_live_slot_is_caught() {
    // Interval checkpoints under store-all's budget: memory is not what fails.
    let roomy = schedule(Policy::Interval(4), 2.0, 30, Budget::Percent(100.0));
    rejects_in(
        roomy,
        |ops| {
            let i = position(ops, |op| matches!(op, Op::FreeTape(_)));
            ops.remove(i);
        },
        "overwritten",
    );
}

#[test]
fn a_wrong_slot_is_caught() {
    rejects(
        |ops| {
            let i = position(ops, |op| matches!(op, Op::StoreHidden { .. }));
            if let Op::StoreHidden { state, .. } = ops[i] {
                ops[i] = Op::StoreHidden {
                    slot: HiddenSlot(99),
                    state,
                };
            }
        },
        "beyond",
    );
}

#[test]
fn a_missing_backward_is_caught() {
    rejects(
        |ops| {
            let i = ops
                .iter()
                .rposition(|op| matches!(op, Op::Backward { .. }))
                .unwrap();
            ops.remove(i);
        },
        "stop before step 1",
    );
}

#[test]
fn holding_a_checkpoint_too_long_is_caught() {
    // Its ticks of the stack are reused while it is still live.
    rejects(
        |ops| {
            let i = position(ops, |op| matches!(op, Op::FreeHidden(_)));
            let free = ops.remove(i);
            ops.push(free);
        },
        "overwritten",
    );
}

#[test]
fn extra_forward_steps_are_caught() {
    rejects(
        |ops| {
            let i = position(ops, |op| {
                matches!(
                    op,
                    Op::ForwardTape {
                        tape: Tape::Slot(TapeSlot(_)),
                        ..
                    }
                )
            });
            if let Op::ForwardTape { step, .. } = ops[i] {
                ops.insert(
                    i,
                    Op::Restore {
                        from: bptt::schedule::Source::Initial,
                        state: 0,
                    },
                );
                ops.splice(i + 1..i + 1, (1..step).map(|s| Op::Forward { step: s }));
            }
        },
        "promised",
    );
}

#[test]
fn schedule_text_names_slots() {
    let s = schedule(Policy::Msm, 2.0, 6, Budget::Units(3.0));
    let text: Vec<String> = s.ops().iter().map(ToString::to_string).collect();
    assert_eq!(text[0], "restore   h[0] <- h0");
    assert!(text.iter().any(|l| l.starts_with("backward  step 6")));
}
