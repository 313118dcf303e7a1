//! Expanding a plan into a straight-line schedule.

use super::Schedule;
use super::op::{HiddenSlot, Op, Source, Tape, TapeSlot};
use crate::planner::{Choice, Plan};
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
    /// Pop the slot counter of this kind (the slot just freed was the top).
    Release(Op),
}

/// Expands `plan` into operations over numbered slots.
///
/// Slots nest like the recursion, so each kind's slots are a stack: a new
/// slot takes the number of slots of its kind live at that moment.
pub(super) fn expand(plan: &Plan) -> Schedule {
    let strategy = plan.strategy();
    let alpha = plan.alpha();
    let mut ops = Vec::new();
    let (mut live_hidden, mut live_tapes) = (0u32, 0u32);
    let (mut hidden_slots, mut tape_slots) = (0u32, 0u32);
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
            Task::Release(op) => {
                match op {
                    Op::FreeHidden(_) => live_hidden -= 1,
                    _ => live_tapes -= 1,
                }
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
        match strategy.choice(seg.len, seg.budget) {
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
                let slot = HiddenSlot(live_hidden);
                live_hidden += 1;
                hidden_slots = hidden_slots.max(live_hidden);
                ops.push(Op::StoreHidden { slot, state: s + y });
                running = Some(s + y);
                stack.push(Task::Expand(Segment { len: y, ..seg }));
                stack.push(Task::Release(Op::FreeHidden(slot)));
                stack.push(Task::Expand(Segment {
                    start: s + y,
                    len: seg.len - y,
                    budget: strategy.after_storing(seg.budget, alpha.hidden()),
                    source: Source::Hidden(slot),
                }));
            }
            Choice::Tape(y) => {
                ops.extend((s + 1..s + y).map(|step| Op::Forward { step }));
                let slot = TapeSlot(live_tapes);
                live_tapes += 1;
                tape_slots = tape_slots.max(live_tapes);
                let tape = Tape::Slot(slot);
                ops.push(Op::ForwardTape { step: s + y, tape });
                running = Some(s + y);
                stack.push(Task::Expand(Segment { len: y - 1, ..seg }));
                stack.push(Task::Release(Op::FreeTape(slot)));
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
        hidden_slots,
        tape_slots,
        ops,
    }
}
