//! Memory known before it is spent: a command adds up what it will allocate
//! from its arguments ([`Need`]) and compares it with the memory available
//! (or a `--max-memory` given) before allocating any of it.
//!
//! Sizes are counted in `u128` with saturation, so no flag value, however
//! large, overflows the count.

use bptt::BackendKind;
use bptt::Error;
use bptt::Policy;
use bptt::cell_lang::CellProgram;
use bptt::planner::Plan;
use bptt::{Alpha, Budget, Ticks};

/// Bytes a command will allocate, by what they are for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Need {
    items: Vec<(&'static str, u128)>,
}

impl Need {
    /// Nothing yet.
    pub fn new() -> Self {
        Need::default()
    }

    /// Adds `floats` f32 values for `what`.
    pub fn floats(self, what: &'static str, floats: u128) -> Self {
        self.bytes(what, floats.saturating_mul(4))
    }

    /// Adds `bytes` for `what`.
    pub fn bytes(mut self, what: &'static str, bytes: u128) -> Self {
        match self.items.iter_mut().find(|(w, _)| *w == what) {
            Some(item) => item.1 = item.1.saturating_add(bytes),
            None => self.items.push((what, bytes)),
        }
        self
    }

    /// Both needs together.
    #[must_use]
    pub fn and(self, other: Need) -> Self {
        other
            .items
            .into_iter()
            .fold(self, |n, (w, b)| n.bytes(w, b))
    }

    /// The total, in bytes.
    pub fn total(&self) -> u128 {
        self.items
            .iter()
            .fold(0u128, |sum, (_, b)| sum.saturating_add(*b))
    }

    /// The largest item: what to lower first.
    fn largest(&self) -> Option<(&'static str, u128)> {
        self.items.iter().copied().max_by_key(|&(_, b)| b)
    }

    /// Refuses, in one line naming both figures, a need above `limit` bytes
    /// (the memory available when `None`, or no check where that is
    /// unknown).
    pub fn check(&self, command: &str, limit: Option<u64>) -> Result<(), Error> {
        let (limit, source) = match limit {
            Some(l) => (l, "--max-memory"),
            None => match bptt::planner::memory::available_bytes() {
                Some(l) => (l, "available"),
                None => return Ok(()),
            },
        };
        let total = self.total();
        if total <= u128::from(limit) {
            return Ok(());
        }
        let (what, bytes) = self.largest().unwrap_or(("memory", total));
        Err(Error::MemoryLimit(format!(
            "{command} would need {} ({what} {}), more than the {} {source}: lower the sizes, or raise --max-memory",
            human(total),
            human(bytes),
            human(u128::from(limit))
        )))
    }
}

/// A size in bytes as people write it: `6.4 GB`, `512 kB`, `12 bytes`.
pub fn human(bytes: u128) -> String {
    const UNITS: [(&str, f64); 4] = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    let b = bytes as f64;
    match UNITS.iter().find(|(_, u)| b >= *u) {
        Some((name, u)) => format!("{:.1} {name}", b / u),
        None => format!("{bytes} bytes"),
    }
}

/// Bytes per schedule operation across its forms (planned, lowered, run):
/// a generous bound, so the count errs on the safe side.
pub const BYTES_PER_OP: u128 = 256;

/// Bytes a streamed schedule holds per live checkpoint: the walk's stack
/// (at most four 32-byte tasks a checkpoint, in a vector that may double)
/// and the verifier's entry for it while it proves the stream.
pub const STREAM_BYTES_PER_FRAME: u128 = 384;

/// Bytes of generated code per lowered call or JIT run (Rust text and its
/// syntax tree, or Cranelift IR and machine code): a bound above the most
/// measured, `emit rust` at about 5 kB a call (507 MB of peak memory for
/// the 100,000 calls of sqrt(t) at T = 20,000).
pub const CODE_BYTES_PER_CALL: u128 = 8192;

/// Floats of a `rows × cols` matrix packed in column panels
/// (`bptt_runtime::kernels::packed_len`, counted wide): `cols` rounded up to
/// whole panels.
fn packed_floats(rows: usize, cols: usize) -> u128 {
    let width = bptt_runtime::kernels::panel_width() as u128;
    (rows as u128).saturating_mul((cols as u128).div_ceil(width).saturating_mul(width))
}

