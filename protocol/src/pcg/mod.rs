//! Pseudorandom correlation generator ("silent" OT / VOLE): random correlated OT and VOLE over
//! GF(2^128), expanded by the two nodes from a short seed correlation.
//!
//! Correlations (Δ is the sender's, uniform, fixed for one call):
//! - VOLE: the sender holds `Δ` and `b`, the receiver `a` and `c` with `c_i = b_i + a_i·Δ` in
//!   [`Gf128`].
//! - COT (subfield VOLE with bits): the sender holds `Δ` and `s`, the receiver choice bits `x`
//!   and `t` with `t_i = s_i ⊕ x_i·Δ`. Hash before use as OT messages (e.g. `H(s_i)`,
//!   `H(s_i ⊕ Δ)` with [`crate::ot::CrHash`] and tweaks of the caller's own).
//!
//! Which role is the sender is the caller's choice; the two parties call the matching pair
//! (`*_send` / `*_receive`) with the same `n`. Each call is independent: fresh base OTs, fresh
//! Δ. Frame kinds `pcg.*`; four flights (two round trips), see [`silent`]; [`cot_both`] runs
//! one COT call each way in five.
//!
//! Construction (dual LPN with regular noise, Boyle–Couteau–Gilboa–Ishai–Kohl–Scholl,
//! CCS 2019 "Efficient two-round OT extension and silent non-interactive secure computation"):
//! 1. Seed: 128 Chou–Orlandi base OTs and IKNP ([`crate::ot`]), the sender holding Δ.
//! 2. Regular noise: `t` punctured half-trees ([`tree`], Guo et al. EUROCRYPT 2023) of `2^d`
//!    leaves give the sender `w` and the receiver `u = w + e·Δ`, `e` having exactly one nonzero
//!    entry per tree (1 for COT, a uniform `β_i` for VOLE, whose `β_i·Δ` comes from Gilboa's
//!    product over 128 raw IKNP COTs). Only the receiver knows where.
//! 3. Compression by the public linear map `H: F^N → F^n` of a systematic Expand-Convolute
//!    code ([`code`]): `b = H·w`, `c = H·u`, `a = H·e`.
//!
//! Parameters (128-bit security), per piece of `n ≤ 2^20` outputs (larger runs are cut into
//! `⌈n / 2^20⌉` equal pieces, each an independent instance with its own trees and noise: the
//! same security as that many runs): `N ≥ 2n` (for `n < 4096` the generator runs at `n = 4096`
//! and truncates): `t ≥ NOISE_WEIGHT` trees of `2^d` leaves, `d` the largest with
//! `256·2^d ≤ 2n`, `t = ⌈2n / 2^d⌉ < 512` (more trees than 256 only add noise). The code is
//! `ExConv7x24` of Raghuraman–Rindal–Tanguy (CRYPTO 2023, eprint 2023/882; the same paper shows
//! the Silver codes are broken) in libOTe's form: systematic, expander weight 7 (regular: one
//! index per seventh of the non-systematic part), convolution band 24, convolution run twice
//! (libOTe's `accTwice`). Least noise weight [`NOISE_WEIGHT`] `t = 256`: the smallest multiple
//! of 8 with `(1 − 2δ)^t ≤ 2^-128`, i.e. the bias of the best linear test against regular noise
//! stays below 2^-128, for the relative (pseudo) minimum distance `δ = 0.15` that libOTe currently
//! estimates for `ExConv7x24` (`ExConvConfigure` in libOTe's `TwoChooseOne/ConfigureCode.cpp`;
//! the older `δ = 0.1` gave `t = 400`). libOTe's own `getRegNoiseWeight` is now less strict: it
//! asks only 64 bits against that linear test and at least 128 noise positions (`t = 128` here);
//! we keep the full 128 bits against the linear test. (libOTe draws 4 of the 7 expander indices
//! regularly and 3 uniformly over the whole part; ours are all regular.)
//!
//! What each party learns (semi-honest; 128-bit computational, in the random-oracle / ideal
//! cipher model for the base OT, the tweakable hash and the fixed-key AES tree hash (circular
//! correlation robust: the COT trees are offset by Δ itself), and under
//! dual LPN for the code):
//! - The sender sees only IKNP columns, whose choice bits (the punctured positions and `β_i`) are
//!   hidden by IKNP: it learns nothing about `a` / `x`.
//! - COT fixes Δ's low bit to 1 and clears the leaves' low bits (choice-bit packing, see
//!   [`silent::Kind::Cot`]): Δ has 127 secret bits, so guessing it succeeds with `2^−127`.
//! - The receiver sees the masked level sums (and for VOLE one correction per tree). It learns
//!   every leaf but its punctured ones, which stay pseudorandom, so `Δ` stays hidden:
//!   `b_i = c_i + a_i·Δ` is pseudorandom to it. The outputs `a`, `x` are pseudorandom under dual LPN.

