//! Shared fixtures of the integration tests: cells, data and plain BPTT.

#![allow(dead_code)]

use bptt::cell_lang::{CellDef, CellProgram, DerivedCell};
use bptt::schedule::IntoVerified;
use bptt::{Alpha, Budget, Gradients, Interpreter, Plan, Policy, Schedule};
use bptt_runtime::{Cell, Gru, LossKind, Lstm, Operands, Readout, Rng, Rnn, Targets};
use ndarray::{Array2, Array3, Axis};

/// The three runtime cells by name.
pub const CELLS: [&str; 3] = ["rnn", "lstm", "gru"];

/// Cells derived from their equations: the examples in `cells/`, and ones
/// that use every operation of the language (`matrix.cell` those of
/// matrix-valued values).
pub const DERIVED: [&str; 12] = [
    "tests/cells/exotic.cell",
    "tests/cells/functions.cell",
    "tests/cells/matrix.cell",
    "cells/rnn.cell",
    "cells/lstm.cell",
    "cells/gru.cell",
    "cells/mgu.cell",
    "cells/peephole_lstm.cell",
    "cells/layernorm_lstm.cell",
    "cells/rmsnorm_gru.cell",
    "cells/linear_attention.cell",
    "cells/mlstm.cell",
];

/// The sizes a test binds for a cell's size names: `input`, and `hidden`
/// for `hidden` and for a matrix memory's `value` (the width of the first
/// state, which the read-out reads), `key` one less (so that a transposed
/// `[key, value]` is caught).
pub fn sizes(def: &CellDef, input: usize, hidden: usize) -> Vec<(&'static str, usize)> {
    let mut out = Vec::new();
    for name in def.size_names() {
        out.push(match name.as_str() {
            "input" => ("input", input),
            "hidden" => ("hidden", hidden),
            "value" => ("value", hidden),
            "key" => ("key", hidden.saturating_sub(1).max(1)),
            other => panic!("no test size for `{other}`"),
        });
    }
    out
}

