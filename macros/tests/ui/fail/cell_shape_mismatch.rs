bptt_macros::cell! {
    #[sizes(input = 3, hidden = 4)]
    cell Rnn {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        param w_h: [hidden, hidden];

        h = tanh(matmul(h, w_h) + x);
    }
}

fn main() {}
