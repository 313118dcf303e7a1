//! A fused loop's operations as CLIF on bundles of `f32x4` vectors, the
//! activations inline and operation by operation the same as
//! `bptt_runtime::kernels::{exp, sigmoid, tanh}` (same constants, same
//! order, no fused multiply-add), so every lane is bitwise what the Rust
//! function returns, NaN, infinities, zeros and subnormals included.
//!
//! Rust's compare-and-select clamps become a lane mask from `fcmp` selecting
//! with `bitselect`; `to_bits`/`from_bits` are bit casts; `abs` and
//! `copysign` are masks on the sign bit, which is exactly what the Rust
//! functions do.
//!
//! A [`Bundle`] holds several independent vectors (groups of four columns);
//! every operation is emitted once per vector before the next operation, so
//! the vectors' long dependency chains (an `exp` is some thirty dependent
//! operations) interleave in the instruction stream and overlap in the CPU.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::FunctionBuilder;

use bptt_runtime::kernels::act::{
    EXP_HI, EXP_LO, EXP_POLY, LN2_HI, LN2_LO, LOG2E, ROUND, TANH_POLY, TANH_SMALL,
};
use bptt_runtime::kernels::batched::{LOG_POLY, SQRT_HALF, SUBNORMAL_SCALE};

use crate::cell_lang::{Binary, Unary};

/// The sign bit of an `f32`.
const SIGN: u32 = 0x8000_0000;

/// One value per vector of columns, all of the same type (`f32x4`, or
/// `i32x4` for bit patterns).
pub(super) type Bundle = Vec<Value>;

/// Emits operations on bundles of `n` vectors.
pub(super) struct Vectors<'a, 'f> {
    /// Where the code goes.
    pub b: &'a mut FunctionBuilder<'f>,
    /// Vectors per bundle.
    pub n: usize,
}

/// Lane-wise two-operand instructions on bundles.
macro_rules! lanewise {
    ($($op:ident),*) => {$(
        fn $op(&mut self, x: &[Value], y: &[Value]) -> Bundle {
            self.zip(x, y, |b, x, y| b.ins().$op(x, y))
        }
    )*};
}

