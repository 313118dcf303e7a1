//! Adam with global-norm gradient clipping.

/// Adam's state over one flat parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator guard.
    pub eps: f32,
    /// Updates taken so far.
    pub t: u64,
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
}

impl Adam {
    /// Adam with the usual betas for `n` parameters.
    pub fn new(lr: f32, n: usize) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One update of `params` (the concatenation of `parts`) by `grads`.
    pub fn update(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]) {
        self.t += 1;
        let t = self.t as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let step = self.lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        let mut offset = 0;
        for (p, g) in params.iter_mut().zip(grads) {
            let n = p.len();
            let (m, v) = (
                &mut self.m[offset..offset + n],
                &mut self.v[offset..offset + n],
            );
            for (((p, &g), m), v) in p.iter_mut().zip(g.iter()).zip(m).zip(v) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= step * *m / (v.sqrt() + self.eps);
            }
            offset += n;
        }
    }
}

/// Scales the gradients so that their global L2 norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_global_norm(grads: &mut [&mut [f32]], max_norm: f32) -> f32 {
    let norm = grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt() as f32;
    if norm > max_norm && norm > 0.0 {
        let scale = max_norm / norm;
        grads
            .iter_mut()
            .flat_map(|g| g.iter_mut())
            .for_each(|x| *x *= scale);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_descends_a_quadratic() {
        let mut x = vec![3.0f32, -2.0];
        let mut adam = Adam::new(0.1, 2);
        for _ in 0..500 {
            let g: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
            adam.update(&mut [&mut x], &[&g]);
        }
        assert!(x.iter().all(|v| v.abs() < 1e-2), "{x:?}");
    }

    #[test]
    fn clipping_bounds_the_norm() {
        let (mut a, mut b) = (vec![3.0f32], vec![4.0f32]);
        let norm = clip_global_norm(&mut [&mut a, &mut b], 1.0);
        assert_eq!(norm, 5.0);
        assert!((a[0] - 0.6).abs() < 1e-6 && (b[0] - 0.8).abs() < 1e-6);
        let norm = clip_global_norm(&mut [&mut a, &mut b], 10.0);
        assert!((norm - 1.0).abs() < 1e-6 && (a[0] - 0.6).abs() < 1e-6);
    }
}
