//! A small seeded pseudo-random generator: xoshiro256** seeded through SplitMix64.
//!
//! Every method uses only integer arithmetic, IEEE-754 `+ - * /` and `sqrt` (all
//! correctly rounded), so a seed gives the same stream on every platform.

/// A deterministic pseudo-random generator (xoshiro256**, seeded by SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

/// One SplitMix64 step: advances `state` and returns the next output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose xoshiro256** state is four SplitMix64 outputs of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    /// The next 64 uniformly distributed bits (xoshiro256**).
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform `f32` in `[lo, hi)` (24 random bits scaled into the interval).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32);
        let v = lo + (hi - lo) * u;
        // Rounding of `lo + (hi - lo) * u` can reach `hi`; keep the interval half-open.
        if v < hi { v } else { lo }
    }

    /// A uniform integer in `0..n` without modulo bias (Lemire's method). Panics if `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below: n must be positive");
        let n = n as u64;
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as usize;
            }
        }
    }

    /// A standard normal `f32` (Marsaglia's polar method, in `f64`).
    pub fn normal(&mut self) -> f32 {
        loop {
            let u = self.unit_f64() * 2.0 - 1.0;
            let v = self.unit_f64() * 2.0 - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return (u * (-2.0 * ln(s) / s).sqrt()) as f32;
            }
        }
    }

    /// A uniform `f64` in `[0, 1)` with 53 random bits.
    fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Natural logarithm of a positive, finite, normal `x`, from IEEE arithmetic alone
/// (platform `ln` implementations may differ in the last bit).
///
/// `x = m·2^e` with `m` in `[√½, √2)`, then `ln m = 2·atanh(s)`, `s = (m-1)/(m+1)`,
/// `|s| < 0.172`, whose odd series converges to `f64` precision within 12 terms.
fn ln(x: f64) -> f64 {
    debug_assert!(x.is_normal() && x > 0.0);
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    for k in 0..12 {
        sum += term / (2 * k + 1) as f64;
        term *= s2;
    }
    2.0 * sum + e as f64 * std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference() {
        // Reference outputs of SplitMix64 seeded with 0.
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn xoshiro_matches_reference() {
        // xoshiro256** from state [1, 2, 3, 4]: first output rotl(2·5, 7)·9 = 11520.
        let mut r = Rng { s: [1, 2, 3, 4] };
        assert_eq!(r.next_u64(), 11520);
        assert_eq!(r.next_u64(), 0);
        assert_eq!(r.next_u64(), 1_509_978_240);
    }

    #[test]
    fn streams_are_deterministic_and_seed_dependent() {
        let a: Vec<u64> = (0..8)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..8)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..8)
            .scan(Rng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn uniform_and_below_stay_in_range() {
        let mut r = Rng::new(1);
        let mut counts = [0usize; 5];
        for _ in 0..10_000 {
            let u = r.uniform(-0.5, 0.25);
            assert!((-0.5..0.25).contains(&u), "{u}");
            counts[r.below(5)] += 1;
        }
        for c in counts {
            assert!((1800..2200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn ln_matches_std() {
        for &x in &[
            1e-300,
            1e-10,
            0.1,
            0.5,
            std::f64::consts::FRAC_1_SQRT_2,
            std::f64::consts::SQRT_2,
            0.99999,
            1.0,
            1.5,
            2.0,
            12345.678,
        ] {
            let (a, b) = (ln(x), x.ln());
            assert!(
                (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1.0),
                "ln({x}): {a} vs {b}"
            );
        }
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = Rng::new(3);
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|_| f64::from(r.normal())).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
