//! The `#[bptt]` training step against the interpreter and plain store-all
//! BPTT: bitwise identical losses and gradients for the runtime's LSTM and for
//! a cell written here, at several budgets and policies, including schedules
//! long enough to be split into segment functions.

#[path = "../../tests/common/mod.rs"]
mod common;

use bptt::{Budget, Gradients, Policy};
use bptt_macros::bptt;
use bptt_runtime::kernels::{gemm_nn_acc, gemm_nt_acc, gemm_tn_acc, sigmoid, tanh};
use bptt_runtime::{Cell, LossKind, Lstm, Readout, Rng};
use common::Problem;
use ndarray::{Array2, Array3, ArrayView2, ArrayViewMut2};

/// A leaky gated unit, written against the `Cell` trait as a user would:
/// `c = tanh(x·W + h·U + b)`, `h' = a ⊙ h + (1 - a) ⊙ c` with a learned
/// per-unit leak gate `a = σ(d)`.
///
/// Parameters: `W [input × H]`, `U [H × H]`, `b [H]`, `d [H]`. Tape row:
/// `[h_prev | c | h']` (`alpha = 3`). Scratch row: `2H`.
#[derive(Clone, Debug)]
pub struct LeakyUnit {
    input: usize,
    hidden: usize,
    params: Vec<f32>,
}

impl LeakyUnit {
    /// A unit with parameters drawn from `uniform(-1/√H, 1/√H)`.
    pub fn new(input: usize, hidden: usize, rng: &mut Rng) -> Self {
        let k = 1.0 / (hidden as f32).sqrt();
        let n = (input + hidden + 2) * hidden;
        let params = (0..n).map(|_| rng.uniform(-k, k)).collect();
        LeakyUnit {
            input,
            hidden,
            params,
        }
    }

    fn w(&self) -> std::ops::Range<usize> {
        0..self.input * self.hidden
    }

    fn u(&self) -> std::ops::Range<usize> {
        let s = self.w().end;
        s..s + self.hidden * self.hidden
    }

    fn b(&self) -> std::ops::Range<usize> {
        let s = self.u().end;
        s..s + self.hidden
    }

    fn d(&self) -> std::ops::Range<usize> {
        let s = self.b().end;
        s..s + self.hidden
    }

    /// The one forward path of `forward` and `forward_tape`.
    fn step(
        &self,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        mut tape: Option<ArrayViewMut2<f32>>,
        mut h_next: ArrayViewMut2<f32>,
    ) {
        let (batch, n) = (x.nrows(), self.hidden);
        let x = x.as_slice().expect("x is contiguous");
        let hp = h_prev.as_slice().expect("h_prev is contiguous");
        let out = h_next.as_slice_mut().expect("h_next is contiguous");
        for row in out.chunks_exact_mut(n) {
            row.copy_from_slice(&self.params[self.b()]);
        }
        gemm_nn_acc(batch, self.input, n, x, &self.params[self.w()], out);
        gemm_nn_acc(batch, n, n, hp, &self.params[self.u()], out);
        let d = &self.params[self.d()];
        let mut tape = tape
            .as_mut()
            .map(|t| t.as_slice_mut().expect("tape is contiguous"));
        for r in 0..batch {
            for j in 0..n {
                let (a, h) = (sigmoid(d[j]), hp[r * n + j]);
                let c = tanh(out[r * n + j]);
                let next = a * h + (1.0 - a) * c;
                out[r * n + j] = next;
                if let Some(t) = tape.as_deref_mut() {
                    let row = &mut t[r * 3 * n..(r + 1) * 3 * n];
                    (row[j], row[n + j], row[2 * n + j]) = (h, c, next);
                }
            }
        }
    }
}

impl Cell for LeakyUnit {
    fn input_size(&self) -> usize {
        self.input
    }

    fn state_size(&self) -> usize {
        self.hidden
    }

    fn tape_size(&self) -> usize {
        3 * self.hidden
    }

    fn output_size(&self) -> usize {
        self.hidden
    }

