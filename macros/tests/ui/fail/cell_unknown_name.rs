bptt_macros::cell! {
    #[sizes(input = 3, hidden = 4)]
    cell Rnn {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        param w_x: [input, hidden];
        param w_h: [hidden, hidden];

        h = tanh(matmul(x, w_x) + matmul(hh, w_h));
    }
}

// The placeholder struct keeps uses of the type free of follow-on errors.
fn main() {
    let _: Option<Rnn> = None;
}
