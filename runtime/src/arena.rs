//! The slot arena: every buffer a schedule's execution touches, allocated once.
//!
//! One contiguous `Vec<f32>` holds the working set (two running-state buffers,
//! the state rebuilt from a tape, two gradient buffers, the working tape,
//! scratch and the window of deferred weight-gradient operands), each region
//! starting on a 16-float boundary, followed by the checkpoint stack. Checkpoints are measured in *ticks*, `1/den` of a hidden
//! state; a checkpoint at tick `p` starts `ceil(p · S / den)` floats into the
//! stack, where `S` is a whole batch's state in floats, so the stack holds
//! exactly the schedule's peak. Executors address regions by [`Region`];
//! compiled code addresses them as float offsets from the arena's start.

use ndarray::ArrayViewMut2;

use crate::cell::Cell;
use crate::exec::Mismatch;
use crate::readout::Readout;

/// Region starts are rounded up to this many floats (64 bytes).
const ALIGN: usize = 16;

/// A named region of the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// One of the two running-state buffers (forward steps ping-pong).
    Run(u8),
    /// `h[k]` rebuilt from a tape, read by the loss.
    State,
    /// One of the two gradient buffers `dL/dh` (backward steps ping-pong).
    Grad(u8),
    /// The working tape, outside the budget.
    WorkTape,
    /// The cell's scratch, used by its forward steps and backward.
    Scratch,
    /// The read-out's scratch.
    ReadoutScratch,
    /// The operands of the cell's deferred weight gradients over a window of
    /// backward steps (see [`WeightGradient`](crate::WeightGradient)).
    Window,
    /// The hidden state at tick `p` of the checkpoint stack.
    Hidden(u32),
    /// The tape at tick `p` of the checkpoint stack.
    Tape(u32),
}

/// Sizes of everything in an arena, in floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaLayout {
    /// Batch rows.
    pub batch: usize,
    /// Floats per batch row of a state.
    pub state_size: usize,
    /// Floats per batch row of a tape.
    pub tape_size: usize,
    /// Floats per batch row of the cell's scratch.
    pub scratch_size: usize,
    /// Floats per batch row of the read-out's scratch.
    pub readout_scratch_size: usize,
    /// Ticks per hidden state (`den` of the schedule's `alpha`).
    pub ticks_per_state: u32,
    /// Ticks per tape (the numerator of `alpha`).
    pub ticks_per_tape: u32,
    /// The checkpoint stack's capacity in ticks (the schedule's peak).
    pub capacity_ticks: u32,
    /// Backward steps whose deferred weight gradients are summed at once (0
    /// when the cell defers none).
    pub window_steps: usize,
    /// Floats per batch row of one step's deferred operands (`Σ rows + cols`
    /// over the cell's [`WeightGradient`](crate::WeightGradient)s).
    pub window_row: usize,
}

/// Rows of the reduction that a window of deferred weight gradients aims
/// for: `window_steps = ceil(WINDOW_ROWS / batch)`. 128 rows make the
/// product's reduction long enough that `dW` is read and written once per
/// 128 rows rather than once per step, for a window of
/// `128 · (rows + cols)` floats (688 KB for the LSTM 64×256).
pub const WINDOW_ROWS: usize = 128;

/// Backward steps in a window of deferred weight gradients for `batch` rows
/// and `window_row` operand floats per row: `ceil(WINDOW_ROWS / batch)`, or
/// 0 when there is nothing to defer.
pub fn window_steps(batch: usize, window_row: usize) -> usize {
    if window_row == 0 {
        0
    } else {
        WINDOW_ROWS.div_ceil(batch.max(1))
    }
}

fn round_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Floats per batch row of everything an arena holds but the checkpoint
/// stack's size: what [`ArenaLayout::from_sizes`] lays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowSizes {
    /// Floats of a state (`Cell::state_size`).
    pub state: usize,
    /// Floats of a tape (`Cell::tape_size`).
    pub tape: usize,
    /// Floats of the cell's scratch (`Cell::scratch_size`).
    pub scratch: usize,
    /// Floats of the read-out's scratch (`Readout::scratch_size`: its
    /// outputs plus its inputs).
    pub readout_scratch: usize,
    /// Floats of one step's deferred weight-gradient operands (`Σ rows +
    /// cols` over `Cell::weight_gradients`; 0 for a cell that defers none).
    pub window_row: usize,
}

/// Floats of a checkpoint stack of `ticks` ticks of `1/ticks_per_state`
/// hidden state, for a whole batch's state of `whole_state` floats:
/// `ceil(ticks · whole_state / ticks_per_state)`, exactly the schedule's
/// peak (counted wide, so no size overflows it).
pub fn stack_floats(ticks: u32, whole_state: u64, ticks_per_state: u32) -> u128 {
    (u128::from(ticks) * u128::from(whole_state)).div_ceil(u128::from(ticks_per_state.max(1)))
}