    fn scratch_size(&self) -> usize {
        2 * self.hidden
    }

    fn params(&self) -> &[f32] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    fn forward(
        &self,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        h_next: ArrayViewMut2<f32>,
        _scratch: ArrayViewMut2<f32>,
    ) {
        self.step(x, h_prev, None, h_next);
    }

    fn forward_tape(
        &self,
        x: ArrayView2<f32>,
        h_prev: ArrayView2<f32>,
        tape: ArrayViewMut2<f32>,
        h_next: ArrayViewMut2<f32>,
        _scratch: ArrayViewMut2<f32>,
    ) {
        self.step(x, h_prev, Some(tape), h_next);
    }

    fn state_from_tape(
        &self,
        tape: ArrayView2<f32>,
        mut h: ArrayViewMut2<f32>,
        _scratch: ArrayViewMut2<f32>,
    ) {
        let n = self.hidden;
        for (row, out) in tape.rows().into_iter().zip(h.rows_mut()) {
            for (o, &v) in out.into_iter().zip(row.iter().skip(2 * n)) {
                *o = v;
            }
        }
    }

    fn backward(
        &self,
        x: ArrayView2<f32>,
        tape: ArrayView2<f32>,
        dh: ArrayView2<f32>,
        mut dh_prev: ArrayViewMut2<f32>,
        grads: &mut [f32],
        mut scratch: ArrayViewMut2<f32>,
    ) {
        let (batch, n) = (x.nrows(), self.hidden);
        let x = x.as_slice().expect("x is contiguous");
        let tape = tape.as_slice().expect("tape is contiguous");
        let dh = dh.as_slice().expect("dh is contiguous");
        let dh_prev = dh_prev.as_slice_mut().expect("dh_prev is contiguous");
        let scratch = scratch.as_slice_mut().expect("scratch is contiguous");
        let (dpre, hp) = scratch.split_at_mut(batch * n);
        let d = &self.params[self.d()];
        let d_off = self.d().start;
        for r in 0..batch {
            let row = &tape[r * 3 * n..(r + 1) * 3 * n];
            for j in 0..n {
                let (a, h, c, g) = (sigmoid(d[j]), row[j], row[n + j], dh[r * n + j]);
                dpre[r * n + j] = g * (1.0 - a) * (1.0 - c * c);
                grads[d_off + j] += g * (h - c) * (a * (1.0 - a));
                dh_prev[r * n + j] = g * a;
                hp[r * n + j] = h;
            }
        }
        let (w, u, b) = (self.w(), self.u(), self.b());
        gemm_tn_acc(self.input, batch, n, x, dpre, &mut grads[w]);
        gemm_tn_acc(n, batch, n, hp, dpre, &mut grads[u.clone()]);
        for row in dpre.chunks_exact(n) {
            for (g, v) in grads[b.clone()].iter_mut().zip(row) {
                *g += v;
            }
        }
        gemm_nt_acc(batch, n, n, dpre, &self.params[u], dh_prev);
    }
}

/// A cell with a generated training step, as the tests drive it.
trait Scheduled: Cell + Sized {
    /// The policy and budget the attribute was given.
    fn spec() -> (Policy, Budget);
    /// Wraps a copy of a cell.
    fn wrap(cell: &dyn Cell) -> Self;
    /// Loss and gradients through the generated training step.
    fn generated(&self, problem: &Problem) -> (f64, Gradients);
}

/// Loss and gradients of `$problem` through `$cell`'s generated training
/// step, in a fresh arena (a macro: each `#[bptt]` type has its own inherent
/// `train_step`).
macro_rules! generated_step {
    ($cell:expr, $problem:expr) => {{
        let (cell, p) = ($cell, $problem);
        let mut arena = cell.new_arena(&p.readout, p.batch()).unwrap();
        let mut grads = Gradients::zeros(cell, &p.readout, p.batch());
        let loss = cell
            .train_step(
                &p.readout,
                &mut arena,
                p.x.view(),
                p.h0.view(),
                p.targets(),
                &mut grads,
            )
            .unwrap();
        (loss, grads)
    }};
}

