//! Runs of calls, which the JIT compiles as loops.
//!
//! A long schedule is regular: a forward run is `forward` at steps `s`,
//! `s + 1`, ... between the two running buffers in turn, a tape-only
//! segment stores tapes at offsets that step by one tape, its backward
//! steps count down over them. [`Runs`] groups consecutive calls of one shim
//! whose every argument either steps by a constant ([`Field::Step`]) or
//! alternates between two values ([`Field::Alternate`], the ping-pong
//! buffers) into one [`Run`]; the JIT compiles a run of more than one call as
//! a loop, so its code grows with the number of runs, not of calls (MSM at
//! T = 100,000 and 5% of store-all: 144 runs for 295,021 calls).
//!
//! Grouping looks at the arguments exactly as the shims receive them (the
//! step and the arena offsets), and a run's calls are by construction the
//! calls it was made of, in order (tested: expanding the runs gives the
//! calls back), so a loop runs exactly the verified schedule's calls.

use bptt_runtime::ArenaLayout;

use super::shims::{Args, Shim, shim_args};
use crate::error::Error;
use crate::lower::Call;

/// How one argument changes along a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// `start + i * delta` at the run's `i`-th call.
    Step {
        /// At the first call.
        start: i64,
        /// Added per call.
        delta: i64,
    },
    /// `first` at the run's even calls, `second` at its odd ones.
    Alternate {
        /// At the even calls.
        first: i64,
        /// At the odd calls.
        second: i64,
    },
}

impl Field {
    /// The field that `a, b, c` (three consecutive values) follow, if any.
    fn of(a: i64, b: i64, c: i64) -> Option<Field> {
        let delta = b.checked_sub(a)?;
        if c.checked_sub(b) == Some(delta) {
            Some(Field::Step { start: a, delta })
        } else if c == a {
            Some(Field::Alternate {
                first: a,
                second: b,
            })
        } else {
            None
        }
    }

    /// The value at the `i`-th call.
    pub(crate) fn at(self, i: u32) -> Option<i64> {
        match self {
            Field::Step { start, delta } => delta
                .checked_mul(i64::from(i))
                .and_then(|d| start.checked_add(d)),
            Field::Alternate { first, second } => {
                Some(if i.is_multiple_of(2) { first } else { second })
            }
        }
    }
}

/// `count` consecutive calls of `shim`, the `i`-th taking the arguments
/// `fields[k].at(i)`; `first` and `last` are its first and last calls.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    pub(crate) shim: Shim,
    pub(crate) count: u32,
    fields: [Field; 4],
    pub(crate) first: Call,
    pub(crate) last: Call,
}

impl Run {
    /// A run of one call.
    fn single(call: Call, shim: Shim, args: Args) -> Self {
        let mut fields = [Field::Step { start: 0, delta: 0 }; 4];
        for (field, &start) in fields.iter_mut().zip(args.as_slice()) {
            *field = Field::Step { start, delta: 0 };
        }
        Run {
            shim,
            count: 1,
            fields,
            first: call,
            last: call,
        }
    }

    /// How each of the shim's arguments changes along the run.
    pub(crate) fn fields(&self) -> &[Field] {
        &self.fields[..self.shim.arity()]
    }

    /// Whether `args` (of `shim`) are the arguments of call `count`, which
    /// would extend the run.
    fn extends(&self, shim: Shim, args: &Args) -> bool {
        shim == self.shim
            && self.count < u32::MAX
            && self
                .fields()
                .iter()
                .zip(args.as_slice())
                .all(|(f, &v)| f.at(self.count) == Some(v))
    }
}

/// Groups calls into runs as they come, holding the finished runs, the run
/// being extended and at most two calls not yet in one.
pub(crate) struct Runs<'l> {
    layout: &'l ArenaLayout,
    loops: bool,
    done: Vec<Run>,
    open: Option<Run>,
    waiting: Vec<(Call, Shim, Args)>,
    calls: usize,
}

impl<'l> Runs<'l> {
    /// No calls yet, for arguments in `layout`; with `loops` off every call
    /// is a run of its own (the fully unrolled code, to compare against).
    pub(crate) fn new(layout: &'l ArenaLayout, loops: bool) -> Self {
        Runs {
            layout,
            loops,
            done: Vec::new(),
            open: None,
            waiting: Vec::with_capacity(3),
            calls: 0,
        }
    }

    /// Adds the next call; fails if a region lies outside the layout.
    pub(crate) fn push(&mut self, call: Call) -> Result<(), Error> {
        let (shim, args) = shim_args(&call, self.layout)?;
        self.calls += 1;
        if !self.loops {
            self.done.push(Run::single(call, shim, args));
            return Ok(());
        }
        if let Some(run) = &mut self.open {
            if run.extends(shim, &args) {
                run.count += 1;
                run.last = call;
                return Ok(());
            }
            self.done.extend(self.open.take());
        }
        self.waiting.push((call, shim, args));
        if self.waiting.len() == 3 {
            match self.pattern() {
                Some(run) => {
                    self.open = Some(run);
                    self.waiting.clear();
                }
                None => {
                    let (call, shim, args) = self.waiting.remove(0);
                    self.done.push(Run::single(call, shim, args));
                }
            }
        }
        Ok(())
    }

