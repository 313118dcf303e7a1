//! How long `#[bptt]` takes to expand, phase by phase: the work the compiler
//! waits for before it sees the generated code.
//!
//! ```sh
//! cargo run --release -p bptt-macros --example expand_time             # T = 1000 and 10000
//! cargo run -p bptt-macros --example expand_time -- 1000                # as a dev-profile proc macro runs
//! ```
//!
//! A proc macro runs in the profile its crate is built with: the dev profile
//! unless the user crate sets `[profile.dev.build-override] opt-level = 3`
//! (or `[profile.dev.package.bptt] opt-level = 3`). Both builds of this
//! example are therefore worth reading. The case is an LSTM (`alpha = 3`)
//! under MSM at 5% of store-all's memory.

use std::str::FromStr;
use std::time::{Duration, Instant};

use bptt::{Alpha, Budget, Lowered, Plan, Policy, Schedule, Verified};
use proc_macro2::TokenStream;

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn main() {
    let lens: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a sequence length"))
        .collect();
    let lens = if lens.is_empty() {
        vec![1000, 10_000]
    } else {
        lens
    };
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    println!("#[bptt] expansion, {profile} build: LSTM (alpha 3), msm, budget 5% of store-all");
    println!(
        "{:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}",
        "T", "plan", "expand", "verify", "lower", "total", "calls", "tokens"
    );
    for len in lens {
        let alpha = Alpha::new(3.0).expect("alpha 3");
        let budget = Budget::Percent(5.0);
        let (plan, t_plan) = time(|| Plan::new(Policy::Msm, alpha, len, budget).expect("plan"));
        let (schedule, t_expand) = time(|| Schedule::from_plan(&plan));
        let (verified, t_verify) = time(|| Verified::new(schedule).expect("verified"));
        let (lowered, t_lower) = time(|| Lowered::new(&verified));
        assert_eq!(verified.report().forward_steps, plan.forward_steps());
        let args = TokenStream::from_str(&format!("seq_len = {len}, budget = \"5%\", alpha = 3"))
            .expect("arguments");
        let item = TokenStream::from_str("pub struct MyLstm(bptt_runtime::Lstm);").expect("item");
        let (tokens, t_total) = time(|| bptt::emit::expand(args, item));
        let text = tokens.to_string();
        assert!(
            !text.contains("compile_error"),
            "the expansion failed: {text}"
        );
        println!(
            "{:>7} {:>8.3}s {:>8.3}s {:>8.3}s {:>8.3}s {:>8.3}s {:>10} {:>7}k",
            len,
            t_plan.as_secs_f64(),
            t_expand.as_secs_f64(),
            t_verify.as_secs_f64(),
            t_lower.as_secs_f64(),
            t_total.as_secs_f64(),
            lowered.count(),
            text.len() / 1000,
        );
    }
}
