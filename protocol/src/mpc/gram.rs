//! Products for Gram-type blocks: the cross product `AᵀB` of two parties' plaintext matrices
//! (homomorphic, [`crate::he`]), lifting shares from `Z_2^ℓ` to `Z_2^64`, and a matrix whose
//! entries are each one party's plaintext or shared times a shared vector, in a ring just wide
//! enough for a public bound on the product ([`Engine::matvec_shared`]).
//!
//! Cost model (why the cross product is homomorphic): a Gilboa OT product costs, per entry of
//! the choice matrix, one OT per bit and a correction of up to `ℓ` bits per correlation element,
//! `O(rows·a_cols·b_cols·a_bits·ℓ)` bits. The RLWE product packs many inner products into one
//! ciphertext: the encrypting party sends `O(rows·cols)` ring coefficients and receives about
//! `a_cols·b_cols·rows·(ℓ + 15)` bits, independent of the entries' bit widths.

use super::cot::{CotRecv, CotSend, low_mask};
use super::trunc::TruncStart;
use super::{Engine, PlainMatrix};
use crate::he::{self, Budget, Ciphertext, Evaluator, N, Plain, PublicKey, SecretKey};
use crate::{Error, InputError, Result, Role};

/// Ring bits of one [`Engine::cross_gram`] product over `rows` rows: `⌈log2 rows⌉ + a_bits +
/// b_bits`, so that the exact result satisfies `|AᵀB| < 2^(ring−2)` as [`Engine::lift`] needs.
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

/// How one homomorphic cross product is packed; both parties derive it from the public shape.
///
/// The encrypting party's matrix `X` (`rows × x_cols`) is cut into row blocks of `block` rows;
/// per block, `gx` of its columns go into one plaintext, column `jj` of the group at
/// coefficients `jj·block + i` (row `i` of the block). The evaluator's matrix `Y` goes into
/// plaintext polynomials with `gy` columns each, column `kk` at `X^(kk·gx·block − i)`
/// (negacyclic: a negative exponent `−e` is `−X^(N−e)`). Their product has
/// `Σ_i X_(i,j)·Y_(i,k)` at coefficient `(jj + kk·gx)·block` and no other term there
/// (`gx·gy·block ≤ N`); the evaluator sums the products of all row blocks before replying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// The owner of A encrypts (else the owner of B).
    a_encrypts: bool,
    block: usize,
    gx: usize,
    gy: usize,
    x_cols: usize,
    y_cols: usize,
    rows: usize,
}