    /// The run of the three waiting calls, if one shim and one field per
    /// argument fit them.
    fn pattern(&self) -> Option<Run> {
        let [(first, shim, a), (_, s1, b), (last, s2, c)] = &self.waiting[..] else {
            return None;
        };
        if shim != s1 || shim != s2 {
            return None;
        }
        let mut fields = [Field::Step { start: 0, delta: 0 }; 4];
        for (k, field) in fields.iter_mut().enumerate().take(shim.arity()) {
            *field = Field::of(a.as_slice()[k], b.as_slice()[k], c.as_slice()[k])?;
        }
        Some(Run {
            shim: *shim,
            count: 3,
            fields,
            first: *first,
            last: *last,
        })
    }

    /// The runs, in order, and how many calls they hold.
    pub(crate) fn finish(mut self) -> (Vec<Run>, usize) {
        self.done.extend(self.open.take());
        for (call, shim, args) in self.waiting.drain(..) {
            self.done.push(Run::single(call, shim, args));
        }
        (self.done, self.calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::Lowered;
    use crate::planner::Plan;
    use crate::policy::Policy;
    use crate::schedule::{StreamMemory, Verified};
    use crate::units::{Alpha, Budget};

    /// The runs of a plan's calls, and the calls, on a layout of one-float
    /// states: a checkpoint at tick `p` then starts `ceil(p / den)` floats
    /// into the stack, which is not linear in `p` when alpha is fractional.
    fn runs_of(plan: Plan) -> (Vec<Run>, Vec<(Shim, Vec<i64>)>) {
        let verified = Verified::stream(plan).unwrap();
        let mut layout = crate::jit::layout_for_alpha(verified.header());
        layout.state_size = 1;
        layout.tape_size = verified.header().alpha.value().ceil() as usize;
        let lowered = Lowered::new(&verified);
        let mut runs = Runs::new(&layout, true);
        let mut calls = Vec::new();
        lowered.for_each(&mut StreamMemory::default(), |call| {
            let (shim, args) = shim_args(&call, &layout).unwrap();
            calls.push((shim, args.as_slice().to_vec()));
            runs.push(call).unwrap();
        });
        let (runs, count) = runs.finish();
        assert_eq!(count, calls.len());
        (runs, calls)
    }

    /// Every call of every run, in order.
    fn expand(runs: &[Run]) -> Vec<(Shim, Vec<i64>)> {
        runs.iter()
            .flat_map(|run| {
                (0..run.count).map(move |i| {
                    let args = run.fields().iter().map(|f| f.at(i).unwrap()).collect();
                    (run.shim, args)
                })
            })
            .collect()
    }

    #[test]
    fn runs_expand_to_the_calls_they_were_made_of() {
        let alphas = [1.0, 3.0, 3.5];
        for policy in [
            Policy::Msm,
            Policy::Hsm,
            Policy::Ism,
            Policy::StoreAll,
            Policy::Sqrt,
        ] {
            for (len, percent) in [(1, 100.0), (2, 50.0), (37, 10.0), (300, 5.0), (2000, 1.0)] {
                for alpha in alphas {
                    let budget = if policy.is_dynamic() { percent } else { 100.0 };
                    let plan = Plan::new(
                        policy,
                        Alpha::new(alpha).unwrap(),
                        len,
                        Budget::Percent(budget),
                    )
                    .unwrap();
                    let (runs, calls) = runs_of(plan);
                    assert_eq!(
                        expand(&runs),
                        calls,
                        "{policy} T = {len} {percent}% alpha {alpha}"
                    );
                    assert!(runs.len() <= calls.len());
                }
            }
        }
    }

    #[test]
    fn a_long_regular_schedule_is_a_few_runs() {
        let plan = Plan::new(
            Policy::Msm,
            Alpha::new(3.0).unwrap(),
            20_000,
            Budget::Percent(5.0),
        )
        .unwrap();
        let (runs, calls) = runs_of(plan);
        assert!(
            runs.len() * 100 < calls.len(),
            "{} runs for {} calls",
            runs.len(),
            calls.len()
        );
    }

    #[test]
    fn fields_step_or_alternate() {
        assert_eq!(Field::of(3, 5, 7), Some(Field::Step { start: 3, delta: 2 }));
        assert_eq!(
            Field::of(8, 4, 8),
            Some(Field::Alternate {
                first: 8,
                second: 4
            })
        );
        assert_eq!(Field::of(1, 2, 4), None);
        assert_eq!(Field::of(i64::MIN, i64::MAX, 0), None);
        let f = Field::Alternate {
            first: 8,
            second: 4,
        };
        assert_eq!(
            (0..4).map(|i| f.at(i).unwrap()).collect::<Vec<_>>(),
            [8, 4, 8, 4]
        );
    }
}