impl ArenaLayout {
    /// The layout for a cell, a read-out, a batch size and a schedule's
    /// checkpoint stack: `alpha = ticks_per_tape / ticks_per_state` as planned,
    /// and the stack's capacity in ticks ([`ArenaLayout::from_sizes`] of
    /// their sizes).
    ///
    /// Fails if the cell's tape is larger than the `alpha` the schedule was
    /// planned for (its tapes would not fit their slots).
    pub fn new(
        cell: &dyn Cell,
        readout: &Readout,
        batch: usize,
        ticks: (u32, u32),
        capacity_ticks: u32,
    ) -> Result<Self, Mismatch> {
        let rows = RowSizes {
            state: cell.state_size(),
            tape: cell.tape_size(),
            scratch: cell.scratch_size(),
            readout_scratch: readout.scratch_size(),
            window_row: cell
                .weight_gradients()
                .iter()
                .map(|p| p.operand_floats())
                .sum(),
        };
        Self::from_sizes(batch, rows, ticks, capacity_ticks)
    }

    /// The layout for plain sizes: `batch` rows of `rows` floats and a
    /// checkpoint stack of `capacity_ticks` ticks, `alpha = ticks_per_tape /
    /// ticks_per_state` as planned. What [`ArenaLayout::new`] computes for a
    /// cell and a read-out of these sizes, so a size known before the cell
    /// exists (at compile time) gives the same bytes.
    ///
    /// Fails if the tape is larger than that `alpha` (its tapes would not fit
    /// their slots).
    pub fn from_sizes(
        batch: usize,
        rows: RowSizes,
        (ticks_per_state, ticks_per_tape): (u32, u32),
        capacity_ticks: u32,
    ) -> Result<Self, Mismatch> {
        let (state, tape) = (rows.state, rows.tape);
        let fits = (tape as u64) * u64::from(ticks_per_state)
            <= (state as u64) * u64::from(ticks_per_tape);
        if ticks_per_state == 0 || !fits {
            return Err(Mismatch {
                what: "the cell's [state, tape] floats per row: its tape exceeds the alpha the schedule was planned for, [ticks per state, ticks per tape]",
                expected: vec![ticks_per_state as usize, ticks_per_tape as usize],
                got: vec![state, tape],
            });
        }
        Ok(ArenaLayout {
            batch,
            state_size: state,
            tape_size: tape,
            scratch_size: rows.scratch,
            readout_scratch_size: rows.readout_scratch,
            ticks_per_state,
            ticks_per_tape,
            capacity_ticks,
            window_steps: window_steps(batch, rows.window_row),
            window_row: rows.window_row,
        })
    }

    /// `(rows, columns)` of a region.
    pub fn shape(&self, region: Region) -> (usize, usize) {
        let cols = match region {
            Region::Run(_) | Region::State | Region::Grad(_) | Region::Hidden(_) => self.state_size,
            Region::WorkTape | Region::Tape(_) => self.tape_size,
            Region::Scratch => self.scratch_size,
            Region::ReadoutScratch => self.readout_scratch_size,
            Region::Window => self.window_steps * self.window_row,
        };
        (self.batch, cols)
    }

    fn padded(&self, region: Region) -> usize {
        let (rows, cols) = self.shape(region);
        round_up(rows * cols)
    }

    /// Floats before the first hidden slot: the working set.
    fn working_len(&self) -> usize {
        [
            Region::Run(0),
            Region::Run(1),
            Region::State,
            Region::Grad(0),
            Region::Grad(1),
            Region::WorkTape,
            Region::Scratch,
            Region::ReadoutScratch,
            Region::Window,
        ]
        .iter()
        .map(|&r| self.padded(r))
        .sum()
    }

    /// Floats of the checkpoint stack up to tick `p`: `ceil(p · S / den)`.
    fn stack_floats(&self, p: u32) -> usize {
        stack_floats(
            p,
            (self.batch * self.state_size) as u64,
            self.ticks_per_state,
        ) as usize
    }

    /// Where a region starts, in floats from the base.
    ///
    /// # Panics
    /// If a checkpoint would run past the stack's capacity.
    pub fn offset(&self, region: Region) -> usize {
        let state = self.padded(Region::State);
        let tape = self.padded(Region::WorkTape);
        let checkpoint = |p: u32, ticks: u32, kind: &str| {
            assert!(
                p + ticks <= self.capacity_ticks,
                "{kind} at tick {p} runs past the stack's {} ticks",
                self.capacity_ticks
            );
            self.working_len() + self.stack_floats(p)
        };
        match region {
            Region::Run(i) => usize::from(i.min(1)) * state,
            Region::State => 2 * state,
            Region::Grad(i) => (3 + usize::from(i.min(1))) * state,
            Region::WorkTape => 5 * state,
            Region::Scratch => 5 * state + tape,
            Region::ReadoutScratch => 5 * state + tape + self.padded(Region::Scratch),
            Region::Window => {
                5 * state
                    + tape
                    + self.padded(Region::Scratch)
                    + self.padded(Region::ReadoutScratch)
            }
            Region::Hidden(p) => checkpoint(p, self.ticks_per_state, "a hidden state"),
            Region::Tape(p) => checkpoint(p, self.ticks_per_tape, "a tape"),
        }
    }

    /// Total floats.
    pub fn total(&self) -> usize {
        self.working_len() + self.stack_floats(self.capacity_ticks)
    }

