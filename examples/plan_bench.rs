//! Times the planner's dynamic programs against the targets.
//!
//! Run with `cargo run --release --example plan_bench`.

use std::time::Instant;

use bptt::{Alpha, Budget, Plan, Policy, Table, Ticks};

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn main() {
    let alpha = Alpha::new(4.0).expect("valid alpha");
    println!("| case | policy | median ms | target ms |");
    println!("|---|---|---:|---:|");
    for policy in [Policy::Hsm, Policy::Ism, Policy::Msm] {
        let ms = median_ms(5, || {
            Table::build(policy, alpha, 1000, Ticks(800)).expect("table");
        });
        println!("| whole table T=1000, m<=800, alpha=4 | {policy} | {ms:.1} | 50 |");
    }
    for policy in [Policy::Hsm, Policy::Ism, Policy::Msm] {
        let ms = median_ms(3, || {
            Plan::new(policy, alpha, 10_000, Budget::Percent(5.0)).expect("plan");
        });
        println!("| plan T=10000 at 5% of store-all, alpha=4 | {policy} | {ms:.1} | 2000 |");
    }
}
