bptt_macros::cell! {
    #[sizes(input = 3, key = 4, value = 2)]
    cell Memory {
        size input, key, value;
        input x: [input];
        state h: [value];
        state s: [key, value];
        param w_k: [input, key];
        param w_v: [input, value];

        let k = matmul(x, w_k);
        let v = matmul(x, w_v);
        h = matmul(k, matmul(s, s));
        s = s + outer(k, v);
    }
}

fn main() {}
