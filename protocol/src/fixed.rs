//! Fixed-point encoding of reals into the ring Z_2^64 (two's complement).
//!
//! A real `x` is represented by `round(x · 2^f)` as a signed 64-bit integer, `f = frac_bits`.
//! Products of two encodings carry `2f` fractional bits and are truncated back by `f` bits
//! (see `mpc` for the truncation protocol and its error).

use serde::{Deserialize, Serialize};

/// Fixed-point encoding of reals into Z_2^64 (two's complement), `frac_bits` fractional bits.
/// Invariant: `frac_bits` is in 8..=24, also for values decoded from a peer's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedFixedPoint")]
pub struct FixedPoint {
    pub frac_bits: u32,
}

/// The wire form of [`FixedPoint`] before its range check.
#[derive(Deserialize)]
struct UncheckedFixedPoint {
    frac_bits: u32,
}

impl TryFrom<UncheckedFixedPoint> for FixedPoint {
    type Error = String;
    fn try_from(raw: UncheckedFixedPoint) -> Result<FixedPoint, String> {
        FixedPoint::try_new(raw.frac_bits)
    }
}

impl FixedPoint {
    /// Panics unless `frac_bits` is in 8..=24 (a local programming error, not peer input).
    pub fn new(frac_bits: u32) -> FixedPoint {
        FixedPoint::try_new(frac_bits).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Checks the range; the error names the fix.
    pub fn try_new(frac_bits: u32) -> Result<FixedPoint, String> {
        if (8..=24).contains(&frac_bits) {
            Ok(FixedPoint { frac_bits })
        } else {
            Err(format!("fixed-point frac_bits must be in 8..=24, got {frac_bits}"))
        }
    }

    /// The scale 2^f as a real.
    pub fn scale(&self) -> f64 {
        (1u64 << self.frac_bits) as f64
    }

    /// `round(x · 2^f)` as two's complement. `|x|` must be below `2^(62-f)`; larger magnitudes
    /// saturate (and NaN encodes as 0), so a bad input can never wrap silently.
    pub fn encode(&self, x: f64) -> u64 {
        let limit = (1u64 << 62) as f64;
        let v = (x * self.scale()).round();
        let v = if v.is_nan() { 0.0 } else { v.clamp(-limit, limit) };
        (v as i64) as u64
    }

    /// `(v as i64) / 2^f`.
    pub fn decode(&self, v: u64) -> f64 {
        (v as i64) as f64 / self.scale()
    }

    pub fn encode_all(&self, xs: &[f64]) -> Vec<u64> {
        xs.iter().map(|&x| self.encode(x)).collect()
    }

    pub fn decode_all(&self, vs: &[u64]) -> Vec<f64> {
        vs.iter().map(|&v| self.decode(v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_an_out_of_range_precision_is_an_error_not_a_later_panic() {
        let ok: FixedPoint = crate::channel::decode("fp", &[16]).unwrap();
        assert_eq!(ok, FixedPoint::new(16));
        // The fuzzer's input: frac_bits = 239 as a bincode varint.
        let err = crate::channel::decode::<FixedPoint>("fp", &[0xda, 0xef]).unwrap_err();
        assert!(err.to_string().contains("8..=24"), "{err}");
    }

    #[test]
    fn encode_decode_round_trips_within_half_ulp() {
        let fp = FixedPoint::new(16);
        for &x in &[0.0, 1.0, -1.0, 1.61803, -2.5e6, 1e-6, -123.456] {
            let back = fp.decode(fp.encode(x));
            assert!((back - x).abs() <= 0.5 / fp.scale() + 1e-12, "{x} -> {back}");
        }
        assert_eq!(fp.encode(-1.0), (-(1i64 << 16)) as u64);
        assert_eq!(fp.decode_all(&fp.encode_all(&[0.5, -0.25])), vec![0.5, -0.25]);
    }

    #[test]
    fn out_of_range_saturates_instead_of_wrapping() {
        let fp = FixedPoint::new(20);
        assert!(fp.decode(fp.encode(1e30)) > 0.0);
        assert!(fp.decode(fp.encode(-1e30)) < 0.0);
        assert_eq!(fp.encode(f64::NAN), 0);
    }

    #[test]
    #[should_panic(expected = "frac_bits")]
    fn frac_bits_outside_range_panics() {
        FixedPoint::new(30);
    }
}