/// A cell file compiled for these sizes.
pub fn program(path: &str, input: usize, hidden: usize) -> CellProgram {
    let src = std::fs::read_to_string(path).unwrap();
    let def = CellDef::parse_str(&src).unwrap_or_else(|e| panic!("{path}: {e}"));
    def.compile(&sizes(&def, input, hidden))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A runtime cell by name, or a derived cell by the path of its file.
pub fn cell(name: &str, input: usize, hidden: usize, rng: &mut Rng) -> Box<dyn Cell> {
    match name {
        "rnn" => Box::new(Rnn::new(input, hidden, rng)),
        "lstm" => Box::new(Lstm::new(input, hidden, rng)),
        "gru" => Box::new(Gru::new(input, hidden, rng)),
        path => Box::new(DerivedCell::new(program(path, input, hidden), rng)),
    }
}

/// A random problem: inputs, h0 and class targets.
pub struct Problem {
    pub cell: Box<dyn Cell>,
    pub readout: Readout,
    pub x: Array3<f32>,
    pub h0: Array2<f32>,
    pub classes: Array2<u32>,
}

impl Problem {
    pub fn new(name: &str, len: usize, batch: usize, seed: u64) -> Self {
        let (input, hidden, classes) = (3, 5, 4);
        let mut rng = Rng::new(seed);
        let cell = cell(name, input, hidden, &mut rng);
        let readout = Readout::new(LossKind::SoftmaxCrossEntropy, hidden, classes, &mut rng);
        let x = Array3::from_shape_simple_fn((len, batch, input), || rng.uniform(-1.0, 1.0));
        let h0 =
            Array2::from_shape_simple_fn((batch, cell.state_size()), || rng.uniform(-0.5, 0.5));
        let classes = Array2::from_shape_simple_fn((len, batch), || rng.below(classes) as u32);
        Problem {
            cell,
            readout,
            x,
            h0,
            classes,
        }
    }

    pub fn targets(&self) -> Targets<'_> {
        Targets::Classes(self.classes.view())
    }

    pub fn len(&self) -> u32 {
        self.x.len_of(Axis(0)) as u32
    }

    pub fn batch(&self) -> usize {
        self.x.len_of(Axis(1))
    }

    /// Loss and gradients through the interpreter under a policy and budget,
    /// streaming the schedule from its plan; checked bitwise against the
    /// interpreter walking the same schedule listed.
    pub fn run(&self, policy: Policy, budget: Budget) -> (f64, Gradients) {
        let alpha = Alpha::new(self.cell.alpha()).unwrap();
        let plan = Plan::new(policy, alpha, self.len(), budget).unwrap();
        let listed = self.run_on(Schedule::from_plan(&plan));
        let streamed = self.run_on(plan);
        assert_eq!(
            (listed.0.to_bits(), bits(&listed.1)),
            (streamed.0.to_bits(), bits(&streamed.1)),
            "{policy} {budget:?}: the streamed schedule differs from the listed one"
        );
        streamed
    }

    /// Loss and gradients through the interpreter of a schedule (listed, or
    /// a plan to stream).
    pub fn run_on(&self, schedule: impl IntoVerified) -> (f64, Gradients) {
        let mut interp =
            Interpreter::new(schedule, &*self.cell, &self.readout, self.batch()).unwrap();
        let mut grads = interp.gradients(&*self.cell, &self.readout);
        let loss = interp
            .run(
                &*self.cell,
                &self.readout,
                self.x.view(),
                self.h0.view(),
                self.targets(),
                &mut grads,
            )
            .unwrap();
        (loss, grads)
    }

    /// Plain BPTT written directly against the cell trait: every tape kept,
    /// no schedule, no arena.
    pub fn plain_bptt(&self) -> (f64, Gradients) {
        let (len, batch) = (self.len() as usize, self.batch());
        let cell = &*self.cell;
        let (s, tsz) = (cell.state_size(), cell.tape_size());
        let mut tapes = vec![Array2::<f32>::zeros((batch, tsz)); len];
        let mut h = self.h0.clone();
        let mut scratch = Array2::zeros((batch, cell.scratch_size()));
        for (k, tape) in tapes.iter_mut().enumerate() {
            let mut next = Array2::zeros((batch, s));
            cell.forward_tape(
                self.x.index_axis(Axis(0), k),
                h.view(),
                tape.view_mut(),
                next.view_mut(),
                scratch.view_mut(),
            );
            h = next;
        }
        let mut grads = Gradients::zeros(cell, &self.readout, batch);
        let mut dh = Array2::<f32>::zeros((batch, s));
        let mut loss = 0.0;
        let scale = 1.0 / (batch * len) as f32;
        let mut rscratch = Array2::zeros((batch, self.readout.scratch_size()));
        for k in (1..=len).rev() {
            let mut state = Array2::zeros((batch, s));
            cell.state_from_tape(tapes[k - 1].view(), state.view_mut(), scratch.view_mut());
            let target = self.targets().at(k, len);
            loss += self.readout.step(
                state.view(),
                target,
                scale,
                dh.view_mut(),
                &mut grads.readout,
                rscratch.view_mut(),
            );
            let mut dh_prev = Array2::zeros((batch, s));
            cell.backward(
                self.x.index_axis(Axis(0), k - 1),
                tapes[k - 1].view(),
                dh.view(),
                dh_prev.view_mut(),
                &mut grads.cell,
                scratch.view_mut(),
            );
            dh = dh_prev;
        }
        grads.h0 = dh;
        (loss, grads)
    }
}

/// Everything a cell computes for one step: `h_next`, the step's tape, the
/// state rebuilt from it, `dh_prev`, and the parameter gradients (added to
/// those given).
pub struct StepOutputs {
    pub next: Array2<f32>,
    pub tape: Array2<f32>,
    pub rebuilt: Array2<f32>,
    pub dh_prev: Array2<f32>,
    pub grads: Vec<f32>,
}

