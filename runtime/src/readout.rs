//! The per-step loss: a linear read-out of the state's first features followed by
//! softmax cross-entropy or squared error, and the targets that drive it.

use std::fmt;

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, Axis};

use crate::Rng;
use crate::elementwise::{GateBlock, gather_cols};
use crate::kernels::exp;
use crate::packed::PackedWeights;
use crate::shape::{rows, rows_mut, scratch_rows};

/// A flat parameter vector of the wrong length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// What the parameters are for, e.g. `"Lstm(input 3, hidden 4)"`.
    pub what: String,
    /// The length that the sizes imply.
    pub expected: usize,
    /// The length that was given.
    pub got: usize,
}

impl ShapeError {
    /// `Ok` when `got == expected`, else the error naming both lengths.
    pub fn check(what: impl FnOnce() -> String, expected: usize, got: usize) -> Result<(), Self> {
        if got == expected {
            Ok(())
        } else {
            Err(ShapeError {
                what: what(),
                expected,
                got,
            })
        }
    }
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {} parameters, got {}",
            self.what, self.expected, self.got
        )
    }
}

impl std::error::Error for ShapeError {}

/// The loss that a [`Readout`] applies to its outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Softmax over the outputs, then the negative log-likelihood (in nats) of a
    /// target class; takes [`StepTarget::Classes`].
    SoftmaxCrossEntropy,
    /// `0.5 · Σ (output - target)²`; takes [`StepTarget::Values`].
    SquaredError,
}

