//! Cells as equations: derived cells against the runtime's hand-written
//! ones, their own contract, the tapes chosen, and the errors of the
//! language. (Gradients through every schedule and against finite
//! differences: the `gradients` and `jit` modules run the derived cells too.)

use crate::common;

use crate::common::{StepOutputs, step};
use bptt::cell_lang::{CellDef, DerivedCell};
use bptt_runtime::{Cell, Gru, Lstm, Rng, Rnn};
use ndarray::Array2;

fn random(rows: usize, cols: usize, rng: &mut Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform(-1.0, 1.0))
}

/// One step of `cell` on random arrays, scratch starting as NaN (so that
/// reading scratch before writing it shows), gradients from zero.
fn run(cell: &dyn Cell, x: &Array2<f32>, h: &Array2<f32>, dh: &Array2<f32>) -> StepOutputs {
    let scratch = Array2::from_elem((x.nrows(), cell.scratch_size()), f32::NAN);
    step(cell, x, h, dh, scratch, vec![0.0; cell.params().len()])
}

/// The largest `|a - b|` over the largest `|b|`: an error relative to the
/// entries' scale, so that entries near zero do not dominate.
fn scaled_error(a: &[f32], b: &[f32]) -> f64 {
    let scale = b
        .iter()
        .fold(0.0f64, |m, v| m.max(f64::from(v.abs())))
        .max(1e-30);
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()) / scale)
        .fold(0.0, f64::max)
}

/// The derived RNN, LSTM and GRU (cells/*.cell, written with the runtime's
/// parameter layouts) against the hand-written runtime cells with the same
/// parameters.
///
/// They agree to within floating-point rounding, not bitwise: both use the
/// same matrix kernels and activation functions, but the derived backward
/// pass multiplies the chain rule's factors in a different order (for
/// example `(dh·o)·(1 - tanh²)` against `dh·(o·(1 - tanh²))`), and each f32
/// multiplication rounds by at most 2^-24 relative. A handful of such
/// roundings per element, accumulated over sums of at most `input + hidden`
/// products, stays below 1e-5 of the largest entry (measured: the RNN is
/// bitwise equal, the LSTM within 1.3e-7 and the GRU within 7.2e-8); a wrong
/// term would be of the order of the entries themselves.
#[test]
fn derived_cells_match_the_hand_written_ones_to_rounding() {
    const TOLERANCE: f64 = 1e-5;
    let (input, hidden, batch) = (7, 19, 5);
    for (file, name) in [
        ("cells/rnn.cell", "rnn"),
        ("cells/lstm.cell", "lstm"),
        ("cells/gru.cell", "gru"),
    ] {
        let mut rng = Rng::new(3);
        let hand: Box<dyn Cell> = match name {
            "rnn" => Box::new(Rnn::new(input, hidden, &mut rng)),
            "lstm" => Box::new(Lstm::new(input, hidden, &mut rng)),
            _ => Box::new(Gru::new(input, hidden, &mut rng)),
        };
        let program = common::program(file, input, hidden);
        assert_eq!(
            program.param_count,
            hand.params().len(),
            "{name}: parameter layout"
        );
        assert_eq!(program.alpha(), hand.alpha(), "{name}: alpha");
        let derived = DerivedCell::from_params(program, hand.params().to_vec()).unwrap();
        let x = random(batch, input, &mut rng);
        let h = random(batch, hand.state_size(), &mut rng);
        let dh = random(batch, hand.state_size(), &mut rng);
        let (a, b) = (run(&derived, &x, &h, &dh), run(&*hand, &x, &h, &dh));
        for (what, got, want) in [
            (
                "h_next",
                a.next.as_slice().unwrap(),
                b.next.as_slice().unwrap(),
            ),
            (
                "rebuilt",
                a.rebuilt.as_slice().unwrap(),
                b.rebuilt.as_slice().unwrap(),
            ),
            (
                "dh_prev",
                a.dh_prev.as_slice().unwrap(),
                b.dh_prev.as_slice().unwrap(),
            ),
            ("grads", &a.grads[..], &b.grads[..]),
        ] {
            let e = scaled_error(got, want);
            assert!(
                e <= TOLERANCE,
                "{name} {what}: error {e:e} of the largest entry"
            );
        }
    }
}

