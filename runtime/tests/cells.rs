//! Tests of the cells and the read-out: gradients against central finite
//! differences, the bitwise contract of `forward`/`forward_tape`/`state_from_tape`,
//! the accumulate/overwrite contract of `backward`, and allocation-freedom.
//!
//! # Finite-difference tolerance
//!
//! Everything runs in f32, so a central difference `(L(θ+ε) - L(θ-ε)) / 2ε` has
//! two errors: truncation `ε²·L'''/6` (≈ 2e-5·|L'''| at ε = 1e-2, with `L'''` of
//! order 1 for these tanh/sigmoid nets) and rounding, about `|L|·1e-7 / 2ε`
//! (up to ≈ 1e-4 for the 5-step sequence losses, `|L|` ≈ 20). The losses are
//! summed in f64 and the step is the actual f32 difference of the perturbed
//! values. The check is `|fd - an| <= 3e-4 + 3e-3·|an|`: every test prints its
//! worst `|fd - an| / tol`, which was at most about 0.2 (5× room) with the
//! kernels of this crate. Every check is also run on a copy of the analytic
//! gradient with its largest entry 5% off, which must fail, so the comparison
//! can catch a real mistake (a 1% error in one LSTM or GRU gate derivative,
//! or 2% in the read-out's dh, does fail these tests).

use bptt_runtime::{
    Cell, CountingAllocator, Gru, LossKind, Lstm, Operands, Readout, Rng, Rnn, ShapeError,
    StepTarget, Targets,
};
use ndarray::{Array2, Array3, ArrayView1, ArrayView2, s};

#[global_allocator]
static HEAP: CountingAllocator = CountingAllocator::new();

/// Heap allocations that `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = CountingAllocator::this_thread();
    f();
    CountingAllocator::this_thread() - before
}

// ---------------------------------------------------------------------------
// Helpers.

#[derive(Clone, Copy, Debug)]
enum Kind {
    Rnn,
    Lstm,
    Gru,
}

const KINDS: [Kind; 3] = [Kind::Rnn, Kind::Lstm, Kind::Gru];

/// (input, hidden, batch) sizes for the gradient checks.
const SIZES: [(usize, usize, usize); 2] = [(3, 4, 2), (5, 7, 3)];

fn make(kind: Kind, input: usize, hidden: usize, rng: &mut Rng) -> Box<dyn Cell> {
    match kind {
        Kind::Rnn => Box::new(Rnn::new(input, hidden, rng)),
        Kind::Lstm => Box::new(Lstm::new(input, hidden, rng)),
        Kind::Gru => Box::new(Gru::new(input, hidden, rng)),
    }
}

fn uniform(rng: &mut Rng, rows: usize, cols: usize, lo: f32, hi: f32) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform(lo, hi))
}

fn normal(rng: &mut Rng, rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.normal())
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

const EPS: f32 = 1e-2;
const ATOL: f64 = 3e-4;
const RTOL: f64 = 3e-3;

/// Central differences of `loss` with respect to every entry of `v`.
fn central(v: &mut [f32], mut loss: impl FnMut(&[f32]) -> f64) -> Vec<f64> {
    (0..v.len())
        .map(|i| {
            let orig = v[i];
            let (up, down) = (orig + EPS, orig - EPS);
            v[i] = up;
            let lp = loss(v);
            v[i] = down;
            let lm = loss(v);
            v[i] = orig;
            (lp - lm) / f64::from(up - down)
        })
        .collect()
}

/// `Ok(worst |fd - an| / tol)` or `Err` naming the first entry out of tolerance.
fn compare(fd: &[f64], an: &[f64]) -> Result<f64, String> {
    assert_eq!(fd.len(), an.len());
    let mut worst = 0.0f64;
    for (i, (&f, &a)) in fd.iter().zip(an).enumerate() {
        let tol = ATOL + RTOL * a.abs();
        let err = (f - a).abs();
        // Written so that a NaN fails too.
        if err.is_nan() || err > tol {
            return Err(format!(
                "entry {i}: finite difference {f}, analytic {a}, tolerance {tol}"
            ));
        }
        worst = worst.max(err / tol);
    }
    Ok(worst)
}

