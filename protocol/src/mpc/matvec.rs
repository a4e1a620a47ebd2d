//! One party's plaintext matrix times a shared vector: [`Engine::prepare_matrix`] once per
//! matrix, then any number of [`Engine::matvec`] (`M·v`) and [`Engine::matvec_t`] (`Mᵀ·v`).
//!
//! `M·v = M·v_owner + M·v_peer`: the owner computes the first term locally; the cross term
//! `M·v_peer` (the owner's plaintext times the peer's plaintext share) is made into fresh shares
//! in one of two ways, fixed by the public shape ([`HeLayout::choose`]):
//!
//! - Homomorphic (RLWE, [`crate::he`], plaintext modulus `2^64`, replies switched to `2^79`). At
//!   set-up the owner encrypts its matrix once under its own key, row-major (`R = ⌊N/cols⌋` rows
//!   per ciphertext, entry `(i, j)` at coefficient `i·cols + j`), once per digit `d < D` as
//!   `2^(k·d)·M` (`k = ⌈64/D⌉`), and sends the `D·⌈rows/R⌉` ciphertexts (196,640 B each), which
//!   the peer keeps. Per product the peer splits its share into `D` signed `k`-bit digits, so the
//!   plaintext polynomials stay small enough for the noise budget, multiplies them into the kept
//!   ciphertexts (`M·v`: `Σ_j v_j·X^(cols−1−j)`, results at `i·cols + cols − 1`, one reply per
//!   ciphertext block; `Mᵀ·v`: `Σ_i v_i·X^(−i·cols)`, results at `0..cols`, all blocks summed
//!   into one reply), masks with a fresh uniform `r`, re-randomises, floods and replies; the
//!   owner's share is the decryption `M·v_peer − r`, the peer's `r`. `D` is the smallest digit
//!   count whose noise budget holds for both products (2 up to 2,978 rows).
//! - Gilboa (correlated OT, [`super::cot`]), for shapes where the set-up plus one homomorphic
//!   product costs more bytes than one OT product (small matrices): one product per element of
//!   the peer's share, the peer OT receiver with its 64 bits, the owner's correlation the matching
//!   column (`M·v`) or row (`Mᵀ·v`) of `M`.
//!
//! Then both add their parts and truncate once ([`Engine::truncate`]).
//!
//! Bytes (1024 × 12, ℓ = 64, `L = 79`, `D = 2`): set-up 4 ciphertexts, 0.79 MB, once per
//! matrix (plus the owner's public key, 196,640 B, once per session); per `M·v`
//! `⌈rows/R⌉·(N·L/8) + rows·L/8` = 172 KB, per `Mᵀ·v` `N·L/8 + cols·L/8` = 81 KB, each with
//! one flight, then the truncation. Gilboa: `cols·(64 OTs + rows·260 B)` per `M·v`, 3.2 MB
//! (`Mᵀ·v` alike with rows and columns swapped). The other direction — the peer encrypts its
//! share every step and the owner multiplies by its plaintext `M` — needs no set-up but costs
//! one more ciphertext per product (+196,640 B, for `M·v`'s 12 values as for `Mᵀ·v`'s 1024),
//! so it loses from the second use of a matrix on.
//!
//! What each party learns: nothing beyond the public shape. The peer sees the owner's public key
//! and ciphertexts (IND-CPA under RLWE; reusing them across products reveals nothing more). The
//! owner sees re-randomised replies whose wanted coefficients decrypt to its shares, uniform
//! because of `r`; the noise that depends on the peer's digits is flooded (statistical distance
//! at most `2^−70` per coefficient, `2^−40` over the at most [`he::MAX_FLOODED`] coefficients a
//! key may receive per session, counted together with `cross_gram`'s), and the unwanted
//! coefficients (partial products) are never sent. Gilboa: see `cot`. Each output share alone is
//! uniform in `Z_2^64`; the results are exact, then truncated.

use super::cot::{CotRecv, CotSend};
use super::{Engine, PlainMatrix, add_groups};
use crate::he::{self, Budget, Ciphertext, Evaluator, N, Plain, PublicKey, SecretKey};
use crate::{Error, InputError, Result, Role};

/// Plaintext bits of the homomorphic products: the shares' ring `Z_2^64`.
const BITS: u32 = he::RING_BITS;

