use bptt_macros::bptt;

#[bptt(seq_len = 100, budget = 10, alpha = 4, policy = "store-all")]
pub struct MyCell;

fn main() {}