/// Asserts that `an` matches `fd`, and that it would not with its largest entry 5% off.
fn assert_grad(label: &str, fd: &[f64], an: &[f64]) {
    match compare(fd, an) {
        Ok(worst) => println!(
            "{label}: {} entries, worst |fd - an| / tol = {worst:.3}",
            an.len()
        ),
        Err(e) => panic!("{label}: {e}"),
    }
    let (j, big) = an
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .map(|(j, &a)| (j, a))
        .unwrap();
    assert!(
        0.05 * big.abs() > 2.0 * (ATOL + RTOL * big.abs()),
        "{label}: gradient too small ({big}) for the negative control"
    );
    let mut wrong = an.to_vec();
    wrong[j] *= 1.05;
    assert!(
        compare(fd, &wrong).is_err(),
        "{label}: a 5% error in entry {j} went unnoticed"
    );
}

/// Runs `backward` with fresh zero gradients and scratch; returns (dh_prev, grads).
fn backward(
    cell: &dyn Cell,
    x: &Array2<f32>,
    tape: &Array2<f32>,
    dh: &Array2<f32>,
) -> (Array2<f32>, Vec<f32>) {
    backward_by(cell, x, tape, dh, false)
}

/// [`backward`], or with `deferred` `backward_deferred` (the executor's
/// path, the weight gradients' operands left in a one-step window).
fn backward_by(
    cell: &dyn Cell,
    x: &Array2<f32>,
    tape: &Array2<f32>,
    dh: &Array2<f32>,
    deferred: bool,
) -> (Array2<f32>, Vec<f32>) {
    let batch = x.nrows();
    let mut dh_prev = Array2::from_elem((batch, cell.state_size()), f32::NAN);
    let mut grads = vec![0.0; cell.params().len()];
    let mut scratch = Array2::from_elem((batch, cell.scratch_size()), f32::NAN);
    let (x, tape, dh) = (x.view(), tape.view(), dh.view());
    if deferred {
        let products = cell.weight_gradients();
        let mut window = vec![f32::NAN; Operands::window_floats(products, 1, batch)];
        let operands = Operands::new(&mut window, products, 1, batch, 0);
        let (dh_prev, scratch) = (dh_prev.view_mut(), scratch.view_mut());
        cell.backward_deferred(x, tape, dh, dh_prev, &mut grads, scratch, operands);
    } else {
        cell.backward(
            x,
            tape,
            dh,
            dh_prev.view_mut(),
            &mut grads,
            scratch.view_mut(),
        );
    }
    (dh_prev, grads)
}

fn forward_tape(
    cell: &dyn Cell,
    x: &Array2<f32>,
    h_prev: &Array2<f32>,
) -> (Array2<f32>, Array2<f32>) {
    let batch = x.nrows();
    let mut tape = Array2::zeros((batch, cell.tape_size()));
    let mut h = Array2::zeros((batch, cell.state_size()));
    // Scratch holds garbage on entry: it must not leak into the results.
    let mut scratch = Array2::from_elem((batch, cell.scratch_size()), f32::NAN);
    cell.forward_tape(
        x.view(),
        h_prev.view(),
        tape.view_mut(),
        h.view_mut(),
        scratch.view_mut(),
    );
    (tape, h)
}

fn forward(cell: &dyn Cell, x: &Array2<f32>, h_prev: &Array2<f32>) -> Array2<f32> {
    let mut h = Array2::zeros((x.nrows(), cell.state_size()));
    let mut scratch = Array2::from_elem((x.nrows(), cell.scratch_size()), f32::NAN);
    cell.forward(x.view(), h_prev.view(), h.view_mut(), scratch.view_mut());
    h
}

/// A random single-step problem: (cell, x, h_prev, rng), entries in [-1, 1].
fn problem(
    kind: Kind,
    input: usize,
    hidden: usize,
    batch: usize,
    seed: u64,
) -> (Box<dyn Cell>, Array2<f32>, Array2<f32>, Rng) {
    let mut rng = Rng::new(seed);
    let cell = make(kind, input, hidden, &mut rng);
    let x = uniform(&mut rng, batch, input, -1.0, 1.0);
    let h_prev = uniform(&mut rng, batch, cell.state_size(), -1.0, 1.0);
    (cell, x, h_prev, rng)
}

// ---------------------------------------------------------------------------
// (a) Single-step gradients.