mod blocks;
pub mod code;
pub mod silent;
pub mod tree;

pub use blocks::Blocks;

use rand::CryptoRng;
use zeroize::Zeroize;

use crate::gf128::Gf128;
use crate::{Channel, Error, InputError, Result};
use code::Code;
use silent::{BaseAnswer, BaseOffer, Extension, Kind, ReceiverStart, SenderStart, TreeMessage};
use tree::Shape;

/// Largest `n` one call accepts. Memory at each party, per output: COT 32 bytes (the `N = 2n`
/// leaves, compressed in place), VOLE receiver 48 (its noise encoded first, then the leaves).
pub const MAX_N: usize = 1 << 26;
/// Least regular noise weight `t` (number of GGM trees); see the module docs for its derivation.
pub const NOISE_WEIGHT: usize = 256;
/// The generator never runs below this many outputs (smaller requests are truncated).
pub const MIN_INTERNAL_N: usize = 4096;
/// Most outputs of one piece: larger runs are cut into equal independent pieces of at most
/// this many, each with its own trees and code (a piece's `2·2^20` leaves keep the code's
/// random reads in cache; 256 trees per piece still cost under 1 bit per output).
pub const PIECE_N: usize = 1 << 20;

/// The public sizes of one run, the same at both parties for the same `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Outputs returned.
    pub n: usize,
    /// Independent pieces: piece `k` is trees `k·trees/pieces ..` (leaves `k·code.big_n ..`),
    /// compressed by `code` into outputs `k·code.n ..`.
    pub pieces: usize,
    /// GGM trees in all (per piece at least [`NOISE_WEIGHT`], the noise weight).
    pub trees: usize,
    pub shape: Shape,
    /// One piece's code.
    pub code: Code,
}

impl Params {
    pub fn new(n: usize) -> Result<Params> {
        if n == 0 || n > MAX_N {
            return Err(Error::Input(InputError::Usage { op: "pcg", detail: format!("n = {n} outside 1..={MAX_N}") }));
        }
        let internal = n.max(MIN_INTERNAL_N);
        let pieces = internal.div_ceil(PIECE_N);
        let piece_n = internal.div_ceil(pieces);
        // Per piece: trees of 2^depth leaves (the half-tree needs whole levels), at least
        // NOISE_WEIGHT of them, together at least 2·piece_n leaves (fewer than
        // 2·piece_n + 2^depth).
        let depth = (2 * piece_n / NOISE_WEIGHT).ilog2() as usize;
        let shape = Shape::new(depth);
        let per_piece = (2 * piece_n).div_ceil(shape.leaves);
        Ok(Params { n, pieces, trees: pieces * per_piece, shape, code: Code::new(piece_n, per_piece * shape.leaves) })
    }

    /// Leaves of all pieces.
    pub fn leaves(&self) -> usize {
        self.pieces * self.code.big_n
    }

    /// Compresses `x` ([`Params::leaves`] long) to the `n` outputs in place: each piece's code,
    /// its outputs moved down behind the previous piece's; the rest wiped and cut off.
    pub fn encode_in_place(&self, x: &mut Blocks) {
        assert_eq!(x.len(), self.leaves());
        let (n, big_n) = (self.code.n, self.code.big_n);
        for k in 0..self.pieces {
            self.code.dual_encode(&mut x[k * big_n..(k + 1) * big_n]);
            // Below piece k's own leaves (n ≤ big_n − n), over pieces already encoded (piece 0's
            // are in place).
            if k > 0 {
                x.copy_within(k * big_n..k * big_n + n, k * n);
            }
        }
        x.truncate(self.n);
    }
}

