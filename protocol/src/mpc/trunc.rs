//! Exact truncation of shared values, and the range check for opened values.
//!
//! [`Engine::truncate`] divides shared values by `2^k` (rounding down, at most 1 ulp low) with
//! no failure probability, provided the true value satisfies `|x| < 2^62` (ring units, i.e. before
//! truncating: for a product of two fixed-point values with `f` fractional bits that is a real
//! magnitude below [`product_bound`] `= 2^(62 − 2f)`, e.g. 2^14 at f = 24, 2^30 at f = 16).
//!
//! Protocol. The gov adds `2^62` to its share, so `x' = x + 2^62 ∈ (0, 2^63)`: its top bit is 0.
//! With shares `g` (gov) and `h` (bank), `g + h = x' + w·2^64` over the integers, and since `x'`
//! has top bit 0 the wrap is `w = a ∨ b = a + b − ab` for the top bits `a = msb(g)`, `b = msb(h)`
//! (both 1: the sum is ≥ 2^64; exactly one: without a wrap the sum would be ≥ 2^63 > `x'`).
//! Then `⌊x'/2^k⌋ = ⌊g/2^k⌋ + ⌊h/2^k⌋ − w·2^(64−k) + c` with the carry `c ∈ {0, 1}` of the low
//! `k` bits (ignored: the result is `⌊x/2^k⌋ − c`). The product `ab` is needed only modulo
//! `2^k` (it is scaled by `2^(64−k)`): one correlated OT per element in `Z_2^k`, the gov COT
//! sender with correlation `a`, the bank receiver with choice `b`. Each party outputs
//! `⌊own/2^k⌋ − 2^(64−k)·(own top bit) + 2^(64−k)·(COT share)`, and the gov subtracts
//! `2^(62−k)`.
//!
//! What each party learns: nothing. `a` and `b` are functions of the party's own share and stay
//! with it; the COT shows the gov only the bank's IKNP message (independent of `b`) and the bank
//! only corrections masked by pads it cannot compute (see `cot`); each output share alone is
//! uniform (the COT share is uniform mod `2^k` and fills the top `k` bits). Cost: one OT (16 B)
//! plus `k` bits of correction per element, one round trip.
//!
//! Outside the bound the result is wrong, but never silently small: for `|x| ≥ 2^62` the output
//! is `⌊(x + 2^62 mod 2^64)/2^k⌋ − 2^(62−k) − c` plus 0 or `−2^(64−k)`, of magnitude at least
//! `2^(62−k) − 1`; an opened sum of a few truncation outputs is right (±1 ulp each) or off by a
//! nonzero multiple of `2^(64−k)`. So [`check_range`] with `max_abs` at most half of
//! [`product_bound`], on an opened value whose true magnitude is below that, reports an
//! overflow instead of passing a wrong result.

use super::Engine;
use super::cot::{CotRecv, CotSend, low_mask};
use crate::fixed::FixedPoint;
use crate::{Error, InputError, Result, Role};

/// Values with `|x| < 2^TRUNC_BOUND_BITS` (ring units) are truncated exactly.
pub const TRUNC_BOUND_BITS: u32 = 62;

/// The largest real magnitude (exclusive) of a product of two `fp` values that the engine
/// truncates exactly: `2^(62 − 2f)` (the product carries `2f` fractional bits).
pub fn product_bound(fp: FixedPoint) -> f64 {
    2f64.powi(TRUNC_BOUND_BITS as i32 - 2 * fp.frac_bits as i32)
}

