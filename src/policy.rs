//! The checkpointing policies that bptt plans.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A checkpointing policy: one of the paper's dynamic programs or a baseline.
/// Serialised as its name (`msm`, `interval:8`), and read back from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Policy {
    /// Hidden state memorisation: stores hidden states only (equals Revolve).
    Hsm,
    /// Internal state memorisation: stores tapes only.
    Ism,
    /// Both: the paper's mixed policy, never worse than HSM or ISM.
    Msm,
    /// Plain BPTT: the tape of every step.
    StoreAll,
    /// Chen et al.'s sqrt(t): a hidden state every `k` steps with the `k` that
    /// needs the least memory, and one segment's tapes at a time.
    Sqrt,
    /// A hidden state every `k` steps, one segment's tapes at a time.
    Interval(u32),
}

impl Policy {
    /// The three dynamic programs and the two parameter-free baselines.
    pub const ALL: [Policy; 5] = [
        Policy::Hsm,
        Policy::Ism,
        Policy::Msm,
        Policy::StoreAll,
        Policy::Sqrt,
    ];

    /// Whether the policy is one of the paper's dynamic programs.
    pub fn is_dynamic(self) -> bool {
        matches!(self, Policy::Hsm | Policy::Ism | Policy::Msm)
    }

    /// Whether the dynamic program may store hidden states (`H` choices).
    pub fn allows_hidden(self) -> bool {
        matches!(self, Policy::Hsm | Policy::Msm)
    }

    /// Whether the dynamic program may store tapes (`I` choices).
    pub fn allows_tape(self) -> bool {
        matches!(self, Policy::Ism | Policy::Msm)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Hsm => f.write_str("hsm"),
            Policy::Ism => f.write_str("ism"),
            Policy::Msm => f.write_str("msm"),
            Policy::StoreAll => f.write_str("store-all"),
            Policy::Sqrt => f.write_str("sqrt"),
            Policy::Interval(k) => write!(f, "interval:{k}"),
        }
    }
}

crate::units::words_serde!(Policy);

impl FromStr for Policy {
    type Err = Error;

    /// Parses `hsm`, `ism`, `msm`, `store-all`, `sqrt` or `interval:K` (K >= 1).
    fn from_str(s: &str) -> Result<Self, Error> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "hsm" => Policy::Hsm,
            "ism" => Policy::Ism,
            "msm" => Policy::Msm,
            "store-all" | "storeall" => Policy::StoreAll,
            "sqrt" => Policy::Sqrt,
            other => match other.strip_prefix("interval:").map(str::parse::<u32>) {
                Some(Ok(k)) if k >= 1 => Policy::Interval(k),
                _ => return Err(Error::UnknownPolicy(s.to_string())),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Policy::ALL.into_iter().chain([Policy::Interval(7)]) {
            assert_eq!(p.to_string().parse::<Policy>().unwrap(), p);
        }
    }

    #[test]
    fn unknown_names_are_refused() {
        assert!("revolve".parse::<Policy>().is_err());
        assert!("interval:0".parse::<Policy>().is_err());
        assert!("interval:x".parse::<Policy>().is_err());
    }
}
