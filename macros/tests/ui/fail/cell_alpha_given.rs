bptt_macros::cell! {
    #[sizes(input = 3, hidden = 4)]
    #[bptt(seq_len = 10, budget = "50%", alpha = 2)]
    cell Rnn {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        param w_x: [input, hidden];

        h = tanh(matmul(x, w_x));
    }
}

fn main() {}
