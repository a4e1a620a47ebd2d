//! Products for Gram-type blocks: the cross product `AᵀB` of two parties' plaintext matrices in
//! a small ring, lifting shares from `Z_2^ℓ` to `Z_2^64`, and a shared matrix times a shared
//! vector.
//!
//! Cost model (why these exist): a Gilboa product costs one OT (16 B of IKNP) per choice bit and,
//! per OT, one correction of `ring − k` bits per correlation element. Choosing the narrower
//! plaintext as the choice bits (`a_bits` instead of 64) and the smallest ring that holds the
//! exact result (instead of 64) cuts both factors; the lift back to `Z_2^64` costs one OT per
//! output element.

use super::cot::{CotRecv, CotSend, low_mask};
use super::{Engine, PlainMatrix, add_groups};
use crate::{Error, InputError, Result, Role};

/// Largest correlation (elements) one `cross_gram` COT call handles; bigger shapes run in
/// several calls over column chunks of A.
const CROSS_CHUNK_ELEMS: usize = 1 << 21;

/// Ring bits of [`Engine::cross_gram`]: `⌈log2 rows⌉ + a_bits + b_bits`, so that the exact
/// result satisfies `|AᵀB| < 2^(ring−2)` as [`Engine::lift`] needs.
pub fn cross_gram_ring(rows: usize, a_bits: u32, b_bits: u32) -> u32 {
    let log_rows = usize::BITS - rows.saturating_sub(1).leading_zeros();
    log_rows + a_bits + b_bits
}

/// Checks that every entry of `m` (two's complement) lies in `[lo, hi)`.
fn check_entry_bounds(m: &PlainMatrix, lo: i64, hi: i64, what: &str) -> Result<()> {
    match m.data.iter().position(|&v| !(lo..hi).contains(&(v as i64))) {
        None => Ok(()),
        Some(p) => Err(Error::Input(InputError::Usage {
            op: "cross_gram",
            detail: format!(
                "{what} entry (row {}, column {}) = {} is outside the public bound [{lo}, {hi})",
                p / m.cols.max(1),
                p % m.cols.max(1),
                m.data[p] as i64
            ),
        })),
    }
}

