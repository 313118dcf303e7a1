//! The segment tree of a plan, walked in execution order.
//!
//! One traversal serves every consumer: the plan's cost and peak, the lazy
//! schedule stream and anything else that needs the plan move by move. Its
//! memory is the recursion's stack (a few entries per live checkpoint), never
//! proportional to `T` or the budget.

use super::choice::Choice;
use super::plan::Strategy;
use super::weighted::Origin;
use crate::units::{Alpha, Ticks};

/// Where a segment's start state is stored: `h[0]`, or a checkpoint at an
/// offset of the checkpoint stack (in ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stored {
    /// `h[0]`, held by the caller.
    Initial,
    /// A hidden state at this offset.
    Hidden(u32),
    /// A tape at this offset (a tape also yields its step's state).
    Tape(u32),
}

impl Stored {
    fn origin(self) -> Origin {
        match self {
            Stored::Initial | Stored::Hidden(_) => Origin::Hidden,
            Stored::Tape(_) => Origin::Tape,
        }
    }
}

/// A segment of the recursion: `len` steps after the stored `h[start]`, with
/// `budget` ticks free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The state it starts from.
    pub start: u32,
    /// Its steps.
    pub len: u32,
    /// The ticks free for its checkpoints.
    pub budget: Ticks,
    /// Where `h[start]` is stored.
    pub from: Stored,
}

/// One event of the walk, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A segment starts with `choice`. A checkpoint it stores (for `Hidden`
    /// or `Tape`) goes at offset `slot` of the checkpoint stack.
    Enter {
        /// The segment.
        segment: Segment,
        /// Its first move.
        choice: Choice,
        /// Where its checkpoint goes.
        slot: u32,
    },
    /// The right part of a `Tape` move is done: backpropagate `step` from the
    /// tape at offset `slot`.
    Backward {
        /// The step.
        step: u32,
        /// The tape's offset.
        slot: u32,
    },
    /// The checkpoint is no longer needed.
    Free(Stored),
}

/// One entry of the walk's stack: what is left to do.
pub(crate) enum Task {
    Expand(Segment),
    Backward { step: u32, slot: u32 },
    Free(Stored, u32),
}

/// A lazy walk over a plan's segments (an iterator of [`Event`]s).
pub struct Walk<'a> {
    strategy: &'a Strategy,
    alpha: Alpha,
    stack: Vec<Task>,
    live: u32,
}

impl<'a> Walk<'a> {
    /// The walk of `len` steps from `h[0]` with `budget` ticks.
    pub fn new(strategy: &'a Strategy, alpha: Alpha, len: u32, budget: Ticks) -> Self {
        Self::reusing(strategy, alpha, len, budget, Vec::new())
    }

    /// [`Walk::new`] on the stack of an earlier walk ([`Walk::into_stack`]),
    /// so a walk as deep as one before it allocates nothing.
    pub(crate) fn reusing(
        strategy: &'a Strategy,
        alpha: Alpha,
        len: u32,
        budget: Ticks,
        mut stack: Vec<Task>,
    ) -> Self {
        stack.clear();
        stack.push(Task::Expand(Segment {
            start: 0,
            len,
            budget,
            from: Stored::Initial,
        }));
        Walk {
            strategy,
            alpha,
            stack,
            live: 0,
        }
    }

    /// The walk's stack, for a later walk to reuse.
    pub(crate) fn into_stack(self) -> Vec<Task> {
        self.stack
    }

    /// The ticks of checkpoints live after the last event.
    pub fn live(&self) -> Ticks {
        Ticks(self.live)
    }

    /// Entries on the walk's stack (its memory, for tests).
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    fn enter(&mut self, seg: Segment) -> Event {
        let strategy = self.strategy;
        let choice = strategy.choice_from(seg.len, seg.budget, seg.from.origin());
        let slot = self.live;
        let s = seg.start;
        match choice {
            Choice::End => self.stack.push(Task::Expand(Segment {
                len: seg.len - 1,
                ..seg
            })),
            Choice::Hidden(y) => {
                let h = self.alpha.hidden();
                self.live += h.0;
                self.stack.extend([
                    Task::Expand(Segment { len: y, ..seg }),
                    Task::Free(Stored::Hidden(slot), h.0),
                    Task::Expand(Segment {
                        start: s + y,
                        len: seg.len - y,
                        budget: strategy.after_storing(seg.budget, h),
                        from: Stored::Hidden(slot),
                    }),
                ]);
            }
            Choice::Tape(y) => {
                let a = self.alpha.tape();
                self.live += a.0;
                self.stack.extend([
                    Task::Expand(Segment { len: y - 1, ..seg }),
                    Task::Free(Stored::Tape(slot), a.0),
                    Task::Backward { step: s + y, slot },
                    Task::Expand(Segment {
                        start: s + y,
                        len: seg.len - y,
                        budget: strategy.after_storing(seg.budget, a),
                        from: Stored::Tape(slot),
                    }),
                ]);
            }
        }
        Event::Enter {
            segment: seg,
            choice,
            slot,
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            match self.stack.pop()? {
                Task::Expand(seg) if seg.len == 0 => continue,
                Task::Expand(seg) => return Some(self.enter(seg)),
                Task::Backward { step, slot } => return Some(Event::Backward { step, slot }),
                Task::Free(stored, ticks) => {
                    self.live -= ticks;
                    return Some(Event::Free(stored));
                }
            }
        }
    }
}

/// Forward steps and peak ticks of the schedule `strategy` expands to, in one
/// walk.
pub(crate) fn measure(strategy: &Strategy, alpha: Alpha, len: u32, budget: Ticks) -> (u64, Ticks) {
    let mut walk = Walk::new(strategy, alpha, len, budget);
    let (mut steps, mut peak) = (0u64, Ticks(0));
    while let Some(event) = walk.next() {
        if let Event::Enter {
            segment, choice, ..
        } = event
        {
            steps += u64::from(match choice {
                Choice::End => segment.len,
                Choice::Hidden(y) | Choice::Tape(y) => y,
            });
            peak = peak.max(walk.live());
        }
    }
    (steps, peak)
}
