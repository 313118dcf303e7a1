//! A plan's schedule as a lazy stream of operations.
//!
//! [`OpStream`] turns the events of the plan's [`Walk`] into [`Op`]s one at a
//! time: the runs of forward steps inside a segment are ranges, never lists,
//! so its memory is the recursion's stack and a few pending operations, never
//! proportional to `T` or to the budget. [`Schedule::from_plan`] collects it.

use std::collections::VecDeque;
use std::ops::Range;

use super::Header;
use super::op::{HiddenSlot, Op, Source, Tape, TapeSlot};
use crate::planner::walk::Task;
use crate::planner::{Choice, Event, Plan, Stored, Walk};

/// Operations waiting to be yielded, in order.
enum Pending {
    Op(Op),
    /// `Forward` through each step of the range.
    Forwards(Range<u32>),
}

/// The memory of an [`OpStream`] (the walk's stack and the pending
/// operations), kept between streams so that streaming a plan again, as a
/// runner does every training step, allocates nothing.
#[derive(Default)]
pub struct StreamMemory {
    stack: Vec<Task>,
    pending: VecDeque<Pending>,
}

impl std::fmt::Debug for StreamMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamMemory")
            .field("stack", &self.stack.capacity())
            .field("pending", &self.pending.capacity())
            .finish()
    }
}

/// The operations of a plan's schedule, generated lazily in order.
pub struct OpStream<'a> {
    walk: Walk<'a>,
    header: Header,
    /// The state the running buffer holds, if any.
    running: Option<u32>,
    pending: VecDeque<Pending>,
}

fn source(stored: Stored) -> Source {
    match stored {
        Stored::Initial => Source::Initial,
        Stored::Hidden(offset) => Source::Hidden(HiddenSlot(offset)),
        Stored::Tape(offset) => Source::Tape(TapeSlot(offset)),
    }
}

impl<'a> OpStream<'a> {
    /// The stream of `plan`'s schedule.
    pub fn new(plan: &'a Plan) -> Self {
        Self::reusing(plan, StreamMemory::default())
    }

    /// The stream of `plan`'s schedule in the memory of an earlier stream
    /// ([`OpStream::into_memory`]).
    pub fn reusing(plan: &'a Plan, memory: StreamMemory) -> Self {
        let StreamMemory { stack, mut pending } = memory;
        pending.clear();
        OpStream {
            walk: Walk::reusing(
                plan.strategy(),
                plan.alpha(),
                plan.seq_len(),
                plan.root_budget(),
                stack,
            ),
            header: Header::of(plan),
            running: None,
            pending,
        }
    }

    /// The stream's memory, for a later stream to reuse.
    pub fn into_memory(self) -> StreamMemory {
        StreamMemory {
            stack: self.walk.into_stack(),
            pending: self.pending,
        }
    }

    /// What the schedule promises: length, budget, stack capacity, forward steps.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Entries held by the stream (its memory, in recursion frames and
    /// pending operations): bounded by the live checkpoints, not by `T`.
    pub fn depth(&self) -> usize {
        self.walk.depth() + self.pending.len()
    }

    /// Queues the operations of one walk event.
    fn queue(&mut self, event: Event) {
        let (segment, choice, slot) = match event {
            Event::Backward { step, slot } => {
                let tape = Tape::Slot(TapeSlot(slot));
                self.pending
                    .push_back(Pending::Op(Op::Backward { step, tape }));
                return;
            }
            Event::Free(Stored::Hidden(offset)) => {
                self.pending
                    .push_back(Pending::Op(Op::FreeHidden(HiddenSlot(offset))));
                return;
            }
            Event::Free(Stored::Tape(offset)) => {
                self.pending
                    .push_back(Pending::Op(Op::FreeTape(TapeSlot(offset))));
                return;
            }
            Event::Free(Stored::Initial) => return,
            Event::Enter {
                segment,
                choice,
                slot,
            } => (segment, choice, slot),
        };
        let s = segment.start;
        if self.running != Some(s) {
            self.pending.push_back(Pending::Op(Op::Restore {
                from: source(segment.from),
                state: s,
            }));
        }
        let mut push = |forwards: Range<u32>, ops: &[Op]| {
            self.pending.push_back(Pending::Forwards(forwards));
            self.pending.extend(ops.iter().copied().map(Pending::Op));
        };
        let last = match choice {
            Choice::End => {
                let last = s + segment.len;
                let tape = Tape::Work;
                push(
                    s + 1..last,
                    &[
                        Op::ForwardTape { step: last, tape },
                        Op::Backward { step: last, tape },
                    ],
                );
                last
            }
            Choice::Hidden(y) => {
                let slot = HiddenSlot(slot);
                push(s + 1..s + y + 1, &[Op::StoreHidden { slot, state: s + y }]);
                s + y
            }
            Choice::Tape(y) => {
                let tape = Tape::Slot(TapeSlot(slot));
                push(s + 1..s + y, &[Op::ForwardTape { step: s + y, tape }]);
                s + y
            }
        };
        self.running = Some(last);
    }
}

impl Iterator for OpStream<'_> {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        loop {
            match self.pending.front_mut() {
                Some(Pending::Forwards(range)) => match range.next() {
                    Some(step) => return Some(Op::Forward { step }),
                    None => {
                        self.pending.pop_front();
                    }
                },
                Some(Pending::Op(_)) => match self.pending.pop_front() {
                    Some(Pending::Op(op)) => return Some(op),
                    _ => unreachable!("the front was an op"),
                },
                None => {
                    let event = self.walk.next()?;
                    self.queue(event);
                }
            }
        }
    }
}
