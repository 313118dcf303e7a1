//! Memory units: hidden states, tapes and budgets on one integer scale.
//!
//! The planning model counts memory in hidden states; a tape costs `alpha` of
//! them, and `alpha` may be fractional (an LSTM's tape over its state is not a
//! whole number). bptt discretises by measuring memory in *ticks* of
//! `1/den` hidden state, where `den <= 16` is the smallest denominator that
//! represents `alpha` exactly; an `alpha` that no such fraction represents is
//! rounded **up** to the next sixteenth. Budgets are rounded **down** to a
//! whole tick. Both roundings can only make a schedule use less memory than
//! the real budget allows, never more.

use std::fmt;

use crate::error::Error;

/// The largest denominator used to represent a fractional `alpha`.
pub const MAX_DENOMINATOR: u32 = 16;

/// An amount of checkpoint memory in ticks of `1/den` hidden state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticks(pub u32);

/// The tape-to-hidden-state size ratio, as an exact fraction `num/den`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alpha {
    num: u32,
    den: u32,
}

impl Alpha {
    /// Represents `alpha` as `num/den` with the smallest `den <= 16`, rounding up
    /// to a sixteenth when no such fraction is exact.
    ///
    /// ```
    /// let a = bptt::Alpha::new(3.5).unwrap();
    /// assert_eq!((a.numerator(), a.denominator()), (7, 2));
    /// ```
    pub fn new(alpha: f64) -> Result<Self, Error> {
        if !alpha.is_finite() || alpha < 1.0 {
            return Err(Error::AlphaBelowOne(alpha));
        }
        if alpha > 1e6 {
            return Err(Error::AlphaTooLarge(alpha));
        }
        for den in 1..=MAX_DENOMINATOR {
            let scaled = alpha * f64::from(den);
            if (scaled - scaled.round()).abs() < 1e-9 {
                return Ok(Self {
                    num: scaled.round() as u32,
                    den,
                });
            }
        }
        let num = (alpha * f64::from(MAX_DENOMINATOR)).ceil() as u32;
        Ok(Self {
            num,
            den: MAX_DENOMINATOR,
        })
    }

    /// The numerator: a tape's size in ticks.
    pub fn numerator(self) -> u32 {
        self.num
    }

    /// The denominator: ticks per hidden state.
    pub fn denominator(self) -> u32 {
        self.den
    }

    /// The value as a float.
    pub fn value(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// One hidden state in ticks.
    pub fn hidden(self) -> Ticks {
        Ticks(self.den)
    }

    /// One tape in ticks.
    pub fn tape(self) -> Ticks {
        Ticks(self.num)
    }

    /// Converts ticks to hidden-state units.
    pub fn to_units(self, ticks: Ticks) -> f64 {
        f64::from(ticks.0) / f64::from(self.den)
    }

    /// Converts hidden-state units to ticks, rounding down.
    pub fn to_ticks(self, units: f64) -> Result<Ticks, Error> {
        let ticks = (units * f64::from(self.den) + 1e-9).floor();
        if !(0.0..=f64::from(u32::MAX / 4)).contains(&ticks) {
            return Err(Error::BudgetOutOfRange(units));
        }
        Ok(Ticks(ticks as u32))
    }

    /// Store-all's memory for `len` steps: every tape but the last, `alpha (len-1)`.
    pub fn store_all_units(self, len: u32) -> f64 {
        self.value() * f64::from(len.saturating_sub(1))
    }
}

impl fmt::Display for Alpha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}", self.value())
        }
    }
}

/// A memory budget as the user states it. Serialised as the user writes it
/// (`200`, `5%`), and read back from it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Budget {
    /// Units of one hidden state.
    Units(f64),
    /// A percentage of store-all's memory, `alpha (T-1)` units.
    Percent(f64),
}

impl Budget {
    /// Resolves the budget to hidden-state units for a sequence length.
    pub fn units(self, alpha: Alpha, len: u32) -> f64 {
        match self {
            Budget::Units(u) => u,
            Budget::Percent(p) => alpha.store_all_units(len) * p / 100.0,
        }
    }
}

/// Implements serde's `into = "String"` and `try_from = "String"` for a
/// type that prints itself (`Display`) and parses itself (`FromStr` with
/// [`Error`]): it is serialised as the words a user types.
macro_rules! words_serde {
    ($t:ty) => {
        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.to_string()
            }
        }

        impl TryFrom<String> for $t {
            type Error = $crate::error::Error;

            fn try_from(s: String) -> Result<Self, $crate::error::Error> {
                s.parse()
            }
        }
    };
}
pub(crate) use words_serde;

words_serde!(Budget);

impl std::str::FromStr for Budget {
    type Err = Error;

    /// Parses `200` (units) or `5%` (of store-all).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::BadBudget(s.to_string());
        let s = s.trim();
        let (number, percent) = match s.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (s, false),
        };
        let value: f64 = number.parse().map_err(|_| bad())?;
        if !value.is_finite() || value < 0.0 || (percent && value > 100.0) {
            return Err(bad());
        }
        Ok(if percent {
            Budget::Percent(value)
        } else {
            Budget::Units(value)
        })
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Units(u) => write!(f, "{u}"),
            Budget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Parses a byte size: `4096`, `256MiB`, `1.5GB`, `64k`, `2 GiB`.
