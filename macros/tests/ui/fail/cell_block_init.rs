bptt_macros::cell! {
    #[sizes(input = 3, hidden = 4)]
    cell Lstm {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        param w: [input + hidden, 4 * hidden];
        param b: [4 * hidden] = [0, 1, 0];

        let (i, f, g, o) = split(matmul(concat(x, h), w) + b);
        h = sigmoid(o) * tanh(sigmoid(f) * h + sigmoid(i) * tanh(g));
    }
}

fn main() {}
