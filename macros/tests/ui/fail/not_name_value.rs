use bptt_macros::bptt;

#[bptt(seq_len = 100, budget, alpha = 3)]
pub struct MyCell;

fn main() {}
