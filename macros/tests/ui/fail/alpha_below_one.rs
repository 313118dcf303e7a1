use bptt_macros::bptt;

#[bptt(seq_len = 100, budget = "5%", alpha = 0.5)]
pub struct MyCell;

fn main() {}
