//! `cell!` against the interpreter of the same program: the emitted MGU,
//! LSTM, GRU, peephole LSTM, normalised and matrix-memory cells initialise,
//! step, rebuild and backpropagate bitwise as
//! `bptt::cell_lang::DerivedCell` does, and the `#[bptt]` training steps of
//! the LSTM, the GRU (planned within a memory in bytes), the
//! layer-normalised LSTM, the RMS-normalised GRU, the linear-attention cell
//! and the mLSTM give bitwise the losses and
//! gradients of `bptt::Interpreter` running MSM on the derived cell.

use bptt::cell_lang::{CellDef, CellProgram, DerivedCell};
use bptt::{Alpha, Budget, Interpreter, Plan, Policy, Schedule};
use bptt_runtime::{Cell, Gradients, LossKind, Operands, Readout, Rng, Targets};
use ndarray::{Array2, Array3};

/// Defines a cell with `cell!` and keeps its text in `$text`, so that the
/// tests compile the very same definition for `DerivedCell`.
macro_rules! cell_and_text {
    ($text:ident, $(#[$($attr:tt)*])* cell $name:ident $body:tt) => {
        bptt_macros::cell! { $(#[$($attr)*])* pub cell $name $body }
        const $text: &str = stringify!(cell $name $body);
    };
}

cell_and_text! {
    MGU,
    /// The minimal gated unit of `cells/mgu.cell`.
    #[sizes(input = 3, hidden = 5)]
    cell Mgu {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        param w_f: [input + hidden, hidden];
        param b_f: [hidden] = 1.0;
        param w_h: [input + hidden, hidden];
        param b_h: [hidden];

        let f = sigmoid(matmul(concat(x, h), w_f) + b_f);
        let candidate = tanh(matmul(concat(x, f * h), w_h) + b_h);
        h = (1.0 - f) * h + f * candidate;
    }
}

cell_and_text! {
    LSTM,
    /// The LSTM of `cells/lstm.cell`, with a schedule.
    #[sizes(input = 3, hidden = 5)]
    #[bptt(seq_len = 20, budget = "30%")]
    cell Lstm {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        state c: [hidden];
        param w_x: [input, 4 * hidden];
        param w_h: [hidden, 4 * hidden];
        param b: [4 * hidden];

        let (i, f, g, o) = split(matmul(x, w_x) + matmul(h, w_h) + b);
        let c_next = sigmoid(f) * c + sigmoid(i) * tanh(g);
        h = sigmoid(o) * tanh(c_next);
        c = c_next;
    }
}

cell_and_text! {
    GRU,
    /// The GRU of `cells/gru.cell`, planned within 24 KiB for 4 rows and 3
    /// classes: arena and gradients.
    #[sizes(input = 3, hidden = 5)]
    #[bptt(seq_len = 30, memory = "24KiB", batch = 4, classes = 3)]
    cell Gru {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        param w_x_rz: [input, 2 * hidden];
        param w_h_rz: [hidden, 2 * hidden];
        param b_rz: [2 * hidden];
        param w_xn: [input, hidden];
        param b_xn: [hidden];
        param w_hn: [hidden, hidden];
        param b_hn: [hidden];

        let (r, z) = split(sigmoid(matmul(x, w_x_rz) + matmul(h, w_h_rz) + b_rz));
        let n = tanh(matmul(x, w_xn) + b_xn + r * (matmul(h, w_hn) + b_hn));
        h = (1.0 - z) * n + z * h;
    }
}

cell_and_text! {
    PEEPHOLE,
    /// The peephole LSTM of `cells/peephole_lstm.cell`.
    #[sizes(input = 3, hidden = 5)]
    cell PeepholeLstm {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        state c: [hidden];
        param w: [input + hidden, 4 * hidden];
        param b: [4 * hidden];
        param p_i: [hidden];
        param p_f: [hidden];
        param p_o: [hidden];

        let (pi, pf, pg, po) = split(matmul(concat(x, h), w) + b);
        let i = sigmoid(pi + p_i * c);
        let f = sigmoid(pf + p_f * c);
        let c_next = f * c + i * tanh(pg);
        let o = sigmoid(po + p_o * c_next);
        h = o * tanh(c_next);
        c = c_next;
    }
}

/// The program of `text` at input 3, hidden 5.
fn program(text: &str) -> CellProgram {
    let def = CellDef::parse_str(text).unwrap();
    def.compile(&[("input", 3), ("hidden", 5)]).unwrap()
}

/// A `[rows, cols]` array of uniform floats in `[-1, 1)`.
fn random(rows: usize, cols: usize, rng: &mut Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform(-1.0, 1.0))
}

/// Panics unless `a` and `b` hold the same bits.
fn same(what: &str, a: &[f32], b: &[f32]) {
    let bits = |s: &[f32]| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(a), bits(b), "{what}: generated {a:?}, derived {b:?}");
}

/// The generated cell and the derived one give bitwise the same results in
/// all four methods, whatever the scratch holds on entry.
fn check_methods(generated: &dyn Cell, derived: &DerivedCell, batch: usize, seed: u64) {
    let sizes = |c: &dyn Cell| {
        let s = [
            c.input_size(),
            c.state_size(),
            c.tape_size(),
            c.output_size(),
        ];
        (s, c.scratch_size())
    };
    assert_eq!(sizes(generated), sizes(derived));
    same("parameters", generated.params(), derived.params());
    let (i, s, t) = (
        derived.input_size(),
        derived.state_size(),
        derived.tape_size(),
    );
    let mut rng = Rng::new(seed);
    let x = random(batch, i, &mut rng);
    let h = random(batch, s, &mut rng);
    let dh = random(batch, s, &mut rng);
    let grads0: Vec<f32> = (0..derived.params().len())
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let scratch = |fill: f32| Array2::from_elem((batch, derived.scratch_size()), fill);
    let mut results = Vec::new();
    for (cell, fill) in [(generated, f32::NAN), (derived as &dyn Cell, 7.0)] {
        let mut next = Array2::from_elem((batch, s), fill);
        cell.forward(
            x.view(),
            h.view(),
            next.view_mut(),
            scratch(fill).view_mut(),
        );
        let (mut tape, mut next_tape) = (Array2::from_elem((batch, t), fill), next.clone());
        let mut sc = scratch(fill);
        cell.forward_tape(
            x.view(),
            h.view(),
            tape.view_mut(),
            next_tape.view_mut(),
            sc.view_mut(),
        );
        let mut rebuilt = Array2::from_elem((batch, s), fill);
        let mut sc_rebuild = scratch(fill);
        cell.state_from_tape(tape.view(), rebuilt.view_mut(), sc_rebuild.view_mut());
        let (mut dh_prev, mut grads) = (Array2::from_elem((batch, s), fill), grads0.clone());
        cell.backward(
            x.view(),
            tape.view(),
            dh.view(),
            dh_prev.view_mut(),
            &mut grads,
            sc.view_mut(),
        );
        // The deferred backward step: its operands in a window of one step.
        let products = cell.weight_gradients();
        let mut window = vec![fill; Operands::window_floats(products, 1, batch)];
        let mut deferred = (Array2::from_elem((batch, s), fill), grads0.clone());
        cell.backward_deferred(
            x.view(),
            tape.view(),
            dh.view(),
            deferred.0.view_mut(),
            &mut deferred.1,
            sc.view_mut(),
            Operands::new(&mut window, products, 1, batch, 0),
        );
        same(
            "backward_deferred's dh_prev",
            deferred.0.as_slice().unwrap(),
            dh_prev.as_slice().unwrap(),
        );
        same(
            "forward_tape's state",
            next_tape.as_slice().unwrap(),
            next.as_slice().unwrap(),
        );
        same(
            "state_from_tape",
            rebuilt.as_slice().unwrap(),
            next.as_slice().unwrap(),
        );
        results.push([
            next.into_raw_vec_and_offset().0,
            tape.into_raw_vec_and_offset().0,
            dh_prev.into_raw_vec_and_offset().0,
            grads,
            deferred.1,
            window,
        ]);
    }
    assert_eq!(
        generated.weight_gradients(),
        derived.weight_gradients(),
        "deferred products"
    );
    for (k, what) in [
        "forward",
        "forward_tape's tape",
        "backward's dh_prev",
        "backward's grads",
        "backward_deferred's grads",
        "backward_deferred's operands",
    ]
    .iter()
    .enumerate()
    {
        same(what, &results[0][k], &results[1][k]);
    }
    assert!(results[0][0].iter().all(|v| v.is_finite()));
}

#[test]
fn mgu_matches_the_derived_cell_bitwise() {
    let program = program(MGU);
    assert_eq!(
        [
            Mgu::INPUT_SIZE,
            Mgu::STATE_SIZE,
            Mgu::TAPE_SIZE,
            Mgu::PARAM_COUNT
        ],
        [
            program.input_size,
            program.state_size,
            program.tape_size,
            program.param_count
        ]
    );
    assert_eq!(Mgu::ALPHA.to_bits(), program.alpha().to_bits());
    let generated = Mgu::new(&mut Rng::new(3));
    let derived = DerivedCell::new(program, &mut Rng::new(3));
    for (batch, seed) in [(4, 1), (1, 2)] {
        check_methods(&generated, &derived, batch, seed);
    }
}

#[test]
fn lstm_matches_the_derived_cell_bitwise() {
    let program = program(LSTM);
    let generated = Lstm::new(&mut Rng::new(4));
    let derived = DerivedCell::new(program, &mut Rng::new(4));
    for (batch, seed) in [(4, 1), (1, 2)] {
        check_methods(&generated, &derived, batch, seed);
    }
}

#[test]
fn gru_and_peephole_lstm_match_their_derived_cells_bitwise() {
    let derived = DerivedCell::new(program(GRU), &mut Rng::new(5));
    check_methods(&Gru::new(&mut Rng::new(5)), &derived, 4, 1);
    let derived = DerivedCell::new(program(PEEPHOLE), &mut Rng::new(6));
    check_methods(&PeepholeLstm::new(&mut Rng::new(6)), &derived, 4, 1);
}

cell_and_text! {
    FUNCTIONS,
    /// The cell of `tests/cells/functions.cell`: division, sqrt, rsqrt, abs,
    /// square, max, min, sum, mean, `[1]` values broadcast, block initial
    /// values.
    #[sizes(input = 3, hidden = 5)]
    cell Functions {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        state s: [1];
        param w: [input + hidden, 2 * hidden];
        param b: [2 * hidden] = [0.1, -0.2];
        param g: [hidden] = 1.0;
        param t: [1] = 0.5;

        let (a, c) = split(matmul(concat(x, h), w) + b);
        let d = a - mean(a);
        let n = d * rsqrt(mean(square(d)) + 0.001) * g;
        let y = tanh(c);
        let p = abs(y + 2.0) - abs(y - 2.0);
        let m = max(p, -3.0) + min(p, 3.0) + max(tanh(a), sigmoid(c) + 1.5) + min(sigmoid(c) + 1.5, y);
        let q = sqrt(1.0 + square(n)) / (1.0 + sigmoid(c));
        let l = log(1.5 + y) + softplus(a * 3.0) - softplus(-20.0 - y);
        let s_next = tanh(mean(n * h) + t * s);
        h = tanh(n * t + m * 0.1 + q * s - sum(y) / 8.0 + l * 0.2);
        s = s_next;
    }
}

cell_and_text! {
    TWO_INPUTS,
    /// Two inputs, consecutive column blocks of `x`.
    #[sizes(input = 3, hidden = 5)]
    cell TwoInputs {
        size input, hidden;
        input a: [input];
        input b: [hidden];
        state h: [hidden];
        param w: [input, hidden];
        param u: [hidden, hidden];
        h = tanh(matmul(a, w) + b * h + matmul(h, u)) + sigmoid(b);
    }
}

cell_and_text! {
    LAYERNORM_LSTM,
    /// The layer-normalised LSTM of `cells/layernorm_lstm.cell`.
    #[sizes(input = 3, hidden = 5)]
    #[bptt(seq_len = 20, budget = "30%")]
    cell LayerNormLstm {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        state c: [hidden];
        param w_x: [input, 4 * hidden];
        param w_h: [hidden, 4 * hidden];
        param gain_x: [4 * hidden] = 1.0;
        param gain_h: [4 * hidden] = 1.0;
        param b: [4 * hidden] = [0, 1, 0, 0];
        param gain_c: [hidden] = 1.0;
        param bias_c: [hidden] = 0.0;

        let px = matmul(x, w_x);
        let dx = px - mean(px);
        let nx = dx * rsqrt(mean(square(dx)) + 0.00001) * gain_x;
        let ph = matmul(h, w_h);
        let dh = ph - mean(ph);
        let nh = dh * rsqrt(mean(square(dh)) + 0.00001) * gain_h;
        let (i, f, g, o) = split(nx + nh + b);
        let c_next = sigmoid(f) * c + sigmoid(i) * tanh(g);
        let dc = c_next - mean(c_next);
        let nc = dc * rsqrt(mean(square(dc)) + 0.00001) * gain_c + bias_c;
        h = sigmoid(o) * tanh(nc);
        c = c_next;
    }
}

cell_and_text! {
    RMSNORM_GRU,
    /// The RMS-normalised GRU of `cells/rmsnorm_gru.cell`.
    #[sizes(input = 3, hidden = 5)]
    #[bptt(seq_len = 20, budget = "30%")]
    cell RmsnormGru {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        param w_x: [input, 3 * hidden];
        param w_h: [hidden, 3 * hidden];
        param b_x: [3 * hidden];
        param b_h: [3 * hidden];
        param gain: [hidden] = 1.0;

        let hn = h * rsqrt(mean(square(h)) + 0.00001) * gain;
        let (xr, xz, xn) = split(matmul(x, w_x) + b_x);
        let (hr, hz, hn_c) = split(matmul(hn, w_h) + b_h);
        let r = sigmoid(xr + hr);
        let z = sigmoid(xz + hz);
        let n = tanh(xn + r * hn_c);
        h = (1.0 - z) * n + z * h;
    }
}

/// The normalised cells, as `cell!` emits them, match their files and the
/// derived cells bit for bit in all four methods.
#[test]
fn the_normalised_cells_match_their_files_and_the_derived_cells_bitwise() {
    let layernorm = LayerNormLstm::new(&mut Rng::new(9));
    let rmsnorm = RmsnormGru::new(&mut Rng::new(9));
    let cases: [(&str, &str, &dyn Cell); 2] = [
        (
            include_str!("../../cells/layernorm_lstm.cell"),
            LAYERNORM_LSTM,
            &layernorm,
        ),
        (
            include_str!("../../cells/rmsnorm_gru.cell"),
            RMSNORM_GRU,
            &rmsnorm,
        ),
    ];
    for (file, text, generated) in cases {
        let from_file = CellDef::parse_str(file)
            .unwrap()
            .compile(&[("input", 3), ("hidden", 5)])
            .unwrap();
        let mut written = program(text);
        written.name = from_file.name.clone();
        assert_eq!(written, from_file, "the test repeats the file's equations");
        let derived = DerivedCell::new(from_file, &mut Rng::new(9));
        for (batch, seed) in [(4, 1), (1, 2)] {
            check_methods(generated, &derived, batch, seed);
        }
    }
}

#[test]
fn the_new_operations_match_the_derived_cell_bitwise() {
    let derived = DerivedCell::new(program(FUNCTIONS), &mut Rng::new(7));
    let generated = Functions::new(&mut Rng::new(7));
    assert_eq!(generated.params(), derived.params());
    for (batch, seed) in [(4, 1), (1, 2), (9, 3)] {
        check_methods(&generated, &derived, batch, seed);
    }
    let derived = DerivedCell::new(program(TWO_INPUTS), &mut Rng::new(8));
    check_methods(&TwoInputs::new(&mut Rng::new(8)), &derived, 4, 1);
}

cell_and_text! {
    LINEAR_ATTENTION,
    /// The linear-attention cell of `cells/linear_attention.cell`.
    #[sizes(input = 3, key = 4, value = 5)]
    #[bptt(seq_len = 20, budget = "30%")]
    cell LinearAttention {
        size input, key, value;
        input x: [input];
        state h: [value];
        state s: [key, value];
        param w_q: [input, key];
        param w_k: [input, key];
        param w_v: [input, value];
        param w_g: [input, 1];
        param b_g: [1] = 3.0;
        let q = matmul(x, w_q);
        let k = matmul(x, w_k);
        let v = matmul(x, w_v);
        let g = sigmoid(matmul(x, w_g) + b_g);
        let s_next = g * s + outer(k, v);
        s = s_next;
        h = matmul(q, s_next);
    }
}

cell_and_text! {
    MLSTM,
    /// The mLSTM of `cells/mlstm.cell`.
    #[sizes(input = 3, key = 4, value = 5)]
    #[bptt(seq_len = 20, budget = "30%")]
    cell Mlstm {
        size input, key, value;
        input x: [input];
        state h: [value];
        state c: [key, value];
        state n: [key];
        state m: [1];
        param w_q: [input, key];
        param w_k: [input, key];
        param w_v: [input, value];
        param w_o: [input, value];
        param b_o: [value];
        param w_i: [input, 1];
        param b_i: [1];
        param w_f: [input, 1];
        param b_f: [1] = 3.0;
        let q = matmul(x, w_q);
        let k = matmul(x, w_k);
        let v = matmul(x, w_v);
        let i_pre = matmul(x, w_i) + b_i;
        let log_f = -softplus(-(matmul(x, w_f) + b_f));
        let m_next = max(log_f + m, i_pre);
        let i_gate = exp(i_pre - m_next);
        let f_gate = exp(log_f + m - m_next);
        let c_next = f_gate * c + i_gate * outer(k, v);
        let n_next = f_gate * n + i_gate * k;
        let o = sigmoid(matmul(x, w_o) + b_o);
        let norm = max(abs(sum(n_next * q)), exp(-m_next));
        h = o * matmul(q, c_next) / norm;
        c = c_next;
        n = n_next;
        m = m_next;
    }
}

cell_and_text! {
    MATRIX,
    /// Every operation on matrix-valued values, as `tests/cells/matrix.cell`.
    #[sizes(input = 3, hidden = 5)]
    cell Matrix {
        size input, hidden;
        input x: [input];
        state h: [hidden];
        state m: [input, hidden];
        param w: [input + hidden, hidden];
        param u: [input, input];
        param d: [input] = 2.0;
        param t: [1] = 0.5;
        let a = tanh(matmul(concat(x, h), w));
        let r = matmul(m, a);
        let g = sigmoid(matmul(r, u) + d);
        let m_next = tanh(scale_rows(g, m) * t + outer(x, a) - m * sigmoid(-m) / 4.0);
        let y = matmul(x, m_next);
        let p = matmul(outer(h, x), m_next);
        let z = matmul(a, outer(h, h) + p * 0.1);
        h = tanh(y + z * 0.1);
        m = m_next;
    }
}

/// The matrix-memory cells, as `cell!` emits them, match their files and
/// the derived cells bit for bit in all four methods: the emitted code
/// calls the runtime's per-row products as the interpreter does.
#[test]
fn the_matrix_memory_cells_match_their_files_and_the_derived_cells_bitwise() {
    let memory: &[(&str, usize)] = &[("input", 3), ("key", 4), ("value", 5)];
    let generated: [Box<dyn Cell>; 3] = [
        Box::new(LinearAttention::new(&mut Rng::new(9))),
        Box::new(Mlstm::new(&mut Rng::new(9))),
        Box::new(Matrix::new(&mut Rng::new(9))),
    ];
    let cases = [
        (
            include_str!("../../cells/linear_attention.cell"),
            LINEAR_ATTENTION,
            memory,
        ),
        (include_str!("../../cells/mlstm.cell"), MLSTM, memory),
        (
            include_str!("../../tests/cells/matrix.cell"),
            MATRIX,
            &[("input", 3), ("hidden", 5)],
        ),
    ];
    for ((file, text, sizes), generated) in cases.into_iter().zip(generated) {
        let from_file = CellDef::parse_str(file).unwrap().compile(sizes).unwrap();
        let mut written = CellDef::parse_str(text).unwrap().compile(sizes).unwrap();
        written.name = from_file.name.clone();
        assert_eq!(written, from_file, "the test repeats the file's equations");
        let derived = DerivedCell::new(from_file, &mut Rng::new(9));
        // 33 rows: forward methods split them over threads (MIN_ROWS each).
        for (batch, seed) in [(4, 1), (1, 2), (9, 3), (33, 4)] {
            check_methods(&*generated, &derived, batch, seed);
        }
    }
}

#[test]
fn from_params_checks_the_count() {
    let cell = Mgu::from_params(vec![0.5; Mgu::PARAM_COUNT]).unwrap();
    assert!(cell.params().iter().all(|&p| p == 0.5));
    let err = Mgu::from_params(vec![0.0; 3]).err().unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "Mgu (input = 3, hidden = 5): expected {} parameters, got 3",
            Mgu::PARAM_COUNT
        )
    );
}

