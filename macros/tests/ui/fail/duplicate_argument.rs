use bptt_macros::bptt;

#[bptt(seq_len = 100, budget = 20, alpha = 3, seq_len = 200)]
pub struct MyCell;

fn main() {}
