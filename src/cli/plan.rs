//! `bptt plan` and `bptt schedule`.

use clap::Args;
use serde::Serialize;

use super::{MemorySpec, PlanSpec};
use bptt::planner::least_budget;
use bptt::schedule::{OpStream, verify_stream};
use bptt::{Alpha, Budget, Error, Plan, PlanSummary, Policy};
use bptt::{ByteSizes, parse_bytes};
use bptt_runtime::{Cell, Lstm, Rng};

/// Arguments of `bptt plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    spec: PlanSpec,
    #[command(flatten)]
    memory: MemorySpec,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Bytes of a float.
const FLOAT: u64 = 4;

/// The byte sizes the spec gives, if any.
fn sizes(spec: &MemorySpec) -> Result<Option<ByteSizes>, Error> {
    let (state, tape) = match (&spec.state_bytes, &spec.tape_bytes, spec.hidden, spec.batch) {
        (Some(state), Some(tape), _, _) => (parse_bytes(state)?, parse_bytes(tape)?),
        (_, _, Some(hidden), Some(batch)) => {
            if hidden == 0 || batch == 0 {
                return Err(Error::ZeroSize("--hidden and --batch"));
            }
            // The sizes come from the runtime's LSTM itself (input size does not enter them).
            let cell = Lstm::new(1, hidden, &mut Rng::new(0));
            let rows = batch as u64 * FLOAT;
            (
                cell.state_size() as u64 * rows,
                cell.tape_size() as u64 * rows,
            )
        }
        _ => return Ok(None),
    };
    let working = match &spec.working_bytes {
        Some(text) => parse_bytes(text)?,
        None => (5 * state).saturating_add(tape),
    };
    ByteSizes::new(state, tape, working).map(Some)
}

/// The tape-to-state ratio: from the sizes when given, else `--alpha`.
fn alpha(spec: &PlanSpec, sizes: Option<ByteSizes>) -> Result<Alpha, Error> {
    match sizes {
        Some(sizes) => sizes.alpha(),
        None => Alpha::new(spec.alpha),
    }
}

/// The plan asked for: from `--memory`, `--max-slowdown` or `--budget`.
fn resolve(spec: &PlanSpec, bytes: &MemorySpec) -> Result<Plan, Error> {
    let policy: Policy = spec.policy.parse()?;
    let sizes = sizes(bytes)?;
    let alpha = alpha(spec, sizes)?;
    if let Some(memory) = &bytes.memory {
        let sizes = sizes.ok_or(Error::MissingSizes)?;
        let ticks = sizes.budget(parse_bytes(memory)?, alpha)?;
        let units = Budget::Units(alpha.to_units(ticks));
        return Plan::new(policy, alpha, spec.len, units);
    }
    if let Some(slowdown) = bytes.max_slowdown {
        return least_memory(policy, alpha, spec.len, slowdown, bytes.backward_cost);
    }
    Plan::new(policy, alpha, spec.len, spec.budget()?)
}

/// The slowdown over store-all of `forward_steps`, a backward step costing `b`.
fn slowdown(forward_steps: u64, len: u32, b: f64) -> f64 {
    (forward_steps as f64 + b * f64::from(len)) / ((1.0 + b) * f64::from(len))
}

/// The plan with the least memory whose slowdown is at most `asked`.
fn least_memory(policy: Policy, alpha: Alpha, len: u32, asked: f64, b: f64) -> Result<Plan, Error> {
    let unreachable = |best: f64| Error::SlowdownUnreachable {
        policy,
        len,
        asked,
        best,
    };
    if !policy.is_dynamic() {
        let plan = Plan::new(policy, alpha, len, Budget::Percent(100.0))?;
        let s = slowdown(plan.forward_steps(), len, b);
        return if s <= asked {
            Ok(plan)
        } else {
            Err(unreachable(s))
        };
    }
    if len == 0 {
        return Err(Error::ZeroLength);
    }
    let max_steps = (asked * (1.0 + b) * f64::from(len) - b * f64::from(len)).floor();
    let budget = if max_steps >= 0.0 {
        least_budget(policy, alpha, len, max_steps as u64)?
    } else {
        None
    };
    match budget {
        Some(ticks) => Plan::new(policy, alpha, len, Budget::Units(alpha.to_units(ticks))),
        None => {
            let most = Plan::new(policy, alpha, len, Budget::Percent(100.0))?;
            Err(unreachable(slowdown(most.forward_steps(), len, b)))
        }
    }
}

