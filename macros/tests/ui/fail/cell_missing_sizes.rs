bptt_macros::cell! {
    /// Sizes are bound at compile time: `#[sizes(..)]` is required.
    cell Rnn {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        param w_x: [input, hidden];

        h = tanh(matmul(x, w_x));
    }
}

fn main() {}
