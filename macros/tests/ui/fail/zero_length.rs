use bptt_macros::bptt;

#[bptt(seq_len = 0, budget = "5%", alpha = 3)]
pub struct MyCell;

fn main() {}