impl Engine<'_> {
    /// Shares (in `Z_2^64`) of the exact integer product `AᵀB` (`a_cols × b_cols`, row-major).
    /// `A` (`rows × a_cols`) is `a_owner`'s plaintext, `B` (`rows × b_cols`) the other party's;
    /// each party passes its own matrix as `own` (integers, two's complement), both pass the same
    /// public shape and bounds: A's entries in `[−2^(a_bits−1), 2^(a_bits−1))`, B's
    /// `|b| < 2^(b_bits−1)`. An entry outside its bound is an error at its owner, before anything
    /// is sent. No fixed-point truncation: the caller rescales.
    ///
    /// Protocol: in the ring `Z_2^ℓ`, `ℓ = ⌈log2 rows⌉ + a_bits + b_bits`
    /// ([`cross_gram_ring`]), so `|AᵀB| < 2^(ℓ−2)`. One Gilboa group per entry `a_ri`: the owner
    /// of A is COT receiver with the `a_bits` bits of `a_ri + 2^(a_bits−1)` (non-negative), the
    /// owner of B sender with row `r` of B as correlation. Summing over `r` gives shares of
    /// `(AᵀB)_i + 2^(a_bits−1)·Σ_r b_r`; the owner of B subtracts the offset (it knows B). Then
    /// [`Engine::lift`] to `Z_2^64`.
    ///
    /// What each party learns: nothing beyond the public shape and bounds. The owner of A sees
    /// only COT corrections, uniform in its view (masked by the unchosen IKNP pads); the owner of
    /// B sees only IKNP messages, independent of A's bits; each output share alone is uniform
    /// (mod `2^ℓ`, then mod `2^64` after the lift, which reveals nothing either).
    ///
    /// Bytes: `rows·a_cols·a_bits` OTs (16 B each) plus `rows·a_cols·b_cols·Σ_{k<a_bits}(ℓ − k)`
    /// bits of corrections, then `a_cols·b_cols` lift OTs.
    #[allow(clippy::too_many_arguments)]
    pub fn cross_gram(
        &mut self,
        a_owner: Role,
        own: &PlainMatrix,
        rows: usize,
        a_cols: usize,
        b_cols: usize,
        a_bits: u32,
        b_bits: u32,
    ) -> Result<Vec<u64>> {
        let i_own_a = a_owner == self.role;
        let own_cols = if i_own_a { a_cols } else { b_cols };
        if own.rows != rows || own.cols != own_cols || own.data.len() != rows * own_cols {
            return Err(Error::Input(InputError::Usage {
                op: "cross_gram",
                detail: format!(
                    "own matrix is {}×{} with {} entries, the call says {rows}×{own_cols}",
                    own.rows,
                    own.cols,
                    own.data.len()
                ),
            }));
        }
        let ring = cross_gram_ring(rows, a_bits, b_bits);
        if a_bits == 0 || b_bits == 0 || ring > 64 {
            return Err(Error::Input(InputError::Usage {
                op: "cross_gram",
                detail: format!(
                    "{rows} rows with {a_bits}- and {b_bits}-bit entries need a {ring}-bit ring (at most 64, bits ≥ 1)"
                ),
            }));
        }
        if i_own_a {
            check_entry_bounds(own, -(1i64 << (a_bits - 1)), 1i64 << (a_bits - 1), "A")?;
        } else {
            let hi = 1i64 << (b_bits - 1);
            check_entry_bounds(own, -hi + 1, hi, "B")?;
        }
        if rows == 0 || a_cols == 0 || b_cols == 0 {
            return Ok(vec![0; a_cols * b_cols]);
        }
        let mask = low_mask(ring);
        let per_call = (CROSS_CHUNK_ELEMS / (rows * b_cols)).clamp(1, a_cols);
        let mut out = Vec::with_capacity(a_cols * b_cols);
        for i0 in (0..a_cols).step_by(per_call) {
            let i1 = (i0 + per_call).min(a_cols);
            let groups = (i1 - i0) * rows;
            // Group (i, r) is number (i − i0)·rows + r.
            let mut chunk = vec![0u64; (i1 - i0) * b_cols];
            if i_own_a {
                let offset = 1u64 << (a_bits - 1);
                let choices: Vec<u64> = (i0..i1)
                    .flat_map(|i| (0..rows).map(move |r| own.data[r * a_cols + i].wrapping_add(offset)))
                    .collect();
                let (_, shares) = self.cot_ring(
                    None,
                    Some(CotRecv { choices: &choices, groups, width: b_cols, bits: a_bits }),
                    ring,
                )?;
                for (i, out_i) in chunk.chunks_exact_mut(b_cols).enumerate() {
                    add_groups(out_i, &shares[i * rows * b_cols..(i + 1) * rows * b_cols]);
                }
            } else {
                let corr: Vec<u64> = (i0..i1).flat_map(|_| own.data.iter().map(|v| v & mask)).collect();
                let (shares, _) =
                    self.cot_ring(Some(CotSend { corr: &corr, groups, width: b_cols, bits: a_bits }), None, ring)?;
                // Minus 2^(a_bits−1)·Σ_r b_r, the receiver's offset times B's column sums.
                let mut col_sums = vec![0u64; b_cols];
                add_groups(&mut col_sums, &own.data);
                for (i, out_i) in chunk.chunks_exact_mut(b_cols).enumerate() {
                    add_groups(out_i, &shares[i * rows * b_cols..(i + 1) * rows * b_cols]);
                    for (o, s) in out_i.iter_mut().zip(&col_sums) {
                        *o = o.wrapping_sub(s << (a_bits - 1));
                    }
                }
            }
            out.extend(chunk.iter().map(|v| v & mask));
        }
        self.lift(&out, ring)
    }

    /// Extends shares mod `2^ring` (the low `ring` bits of each `x`) of values with
    /// `|v| < 2^(ring−2)` to shares in `Z_2^64` of the same values, sign-extended. `ring` in
    /// `3..=64` (64: returned unchanged, no message). Values outside the bound come out wrong by
    /// a multiple of `2^ring`; callers guarantee the bound (e.g. [`Engine::cross_gram`]).
    ///
    /// Protocol: the gov adds `2^(ring−2)` to its share, so `T = v + 2^(ring−2) ∈ [0, 2^(ring−1))`
    /// with shares `g, h < 2^ring`: `g + h = T + 2^ring·w`. Since `T`'s top bit is 0, the wrap is
    /// `w = α ∨ β = α + β − αβ` for the top bits `α` of `g` and `β` of `h`. The product `αβ` is
    /// one COT (gov receiver with choice `α`, bank sender with correlation `β`) in
    /// `Z_2^(64−ring)`, because it is scaled by `2^ring`. Each party then outputs
    /// `own − 2^ring·(own top bit) + 2^ring·(COT share)`, and the gov subtracts `2^(ring−2)`.
    ///
    /// What each party learns: nothing. `α`, `β` are functions of its own share; the COT reveals
    /// nothing (see `cot`), and each output share is uniform on its own (the input shares are
    /// uniform mod `2^ring`, the COT shares mod `2^(64−ring)`). Bytes: one OT (16 B) plus
    /// `64 − ring` bits per element.
    pub fn lift(&mut self, x: &[u64], ring: u32) -> Result<Vec<u64>> {
        if !(3..=64).contains(&ring) {
            return Err(Error::Input(InputError::Usage {
                op: "lift",
                detail: format!("ring of {ring} bits, use 3..=64"),
            }));
        }
        if ring == 64 {
            return Ok(x.to_vec());
        }
        let mask = low_mask(ring);
        let offset = 1u64 << (ring - 2);
        let own: Vec<u64> = match self.role {
            Role::Gov => x.iter().map(|v| v.wrapping_add(offset) & mask).collect(),
            Role::Bank => x.iter().map(|v| v & mask).collect(),
        };
        let top: Vec<u64> = own.iter().map(|v| v >> (ring - 1)).collect();
        let n = x.len();
        let and_shares = match self.role {
            Role::Gov => {
                self.cot_ring(None, Some(CotRecv { choices: &top, groups: n, width: 1, bits: 1 }), 64 - ring)?.1
            }
            Role::Bank => self.cot_ring(Some(CotSend { corr: &top, groups: n, width: 1, bits: 1 }), None, 64 - ring)?.0,
        };
        let gov = self.role == Role::Gov;
        Ok((0..n)
            .map(|i| {
                let v = own[i].wrapping_sub(top[i] << ring).wrapping_add(and_shares[i] << ring);
                if gov { v.wrapping_sub(offset) } else { v }
            })
            .collect())
    }

    /// Shares of `M·v`, truncated, where the matrix `M` (`rows × cols`) is itself shared: each
    /// party passes its share as the plaintext matrix `own` (e.g. its own plaintext block padded
    /// with zeros, or its share of a block computed earlier) and `v` (length `cols`) is shared.
    /// Both must pass the same shape.
    ///
    /// `M·v = M_me·v_me + M_me·v_peer + M_peer·v_me + M_peer·v_peer`: the two cross terms are
    /// Gilboa products with each party COT sender with the columns of its `M` share and
    /// receiver with the 64 bits of its `v` share (both directions at once, two flights). The
    /// sum is truncated once, so the shares of `M` may be full-range ring elements.
    ///
    /// What each party learns: nothing (COT security, see `cot`, and [`Engine::truncate`]);
    /// output shares are uniform. Exact while `|M·v| <` [`super::product_bound`].
    /// Bytes: per direction `cols` × 64 OTs (16 B each) plus `rows·cols·260` B of corrections,
    /// then the truncation (one OT and `f` bits per row).
    pub fn matvec_shared(&mut self, own: &PlainMatrix, v: &[u64]) -> Result<Vec<u64>> {
        let (rows, cols) = (own.rows, own.cols);
        if own.data.len() != rows * cols || v.len() != cols {
            return Err(Error::Input(InputError::Usage {
                op: "matvec_shared",
                detail: format!("matrix {rows}×{cols} with {} entries, vector of {}", own.data.len(), v.len()),
            }));
        }
        let cols_major = own.column_major();
        let (s, r) = self.cot(
            Some(CotSend { corr: &cols_major, groups: cols, width: rows, bits: 64 }),
            Some(CotRecv { choices: v, groups: cols, width: rows, bits: 64 }),
        )?;
        let mut out = own.mul_vec(v);
        add_groups(&mut out, &s);
        add_groups(&mut out, &r);
        self.truncate(&out, self.fp.frac_bits)
    }
}
