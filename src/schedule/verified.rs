//! A schedule the verifier has accepted, as a type.
//!
//! [`Verified`] can only be made by [`Verified::new`], which runs
//! [`verify`]; lowering ([`Lowered::new`](crate::Lowered::new)) and every
//! runner take one, so a schedule that was not proved never reaches an
//! engine. A schedule built by hand ([`Schedule::with_ops`]) must pass
//! through it like any other:
//!
//! ```compile_fail
//! use bptt::{Lowered, Schedule};
//!
//! fn run_unproved(schedule: &Schedule) -> Lowered {
//!     Lowered::new(schedule) // expected `&Verified`, found `&Schedule`
//! }
//! ```
//!
//! ```compile_fail
//! use bptt::schedule::Verified;
//!
//! fn forge(schedule: bptt::Schedule, report: bptt::Report) -> Verified {
//!     Verified { schedule, report } // the fields are private
//! }
//! ```

use super::{Report, Schedule, verify};
use crate::error::Error;

/// A schedule proved correct by [`verify`], with the verifier's report.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    schedule: Schedule,
    report: Report,
}

impl Verified {
    /// Verifies `schedule`; [`Error::Verify`] names the first operation that
    /// breaks a promise.
    pub fn new(schedule: Schedule) -> Result<Self, Error> {
        let report = verify(&schedule)?;
        Ok(Verified { schedule, report })
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// What the verifier counted.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The schedule back (to rewrite it; it must be verified again).
    pub fn into_schedule(self) -> Schedule {
        self.schedule
    }
}

/// What a runner accepts: a [`Schedule`], verified on the way in, or one
/// already [`Verified`].
pub trait IntoVerified {
    /// The verified schedule ([`Error::Verify`] if it does not verify).
    fn into_verified(self) -> Result<Verified, Error>;
}

impl IntoVerified for Schedule {
    fn into_verified(self) -> Result<Verified, Error> {
        Verified::new(self)
    }
}

impl IntoVerified for Verified {
    fn into_verified(self) -> Result<Verified, Error> {
        Ok(self)
    }
}