/// `L = Σ w ⊙ forward(x, h_prev)`, summed in f64.
fn linear_loss(cell: &dyn Cell, x: &Array2<f32>, h_prev: &Array2<f32>, w: &Array2<f32>) -> f64 {
    let h = forward(cell, x, h_prev);
    h.iter()
        .zip(w)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

#[test]
fn single_step_gradients_match_finite_differences() {
    for kind in KINDS {
        for (n, &(input, hidden, batch)) in SIZES.iter().enumerate() {
            let (mut cell, x, mut h_prev, mut rng) =
                problem(kind, input, hidden, batch, 10 + n as u64);
            let w = uniform(&mut rng, batch, cell.state_size(), -1.0, 1.0);
            let (tape, _) = forward_tape(&*cell, &x, &h_prev);
            let (dh_prev, grads) = backward(&*cell, &x, &tape, &w);
            let label = format!("{kind:?}({input}, {hidden}) batch {batch}");

            let fd = central(h_prev.as_slice_mut().unwrap(), |v| {
                let hp = Array2::from_shape_vec(w.raw_dim(), v.to_vec()).unwrap();
                linear_loss(&*cell, &x, &hp, &w)
            });
            assert_grad(
                &format!("{label} dh_prev"),
                &fd,
                &to_f64(dh_prev.as_slice().unwrap()),
            );

            let mut p = cell.params().to_vec();
            let fd = central(&mut p, |v| {
                cell.params_mut().copy_from_slice(v);
                linear_loss(&*cell, &x, &h_prev, &w)
            });
            cell.params_mut().copy_from_slice(&p);
            assert_grad(&format!("{label} params"), &fd, &to_f64(&grads));
        }
    }
}

// ---------------------------------------------------------------------------
// (b) Store-all BPTT over 5 steps with the read-out.

const T: usize = 5;

struct Sequence {
    xs: Vec<Array2<f32>>,
    h0: Array2<f32>,
    classes: Array2<u32>,
    values: Array3<f32>,
}

impl Sequence {
    fn new(rng: &mut Rng, cell: &dyn Cell, batch: usize, out: usize) -> Self {
        let xs = (0..T)
            .map(|_| uniform(rng, batch, cell.input_size(), -1.0, 1.0))
            .collect();
        let h0 = uniform(rng, batch, cell.state_size(), -0.5, 0.5);
        let classes = Array2::from_shape_simple_fn((T, batch), || rng.below(out) as u32);
        let values = Array3::from_shape_simple_fn((T, batch, out), || rng.normal());
        Sequence {
            xs,
            h0,
            classes,
            values,
        }
    }
}

/// The sequence loss through the tape-less `forward`.
fn seq_loss(
    cell: &dyn Cell,
    ro: &Readout,
    xs: &[Array2<f32>],
    h0: &Array2<f32>,
    targets: Targets,
) -> f64 {
    let batch = h0.nrows();
    let mut h = h0.clone();
    let mut dh = Array2::zeros(h.raw_dim());
    let mut grads = vec![0.0; ro.params().len()];
    let mut scratch = Array2::zeros((batch, ro.scratch_size()));
    let mut total = 0.0;
    for (k, x) in (1..=T).zip(xs) {
        h = forward(cell, x, &h);
        total += ro.step(
            h.view(),
            targets.at(k, T),
            1.0,
            dh.view_mut(),
            &mut grads,
            scratch.view_mut(),
        );
    }
    total
}

/// Store-all BPTT: tapes forward, states rebuilt from tapes, backward through the
/// read-out and the cell. Returns (loss, cell grads, read-out grads, dL/dh0).
fn seq_grads(
    cell: &dyn Cell,
    ro: &Readout,
    xs: &[Array2<f32>],
    h0: &Array2<f32>,
    targets: Targets,
) -> (f64, Vec<f32>, Vec<f32>, Array2<f32>) {
    let batch = h0.nrows();
    let mut tapes = Vec::new();
    let mut h = h0.clone();
    for x in xs {
        let (tape, h_next) = forward_tape(cell, x, &h);
        tapes.push(tape);
        h = h_next;
    }
    let mut cell_grads = vec![0.0; cell.params().len()];
    let mut ro_grads = vec![0.0; ro.params().len()];
    let mut ro_scratch = Array2::zeros((batch, ro.scratch_size()));
    let mut scratch = Array2::zeros((batch, cell.scratch_size()));
    let mut dh = Array2::zeros(h0.raw_dim());
    let mut dh_prev = Array2::zeros(h0.raw_dim());
    let mut state = Array2::zeros(h0.raw_dim());
    let mut total = 0.0;
    for k in (1..=T).rev() {
        let tape = &tapes[k - 1];
        cell.state_from_tape(tape.view(), state.view_mut(), scratch.view_mut());
        total += ro.step(
            state.view(),
            targets.at(k, T),
            1.0,
            dh.view_mut(),
            &mut ro_grads,
            ro_scratch.view_mut(),
        );
        cell.backward(
            xs[k - 1].view(),
            tape.view(),
            dh.view(),
            dh_prev.view_mut(),
            &mut cell_grads,
            scratch.view_mut(),
        );
        std::mem::swap(&mut dh, &mut dh_prev);
    }
    (total, cell_grads, ro_grads, dh)
}

fn check_bptt(kind: Kind, loss: LossKind, final_only: bool, seed: u64) {
    let (input, hidden, batch, out) = (3, 5, 3, 4);
    let mut rng = Rng::new(seed);
    let mut cell = make(kind, input, hidden, &mut rng);
    let mut ro = Readout::new(loss, cell.output_size(), out, &mut rng);
    let seq = Sequence::new(&mut rng, &*cell, batch, out);
    let targets = match (loss, final_only) {
        (LossKind::SoftmaxCrossEntropy, _) => Targets::Classes(seq.classes.view()),
        (LossKind::SquaredError, false) => Targets::Values(seq.values.view()),
        (LossKind::SquaredError, true) => {
            Targets::FinalValues(seq.values.index_axis(ndarray::Axis(0), T - 1))
        }
    };
    let label = format!(
        "{kind:?} BPTT {loss:?}{}",
        if final_only { " (final step only)" } else { "" }
    );

    let (total, cell_grads, ro_grads, dh0) = seq_grads(&*cell, &ro, &seq.xs, &seq.h0, targets);
    // Same states (bitwise, test (c)); only the order of summing the step losses differs.
    let direct = seq_loss(&*cell, &ro, &seq.xs, &seq.h0, targets);
    assert!(
        (total - direct).abs() <= 1e-12 * direct.abs(),
        "{label}: loss {total} vs {direct}"
    );

    let mut p = cell.params().to_vec();
    let fd = central(&mut p, |v| {
        cell.params_mut().copy_from_slice(v);
        seq_loss(&*cell, &ro, &seq.xs, &seq.h0, targets)
    });
    cell.params_mut().copy_from_slice(&p);
    assert_grad(&format!("{label}: cell params"), &fd, &to_f64(&cell_grads));

    let mut p = ro.params().to_vec();
    let fd = central(&mut p, |v| {
        ro.params_mut().copy_from_slice(v);
        seq_loss(&*cell, &ro, &seq.xs, &seq.h0, targets)
    });
    ro.params_mut().copy_from_slice(&p);
    assert_grad(
        &format!("{label}: read-out params"),
        &fd,
        &to_f64(&ro_grads),
    );

    let mut h0 = seq.h0.clone();
    let fd = central(h0.as_slice_mut().unwrap(), |v| {
        let h0 = Array2::from_shape_vec(seq.h0.raw_dim(), v.to_vec()).unwrap();
        seq_loss(&*cell, &ro, &seq.xs, &h0, targets)
    });
    assert_grad(
        &format!("{label}: h0"),
        &fd,
        &to_f64(dh0.as_slice().unwrap()),
    );
}

#[test]
fn bptt_gradients_match_finite_differences_softmax() {
    for (n, kind) in KINDS.into_iter().enumerate() {
        check_bptt(kind, LossKind::SoftmaxCrossEntropy, false, 100 + n as u64);
    }
}

#[test]
fn bptt_gradients_match_finite_differences_squared_error() {
    for (n, kind) in KINDS.into_iter().enumerate() {
        check_bptt(kind, LossKind::SquaredError, false, 200 + n as u64);
        check_bptt(kind, LossKind::SquaredError, true, 300 + n as u64);
    }
}

// ---------------------------------------------------------------------------
// (c) forward, forward_tape and state_from_tape agree bitwise.

#[test]
fn forward_forward_tape_and_state_from_tape_agree_bitwise() {
    // Every stack-buffer tier of the forward (16, 128, 512 KiB), and batches of
    // several 512 KiB row blocks (96 hidden, 700 rows: 3 blocks for Lstm and Gru).
    for kind in KINDS {
        for &(input, hidden, batch) in &[(3, 4, 5), (5, 32, 100), (16, 64, 230), (8, 96, 700)] {
            let (cell, x, h0, mut rng) = problem(kind, input, hidden, batch, 7);
            let mut h = h0;
            for _ in 0..3 {
                let h_fwd = forward(&*cell, &x, &h);
                let (tape, h_tape) = forward_tape(&*cell, &x, &h);
                let mut h_rebuilt = Array2::from_elem(h.raw_dim(), f32::NAN);
                let mut scratch = Array2::zeros((batch, cell.scratch_size()));
                cell.state_from_tape(tape.view(), h_rebuilt.view_mut(), scratch.view_mut());
                let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert!(
                    bits(&h_fwd) == bits(&h_tape),
                    "{kind:?} batch {batch}: forward != forward_tape"
                );
                assert!(
                    bits(&h_fwd) == bits(&h_rebuilt),
                    "{kind:?} batch {batch}: forward != state_from_tape"
                );
                assert!(h_fwd.iter().all(|v| v.is_finite()));
                h = h_fwd + uniform(&mut rng, batch, cell.state_size(), -0.1, 0.1);
            }
        }
    }
}

/// The same batch row gives bitwise the same result whatever the batch
/// around it: batches of 16 and 700 (several row blocks, and with two or
/// more threads a row-parallel step) against each row alone, in every
/// method that writes rows. So the results cannot depend on how a step is
/// split over threads.
#[test]
fn rows_are_independent() {
    let bits = |v: ArrayView1<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for kind in KINDS {
        for batch in [16, 700] {
            let (cell, x, h, mut rng) = problem(kind, 6, 96, batch, 8);
            let dh = uniform(&mut rng, batch, cell.state_size(), -1.0, 1.0);
            let full = forward(&*cell, &x, &h);
            let (tape, _) = forward_tape(&*cell, &x, &h);
            let (full_dprev, _) = backward_by(&*cell, &x, &tape, &dh, true);
            for b in [0, 7, 8, batch / 2 - 1, batch / 2, batch - 1] {
                let row = |a: &Array2<f32>| a.slice(s![b..b + 1, ..]).to_owned();
                let one = forward(&*cell, &row(&x), &row(&h));
                assert_eq!(
                    bits(one.row(0)),
                    bits(full.row(b)),
                    "{kind:?} forward row {b}"
                );
                let (one_tape, _) = forward_tape(&*cell, &row(&x), &row(&h));
                assert_eq!(
                    bits(one_tape.row(0)),
                    bits(tape.row(b)),
                    "{kind:?} tape row {b}"
                );
                let (one_dprev, _) = backward_by(&*cell, &row(&x), &one_tape, &row(&dh), true);
                assert_eq!(
                    bits(one_dprev.row(0)),
                    bits(full_dprev.row(b)),
                    "{kind:?} dh_prev row {b}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// (d) backward adds into grads and overwrites dh_prev; scratch is only temporary.

#[test]
fn backward_accumulates_grads_and_overwrites_dh_prev() {
    for kind in KINDS {
        let (cell, x, h_prev, mut rng) = problem(kind, 4, 6, 3, 9);
        let dh = uniform(&mut rng, 3, cell.state_size(), -1.0, 1.0);
        let (tape, _) = forward_tape(&*cell, &x, &h_prev);
        let (dh_ref, g_ref) = backward(&*cell, &x, &tape, &dh);
        assert!(g_ref.iter().all(|g| g.is_finite()) && g_ref.iter().any(|&g| g != 0.0));

        // Garbage in dh_prev and scratch must not leak into the results.
        let start: Vec<f32> = (0..g_ref.len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let mut grads = start.clone();
        let mut dh_prev = Array2::from_elem((3, cell.state_size()), f32::NAN);
        let mut scratch = Array2::from_elem((3, cell.scratch_size()), f32::NAN);
        for call in 1..=2 {
            cell.backward(
                x.view(),
                tape.view(),
                dh.view(),
                dh_prev.view_mut(),
                &mut grads,
                scratch.view_mut(),
            );
            let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert!(
                bits(&dh_prev) == bits(&dh_ref),
                "{kind:?}: dh_prev depends on its old contents"
            );
            for ((&g, &s0), &r) in grads.iter().zip(&start).zip(&g_ref) {
                let want = s0 + call as f32 * r;
                assert!(
                    (g - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{kind:?} call {call}: grad {g}, want {want}"
                );
            }
            scratch.fill(f32::NAN);
            dh_prev.fill(f32::NAN);
        }

        // Twice from zero doubles.
        let mut grads = vec![0.0; g_ref.len()];
        let mut dh_prev = Array2::zeros((3, cell.state_size()));
        let mut scratch = Array2::zeros((3, cell.scratch_size()));
        for _ in 0..2 {
            cell.backward(
                x.view(),
                tape.view(),
                dh.view(),
                dh_prev.view_mut(),
                &mut grads,
                scratch.view_mut(),
            );
        }
        for (&g, &r) in grads.iter().zip(&g_ref) {
            assert!(
                (g - 2.0 * r).abs() <= 1e-6 * (1.0 + r.abs()),
                "{kind:?}: {g} != 2·{r}"
            );
        }
    }
}

#[test]
fn cells_and_readout_do_not_allocate() {
    for kind in KINDS {
        let (cell, x, h_prev, mut rng) = problem(kind, 5, 32, 70, 11);
        let batch = x.nrows();
        let ro = Readout::new(
            LossKind::SoftmaxCrossEntropy,
            cell.output_size(),
            6,
            &mut rng,
        );
        let classes: Vec<u32> = (0..batch).map(|_| rng.below(6) as u32).collect();
        let mut h = Array2::zeros((batch, cell.state_size()));
        let mut tape = Array2::zeros((batch, cell.tape_size()));
        let mut dh = Array2::zeros((batch, cell.state_size()));
        let mut dh_prev = Array2::zeros((batch, cell.state_size()));
        let mut grads = vec![0.0; cell.params().len()];
        let mut ro_grads = vec![0.0; ro.params().len()];
        let mut scratch = Array2::zeros((batch, cell.scratch_size()));
        let mut ro_scratch = Array2::zeros((batch, ro.scratch_size()));
        let mut logits = Array2::zeros((batch, 6));
        // The kernels' worker pool starts (and allocates) on first use: warm it up.
        cell.forward(x.view(), h_prev.view(), h.view_mut(), scratch.view_mut());
        let counts = [
            allocations(|| cell.forward(x.view(), h_prev.view(), h.view_mut(), scratch.view_mut())),
            allocations(|| {
                cell.forward_tape(
                    x.view(),
                    h_prev.view(),
                    tape.view_mut(),
                    h.view_mut(),
                    scratch.view_mut(),
                )
            }),
            allocations(|| cell.state_from_tape(tape.view(), h.view_mut(), scratch.view_mut())),
            allocations(|| {
                let target = StepTarget::Classes(&classes);
                ro.step(
                    h.view(),
                    target,
                    0.5,
                    dh.view_mut(),
                    &mut ro_grads,
                    ro_scratch.view_mut(),
                );
            }),
            allocations(|| ro.predict(h.view(), logits.view_mut())),
            allocations(|| {
                let (dh, dh_prev, scratch) = (dh.view(), dh_prev.view_mut(), scratch.view_mut());
                cell.backward(x.view(), tape.view(), dh, dh_prev, &mut grads, scratch);
            }),
        ];
        assert_eq!(
            counts, [0; 6],
            "{kind:?}: heap allocations of forward, forward_tape, state_from_tape, step, predict, backward"
        );
    }
}

// ---------------------------------------------------------------------------
// (e) Construction.

#[test]
fn from_params_checks_length_and_round_trips() {
    let mut rng = Rng::new(5);
    let (i, h) = (3, 4);
    let cases: [(&str, usize, usize); 4] = [
        ("Rnn", Rnn::param_count(i, h), (i + h + 1) * h),
        ("Lstm", Lstm::param_count(i, h), (i + h + 1) * 4 * h),
        ("Gru", Gru::param_count(i, h), 3 * h * (i + h) + 4 * h),
        ("Readout", Readout::param_count(h, 6), (h + 1) * 6),
    ];
    for (name, count, want) in cases {
        assert_eq!(count, want, "{name}");
        let wrong = vec![0.5; count + 1];
        let err: ShapeError = match name {
            "Rnn" => Rnn::from_params(i, h, wrong).map(|_| ()),
            "Lstm" => Lstm::from_params(i, h, wrong).map(|_| ()),
            "Gru" => Gru::from_params(i, h, wrong).map(|_| ()),
            _ => Readout::from_params(LossKind::SquaredError, h, 6, wrong).map(|_| ()),
        }
        .unwrap_err();
        assert_eq!((err.expected, err.got), (count, count + 1));
        let msg = err.to_string();
        assert!(
            msg.contains(name)
                && msg.contains(&count.to_string())
                && msg.contains(&(count + 1).to_string()),
            "{msg}"
        );
    }
    let p: Vec<f32> = (0..Lstm::param_count(i, h)).map(|_| rng.normal()).collect();
    assert_eq!(Lstm::from_params(i, h, p.clone()).unwrap().params(), &p[..]);
    let p: Vec<f32> = (0..Gru::param_count(i, h)).map(|_| rng.normal()).collect();
    assert_eq!(Gru::from_params(i, h, p.clone()).unwrap().params(), &p[..]);
    let p: Vec<f32> = (0..Rnn::param_count(i, h)).map(|_| rng.normal()).collect();
    assert_eq!(Rnn::from_params(i, h, p.clone()).unwrap().params(), &p[..]);
}

#[test]
fn sizes_alpha_and_init() {
    let mut rng = Rng::new(6);
    let (i, h) = (3, 16);
    let cells: [(Box<dyn Cell>, usize, usize, f64); 3] = [
        (Box::new(Rnn::new(i, h, &mut rng)), h, 2 * h, 2.0),
        (Box::new(Lstm::new(i, h, &mut rng)), 2 * h, 6 * h, 3.0),
        (Box::new(Gru::new(i, h, &mut rng)), h, 5 * h, 5.0),
    ];
    for (cell, state, tape, alpha) in &cells {
        assert_eq!(
            (
                cell.input_size(),
                cell.state_size(),
                cell.tape_size(),
                cell.output_size()
            ),
            (i, *state, *tape, h)
        );
        assert_eq!(cell.alpha(), *alpha);
    }
    let lstm = Lstm::new(i, h, &mut rng);
    assert_eq!(lstm.hidden_size(), h);
    let bias = &lstm.params()[(i + h) * 4 * h..];
    let k = 1.0 / (h as f32).sqrt();
    for (j, &b) in bias.iter().enumerate() {
        if (h..2 * h).contains(&j) {
            assert_eq!(b, 1.0, "forget-gate bias {j}");
        } else {
            assert!(b.abs() <= k && b != 1.0, "bias {j} = {b}");
        }
    }
    assert!(
        lstm.params()[..(i + h) * 4 * h]
            .iter()
            .all(|p| p.abs() <= k)
    );
    // Same seed, same parameters.
    assert_eq!(
        Gru::new(i, h, &mut Rng::new(1)).params(),
        Gru::new(i, h, &mut Rng::new(1)).params()
    );
}

#[test]
#[should_panic(expected = "Lstm::forward: h_prev has shape [2, 7], expected [2, 8]")]
fn shape_mismatch_names_both_shapes() {
    let cell = Lstm::new(3, 4, &mut Rng::new(1));
    let x = Array2::zeros((2, 3));
    let h_prev = Array2::zeros((2, 7));
    let mut h = Array2::zeros((2, 8));
    let mut scratch = Array2::zeros((2, cell.scratch_size()));
    cell.forward(x.view(), h_prev.view(), h.view_mut(), scratch.view_mut());
}

// ---------------------------------------------------------------------------
// The read-out on its own.

fn readout_loss(ro: &Readout, h: &Array2<f32>, target: StepTarget, scale: f32) -> f64 {
    let mut dh = Array2::zeros(h.raw_dim());
    let mut grads = vec![0.0; ro.params().len()];
    let mut scratch = Array2::zeros((h.nrows(), ro.scratch_size()));
    ro.step(
        h.view(),
        target,
        scale,
        dh.view_mut(),
        &mut grads,
        scratch.view_mut(),
    )
}

#[test]
fn readout_gradients_match_finite_differences() {
    let (batch, state, n_in, out, scale) = (4, 9, 6, 5, 0.7);
    for (n, kind) in [LossKind::SoftmaxCrossEntropy, LossKind::SquaredError]
        .into_iter()
        .enumerate()
    {
        let mut rng = Rng::new(40 + n as u64);
        let mut ro = Readout::new(kind, n_in, out, &mut rng);
        let mut h = normal(&mut rng, batch, state);
        let classes: Vec<u32> = (0..batch).map(|_| rng.below(out) as u32).collect();
        let values = normal(&mut rng, batch, out);
        let target = |kind| match kind {
            LossKind::SoftmaxCrossEntropy => StepTarget::Classes(&classes),
            LossKind::SquaredError => StepTarget::Values(values.view()),
        };

        let dh_start = normal(&mut rng, batch, state);
        let mut dh = dh_start.clone();
        let mut grads = vec![0.0; ro.params().len()];
        // A wider scratch than needed is fine.
        let mut scratch = Array2::zeros((batch, ro.scratch_size() + 3));
        let loss = ro.step(
            h.view(),
            target(kind),
            scale,
            dh.view_mut(),
            &mut grads,
            scratch.view_mut(),
        );
        assert_eq!(loss, readout_loss(&ro, &h, target(kind), scale));
        // Columns past in_size are untouched.
        assert_eq!(dh.slice(s![.., n_in..]), dh_start.slice(s![.., n_in..]));
        let dh_an = (&dh - &dh_start).slice(s![.., ..n_in]).to_owned();

        let label = format!("Readout {kind:?}");
        let fd = central(h.as_slice_mut().unwrap(), |v| {
            let h = ArrayView2::from_shape((batch, state), v)
                .unwrap()
                .to_owned();
            readout_loss(&ro, &h, target(kind), scale)
        });
        let fd_in: Vec<f64> = fd.chunks(state).flat_map(|r| r[..n_in].to_vec()).collect();
        assert!(
            fd.chunks(state)
                .all(|r| r[n_in..].iter().all(|&d| d == 0.0))
        );
        assert_grad(
            &format!("{label} dh"),
            &fd_in,
            &to_f64(&dh_an.into_raw_vec_and_offset().0),
        );

        let mut p = ro.params().to_vec();
        let fd = central(&mut p, |v| {
            ro.params_mut().copy_from_slice(v);
            readout_loss(&ro, &h, target(kind), scale)
        });
        assert_grad(&format!("{label} params"), &fd, &to_f64(&grads));
    }
}

#[test]
fn readout_loss_values() {
    // One row, logits [1, 2, 3] from h = [1], W = [1 2 3], b = 0.
    let ro = Readout::from_params(
        LossKind::SoftmaxCrossEntropy,
        1,
        3,
        vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0],
    )
    .unwrap();
    let h = Array2::from_elem((1, 1), 1.0f32);
    let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
    for class in 0..3u32 {
        let loss = readout_loss(&ro, &h, StepTarget::Classes(&[class]), 1.0);
        assert!(
            (loss - (lse - f64::from(class + 1))).abs() < 1e-6,
            "class {class}: {loss}"
        );
    }
    // Large logits do not overflow (the max is subtracted).
    let ro = Readout::from_params(
        LossKind::SoftmaxCrossEntropy,
        1,
        2,
        vec![1000.0, 0.0, 0.0, 0.0],
    )
    .unwrap();
    let loss = readout_loss(&ro, &h, StepTarget::Classes(&[1]), 1.0);
    assert!((loss - 1000.0).abs() < 1e-3, "{loss}");

    // Squared error: 0.5·((1-0.5)² + (2+1)²)·scale, batch of two identical rows.
    let ro = Readout::from_params(LossKind::SquaredError, 1, 2, vec![1.0, 2.0, 0.0, 0.0]).unwrap();
    let h = Array2::from_elem((2, 1), 1.0f32);
    let t = Array2::from_shape_vec((2, 2), vec![0.5, -1.0, 0.5, -1.0]).unwrap();
    let loss = readout_loss(&ro, &h, StepTarget::Values(t.view()), 2.0);
    assert!(
        (loss - 2.0 * 2.0 * 0.5 * (0.25 + 9.0)).abs() < 1e-5,
        "{loss}"
    );

    let mut out = Array2::zeros((2, 2));
    ro.predict(h.view(), out.view_mut());
    assert_eq!(
        out,
        Array2::from_shape_vec((2, 2), vec![1.0, 2.0, 1.0, 2.0]).unwrap()
    );
}

#[test]
fn readout_none_target_touches_nothing() {
    let mut rng = Rng::new(3);
    let ro = Readout::new(LossKind::SquaredError, 3, 2, &mut rng);
    let h = normal(&mut rng, 2, 5);
    let mut dh = Array2::from_elem((2, 5), 7.0f32);
    let mut grads = vec![3.0; ro.params().len()];
    let mut scratch = Array2::from_elem((2, 2), 9.0f32);
    let loss = ro.step(
        h.view(),
        StepTarget::None,
        1.0,
        dh.view_mut(),
        &mut grads,
        scratch.view_mut(),
    );
    assert_eq!(loss, 0.0);
    assert!(
        dh.iter().all(|&v| v == 7.0)
            && grads.iter().all(|&v| v == 3.0)
            && scratch.iter().all(|&v| v == 9.0)
    );
}

#[test]
fn targets_index_steps() {
    let classes = Array2::from_shape_fn((3, 2), |(t, b)| (10 * t + b) as u32);
    let values = Array3::from_shape_fn((3, 2, 1), |(t, b, _)| (10 * t + b) as f32);
    let last = Array2::from_elem((2, 1), 5.0f32);
    let c = Targets::Classes(classes.view());
    assert_eq!(c.len(), Some(3));
    assert!(matches!(c.at(2, 3), StepTarget::Classes(&[10, 11])));
    let v = Targets::Values(values.view());
    assert!(matches!(v.at(3, 3), StepTarget::Values(a) if a[[1, 0]] == 21.0));
    let f = Targets::FinalValues(last.view());
    assert_eq!(f.len(), None);
    assert!(matches!(f.at(1, 4), StepTarget::None));
    assert!(matches!(f.at(4, 4), StepTarget::Values(a) if a[[0, 0]] == 5.0));
}
