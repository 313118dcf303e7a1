use bptt_macros::bptt;

/// A type that does not implement `bptt_runtime::Cell`.
#[bptt(seq_len = 10, budget = "50%", alpha = 3)]
pub struct NotACell;

fn main() {}
