//! `bptt curve`: cost per step against budget for every policy.

use std::path::PathBuf;

use clap::Args;

use bptt::planner::{MAX_CELLS, memory};
use bptt::{Alpha, Budget, Error, Plan, Policy, Table};

/// Arguments of `bptt curve`.
#[derive(Debug, Args)]
pub struct CurveArgs {
    /// Sequence length T.
    #[arg(long)]
    len: u32,
    /// Tape size over hidden-state size (>= 1).
    #[arg(long, default_value_t = 4.0, allow_hyphen_values = true)]
    alpha: f64,
    /// Print CSV with every whole-unit budget instead of a table.
    #[arg(long)]
    csv: bool,
    /// Also draw the curve (the paper's figure) into this SVG file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// Budgets of the table, in percent of store-all.
const PERCENTS: [f64; 13] = [
    0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0,
];

/// Runs `bptt curve`: the table or CSV of cost per step against budget, and
/// the figure with `--plot`.
pub fn curve(args: &CurveArgs) -> Result<(), Error> {
    let alpha = Alpha::new(args.alpha)?;
    if args.len == 0 {
        return Err(Error::ZeroLength);
    }
    if let Some(path) = &args.plot {
        crate::app::bench::plot::cost_curve(path, args.len, alpha)?;
        eprintln!("wrote {}", path.display());
    }
    let store_all = alpha.store_all_units(args.len);
    let full = alpha.to_ticks(store_all)?;
    let dynamic = [Policy::Hsm, Policy::Ism, Policy::Msm];
    // Three whole tables at once: refuse up front what they would not fit in.
    let cells = (u64::from(args.len) + 1) * (u64::from(full.0) + 1);
    if cells > MAX_CELLS {
        return Err(Error::TableTooLarge {
            cells,
            max: MAX_CELLS,
        });
    }
    let what = || format!("the three tables of {cells} cells each");
    memory::ensure_fits(what, 3 * memory::table_bytes(cells))?;
    let tables = dynamic
        .iter()
        .map(|&p| Table::build(p, alpha, args.len, full))
        .collect::<Result<Vec<_>, _>>()?;
    let per_step = |q: Option<u64>| q.map_or(f64::INFINITY, |q| q as f64 / f64::from(args.len));
    let baselines = [Policy::StoreAll, Policy::Sqrt]
        .iter()
        .map(|&p| Plan::new(p, alpha, args.len, Budget::Percent(100.0)).map(|plan| plan.summary()))
        .collect::<Result<Vec<_>, _>>()?;
    if args.csv {
        println!("policy,budget_units,budget_percent,cost_per_step");
        for (policy, table) in dynamic.iter().zip(&tables) {
            for units in 0..=store_all.floor() as u32 {
                let m = alpha.to_ticks(f64::from(units))?;
                let pct = 100.0 * f64::from(units) / store_all.max(f64::MIN_POSITIVE);
                println!(
                    "{policy},{units},{pct:.4},{:.6}",
                    per_step(table.cost(args.len, m))
                );
            }
        }
        for s in &baselines {
            let pct = 100.0 * s.peak_units / store_all.max(f64::MIN_POSITIVE);
            println!(
                "{},{},{pct:.4},{:.6}",
                s.policy, s.peak_units, s.cost_per_step
            );
        }
        return Ok(());
    }
    println!(
        "forward steps per time step, T = {}, alpha = {alpha}",
        args.len
    );
    println!(
        "{:>9} {:>9} {:>9} {:>9} {:>9}",
        "budget%", "units", "hsm", "ism", "msm"
    );
    for pct in PERCENTS {
        let units = store_all * pct / 100.0;
        let m = alpha.to_ticks(units)?;
        let costs: Vec<String> = tables
            .iter()
            .map(|t| format!("{:>9.3}", per_step(t.cost(args.len, m.min(full)))))
            .collect();
        println!("{pct:>9} {:>9.1} {}", alpha.to_units(m), costs.join(" "));
    }
    for s in &baselines {
        let pct = 100.0 * s.peak_units / store_all.max(f64::MIN_POSITIVE);
        println!(
            "{}: {:.3} per step at {} units ({pct:.2}%)",
            s.policy, s.cost_per_step, s.peak_units
        );
    }
    Ok(())
}