/// A matrix prepared for [`Engine::matvec`] / [`Engine::matvec_t`] by
/// [`Engine::prepare_matrix`]: at its owner the matrix, at the peer the owner's ciphertexts
/// (homomorphic form) or nothing (Gilboa form). Both parties hold one per matrix, made by the
/// same call; use it with the engine that made it.
pub struct PreparedMatrix {
    owner: Role,
    rows: usize,
    cols: usize,
    /// The owner's matrix (None at the peer).
    matrix: Option<PlainMatrix>,
    /// Homomorphic form (None: Gilboa).
    he: Option<HeLayout>,
    /// At the peer in homomorphic form: the owner's ciphertexts, block-major then digit.
    cts: Vec<Ciphertext>,
}

impl PreparedMatrix {
    pub fn owner(&self) -> Role {
        self.owner
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Whether the products are homomorphic (else Gilboa), fixed by the shape.
    pub fn homomorphic(&self) -> bool {
        self.he.is_some()
    }
}

/// How a matrix is packed for the homomorphic products; both parties derive it from the shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeLayout {
    rows: usize,
    cols: usize,
    /// Rows per ciphertext, `⌊N/cols⌋` (at most `rows`).
    block: usize,
    /// Digits `D` of the peer's share, `digit_bits = ⌈64/D⌉` each.
    digits: usize,
    digit_bits: u32,
}

impl HeLayout {
    /// The homomorphic layout with the fewest digits that fits the noise budget, if its set-up
    /// and one product cost fewer bytes than one Gilboa product (IKNP: 16 B per OT); else None.
    fn choose(rows: usize, cols: usize) -> Option<HeLayout> {
        if rows == 0 || cols == 0 || cols > N {
            return None;
        }
        let block = (N / cols).min(rows);
        let layout =
            (2..=16).map(|digits| HeLayout { rows, cols, block, digits, digit_bits: BITS.div_ceil(digits as u32) });
        let layout = layout.into_iter().find(|l| l.budget(false).is_ok() && l.budget(true).is_ok())?;
        let he = layout.setup_bytes() + layout.reply_bytes(false).max(layout.reply_bytes(true));
        let gilboa = |groups: usize, width: usize| groups * (64 * 16 + width * 260);
        (he < gilboa(cols, rows).min(gilboa(rows, cols))).then_some(layout)
    }

    fn blocks(&self) -> usize {
        self.rows.div_ceil(self.block)
    }
    fn block_rows(&self, b: usize) -> std::ops::Range<usize> {
        b * self.block..((b + 1) * self.block).min(self.rows)
    }
    fn setup_bytes(&self) -> usize {
        self.blocks() * self.digits * he::CT_BYTES
    }
    /// The noise budget of one reply: `M·v` sums `D` products with `cols` digit coefficients
    /// each, `Mᵀ·v` all blocks' `D` products, `rows` digit coefficients in all per digit.
    fn budget(&self, transposed: bool) -> Result<Budget> {
        let terms = if transposed { self.rows } else { self.cols };
        let l1 = (self.digits as u128 * terms as u128) << (self.digit_bits - 1);
        Budget::check(if transposed { "matvec_t" } else { "matvec" }, BITS, l1)
    }
    /// Wanted coefficients of each reply: `M·v` one reply per block, `Mᵀ·v` one in all.
    fn positions(&self, transposed: bool) -> Vec<Vec<usize>> {
        if transposed {
            vec![(0..self.cols).collect()]
        } else {
            (0..self.blocks())
                .map(|b| (0..self.block_rows(b).len()).map(|i| i * self.cols + self.cols - 1).collect())
                .collect()
        }
    }
    fn reply_bytes(&self, transposed: bool) -> usize {
        self.positions(transposed).iter().map(|p| he::reply_bytes(BITS, p.len())).sum()
    }
}

/// `v` as `digits` signed `k`-bit digits (each in `[−2^(k−1), 2^(k−1))`) with
/// `Σ_d 2^(k·d)·digit_d ≡ v (mod 2^64)`; `digits·k ≥ 64`, `k < 64`.
fn signed_digits(v: u64, digits: usize, k: u32) -> impl Iterator<Item = i64> {
    let mut rest = v;
    (0..digits).map(move |_| {
        let low = rest & ((1u64 << k) - 1);
        let digit = if low >> (k - 1) == 1 { low as i64 - (1i64 << k) } else { low as i64 };
        rest = rest.wrapping_sub(digit as u64) >> k;
        digit
    })
}