/// A newtype over `$inner` with `#[bptt(seq_len = $len, budget = $budget,
/// alpha = 3, policy = $policy)]`.
macro_rules! scheduled {
    ($name:ident($inner:ident), $len:literal, $budget:literal, $policy:literal) => {
        #[bptt(seq_len = $len, budget = $budget, alpha = 3, policy = $policy)]
        struct $name($inner);
        bptt_runtime::delegate_cell!($name, 0);
        impl Scheduled for $name {
            fn spec() -> (Policy, Budget) {
                ($policy.parse().unwrap(), $budget.parse().unwrap())
            }
            fn wrap(cell: &dyn Cell) -> Self {
                $name(<$inner as Rebuild>::rebuild(cell))
            }
            fn generated(&self, p: &Problem) -> (f64, Gradients) {
                generated_step!(self, p)
            }
        }
    };
}

/// Rebuilds a concrete cell from a boxed one's parameters.
trait Rebuild {
    fn rebuild(cell: &dyn Cell) -> Self;
}

impl Rebuild for Lstm {
    fn rebuild(cell: &dyn Cell) -> Self {
        Lstm::from_params(
            cell.input_size(),
            cell.output_size(),
            cell.params().to_vec(),
        )
        .unwrap()
    }
}

impl Rebuild for LeakyUnit {
    fn rebuild(cell: &dyn Cell) -> Self {
        LeakyUnit {
            input: cell.input_size(),
            hidden: cell.state_size(),
            params: cell.params().to_vec(),
        }
    }
}

/// A problem of `len` steps on the LSTM or on the leaky unit.
fn problem(cell: &str, len: usize, seed: u64) -> Problem {
    if cell == "lstm" {
        return Problem::new("lstm", len, 3, seed);
    }
    let (input, hidden, classes, batch) = (3, 5, 4, 3);
    let mut rng = Rng::new(seed);
    let cell = LeakyUnit::new(input, hidden, &mut rng);
    let readout = Readout::new(LossKind::SoftmaxCrossEntropy, hidden, classes, &mut rng);
    let x = Array3::from_shape_simple_fn((len, batch, input), || rng.uniform(-1.0, 1.0));
    let h0 = Array2::from_shape_simple_fn((batch, hidden), || rng.uniform(-0.5, 0.5));
    let classes = Array2::from_shape_simple_fn((len, batch), || rng.below(classes) as u32);
    Problem {
        cell: Box::new(cell),
        readout,
        x,
        h0,
        classes,
    }
}

/// Generated, interpreted and plain store-all: the same bits.
fn check<S: Scheduled>(cell: &str, len: usize) {
    let problem = problem(cell, len, 7);
    let (policy, budget) = S::spec();
    let case = format!("{cell} T = {len} {policy} {budget}");
    let scheduled = S::wrap(&*problem.cell);
    let (loss, grads) = scheduled.generated(&problem);
    let (interp_loss, interp) = problem.run(policy, budget);
    let (plain_loss, plain) = problem.plain_bptt();
    assert!(loss.is_finite() && loss > 0.0, "{case}: loss {loss}");
    assert_eq!(
        loss.to_bits(),
        interp_loss.to_bits(),
        "{case}: loss vs interpreter"
    );
    assert!(
        grads.bitwise_eq(&interp),
        "{case}: gradients vs interpreter"
    );
    assert_eq!(
        loss.to_bits(),
        plain_loss.to_bits(),
        "{case}: loss vs plain BPTT"
    );
    assert!(grads.bitwise_eq(&plain), "{case}: gradients vs plain BPTT");
    assert!(
        grads.cell.iter().any(|&g| g != 0.0),
        "{case}: some gradient is not zero"
    );
}

