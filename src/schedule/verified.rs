//! A schedule the verifier has accepted, as a type.
//!
//! [`Verified`] can only be made by [`Verified::new`], which runs
//! [`verify`] on a listed schedule, or by [`Verified::stream`], which runs it
//! over a plan's stream; lowering ([`Lowered::new`](crate::Lowered::new)) and every
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
//! // Another schedule's proof on this one: the fields are private.
//! fn forge(proved: Verified, report: bptt::Report) -> Verified {
//!     Verified { report, ..proved }
//! }
//! ```

use std::sync::Arc;

use super::{Header, Report, Schedule, verify, verify_plan};
use crate::error::Error;
use crate::planner::Plan;

/// A schedule proved correct, in one of two forms.
#[derive(Debug, Clone)]
enum Form {
    /// Its operations expanded in a list.
    Listed(Schedule),
    /// Its plan, whose [`OpStream`](super::OpStream) yields the operations
    /// again at each run, identically (the stream is a pure function of the
    /// plan), so what was proved is what runs.
    Streamed(Arc<Plan>, Header),
}

/// Where a [`Verified`] schedule's operations come from.
#[derive(Debug, Clone, Copy)]
pub enum Ops<'a> {
    /// The listed schedule.
    Listed(&'a Schedule),
    /// The plan whose [`OpStream`](super::OpStream) yields them.
    Streamed(&'a Arc<Plan>),
}

/// A schedule proved correct by [`verify`], with the verifier's report:
/// either listed ([`Verified::new`]) or streamed from its plan
/// ([`Verified::stream`]), whose memory is the recursion's stack, never `T`.
#[derive(Debug, Clone)]
pub struct Verified {
    form: Form,
    report: Report,
}

impl Verified {
    /// Verifies `schedule`; [`Error::Verify`] names the first operation that
    /// breaks a promise.
    pub fn new(schedule: Schedule) -> Result<Self, Error> {
        let report = verify(&schedule)?;
        Ok(Verified {
            form: Form::Listed(schedule),
            report,
        })
    }

    /// Verifies `plan`'s schedule in one pass over its stream, never
    /// holding it whole; runners stream it again at every run.
    pub fn stream(plan: Plan) -> Result<Self, Error> {
        let report = verify_plan(&plan)?;
        let header = Header::of(&plan);
        Ok(Verified {
            form: Form::Streamed(Arc::new(plan), header),
            report,
        })
    }

    /// What the schedule promises.
    pub fn header(&self) -> &Header {
        match &self.form {
            Form::Listed(schedule) => schedule.header(),
            Form::Streamed(_, header) => header,
        }
    }

    /// The listed schedule, or [`Error::Streamed`] for a streamed one
    /// (what needs every operation at once, code generation, asks this).
    pub fn schedule(&self) -> Result<&Schedule, Error> {
        match &self.form {
            Form::Listed(schedule) => Ok(schedule),
            Form::Streamed(..) => Err(Error::Streamed(self.header().len)),
        }
    }

    /// Where the operations come from: the list, or the plan to stream.
    pub fn ops(&self) -> Ops<'_> {
        match &self.form {
            Form::Listed(schedule) => Ops::Listed(schedule),
            Form::Streamed(plan, _) => Ops::Streamed(plan),
        }
    }

    /// What the verifier counted.
    pub fn report(&self) -> &Report {
        &self.report
    }
}

/// What a runner accepts: a [`Schedule`] (listed) or a [`Plan`] (streamed),
/// verified on the way in, or one already [`Verified`].
pub trait IntoVerified {
    /// The verified schedule ([`Error::Verify`] if it does not verify).
    fn into_verified(self) -> Result<Verified, Error>;
}

impl IntoVerified for Schedule {
    fn into_verified(self) -> Result<Verified, Error> {
        Verified::new(self)
    }
}

impl IntoVerified for Plan {
    fn into_verified(self) -> Result<Verified, Error> {
        Verified::stream(self)
    }
}

impl IntoVerified for Verified {
    fn into_verified(self) -> Result<Verified, Error> {
        Ok(self)
    }
}
