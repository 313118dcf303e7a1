use bptt_macros::bptt;

#[bptt(seq_len = 100, budget = "5%", alpha = 3, policy = "revolve")]
pub struct MyCell;

fn main() {}