scheduled!(LstmMsm0(Lstm), 37, "0", "msm");
scheduled!(LstmMsm5(Lstm), 37, "5%", "msm");
scheduled!(LstmMsm20(Lstm), 37, "20%", "msm");
scheduled!(LstmMsmUnits(Lstm), 37, "7.5", "msm");
scheduled!(LstmHsm(Lstm), 37, "4", "hsm");
scheduled!(LstmIsm(Lstm), 37, "30%", "ism");
scheduled!(LstmStoreAll(Lstm), 37, "100%", "store-all");
scheduled!(LstmSqrt(Lstm), 37, "100%", "sqrt");
scheduled!(LstmInterval(Lstm), 37, "100%", "interval:5");
scheduled!(LstmLong(Lstm), 300, "4", "msm");

scheduled!(LeakyMsm0(LeakyUnit), 37, "0", "msm");
scheduled!(LeakyMsm5(LeakyUnit), 37, "5%", "msm");
scheduled!(LeakyHsm(LeakyUnit), 37, "2", "hsm");
scheduled!(LeakyIsm(LeakyUnit), 37, "10%", "ism");
scheduled!(LeakyStoreAll(LeakyUnit), 37, "100%", "store-all");
scheduled!(LeakySqrt(LeakyUnit), 37, "100%", "sqrt");
scheduled!(LeakyLong(LeakyUnit), 300, "2%", "msm");

#[test]
fn lstm_generated_equals_interpreter_and_plain_bptt() {
    check::<LstmMsm0>("lstm", 37);
    check::<LstmMsm5>("lstm", 37);
    check::<LstmMsm20>("lstm", 37);
    check::<LstmMsmUnits>("lstm", 37);
    check::<LstmHsm>("lstm", 37);
    check::<LstmIsm>("lstm", 37);
    check::<LstmStoreAll>("lstm", 37);
    check::<LstmSqrt>("lstm", 37);
    check::<LstmInterval>("lstm", 37);
}

#[test]
fn user_cell_generated_equals_interpreter_and_plain_bptt() {
    check::<LeakyMsm0>("leaky", 37);
    check::<LeakyMsm5>("leaky", 37);
    check::<LeakyHsm>("leaky", 37);
    check::<LeakyIsm>("leaky", 37);
    check::<LeakyStoreAll>("leaky", 37);
    check::<LeakySqrt>("leaky", 37);
}

#[test]
fn segmented_schedules_equal_interpreter_and_plain_bptt() {
    // Forward and backward steps alone exceed one segment's calls.
    const SEGMENT: u64 = bptt::emit::SEGMENT_CALLS as u64;
    const { assert!(LstmLong::FORWARD_STEPS + 300 > SEGMENT) };
    const { assert!(LeakyLong::FORWARD_STEPS + 300 > SEGMENT) };
    check::<LstmLong>("lstm", 300);
    check::<LeakyLong>("leaky", 300);
}

#[test]
fn consts_describe_the_schedule() {
    assert_eq!(LstmStoreAll::SEQ_LEN, 37);
    assert_eq!(LstmStoreAll::FORWARD_STEPS, 37);
    assert_eq!(
        (LstmStoreAll::TICKS_PER_STATE, LstmStoreAll::TICKS_PER_TAPE),
        (1, 3)
    );
    // Store-all keeps every tape but the last.
    assert_eq!(LstmStoreAll::CAPACITY_TICKS, 3 * 36);
    assert_eq!(LstmMsm0::CAPACITY_TICKS, 0);
    // 5% of store-all's 108 units is 5 (rounded down); fewer checkpoints
    // cost recomputation.
    const { assert!(LstmMsm5::CAPACITY_TICKS <= 5) };
    const { assert!(LstmMsm5::FORWARD_STEPS > 37) };
}

/// An LSTM's tape is 3 states: declaring alpha 2 is refused when the arena
/// is laid out, not silently over budget.
#[bptt(seq_len = 10, budget = "50%", alpha = 2)]
struct TooSmallAlpha(Lstm);
bptt_runtime::delegate_cell!(TooSmallAlpha, 0);

#[test]
fn a_cell_larger_than_its_alpha_is_refused() {
    let p = problem("lstm", 10, 1);
    let cell = TooSmallAlpha(Lstm::rebuild(&*p.cell));
    let err = cell.new_arena(&p.readout, p.batch()).unwrap_err();
    assert!(err.what.contains("alpha"), "{err}");
}

