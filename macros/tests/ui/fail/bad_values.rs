use bptt_macros::bptt;

#[bptt(seq_len = "long", budget = "lots", alpha = three, name = "train step")]
pub struct MyCell;

fn main() {}