impl Layout {
    fn blocks(&self) -> usize {
        self.rows.div_ceil(self.block)
    }
    fn x_groups(&self) -> usize {
        self.x_cols.div_ceil(self.gx)
    }
    fn y_groups(&self) -> usize {
        self.y_cols.div_ceil(self.gy)
    }
    /// Columns of X in group `u` and of Y in group `v`.
    fn x_range(&self, u: usize) -> std::ops::Range<usize> {
        u * self.gx..((u + 1) * self.gx).min(self.x_cols)
    }
    fn y_range(&self, v: usize) -> std::ops::Range<usize> {
        v * self.gy..((v + 1) * self.gy).min(self.y_cols)
    }
    /// Coefficients of the results of groups `(u, v)`: `(X column, Y column, coefficient)`.
    fn outputs(&self, u: usize, v: usize) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for k in self.y_range(v) {
            for j in self.x_range(u) {
                out.push((j, k, (j - u * self.gx + (k - v * self.gy) * self.gx) * self.block));
            }
        }
        out
    }
    fn reply_bytes(&self, bits: u32) -> usize {
        (0..self.x_groups())
            .flat_map(|u| (0..self.y_groups()).map(move |v| (u, v)))
            .map(|(u, v)| he::reply_bytes(bits, self.x_range(u).len() * self.y_range(v).len()))
            .sum()
    }
    fn bytes(&self, bits: u32, key_to_send: bool) -> usize {
        self.blocks() * self.x_groups() * he::CT_BYTES
            + self.reply_bytes(bits)
            + if key_to_send { he::PK_BYTES } else { 0 }
    }

    /// The layout with the fewest bytes (ties: the first found) among both encrypting parties,
    /// block sizes and column groupings that fit the noise budget for `bits`-bit plaintexts.
    fn choose(
        rows: usize,
        a_owner: Role,
        a_cols: usize,
        b_cols: usize,
        (a_bits, b_bits): (u32, u32),
        bits: u32,
        keys_sent: [bool; 2],
    ) -> Result<(Layout, Budget)> {
        let mut best: Option<(usize, Layout, Budget)> = None;
        let mut last_err = None;
        for a_encrypts in [true, false] {
            let (x_cols, y_cols, y_bits) = if a_encrypts { (a_cols, b_cols, b_bits) } else { (b_cols, a_cols, a_bits) };
            let blocks = std::iter::once(rows.min(N))
                .chain((0..=N.trailing_zeros()).map(|k| 1 << k))
                .filter(|&b| b <= rows.min(N));
            for block in blocks {
                let g = N / block;
                for gx in 1..=x_cols.min(g) {
                    let gy = y_cols.min(g / gx);
                    let layout = Layout { a_encrypts, block, gx, gy, x_cols, y_cols, rows };
                    // Σ over row blocks of ‖plaintext‖₁ ≤ gy·rows·2^(y_bits−1).
                    let l1 = (gy as u128 * rows as u128) << (y_bits - 1);
                    match Budget::check("cross_gram", bits, l1) {
                        Ok(budget) => {
                            let encryptor = if a_encrypts { a_owner } else { a_owner.peer() };
                            let cost = layout.bytes(bits, !keys_sent[encryptor.index()]);
                            if best.as_ref().is_none_or(|(c, ..)| cost < *c) {
                                best = Some((cost, layout, budget));
                            }
                        }
                        Err(e) => last_err = Some(e),
                    }
                }
            }
        }
        match (best, last_err) {
            (Some((_, layout, budget)), _) => Ok((layout, budget)),
            (None, Some(e)) => Err(e),
            (None, None) => unreachable!("rows, a_cols and b_cols are positive"),
        }
    }
}

/// One product of [`Engine::cross_grams`]: the arguments of [`Engine::cross_gram`], and the
/// bits by which its result is shifted right (truncated) in its lift.
#[derive(Clone, Copy, Debug)]
pub struct CrossGram<'a> {
    pub a_owner: Role,
    /// This party's matrix (A at `a_owner`, B at the other).
    pub own: &'a PlainMatrix,
    pub rows: usize,
    pub a_cols: usize,
    pub b_cols: usize,
    pub a_bits: u32,
    pub b_bits: u32,
    pub shift: u32,
}

/// One row chunk of a [`CrossGram`] and how its homomorphic product is packed.
struct Chunk {
    call: usize,
    part: PlainMatrix,
    ring: u32,
    layout: Layout,
    budget: Budget,
    encryptor: Role,
}

/// This session's homomorphic-encryption state, mirrored at both parties except the keys.
#[derive(Default)]
pub(super) struct HeState {
    /// This party's key (made at its first encryption).
    pub(super) key: Option<SecretKey>,
    /// The peer's public key (received with its first ciphertexts).
    pub(super) peer_key: Option<PublicKey>,
    /// Whether the gov's / the bank's public key has been sent (index: [`Role::index`]).
    pub(super) keys_sent: [bool; 2],
    /// Flooded coefficients sent under the gov's / the bank's key.
    pub(super) flooded: [u64; 2],
}

