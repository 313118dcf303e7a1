//! Runs of calls, which the JIT and `#[bptt]` compile as loops.
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
//! Grouping looks at the arguments as the generated code passes them (the
//! JIT: the step and the arena offsets; `#[bptt]`: the step and the slots'
//! ticks), and a run's calls are by construction the calls it was made of,
//! in order (tested: expanding the runs gives the calls back), so a loop
//! runs exactly the verified schedule's calls.

use bptt_runtime::Region;

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

/// `count` consecutive calls of one `kind` (the calls' variant and whatever
/// else must agree, such as the shim or the kinds of regions), the `i`-th
/// taking the arguments `fields()[k].at(i)`; `first` and `last` are its
/// first and last calls.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run<K> {
    pub(crate) kind: K,
    pub(crate) count: u32,
    fields: [Field; 4],
    arity: usize,
    pub(crate) first: Call,
    pub(crate) last: Call,
}

/// A call waiting to join a run: the call, its kind and its arguments.
type Waiting<K> = (Call, K, [i64; 4], usize);

impl<K: Copy + PartialEq> Run<K> {
    /// A run of one call.
    fn single((call, kind, args, arity): Waiting<K>) -> Self {
        let mut fields = [Field::Step { start: 0, delta: 0 }; 4];
        for (field, &start) in fields.iter_mut().zip(&args[..arity]) {
            *field = Field::Step { start, delta: 0 };
        }
        Run {
            kind,
            count: 1,
            fields,
            arity,
            first: call,
            last: call,
        }
    }

    /// How each argument changes along the run.
    pub(crate) fn fields(&self) -> &[Field] {
        &self.fields[..self.arity]
    }

    /// Whether a call of `kind` with `args` is call `count` of the run.
    fn extends(&self, kind: K, args: &[i64]) -> bool {
        kind == self.kind
            && args.len() == self.arity
            && self.count < u32::MAX
            && self
                .fields()
                .iter()
                .zip(args)
                .all(|(f, &v)| f.at(self.count) == Some(v))
    }
}

/// Groups calls into runs as they come, holding the finished runs, the run
/// being extended and at most two calls not yet in one.
pub(crate) struct Runs<K> {
    loops: bool,
    done: Vec<Run<K>>,
    open: Option<Run<K>>,
    waiting: Vec<Waiting<K>>,
    calls: usize,
}

impl<K: Copy + PartialEq> Runs<K> {
    /// No calls yet; with `loops` off every call is a run of its own (the
    /// fully unrolled code, to compare against).
    pub(crate) fn new(loops: bool) -> Self {
        Runs {
            loops,
            done: Vec::new(),
            open: None,
            waiting: Vec::with_capacity(3),
            calls: 0,
        }
    }

    /// Adds the next call, of `kind`, with its (at most four) arguments.
    pub(crate) fn push(&mut self, call: Call, kind: K, args: &[i64]) {
        assert!(args.len() <= 4, "a call has at most four arguments");
        self.calls += 1;
        let mut values = [0; 4];
        values[..args.len()].copy_from_slice(args);
        let waiting = (call, kind, values, args.len());
        if !self.loops {
            self.done.push(Run::single(waiting));
            return;
        }
        if let Some(run) = &mut self.open {
            if run.extends(kind, args) {
                run.count += 1;
                run.last = call;
                return;
            }
            self.done.extend(self.open.take());
        }
        self.waiting.push(waiting);
        if self.waiting.len() == 3 {
            match self.pattern() {
                Some(run) => {
                    self.open = Some(run);
                    self.waiting.clear();
                }
                None => {
                    let first = self.waiting.remove(0);
                    self.done.push(Run::single(first));
                }
            }
        }
    }

    /// The run of the three waiting calls, if one kind and one field per
    /// argument fit them.
    fn pattern(&self) -> Option<Run<K>> {
        let [(first, kind, a, arity), (_, k1, b, n1), (last, k2, c, n2)] = &self.waiting[..] else {
            return None;
        };
        if kind != k1 || kind != k2 || arity != n1 || arity != n2 {
            return None;
        }
        let mut fields = [Field::Step { start: 0, delta: 0 }; 4];
        for (k, field) in fields.iter_mut().enumerate().take(*arity) {
            *field = Field::of(a[k], b[k], c[k])?;
        }
        Some(Run {
            kind: *kind,
            count: 3,
            fields,
            arity: *arity,
            first: *first,
            last: *last,
        })
    }

    /// The runs, in order, and how many calls they hold.
    pub(crate) fn finish(mut self) -> (Vec<Run<K>>, usize) {
        self.done.extend(self.open.take());
        for waiting in self.waiting.drain(..) {
            self.done.push(Run::single(waiting));
        }
        (self.done, self.calls)
    }
}