/// Every example cell keeps the Cell contract (forward, forward_tape and
/// state_from_tape agree bitwise, checked in `step`), and nothing reads
/// scratch before writing it (scratch starts as NaN).
/// The gated cells defer their weight gradients as the hand-written ones
/// do: one product over `[x | h]` for the LSTM, whose weights `w_x`, `w_h`
/// are adjacent; the GRU's products over `x` and over `h` have other
/// gradients, so they stay apart.
#[test]
fn gated_cells_defer_their_weight_gradients() {
    let (input, hidden) = (3, 5);
    let lstm = common::program("cells/lstm.cell", input, hidden);
    let rows: Vec<(usize, usize)> = lstm.deferred.iter().map(|d| (d.w.rows, d.w.cols)).collect();
    assert_eq!(rows, vec![(input + hidden, 4 * hidden)]);
    assert_eq!(lstm.deferred[0].a.len(), 2);
    let gru = common::program("cells/gru.cell", input, hidden);
    assert!(!gru.deferred.is_empty(), "the GRU defers nothing");
    for cell in [lstm, gru] {
        let deferred = cell.backward_deferred.instrs.len();
        assert!(deferred < cell.backward.instrs.len(), "{}", cell.name);
    }
}

#[test]
fn derived_cells_keep_the_cell_contract() {
    for file in common::DERIVED {
        for (input, hidden, batch) in [(3, 5, 4), (16, 37, 7)] {
            let mut rng = Rng::new(9);
            let cell = DerivedCell::new(common::program(file, input, hidden), &mut rng);
            let x = random(batch, input, &mut rng);
            let h = random(batch, cell.state_size(), &mut rng);
            let dh = random(batch, cell.state_size(), &mut rng);
            let out = run(&cell, &x, &h, &dh);
            assert!(
                out.next
                    .iter()
                    .zip(&out.rebuilt)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{file}: the tape rebuilds the state"
            );
            assert!(
                out.dh_prev.iter().chain(&out.grads).all(|v| v.is_finite()),
                "{file}"
            );
        }
    }
}

/// The tapes chosen are the smallest that avoid recomputing products, and
/// hold activations rather than their arguments.
#[test]
fn the_tapes_are_the_hand_written_cells_tapes() {
    let cases = [
        ("cells/rnn.cell", 2.0, vec!["h_prev", "tanh"]),
        (
            "cells/lstm.cell",
            3.0,
            vec![
                "h_prev",
                "sigmoid(o)",
                "sigmoid(f)",
                "c_prev",
                "sigmoid(i)",
                "tanh(g)",
            ],
        ),
        (
            "cells/gru.cell",
            5.0,
            vec!["h_prev", "z", "r", "product", "n"],
        ),
        ("cells/mgu.cell", 3.0, vec!["h_prev", "f", "candidate"]),
        (
            "cells/peephole_lstm.cell",
            3.0,
            vec!["h_prev", "c_prev", "f", "i", "tanh(pg)", "o"],
        ),
        // The GRU's tape and one float per row: the sum of h² (a sum over
        // the features is, like a product, stored rather than recomputed).
        (
            "cells/rmsnorm_gru.cell",
            5.0 + 1.0 / 8.0,
            vec!["h_prev", "sum(mul(h_prev, h_prev))", "z", "r", "hn_c", "n"],
        ),
        // Both products (the backward step needs their deviations from the
        // mean), the states, and the two sums of each normalisation.
        (
            "cells/layernorm_lstm.cell",
            5.0 + 3.0 / 8.0,
            vec![
                "px", "sum(px)", "sum(", "h_prev", "ph", "sum(ph)", "sum(", "c_prev", "sum(",
                "sum(",
            ],
        ),
        // A `[key, value]` state counts key·value floats (here 7 · 8). The
        // backward step reads the old memory (the decay's gradient) and the
        // new one (the query's); the new memory and the read-out are per-row
        // products, which cost what an elementwise pass over the matrix
        // does, so they are recomputed from the old memory and the step's
        // vectors. So alpha is 1 plus the vectors over the state.
        (
            "cells/linear_attention.cell",
            79.0 / 64.0,
            vec!["q", "product", "s_prev", "k", "v"],
        ),
        // The mLSTM keeps the old memory (the new one and its read-out are
        // recomputed from it and `k`, `v`, `q`), the gates' inputs, the old
        // normaliser, the normaliser's dot product and the stabiliser.
        (
            "cells/mlstm.cell",
            97.0 / 72.0,
            vec![
                "o",
                "q",
                "product",
                "m_prev",
                "product",
                "c_prev",
                "k",
                "v",
                "n_prev",
                "sum(mul(n_next, q))",
            ],
        ),
    ];
    for (file, alpha, names) in cases {
        let p = common::program(file, 3, 8);
        assert_eq!(p.alpha(), alpha, "{file}");
        let got: Vec<&str> = p.tape.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(got.len(), names.len(), "{file}: {got:?}");
        for (g, want) in got.iter().zip(&names) {
            assert!(
                g.starts_with(want),
                "{file}: tape {got:?}, expected {names:?}"
            );
        }
    }
}

