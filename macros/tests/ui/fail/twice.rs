use bptt_macros::bptt;

#[bptt(seq_len = 100, budget = "5%", alpha = 3)]
#[bptt(seq_len = 200, budget = "5%", alpha = 3, name = "long_step")]
pub struct MyCell;

fn main() {}