/// Floats per row and in all of a cell, known before it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellShape {
    /// Parameters (counted wide: a huge hidden size does not overflow).
    pub params: u128,
    /// Floats of the packed weight copies (`bptt_runtime::Cell::packed_floats`).
    pub packed: u128,
    /// Floats per row of the state.
    pub state: usize,
    /// Floats per row of the tape.
    pub tape: usize,
    /// Floats per row of scratch.
    pub scratch: usize,
    /// Floats per row the read-out reads.
    pub output: usize,
    /// Floats per row and step of the deferred weight-gradient operands
    /// (`bptt_runtime::ArenaLayout::window_row`; 0 for a cell that defers none).
    pub window_row: usize,
}

impl CellShape {
    /// The runtime's LSTM (`state 2h`, `tape 6h`, `scratch input + 5h`, a
    /// window row of `input + 5h`, see `bptt_runtime::Lstm`).
    pub fn lstm(input: usize, hidden: usize) -> Self {
        CellShape {
            // 4h (input + h + 1), as `bptt_runtime::Lstm::param_count`.
            params: (hidden as u128)
                .saturating_mul(4)
                .saturating_mul((input as u128).saturating_add(hidden as u128 + 1)),
            // W_x, W_h and W_hᵀ.
            packed: packed_floats(input.saturating_add(hidden), hidden.saturating_mul(4))
                .saturating_add(packed_floats(hidden.saturating_mul(4), hidden)),
            state: hidden.saturating_mul(2),
            tape: hidden.saturating_mul(6),
            scratch: input.saturating_add(hidden.saturating_mul(5)),
            output: hidden,
            window_row: input.saturating_add(hidden.saturating_mul(5)),
        }
    }

    /// A derived cell's.
    pub fn of(program: &CellProgram) -> Self {
        CellShape {
            params: program.param_count as u128,
            packed: 0,
            state: program.state_size,
            tape: program.tape_size,
            scratch: program.scratch_size,
            output: program.output_size,
            window_row: 0,
        }
    }

    /// Its tape over its state: the planning model's alpha.
    pub fn alpha(&self) -> f64 {
        self.tape as f64 / self.state.max(1) as f64
    }

    /// Floats of the cell's and a read-out's (to `outputs`) parameters.
    pub fn params_with_readout(&self, outputs: usize) -> u128 {
        self.params.saturating_add(
            (self.output as u128)
                .saturating_add(1)
                .saturating_mul(outputs as u128),
        )
    }

    /// Floats of the packed copies of the cell's and a read-out's (to
    /// `outputs`) weights.
    pub fn packed_with_readout(&self, outputs: usize) -> u128 {
        self.packed
            .saturating_add(packed_floats(self.output, outputs))
            .saturating_add(packed_floats(outputs, self.output))
    }

    /// The runs the JIT compiles `plan` into for these sizes (see
    /// [`bptt::jit::count_runs`]), or `None` if the plan's schedule cannot
    /// be laid out for them.
    fn runs(&self, plan: &Plan, batch: usize, outputs: usize, arena_floats: u128) -> Option<u128> {
        // Sizes past 2^48 floats (a petabyte) are refused by the count of
        // the arena anyway, and would overflow the layout's offsets.
        if arena_floats > 1 << 48 {
            return None;
        }
        let alpha = plan.alpha();
        let layout = bptt_runtime::ArenaLayout {
            batch,
            state_size: self.state,
            tape_size: self.tape,
            scratch_size: self.scratch,
            readout_scratch_size: outputs,
            ticks_per_state: alpha.denominator(),
            ticks_per_tape: alpha.numerator(),
            capacity_ticks: plan.peak().0,
            window_steps: bptt_runtime::window_steps(batch, self.window_row),
            window_row: self.window_row,
        };
        let verified = bptt::schedule::Verified::stream(plan.clone()).ok()?;
        bptt::jit::count_runs(&verified, &layout)
            .ok()
            .map(|n| n as u128)
    }