#[test]
fn an_arena_of_another_schedule_is_refused() {
    let p = problem("lstm", 37, 1);
    let msm = LstmMsm5(Lstm::rebuild(&*p.cell));
    let all = LstmStoreAll(Lstm::rebuild(&*p.cell));
    let mut arena = all.new_arena(&p.readout, p.batch()).unwrap();
    let mut grads = Gradients::zeros(&msm, &p.readout, p.batch());
    let err = msm
        .train_step(
            &p.readout,
            &mut arena,
            p.x.view(),
            p.h0.view(),
            p.targets(),
            &mut grads,
        )
        .unwrap_err();
    assert!(err.what.contains("new_arena"), "{err}");
    // The wrong length is a shape mismatch, not a panic.
    let short = problem("lstm", 36, 1);
    let mut arena = msm.new_arena(&p.readout, p.batch()).unwrap();
    let err = msm
        .train_step(
            &p.readout,
            &mut arena,
            short.x.view(),
            short.h0.view(),
            short.targets(),
            &mut grads,
        )
        .unwrap_err();
    assert!(err.what.contains("inputs"), "{err}");
}

/// The user cell's gradients (through the generated step) match central
/// finite differences, and plain SGD with them lowers the loss.
#[bptt(seq_len = 12, budget = "20%", alpha = 3, policy = "msm", name = "step")]
struct Trained(LeakyUnit);
bptt_runtime::delegate_cell!(Trained, 0);

#[test]
fn user_cell_trains_with_the_generated_step() {
    let p = problem("leaky", 12, 3);
    let mut cell = Trained(LeakyUnit::rebuild(&*p.cell));
    let mut readout = p.readout.clone();
    let mut arena = cell.new_arena(&readout, p.batch()).unwrap();
    let mut grads = Gradients::zeros(&cell, &readout, p.batch());
    let mut run = |cell: &Trained, readout: &Readout, grads: &mut Gradients| {
        let (x, h0) = (p.x.view(), p.h0.view());
        cell.step(readout, &mut arena, x, h0, p.targets(), grads)
            .unwrap()
    };
    let first = run(&cell, &readout, &mut grads);
    let analytic = grads.cell.clone();
    let eps = 1e-2f32;
    let mut scratch = Gradients::zeros(&cell, &readout, p.batch());
    for i in (0..analytic.len()).step_by(7) {
        let keep = cell.params()[i];
        cell.params_mut()[i] = keep + eps;
        let up = run(&cell, &readout, &mut scratch);
        cell.params_mut()[i] = keep - eps;
        let down = run(&cell, &readout, &mut scratch);
        cell.params_mut()[i] = keep;
        let fd = (up - down) / (2.0 * f64::from(eps));
        let g = f64::from(analytic[i]);
        assert!(
            (fd - g).abs() <= 5e-5 + 0.01 * g.abs(),
            "parameter {i}: fd {fd} analytic {g}"
        );
    }
    let mut loss = first;
    for _ in 0..100 {
        loss = run(&cell, &readout, &mut grads);
        for (w, g) in cell.params_mut().iter_mut().zip(&grads.cell) {
            *w -= 0.5 * g;
        }
        for (w, g) in readout.params_mut().iter_mut().zip(&grads.readout) {
            *w -= 0.5 * g;
        }
    }
    assert!(loss < 0.8 * first, "loss {first} -> {loss}");
}

/// An LSTM newtype planned within 19,000 bytes for `problem("lstm", 37, _)`'s
/// sizes (input 3, hidden 5, batch 3, 4 classes): one state of the batch is
/// `10 × 3 × 4` bytes, and the working set is the arena's outside the
/// checkpoints (checked against `ArenaLayout::working_bytes` below).
#[bptt(
    seq_len = 37,
    memory = 19000,
    state_bytes = 120,
    working_bytes = 16000,
    alpha = 3
)]
struct LstmWithin(Lstm);
bptt_runtime::delegate_cell!(LstmWithin, 0);

