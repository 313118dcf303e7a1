//! The per-step loss: a linear read-out of the state's first features followed by
//! softmax cross-entropy or squared error, and the targets that drive it.

use std::fmt;

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, Axis};

use crate::Rng;
use crate::kernels::exp;

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
    pub(crate) fn check(
        what: impl FnOnce() -> String,
        expected: usize,
        got: usize,
    ) -> Result<(), Self> {
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
        Readout {
            kind,
            in_size,
            out_size,
            params,
        }
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
        Ok(Readout {
            kind,
            in_size,
            out_size,
            params,
        })
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
        &mut self.params
    }

    /// Floats of scratch per batch row that [`Readout::step`] needs.
    pub fn scratch_size(&self) -> usize {
        self.out_size
    }

    fn weights(&self) -> &[f32] {
        &self.params[..self.in_size * self.out_size]
    }

    fn bias(&self) -> &[f32] {
        &self.params[self.in_size * self.out_size..]
    }

    /// `y = h_row[..in]·W + b` for one row.
    fn row_outputs(&self, h_row: &[f32], y: &mut [f32]) {
        y.copy_from_slice(self.bias());
        for (&hi, w) in h_row[..self.in_size]
            .iter()
            .zip(self.weights().chunks_exact(self.out_size))
        {
            for (yo, &wo) in y.iter_mut().zip(w) {
                *yo += hi * wo;
            }
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
    /// `scale · dLoss/dparams` into `grads`. `scratch` is `[batch, >= scratch_size]`.
    /// [`StepTarget::None`] returns 0 and touches nothing. Does not allocate.
    ///
    /// Panics if the target does not fit the loss kind or the shapes.
    pub fn step(
        &self,
        h: ArrayView2<f32>,
        target: StepTarget<'_>,
        scale: f32,
        mut dh: ArrayViewMut2<f32>,
        grads: &mut [f32],
        mut scratch: ArrayViewMut2<f32>,
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
        assert!(
            scratch.nrows() == batch && scratch.ncols() >= self.out_size,
            "{WHAT}: scratch has shape {:?}, expected [{batch}, >= {}]",
            scratch.shape(),
            self.out_size
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

        let (n_in, n_out) = (self.in_size, self.out_size);
        let (gw, gb) = grads.split_at_mut(n_in * n_out);
        let mut total = 0.0f64;
        for b in 0..batch {
            let h_row = row(WHAT, "h", h.row(b).to_slice());
            let y = &mut row_mut(WHAT, "scratch", scratch.row_mut(b).into_slice())[..n_out];
            self.row_outputs(h_row, y);
            // Overwrite y with dLoss/dy and add the row's loss.
            total += match target {
                StepTarget::Classes(c) => softmax_xent(y, c[b] as usize),
                StepTarget::Values(v) => {
                    let mut loss = 0.0f64;
                    for (yo, &t) in y.iter_mut().zip(v.row(b)) {
                        *yo -= t;
                        loss += f64::from(*yo) * f64::from(*yo);
                    }
                    0.5 * loss
                }
                StepTarget::None => unreachable!(),
            };
            for yo in y.iter_mut() {
                *yo *= scale;
            }
            let y = &*y;
            let dh_row = &mut row_mut(WHAT, "dh", dh.row_mut(b).into_slice())[..n_in];
            for ((dhi, &hi), (w, g)) in dh_row.iter_mut().zip(h_row).zip(
                self.weights()
                    .chunks_exact(n_out)
                    .zip(gw.chunks_exact_mut(n_out)),
            ) {
                let mut s = 0.0f32;
                for ((&wo, go), &yo) in w.iter().zip(g.iter_mut()).zip(y) {
                    s += wo * yo;
                    *go += hi * yo;
                }
                *dhi += s;
            }
            for (go, &yo) in gb.iter_mut().zip(y) {
                *go += yo;
            }
        }
        f64::from(scale) * total
    }

    /// The outputs (logits for [`LossKind::SoftmaxCrossEntropy`], predicted values
    /// for [`LossKind::SquaredError`]) of the state `h` (`[batch, >= in_size]`)
    /// into `out` (`[batch, out_size]`).
    pub fn predict(&self, h: ArrayView2<f32>, mut out: ArrayViewMut2<f32>) {
        const WHAT: &str = "Readout::predict";
        self.check_state(WHAT, &h);
        assert!(
            out.shape() == [h.nrows(), self.out_size],
            "{WHAT}: out has shape {:?}, expected [{}, {}]",
            out.shape(),
            h.nrows(),
            self.out_size
        );
        for b in 0..h.nrows() {
            let y = row_mut(WHAT, "out", out.row_mut(b).into_slice());
            self.row_outputs(row(WHAT, "h", h.row(b).to_slice()), y);
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

fn row<'a>(what: &str, name: &str, r: Option<&'a [f32]>) -> &'a [f32] {
    r.unwrap_or_else(|| panic!("{what}: rows of {name} must be contiguous"))
}

fn row_mut<'a>(what: &str, name: &str, r: Option<&'a mut [f32]>) -> &'a mut [f32] {
    r.unwrap_or_else(|| panic!("{what}: rows of {name} must be contiguous"))
}
