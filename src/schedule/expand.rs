//! Expanding a plan into a straight-line schedule.

use super::Schedule;
use super::op::{HiddenSlot, Op, Source, Tape, TapeSlot};
use crate::planner::{Choice, Origin, Plan};
use crate::units::Ticks;

/// A segment still to expand: `t` steps from the stored `h[start]`.
#[derive(Clone, Copy)]
struct Segment {
    start: u32,
    len: u32,
    budget: Ticks,
    source: Source,
}

/// Work left on the expansion stack, popped in order.
enum Task {
    Expand(Segment),
    Emit(Op),
    /// Free the checkpoint on top of the stack (`ticks` long).
    Release(Op, u32),
}

/// Where a segment's start is stored, as a time-weighted plan tells it apart.
fn origin(source: Source) -> Origin {
    match source {
        Source::Initial | Source::Hidden(_) => Origin::Hidden,
        Source::Tape(_) => Origin::Tape,
    }
}

/// Expands `plan` into operations over checkpoint slots.
///
/// Checkpoints nest like the recursion, so they form one stack: a new slot
/// starts where the live ones end, and is named by that offset in ticks. The
/// stack's height is then exactly the live memory, and its capacity exactly
/// the plan's peak.
pub(super) fn expand(plan: &Plan) -> Schedule {
    let strategy = plan.strategy();
    let alpha = plan.alpha();
    let mut ops = Vec::new();
    let (mut live, mut capacity) = (0u32, 0u32);
    // The state the running buffer holds, if any.
    let mut running: Option<u32> = None;
    let mut stack = vec![Task::Expand(Segment {
        start: 0,
        len: plan.len(),
        budget: plan.root_budget(),
        source: Source::Initial,
    })];
    while let Some(task) = stack.pop() {
        let seg = match task {
            Task::Emit(op) => {
                ops.push(op);
                continue;
            }
            Task::Release(op, ticks) => {
                live -= ticks;
                ops.push(op);
                continue;
            }
            Task::Expand(seg) if seg.len == 0 => continue,
            Task::Expand(seg) => seg,
        };
        if running != Some(seg.start) {
            ops.push(Op::Restore {
                from: seg.source,
                state: seg.start,
            });
        }
        let s = seg.start;
        match strategy.choice_from(seg.len, seg.budget, origin(seg.source)) {
            Choice::End => {
                let last = s + seg.len;
                ops.extend((s + 1..last).map(|step| Op::Forward { step }));
                ops.push(Op::ForwardTape {
                    step: last,
                    tape: Tape::Work,
                });
                ops.push(Op::Backward {
                    step: last,
                    tape: Tape::Work,
                });
                running = Some(last);
                stack.push(Task::Expand(Segment {
                    len: seg.len - 1,
                    ..seg
                }));
            }
            Choice::Hidden(y) => {
                ops.extend((s + 1..=s + y).map(|step| Op::Forward { step }));
                let slot = HiddenSlot(live);
                live += alpha.hidden().0;
                capacity = capacity.max(live);
                ops.push(Op::StoreHidden { slot, state: s + y });
                running = Some(s + y);
                stack.push(Task::Expand(Segment { len: y, ..seg }));
                stack.push(Task::Release(Op::FreeHidden(slot), alpha.hidden().0));
                stack.push(Task::Expand(Segment {
                    start: s + y,
                    len: seg.len - y,
                    budget: strategy.after_storing(seg.budget, alpha.hidden()),
                    source: Source::Hidden(slot),
                }));
            }
            Choice::Tape(y) => {
                ops.extend((s + 1..s + y).map(|step| Op::Forward { step }));
                let slot = TapeSlot(live);
                live += alpha.tape().0;
                capacity = capacity.max(live);
                let tape = Tape::Slot(slot);
                ops.push(Op::ForwardTape { step: s + y, tape });
                running = Some(s + y);
                stack.push(Task::Expand(Segment { len: y - 1, ..seg }));
                stack.push(Task::Release(Op::FreeTape(slot), alpha.tape().0));
                stack.push(Task::Emit(Op::Backward { step: s + y, tape }));
                stack.push(Task::Expand(Segment {
                    start: s + y,
                    len: seg.len - y,
                    budget: strategy.after_storing(seg.budget, alpha.tape()),
                    source: Source::Tape(slot),
                }));
            }
        }
    }
    Schedule {
        policy: plan.policy(),
        alpha,
        len: plan.len(),
        budget: plan.budget(),
        forward_steps: plan.forward_steps(),
        capacity: Ticks(capacity),
        ops,
    }
}