#[test]
#[should_panic(expected = "Mgu::forward: h_prev has shape [2, 4], expected [2, 5]")]
fn a_wrong_shape_panics_naming_both() {
    let cell = Mgu::new(&mut Rng::new(1));
    let mut next = Array2::zeros((2, 5));
    let mut scratch = Array2::zeros((2, Mgu::SCRATCH_SIZE));
    let (x, h) = (Array2::zeros((2, 3)), Array2::zeros((2, 4)));
    cell.forward(x.view(), h.view(), next.view_mut(), scratch.view_mut());
}

/// A test of a few steps of gradient descent through a cell's generated
/// training step (`#[bptt]` on `cell!`, a schedule that recomputes, planned
/// for 4 rows and 3 classes or more) and through the interpreter on the
/// derived cell (`$text` compiled for `$sizes`, MSM at 30%): the same
/// losses and gradients, bit for bit, and the loss falls.
macro_rules! trains_as_the_interpreter_does {
    ($test:ident, $cell:ident, $text:ident, $sizes:expr) => {
        #[test]
        fn $test() {
            let (batch, classes, len) = (4, 3, $cell::SEQ_LEN as usize);
            let mut rng = Rng::new(9);
            let mut generated = $cell::new(&mut rng);
            let program = CellDef::parse_str($text).unwrap().compile($sizes).unwrap();
            let mut derived =
                DerivedCell::from_params(program, generated.params().to_vec()).unwrap();
            let readout = Readout::new(LossKind::SoftmaxCrossEntropy, 5, classes, &mut rng);
            let x = Array3::from_shape_simple_fn((len, batch, 3), || rng.uniform(-1.0, 1.0));
            let h0 = Array2::zeros((batch, $cell::STATE_SIZE));
            let y = Array2::from_shape_simple_fn((len, batch), || rng.below(classes) as u32);
            let alpha = Alpha::new($cell::ALPHA).unwrap();
            let budget = "30%".parse::<Budget>().unwrap();
            let plan = Plan::new(Policy::Msm, alpha, $cell::SEQ_LEN, budget).unwrap();
            let mut interp =
                Interpreter::new(Schedule::from_plan(&plan), &derived, &readout, batch).unwrap();
            let mut arena = generated.new_arena(&readout, batch).unwrap();
            assert!(
                $cell::FORWARD_STEPS > $cell::SEQ_LEN as u64,
                "the schedule recomputes"
            );
            let mut losses = Vec::new();
            for _ in 0..4 {
                let mut grads = Gradients::zeros(&generated, &readout, batch);
                let targets = Targets::Classes(y.view());
                let loss = generated
                    .train_step(
                        &readout,
                        &mut arena,
                        x.view(),
                        h0.view(),
                        targets,
                        &mut grads,
                    )
                    .unwrap();
                let mut expected = interp.gradients(&derived, &readout);
                let targets = Targets::Classes(y.view());
                let want = interp
                    .run(
                        &derived,
                        &readout,
                        x.view(),
                        h0.view(),
                        targets,
                        &mut expected,
                    )
                    .unwrap();
                assert!(loss.is_finite(), "loss {loss}");
                assert_eq!(loss.to_bits(), want.to_bits(), "loss {loss} vs {want}");
                assert!(grads.bitwise_eq(&expected), "gradients differ");
                for cell in [&mut generated as &mut dyn Cell, &mut derived] {
                    for (w, g) in cell.params_mut().iter_mut().zip(&grads.cell) {
                        *w -= 0.5 * g;
                    }
                }
                losses.push(loss);
            }
            assert!(losses[3] < losses[0], "the loss falls: {losses:?}");
        }
    };
}