impl Vectors<'_, '_> {
    /// `f` applied to each vector.
    fn map(&mut self, x: &[Value], f: impl Fn(&mut FunctionBuilder<'_>, Value) -> Value) -> Bundle {
        x.iter().map(|&x| f(self.b, x)).collect()
    }

    /// `f` applied to each pair of vectors.
    fn zip(
        &mut self,
        x: &[Value],
        y: &[Value],
        f: impl Fn(&mut FunctionBuilder<'_>, Value, Value) -> Value,
    ) -> Bundle {
        x.iter().zip(y).map(|(&x, &y)| f(self.b, x, y)).collect()
    }

    lanewise!(fadd, fsub, fmul, fdiv, iadd, isub, band, bor);

    /// `c` in every lane of every vector.
    pub fn splat(&mut self, c: f32) -> Bundle {
        let c = self.b.ins().f32const(c);
        vec![self.b.ins().splat(types::F32X4, c); self.n]
    }

    /// The integer `c` in every lane of every `i32x4`.
    fn splat_int(&mut self, c: u32) -> Bundle {
        let c = self.b.ins().iconst(types::I32, i64::from(c));
        vec![self.b.ins().splat(types::I32X4, c); self.n]
    }

    /// The same bits as another type: `f32::to_bits` or `f32::from_bits`
    /// per lane.
    fn cast(&mut self, ty: Type, x: &[Value]) -> Bundle {
        self.map(x, |b, x| b.ins().bitcast(ty, MemFlagsData::new(), x))
    }

    /// `if x cc y { then } else { other }` per lane.
    fn select_if(
        &mut self,
        cc: FloatCC,
        (x, y): (&[Value], &[Value]),
        then: &[Value],
        other: &[Value],
    ) -> Bundle {
        let mask = self.zip(x, y, |b, x, y| b.ins().fcmp(cc, x, y));
        let mask = self.cast(types::F32X4, &mask);
        (0..self.n)
            .map(|i| self.b.ins().bitselect(mask[i], then[i], other[i]))
            .collect()
    }

    /// `f(a)`.
    pub fn unary(&mut self, f: Unary, a: &[Value]) -> Bundle {
        match f {
            Unary::Neg => self.map(a, |b, a| b.ins().fneg(a)),
            Unary::Sigmoid => self.sigmoid(a),
            Unary::Tanh => self.tanh(a),
            Unary::Exp => self.exp(a),
            // `if a > 0.0 { a } else { 0.0 }`.
            Unary::Relu => {
                let zero = self.splat(0.0);
                self.select_if(FloatCC::GreaterThan, (a, &zero), a, &zero)
            }
            Unary::Sqrt => self.map(a, |b, a| b.ins().sqrt(a)),
            Unary::Abs => self.map(a, |b, a| b.ins().fabs(a)),
            Unary::Log => self.log(a),
            Unary::Softplus => self.softplus(a),
        }
    }

    /// `f(x, y)`.
    pub fn binary(&mut self, f: Binary, x: &[Value], y: &[Value]) -> Bundle {
        match f {
            Binary::Add => self.fadd(x, y),
            Binary::Sub => self.fsub(x, y),
            Binary::Mul => self.fmul(x, y),
            // `if y > 0.0 { x } else { 0.0 }`.
            Binary::ReluGrad => {
                let zero = self.splat(0.0);
                self.select_if(FloatCC::GreaterThan, (y, &zero), x, &zero)
            }
            Binary::Div => self.fdiv(x, y),
            Binary::Max => self.select_if(FloatCC::GreaterThan, (x, y), x, y),
            Binary::Min => self.select_if(FloatCC::LessThan, (x, y), x, y),
            Binary::Greater => {
                let (one, zero) = (self.splat(1.0), self.splat(0.0));
                self.select_if(FloatCC::GreaterThan, (x, y), &one, &zero)
            }
        }
    }

    /// The polynomial with `coefficients` (highest first) in `r`, by
    /// Horner's rule as the runtime evaluates it.
    fn horner(&mut self, coefficients: &[f32], r: &[Value]) -> Bundle {
        let mut p = self.splat(coefficients[0]);
        for &c in &coefficients[1..] {
            p = self.fmul(&p, r);
            let c = self.splat(c);
            p = self.fadd(&p, &c);
        }
        p
    }

    /// `bptt_runtime::kernels::exp`.
    fn exp(&mut self, x: &[Value]) -> Bundle {
        // Comparisons with NaN are false, so NaN passes through both clamps.
        let hi = self.splat(EXP_HI);
        let x = self.select_if(FloatCC::GreaterThan, (x, &hi), &hi, x);
        let lo = self.splat(EXP_LO);
        let x = self.select_if(FloatCC::LessThan, (&x, &lo), &lo, &x);
        // t = x * LOG2E + ROUND; nf = t - ROUND; n = t.to_bits() - ROUND.to_bits().
        let log2e = self.splat(LOG2E);
        let round = self.splat(ROUND);
        let t = self.fmul(&x, &log2e);
        let t = self.fadd(&t, &round);
        let nf = self.fsub(&t, &round);
        let t_bits = self.cast(types::I32X4, &t);
        let round_bits = self.splat_int(ROUND.to_bits());
        let n = self.isub(&t_bits, &round_bits);
        // r = (x - nf * LN2_HI) - nf * LN2_LO.
        let ln2_hi = self.splat(LN2_HI);
        let ln2_lo = self.splat(LN2_LO);
        let hi_part = self.fmul(&nf, &ln2_hi);
        let r = self.fsub(&x, &hi_part);
        let lo_part = self.fmul(&nf, &ln2_lo);
        let r = self.fsub(&r, &lo_part);
        // p = ((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5.
        let p = self.horner(&EXP_POLY, &r);
        // y = p * (r * r) + r + 1.0.
        let r2 = self.fmul(&r, &r);
        let y = self.fmul(&p, &r2);
        let y = self.fadd(&y, &r);
        let one = self.splat(1.0);
        let y = self.fadd(&y, &one);
        // y * pow2(n >> 1) * pow2(n - (n >> 1)).
        let n1 = self.map(&n, |b, n| b.ins().sshr_imm_u(n, 1));
        let n2 = self.isub(&n, &n1);
        let s1 = self.pow2(&n1);
        let s2 = self.pow2(&n2);
        let y = self.fmul(&y, &s1);
        self.fmul(&y, &s2)
    }

    /// `f32::from_bits((n + 127) << 23)` per lane, wrapping.
    fn pow2(&mut self, n: &[Value]) -> Bundle {
        let bias = self.splat_int(127);
        let e = self.iadd(n, &bias);
        let e = self.map(&e, |b, e| b.ins().ishl_imm_u(e, 23));
        self.cast(types::F32X4, &e)
    }

    /// `bptt_runtime::kernels::log`.
    fn log(&mut self, x: &[Value]) -> Bundle {
        // xs = if x < MIN_POSITIVE { x * 2^23 } else { x }.
        let min = self.splat(f32::MIN_POSITIVE);
        let scale = self.splat(SUBNORMAL_SCALE);
        let scaled = self.fmul(x, &scale);
        let xs = self.select_if(FloatCC::LessThan, (x, &min), &scaled, x);
        // e = (((bits >> 23) & 0xff) - 126) as f32; m = (bits & 0x7fffff) | 0x3f000000.
        let bits = self.cast(types::I32X4, &xs);
        let shifted = self.map(&bits, |b, v| b.ins().ushr_imm_u(v, 23));
        let byte = self.splat_int(0xff);
        let biased = self.band(&shifted, &byte);
        let bias = self.splat_int(126);
        let e_int = self.isub(&biased, &bias);
        let e = self.map(&e_int, |b, v| b.ins().fcvt_from_sint(types::F32X4, v));
        let mantissa = self.splat_int(0x007f_ffff);
        let half = self.splat_int(0x3f00_0000);
        let m_bits = self.band(&bits, &mantissa);
        let m_bits = self.bor(&m_bits, &half);
        let m = self.cast(types::F32X4, &m_bits);
        // small = m < SQRT_HALF: e - 1 and 2m - 1, else e and m - 1.
        let sqrt_half = self.splat(SQRT_HALF);
        let one = self.splat(1.0);
        let e_less = self.fsub(&e, &one);
        let e = self.select_if(FloatCC::LessThan, (&m, &sqrt_half), &e_less, &e);
        let sub = self.splat(23.0);
        let e_tiny = self.fsub(&e, &sub);
        let e = self.select_if(FloatCC::LessThan, (x, &min), &e_tiny, &e);
        let twice = self.fadd(&m, &m);
        let twice = self.fsub(&twice, &one);
        let once = self.fsub(&m, &one);
        let f = self.select_if(FloatCC::LessThan, (&m, &sqrt_half), &twice, &once);
        // y = p(f) · f · z + e · LN2_LO - 0.5 · z; r = f + y + e · LN2_HI.
        let z = self.fmul(&f, &f);
        let p = self.horner(&LOG_POLY, &f);
        let y = self.fmul(&p, &f);
        let y = self.fmul(&y, &z);
        let lo = self.splat(LN2_LO);
        let elo = self.fmul(&e, &lo);
        let y = self.fadd(&y, &elo);
        let point5 = self.splat(0.5);
        let hz = self.fmul(&point5, &z);
        let y = self.fsub(&y, &hz);
        let r = self.fadd(&f, &y);
        let hi = self.splat(LN2_HI);
        let ehi = self.fmul(&e, &hi);
        let r = self.fadd(&r, &ehi);
        // NaN for negatives, -inf at zero, +inf at +inf, a NaN passed on.
        let zero = self.splat(0.0);
        let nan = self.splat(f32::NAN);
        let r = self.select_if(FloatCC::LessThan, (x, &zero), &nan, &r);
        let neg_inf = self.splat(f32::NEG_INFINITY);
        let r = self.select_if(FloatCC::Equal, (x, &zero), &neg_inf, &r);
        let inf = self.splat(f32::INFINITY);
        let r = self.select_if(FloatCC::Equal, (x, &inf), &inf, &r);
        self.select_if(FloatCC::NotEqual, (x, x), x, &r)
    }

    /// `bptt_runtime::kernels::softplus`: `max(x, 0) + log1p(exp(-|x|))`.
    fn softplus(&mut self, x: &[Value]) -> Bundle {
        let ax = self.map(x, |b, x| b.ins().fabs(x));
        let neg = self.map(&ax, |b, x| b.ins().fneg(x));
        let v = self.exp(&neg);
        let one = self.splat(1.0);
        let u = self.fadd(&one, &v);
        let lu = self.log(&u);
        let um1 = self.fsub(&u, &one);
        let q = self.fdiv(&v, &um1);
        let scaled = self.fmul(&lu, &q);
        let log1p = self.select_if(FloatCC::Equal, (&u, &one), &v, &scaled);
        let zero = self.splat(0.0);
        let relu = self.select_if(FloatCC::GreaterThan, (x, &zero), x, &zero);
        self.fadd(&relu, &log1p)
    }

    /// `bptt_runtime::kernels::sigmoid`: `1 / (1 + exp(-x))`.
    fn sigmoid(&mut self, x: &[Value]) -> Bundle {
        let neg = self.map(x, |b, x| b.ins().fneg(x));
        let e = self.exp(&neg);
        let one = self.splat(1.0);
        let d = self.fadd(&one, &e);
        self.fdiv(&one, &d)
    }

    /// `bptt_runtime::kernels::tanh`.
    fn tanh(&mut self, x: &[Value]) -> Bundle {
        // ax = |x|: the bits without the sign.
        let x_bits = self.cast(types::I32X4, x);
        let magnitude = self.splat_int(!SIGN);
        let ax_bits = self.band(&x_bits, &magnitude);
        let ax = self.cast(types::F32X4, &ax_bits);
        // small = p * z * ax + ax with z = ax * ax.
        let z = self.fmul(&ax, &ax);
        let p = self.horner(&TANH_POLY, &z);
        let small = self.fmul(&p, &z);
        let small = self.fmul(&small, &ax);
        let small = self.fadd(&small, &ax);
        // large = 1 - 2 / (exp(2 * ax) + 1).
        let two = self.splat(2.0);
        let one = self.splat(1.0);
        let ax2 = self.fmul(&two, &ax);
        let e = self.exp(&ax2);
        let d = self.fadd(&e, &one);
        let q = self.fdiv(&two, &d);
        let large = self.fsub(&one, &q);
        let limit = self.splat(TANH_SMALL);
        let t = self.select_if(FloatCC::LessThan, (&ax, &limit), &small, &large);
        // t.copysign(x): the bits of |t| with the sign of x.
        let t_bits = self.cast(types::I32X4, &t);
        let t_bits = self.band(&t_bits, &magnitude);
        let sign = self.splat_int(SIGN);
        let x_sign = self.band(&x_bits, &sign);
        let bits = self.bor(&t_bits, &x_sign);
        self.cast(types::F32X4, &bits)
    }
}