    /// What one run of `plan` allocates on `backend` with a read-out to
    /// `outputs`: parameters and their gradients, the arena (checkpoints
    /// at the plan's peak and the working set), the schedule in its forms,
    /// and the JIT's code.
    pub fn run(&self, plan: &Plan, batch: usize, outputs: usize, backend: BackendKind) -> Need {
        let u = |n: usize| n as u128;
        let checkpoints = (plan.summary().peak_units.ceil() as u128)
            .saturating_mul(u(self.state))
            .saturating_mul(u(batch));
        let working = u(self.state)
            .saturating_mul(5)
            .saturating_add(u(self.tape).saturating_mul(2))
            .saturating_add(u(self.scratch))
            .saturating_add(u(outputs))
            .saturating_add(u(self.output))
            .saturating_mul(u(batch))
            .saturating_add(
                u(bptt_runtime::window_steps(batch, self.window_row))
                    .saturating_mul(u(batch))
                    .saturating_mul(u(self.window_row)),
            );
        let ops = u128::from(plan.forward_steps()).saturating_add(u128::from(plan.len()) * 3);
        let arena = checkpoints.saturating_add(working);
        let need = Need::new()
            .floats(
                "parameters and gradients",
                self.params_with_readout(outputs).saturating_mul(2),
            )
            .floats("packed weights", self.packed_with_readout(outputs))
            .floats("arena", arena);
        // Streamed: the walk's stack, a few frames per live checkpoint.
        let stream =
            (plan.summary().peak_units.ceil() as u128 + 64).saturating_mul(STREAM_BYTES_PER_FRAME);
        let need = need.bytes("schedule", stream);
        match backend {
            // Compiled as runs (a call or a loop each), counted on the run's
            // own layout; every call if they cannot be counted.
            BackendKind::Jit => {
                let runs = self.runs(plan, batch, outputs, arena).unwrap_or(ops);
                need.bytes("schedule", runs.saturating_mul(CODE_BYTES_PER_CALL))
            }
            BackendKind::Interpreter => need,
        }
    }
}

/// The plan of `policy` with the most checkpoint memory whose whole need,
/// `need(plan)` bytes, fits in `memory` bytes: a budget given in bytes.
///
/// `state_bytes` is one hidden state of the whole batch. The budget is
/// searched between one that fits and one that does not, each probe the
/// linear guess (the bytes left under `memory` spent on checkpoint ticks)
/// or, when that guess does not fit, the midpoint, until the plan is within
/// a thousandth of `memory` (a plan's other needs, such as its schedule,
/// change with its budget, so one guess is not enough). Refused, naming both figures, when
/// not even a plan without checkpoints fits.
pub fn plan_within(
    memory: u64,
    policy: Policy,
    alpha: Alpha,
    len: u32,
    state_bytes: u64,
    need: impl Fn(&Plan) -> u128,
) -> Result<Plan, Error> {
    let memory = u128::from(memory);
    let refuse = |plan: &Plan| {
        Error::MemoryLimit(format!(
            "--memory {} is less than the {} a {policy} plan of T = {len} needs with {:.1} units of checkpoints: raise --memory, or lower the sizes",
            human(memory),
            human(need(plan)),
            plan.summary().peak_units,
        ))
    };
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
        None => Err(plan_of(0).map_or_else(|e| e, |plan| refuse(&plan))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_need_above_the_limit_names_both_figures() {
        let need = Need::new()
            .floats("parameters", 1_000_000_000)
            .bytes("corpus", 10);
        assert_eq!(need.total(), 4_000_000_010);
        let err = need
            .check("train", Some(1_000_000_000))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("4.0 GB") && err.contains("1.0 GB --max-memory"),
            "{err}"
        );
        assert!(err.contains("parameters 4.0 GB"), "{err}");
        assert!(need.check("train", Some(5_000_000_000)).is_ok());
    }

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
        let err = plan_within(40_000, Policy::Msm, alpha, 1000, 1024, need_of)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--memory 40.0 kB") && err.contains("MB"),
            "{err}"
        );
        let err = plan_within(40_000, Policy::StoreAll, alpha, 1000, 1024, need_of)
            .unwrap_err()
            .to_string();
        assert!(err.contains("store-all"), "{err}");
    }

    #[test]
    fn counts_saturate() {
        let need = Need::new().floats("a", u128::MAX).bytes("b", u128::MAX);
        assert_eq!(need.total(), u128::MAX);
        assert!(need.check("x", Some(u64::MAX)).is_err());
    }

    #[test]
    fn the_lstm_shape_matches_the_runtime_cell() {
        use bptt_runtime::{Cell, Lstm, Rng};
        let cell = Lstm::new(5, 7, &mut Rng::new(1));
        let shape = CellShape::lstm(5, 7);
        assert_eq!(shape.params, cell.params().len() as u128);
        assert_eq!(shape.packed, cell.packed_floats() as u128);
        let readout = bptt_runtime::Readout::new(
            bptt_runtime::LossKind::SoftmaxCrossEntropy,
            7,
            3,
            &mut Rng::new(2),
        );
        assert_eq!(
            shape.packed_with_readout(3) - shape.packed,
            readout.packed_floats() as u128
        );
        assert_eq!(
            (
                shape.state,
                shape.tape,
                shape.scratch,
                shape.output,
                shape.window_row
            ),
            (
                cell.state_size(),
                cell.tape_size(),
                cell.scratch_size(),
                cell.output_size(),
                cell.weight_gradients()
                    .iter()
                    .map(|p| p.operand_floats())
                    .sum()
            )
        );
    }
}
