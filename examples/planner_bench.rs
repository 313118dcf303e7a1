//! Times the table-free planner against the long-sequence targets:
//! `Plan::new` (the first move of every segment, the cost and the peak, by
//! one walk of the plan) and the one-pass verification of its streamed
//! schedule, with the most heap held during each.
//!
//! Run with `cargo run --release --example planner_bench`.

use std::time::Instant;

use bptt::schedule::verify_plan;
use bptt::{Alpha, Budget, Plan, Policy};
use bptt_runtime::CountingAllocator;

#[global_allocator]
static HEAP: CountingAllocator = CountingAllocator::new();

/// Seconds and peak heap bytes (beyond what was live before) of `f`.
fn measure<T>(f: impl FnOnce() -> T) -> (T, f64, usize) {
    HEAP.reset_peak();
    let before = HEAP.live_bytes();
    let start = Instant::now();
    let value = f();
    let seconds = start.elapsed().as_secs_f64();
    (value, seconds, HEAP.peak_bytes() - before)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let mut cases: Vec<(u32, f64, f64, Policy, f64)> = Vec::new();
    for a in [1.0, 3.0, 3.5, 4.0] {
        for (len, percent) in [
            (100_000, 1.0),
            (100_000, 5.0),
            (100_000, 20.0),
            (1_000_000, 1.0),
            (1_000_000, 5.0),
        ] {
            for policy in [Policy::Hsm, Policy::Ism, Policy::Msm] {
                cases.push((len, percent, a, policy, 1.0));
            }
        }
    }
    cases.push((10_000, 5.0, 4.0, Policy::Msm, 0.1));
    println!(
        "| T | budget | alpha | policy | method | gap | Q/T | plan s | plan MiB | verify s | verify MiB | target s |"
    );
    println!("|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut misses = 0;
    for (len, percent, a, policy, target) in cases {
        let alpha = Alpha::new(a).expect("valid alpha");
        let (plan, plan_s, plan_bytes) =
            measure(|| Plan::new(policy, alpha, len, Budget::Percent(percent)));
        let plan = match plan {
            Ok(plan) => plan,
            Err(err) => {
                println!("| {len} | {percent}% | {a} | {policy} | error: {err} |");
                misses += 1;
                continue;
            }
        };
        let (report, verify_s, verify_bytes) = measure(|| verify_plan(&plan));
        let report = report.expect("the schedule verifies");
        assert_eq!(report.forward_steps, plan.forward_steps());
        let s = plan.summary();
        if plan_s > target || mib(plan_bytes) > 100.0 {
            misses += 1;
        }
        println!(
            "| {len} | {percent}% | {a} | {policy} | {:?} | {} | {:.3} | {plan_s:.3} | {:.2} | {verify_s:.3} | {:.2} | {target} |",
            s.method,
            s.gap,
            s.cost_per_step,
            mib(plan_bytes),
            mib(verify_bytes)
        );
    }
    println!("{misses} case(s) over their target (plan time, or 100 MiB)");
}