impl Engine<'_> {
    /// Shares (in `Z_2^64`) of the exact integer product `AᵀB` (`a_cols × b_cols`, row-major).
    /// `A` (`rows × a_cols`) is `a_owner`'s plaintext, `B` (`rows × b_cols`) the other party's;
    /// each party passes its own matrix as `own` (integers, two's complement), both pass the same
    /// public shape and bounds: A's entries in `[−2^(a_bits−1), 2^(a_bits−1))`, B's
    /// `|b| < 2^(b_bits−1)`. An entry outside its bound is an error at its owner, before anything
    /// is sent. No fixed-point truncation: the caller rescales.
    ///
    /// Protocol: rows in chunks small enough that each chunk's product fits a ring of
    /// `ℓ = ⌈log2 chunk⌉ + a_bits + b_bits ≤ 49` bits ([`cross_gram_ring`]); per chunk one
    /// homomorphic product mod `2^ℓ` ([`crate::he`], packing in `Layout`): one party
    /// (whichever sends fewer bytes, fixed by the public shape) encrypts its matrix under its own
    /// key and sends the ciphertexts (and its public key, once per session); the other multiplies
    /// them by its plaintext matrix, masks each result with a fresh uniform `r`, re-randomises,
    /// floods and returns them: the encrypting party's share is the decryption `AᵀB − r`, the
    /// evaluator's `r`. Then [`Engine::lift`] to `Z_2^64`, and the chunks' shares are summed.
    ///
    /// What each party learns: nothing beyond the public shape and bounds. The evaluator sees
    /// only ciphertexts under the peer's key (RLWE); the encrypting party sees re-randomised
    /// ciphertexts whose decryptions are its uniform shares, with the evaluator's matrix hidden
    /// by flooding (statistical distance at most `2^−40` over the session, see [`crate::he`]).
    /// Each output share alone is uniform (mod `2^ℓ`, then mod `2^64` after the lift).
    ///
    /// Bytes per chunk: `blocks·⌈x_cols/gx⌉` ciphertexts of 196,640 B one way, about
    /// `a_cols·b_cols·rows·(ℓ + 15)/8` B back (e.g. 1.4 MB for 1024 rows, 11 × 12 columns,
    /// ℓ = 46), then `a_cols·b_cols` lift OTs.
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
        let call = CrossGram { a_owner, own, rows, a_cols, b_cols, a_bits, b_bits, shift: 0 };
        Ok(self.cross_grams(&[call])?.pop().expect("one product per call"))
    }

    /// Several independent [`Engine::cross_gram`] products in the turns of one, each output
    /// shifted right by its `shift` bits: shares of `⌊AᵀB / 2^shift⌋`, minus at most one per
    /// row chunk of the product (`shift` at most `ℓ − 2` for the chunks' rings `ℓ`, an error
    /// otherwise; `shift` 0: exact). Both parties pass the same calls in the same order (each
    /// its own matrix per call).
    ///
    /// Protocol: the homomorphic products of all calls' row chunks in one exchange (each party
    /// sends the ciphertexts of the chunks it encrypts, then answers the peer's, then decrypts
    /// its replies: one turn, two if both parties encrypt), then one
    /// [`Engine::lift_truncate`] of every chunk by its call's `shift` in one COT call, and the
    /// chunks' shares are summed. What each party learns: what it learns from the calls made
    /// one by one ([`Engine::cross_gram`], [`Engine::lift_truncate`]): nothing beyond the public
    /// shapes and bounds. Bytes: those of the calls one by one (the lifts' corrections in the
    /// widest COT ring of all chunks).
    pub fn cross_grams(&mut self, calls: &[CrossGram]) -> Result<Vec<Vec<u64>>> {
        let mut chunks = Vec::new();
        let mut keys_sent = self.he.keys_sent;
        for (index, call) in calls.iter().enumerate() {
            for (part, ring) in self.cross_gram_chunks(call)? {
                if call.shift > ring - 2 {
                    return Err(Error::Input(InputError::Usage {
                        op: "cross_grams",
                        detail: format!("shift of {} bits on a {ring}-bit product: at most {}", call.shift, ring - 2),
                    }));
                }
                let (a, b) = (call.a_cols, call.b_cols);
                let (layout, budget) =
                    Layout::choose(part.rows, call.a_owner, a, b, (call.a_bits, call.b_bits), ring, keys_sent)?;
                let encryptor = if layout.a_encrypts { call.a_owner } else { call.a_owner.peer() };
                self.he_count_flooded(encryptor, a * b, "cross_gram")?;
                keys_sent[encryptor.index()] = true;
                chunks.push(Chunk { call: index, part, ring, layout, budget, encryptor });
            }
        }
        let before = self.ch.stats().total_bytes();
        let mut shares = self.he_exchange(&chunks)?;
        self.correction_bytes += self.ch.stats().total_bytes() - before;
        for (w, c) in shares.iter_mut().zip(&chunks) {
            // w is x_cols × y_cols; the result is a_cols × b_cols.
            if !c.layout.a_encrypts {
                let (a_cols, b_cols) = (calls[c.call].a_cols, calls[c.call].b_cols);
                *w = (0..a_cols)
                    .flat_map(|i| (0..b_cols).map(move |k| (i, k)))
                    .map(|(i, k)| w[k * a_cols + i])
                    .collect();
            }
        }
        let lifts: Vec<(&[u64], u32, u32)> =
            shares.iter().zip(&chunks).map(|(w, c)| (w.as_slice(), c.ring, calls[c.call].shift)).collect();
        let lifted = self.lift_truncate_many(&lifts, Role::Bank)?;
        let mut out: Vec<Vec<u64>> = calls.iter().map(|c| vec![0u64; c.a_cols * c.b_cols]).collect();
        for (l, c) in lifted.iter().zip(&chunks) {
            out[c.call].iter_mut().zip(l).for_each(|(t, v)| *t = t.wrapping_add(*v));
        }
        Ok(out)
    }

    /// Checks one call of [`Engine::cross_grams`] (shape, and this party's entries against its
    /// bound, before anything is sent) and cuts it into row chunks small enough that each
    /// chunk's product fits a ring of at most [`he::MAX_PLAIN_BITS`] bits: (this party's rows of
    /// the chunk, the chunk's ring); none for an empty product.
    fn cross_gram_chunks(&self, call: &CrossGram) -> Result<Vec<(PlainMatrix, u32)>> {
        let CrossGram { a_owner, own, rows, a_cols, b_cols, a_bits, b_bits, .. } = *call;
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
        if a_bits == 0 || b_bits == 0 || a_bits + b_bits > he::MAX_PLAIN_BITS {
            return Err(Error::Input(InputError::Usage {
                op: "cross_gram",
                detail: format!(
                    "{a_bits}- and {b_bits}-bit entries need a {}-bit ring even for one row; the homomorphic product allows {} (bits ≥ 1)",
                    a_bits + b_bits,
                    he::MAX_PLAIN_BITS
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
            return Ok(Vec::new());
        }
        // Largest power-of-two chunk whose ring fits the homomorphic product.
        let chunk = 1usize << (he::MAX_PLAIN_BITS - a_bits - b_bits).min(usize::BITS - 2);
        Ok((0..rows)
            .step_by(chunk)
            .map(|r0| {
                let r1 = (r0 + chunk).min(rows);
                let data = own.data[r0 * own_cols..r1 * own_cols].to_vec();
                (PlainMatrix { rows: r1 - r0, cols: own_cols, data }, cross_gram_ring(r1 - r0, a_bits, b_bits).max(3))
            })
            .collect())
    }

    /// The homomorphic products of `chunks` in one exchange: sends the ciphertexts of the chunks
    /// this party encrypts, answers the peer's chunks in order, then decrypts its replies.
    /// Returns this party's shares mod `2^ring` of each chunk's `XᵀY` (`x_cols × y_cols`).
    fn he_exchange(&mut self, chunks: &[Chunk]) -> Result<Vec<Vec<u64>>> {
        let me = self.role;
        let key = match self.he.key.take() {
            Some(key) => Some(key),
            None if chunks.iter().any(|c| c.encryptor == me) => Some(SecretKey::generate(&mut self.rng.0)),
            None => None,
        };
        let mut exchange = |key: Option<&SecretKey>| -> Result<Vec<Vec<u64>>> {
            for c in chunks.iter().filter(|c| c.encryptor == me) {
                self.he_encrypt(key.expect("made above"), &c.part, &c.layout, c.ring)?;
            }
            // All the peer's ciphertexts first, then all replies: one turn for the exchange.
            let cts = chunks
                .iter()
                .map(|c| if c.encryptor == me { Ok(Vec::new()) } else { self.he_receive(&c.layout) })
                .collect::<Result<Vec<_>>>()?;
            let mut shares = Vec::with_capacity(chunks.len());
            for (c, cts) in chunks.iter().zip(&cts) {
                shares.push(if c.encryptor == me {
                    Vec::new()
                } else {
                    self.he_evaluate(&c.part, &c.layout, &c.budget, cts)?
                });
            }
            for (w, c) in shares.iter_mut().zip(chunks).filter(|(_, c)| c.encryptor == me) {
                *w = self.he_decrypt(key.expect("made above"), &c.layout, c.ring)?;
            }
            Ok(shares)
        };
        let result = exchange(key.as_ref());
        self.he.key = key;
        result
    }

    /// Counts `outputs` flooded coefficients under `owner`'s key (error beyond the session cap).
    pub(super) fn he_count_flooded(&mut self, owner: Role, outputs: usize, op: &'static str) -> Result<()> {
        let flooded = &mut self.he.flooded[owner.index()];
        if *flooded + outputs as u64 > he::MAX_FLOODED {
            return Err(Error::Input(InputError::Usage {
                op,
                detail: format!(
                    "more than {} homomorphic results under one key in one session: split the job into sessions",
                    he::MAX_FLOODED
                ),
            }));
        }
        *flooded += outputs as u64;
        Ok(())
    }

    /// Encrypts `own` (the layout's X) and sends it, with this party's public key the first time.
    fn he_encrypt(&mut self, key: &SecretKey, own: &PlainMatrix, layout: &Layout, ring: u32) -> Result<()> {
        if !self.he.keys_sent[self.role.index()] {
            self.ch.send_bulk("he.pk", &key.public_key_bytes())?;
            self.he.keys_sent[self.role.index()] = true;
        }
        let mask = low_mask(ring);
        let mut cts = Vec::with_capacity(layout.blocks() * layout.x_groups() * he::CT_BYTES);
        for blk in 0..layout.blocks() {
            let block_rows = blk * layout.block..((blk + 1) * layout.block).min(layout.rows);
            for u in 0..layout.x_groups() {
                let mut m = vec![0u64; N];
                for j in layout.x_range(u) {
                    for (i, r) in block_rows.clone().enumerate() {
                        m[(j - u * layout.gx) * layout.block + i] = own.data[r * own.cols + j] & mask;
                    }
                }
                cts.extend(key.encrypt(&m, ring, &mut self.rng.0));
            }
        }
        self.ch.send_bulk("he.ct", &cts)
    }

    /// Receives the replies to this party's ciphertexts of X and decrypts them: its shares of
    /// `XᵀY` (`x_cols × y_cols`) mod `2^ring`.
    fn he_decrypt(&mut self, key: &SecretKey, layout: &Layout, ring: u32) -> Result<Vec<u64>> {
        let replies = self.ch.recv_bulk_exact("he.prod", layout.reply_bytes(ring) as u64)?;
        let mut w = vec![0u64; layout.x_cols * layout.y_cols];
        let mut rest = replies.as_slice();
        for u in 0..layout.x_groups() {
            for v in 0..layout.y_groups() {
                let outputs = layout.outputs(u, v);
                let (reply, tail) = rest.split_at(he::reply_bytes(ring, outputs.len()));
                rest = tail;
                let positions: Vec<usize> = outputs.iter().map(|o| o.2).collect();
                for (&(j, k, _), value) in outputs.iter().zip(key.decrypt(reply, ring, &positions)?) {
                    w[j * layout.y_cols + k] = value;
                }
            }
        }
        Ok(w)
    }

    /// Receives the peer's ciphertexts of X for `layout` (and its public key the first time).
    fn he_receive(&mut self, layout: &Layout) -> Result<Vec<Ciphertext>> {
        self.he.keys_sent[self.role.peer().index()] = true;
        if self.he.peer_key.is_none() {
            self.he.peer_key = Some(PublicKey::from_bytes(&self.ch.recv_bulk("he.pk", he::PK_BYTES as u64)?)?);
        }
        let count = layout.blocks() * layout.x_groups();
        let bytes = self.ch.recv_bulk_exact("he.ct", (count * he::CT_BYTES) as u64)?;
        bytes.chunks_exact(he::CT_BYTES).map(Ciphertext::from_bytes).collect()
    }

    /// Multiplies the peer's ciphertexts `cts` of X by `own` (the layout's Y) and replies: this
    /// party's shares (the masks `r`) of `XᵀY` (`x_cols × y_cols`) mod `2^ring`.
    fn he_evaluate(
        &mut self,
        own: &PlainMatrix,
        layout: &Layout,
        budget: &Budget,
        cts: &[Ciphertext],
    ) -> Result<Vec<u64>> {
        // plains[blk][v]
        let plains: Vec<Vec<Plain>> = (0..layout.blocks())
            .map(|blk| {
                let block_rows = blk * layout.block..((blk + 1) * layout.block).min(layout.rows);
                (0..layout.y_groups())
                    .map(|v| {
                        let mut c = vec![0i64; N];
                        for k in layout.y_range(v) {
                            let base = (k - v * layout.gy) * layout.gx * layout.block;
                            for (i, r) in block_rows.clone().enumerate() {
                                let y = own.data[r * own.cols + k] as i64;
                                if base >= i {
                                    c[base - i] += y;
                                } else {
                                    c[N + base - i] -= y;
                                }
                            }
                        }
                        Plain::new(&c)
                    })
                    .collect()
            })
            .collect();
        let pk = self.he.peer_key.as_ref().expect("received above");
        let mut w = vec![0u64; layout.x_cols * layout.y_cols];
        let mut reply = Vec::with_capacity(layout.reply_bytes(budget.bits));
        for u in 0..layout.x_groups() {
            for v in 0..layout.y_groups() {
                let mut eval = Evaluator::new();
                for blk in 0..layout.blocks() {
                    eval.add_product(&cts[blk * layout.x_groups() + u], &plains[blk][v]);
                }
                let outputs = layout.outputs(u, v);
                let positions: Vec<usize> = outputs.iter().map(|o| o.2).collect();
                let (bytes, r) = eval.finish(pk, budget, &positions, &mut self.rng.0);
                reply.extend(bytes);
                for (&(j, k, _), rk) in outputs.iter().zip(r) {
                    w[j * layout.y_cols + k] = rk;
                }
            }
        }
        self.ch.send_bulk("he.prod", &reply)?;
        Ok(w)
    }

    /// Extends shares mod `2^ring` (the low `ring` bits of each `x`) of values with
    /// `|v| < 2^(ring−2)` to shares in `Z_2^64` of the same values, sign-extended. `ring` in
    /// `3..=64` (64: returned unchanged, no message). Values outside the bound come out wrong by
    /// a multiple of `2^ring`; callers guarantee the bound (e.g. [`Engine::cross_gram`]).
    ///
    /// `lift_truncate` by 0 bits: one COT per element in `Z_2^(64−ring)` for the wrap
    /// bit of the two shares (the bank COT sender). What each party learns: nothing; each output
    /// share alone is uniform. Bytes: one OT (16 B) plus `64 − ring` bits per element, one round
    /// trip.
    pub fn lift(&mut self, x: &[u64], ring: u32) -> Result<Vec<u64>> {
        self.lift_truncate(x, ring, 0, Role::Bank)
    }

    /// Shares of `M·v`, truncated by `f` bits, for a `rows × cols` matrix `M` whose entries are
    /// each known to one party in plaintext or additively shared, as the public `known_by` says
    /// (row-major; `Some(r)`: `r`'s plaintext, `None`: shared), and a shared `v` (length
    /// `cols`). Each party passes as `own` its plaintext at its entries, its share at the shared
    /// ones and anything at the peer's (ignored). Both pass the same shape, `known_by` and
    /// public `bound_bits`.
    ///
    /// Exact (the truncation's `⌊M·v⌋` or one ulp below) while the real value satisfies
    /// `|M·v| < 2^bound_bits` (`M` and `v` with `f` fractional bits each): the product is computed
    /// in the ring `Z_2^m`, `m = bound_bits + 2f + 2 ≤ 64` (so `|M·v| < 2^(m−2)` ring units), from
    /// the shares reduced mod `2^m`. Beyond it an entry may come out off by a multiple of
    /// `2^(bound_bits + 2)` (real; whether depends on the random shares) and nothing tells: the
    /// caller's bound must hold.
    ///
    /// Protocol: with `M = M_me + M_peer` (a party's part is zero at the peer's entries),
    /// `M·v = M_me·v_me + M_me·v_peer + M_peer·v_me + M_peer·v_peer`. The cross terms are Gilboa
    /// products in `Z_2^m`: each party is COT sender, per column `j`, with its entries of column
    /// `j` (its own and the shared ones) and receiver with the `m` low bits of its `v_j` share
    /// for the peer's and the shared entries. A plaintext entry thus costs one direction, a
    /// shared one two. Both directions and all column widths run in one batch (one flight with
    /// the silent source, two with IKNP). The sum mod `2^m` is lifted to `Z_2^64` and truncated
    /// in one step (`lift_truncate`, one more round trip), so shares of `M` may be full-range
    /// ring elements.
    ///
    /// What each party learns: nothing beyond the public shape, `known_by` and bound (COT
    /// security, see `cot`, and `lift_truncate`); output shares are uniform. Bytes:
    /// per direction `m` OTs per column with an entry in that direction (16 B each with IKNP),
    /// `m(m+1)/16` B of corrections per entry and direction (`Σ_{k<m}(m − k)` bits; 135 B at
    /// m = 46, 260 B at m = 64), then one OT and `64 − m + f` bits per row.
    pub fn matvec_shared(
        &mut self,
        own: &PlainMatrix,
        known_by: &[Option<Role>],
        v: &[u64],
        bound_bits: u32,
    ) -> Result<Vec<u64>> {
        Ok(self.matvec_shared_with(own, known_by, v, bound_bits, None)?.0)
    }

    /// [`Engine::truncate`] of `x` by `bits`, then [`Engine::matvec_shared`] with the result as
    /// `v`: returns (the truncated `x`, the product), exactly as the two calls give them, in the
    /// turns of the product alone when `bits` is in `1..=min(m, 64 − m)` (`m = bound_bits + 2f +
    /// 2`, the product's ring; otherwise it makes the two calls). The truncation's output is
    /// right in its low `64 − bits` bits before its COT (which only fixes the bits above, see
    /// `trunc`), and the product reads only the low `m` bits of `v`, so the product starts at
    /// once and the truncation's COT runs in the product's own COT call (in its ring `Z_2^m`,
    /// reduced to the `bits` bits it needs).
    ///
    /// What each party learns: what it learns from the two calls (the same messages, sent
    /// together): nothing beyond the public shapes and bound. Bytes: the two calls' bytes, the
    /// truncation's corrections `m` instead of `bits` bits per element.
    pub fn truncate_then_matvec_shared(
        &mut self,
        x: &[u64],
        bits: u32,
        own: &PlainMatrix,
        known_by: &[Option<Role>],
        bound_bits: u32,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let ring = bound_bits + 2 * self.fp.frac_bits + 2;
        if bits == 0 || bits > ring || ring + bits > 64 {
            let t = self.truncate(x, bits)?;
            let product = self.matvec_shared(own, known_by, &t, bound_bits)?;
            return Ok((t, product));
        }
        let t = self.trunc_start(x, 64, bits, Role::Gov)?;
        let low = self.trunc_finish(&t, &vec![0; x.len()]);
        let (product, and_shares) = self.matvec_shared_with(own, known_by, &low, bound_bits, Some(&t))?;
        let mask = low_mask(t.cot_ring());
        let and_shares: Vec<u64> = and_shares.iter().map(|v| v & mask).collect();
        Ok((self.trunc_finish(&t, &and_shares), product))
    }

    /// [`Engine::matvec_shared`], with the COT of a started truncation `pending` (if any) in the
    /// same COT call: returns (product, this party's COT shares of the truncation mod `2^m`).
    fn matvec_shared_with(
        &mut self,
        own: &PlainMatrix,
        known_by: &[Option<Role>],
        v: &[u64],
        bound_bits: u32,
        pending: Option<&TruncStart>,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let (rows, cols) = (own.rows, own.cols);
        let f = self.fp.frac_bits;
        if own.data.len() != rows * cols || known_by.len() != rows * cols || v.len() != cols {
            return Err(Error::Input(InputError::Usage {
                op: "matvec_shared",
                detail: format!(
                    "matrix {rows}×{cols} with {} entries and {} holders, vector of {}",
                    own.data.len(),
                    known_by.len(),
                    v.len()
                ),
            }));
        }
        let ring = bound_bits + 2 * f + 2;
        if ring > 64 {
            return Err(Error::Input(InputError::Usage {
                op: "matvec_shared",
                detail: format!(
                    "a bound of 2^{bound_bits} at {f} fractional bits needs a {ring}-bit ring; use bound_bits ≤ {}",
                    62u32.saturating_sub(2 * f)
                ),
            }));
        }
        let mask = low_mask(ring);
        let me = self.role;
        // Rows of column j with entries this party / the peer contributes.
        let rows_of = |j: usize, who: Role| -> Vec<usize> {
            (0..rows).filter(|&i| known_by[i * cols + j] != Some(who.peer())).collect()
        };
        let mut out = vec![0u64; rows];
        for (i, o) in out.iter_mut().enumerate() {
            for j in 0..cols {
                if known_by[i * cols + j] != Some(me.peer()) {
                    *o = o.wrapping_add(own.data[i * cols + j].wrapping_mul(v[j]));
                }
            }
        }
        // Columns grouped by width (ascending, columns ascending: the peer groups alike), per
        // direction: (width, columns, rows of each column).
        let shapes = |who: Role| -> Vec<(usize, Vec<usize>, Vec<Vec<usize>>)> {
            let mut by_width = std::collections::BTreeMap::<usize, (Vec<usize>, Vec<Vec<usize>>)>::new();
            for j in 0..cols {
                let r = rows_of(j, who);
                if !r.is_empty() {
                    let e = by_width.entry(r.len()).or_default();
                    e.0.push(j);
                    e.1.push(r);
                }
            }
            by_width.into_iter().map(|(w, (js, rs))| (w, js, rs)).collect()
        };
        let (send_shapes, recv_shapes) = (shapes(me), shapes(me.peer()));
        let corr: Vec<Vec<u64>> = send_shapes
            .iter()
            .map(|(_, js, rs)| {
                js.iter().zip(rs).flat_map(|(&j, r)| r.iter().map(move |&i| own.data[i * cols + j] & mask)).collect()
            })
            .collect();
        let choices: Vec<Vec<u64>> =
            recv_shapes.iter().map(|(_, js, _)| js.iter().map(|&j| v[j] & mask).collect()).collect();
        let mut send: Vec<CotSend> = send_shapes
            .iter()
            .zip(&corr)
            .map(|((w, js, _), c)| CotSend { corr: c, groups: js.len(), width: *w, bits: ring })
            .collect();
        let mut recv: Vec<CotRecv> = recv_shapes
            .iter()
            .zip(&choices)
            .map(|((w, js, _), c)| CotRecv { choices: c, groups: js.len(), width: *w, bits: ring })
            .collect();
        // The pending truncation's COT goes last, after the product's shapes, at both parties.
        if let Some(t) = pending {
            let n = t.top.len();
            if t.cot_sender == me {
                send.push(CotSend { corr: &t.top, groups: n, width: 1, bits: 1 });
            } else {
                recv.push(CotRecv { choices: &t.top, groups: n, width: 1, bits: 1 });
            }
        }
        let (mut s, mut r) = self.cot_many(&send, &recv, ring)?;
        let and_shares = match pending {
            Some(t) if t.cot_sender == me => s.pop(),
            Some(_) => r.pop(),
            None => None,
        };
        for (shapes, shares) in [(&send_shapes, &s), (&recv_shapes, &r)] {
            for ((w, _, rs), sh) in shapes.iter().zip(shares) {
                for (r, col) in rs.iter().zip(sh.chunks_exact(*w)) {
                    r.iter().zip(col).for_each(|(&i, x)| out[i] = out[i].wrapping_add(*x));
                }
            }
        }
        Ok((self.lift_truncate(&out, ring, f, Role::Gov)?, and_shares.unwrap_or_default()))
    }
}