#[test]
fn a_budget_in_bytes_holds_and_trains_as_store_all() {
    let p = problem("lstm", 37, 5);
    let cell = LstmWithin(Lstm::rebuild(&*p.cell));
    let batch = p.batch();
    assert_eq!(LstmWithin::MEMORY_BYTES, 19000);
    assert_eq!(cell.state_size() * batch * 4, 120, "state_bytes");
    let layout = cell.arena_layout(&p.readout, batch).unwrap();
    assert_eq!(layout.working_bytes(), 16000, "working_bytes");
    // The arena fits, and is within 5% of the memory or one tick more of
    // checkpoints (a state, at alpha 3) would not fit.
    let bytes = 4 * layout.total() as u64;
    assert!(bytes <= LstmWithin::MEMORY_BYTES, "{bytes} bytes");
    assert!(
        bytes * 100 >= LstmWithin::MEMORY_BYTES * 95 || bytes + 120 > LstmWithin::MEMORY_BYTES,
        "{bytes} bytes"
    );
    // The library's search on the same figures chose this very plan.
    let alpha = bptt::Alpha::new(3.0).unwrap();
    let stack = |plan: &bptt::Plan| {
        let floats = bptt_runtime::stack_floats(plan.peak().0, 30, alpha.denominator());
        16000 + 4 * floats
    };
    let plan = bptt::planner::plan_within(19000, Policy::Msm, alpha, 37, 120, stack).unwrap();
    assert_eq!(plan.peak().0, LstmWithin::CAPACITY_TICKS);
    assert_eq!(plan.forward_steps(), LstmWithin::FORWARD_STEPS);
    const { assert!(LstmWithin::FORWARD_STEPS > 37) };
    // A larger batch holds more than the memory: refused with both figures.
    let err = cell.arena_layout(&p.readout, batch + 1).unwrap_err();
    assert!(err.what.contains("MEMORY_BYTES"), "{err}");
    assert_eq!(err.expected, [19000]);
    assert!(err.got[0] > 19000, "{err}");
    // Bitwise the losses and gradients of plain store-all BPTT.
    let (loss, grads) = generated_step!(&cell, &p);
    let (plain_loss, plain) = p.plain_bptt();
    assert_eq!(
        loss.to_bits(),
        plain_loss.to_bits(),
        "{loss} vs {plain_loss}"
    );
    assert!(grads.bitwise_eq(&plain), "gradients vs plain BPTT");
}

/// The README's example of a budget in bytes, as it is written there: an
/// LSTM of input 32, hidden 128, batch 8 and 16 classes.
#[bptt(
    seq_len = 1000,
    memory = "8MiB",
    state_bytes = 8192,
    working_bytes = 435_712,
    alpha = 3
)]
struct ReadmeLstm(Lstm);
bptt_runtime::delegate_cell!(ReadmeLstm, 0);

#[test]
fn the_readmes_memory_example_has_the_runtimes_sizes() {
    let mut rng = Rng::new(1);
    let cell = ReadmeLstm(Lstm::new(32, 128, &mut rng));
    let readout = Readout::new(LossKind::SoftmaxCrossEntropy, 128, 16, &mut rng);
    assert_eq!(cell.state_size() * 8 * 4, 8192, "state_bytes");
    let layout = cell.arena_layout(&readout, 8).unwrap();
    assert_eq!(layout.working_bytes(), 435_712, "working_bytes");
    assert_eq!(ReadmeLstm::MEMORY_BYTES, 8 << 20);
    let bytes = 4 * layout.total() as u64;
    assert!(bytes <= ReadmeLstm::MEMORY_BYTES, "{bytes} bytes");
    // "about a third of store-all's 24.6 MB"
    let store_all = 4 * (1000 * cell.tape_size() * 8) as u64;
    assert_eq!(store_all.div_ceil(100_000), 246, "{store_all}");
    assert!(bytes * 100 <= store_all * 35, "{bytes} of {store_all}");
}