/// A decay per key (`scale_rows(g, s)`, gated linear attention) spreads `g`
/// over the memory by a per-row product; it is recomputed, not stored, so
/// the tape keeps one matrix, the old memory, as with a scalar decay (it
/// kept three: the old memory, the spread decay and the new memory).
#[test]
fn a_decay_per_key_keeps_only_the_old_memory() {
    let src = std::fs::read_to_string("cells/linear_attention.cell").unwrap();
    let per_key = src
        .replace("param w_g: [input, 1];", "param w_g: [input, key];")
        .replace("param b_g: [1] = 3.0;", "param b_g: [key] = 3.0;")
        .replace("g * s + outer(k, v)", "scale_rows(g, s) + outer(k, v)");
    assert_ne!(per_key, src);
    let def = CellDef::parse_str(&per_key).unwrap();
    let p = def
        .compile(&[("input", 3), ("key", 7), ("value", 8)])
        .unwrap();
    let got: Vec<(&str, usize)> = p.tape.iter().map(|s| (s.name.as_str(), s.width)).collect();
    assert_eq!(
        got,
        [("q", 7), ("g", 7), ("s_prev", 56), ("k", 7), ("v", 8)],
        "{got:?}"
    );
    assert_eq!(p.alpha(), 85.0 / 64.0);
}

/// Mistakes in a cell are errors at the offending token, with messages that
/// name what is wrong (and both shapes of a mismatch).
#[test]
fn mistakes_are_errors_at_the_offending_token() {
    let header = "cell bad {\n    size input, hidden;\n    input x: [input];\n    state h: [hidden];\n    param w: [input, hidden];\n    param u: [hidden, hidden];\n";
    let cases: [(&str, &str, (usize, usize)); 13] = [
        (
            "    h = tanh(matmul(x, w) + hh);\n",
            "unknown name `hh`",
            (7, 29),
        ),
        (
            "    h = tanh(matmul(x, w) + x);\n",
            "the left operand is [hidden] but the right is [input]",
            (7, 27),
        ),
        (
            "    h = tanh(matmul(h, w));\n",
            "the rows have [hidden] features but the matrix is [input, hidden]",
            (7, 14),
        ),
        ("    h = h % 2.0;\n", "unsupported operator", (7, 11)),
        (
            "    h = max(h, x);\n",
            "shape mismatch: the left operand is [hidden] but the right is [input] (only `[1]` broadcasts)",
            (7, 9),
        ),
        (
            "    h = h * sum(h, h);\n",
            "`sum` takes 1 argument, got 2",
            (7, 13),
        ),
        (
            "    let (a, b) = split(concat(x, h));\n    h = a;\n",
            "cannot split [hidden + input] into 2 equal parts: with these sizes its parts are 3, 4 wide",
            (7, 18),
        ),
        (
            "    param b: [hidden] = [0, 1, 0];\n    h = h * b;\n",
            "parameter `b` is [hidden]: its last dimension (4) does not split into 3 equal blocks",
            (7, 25),
        ),
        (
            "    h = logsumexp(h);\n",
            "unsupported function `logsumexp`",
            (7, 9),
        ),
        (
            "    let a = tanh(h);\n",
            "state `h` is never produced",
            (4, 11),
        ),
        (
            "    h = tanh(h);\n    h = h;\n",
            "state `h` is assigned twice",
            (8, 5),
        ),
        (
            "    h = tanh(matmul(h, u));\n    let z = h;\n",
            "state `h` is read after its new value is assigned",
            (8, 13),
        ),
        (
            "    let (a, b) = split(x);\n    h = a;\n",
            "cannot split [input] into 2 equal parts",
            (7, 18),
        ),
    ];
    for (body, message, (line, column)) in cases {
        let src = format!("{header}{body}}}\n");
        let err = CellDef::parse_str(&src)
            .and_then(|def| def.compile(&[("input", 3), ("hidden", 4)]))
            .expect_err(body);
        assert!(err.message().contains(message), "{body}: got {err}");
        let at = err.span().start();
        assert_eq!(
            (at.line, at.column + 1),
            (line, column),
            "{body}: got {err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("line {line}, column {column}: "))
        );
    }
}

