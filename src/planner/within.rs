//! A budget given in bytes: the plan of a policy with the most checkpoints
//! whose whole byte count fits ([`plan_within`]).

use crate::error::{Error, MemoryShortfall};
use crate::policy::Policy;
use crate::units::{Alpha, Budget, Ticks};

use super::Plan;

/// The plan of `policy` with the most checkpoint memory whose whole need,
/// `need(plan)` bytes, fits in `memory` bytes: a budget given in bytes.
///
/// `state_bytes` is one hidden state of the whole batch. The budget is
/// searched between one that fits and one that does not, each probe the
/// linear guess (the bytes left under `memory` spent on checkpoint ticks)
/// or, when that guess does not fit, the midpoint, until the plan is within
/// a thousandth of `memory` or one tick more would not fit (a plan's other
/// needs, such as its schedule, may change with its budget, so one guess is
/// not enough). A policy that is not dynamic has one plan, store-all's
/// budget.
///
/// ```
/// use bptt::{Alpha, Policy, planner::plan_within};
/// let alpha = Alpha::new(3.0).unwrap();
/// // 10 kB of working set, then 1 kB a hidden state of checkpoints.
/// let need = |plan: &bptt::Plan| 10_000 + plan.summary().peak_units.ceil() as u128 * 1000;
/// let plan = plan_within(30_000, Policy::Msm, alpha, 100, 1000, need).unwrap();
/// assert!(need(&plan) <= 30_000 && plan.forward_steps() > 100);
/// ```
///
/// # Errors
///
/// [`Error::MemoryTooSmall`], naming both figures, when not even the plan
/// with the fewest checkpoints fits; a planning error if that plan cannot
/// be made.
pub fn plan_within(
    memory: u64,
    policy: Policy,
    alpha: Alpha,
    len: u32,
    state_bytes: u64,
    need: impl Fn(&Plan) -> u128,
) -> Result<Plan, Error> {
    let refuse = |plan: &Plan| {
        Error::MemoryTooSmall(MemoryShortfall {
            memory,
            need: need(plan),
            policy,
            len,
            units: plan.summary().peak_units,
        })
    };
    let memory = u128::from(memory);
    let plan_of = |ticks: u128| {
        Plan::new(
            policy,
            alpha,
            len,
            Budget::Units(alpha.to_units(Ticks(ticks as u32))),
        )
    };
    if !policy.is_dynamic() {
        let plan = Plan::new(policy, alpha, len, Budget::Percent(100.0))?;
        return if need(&plan) <= memory {
            Ok(plan)
        } else {
            Err(refuse(&plan))
        };
    }
    let most = u128::from(alpha.to_ticks(alpha.store_all_units(len))?.0);
    let per_tick = u128::from(state_bytes.max(1)).div_ceil(u128::from(alpha.denominator()));
    // `hi` does not fit; `best`, if any, is the plan of `lo`, which does.
    // Probes are the linear guess (the bytes over or under `memory` as
    // ticks) while it falls between them, the midpoint otherwise.
    let (mut hi, mut best): (u128, Option<(u128, Plan)>) = (most + 1, None);
    let mut probe = most;
    for _ in 0..64 {
        // A budget too small to plan (too many forward steps) does not fit.
        let plan = plan_of(probe).ok();
        let used = plan.as_ref().map(&need);
        match (plan, used) {
            (Some(plan), Some(used)) if used <= memory => {
                let under = memory - used;
                best = Some((probe, plan));
                if under <= memory / 1000 || hi - probe <= 1 {
                    break;
                }
                let linear = probe + under / per_tick;
                probe = if linear < hi {
                    linear.max(probe + 1)
                } else {
                    probe + (hi - probe) / 2
                };
            }
            (_, used) => {
                hi = probe;
                let lo = best.as_ref().map_or(0, |(lo, _)| *lo);
                if probe == lo {
                    break;
                }
                let over = used.map_or(0, |u| u - memory) / per_tick;
                probe = match best {
                    None if over > 0 && over < probe => probe - over,
                    None => probe / 2,
                    Some(_) => lo + (hi - lo) / 2,
                };
                if best.is_some() && probe == lo {
                    break;
                }
            }
        }
    }
    match best {
        Some((_, plan)) => Ok(plan),
        // Nothing fit, not even the plans too expensive to make: refuse
        // with the plan of a budget that can be planned.
        None => {
            let units = Plan::sufficient_units(policy, alpha, len).unwrap_or(0.0);
            Err(Plan::new(policy, alpha, len, Budget::Units(units))
                .map_or_else(|e| e, |plan| refuse(&plan)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A need like training's: fixed bytes, the checkpoints at the plan's
    /// peak, and a schedule that grows as the budget shrinks.
    fn need_of(plan: &Plan) -> u128 {
        50_000
            + plan.summary().peak_units.ceil() as u128 * 1024
            + u128::from(plan.forward_steps()) * 16
    }

    #[test]
    fn a_byte_budget_is_filled_to_within_a_thousandth_or_to_the_next_tick() {
        let alpha = Alpha::new(3.0).unwrap();
        for (len, memory) in [
            (1000u32, 400_000u64),
            (1000, 2_000_000),
            (20_000, 3_000_000),
            (5000, 600_000),
        ] {
            let plan = plan_within(memory, Policy::Msm, alpha, len, 1024, need_of).unwrap();
            let used = need_of(&plan);
            assert!(used <= u128::from(memory), "T = {len}: {used} > {memory}");
            let more = Plan::new(
                Policy::Msm,
                alpha,
                len,
                Budget::Units(alpha.to_units(Ticks(plan.budget().0 + 1))),
            )
            .unwrap();
            assert!(
                used * 1000 >= u128::from(memory) * 999 || need_of(&more) > u128::from(memory),
                "T = {len}, {memory} bytes: {used} used, and one tick more would fit"
            );
        }
        // Store-all fits: it is the plan.
        let plan = plan_within(1 << 40, Policy::Msm, alpha, 100, 1024, need_of).unwrap();
        assert_eq!(plan.forward_steps(), 100);
    }

    #[test]
    fn a_byte_budget_below_any_plan_is_refused_with_both_figures() {
        let alpha = Alpha::new(3.0).unwrap();
        let err = plan_within(40_000, Policy::Msm, alpha, 1000, 1024, need_of).unwrap_err();
        let Error::MemoryTooSmall(MemoryShortfall {
            memory,
            need,
            policy,
            len,
            ..
        }) = err
        else {
            panic!("{err}")
        };
        assert_eq!((memory, policy, len), (40_000, Policy::Msm, 1000));
        assert!(need > 40_000, "{need}");
        let text = err.to_string();
        assert!(
            text.contains("40000 bytes") && text.contains(&format!("{need} bytes")),
            "{text}"
        );
        let err = plan_within(40_000, Policy::StoreAll, alpha, 1000, 1024, need_of)
            .unwrap_err()
            .to_string();
        assert!(err.contains("store-all"), "{err}");
    }

    /// At T = 100,000 a budget of no checkpoints cannot be planned at all
    /// (it would need more than 2^30 forward steps): a memory too small is
    /// still refused with both figures, those of a budget that can be
    /// planned (`Plan::sufficient_units`), not with the planner's error
    /// about units.
    #[test]
    fn a_byte_budget_below_the_fewest_plannable_checkpoints_names_that_plan() {
        let alpha = Alpha::new(3.0).unwrap();
        let len = 100_000;
        let of = |ticks: u32| {
            Plan::new(
                Policy::Msm,
                alpha,
                len,
                Budget::Units(alpha.to_units(Ticks(ticks))),
            )
        };
        assert!(of(0).is_err());
        let err = plan_within(40_000, Policy::Msm, alpha, len, 1024, need_of).unwrap_err();
        let text = err.to_string();
        let Error::MemoryTooSmall(MemoryShortfall { memory, units, .. }) = err else {
            panic!("{err}")
        };
        assert_eq!(memory, 40_000);
        assert!(units > 0.0, "{text}");
        assert!(text.starts_with("40000 bytes are less than"), "{text}");
    }
}