/// VOLE sender's output: `delta` and `b` (see the module docs). Zeroized on drop.
pub struct VoleSender {
    pub delta: Gf128,
    pub b: Vec<Gf128>,
}

/// VOLE receiver's output: `a` and `c` with `c_i = b_i + a_i·Δ`. Zeroized on drop.
pub struct VoleReceiver {
    pub a: Vec<Gf128>,
    pub c: Vec<Gf128>,
}

impl Drop for VoleSender {
    fn drop(&mut self) {
        self.delta.zeroize();
        self.b.zeroize();
    }
}

impl Drop for VoleReceiver {
    fn drop(&mut self) {
        self.a.zeroize();
        self.c.zeroize();
    }
}

/// Drives the sender's steps over `ch`. Every peer message is length-checked before use.
fn send<R: CryptoRng + ?Sized>(ch: &mut Channel, kind: Kind, n: usize, rng: &mut R) -> Result<silent::SenderOutput> {
    let start = SenderStart::new(kind, n)?;
    let params = Params::new(n)?;
    let (mut extending, answer) = start.on_base_offer(&BaseOffer::recv(ch)?, rng)?;
    answer.send(ch)?;
    extending.expand_trees(rng);
    let (encoding, trees) = extending.on_extension(&Extension::recv(ch, &params, kind)?, rng)?;
    trees.send(ch)?;
    Ok(encoding.finish())
}

/// Drives the receiver's steps up to the last message.
fn receive<R: CryptoRng + ?Sized>(
    ch: &mut Channel,
    kind: Kind,
    n: usize,
    rng: &mut R,
) -> Result<(silent::ReceiverExtended, TreeMessage)> {
    let params = Params::new(n)?;
    let (start, offer) = ReceiverStart::start(kind, n, rng)?;
    offer.send(ch)?;
    let (extended, ext) = start.on_base_answer(&BaseAnswer::recv(ch)?, rng)?;
    ext.send(ch)?;
    Ok((extended, TreeMessage::recv(ch, &params, kind)?))
}

// How each flight travels over a channel (the drivers here and [`crate::psi_vole`]'s). Every
// receive is size-limited before anything is allocated.
impl BaseOffer {
    pub(crate) fn send(self, ch: &mut Channel) -> Result<()> {
        ch.send_frame(Self::KIND, self.0)
    }
    pub(crate) fn recv(ch: &mut Channel) -> Result<BaseOffer> {
        Ok(BaseOffer(ch.recv_frame(Self::KIND)?))
    }
}
impl BaseAnswer {
    pub(crate) fn send(&self, ch: &mut Channel) -> Result<()> {
        ch.send_bulk(Self::KIND, &self.0)
    }
    pub(crate) fn recv(ch: &mut Channel) -> Result<BaseAnswer> {
        Ok(BaseAnswer(ch.recv_bulk(Self::KIND, Self::LEN as u64)?))
    }
}
impl Extension {
    pub(crate) fn send(&self, ch: &mut Channel) -> Result<()> {
        ch.send_bulk(Self::KIND, &self.0)
    }
    pub(crate) fn recv(ch: &mut Channel, p: &Params, kind: Kind) -> Result<Extension> {
        Ok(Extension(ch.recv_bulk(Self::KIND, Extension::len(p, kind) as u64)?))
    }
}
impl TreeMessage {
    pub(crate) fn send(&self, ch: &mut Channel) -> Result<()> {
        ch.send_bulk(Self::KIND, &self.encode())
    }
    pub(crate) fn recv(ch: &mut Channel, p: &Params, kind: Kind) -> Result<TreeMessage> {
        let bytes = ch.recv_bulk(Self::KIND, (TreeMessage::elements(p, kind) * 16) as u64)?;
        TreeMessage::decode(p, kind, &bytes)
    }
}

/// Random COT, sender side: returns (Δ, s).
pub fn cot_send<R: CryptoRng + ?Sized>(ch: &mut Channel, n: usize, rng: &mut R) -> Result<(Gf128, Blocks)> {
    let mut out = send(ch, Kind::Cot, n, rng)?;
    Ok((Gf128(out.delta), std::mem::take(&mut out.b)))
}

