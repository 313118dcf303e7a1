//! `bptt plan` and `bptt schedule`.

use clap::Args;
use serde::Serialize;

use super::PlanSpec;
use bptt::{Error, PlanSummary, Report, Schedule, verify};

/// Arguments of `bptt plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    spec: PlanSpec,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The plan, with the verifier's account of its schedule.
#[derive(Serialize)]
struct Planned {
    #[serde(flatten)]
    summary: PlanSummary,
    /// The checkpoint stack in hidden-state units (the peak).
    stack_units: f64,
    operations: usize,
    verified: bool,
}

pub fn plan(args: &PlanArgs) -> Result<(), Error> {
    let plan = args.spec.plan()?;
    let schedule = Schedule::from_plan(&plan);
    let report: Report = verify(&schedule)?;
    let summary = plan.summary();
    debug_assert_eq!(report.forward_steps, summary.forward_steps);
    let planned = Planned {
        summary,
        stack_units: plan.alpha().to_units(schedule.capacity()),
        operations: schedule.ops().len(),
        verified: true,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&planned).expect("plans serialise")
        );
        return Ok(());
    }
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
        "forward steps   {} ({:.3} per step)",
        s.forward_steps, s.cost_per_step
    );
    println!("backward steps  {}", s.backward_steps);
    println!("peak memory     {} units", s.peak_units);
    println!(
        "schedule        {} operations over a {}-unit checkpoint stack, verified",
        planned.operations, planned.stack_units
    );
    Ok(())
}

pub fn schedule(spec: &PlanSpec) -> Result<(), Error> {
    let plan = spec.plan()?;
    let schedule = Schedule::from_plan(&plan);
    let report = verify(&schedule)?;
    let s = plan.summary();
    println!(
        "# {} T={} alpha={} budget={} units: {} forward steps, peak {} units; slots named by kind (H state, T tape) and offset in ticks of 1/{} state",
        s.policy,
        s.len,
        s.alpha,
        s.budget,
        report.forward_steps,
        report.peak_units,
        plan.alpha().denominator()
    );
    for op in schedule.ops() {
        println!("{op}");
    }
    Ok(())
}