/// A call as generated code writes it: the `Execution` method it calls,
/// its step (if any) and the regions it names, in the method's order.
pub(crate) fn parts(call: &Call) -> (&'static str, Option<u32>, Vec<Region>) {
    match *call {
        Call::RestoreInitial { dst } => ("restore_initial", None, vec![dst]),
        Call::CopyState { src, dst } => ("copy_state", None, vec![src, dst]),
        Call::StateFromTape { tape, dst } => ("state_from_tape", None, vec![tape, dst]),
        Call::Forward { step, src, dst } => ("forward", Some(step), vec![src, dst]),
        Call::ForwardTape {
            step,
            src,
            tape,
            dst,
        } => ("forward_tape", Some(step), vec![src, tape, dst]),
        Call::Backward {
            step,
            tape,
            grad,
            grad_prev,
        } => ("backward", Some(step), vec![tape, grad, grad_prev]),
    }
}

/// A call's method and the kinds of the regions it names: calls of one
/// kind may share a run when their arguments are slots ([`slot_args`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotKind {
    method: &'static str,
    regions: [u8; 3],
}

/// A region's kind, and its index (a buffer's 0 or 1, a checkpoint's tick).
fn slot(region: Region) -> (u8, i64) {
    match region {
        Region::Run(i) => (0, i64::from(i)),
        Region::State => (1, 0),
        Region::Grad(i) => (2, i64::from(i)),
        Region::WorkTape => (3, 0),
        Region::Hidden(p) => (4, i64::from(p)),
        Region::Tape(p) => (5, i64::from(p)),
        Region::Scratch | Region::ReadoutScratch | Region::Window => (6, 0),
    }
}

/// A call's kind and arguments as slots: its step (if any), then each
/// region's index, in the order of [`parts`]. Code that computes a
/// region's place from its index at run time (`#[bptt]`'s `Offsets`) can
/// loop over runs of these.
pub(crate) fn slot_args(call: &Call) -> (SlotKind, Vec<i64>) {
    let (method, step, regions) = parts(call);
    let mut kinds = [u8::MAX; 3];
    let mut args: Vec<i64> = step.map(i64::from).into_iter().collect();
    for (kind, region) in kinds.iter_mut().zip(regions) {
        let (k, index) = slot(region);
        *kind = k;
        args.push(index);
    }
    (
        SlotKind {
            method,
            regions: kinds,
        },
        args,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::Lowered;
    use crate::planner::Plan;
    use crate::policy::Policy;
    use crate::schedule::{StreamMemory, Verified};
    use crate::units::{Alpha, Budget};

    /// Calls as slots: each one's kind and arguments.
    type Slots = Vec<(SlotKind, Vec<i64>)>;

    /// The runs of a plan's calls as slots, and the calls.
    fn runs_of(plan: Plan) -> (Vec<Run<SlotKind>>, Slots) {
        let lowered = Lowered::new(&Verified::stream(plan).unwrap());
        let mut runs = Runs::new(true);
        let mut calls = Vec::new();
        lowered.for_each(&mut StreamMemory::default(), |call| {
            let (kind, args) = slot_args(&call);
            runs.push(call, kind, &args);
            calls.push((kind, args));
        });
        let (runs, count) = runs.finish();
        assert_eq!(count, calls.len());
        (runs, calls)
    }

    /// Every call of every run, in order.
    pub(crate) fn expand<K: Copy + PartialEq>(runs: &[Run<K>]) -> Vec<(K, Vec<i64>)> {
        runs.iter()
            .flat_map(|run| {
                (0..run.count).map(move |i| {
                    let args = run.fields().iter().map(|f| f.at(i).unwrap()).collect();
                    (run.kind, args)
                })
            })
            .collect()
    }

    #[test]
    fn runs_expand_to_the_calls_they_were_made_of() {
        for policy in [
            Policy::Msm,
            Policy::Hsm,
            Policy::Ism,
            Policy::StoreAll,
            Policy::Sqrt,
        ] {
            for (len, percent) in [(1, 100.0), (2, 50.0), (37, 10.0), (300, 5.0), (2000, 1.0)] {
                for alpha in [1.0, 3.0, 3.5] {
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
    fn unrolled_every_call_is_a_run() {
        let plan = Plan::new(
            Policy::Msm,
            Alpha::new(3.0).unwrap(),
            200,
            Budget::Percent(5.0),
        )
        .unwrap();
        let lowered = Lowered::new(&Verified::stream(plan).unwrap());
        let mut runs = Runs::new(false);
        lowered.for_each(&mut StreamMemory::default(), |call| {
            let (kind, args) = slot_args(&call);
            runs.push(call, kind, &args);
        });
        let (runs, calls) = runs.finish();
        assert_eq!(runs.len(), calls);
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