/// Random COT, receiver side: returns (x, t) with `t_i = s_i ⊕ x_i·Δ`.
pub fn cot_receive<R: CryptoRng + ?Sized>(ch: &mut Channel, n: usize, rng: &mut R) -> Result<(Vec<bool>, Blocks)> {
    let (extended, trees) = receive(ch, Kind::Cot, n, rng)?;
    let mut out = extended.on_trees_cot(&trees)?;
    Ok((std::mem::take(&mut out.a), std::mem::take(&mut out.c)))
}

/// Random COTs in both directions at once: this party is the sender of `n_send` COTs (returns
/// its (Δ, s) as [`cot_send`]) and the receiver of `n_recv` (its (x, t) as [`cot_receive`]);
/// the peer calls with the two counts swapped. The same messages as the two runs one after the
/// other, so the same security; interleaved so that their eight flights take five, alternating
/// (bank, gov, bank, gov, bank), each party's messages of one flight sent together: two and a
/// half round trips instead of four.
#[allow(clippy::type_complexity)]
pub fn cot_both<R: CryptoRng + ?Sized>(
    ch: &mut Channel,
    n_send: usize,
    n_recv: usize,
    rng: &mut R,
) -> Result<((Gf128, Blocks), (Vec<bool>, Blocks))> {
    let (send_params, recv_params) = (Params::new(n_send)?, Params::new(n_recv)?);
    let sender = SenderStart::new(Kind::Cot, n_send)?;
    let (receiver, offer) = ReceiverStart::start(Kind::Cot, n_recv, rng)?;
    let (encoding, extended, trees) = if ch.role() == crate::Role::Gov {
        // The bank's offer leads; the gov answers it with its own offer, and so on.
        let (mut extending, answer) = sender.on_base_offer(&BaseOffer::recv(ch)?, rng)?;
        answer.send(ch)?;
        offer.send(ch)?;
        extending.expand_trees(rng);
        let (encoding, my_trees) = extending.on_extension(&Extension::recv(ch, &send_params, Kind::Cot)?, rng)?;
        let (extended, ext) = receiver.on_base_answer(&BaseAnswer::recv(ch)?, rng)?;
        my_trees.send(ch)?;
        ext.send(ch)?;
        (encoding, extended, TreeMessage::recv(ch, &recv_params, Kind::Cot)?)
    } else {
        offer.send(ch)?;
        let answer = BaseAnswer::recv(ch)?;
        let peer_offer = BaseOffer::recv(ch)?;
        let (extended, ext) = receiver.on_base_answer(&answer, rng)?;
        let (mut extending, my_answer) = sender.on_base_offer(&peer_offer, rng)?;
        ext.send(ch)?;
        my_answer.send(ch)?;
        extending.expand_trees(rng);
        let trees = TreeMessage::recv(ch, &recv_params, Kind::Cot)?;
        let (encoding, my_trees) = extending.on_extension(&Extension::recv(ch, &send_params, Kind::Cot)?, rng)?;
        my_trees.send(ch)?;
        (encoding, extended, trees)
    };
    let mut sent = encoding.finish();
    let mut out = extended.on_trees_cot(&trees)?;
    Ok(((Gf128(sent.delta), std::mem::take(&mut sent.b)), (std::mem::take(&mut out.a), std::mem::take(&mut out.c))))
}

/// Random VOLE over GF(2^128), sender side.
pub fn vole_send<R: CryptoRng + ?Sized>(ch: &mut Channel, n: usize, rng: &mut R) -> Result<VoleSender> {
    let out = send(ch, Kind::Vole, n, rng)?;
    let b = out.b.iter().map(|&v| Gf128(v)).collect();
    Ok(VoleSender { delta: Gf128(out.delta), b })
}

/// Random VOLE over GF(2^128), receiver side.
pub fn vole_receive<R: CryptoRng + ?Sized>(ch: &mut Channel, n: usize, rng: &mut R) -> Result<VoleReceiver> {
    let (extended, trees) = receive(ch, Kind::Vole, n, rng)?;
    let out = extended.on_trees_vole(&trees)?;
    let a = out.a.iter().map(|&v| Gf128(v)).collect();
    let c = out.c.iter().map(|&v| Gf128(v)).collect();
    Ok(VoleReceiver { a, c })
}

#[cfg(test)]
mod tests;
