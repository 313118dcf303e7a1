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
    hidden_slots: u32,
    tape_slots: u32,
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
        hidden_slots: schedule.hidden_slots(),
        tape_slots: schedule.tape_slots(),
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
        "slots           {} hidden, {} tape; {} operations, verified",
        planned.hidden_slots, planned.tape_slots, planned.operations
    );
    Ok(())
}

pub fn schedule(spec: &PlanSpec) -> Result<(), Error> {
    let plan = spec.plan()?;
    let schedule = Schedule::from_plan(&plan);
    let report = verify(&schedule)?;
    let s = plan.summary();
    println!(
        "# {} T={} alpha={} budget={} units: {} forward steps, peak {} units, slots {} hidden + {} tape",
        s.policy,
        s.len,
        s.alpha,
        s.budget,
        report.forward_steps,
        report.peak_units,
        schedule.hidden_slots(),
        schedule.tape_slots()
    );
    for op in schedule.ops() {
        println!("{op}");
    }
    Ok(())
}
