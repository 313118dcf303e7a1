//! The verifier: symbolic execution of a schedule.
//!
//! It proves, for one schedule, that every forward step starts from the state
//! it needs, every backward step finds its tape and its incoming gradient,
//! backward steps run `T` down to 1 once each, no slot is overwritten while
//! live or read while free, the live checkpoints never exceed the budget, the
//! checkpoint stack is exactly as large as the peak, and the forward steps
//! equal what the plan promised.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::op::{Op, Source, Tape};
use super::{Header, OpStream, Schedule};
use crate::error::Error;
use crate::planner::Plan;
use crate::units::Ticks;

/// What a verified schedule does, counted by the verifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Forward steps executed (`F` and `F*`).
    pub forward_steps: u64,
    /// Backward steps executed (always `T`).
    pub backward_steps: u64,
    /// The most checkpoint memory live at once, in ticks.
    #[serde(skip)]
    pub peak: Ticks,
    /// The same in hidden-state units.
    pub peak_units: f64,
}

/// Byte sizes of one hidden state and one tape (for a whole batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemorySizes {
    /// Bytes of one hidden state.
    pub state_bytes: u64,
    /// Bytes of one tape.
    pub tape_bytes: u64,
}

/// What a schedule costs on a cell with given sizes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    /// The verifier's counts.
    pub report: Report,
    /// The most checkpoint bytes live at once.
    pub peak_checkpoint_bytes: u64,
    /// Bytes of the checkpoint stack an executor allocates (its capacity).
    pub arena_checkpoint_bytes: u64,
    /// The working set: running state (two buffers), the state rebuilt from a
    /// tape, two gradient buffers and the working tape. Constant in `T`.
    pub working_bytes: u64,
}

/// What a checkpoint holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hidden,
    Tape,
}

/// A live checkpoint: `[start, end)` ticks of the stack.
#[derive(Clone, Copy)]
struct Live {
    end: u32,
    kind: Kind,
    state: u32,
    bytes: u64,
}

struct Machine<'a> {
    schedule: &'a Header,
    /// Live checkpoints by start tick.
    slots: BTreeMap<u32, Live>,
    work_tape: Option<u32>,
    running: Option<u32>,
    next_backward: u32,
    forward_steps: u64,
    live: Ticks,
    peak: Ticks,
    live_bytes: u64,
    peak_bytes: u64,
    sizes: MemorySizes,
}

impl<'a> Machine<'a> {
    fn new(schedule: &'a Header, sizes: MemorySizes) -> Self {
        Machine {
            schedule,
            slots: BTreeMap::new(),
            work_tape: None,
            running: None,
            next_backward: schedule.len,
            forward_steps: 0,
            live: Ticks(0),
            peak: Ticks(0),
            live_bytes: 0,
            peak_bytes: 0,
            sizes,
        }
    }

    /// Puts `h[state]` or the tape of step `state` at `start`, checking that it
    /// fits the stack and overlaps no live checkpoint.
    fn store(
        &mut self,
        start: u32,
        kind: Kind,
        state: u32,
        name: &dyn fmt::Display,
    ) -> Result<(), String> {
        let alpha = self.schedule.alpha;
        let (ticks, bytes) = match kind {
            Kind::Hidden => (alpha.hidden().0, self.sizes.state_bytes),
            Kind::Tape => (alpha.tape().0, self.sizes.tape_bytes),
        };
        let end = start + ticks;
        let capacity = self.schedule.capacity.0;
        if end > capacity {
            return Err(format!(
                "{name} ends at tick {end}, beyond the stack's {capacity}"
            ));
        }
        if let Some((&s, live)) = self.slots.range(..end).next_back()
            && live.end > start
        {
            return Err(format!(
                "{name} is overwritten while ticks {s}..{} hold a live checkpoint",
                live.end
            ));
        }
        self.slots.insert(
            start,
            Live {
                end,
                kind,
                state,
                bytes,
            },
        );
        self.live = Ticks(self.live.0 + ticks);
        self.live_bytes += bytes;
        self.peak = self.peak.max(self.live);
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
        if self.live > self.schedule.budget {
            return Err(format!(
                "live checkpoints reach {} units, over the budget of {}",
                alpha.to_units(self.live),
                alpha.to_units(self.schedule.budget)
            ));
        }
        Ok(())
    }

    /// The state held at `start` by a checkpoint of `kind`.
    fn read(&self, start: u32, kind: Kind, name: &dyn fmt::Display) -> Result<u32, String> {
        match self.slots.get(&start) {
            Some(live) if live.kind == kind => Ok(live.state),
            Some(_) => Err(format!("{name} holds a checkpoint of the other kind")),
            None => Err(format!("{name} is read while free")),
        }
    }

    fn free(&mut self, start: u32, kind: Kind, name: &dyn fmt::Display) -> Result<(), String> {
        self.read(start, kind, name)?;
        let live = self.slots.remove(&start).expect("read checked it");
        self.live = Ticks(self.live.0 - (live.end - start));
        self.live_bytes -= live.bytes;
        Ok(())
    }