/// Runs the methods of `cell` on one step, checking the cell contract
/// (`forward`, `forward_tape` and `state_from_tape` give bitwise the same
/// state, and `backward_deferred` with its window's products added gives
/// bitwise `backward`'s gradients); `scratch` starts as given (stale, as a
/// previous call leaves it).
pub fn step(
    cell: &dyn Cell,
    x: &Array2<f32>,
    h_prev: &Array2<f32>,
    dh: &Array2<f32>,
    mut scratch: Array2<f32>,
    mut grads: Vec<f32>,
) -> StepOutputs {
    let b = x.nrows();
    let s = cell.state_size();
    let mut forward = Array2::zeros((b, s));
    cell.forward(
        x.view(),
        h_prev.view(),
        forward.view_mut(),
        scratch.view_mut(),
    );
    let mut tape = Array2::zeros((b, cell.tape_size()));
    let mut next = Array2::zeros((b, s));
    cell.forward_tape(
        x.view(),
        h_prev.view(),
        tape.view_mut(),
        next.view_mut(),
        scratch.view_mut(),
    );
    let mut rebuilt = Array2::zeros((b, s));
    cell.state_from_tape(tape.view(), rebuilt.view_mut(), scratch.view_mut());
    let mut dh_prev = Array2::from_elem((b, s), f32::NAN);
    let mut deferred = grads.clone();
    cell.backward(
        x.view(),
        tape.view(),
        dh.view(),
        dh_prev.view_mut(),
        &mut grads,
        scratch.view_mut(),
    );
    let products = cell.weight_gradients();
    let mut window = vec![f32::NAN; Operands::window_floats(products, 1, b)];
    let mut deferred_dh_prev = Array2::from_elem((b, s), f32::NAN);
    cell.backward_deferred(
        x.view(),
        tape.view(),
        dh.view(),
        deferred_dh_prev.view_mut(),
        &mut deferred,
        scratch.view_mut(),
        Operands::new(&mut window, products, 1, b, 0),
    );
    let rows = Operands::new(&mut window, products, 1, b, 0).each();
    for (p, (a, d)) in products.iter().zip(rows) {
        p.add(a, d, &mut deferred);
    }
    let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let float_bits = |a: &[f32]| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&deferred_dh_prev),
        bits(&dh_prev),
        "backward_deferred's dh_prev"
    );
    assert_eq!(
        float_bits(&deferred),
        float_bits(&grads),
        "backward_deferred and its window's products vs backward"
    );
    assert_eq!(bits(&forward), bits(&next), "forward vs forward_tape");
    assert_eq!(
        bits(&rebuilt),
        bits(&next),
        "state_from_tape vs forward_tape"
    );
    StepOutputs {
        next,
        tape,
        rebuilt,
        dh_prev,
        grads,
    }
}

/// Every gradient's bits: the cell's, the read-out's and `dL/dh[0]`.
pub fn bits(grads: &Gradients) -> Vec<u32> {
    grads
        .cell
        .iter()
        .chain(&grads.readout)
        .chain(&grads.h0)
        .map(|g| g.to_bits())
        .collect()
}

/// Cranelift IR text with its value numbers erased (`v12` becomes `v`), so
/// that a snapshot shows the code's shape (its blocks, instructions,
/// constants, memory offsets and calls) and not how Cranelift happened to
/// number the values it made.
pub fn clif_shape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut previous: Option<char> = None;
    while let Some(c) = chars.next() {
        let starts_word = !previous.is_some_and(|p| p.is_alphanumeric() || p == '_');
        if c == 'v' && starts_word && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut digits = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(d);
                chars.next();
            }
            let ends_word = !chars
                .peek()
                .is_some_and(|&n| n.is_alphanumeric() || n == '_');
            out.push('v');
            if !ends_word {
                out.push_str(&digits);
            }
            previous = digits.chars().last();
            continue;
        }
        out.push(c);
        previous = Some(c);
    }
    out
}

#[test]
fn clif_shape_erases_value_numbers_only() {
    assert_eq!(
        clif_shape(
            "v12 = iadd v9, v13 ; v12 = 68\nload.f32x4 notrap v28+1224 block3(v41) fn0 sig1 v2x"
        ),
        "v = iadd v, v ; v = 68\nload.f32x4 notrap v+1224 block3(v) fn0 sig1 v2x"
    );
}
