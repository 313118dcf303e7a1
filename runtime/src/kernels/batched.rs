//! Scalar functions the cell language's loops call besides the activations
//! of [`act`](super::act): the natural logarithm and softplus, branch-free
//! and vectorisable like them.
//!
//! The constants are public because the cell JIT (`bptt::jit::cell`) emits
//! these functions operation by operation, with the same constants in the
//! same order, to compute bitwise the same values. Plain scalar code, no
//! `mul_add`: every call site computes the same bits.

use super::act::{LN2_HI, LN2_LO, exp};

/// Cephes `logf` minimax polynomial, highest coefficient first:
/// `log(1 + f) ≈ f - f²/2 + f³·p(f)` for `f` in `[√½ - 1, √2 - 1)`.
pub const LOG_POLY: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_5e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];

/// `√½`: mantissas below it are doubled so that `f` stays near zero.
pub const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// `2^23`, which scales a subnormal into the normal range exactly.
pub const SUBNORMAL_SCALE: f32 = 8_388_608.0;

/// The natural logarithm, inlined and vectorisable (Cephes `logf`):
/// relative error about 1e-7. `log(0) = -inf`, `log(+inf) = +inf`, NaN for
/// negative numbers, `log(NaN)` the same NaN; subnormals are scaled
/// exactly first.
#[inline(always)]
pub fn log(x: f32) -> f32 {
    let tiny = x < f32::MIN_POSITIVE;
    let xs = if tiny { x * SUBNORMAL_SCALE } else { x };
    // x = m · 2^e with m in [0.5, 1).
    let bits = xs.to_bits();
    let e = (((bits >> 23) & 0xff) as i32 - 126) as f32;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < SQRT_HALF;
    let e = if small { e - 1.0 } else { e };
    let e = if tiny { e - 23.0 } else { e };
    let f = if small { m + m - 1.0 } else { m - 1.0 };
    let z = f * f;
    let mut p = LOG_POLY[0];
    for &c in &LOG_POLY[1..] {
        p = p * f + c;
    }
    let y = p * f * z;
    let y = y + e * LN2_LO;
    let y = y - 0.5 * z;
    let r = f + y;
    let r = r + e * LN2_HI;
    let r = if x < 0.0 { f32::NAN } else { r };
    let r = if x == 0.0 { f32::NEG_INFINITY } else { r };
    let r = if x == f32::INFINITY { f32::INFINITY } else { r };
    // A NaN is passed on as it is, so that every NaN an expression of
    // these functions meets has one payload and the result's bits do not
    // depend on the operand order of an addition or product.
    if x.is_nan() { x } else { r }
}

/// `log(1 + e^x)`, computed as `max(x, 0) + log1p(e^-|x|)` so that it
/// neither overflows for large `x` nor loses `e^x` for very negative `x`:
/// `log1p(u - 1)` is taken as `log(u) · (v / (u - 1))` with `u = 1 + v`,
/// which is exact where `u` rounds (and `v` itself where `u == 1`).
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    let v = exp(-x.abs());
    let u = 1.0 + v;
    let log1p = if u == 1.0 {
        v
    } else {
        log(u) * (v / (u - 1.0))
    };
    let relu = if x > 0.0 { x } else { 0.0 };
    relu + log1p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 1021st f32 plus special values.
    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (0..u32::MAX).step_by(1021).map(f32::from_bits).collect();
        v.extend([
            0.0,
            -0.0,
            1.0,
            f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            f32::INFINITY,
        ]);
        v
    }

    #[test]
    fn log_is_accurate_and_handles_special_values() {
        let mut worst = 0.0f64;
        for x in inputs() {
            let got = log(x);
            if x.is_nan() || x < 0.0 {
                assert!(got.is_nan(), "log({x:e}) = {got:e}");
                continue;
            }
            let want = f64::from(x).ln();
            if want.is_infinite() {
                assert_eq!(f64::from(got), want, "log({x:e})");
                continue;
            }
            worst = worst.max((f64::from(got) - want).abs() / want.abs().max(1e-30));
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
    }

    #[test]
    fn softplus_is_accurate_from_tiny_to_huge() {
        let mut worst = 0.0f64;
        for i in -2000..=2000 {
            let x = i as f32 * 0.05;
            let want = if x > 30.0 {
                f64::from(x)
            } else {
                f64::from(x).exp().ln_1p()
            };
            let got = f64::from(softplus(x));
            // Relative where the result is a normal f32 (a subnormal's
            // spacing alone is a large part of it), else absolute.
            let scale = want.max(f64::from(f32::MIN_POSITIVE));
            worst = worst.max((got - want).abs() / scale);
        }
        assert!(worst < 5e-7, "relative error {worst:e}");
        assert_eq!(softplus(f32::INFINITY), f32::INFINITY);
        assert_eq!(softplus(f32::NEG_INFINITY), 0.0);
        assert!(softplus(f32::NAN).is_nan());
    }
}
