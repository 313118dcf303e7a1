use bptt_macros::bptt;

#[bptt(budget = "5%", alpha = 3)]
pub struct MyCell;

fn main() {}
