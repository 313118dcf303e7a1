//! Branch-free activations that LLVM inlines and vectorises.
//!
//! The constants are public because the JIT (`bptt::jit::cell`) emits these
//! functions operation by operation, with the same constants, to compute
//! bitwise the same values.
//!
//! Plain scalar code with no `target_feature` and no `mul_add`: Rust never
//! contracts `a * b + c`, so every call site computes bitwise the same value
//! whether or not LLVM vectorises it. Out-of-range inputs are handled by
//! compare-and-select clamps, which vectorise as blends.

/// `log2(e)`.
pub const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split in two (Cody–Waite): the high part has 9 significant bits so
/// that `n * LN2_HI` is exact for `|n| <= 2^15`.
pub const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 - LN2_HI`.
pub const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 * 2^23`: adding and subtracting it rounds to the nearest integer.
pub const ROUND: f32 = 12_582_912.0;
/// Above this `exp` overflows to `+inf` (`ln(f32::MAX) ≈ 88.72`).
pub const EXP_HI: f32 = 88.8;
/// Below this `exp` underflows to `+0` (`ln(2^-150) ≈ -103.97`).
pub const EXP_LO: f32 = -104.0;

/// Cephes `expf` minimax polynomial for `e^r`, highest coefficient first:
/// `e^r ≈ 1 + r + r²·p(r)`.
pub const EXP_POLY: [f32; 6] = [
    1.987_569_2e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// Cephes `tanhf` odd minimax polynomial, highest coefficient first:
/// `tanh(x) ≈ x + x³·p(x²)` for `|x| < TANH_SMALL`. (Adding a negative
/// coefficient is bitwise subtracting its magnitude: IEEE `a - c` is
/// `a + (-c)`.)
pub const TANH_POLY: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_909e-2,
    -5.373_971_6e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];

/// `p(x)` by Horner's rule, one multiplication and one addition per step.
#[inline(always)]
fn horner(coefficients: &[f32], x: f32) -> f32 {
    let mut p = coefficients[0];
    for &c in &coefficients[1..] {
        p = p * x + c;
    }
    p
}

/// `e^x`, inlined and vectorisable: relative error below 1e-7 for normal
/// results (8.2e-8 measured over every f32).
///
/// Saturates without NaN: `exp(x) = +inf` for `x > 88.73` (including `+inf`)
/// and `+0` for `x < -103.98` (including `-inf`); subnormal results are
/// rounded once. NaN propagates.
#[inline]
pub fn exp(x: f32) -> f32 {
    // Comparisons with NaN are false, so NaN passes through both clamps.
    let x = if x > EXP_HI { EXP_HI } else { x };
    let x = if x < EXP_LO { EXP_LO } else { x };
    // n = round(x / ln 2), |n| <= 151; its integer value sits in the low
    // mantissa bits of `t`.
    let t = x * LOG2E + ROUND;
    let nf = t - ROUND;
    let n = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    // r = x - n ln 2 in [-ln2/2, ln2/2].
    let r = (x - nf * LN2_HI) - nf * LN2_LO;
    let y = horner(&EXP_POLY, r) * (r * r) + r + 1.0;
    // Scale by 2^n in two exact-or-once-rounded steps so that n = 128 still
    // overflows correctly and n < -126 gives a correctly scaled subnormal.
    let n1 = n >> 1;
    let n2 = n.wrapping_sub(n1);
    y * pow2(n1) * pow2(n2)
}

/// `2^n` for `-126 <= n <= 127`, built from the exponent bits.
#[inline]
fn pow2(n: i32) -> f32 {
    f32::from_bits((n.wrapping_add(127) as u32) << 23)
}

/// Logistic sigmoid `1 / (1 + e^-x)`, inlined and vectorisable: absolute
/// error below 1e-7 (8.9e-8 measured over every f32). Exactly `0` for
/// `x < -88.73` and `1` for `x > 17`; NaN only for NaN.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Below this `|x|`, `tanh` uses its odd polynomial.
pub const TANH_SMALL: f32 = 0.625;

