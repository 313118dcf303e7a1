//! One entry of the arg-min table: what a segment does first.

use serde::Serialize;

/// The first move of the optimal way to backpropagate a segment of `t` steps.
///
/// The segment starts from a stored state `s`; `y` counts steps from `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Choice {
    /// Run to the end, differentiate the last step with the working tape,
    /// then do the remaining `t - 1` steps.
    End,
    /// Store the hidden state `h[s + y]`, do the right part from it, free it,
    /// then do the left part (`y` steps) from `s`.
    Hidden(u32),
    /// Store the tape of step `s + y`, do the right part from its state,
    /// backpropagate step `s + y`, free it, then do the left part (`y - 1` steps).
    Tape(u32),
}

const KIND_SHIFT: u32 = 30;
const Y_MASK: u32 = (1 << KIND_SHIFT) - 1;

impl Choice {
    /// Packs the choice into 32 bits (2 for the kind, 30 for `y`).
    pub(crate) fn pack(self) -> u32 {
        match self {
            Choice::End => 0,
            Choice::Hidden(y) => (1 << KIND_SHIFT) | y,
            Choice::Tape(y) => (2 << KIND_SHIFT) | y,
        }
    }

    /// The inverse of [`Choice::pack`].
    pub(crate) fn unpack(bits: u32) -> Self {
        let y = bits & Y_MASK;
        match bits >> KIND_SHIFT {
            0 => Choice::End,
            1 => Choice::Hidden(y),
            _ => Choice::Tape(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        for c in [
            Choice::End,
            Choice::Hidden(1),
            Choice::Tape(7),
            Choice::Hidden(Y_MASK),
        ] {
            assert_eq!(Choice::unpack(c.pack()), c);
        }
    }
}
