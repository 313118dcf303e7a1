//! The inverse query: the least budget for a given cost.

use super::closed_plan::ClosedPlanner;
use super::plan::TABLE_CELLS;
use super::table::Table;
use crate::error::Error;
use crate::policy::Policy;
use crate::units::{Alpha, Ticks};

/// The least budget, in ticks, at which `policy` backpropagates `len` steps
/// in at most `max_steps` forward steps, or `None` when no budget does.
///
/// Exact where [`super::Plan::new`] would use the table (the table's columns
/// are searched); beyond, a bisection over budgets on the closed planner's
/// cost, exact for HSM, ISM and MSM in its regime and an upper bound of the
/// certified plan elsewhere, so the plan at the answer never exceeds
/// `max_steps`. Costs are non-increasing in the budget, which makes both
/// searches sound.
pub fn least_budget(
    policy: Policy,
    alpha: Alpha,
    len: u32,
    max_steps: u64,
) -> Result<Option<Ticks>, Error> {
    assert!(policy.is_dynamic(), "{policy} is not a dynamic program");
    if len == 0 {
        return Err(Error::ZeroLength);
    }
    let cap = alpha.tape().0.saturating_mul(len - 1);
    let rows = u64::from(len) + 1;
    let table_top = (TABLE_CELLS / rows).saturating_sub(1).min(u64::from(cap)) as u32;
    if TABLE_CELLS >= rows {
        let table = Table::build(policy, alpha, len, Ticks(table_top))?;
        let fits = |m: u32| table.cost(len, Ticks(m)).is_some_and(|q| q <= max_steps);
        if fits(table_top) {
            return Ok(Some(Ticks(first_true(0, table_top, fits))));
        }
        if table_top == cap {
            return Ok(None);
        }
    }
    let closed = ClosedPlanner::new(policy, alpha);
    let fits = |m: u32| closed.bounds(len, Ticks(m)).1 <= max_steps;
    // Above the table, or from zero when even one column is too large.
    let low = if TABLE_CELLS >= rows {
        table_top + 1
    } else {
        0
    };
    Ok(fits(cap).then(|| Ticks(first_true(low, cap, fits))))
}

/// The least budget, in ticks, at which the closed planner's bound on
/// `policy`'s forward steps for `len` steps is at most `max_steps`, or
/// `None` when no budget's is: a budget that suffices, found without
/// building a table (the exact plan never takes more steps than the bound).
pub(crate) fn sufficient_budget(
    policy: Policy,
    alpha: Alpha,
    len: u32,
    max_steps: u64,
) -> Option<Ticks> {
    let cap = alpha.tape().0.saturating_mul(len.max(1) - 1);
    let closed = ClosedPlanner::new(policy, alpha);
    let fits = |m: u32| closed.bounds(len, Ticks(m)).1 <= max_steps;
    fits(cap).then(|| Ticks(first_true(0, cap, fits)))
}

/// The least `m` in `lo..=hi` where the monotone `fits` holds; `fits(hi)` holds.
fn first_true(mut lo: u32, mut hi: u32, fits: impl Fn(u32) -> bool) -> u32 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) { hi = mid } else { lo = mid + 1 }
    }
    hi
}