    /// Bytes of the checkpoint stack (hidden states and tapes).
    pub fn checkpoint_bytes(&self) -> usize {
        4 * (self.total() - self.working_len())
    }

    /// Bytes of the working set (everything that is not a checkpoint slot).
    pub fn working_bytes(&self) -> usize {
        4 * self.working_len()
    }
}

/// All the memory one execution needs, allocated once and reused.
#[derive(Debug, Clone)]
pub struct Arena {
    layout: ArenaLayout,
    buf: Vec<f32>,
}

impl Arena {
    /// Allocates a zeroed arena for a layout.
    pub fn new(layout: ArenaLayout) -> Self {
        Arena {
            layout,
            buf: vec![0.0; layout.total()],
        }
    }

    /// The layout.
    pub fn layout(&self) -> &ArenaLayout {
        &self.layout
    }

    /// The first float: compiled code addresses regions as offsets from it.
    pub fn base(&mut self) -> *mut f32 {
        self.buf.as_mut_ptr()
    }

    /// Mutable `[batch, columns]` views of distinct regions at once.
    ///
    /// # Panics
    /// If two of the regions are the same.
    pub fn regions<const N: usize>(&mut self, regions: [Region; N]) -> [ArrayViewMut2<'_, f32>; N] {
        let layout = self.layout;
        self.spans(regions.map(|r| (layout.offset(r), layout.shape(r).1)))
    }

    /// Mutable `[batch, columns]` views at float offsets from the base, as
    /// `(offset, columns)` pairs: what compiled code passes.
    ///
    /// # Panics
    /// If two spans overlap or one runs past the arena's end (never undefined
    /// behaviour: every view is a checked sub-slice).
    pub fn spans<const N: usize>(
        &mut self,
        spans: [(usize, usize); N],
    ) -> [ArrayViewMut2<'_, f32>; N] {
        let rows = self.layout.batch;
        let mut order: [usize; N] = std::array::from_fn(|i| i);
        order.sort_unstable_by_key(|&i| spans[i].0);
        let mut pieces: [Option<ArrayViewMut2<'_, f32>>; N] = std::array::from_fn(|_| None);
        let mut rest: &mut [f32] = &mut self.buf;
        let mut consumed = 0;
        for &i in &order {
            let (start, cols) = spans[i];
            if rows * cols == 0 {
                // An empty span (a cell without deferred products has an
                // empty window) overlaps nothing, wherever it starts.
                pieces[i] =
                    Some(ArrayViewMut2::from_shape((rows, cols), &mut [][..]).expect("empty"));
                continue;
            }
            assert!(start >= consumed, "span at offset {start} overlaps another");
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(start - consumed);
            let (mine, tail) = tail.split_at_mut(rows * cols);
            rest = tail;
            consumed = start + rows * cols;
            pieces[i] = Some(
                ArrayViewMut2::from_shape((rows, cols), mine).expect("span shape fits its length"),
            );
        }
        pieces.map(|p| p.expect("every span is filled"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> ArenaLayout {
        ArenaLayout {
            batch: 3,
            state_size: 5,
            tape_size: 17,
            scratch_size: 7,
            readout_scratch_size: 2,
            ticks_per_state: 2,
            ticks_per_tape: 7,
            capacity_ticks: 18,
            window_steps: 2,
            window_row: 4,
        }
    }

    #[test]
    fn regions_do_not_overlap_and_fit() {
        let l = layout();
        let mut all = vec![
            Region::Run(0),
            Region::Run(1),
            Region::State,
            Region::Grad(0),
            Region::Grad(1),
            Region::WorkTape,
            Region::Scratch,
            Region::ReadoutScratch,
            Region::Window,
        ];
        // A stack as a schedule lays it out: H at 0, T at 2, H at 9, T at 11.
        all.extend([
            Region::Hidden(0),
            Region::Tape(2),
            Region::Hidden(9),
            Region::Tape(11),
        ]);
        let mut spans: Vec<(usize, usize)> = all
            .iter()
            .map(|&r| {
                let (rows, cols) = l.shape(r);
                (l.offset(r), l.offset(r) + rows * cols)
            })
            .collect();
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "{w:?} overlap");
        }
        assert!(spans.last().unwrap().1 <= l.total());
        assert!(all[..9].iter().all(|&r| l.offset(r).is_multiple_of(ALIGN)));
    }

    #[test]
    fn distinct_regions_borrow_together() {
        let mut arena = Arena::new(layout());
        let [mut a, mut b] = arena.regions([Region::Tape(11), Region::Run(0)]);
        a.fill(1.0);
        b.fill(2.0);
        assert_eq!(a.shape(), &[3, 17]);
        assert_eq!(b.shape(), &[3, 5]);
    }

    #[test]
    #[should_panic(expected = "overlaps")]
    fn the_same_region_twice_panics() {
        let mut arena = Arena::new(layout());
        let _ = arena.regions([Region::State, Region::State]);
    }

    #[test]
    #[should_panic(expected = "runs past")]
    fn a_slot_beyond_the_layout_panics() {
        layout().offset(Region::Tape(12));
    }
}