trains_as_the_interpreter_does!(
    scheduled_lstm_trains_as_the_interpreter_does,
    Lstm,
    LSTM,
    &[("input", 3), ("hidden", 5)]
);
trains_as_the_interpreter_does!(
    planned_gru_trains_as_the_interpreter_does,
    Gru,
    GRU,
    &[("input", 3), ("hidden", 5)]
);
trains_as_the_interpreter_does!(
    scheduled_layernorm_lstm_trains_as_the_interpreter_does,
    LayerNormLstm,
    LAYERNORM_LSTM,
    &[("input", 3), ("hidden", 5)]
);
trains_as_the_interpreter_does!(
    scheduled_rmsnorm_gru_trains_as_the_interpreter_does,
    RmsnormGru,
    RMSNORM_GRU,
    &[("input", 3), ("hidden", 5)]
);
trains_as_the_interpreter_does!(
    scheduled_linear_attention_trains_as_the_interpreter_does,
    LinearAttention,
    LINEAR_ATTENTION,
    &[("input", 3), ("key", 4), ("value", 5)]
);
trains_as_the_interpreter_does!(
    scheduled_mlstm_trains_as_the_interpreter_does,
    Mlstm,
    MLSTM,
    &[("input", 3), ("key", 4), ("value", 5)]
);