/// Sizes are checked when a cell is compiled: all given, known, at least
/// 1, and not so large that the arrays could not be allocated.
#[test]
fn sizes_must_all_be_given_and_known() {
    let def = CellDef::parse_str(include_str!("../../cells/mgu.cell")).unwrap();
    let missing = def.compile(&[("input", 3)]).unwrap_err();
    assert!(
        missing.message().contains("size `hidden` needs a value"),
        "{missing}"
    );
    let unknown = def
        .compile(&[("input", 3), ("hidden", 4), ("depth", 2)])
        .unwrap_err();
    assert!(
        unknown.message().contains("has no size `depth`"),
        "{unknown}"
    );
    let zero = def.compile(&[("input", 3), ("hidden", 0)]).unwrap_err();
    assert!(zero.message().contains("at least 1"), "{zero}");
    let huge = def
        .compile(&[("input", 3), ("hidden", 1 << 40)])
        .unwrap_err();
    assert!(huge.message().contains("at most 16777216"), "{huge}");
    let many = def
        .compile(&[("input", 3), ("hidden", 1 << 20)])
        .unwrap_err();
    assert!(
        many.message()
            .contains("the parameters pass 1073741824 floats"),
        "{many}"
    );
    // Absurd coefficients saturate and are refused, without overflowing.
    let src = "cell big {\n size n;\n input x: [n];\n state h: [9223372036854775807 * 9223372036854775807 * n];\n h = h;\n}\n";
    let err = CellDef::parse_str(src)
        .unwrap()
        .compile(&[("n", 2)])
        .unwrap_err();
    assert!(err.message().contains("at most"), "{err}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Any edit of a cell (a span of it deleted, or repeated elsewhere) is
    /// compiled or refused with an error: never a panic.
    #[test]
    fn edited_cells_are_compiled_or_refused_never_a_panic(
        which in 0..common::DERIVED.len(),
        start in 0.0f64..1.0,
        len in 0usize..40,
        at in 0.0f64..1.0,
        repeat in proptest::bool::ANY,
    ) {
        let src = std::fs::read_to_string(common::DERIVED[which]).unwrap();
        let cut = |f: f64| {
            let mut i = (f * src.len() as f64) as usize;
            while !src.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let (a, mut b) = (cut(start), cut(start) + len);
        while b > src.len() || !src.is_char_boundary(b) {
            b -= 1;
        }
        let edited = if repeat {
            let at = cut(at);
            format!("{}{}{}", &src[..at], &src[a..b], &src[at..])
        } else {
            format!("{}{}", &src[..a], &src[b..])
        };
        if let Ok(def) = CellDef::parse_str(&edited) {
            let sizes: Vec<(String, usize)> = def
                .size_names()
                .into_iter()
                .map(|n| {
                    let v = if n == "key" { 3 } else { 4 };
                    (n, v)
                })
                .collect();
            let sizes: Vec<(&str, usize)> = sizes.iter().map(|(n, v)| (n.as_str(), *v)).collect();
            let _ = def.compile(&sizes);
        }
    }
}

/// Compiles a cell written in a test for these sizes.
fn compiled(src: &str, sizes: &[(&str, usize)]) -> bptt::cell_lang::CellProgram {
    CellDef::parse_str(src)
        .and_then(|def| def.compile(sizes))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Several inputs are consecutive column blocks of `x`: a cell with inputs
/// `a: [input]` and `b: [hidden]` computes bitwise what the same cell with
/// one input `x: [input + hidden]` split into `a` and `b` computes, in all
/// four methods.
#[test]
fn several_inputs_are_column_blocks_of_x() {
    let body = "state h: [hidden];\n param w: [input, hidden];\n param u: [hidden, hidden];\n \
                h = tanh(matmul(a, w) + b * h + matmul(h, u)) + sigmoid(b);\n}";
    let two =
        format!("cell two {{ size input, hidden; input a: [input]; input b: [hidden];\n{body}");
    let one = format!(
        "cell one {{ size input, hidden; input x: [input + hidden];\n \
         let (a, b) = split(x, [input, hidden]);\n{body}"
    );
    let sizes = [("input", 3), ("hidden", 5)];
    let (two, one) = (compiled(&two, &sizes), compiled(&one, &sizes));
    assert_eq!((two.input_size, one.input_size), (8, 8));
    assert_eq!(two.tape_size, one.tape_size);
    let mut rng = Rng::new(4);
    let a = DerivedCell::new(two, &mut rng);
    let b = DerivedCell::from_params(one, a.params().to_vec()).unwrap();
    let x = random(4, 8, &mut rng);
    let h = random(4, 5, &mut rng);
    let dh = random(4, 5, &mut rng);
    let (ra, rb) = (run(&a, &x, &h, &dh), run(&b, &x, &h, &dh));
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    for (what, p, q) in [
        ("h_next", &ra.next, &rb.next),
        ("tape", &ra.tape, &rb.tape),
        ("dh_prev", &ra.dh_prev, &rb.dh_prev),
    ] {
        assert_eq!(
            bits(p.as_slice().unwrap()),
            bits(q.as_slice().unwrap()),
            "{what}"
        );
    }
    assert_eq!(bits(&ra.grads), bits(&rb.grads), "gradients");

    // A task gives one input, so a file cell with two cannot be bound to it.
    let def = CellDef::parse_str(&format!(
        "cell two {{ size input, hidden; input a: [input]; input b: [hidden];\n{body}"
    ))
    .unwrap();
    let err = def.compile_for(3, 5, &[]).unwrap_err().to_string();
    assert!(err.contains("it has 2 inputs"), "{err}");
}

/// `= [c0, c1, ..]` fills equal blocks of a parameter's last dimension: a
/// fused LSTM bias with its forget gate at 1, and the column blocks of a
/// matrix.
#[test]
fn per_block_initial_values_fill_equal_blocks() {
    let program = compiled(
        "cell init { size input, hidden; input x: [input]; state h: [hidden];\n \
         param b: [4 * hidden] = [0, 1, 0, 0];\n param m: [hidden, 2 * hidden] = [0.5, -2];\n \
         param c: [hidden] = 3;\n param r: [hidden];\n \
         let (i, f, g, o) = split(b);\n \
         let (p, q) = split(matmul(h, m));\n \
         h = h * sigmoid(f) + i + g + o + p * q + c + r; }",
        &[("input", 1), ("hidden", 3)],
    );
    let params = program.init_params(&mut Rng::new(1));
    let (b, m, c) = (&params[..12], &params[12..30], &params[30..33]);
    assert_eq!(b, [0., 0., 0., 1., 1., 1., 0., 0., 0., 0., 0., 0.]);
    let row = [0.5, 0.5, 0.5, -2., -2., -2.];
    assert_eq!(m, [row, row, row].concat());
    assert_eq!(c, [3.0; 3]);
    // The random parameter is drawn as before, after the constants.
    let k = 1.0 / 3f32.sqrt();
    assert!(params[33..].iter().all(|v| v.abs() <= k && *v != 0.0));
}

/// `split(concat(x, h))` into two is proved equal by the bound sizes when
/// `input = hidden`, and each part keeps its own shape.
#[test]
fn equal_splits_are_proved_by_the_sizes() {
    let cell = |use_a_as: &str| {
        format!(
            "cell sq {{ size input, hidden; input x: [input]; state h: [hidden];\n \
             param w: [input, hidden];\n let (a, b) = split(concat(x, h));\n h = {use_a_as}; }}"
        )
    };
    let program = compiled(
        &cell("tanh(b) * sigmoid(matmul(a, w))"),
        &[("input", 4), ("hidden", 4)],
    );
    assert_eq!((program.input_size, program.state_size), (4, 4));
    // `a` is the input's part, so it is `[input]`, not `[hidden]`.
    let err = CellDef::parse_str(&cell("tanh(b) + a"))
        .and_then(|def| def.compile(&[("input", 4), ("hidden", 4)]))
        .unwrap_err();
    assert!(
        err.message()
            .contains("the left operand is [hidden] but the right is [input]"),
        "{err}"
    );
}

/// Every misuse of a matrix-valued value is an error at the offending
/// token naming both shapes: elementwise operations on different shapes
/// (a `[key]` vector does not broadcast over a `[key, value]` matrix's
/// rows: `scale_rows` does that), products whose shapes do not fit or that
/// multiply two matrices, matrices where vectors are expected, and ranks
/// other than 1 and 2. Each case's expected position is the first
/// character of `at` in its line.
#[test]
fn matrix_mistakes_are_errors_at_the_offending_token() {
    let header = "cell bad {\n    size input, key, value;\n    input x: [input];\n    state h: [value];\n    state s: [key, value];\n    param w_k: [input, key];\n    param w_v: [input, value];\n    let k = matmul(x, w_k);\n    let v = matmul(x, w_v);\n";
    let cases: [(&str, &str, &str); 14] = [
        (
            "    s = s * k;\n",
            "shape mismatch: the left operand is [key, value] but the right is [key] (only `[1]` broadcasts; `scale_rows(g, S)` scales the rows of a matrix)",
            "*",
        ),
        (
            "    h = matmul(k, matmul(s, s));\n",
            "shape mismatch in `matmul`: the left operand is [key, value] but the right is [key, value] (a matrix `[a, b]` times a matrix `[b, c]`)",
            "matmul(s",
        ),
        (
            "    h = matmul(v, s);\n",
            "shape mismatch in `matmul`: the left operand is [value] but the right is [key, value] (a vector `[a]` times a matrix `[a, b]`)",
            "matmul",
        ),
        (
            "    h = matmul(s, k);\n",
            "the left operand is [key, value] but the right is [key] (a matrix `[a, b]` times a vector `[b]`)",
            "matmul",
        ),
        (
            "    h = matmul(k, v);\n",
            "`matmul` of two vectors takes a parameter matrix as the second",
            "matmul",
        ),
        (
            "    s = scale_rows(v, s);\n",
            "shape mismatch in `scale_rows`: it scales the rows of a matrix `[a, b]` by a vector `[a]`, got [value] and [key, value]",
            "scale_rows",
        ),
        (
            "    s = scale_rows(k, k);\n",
            "got [key] and [key]",
            "scale_rows",
        ),
        (
            "    h = v * sum(s);\n",
            "the argument of `sum` is a matrix [key, value] per row, expected a vector",
            "s)",
        ),
        (
            "    h = s;\n",
            "state `h` is [value] but its new value is [key, value]",
            "s;",
        ),
        (
            "    s = outer(v, k);\n",
            "state `s` is [key, value] but its new value is [value, key]",
            "outer",
        ),
        (
            "    s = outer(s, v);\n",
            "the first argument of `outer` is a matrix [key, value] per row",
            "s, v",
        ),
        (
            "    h = concat(s, h);\n",
            "a part of `concat` is a matrix [key, value] per row",
            "s, h",
        ),
        (
            "    h = matmul(s, w_v);\n",
            "the first argument of `matmul` is a matrix [key, value] per row",
            "s, w_v",
        ),
        (
            "    state t: [key, key, value];\n    h = v;\n",
            "state `t` has shape [key, key, value]: expected `[n]` or `[rows, cols]`",
            "[key, key",
        ),
    ];
    let line = header.lines().count() + 1;
    for (body, message, at) in cases {
        let src = format!("{header}{body}}}\n");
        let err = CellDef::parse_str(&src)
            .and_then(|def| def.compile(&[("input", 3), ("key", 4), ("value", 2)]))
            .expect_err(body);
        assert!(err.message().contains(message), "{body}: got {err}");
        let column = body.find(at).unwrap() + 1;
        let start = err.span().start();
        assert_eq!(
            (start.line, start.column + 1),
            (line, column),
            "{body}: got {err}"
        );
    }
}
