use bptt_macros::bptt;

pub struct MyCell;

#[bptt(seq_len = 100, budget = "5%", alpha = 3)]
impl MyCell {
    pub fn new() -> Self {
        MyCell
    }
}

fn main() {
    let _ = MyCell::new();
}