/// A budget in bytes for `cell!`: the arena and the gradients fit in
/// `MEMORY_BYTES` for the batch planned for, as tightly as the plan's ticks
/// allow; a larger batch is refused. (It trains in
/// `planned_gru_trains_as_the_interpreter_does`.)
#[test]
fn a_cell_within_memory_holds_what_it_was_planned_for() {
    let (batch, classes) = (4, 3);
    let mut rng = Rng::new(11);
    let cell = Gru::new(&mut rng);
    let readout = Readout::new(LossKind::SoftmaxCrossEntropy, 5, classes, &mut rng);
    assert_eq!(Gru::MEMORY_BYTES, 24 << 10);
    let holds = |layout: &bptt_runtime::ArenaLayout, batch: usize| {
        let grads = Gradients::zeros(&cell, &readout, batch);
        let floats = layout.total() + grads.cell.len() + grads.readout.len() + grads.h0.len();
        4 * floats as u64
    };
    let layout = cell.arena_layout(&readout, batch).unwrap();
    let used = holds(&layout, batch);
    assert!(used <= Gru::MEMORY_BYTES, "{used} bytes");
    // The plan of the next budget tick would not fit (or this one is
    // within a thousandth): the library's search on the runtime's figures.
    let alpha = Alpha::new(Gru::ALPHA).unwrap();
    let need = |plan: &Plan| {
        let layout = bptt_runtime::ArenaLayout {
            capacity_ticks: plan.peak().0,
            ..layout
        };
        u128::from(holds(&layout, batch))
    };
    let state_bytes = (4 * batch * Gru::STATE_SIZE) as u64;
    let memory = Gru::MEMORY_BYTES;
    let plan =
        bptt::planner::plan_within(memory, Policy::Msm, alpha, 30, state_bytes, need).unwrap();
    assert_eq!(plan.peak().0, Gru::CAPACITY_TICKS);
    assert_eq!(plan.forward_steps(), Gru::FORWARD_STEPS);
    const { assert!(Gru::FORWARD_STEPS > 30, "the schedule recomputes") };
    let next = Plan::new(
        Policy::Msm,
        alpha,
        30,
        Budget::Units(alpha.to_units(bptt::Ticks(plan.budget().0 + 1))),
    )
    .unwrap();
    assert!(
        u128::from(used) * 1000 >= u128::from(memory) * 999 || need(&next) > u128::from(memory),
        "{used} of {memory} bytes, and a tick more would fit"
    );
    assert!(used * 100 >= memory * 95, "{used} of {memory} bytes");
    // A larger batch is refused, naming both figures.
    let err = cell.arena_layout(&readout, batch + 1).unwrap_err();
    assert!(err.what.contains("MEMORY_BYTES"), "{err}");
    assert_eq!(err.expected, [memory as usize]);
    assert!(err.got[0] > memory as usize, "{err}");
}