/// The target of one step for every batch row.
#[derive(Clone, Copy, Debug)]
pub enum StepTarget<'a> {
    /// No loss at this step.
    None,
    /// One class per batch row (for [`LossKind::SoftmaxCrossEntropy`]).
    Classes(&'a [u32]),
    /// `[batch, out]` values (for [`LossKind::SquaredError`]).
    Values(ArrayView2<'a, f32>),
}

/// Targets for a whole sequence, indexed by step `k = 1..=T`.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// `[T, batch]` classes: a loss at every step.
    Classes(ArrayView2<'a, u32>),
    /// `[T, batch, out]` values: a loss at every step.
    Values(ArrayView3<'a, f32>),
    /// `[batch, out]` values: a loss at the last step `T` only.
    FinalValues(ArrayView2<'a, f32>),
}

impl<'a> Targets<'a> {
    /// The sequence length `T` that the targets fix, `None` for
    /// [`Targets::FinalValues`] (which fits any length).
    pub fn len(&self) -> Option<usize> {
        match self {
            Targets::Classes(c) => Some(c.nrows()),
            Targets::Values(v) => Some(v.len_of(Axis(0))),
            Targets::FinalValues(_) => None,
        }
    }

    /// `true` when the targets fix a sequence length of 0.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The target of step `k` (`1..=t`) of a sequence of length `t`.
    ///
    /// Panics if `k` is outside `1..=t`, if `t` differs from [`Targets::len`], or
    /// if a row of [`Targets::Classes`] is not contiguous.
    pub fn at(&self, k: usize, t: usize) -> StepTarget<'a> {
        assert!(
            (1..=t).contains(&k),
            "Targets::at: step {k} outside 1..={t}"
        );
        if let Some(len) = self.len() {
            assert!(
                len == t,
                "Targets::at: targets hold {len} steps, sequence has {t}"
            );
        }
        match *self {
            Targets::Classes(c) => StepTarget::Classes(
                c.index_axis_move(Axis(0), k - 1)
                    .to_slice()
                    .expect("Targets::Classes: rows must be contiguous"),
            ),
            Targets::Values(v) => StepTarget::Values(v.index_axis_move(Axis(0), k - 1)),
            Targets::FinalValues(v) if k == t => StepTarget::Values(v),
            Targets::FinalValues(_) => StepTarget::None,
        }
    }
}

/// A linear read-out `y = h[:, ..in_size]·W + b` with its loss.
///
/// Parameters (and gradients): `W [in_size × out_size]` row-major, then
/// `b [out_size]`.
#[derive(Clone, Debug)]
pub struct Readout {
    kind: LossKind,
    in_size: usize,
    out_size: usize,
    params: Vec<f32>,
    /// `W` and `Wᵀ` packed for the products.
    packed: PackedWeights,
}

impl Readout {
    /// Floats of the parameters of a read-out of these sizes.
    pub fn param_count(in_size: usize, out_size: usize) -> usize {
        (in_size + 1) * out_size
    }

    /// A read-out with `W` and `b` drawn from `uniform(-1/√in, 1/√in)`.
    pub fn new(kind: LossKind, in_size: usize, out_size: usize, rng: &mut Rng) -> Self {
        Self::check_out(out_size);
        let k = 1.0 / (in_size.max(1) as f32).sqrt();
        let params = (0..Self::param_count(in_size, out_size))
            .map(|_| rng.uniform(-k, k))
            .collect();
        Self::with(kind, in_size, out_size, params)
    }

    /// A read-out with the given parameters, or an error if their length is not
    /// [`Readout::param_count`].
    pub fn from_params(
        kind: LossKind,
        in_size: usize,
        out_size: usize,
        params: Vec<f32>,
    ) -> Result<Self, ShapeError> {
        ShapeError::check(
            || format!("Readout(in {in_size}, out {out_size})"),
            Self::param_count(in_size, out_size),
            params.len(),
        )?;
        Self::check_out(out_size);
        Ok(Self::with(kind, in_size, out_size, params))
    }

    fn with(kind: LossKind, in_size: usize, out_size: usize, params: Vec<f32>) -> Self {
        Readout {
            kind,
            in_size,
            out_size,
            params,
            packed: PackedWeights::new(Self::block_of(in_size, out_size).packings().into()),
        }
    }

    fn check_out(out_size: usize) {
        assert!(out_size > 0, "Readout: the output size must be positive");
    }

    /// Features read from the front of each state row.
    pub fn in_size(&self) -> usize {
        self.in_size
    }

    /// Outputs per batch row.
    pub fn out_size(&self) -> usize {
        self.out_size
    }

    /// The loss.
    pub fn kind(&self) -> LossKind {
        self.kind
    }

    /// The flat parameters: `W [in × out]` row-major, then `b [out]`.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The flat parameters, mutable.
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.packed.invalidate();
        &mut self.params
    }

    /// Floats of the packed copies of `W` and `Wᵀ` it keeps (as
    /// [`Cell::packed_floats`](crate::Cell::packed_floats)).
    pub fn packed_floats(&self) -> usize {
        self.packed.floats()
    }

    /// Floats of scratch per batch row that [`Readout::step`] needs.
    pub fn scratch_size(&self) -> usize {
        Self::scratch_size_of(self.in_size, self.out_size)
    }

    /// Floats of scratch per batch row of a read-out of these sizes (its
    /// [`Readout::scratch_size`]).
    pub fn scratch_size_of(in_size: usize, out_size: usize) -> usize {
        out_size + in_size
    }

    /// `y = h·W + b` as a gate block whose "hidden" input is the state's front.
    fn block(&self) -> GateBlock {
        Self::block_of(self.in_size, self.out_size)
    }

    fn block_of(in_size: usize, out_size: usize) -> GateBlock {
        GateBlock {
            offset: 0,
            input: 0,
            hidden: in_size,
            width: out_size,
        }
    }

    fn check_state(&self, what: &str, h: &ArrayView2<f32>) {
        assert!(
            h.ncols() >= self.in_size,
            "{what}: h has shape {:?}, expected [batch, >= {}] (the read-out's input size)",
            h.shape(),
            self.in_size
        );
    }

    /// The loss of one step.
    ///
    /// `h` is the full state `[batch, state_size]`; the read-out uses its first
    /// `in_size` columns. Returns `scale · Σ_rows loss`; adds `scale · dLoss/dh`
    /// into the first `in_size` columns of `dh` (`[batch, state_size]`) and
    /// `scale · dLoss/dparams` into `grads`. `scratch` is `[batch, >= scratch_size]`
    /// (logits, and a contiguous copy of `h[:, ..in_size]` when
    /// `state_size > in_size`). All arrays are contiguous row-major; the products
    /// run on the matrix kernels. [`StepTarget::None`] returns 0 and touches
    /// nothing. Does not allocate.
    ///
    /// Panics if the target does not fit the loss kind or the shapes.
    pub fn step(
        &self,
        h: ArrayView2<f32>,
        target: StepTarget<'_>,
        scale: f32,
        dh: ArrayViewMut2<f32>,
        grads: &mut [f32],
        scratch: ArrayViewMut2<f32>,
    ) -> f64 {
        const WHAT: &str = "Readout::step";
        if let StepTarget::None = target {
            return 0.0;
        }
        let batch = h.nrows();
        self.check_state(WHAT, &h);
        assert!(
            dh.shape() == h.shape(),
            "{WHAT}: dh has shape {:?}, expected {:?} (the shape of h)",
            dh.shape(),
            h.shape()
        );
        assert!(
            grads.len() == self.params.len(),
            "{WHAT}: grads has {} floats, expected {}",
            grads.len(),
            self.params.len()
        );
        match (self.kind, target) {
            (LossKind::SoftmaxCrossEntropy, StepTarget::Classes(c)) => assert!(
                c.len() == batch,
                "{WHAT}: {} classes, expected one per batch row ({batch})",
                c.len()
            ),
            (LossKind::SquaredError, StepTarget::Values(v)) => assert!(
                v.shape() == [batch, self.out_size],
                "{WHAT}: target values have shape {:?}, expected [{batch}, {}]",
                v.shape(),
                self.out_size
            ),
            (kind, _) => panic!("{WHAT}: target kind does not fit the loss {kind:?}"),
        }

        let (state, n_in, n_out) = (h.ncols(), self.in_size, self.out_size);
        let h = rows(WHAT, "h", h, batch, state);
        let dh = rows_mut(WHAT, "dh", dh, batch, state);
        let (y, h_front) =
            scratch_rows(WHAT, scratch, batch, n_out + n_in).split_at_mut(batch * n_out);
        // h[:, ..in_size] as a contiguous matrix: the state itself, or a copy.
        let hc: &[f32] = if state == n_in {
            h
        } else {
            gather_cols(h, state, 0..n_in, h_front);
            h_front
        };
        let block = self.block();
        let packs = self.packed.get(&self.params);
        block.pre(&self.params, &packs, 0, batch, &[], hc, y);

        // Overwrite each row of y with scale · dLoss/dy and add up the losses.
        let mut total = 0.0f64;
        for (b, yb) in y.chunks_exact_mut(n_out).enumerate() {
            total += match target {
                StepTarget::Classes(c) => softmax_xent(yb, c[b] as usize),
                StepTarget::Values(v) => {
                    let mut loss = 0.0f64;
                    for (yo, &t) in yb.iter_mut().zip(v.row(b)) {
                        *yo -= t;
                        loss += f64::from(*yo) * f64::from(*yo);
                    }
                    0.5 * loss
                }
                StepTarget::None => unreachable!(),
            };
            for yo in yb.iter_mut() {
                *yo *= scale;
            }
        }
        block.add_grads(batch, &[], hc, y, grads);
        if state == n_in {
            block.add_dh(&packs, 0, batch, y, dh);
        } else {
            h_front.fill(0.0);
            block.add_dh(&packs, 0, batch, y, h_front);
            for (d, g) in dh.chunks_exact_mut(state).zip(h_front.chunks_exact(n_in)) {
                for (d, g) in d.iter_mut().zip(g) {
                    *d += g;
                }
            }
        }
        f64::from(scale) * total
    }

    /// The outputs (logits for [`LossKind::SoftmaxCrossEntropy`], predicted values
    /// for [`LossKind::SquaredError`]) of the state `h` (`[batch, >= in_size]`)
    /// into `out` (`[batch, out_size]`). Both are contiguous row-major; when
    /// `state_size > in_size` the rows go through the kernels one at a time.
    pub fn predict(&self, h: ArrayView2<f32>, out: ArrayViewMut2<f32>) {
        const WHAT: &str = "Readout::predict";
        self.check_state(WHAT, &h);
        assert!(
            out.shape() == [h.nrows(), self.out_size],
            "{WHAT}: out has shape {:?}, expected [{}, {}]",
            out.shape(),
            h.nrows(),
            self.out_size
        );
        let (batch, state) = h.dim();
        let h = rows(WHAT, "h", h, batch, state);
        let out = rows_mut(WHAT, "out", out, batch, self.out_size);
        let packs = self.packed.get(&self.params);
        if state == self.in_size {
            self.block()
                .pre(&self.params, &packs, 0, batch, &[], h, out);
        } else {
            // No scratch for a contiguous copy of h[:, ..in_size]: one row at a time.
            for (hb, yb) in h
                .chunks_exact(state)
                .zip(out.chunks_exact_mut(self.out_size))
            {
                self.block()
                    .pre(&self.params, &packs, 0, 1, &[], &hb[..self.in_size], yb);
            }
        }
    }
}

/// Overwrites the logits `y` with `softmax(y) - onehot(class)` and returns the
/// cross-entropy `logsumexp(y) - y[class]` in nats (stable: the max is subtracted).
fn softmax_xent(y: &mut [f32], class: usize) -> f64 {
    assert!(
        class < y.len(),
        "Readout::step: class {class} out of range 0..{}",
        y.len()
    );
    let max = y.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let target_logit = y[class];
    let mut sum = 0.0f32;
    for yo in y.iter_mut() {
        *yo = exp(*yo - max);
        sum += *yo;
    }
    let inv = 1.0 / sum;
    for yo in y.iter_mut() {
        *yo *= inv;
    }
    y[class] -= 1.0;
    f64::from(sum).ln() + f64::from(max) - f64::from(target_logit)
}