/// Checks opened fixed-point values against a public bound: an error unless every `|v| <
/// max_abs`. Use it on every opened result of engine arithmetic, with the value's natural bound
/// (e.g. for logits) and at most half of [`product_bound`] (module docs: an overflowed
/// truncation lands outside it). The message names `what` and the fix, never a value or a
/// position (it may reach the peer).
pub fn check_range(what: &str, values: &[u64], fp: FixedPoint, max_abs: f64) -> Result<()> {
    let limit = max_abs * fp.scale();
    match values.iter().filter(|&&v| (v as i64).unsigned_abs() as f64 >= limit).count() {
        0 => Ok(()),
        n => Err(Error::Input(InputError::Data(format!(
            "{what}: {n} of {} opened values are outside ±{max_abs}, the range in which the fixed-point \
             computation is exact at frac_bits = {}: it overflowed; use a smaller frac_bits (e.g. 16) or \
             inputs of smaller magnitude",
            values.len(),
            fp.frac_bits
        )))),
    }
}

/// One party's state between the two local halves of [`Engine::lift_truncate`]
/// ([`Engine::trunc_start`], [`Engine::trunc_finish`]): its share mod `2^ring` (offset added at
/// the gov) and its top bit, the COT's correlation (at `cot_sender`) or choice (at the other).
pub(super) struct TruncStart {
    pub own: Vec<u64>,
    pub top: Vec<u64>,
    ring: u32,
    bits: u32,
    pub cot_sender: Role,
}

impl TruncStart {
    /// Ring of the COT for `a·b`: it is needed mod `2^(64 − ring + bits)`.
    pub fn cot_ring(&self) -> u32 {
        64 - self.ring + self.bits
    }
}