/// A prepared matrix used with an engine that holds no key for it.
fn foreign_matrix(op: &'static str) -> Error {
    Error::Input(InputError::Usage {
        op,
        detail: "the matrix was prepared by another engine: prepare it with this one".into(),
    })
}

impl Engine<'_> {
    fn check_matrix(&self, owner: Role, m: Option<&PlainMatrix>, rows: usize, cols: usize) -> Result<()> {
        if owner == self.role {
            match m {
                Some(m) if m.rows == rows && m.cols == cols && m.data.len() == rows * cols => Ok(()),
                Some(m) => Err(Error::Input(InputError::Usage {
                    op: "matrix",
                    detail: format!("{}×{} with {} entries, the call says {rows}×{cols}", m.rows, m.cols, m.data.len()),
                })),
                None => Err(Error::Input(InputError::Usage {
                    op: "matrix",
                    detail: "the matrix owner must pass its matrix".into(),
                })),
            }
        } else {
            Ok(())
        }
    }

    /// Prepares `owner`'s plaintext matrix (Some at the owner, None at the other party; both pass
    /// the shape) for [`Engine::matvec`] / [`Engine::matvec_t`]. In homomorphic form (see the
    /// module docs of `matvec`) the owner sends its encrypted matrix here, once; in Gilboa form
    /// nothing is sent. What each party learns: nothing beyond the shape.
    pub fn prepare_matrix(
        &mut self,
        owner: Role,
        m: Option<&PlainMatrix>,
        rows: usize,
        cols: usize,
    ) -> Result<PreparedMatrix> {
        self.check_matrix(owner, m, rows, cols)?;
        let matrix = m.filter(|_| owner == self.role).cloned();
        let he = HeLayout::choose(rows, cols);
        let mut cts = Vec::new();
        if let Some(layout) = &he {
            let before = self.ch.stats().total_bytes();
            match &matrix {
                Some(m) => self.he_send_matrix(m, layout)?,
                None => cts = self.he_recv_matrix(owner, layout)?,
            }
            self.he.keys_sent[owner.index()] = true;
            self.correction_bytes += self.ch.stats().total_bytes() - before;
        }
        Ok(PreparedMatrix { owner, rows, cols, matrix, he, cts })
    }

    fn he_send_matrix(&mut self, m: &PlainMatrix, layout: &HeLayout) -> Result<()> {
        let key = match self.he.key.take() {
            Some(key) => key,
            None => SecretKey::generate(&mut self.rng.0),
        };
        let mut bytes = Vec::with_capacity(layout.setup_bytes() + he::PK_BYTES);
        if !self.he.keys_sent[self.role.index()] {
            bytes.extend(key.public_key_bytes());
        }
        for b in 0..layout.blocks() {
            let entries = &m.data[layout.block_rows(b).start * m.cols..layout.block_rows(b).end * m.cols];
            for d in 0..layout.digits {
                let scaled: Vec<u64> = entries.iter().map(|&x| x << (layout.digit_bits * d as u32)).collect();
                bytes.extend(key.encrypt(&scaled, BITS, &mut self.rng.0));
            }
        }
        self.he.key = Some(key);
        self.ch.send_bulk("he.ct", &bytes)
    }

    fn he_recv_matrix(&mut self, owner: Role, layout: &HeLayout) -> Result<Vec<Ciphertext>> {
        let with_key = !self.he.keys_sent[owner.index()];
        let len = layout.setup_bytes() + if with_key { he::PK_BYTES } else { 0 };
        let bytes = self.ch.recv_bulk_exact("he.ct", len as u64)?;
        let (key, cts) = bytes.split_at(if with_key { he::PK_BYTES } else { 0 });
        if with_key {
            self.he.peer_key = Some(PublicKey::from_bytes(key)?);
        }
        cts.chunks_exact(he::CT_BYTES).map(Ciphertext::from_bytes).collect()
    }

    /// Shares of `M·v` (length `rows`), truncated, for a prepared matrix `M` and a shared `v`
    /// (length `cols`); see the `matvec` module docs for the protocol, what each party learns
    /// and the bytes. Exact while `|M·v| <` [`super::product_bound`].
    pub fn matvec(&mut self, m: &PreparedMatrix, v: &[u64]) -> Result<Vec<u64>> {
        Ok(self.matvec_each(&[(m, v)], false)?.swap_remove(0))
    }

    /// Shares of `Mᵀ·v` (length `cols`), truncated, for a prepared matrix `M` and a shared `v`
    /// (length `rows`); as [`Engine::matvec`].
    pub fn matvec_t(&mut self, m: &PreparedMatrix, v: &[u64]) -> Result<Vec<u64>> {
        Ok(self.matvec_each(&[(m, v)], true)?.swap_remove(0))
    }

    /// [`Engine::matvec`] (or, `transposed`, [`Engine::matvec_t`]) of several prepared matrices,
    /// each with its shared vector, at once: each party first evaluates and sends the
    /// homomorphic products of the peer's matrices, then decrypts the replies for its own, so the
    /// two parties compute at the same time and the products share one flight and one
    /// truncation. Same messages and leakage as the products one by one.
    pub fn matvec_each(&mut self, products: &[(&PreparedMatrix, &[u64])], transposed: bool) -> Result<Vec<Vec<u64>>> {
        for (m, v) in products {
            let len = if transposed { m.rows } else { m.cols };
            if v.len() != len {
                return Err(Error::Input(InputError::Usage {
                    op: if transposed { "matvec_t" } else { "matvec" },
                    detail: format!("vector has {} entries, the {}×{} matrix needs {len}", v.len(), m.rows, m.cols),
                }));
            }
        }
        let width = |m: &PreparedMatrix| if transposed { m.cols } else { m.rows };
        let mut outs: Vec<Vec<u64>> = products
            .iter()
            .map(|(m, v)| match &m.matrix {
                Some(own) if transposed => own.mul_vec_t(v),
                Some(own) => own.mul_vec(v),
                None => vec![0; width(m)],
            })
            .collect();
        // The peer's homomorphic matrices first (send), then this party's own (receive).
        for ((m, v), out) in products.iter().zip(&mut outs) {
            if let (Some(layout), None) = (&m.he, &m.matrix) {
                add_groups(out, &self.he_evaluate_product(layout, &m.cts, v, transposed)?);
            }
        }
        for ((m, _), out) in products.iter().zip(&mut outs) {
            if let (Some(layout), Some(_)) = (&m.he, &m.matrix) {
                add_groups(out, &self.he_decrypt_product(layout, transposed)?);
            }
        }
        for ((m, v), out) in products.iter().zip(&mut outs) {
            let (len, width) = (v.len(), width(m));
            let cross = match (&m.he, &m.matrix) {
                (Some(_), _) => continue,
                (None, Some(own)) => {
                    let corr = if transposed { own.data.clone() } else { own.column_major() };
                    self.cot(Some(CotSend { corr: &corr, groups: len, width, bits: 64 }), None)?.0
                }
                (None, None) => self.cot(None, Some(CotRecv { choices: v, groups: len, width, bits: 64 }))?.1,
            };
            add_groups(out, &cross);
        }
        let truncated = self.truncate(&outs.concat(), self.fp.frac_bits)?;
        let mut rest = truncated.as_slice();
        Ok(outs
            .iter()
            .map(|o| {
                let (head, tail) = rest.split_at(o.len());
                rest = tail;
                head.to_vec()
            })
            .collect())
    }

    /// The owner's side: receives and decrypts the replies, `M·v_peer − r`.
    fn he_decrypt_product(&mut self, layout: &HeLayout, transposed: bool) -> Result<Vec<u64>> {
        let positions = layout.positions(transposed);
        let op = if transposed { "matvec_t" } else { "matvec" };
        self.he_count_flooded(self.role, positions.iter().map(Vec::len).sum(), op)?;
        let before = self.ch.stats().total_bytes();
        let replies = self.ch.recv_bulk_exact("he.prod", layout.reply_bytes(transposed) as u64)?;
        self.correction_bytes += self.ch.stats().total_bytes() - before;
        let key = self.he.key.as_ref().ok_or_else(|| foreign_matrix(if transposed { "matvec_t" } else { "matvec" }))?;
        let mut rest = replies.as_slice();
        let mut out = Vec::with_capacity(if transposed { layout.cols } else { layout.rows });
        for p in &positions {
            let (reply, tail) = rest.split_at(he::reply_bytes(BITS, p.len()));
            rest = tail;
            out.extend(key.decrypt(reply, BITS, p)?);
        }
        Ok(out)
    }

    /// The peer's side: multiplies its share's digits into the owner's ciphertexts and replies;
    /// returns its masks `r`.
    fn he_evaluate_product(
        &mut self,
        layout: &HeLayout,
        cts: &[Ciphertext],
        v: &[u64],
        transposed: bool,
    ) -> Result<Vec<u64>> {
        let owner = self.role.peer();
        let positions = layout.positions(transposed);
        let op = if transposed { "matvec_t" } else { "matvec" };
        self.he_count_flooded(owner, positions.iter().map(Vec::len).sum(), op)?;
        let budget = layout.budget(transposed)?;
        let (d_count, cols) = (layout.digits, layout.cols);
        // digits[i·D + d]: digit d of v_i.
        let digits: Vec<i64> = v.iter().flat_map(|&x| signed_digits(x, d_count, layout.digit_bits)).collect();
        let mut evals = Vec::new();
        if transposed {
            let mut eval = Evaluator::new();
            for b in 0..layout.blocks() {
                for d in 0..d_count {
                    // Σ_i v_i·X^(−i·cols), with X^(−e) = −X^(N−e).
                    let mut c = vec![0i64; N];
                    for (i, r) in layout.block_rows(b).enumerate() {
                        let digit = digits[r * d_count + d];
                        if i == 0 { c[0] = digit } else { c[N - i * cols] = -digit }
                    }
                    eval.add_product(&cts[b * d_count + d], &Plain::new(&c));
                }
            }
            evals.push(eval);
        } else {
            // Σ_j v_j·X^(cols−1−j), the same for every block.
            let plains: Vec<Plain> = (0..d_count)
                .map(|d| {
                    let mut c = vec![0i64; N];
                    for j in 0..cols {
                        c[cols - 1 - j] = digits[j * d_count + d];
                    }
                    Plain::new(&c)
                })
                .collect();
            for b in 0..layout.blocks() {
                let mut eval = Evaluator::new();
                for (d, plain) in plains.iter().enumerate() {
                    eval.add_product(&cts[b * d_count + d], plain);
                }
                evals.push(eval);
            }
        }
        let pk = self.he.peer_key.as_ref().ok_or_else(|| foreign_matrix(op))?;
        let mut reply = Vec::with_capacity(layout.reply_bytes(transposed));
        let mut masks = Vec::with_capacity(if transposed { layout.cols } else { layout.rows });
        for (eval, p) in evals.into_iter().zip(&positions) {
            let (bytes, r) = eval.finish(pk, &budget, p, &mut self.rng.0);
            reply.extend(bytes);
            masks.extend(r);
        }
        let before = self.ch.stats().total_bytes();
        self.ch.send_bulk("he.prod", &reply)?;
        self.correction_bytes += self.ch.stats().total_bytes() - before;
        Ok(masks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_digits_recompose_and_stay_in_range() {
        let values = [0, 1, u64::MAX, 1 << 63, (1 << 31) - 1, 1 << 31, 0x8000_0000_8000_0000, 0x1234_5678_9abc_def0];
        for digits in 2..=5 {
            let k = 64u32.div_ceil(digits as u32);
            for &v in &values {
                let ds: Vec<i64> = signed_digits(v, digits, k).collect();
                assert_eq!(ds.len(), digits);
                let back = ds.iter().enumerate().fold(0u64, |a, (d, &x)| a.wrapping_add((x as u64) << (k * d as u32)));
                assert_eq!(back, v, "{v:#x} with {digits} digits");
                assert!(ds.iter().all(|&x| -(1i64 << (k - 1)) <= x && x < 1i64 << (k - 1)), "{ds:?}");
            }
        }
    }

    #[test]
    fn layout_is_homomorphic_for_batches_and_gilboa_for_small_matrices() {
        let batch = HeLayout::choose(1024, 12).expect("1024 × 12 is homomorphic");
        assert_eq!((batch.block, batch.blocks(), batch.digits), (682, 2, 2));
        assert_eq!(batch.setup_bytes(), 4 * he::CT_BYTES);
        assert_eq!(batch.reply_bytes(false), 2 * 80_896 + 6_735 + 3_378);
        assert_eq!(batch.reply_bytes(true), 80_896 + 119);
        assert!(HeLayout::choose(8, 3).is_none());
        assert!(HeLayout::choose(100, N + 1).is_none());
        // Many rows need more digits for Mᵀ·v's budget: two up to 2,978 rows.
        assert_eq!(HeLayout::choose(2978, 4).expect("homomorphic").digits, 2);
        assert_eq!(HeLayout::choose(2979, 4).expect("homomorphic").digits, 3);
        assert!(HeLayout::choose(1 << 16, 4).expect("homomorphic").digits > 2);
    }
}
