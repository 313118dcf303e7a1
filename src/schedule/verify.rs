//! The verifier: symbolic execution of a schedule.
//!
//! It proves, for one schedule, that every forward step starts from the state
//! it needs, every backward step finds its tape and its incoming gradient,
//! backward steps run `T` down to 1 once each, no slot is overwritten while
//! live or read while free, the live checkpoints never exceed the budget, and
//! the forward steps equal what the plan promised.

use serde::Serialize;

use super::Schedule;
use super::op::{Op, Source, Tape};
use crate::error::Error;
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
    /// Bytes of the slots an executor allocates (slot counts times sizes).
    pub arena_checkpoint_bytes: u64,
    /// The working set: running state (two buffers), the state rebuilt from a
    /// tape, two gradient buffers and the working tape. Constant in `T`.
    pub working_bytes: u64,
}

/// What a slot holds during symbolic execution.
#[derive(Clone, Copy)]
enum Held {
    Free,
    State(u32),
}

struct Machine<'a> {
    schedule: &'a Schedule,
    hidden: Vec<Held>,
    tapes: Vec<Held>,
    work_tape: Held,
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
    fn new(schedule: &'a Schedule, sizes: MemorySizes) -> Self {
        Machine {
            schedule,
            hidden: vec![Held::Free; schedule.hidden_slots() as usize],
            tapes: vec![Held::Free; schedule.tape_slots() as usize],
            work_tape: Held::Free,
            running: None,
            next_backward: schedule.len(),
            forward_steps: 0,
            live: Ticks(0),
            peak: Ticks(0),
            live_bytes: 0,
            peak_bytes: 0,
            sizes,
        }
    }

    fn slot<'s>(slots: &'s mut [Held], index: u32, kind: &str) -> Result<&'s mut Held, String> {
        let count = slots.len();
        slots
            .get_mut(index as usize)
            .ok_or_else(|| format!("{kind} slot {index} is beyond the {count} allocated"))
    }

    fn forward_from(&mut self, step: u32) -> Result<(), String> {
        if step == 0 || step > self.schedule.len() {
            return Err(format!(
                "step {step} is outside 1..={}",
                self.schedule.len()
            ));
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

    fn grow(&mut self, ticks: u32, bytes: u64) -> Result<(), String> {
        self.live = Ticks(self.live.0 + ticks);
        self.live_bytes += bytes;
        self.peak = self.peak.max(self.live);
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
        if self.live > self.schedule.budget() {
            let alpha = self.schedule.alpha();
            return Err(format!(
                "live checkpoints reach {} units, over the budget of {}",
                alpha.to_units(self.live),
                alpha.to_units(self.schedule.budget())
            ));
        }
        Ok(())
    }

    fn shrink(&mut self, ticks: u32, bytes: u64) {
        self.live = Ticks(self.live.0 - ticks);
        self.live_bytes -= bytes;
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        let alpha = self.schedule.alpha();
        match *op {
            Op::Restore { from, state } => {
                let held = match from {
                    Source::Initial => Held::State(0),
                    Source::Hidden(slot) => *Self::slot(&mut self.hidden, slot.0, "hidden")?,
                    Source::Tape(slot) => *Self::slot(&mut self.tapes, slot.0, "tape")?,
                };
                match held {
                    Held::State(s) if s == state => self.running = Some(state),
                    Held::State(s) => return Err(format!("{from} holds h[{s}], not h[{state}]")),
                    Held::Free => return Err(format!("{from} is read while free")),
                }
            }
            Op::Forward { step } => self.forward_from(step)?,
            Op::ForwardTape { step, tape } => {
                self.forward_from(step)?;
                match tape {
                    Tape::Work => self.work_tape = Held::State(step),
                    Tape::Slot(slot) => {
                        let held = Self::slot(&mut self.tapes, slot.0, "tape")?;
                        if let Held::State(s) = held {
                            return Err(format!("{slot} is overwritten while it holds step {s}"));
                        }
                        *held = Held::State(step);
                        self.grow(alpha.tape().0, self.sizes.tape_bytes)?;
                    }
                }
            }
            Op::StoreHidden { slot, state } => {
                if self.running != Some(state) {
                    return Err(format!(
                        "storing h[{state}] but the running state is {}",
                        describe(self.running)
                    ));
                }
                let held = Self::slot(&mut self.hidden, slot.0, "hidden")?;
                if let Held::State(s) = held {
                    return Err(format!("{slot} is overwritten while it holds h[{s}]"));
                }
                *held = Held::State(state);
                self.grow(alpha.hidden().0, self.sizes.state_bytes)?;
            }
            Op::Backward { step, tape } => {
                if step != self.next_backward {
                    return Err(format!(
                        "backward step {step} runs when step {} is due",
                        self.next_backward
                    ));
                }
                let held = match tape {
                    Tape::Work => self.work_tape,
                    Tape::Slot(slot) => *Self::slot(&mut self.tapes, slot.0, "tape")?,
                };
                match held {
                    Held::State(s) if s == step => {}
                    Held::State(s) => {
                        return Err(format!("{tape} holds the tape of step {s}, not {step}"));
                    }
                    Held::Free => return Err(format!("{tape} is read while free")),
                }
                self.next_backward -= 1;
            }
            Op::FreeHidden(slot) => {
                let held = Self::slot(&mut self.hidden, slot.0, "hidden")?;
                if let Held::Free = held {
                    return Err(format!("{slot} is freed twice"));
                }
                *held = Held::Free;
                self.shrink(alpha.hidden().0, self.sizes.state_bytes);
            }
            Op::FreeTape(slot) => {
                let held = Self::slot(&mut self.tapes, slot.0, "tape")?;
                if let Held::Free = held {
                    return Err(format!("{slot} is freed twice"));
                }
                *held = Held::Free;
                self.shrink(alpha.tape().0, self.sizes.tape_bytes);
            }
        }
        Ok(())
    }

    fn run(mut self) -> Result<(Report, u64), Error> {
        for (index, op) in self.schedule.ops().iter().enumerate() {
            self.step(op)
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
        if self.forward_steps != self.schedule.forward_steps() {
            return fail(format!(
                "{} forward steps where the plan promised {}",
                self.forward_steps,
                self.schedule.forward_steps()
            ));
        }
        let report = Report {
            forward_steps: self.forward_steps,
            backward_steps: u64::from(self.schedule.len()),
            peak: self.peak,
            peak_units: self.schedule.alpha().to_units(self.peak),
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

/// Proves the schedule correct by executing it symbolically.
pub fn verify(schedule: &Schedule) -> Result<Report, Error> {
    let sizes = MemorySizes {
        state_bytes: 0,
        tape_bytes: 0,
    };
    Machine::new(schedule, sizes)
        .run()
        .map(|(report, _)| report)
}

/// Verifies the schedule and reports its memory in bytes for given sizes.
pub fn simulate(schedule: &Schedule, sizes: MemorySizes) -> Result<Simulation, Error> {
    let (report, peak_checkpoint_bytes) = Machine::new(schedule, sizes).run()?;
    Ok(Simulation {
        report,
        peak_checkpoint_bytes,
        arena_checkpoint_bytes: u64::from(schedule.hidden_slots()) * sizes.state_bytes
            + u64::from(schedule.tape_slots()) * sizes.tape_bytes,
        working_bytes: 5 * sizes.state_bytes + sizes.tape_bytes,
    })
}