///
/// Prefixes `k`, `M`, `G`, `T` (any case) are powers of 1000, with `i`
/// (`KiB`, `MiB`, ...) powers of 1024; the trailing `B` is optional.
/// Fractions round down to a whole byte.
///
/// ```
/// assert_eq!(bptt::parse_bytes("256MiB").unwrap(), 256 << 20);
/// assert_eq!(bptt::parse_bytes("1.5GB").unwrap(), 1_500_000_000);
/// ```
pub fn parse_bytes(text: &str) -> Result<u64, Error> {
    let bad = || Error::BadSize(text.to_string());
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let (prefix, binary) = match unit.strip_suffix('i') {
        Some(p) if !p.is_empty() => (p, true),
        _ => (unit, false),
    };
    let power = match prefix {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        _ => return Err(bad()),
    };
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let bytes = (value * base.powi(power)).floor();
    if !bytes.is_finite() || bytes >= 2f64.powi(63) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// The bytes one step of a cell holds: what a byte budget is spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSizes {
    /// One stored hidden state (for the whole batch).
    pub state_bytes: u64,
    /// One stored tape (for the whole batch).
    pub tape_bytes: u64,
    /// Everything held outside the checkpoints: running states, gradients,
    /// the working tape, scratch.
    pub working_bytes: u64,
}

impl ByteSizes {
    /// Checks that the state and tape sizes are positive.
    pub fn new(state_bytes: u64, tape_bytes: u64, working_bytes: u64) -> Result<Self, Error> {
        if state_bytes == 0 {
            return Err(Error::ZeroSize("a hidden state"));
        }
        if tape_bytes == 0 {
            return Err(Error::ZeroSize("a tape"));
        }
        Ok(ByteSizes {
            state_bytes,
            tape_bytes,
            working_bytes,
        })
    }

    /// The tape-to-state ratio these sizes give (at least one).
    pub fn alpha(&self) -> Result<Alpha, Error> {
        Alpha::new((self.tape_bytes as f64 / self.state_bytes as f64).max(1.0))
    }

    /// The checkpoint budget, in ticks of `alpha`, that `memory` bytes leave
    /// beyond the working set; refused (naming both figures) when the memory
    /// does not even hold the working set. Rounds down, so the ticks' bytes
    /// never exceed what is left.
    pub fn budget(&self, memory: u64, alpha: Alpha) -> Result<Ticks, Error> {
        let left = memory
            .checked_sub(self.working_bytes)
            .ok_or(Error::MemoryBelowWorkingSet {
                memory,
                working: self.working_bytes,
            })?;
        let ticks =
            u128::from(left) * u128::from(alpha.denominator()) / u128::from(self.state_bytes);
        let ticks = ticks.min(u128::from(u32::MAX / 4));
        Ok(Ticks(ticks as u32))
    }

    /// The bytes of `ticks` of checkpoints plus the working set.
    pub fn memory(&self, ticks: Ticks, alpha: Alpha) -> u64 {
        (u64::from(ticks.0) * self.state_bytes).div_ceil(u64::from(alpha.denominator()))
            + self.working_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_is_exact_when_it_can_be() {
        let a = Alpha::new(4.0).unwrap();
        assert_eq!((a.numerator(), a.denominator()), (4, 1));
        let a = Alpha::new(1.25).unwrap();
        assert_eq!((a.numerator(), a.denominator()), (5, 4));
    }

    #[test]
    fn inexact_alpha_rounds_up() {
        let a = Alpha::new(std::f64::consts::PI).unwrap();
        assert_eq!(a.denominator(), MAX_DENOMINATOR);
        assert!(a.value() >= std::f64::consts::PI);
        assert!(a.value() - std::f64::consts::PI < 1.0 / 16.0);
    }

    #[test]
    fn alpha_below_one_is_refused() {
        assert!(Alpha::new(0.5).is_err());
        assert!(Alpha::new(f64::NAN).is_err());
    }

    #[test]
    fn budget_rounds_down_to_ticks() {
        let a = Alpha::new(3.5).unwrap();
        assert_eq!(a.to_ticks(10.3).unwrap(), Ticks(20));
        assert_eq!(a.to_ticks(10.5).unwrap(), Ticks(21));
    }

    #[test]
    fn budget_parses_units_and_percent() {
        assert_eq!("200".parse::<Budget>().unwrap(), Budget::Units(200.0));
        assert_eq!("5%".parse::<Budget>().unwrap(), Budget::Percent(5.0));
        assert!("-1".parse::<Budget>().is_err());
        assert!("abc".parse::<Budget>().is_err());
        assert!("150%".parse::<Budget>().is_err());
        let a = Alpha::new(4.0).unwrap();
        assert!((Budget::Percent(5.0).units(a, 1000) - 199.8).abs() < 1e-9);
    }

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_bytes("1.5GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_bytes("64k").unwrap(), 64_000);
        assert_eq!(parse_bytes(" 2 GiB ").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("1.5").unwrap(), 1);
        for bad in [
            "",
            "MiB",
            "12XB",
            "-3",
            "1e3",
            "1..2k",
            "99999999999TB",
            "5ib",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_byte_budget_leaves_the_working_set() {
        let sizes = ByteSizes::new(1000, 3500, 10_000).unwrap();
        let alpha = sizes.alpha().unwrap();
        assert_eq!((alpha.numerator(), alpha.denominator()), (7, 2));
        let ticks = sizes.budget(10_000 + 5_499, alpha).unwrap();
        assert_eq!(ticks, Ticks(10));
        assert!(sizes.memory(ticks, alpha) <= 15_499);
        assert!(sizes.memory(Ticks(11), alpha) > 15_499);
        assert!(matches!(
            sizes.budget(9_999, alpha).unwrap_err(),
            Error::MemoryBelowWorkingSet {
                memory: 9_999,
                working: 10_000
            }
        ));
        assert!(ByteSizes::new(0, 1, 0).is_err());
    }
}