impl Engine<'_> {
    /// Shares of `⌊x/2^bits⌋` or `⌊x/2^bits⌋ − 1` for each shared `x` with `|x| < 2^62`, with no
    /// failure probability (module docs: protocol, what each party learns, what happens outside
    /// the bound). `bits` in `0..=62` (0: returned unchanged, no message). One round trip.
    pub fn truncate(&mut self, x: &[u64], bits: u32) -> Result<Vec<u64>> {
        self.lift_truncate(x, 64, bits, Role::Gov)
    }

    /// [`Engine::truncate`] of values given by shares mod `2^ring` (the low `ring` bits of each
    /// `x`; higher bits are ignored): shares in `Z_2^64` of `⌊v/2^bits⌋` or one less, for each
    /// value with `|v| < 2^(ring−2)`. `ring` in `3..=64`, `bits` in `0..=ring−2`; `bits = 0` is
    /// [`Engine::lift`]. Outside the bound the result may be off by a multiple of
    /// `2^(ring−bits)` (ulps of the output), depending on the random shares.
    ///
    /// Protocol: the module docs' with `2^(ring−2)` for the offset and `ring` for 64: the gov
    /// adds `2^(ring−2)` to its share mod `2^ring`, so the sum of the shares is
    /// `T = v + 2^(ring−2) + 2^ring·w` with `w = a ∨ b` (top bits `a`, `b` of the shares); `ab`
    /// is needed mod `2^(64−ring+bits)` (it is scaled by `2^(ring−bits)`), one COT per element
    /// (`cot_sender` with its top bit as correlation, the other party receiver with its top bit
    /// as choice; callers pick the direction that saves a flight). Each party outputs
    /// `⌊own/2^bits⌋ − 2^(ring−bits)·(own top bit) + 2^(ring−bits)·(COT share)`, and the gov
    /// subtracts `2^(ring−2−bits)`.
    ///
    /// What each party learns: nothing (as for [`Engine::truncate`]); each output share alone is
    /// uniform. Bytes: one OT (16 B) plus `64 − ring + bits` bits per element, one round trip
    /// (`ring = 64`, `bits = 0`: returned unchanged, no message).
    pub(super) fn lift_truncate(&mut self, x: &[u64], ring: u32, bits: u32, cot_sender: Role) -> Result<Vec<u64>> {
        let t = self.trunc_start(x, ring, bits, cot_sender)?;
        if t.own.is_empty() || (ring == 64 && bits == 0) {
            return Ok(x.to_vec());
        }
        let n = t.own.len();
        let and_shares = if self.role == cot_sender {
            self.cot_ring(Some(CotSend { corr: &t.top, groups: n, width: 1, bits: 1 }), None, t.cot_ring())?.0
        } else {
            self.cot_ring(None, Some(CotRecv { choices: &t.top, groups: n, width: 1, bits: 1 }), t.cot_ring())?.1
        };
        Ok(self.trunc_finish(&t, &and_shares))
    }

    /// [`Engine::lift_truncate`] of several vectors, each with its own `ring` and `bits`, in one
    /// COT call (of moderate size: not cut into pieces). The COTs run in the widest COT ring
    /// any vector needs and each vector's shares are reduced to its own. What each party
    /// learns: as for one call (nothing).
    pub(super) fn lift_truncate_many(&mut self, xs: &[(&[u64], u32, u32)], cot_sender: Role) -> Result<Vec<Vec<u64>>> {
        let starts = xs
            .iter()
            .map(|&(x, ring, bits)| self.trunc_start(x, ring, bits, cot_sender))
            .collect::<Result<Vec<_>>>()?;
        let cot_ring = starts.iter().map(TruncStart::cot_ring).max().unwrap_or(1).max(1);
        let shapes = starts.iter().map(|t| (t.top.as_slice(), t.top.len()));
        let (s, r) = if self.role == cot_sender {
            let send: Vec<CotSend> =
                shapes.map(|(top, n)| CotSend { corr: top, groups: n, width: 1, bits: 1 }).collect();
            self.cot_many(&send, &[], cot_ring)?
        } else {
            let recv: Vec<CotRecv> =
                shapes.map(|(top, n)| CotRecv { choices: top, groups: n, width: 1, bits: 1 }).collect();
            self.cot_many(&[], &recv, cot_ring)?
        };
        Ok(starts
            .iter()
            .zip(if self.role == cot_sender { s } else { r })
            .map(|(t, shares)| {
                let mask = low_mask(t.cot_ring());
                let shares: Vec<u64> = shares.iter().map(|v| v & mask).collect();
                self.trunc_finish(t, &shares)
            })
            .collect())
    }

    /// The local first half of [`Engine::lift_truncate`]: checks the arguments, reduces this
    /// party's share mod `2^ring` (the gov adding the offset) and takes its top bits.
    pub(super) fn trunc_start(&self, x: &[u64], ring: u32, bits: u32, cot_sender: Role) -> Result<TruncStart> {
        if !(3..=64).contains(&ring) || bits > ring - 2 {
            return Err(Error::Input(InputError::Usage {
                op: "lift_truncate",
                detail: format!(
                    "ring of {ring} bits and truncation by {bits}: use a ring of 3..=64 bits and 0..=ring−2"
                ),
            }));
        }
        let mask = low_mask(ring);
        let offset = 1u64 << (ring - 2);
        let own: Vec<u64> = match self.role {
            Role::Gov => x.iter().map(|v| v.wrapping_add(offset) & mask).collect(),
            Role::Bank => x.iter().map(|v| v & mask).collect(),
        };
        let top: Vec<u64> = own.iter().map(|v| v >> (ring - 1)).collect();
        Ok(TruncStart { own, top, ring, bits, cot_sender })
    }

    /// The output shares of [`Engine::lift_truncate`] from this party's COT shares of `a·b`
    /// (mod `2^cot_ring` or a multiple of it). With all-zero COT shares the result is already
    /// right in its low `ring − bits` bits: the COT only fixes the bits above.
    pub(super) fn trunc_finish(&self, t: &TruncStart, and_shares: &[u64]) -> Vec<u64> {
        // Multiples of 2^high, mod 2^64 (0 for high = 64: ring 64, bits 0).
        let high = |v: u64| v.checked_shl(t.ring - t.bits).unwrap_or(0);
        let shifted_offset = (1u64 << (t.ring - 2)) >> t.bits;
        (0..t.own.len())
            .map(|i| {
                let v = (t.own[i] >> t.bits).wrapping_sub(high(t.top[i])).wrapping_add(high(and_shares[i]));
                if self.role == Role::Gov { v.wrapping_sub(shifted_offset) } else { v }
            })
            .collect()
    }
}
