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

/// A memory budget as the user states it.
#[derive(Debug, Clone, Copy, PartialEq)]
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
}
