//! Prints the code `#[bptt(seq_len = T, budget = "5%", alpha = 3)]` emits on
//! `pub struct MyCell;`, with the schedule split into segment functions of
//! `CALLS` calls (0: one function, never split): for measuring rustc's time
//! against the segment length (`macros/bench/build_time.sh segments`).
//!
//! ```sh
//! cargo run --release -p bptt-macros --example emit_segmented -- T CALLS > lib.rs
//! ```

use bptt::emit::{Spec, emit_rust_segmented};
use bptt::{Budget, Policy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (len, calls): (u32, usize) = match &args[..] {
        [len, calls] => (len.parse()?, calls.parse()?),
        _ => return Err("usage: emit_segmented T CALLS".into()),
    };
    let spec = Spec {
        len,
        budget: Budget::Percent(5.0),
        alpha: 3.0,
        policy: Policy::Msm,
        name: None,
    };
    let calls = if calls == 0 { usize::MAX } else { calls };
    print!("{}", emit_rust_segmented(&spec, calls)?);
    Ok(())
}
