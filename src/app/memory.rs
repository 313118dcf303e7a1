//! Memory known before it is spent: a command adds up what it will allocate
//! from its arguments ([`Need`]) and compares it with the memory available
//! (or a `--max-memory` given) before allocating any of it.
//!
//! Sizes are counted in `u128` with saturation, so no flag value, however
//! large, overflows the count.

use bptt::BackendKind;
use bptt::Error;
use bptt::cell_lang::CellProgram;
use bptt::planner::Plan;

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

/// The wording of training's refusal of a `--memory` below any plan
/// ([`bptt::planner::plan_within`]'s [`Error::MemoryTooSmall`]); other
/// errors as they are.
pub fn below_any_plan(error: Error) -> Error {
    match error {
        Error::MemoryTooSmall(s) => Error::MemoryLimit(format!(
            "--memory {} is less than the {} a {} plan of T = {} needs with {:.1} units of checkpoints: raise --memory, or lower the sizes",
            human(u128::from(s.memory)),
            human(s.need),
            s.policy,
            s.len,
            s.units,
        )),
        other => other,
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
        let ops = u128::from(plan.forward_steps()).saturating_add(u128::from(plan.seq_len()) * 3);
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
