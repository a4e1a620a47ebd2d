//! Sigmoid approximations: the plaintext definition (shared with the reference trainer) and the
//! secure evaluation on shares.

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::Result;

/// Sigmoid approximations. `eval` is the plaintext function the reference trainer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sigmoid {
    /// 0.5 + x/4 (one truncation).
    Linear,
    /// clip(0.5 + x/4, 0, 1) (two secure comparisons and two multiplexers).
    ClippedLinear,
    /// 0.5 + 0.197 x − 0.004 x³ on x clipped to ±[`POLY3_RANGE`], the range where it
    /// approximates the logistic (two secure comparisons, a multiplexer and two multiplications).
    Poly3,
}

const POLY3_C1: f64 = 0.197;
const POLY3_C3: f64 = -0.004;
/// Poly3's input is clipped to ±5: beyond it the cubic runs away (0.18 off at 6, 0.97 at 8,
/// −101 at 30), so an unclipped step on a large logit sends training off to diverge.
pub const POLY3_RANGE: f64 = 5.0;

/// The true logistic function.
pub fn exact(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Sigmoid {
    pub fn eval(&self, x: f64) -> f64 {
        match self {
            Sigmoid::Linear => 0.5 + x / 4.0,
            Sigmoid::ClippedLinear => (0.5 + x / 4.0).clamp(0.0, 1.0),
            Sigmoid::Poly3 => {
                let x = x.clamp(-POLY3_RANGE, POLY3_RANGE);
                0.5 + POLY3_C1 * x + POLY3_C3 * x * x * x
            }
        }
    }

    /// (max |approx − true sigmoid|, on |x| ≤ this range), found by a dense scan (test
    /// `stated_max_errors_match_a_dense_scan`). Linear and ClippedLinear peak at |x| = 2
    /// (|1 − σ(2)| = 0.1192); ClippedLinear keeps that bound on the whole real line. Poly3 peaks
    /// near |x| = 3.9 and, clipped at ±5, keeps that bound on the whole real line too.
    pub fn max_error(&self) -> (f64, f64) {
        match self {
            Sigmoid::Linear => (0.1193, 2.0),
            Sigmoid::ClippedLinear => (0.1193, f64::INFINITY),
            Sigmoid::Poly3 => (0.0511, f64::INFINITY),
        }
    }
}

impl Engine<'_> {
    /// Secure sigmoid approximation, element-wise (results carry `frac_bits`).
    /// Linear: `0.5 + x/4` with one truncation (one round trip). Poly3: x clipped to ±5 as
    /// `x + [x>5]·(5−x) − [x<−5]·(x+5)` (one MSB extraction of `x` at two offsets,
    /// `[x > 5] = ¬[x − 5 − ulp < 0]` and `[x + 5 < 0]`, and one batched multiplexer), then
    /// `0.5 + x·(c1 + c3·x²)`, two multiplications and one public scaling. ClippedLinear:
    /// `y = 0.5 + x/4`, then `y − [y<0]·y + [y>1]·(1−y)` with one MSB extraction of `y` at two
    /// offsets (`[y < 0]`, `[y > 1] = ¬[y − 1 − ulp < 0]`) and one batched multiplexer. Every
    /// truncation is exact (`mpc` module docs for the bound). The MSB extractions
    /// ([`Engine::msb_offsets`]) run over the low `64 − f` bits: exact for every
    /// `|x|` below [`super::product_bound`] (2^30 at f = 16), the bound every product truncation
    /// already needs.
    pub fn sigmoid(&mut self, x: &[u64], approx: Sigmoid) -> Result<Vec<u64>> {
        let fp = self.fp;
        let n = x.len();
        let sign_width = 64 - fp.frac_bits;
        let half = vec![fp.encode(0.5); n];
        match approx {
            Sigmoid::Linear => {
                let quarter = self.truncate(x, 2)?;
                Ok(self.add_public(&quarter, &half))
            }
            Sigmoid::Poly3 => {
                let r = vec![fp.encode(POLY3_RANGE); n];
                let neg_x: Vec<u64> = x.iter().map(|v| v.wrapping_neg()).collect();
                let both = [self.add_public(&neg_x, &r), self.add_public(x, &r)].concat();
                // [x > 5] = ¬[x − 5 − ulp < 0] and [x < −5], both on the bank's share of x.
                let range = fp.encode(POLY3_RANGE);
                let mut beyond = self.msb_offsets(x, &[range.wrapping_add(1).wrapping_neg(), range], sign_width)?;
                self.not_bits(&mut beyond, 0, n);
                let picked = self.mux(&beyond, &both)?;
                let x = &self.sub(&self.add(x, &picked[..n]), &picked[n..]);
                let x2 = self.mul(x, x)?;
                let c3_x2 = self.mul_public(&x2, POLY3_C3)?;
                let t = self.add_public(&c3_x2, &vec![fp.encode(POLY3_C1); n]);
                let y = self.mul(&t, x)?;
                Ok(self.add_public(&y, &half))
            }
            Sigmoid::ClippedLinear => {
                let quarter = self.truncate(x, 2)?;
                let y = self.add_public(&quarter, &half);
                let neg_y: Vec<u64> = y.iter().map(|v| v.wrapping_neg()).collect();
                let one_minus_y = self.add_public(&neg_y, &vec![fp.encode(1.0); n]);
                let both = [y.as_slice(), one_minus_y.as_slice()].concat();
                // [y < 0] and [y > 1] = ¬[y − 1 − ulp < 0], both on the bank's share of y.
                let mut below =
                    self.msb_offsets(&y, &[0, fp.encode(1.0).wrapping_add(1).wrapping_neg()], sign_width)?;
                self.not_bits(&mut below, n, n);
                let picked = self.mux(&below, &both)?;
                let out = self.sub(&y, &picked[..n]);
                Ok(self.add(&out, &picked[n..]))
            }
        }
    }
}