/// A plan's memory in bytes, when the sizes are known.
#[derive(Serialize)]
struct Bytes {
    /// The working set.
    working_bytes: u64,
    /// The checkpoints at their peak.
    peak_checkpoint_bytes: u64,
    /// Both: what a run of this plan holds.
    total_bytes: u64,
    /// The budget given with --memory, if any.
    memory_bytes: Option<u64>,
}

/// The plan, with the verifier's account of its schedule.
#[derive(Serialize)]
struct Planned {
    #[serde(flatten)]
    summary: PlanSummary,
    /// The checkpoint stack in hidden-state units (the peak).
    stack_units: f64,
    operations: u64,
    verified: bool,
    /// The iteration's time over store-all's, a backward step costing
    /// `--backward-cost` forward steps.
    slowdown: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<Bytes>,
}

pub fn plan(args: &PlanArgs) -> Result<(), Error> {
    let (spec, memory) = (&args.spec, &args.memory);
    let plan = resolve(spec, memory)?;
    // The schedule streams through the verifier: it is never held whole.
    let stream = OpStream::new(&plan);
    let header = *stream.header();
    let mut operations = 0u64;
    let report = verify_stream(&header, stream.inspect(|_| operations += 1))?;
    let summary = plan.summary();
    debug_assert_eq!(report.forward_steps, summary.forward_steps);
    let bytes = sizes(memory)?.map(|sizes| {
        let checkpoints = sizes.memory(plan.peak(), plan.alpha()) - sizes.working_bytes;
        Ok::<_, Error>(Bytes {
            working_bytes: sizes.working_bytes,
            peak_checkpoint_bytes: checkpoints,
            total_bytes: checkpoints + sizes.working_bytes,
            memory_bytes: memory.memory.as_deref().map(parse_bytes).transpose()?,
        })
    });
    let planned = Planned {
        slowdown: slowdown(summary.forward_steps, summary.len, memory.backward_cost),
        summary,
        stack_units: plan.alpha().to_units(header.capacity),
        operations,
        verified: true,
        bytes: bytes.transpose()?,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&planned).expect("plans serialise")
        );
        return Ok(());
    }
    print_table(&planned);
    Ok(())
}

fn print_table(planned: &Planned) {
    let s = &planned.summary;
    println!("policy          {}", s.policy);
    println!("length          {}", s.len);
    println!("alpha           {}", s.alpha);
    println!(
        "budget          {} units ({:.2}% of store-all's {})",
        s.budget,
        100.0 * s.budget / s.store_all_units.max(f64::MIN_POSITIVE),
        s.store_all_units
    );
    println!(
        "forward steps   {} ({:.3} per step, slowdown {:.3})",
        s.forward_steps, s.cost_per_step, planned.slowdown
    );
    println!("backward steps  {}", s.backward_steps);
    println!("peak memory     {} units", s.peak_units);
    if let Some(b) = &planned.bytes {
        let budget = b
            .memory_bytes
            .map_or(String::new(), |m| format!(" of the {m} given"));
        println!(
            "bytes           {} ({} of checkpoints, {} working set){budget}",
            b.total_bytes, b.peak_checkpoint_bytes, b.working_bytes
        );
    }
    println!(
        "method          {} (lower bound {}, gap {})",
        s.method, s.lower_bound, s.gap
    );
    println!(
        "schedule        {} operations over a {}-unit checkpoint stack, verified",
        planned.operations, planned.stack_units
    );
}

pub fn schedule(spec: &PlanSpec) -> Result<(), Error> {
    use std::io::Write;
    let plan = spec.plan()?;
    // Verified in one streaming pass first, then printed from a second stream.
    let stream = OpStream::new(&plan);
    let header = *stream.header();
    let report = verify_stream(&header, stream)?;
    let s = plan.summary();
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let io = |e: std::io::Error| Error::io("cannot write the schedule")(e);
    writeln!(
        out,
        "# {} T={} alpha={} budget={} units: {} forward steps, peak {} units; slots named by kind (H state, T tape) and offset in ticks of 1/{} state",
        s.policy,
        s.len,
        s.alpha,
        s.budget,
        report.forward_steps,
        report.peak_units,
        plan.alpha().denominator()
    )
    .map_err(io)?;
    for op in OpStream::new(&plan) {
        writeln!(out, "{op}").map_err(io)?;
    }
    out.flush().map_err(io)
}
