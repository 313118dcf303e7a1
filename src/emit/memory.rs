//! A budget in bytes at expansion (`memory = "256MiB"`): what a step holds
//! for a plan, and the plan with the most checkpoints whose bytes fit.

use bptt_runtime::{ArenaLayout, Readout, RowSizes};

use super::args::Args;
use crate::cell_lang::CellProgram;
use crate::error::Error;
use crate::planner::{Plan, plan_within};
use crate::units::{Alpha, Ticks};

/// The bytes a training step holds besides its checkpoint stack, and the
/// size of the stack's hidden state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footprint {
    /// One hidden state of the whole batch (`state_size × batch × 4`).
    pub state: u64,
    /// The arena's working set (`ArenaLayout::working_bytes`).
    pub working: u64,
    /// The gradients the step writes (`cell!`: the cell's and the
    /// read-out's parameters and `dL/dh0`; 0 for `#[bptt]` on a cell type).
    pub gradients: u64,
}

/// Floats past which a `cell!` arena's sizes are refused: a petabyte, far
/// beyond any machine, and well inside `usize` on 64-bit targets.
const MAX_FLOATS: u128 = 1 << 48;

impl Footprint {
    /// The footprint of `program` (`cell!`) for `batch` rows and a read-out
    /// to `classes` outputs, its working set laid out by the runtime's own
    /// formula ([`ArenaLayout::from_sizes`]).
    pub(crate) fn of_program(
        program: &CellProgram,
        batch: usize,
        classes: usize,
        alpha: Alpha,
    ) -> Result<Self, String> {
        let rows = RowSizes {
            state: program.state_size,
            tape: program.tape_size,
            scratch: program.scratch_size,
            readout_scratch: Readout::scratch_size_of(program.output_size, classes),
            window_row: program
                .deferred
                .iter()
                .map(|d| d.weight_gradient().operand_floats())
                .sum(),
        };
        let gradients = (program.param_count as u128)
            + Readout::param_count(program.output_size, classes) as u128
            + batch as u128 * program.state_size as u128;
        // At most `batch + WINDOW_ROWS` rows of any region of the working set.
        let row: u128 = [
            5 * rows.state,
            rows.tape,
            rows.scratch,
            rows.readout_scratch,
            rows.window_row,
        ]
        .into_iter()
        .map(|n| n as u128)
        .sum();
        let rows_at_most = batch as u128 + bptt_runtime::WINDOW_ROWS as u128;
        if rows_at_most * row + gradients > MAX_FLOATS {
            return Err(format!(
                "batch = {batch} and classes = {classes} make an arena of more than 2^48 floats"
            ));
        }
        let layout =
            ArenaLayout::from_sizes(batch, rows, (alpha.denominator(), alpha.numerator()), 0)
                .map_err(|e| e.to_string())?;
        Ok(Footprint {
            state: 4 * (batch * program.state_size) as u64,
            working: layout.working_bytes() as u64,
            gradients: 4 * gradients as u64,
        })
    }

    /// Bytes of a checkpoint stack of `ticks` ticks, as the arena lays it
    /// out ([`bptt_runtime::stack_floats`]).
    pub(crate) fn stack(&self, alpha: Alpha, ticks: Ticks) -> u128 {
        4 * bptt_runtime::stack_floats(ticks.0, self.state / 4, alpha.denominator())
    }

    /// Everything the step holds with `plan`'s checkpoints: the arena (and
    /// the gradients, for `cell!`).
    pub(crate) fn need(&self, plan: &Plan) -> u128 {
        u128::from(self.working)
            + u128::from(self.gradients)
            + self.stack(plan.alpha(), plan.peak())
    }
}

/// The plan with the most checkpoints of `args`' policy whose [need]
/// (Footprint::need) fits in `memory` bytes, or the error: a memory below
/// any plan in one line naming both figures and what they are made of.
pub(crate) fn plan(args: &Args, memory: u64, footprint: &Footprint) -> Result<Plan, Error> {
    let alpha = Alpha::new(args.alpha)?;
    let need = |plan: &Plan| footprint.need(plan);
    plan_within(memory, args.policy, alpha, args.len, footprint.state, need).map_err(|e| match e {
        Error::MemoryTooSmall(s) => {
            let gradients = match footprint.gradients {
                0 => String::new(),
                g => format!(", {g} of gradients"),
            };
            Error::MemoryLimit(format!(
                "memory = {} bytes is less than the {} bytes that the smallest {} plan of T = {} needs ({} of working set{gradients} and {:.1} hidden states of checkpoints): raise `memory`, or give `budget`",
                s.memory, s.need, s.policy, s.len, footprint.working, s.units,
            ))
        }
        other => other,
    })
}