/// Hyperbolic tangent, inlined and vectorisable: odd (`tanh(-x) = -tanh(x)`
/// bitwise, `tanh(±0) = ±0`), exactly `±1` for `|x| > 9.1`; absolute error
/// below 1e-7 and relative error below 1.5e-7 (7.9e-8 and 1.42e-7 measured
/// over every f32); NaN only for NaN.
#[inline]
pub fn tanh(x: f32) -> f32 {
    let ax = x.abs();
    // |x| < 0.625: Cephes `tanhf` odd minimax polynomial, relative accuracy near 0.
    let z = ax * ax;
    let small = horner(&TANH_POLY, z) * z * ax + ax;
    // Otherwise 1 - 2 / (e^{2|x|} + 1), which reaches 1 exactly (and at +inf).
    let large = 1.0 - 2.0 / (exp(2.0 * ax) + 1.0);
    let t = if ax < TANH_SMALL { small } else { large };
    t.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dense grid over `[-lim, lim]` plus special and huge values.
    fn grid(lim: f32, steps: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..=steps)
            .map(|i| -lim + 2.0 * lim * i as f32 / steps as f32)
            .collect();
        for s in [1.0f32, -1.0] {
            for x in [
                0.0,
                f32::MIN_POSITIVE,
                1e-30,
                1e-10,
                1e-7,
                1e-4,
                0.3,
                0.624_999_9,
                0.625,
                9.0,
                20.0,
                80.0,
                88.7,
                88.72,
                88.73,
                100.0,
                103.9,
                104.0,
                200.0,
                1e10,
                f32::MAX,
                f32::INFINITY,
            ] {
                v.push(s * x);
            }
        }
        // Every float in [0.5, 2) at a stride, to cover mantissa patterns.
        v.extend(
            (0..(1u32 << 23))
                .step_by(97)
                .map(|i| f32::from_bits(0x3F00_0000 + i)),
        );
        v
    }

    fn max_err(f: fn(f32) -> f32, g: fn(f64) -> f64, xs: &[f32], relative: bool) -> f64 {
        let mut worst = 0.0f64;
        for &x in xs {
            let (y, want) = (f(x) as f64, g(x as f64));
            assert!(!y.is_nan(), "NaN at x = {x}");
            if want.is_infinite() || want == 0.0 {
                assert_eq!(y, want, "at x = {x}");
                continue;
            }
            let e = (y - want).abs() / if relative { want.abs() } else { 1.0 };
            worst = worst.max(e);
        }
        worst
    }

    #[test]
    fn exp_relative_error() {
        let xs: Vec<f32> = grid(87.0, 400_000)
            .into_iter()
            .filter(|x| x.abs() < 87.0)
            .collect();
        let e = max_err(exp, f64::exp, &xs, true);
        assert!(e < 1e-7, "exp max relative error {e:e}");
    }

    #[test]
    fn exp_saturates() {
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(88.73), f32::INFINITY);
        assert_eq!(exp(f32::MAX), f32::INFINITY);
        assert!(exp(88.72).is_finite());
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-f32::MAX), 0.0);
        assert_eq!(exp(-104.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        // Subnormal results keep the right magnitude.
        for x in [-88.0f32, -90.0, -95.0, -100.0, -103.0] {
            let (y, want) = (exp(x) as f64, (x as f64).exp());
            assert!(
                (y - want).abs() <= 1.5e-45 + 3e-7 * want,
                "exp({x}) = {y:e}, want {want:e}"
            );
        }
    }

    #[test]
    fn sigmoid_absolute_error() {
        let e = max_err(
            sigmoid,
            |x| 1.0 / (1.0 + (-x).exp()),
            &grid(30.0, 600_000),
            false,
        );
        assert!(e <= 1e-7, "sigmoid max abs error {e:e}");
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid(20.0), 1.0);
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_error_oddness_and_limits() {
        let xs = grid(12.0, 600_000);
        let abs = max_err(tanh, f64::tanh, &xs, false);
        let rel = max_err(tanh, f64::tanh, &xs, true);
        assert!(abs <= 1e-7, "tanh max abs error {abs:e}");
        assert!(rel <= 1.5e-7, "tanh max relative error {rel:e}");
        for &x in &xs {
            assert_eq!(tanh(-x).to_bits(), (-tanh(x)).to_bits(), "odd at {x}");
            assert!(tanh(x).abs() <= 1.0);
        }
        assert_eq!(tanh(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh(1e-30), 1e-30);
        for x in [9.2f32, 20.0, 1e10, f32::MAX, f32::INFINITY] {
            assert_eq!(tanh(x), 1.0, "at {x}");
            assert_eq!(tanh(-x), -1.0, "at -{x}");
        }
        assert!(tanh(f32::NAN).is_nan());
    }
}