    fn forward_from(&mut self, step: u32) -> Result<(), String> {
        if step == 0 || step > self.schedule.len {
            return Err(format!("step {step} is outside 1..={}", self.schedule.len));
        }
        if self.running != Some(step - 1) {
            return Err(format!(
                "step {step} needs h[{}] but the running state is {}",
                step - 1,
                describe(self.running)
            ));
        }
        self.forward_steps += 1;
        self.running = Some(step);
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Restore { from, state } => {
                let held = match from {
                    Source::Initial => 0,
                    Source::Hidden(slot) => self.read(slot.0, Kind::Hidden, &slot)?,
                    Source::Tape(slot) => self.read(slot.0, Kind::Tape, &slot)?,
                };
                if held != state {
                    return Err(format!("{from} holds h[{held}], not h[{state}]"));
                }
                self.running = Some(state);
            }
            Op::Forward { step } => self.forward_from(step)?,
            Op::ForwardTape { step, tape } => {
                self.forward_from(step)?;
                match tape {
                    Tape::Work => self.work_tape = Some(step),
                    Tape::Slot(slot) => self.store(slot.0, Kind::Tape, step, &slot)?,
                }
            }
            Op::StoreHidden { slot, state } => {
                if self.running != Some(state) {
                    return Err(format!(
                        "storing h[{state}] but the running state is {}",
                        describe(self.running)
                    ));
                }
                self.store(slot.0, Kind::Hidden, state, &slot)?;
            }
            Op::Backward { step, tape } => {
                if step != self.next_backward {
                    return Err(format!(
                        "backward step {step} runs when step {} is due",
                        self.next_backward
                    ));
                }
                let held = match tape {
                    Tape::Work => self
                        .work_tape
                        .ok_or_else(|| "W is read while free".to_string())?,
                    Tape::Slot(slot) => self.read(slot.0, Kind::Tape, &slot)?,
                };
                if held != step {
                    return Err(format!("{tape} holds the tape of step {held}, not {step}"));
                }
                self.next_backward -= 1;
            }
            Op::FreeHidden(slot) => self.free(slot.0, Kind::Hidden, &slot)?,
            Op::FreeTape(slot) => self.free(slot.0, Kind::Tape, &slot)?,
        }
        Ok(())
    }

    fn run(mut self, ops: impl IntoIterator<Item = Op>) -> Result<(Report, u64), Error> {
        if self.schedule.capacity > self.schedule.budget {
            let alpha = self.schedule.alpha;
            return Err(Error::Verify(format!(
                "the checkpoint stack holds {} units, over the budget of {}",
                alpha.to_units(self.schedule.capacity),
                alpha.to_units(self.schedule.budget)
            )));
        }
        for (index, op) in ops.into_iter().enumerate() {
            self.step(&op)
                .map_err(|why| Error::Verify(format!("op {index} ({op}): {why}")))?;
        }
        let fail = |why: String| Err(Error::Verify(why));
        if self.next_backward != 0 {
            return fail(format!(
                "backward steps stop before step {}",
                self.next_backward
            ));
        }
        if self.live != Ticks(0) {
            return fail("slots are still live at the end".to_string());
        }
        if self.peak != self.schedule.capacity {
            return fail(format!(
                "the stack's capacity is {} ticks but the peak is {}",
                self.schedule.capacity.0, self.peak.0
            ));
        }
        if self.forward_steps != self.schedule.forward_steps {
            return fail(format!(
                "{} forward steps where the plan promised {}",
                self.forward_steps, self.schedule.forward_steps
            ));
        }
        let report = Report {
            forward_steps: self.forward_steps,
            backward_steps: u64::from(self.schedule.len),
            peak: self.peak,
            peak_units: self.schedule.alpha.to_units(self.peak),
        };
        Ok((report, self.peak_bytes))
    }
}

fn describe(running: Option<u32>) -> String {
    match running {
        Some(s) => format!("h[{s}]"),
        None => "unset".to_string(),
    }
}

const NO_SIZES: MemorySizes = MemorySizes {
    state_bytes: 0,
    tape_bytes: 0,
};

/// Proves the schedule correct by executing it symbolically.
pub fn verify(schedule: &Schedule) -> Result<Report, Error> {
    verify_stream(schedule.header(), schedule.ops().iter().copied())
}

/// Proves a stream of operations correct against what `header` promises, in
/// one pass: its memory is the live checkpoints, never the whole schedule.
pub fn verify_stream(header: &Header, ops: impl IntoIterator<Item = Op>) -> Result<Report, Error> {
    Machine::new(header, NO_SIZES)
        .run(ops)
        .map(|(report, _)| report)
}

/// Proves a plan's schedule correct from its [`OpStream`], never holding it whole.
pub fn verify_plan(plan: &Plan) -> Result<Report, Error> {
    let stream = OpStream::new(plan);
    let header = *stream.header();
    verify_stream(&header, stream)
}

/// Verifies the schedule and reports its memory in bytes for given sizes.
pub fn simulate(schedule: &Schedule, sizes: MemorySizes) -> Result<Simulation, Error> {
    let (report, peak_checkpoint_bytes) =
        Machine::new(schedule.header(), sizes).run(schedule.ops().iter().copied())?;
    Ok(Simulation {
        report,
        peak_checkpoint_bytes,
        arena_checkpoint_bytes: (u64::from(schedule.capacity().0) * sizes.state_bytes)
            .div_ceil(u64::from(schedule.alpha().denominator())),
        working_bytes: 5 * sizes.state_bytes + sizes.tape_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::Plan;
    use crate::policy::Policy;
    use crate::units::{Alpha, Budget};

    #[test]
    fn a_stack_over_the_budget_is_caught() {
        let plan = Plan::new(
            Policy::Msm,
            Alpha::new(2.0).unwrap(),
            20,
            Budget::Units(6.0),
        )
        .unwrap();
        let mut schedule = Schedule::from_plan(&plan);
        verify(&schedule).unwrap();
        schedule.header.budget = Ticks(schedule.capacity().0 - 1);
        let err = verify(&schedule).unwrap_err().to_string();
        assert!(err.contains("over the budget"), "{err}");
    }
}
