//! The silent generator as message-in/message-out steps (sans-IO): each step consumes the
//! peer's typed message and returns this party's next state and message. [`super`] drives the
//! steps over a [`crate::Channel`]; tests may drive them directly.
//!
//! Flights (R = receiver of the correlation, S = sender, who holds Δ):
//! 1. R → S [`BaseOffer`]: base-OT sender point (R is base-OT sender, S base-OT receiver with
//!    the bits of Δ as choices).
//! 2. S → R [`BaseAnswer`]: 128 base-OT receiver points; both set up IKNP with S as sender.
//! 3. R → S [`Extension`]: IKNP columns for `m` OTs. Their choices are, per tree and level, the
//!    complement of the path bit of R's punctured leaf `α_i`, and (VOLE only) 128 random bits per
//!    tree forming the noise value `β_i`.
//! 4. S → R [`TreeMessage`]: the half-tree level sums ([`super::tree`]).
//!    - COT: every tree's level-1 offset is Δ, so `K_1 = K_0 ⊕ Δ` and one block per tree and
//!      level, `K_0 ⊕ q` with the raw COT `q` (R holds `q ⊕ c·Δ` for its choice `c`), carries
//!      `K_c`. No correction: the leaves of every tree sum to Δ, so R's sum of the leaves it
//!      knows is `w_α ⊕ Δ`.
//!    - VOLE: tree `i` has a fresh random offset `r_i`; per level `K_0, K_1` masked by the hashed
//!      OT pads `H(q), H(q ⊕ Δ)`, and per tree one correction `r_i + b_i` (`b_i` from Gilboa's
//!      product over the 128 raw COTs of tree `i`, R holding `b_i + β_i·Δ`).
//!
//! Then S holds all `N` leaves `w`; R holds `u = w + e·Δ` where `e` is zero except `e_{α_i} = 1`
//! (COT) or `β_i` (VOLE) in tree `i` (regular noise). Both apply the public linear map `H` of
//! [`super::code`]: `b = H·w`, `c = H·u`, `a = H·e`, so `c = b + a·Δ`.

use rand::{CryptoRng, RngExt};
use rayon::prelude::*;
use zeroize::Zeroize;

use super::tree::{NodeHash, expand_full, expand_punctured, path_bit};
use super::{Blocks, Params};
use crate::gf128::{self, Gf128, Multiplier};
use crate::ot::{CrHash, base, iknp};
use crate::{Error, InputError, PeerError, Result};

/// The correlation a run produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bits `x_i` (`t_i = s_i ⊕ x_i·Δ`), packed into the low bits ("choice-bit packing", as in
    /// libOTe and emp-ot): Δ's low bit is 1 and every leaf's low bit is cleared (at the sender
    /// all of them, at the receiver the known ones), so the noise `e` is the low bit of the
    /// receiver's leaves and, the code being linear over GF(2), `x = H·e` is the low bit of
    /// `t = H·u`; `s_i`'s low bit is 0. The receiver needs no separate encoding of its noise.
    /// Δ keeps 127 secret bits, which caps guessing Δ at `2^−127`.
    Cot,
    /// GF(2^128) elements `a_i` (`c_i = b_i + a_i·Δ`).
    Vole,
}

/// Tweak space of the OT pads of this module (disjoint from `mpc`'s).
const TWEAK_BASE: u128 = 0x0070_6367 << 96;

/// Flight 1 (R → S, frame `pcg.base.s`): the base-OT sender point, 32 bytes.
pub struct BaseOffer(pub Vec<u8>);
/// Flight 2 (S → R, frame `pcg.base.r`): 128 base-OT receiver points.
pub struct BaseAnswer(pub Vec<u8>);
/// Flight 3 (R → S, frame `pcg.ext.u`): IKNP columns.
pub struct Extension(pub Vec<u8>);
/// Flight 4 (S → R, frame `pcg.trees`): masked level sums and per-tree corrections.
pub struct TreeMessage(pub Vec<Gf128>);

impl BaseOffer {
    pub const KIND: &'static str = "pcg.base.s";
    pub const LEN: usize = 32;
}
impl BaseAnswer {
    pub const KIND: &'static str = "pcg.base.r";
    pub const LEN: usize = 128 * 32;
}
impl Extension {
    pub const KIND: &'static str = "pcg.ext.u";
    pub fn len(p: &Params, kind: Kind) -> usize {
        iknp::message_len(ot_count(p, kind))
    }
}
impl TreeMessage {
    pub const KIND: &'static str = "pcg.trees";
    /// Elements in the message for `p` and `kind`.
    pub fn elements(p: &Params, kind: Kind) -> usize {
        match kind {
            Kind::Cot => p.trees * p.shape.depth,
            Kind::Vole => p.trees * (2 * p.shape.depth + 1),
        }
    }
    pub fn decode(p: &Params, kind: Kind, bytes: &[u8]) -> Result<TreeMessage> {
        Ok(TreeMessage(gf128::from_bytes(Self::KIND, bytes, Self::elements(p, kind))?))
    }
    pub fn encode(&self) -> Vec<u8> {
        gf128::to_bytes(&self.0)
    }
}

/// Raw COTs for Gilboa (VOLE only), then one OT per tree level.
fn ot_count(p: &Params, kind: Kind) -> usize {
    gilboa_count(p, kind) + p.trees * p.shape.depth
}
fn gilboa_count(p: &Params, kind: Kind) -> usize {
    match kind {
        Kind::Cot => 0,
        Kind::Vole => 128 * p.trees,
    }
}

/// Gilboa's product: element `i` is `Σ_k cots[128 i + k] · x^k`, the basis `x^k` being
/// `Gf128(1 << k)`, so the receiver's choice word `i` read as a [`Gf128`] is its factor.
fn gilboa(cots: &[u128], count: usize) -> Vec<Gf128> {
    let mut basis: Vec<Multiplier> = (0..128).map(|k| Multiplier::new(Gf128(1 << k))).collect();
    (0..count).map(|i| (0..128).map(|k| basis[k].mul(Gf128(cots[128 * i + k]))).sum()).collect()
}

/// What both parties AND into every leaf: COT clears the low bit (see [`Kind::Cot`]).
fn leaf_mask(kind: Kind) -> u128 {
    match kind {
        Kind::Cot => !1,
        Kind::Vole => !0,
    }
}

/// Hashed OT pads `H(x_j, j)` for the GGM OTs.
fn pads(xs: &[u128]) -> Vec<u128> {
    let mut out = vec![0u128; xs.len()];
    CrHash::default().expand(xs, TWEAK_BASE, 1, &mut out);
    out
}

/// Sender before flight 1.
pub struct SenderStart {
    params: Params,
    kind: Kind,
}

/// Sender after flight 2: holds Δ inside the IKNP sender (and its trees, once expanded).
pub struct SenderExtending {
    params: Params,
    kind: Kind,
    ot: iknp::Sender,
    trees: Option<Trees>,
}

/// The sender's expanded trees: the leaves `w`, the level sums `K_0` (tree-major) and the
/// trees' offsets. Zeroized on drop.
#[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct Trees {
    w: Blocks,
    sums: Vec<u128>,
    offsets: Vec<u128>,
}

/// Sender after flight 4 went out: the leaves, to be compressed by [`SenderEncoding::finish`]
/// (after sending the tree message, so that both parties compress at the same time).
pub struct SenderEncoding {
    params: Params,
    delta: u128,
    w: Blocks,
}

impl Drop for SenderEncoding {
    fn drop(&mut self) {
        self.delta.zeroize();
    }
}

impl SenderEncoding {
    /// Compresses the leaves into the sender's output.
    pub fn finish(mut self) -> SenderOutput {
        let mut b = std::mem::take(&mut self.w);
        self.params.encode_in_place(&mut b);
        SenderOutput { delta: self.delta, b }
    }
}

/// Sender's output: Δ and `b` (COT: `s`). Zeroized on drop.
pub struct SenderOutput {
    pub delta: u128,
    pub b: Blocks,
}

impl Drop for SenderOutput {
    fn drop(&mut self) {
        self.delta.zeroize();
    }
}

impl SenderStart {
    pub fn new(kind: Kind, n: usize) -> Result<SenderStart> {
        Ok(SenderStart { params: Params::new(n)?, kind })
    }

    /// Flight 1 in, flight 2 out: picks Δ and answers the base OTs with its bits as choices.
    pub fn on_base_offer<R: CryptoRng + ?Sized>(
        self,
        offer: &BaseOffer,
        rng: &mut R,
    ) -> Result<(SenderExtending, BaseAnswer)> {
        let mut delta = Gf128::random(rng).0;
        if self.kind == Kind::Cot {
            delta |= 1; // choice-bit packing, see [`Kind::Cot`]
        }
        let mut choices: Vec<bool> = (0..128).map(|j| (delta >> j) & 1 == 1).collect();
        let answered = base::receive(rng, &offer.0, &choices);
        choices.zeroize();
        let (msg, mut keys) = answered.inspect_err(|_| delta.zeroize())?;
        let ot = iknp::Sender::new(delta, &keys);
        delta.zeroize();
        keys.zeroize();
        Ok((SenderExtending { params: self.params, kind: self.kind, ot, trees: None }, BaseAnswer(msg)))
    }
}

impl SenderExtending {
    /// Expands the trees (they do not depend on flight 3): a driver calls this after sending
    /// flight 2, so that the work overlaps the peer's; else [`SenderExtending::on_extension`]
    /// does it.
    pub fn expand_trees<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) {
        if self.trees.is_some() {
            return;
        }
        let (p, kind) = (self.params, self.kind);
        // Every tree in place in its slice of `w`, in parallel.
        let hash = NodeHash::default();
        let mut seeds: Vec<u128> = (0..p.trees).map(|_| Gf128::random(rng).0).collect();
        let offsets: Vec<u128> = match kind {
            Kind::Cot => vec![self.ot.delta(); p.trees],
            Kind::Vole => (0..p.trees).map(|_| Gf128::random(rng).0).collect(),
        };
        let mut trees = Trees { w: Blocks::zeroed(p.leaves()), sums: vec![0u128; p.trees * p.shape.depth], offsets };
        let Trees { w, sums, offsets } = &mut trees;
        w.par_chunks_mut(p.shape.leaves)
            .zip(sums.par_chunks_mut(p.shape.depth))
            .enumerate()
            .for_each_init(Vec::new, |scratch, (t, (tree, sums))| {
                expand_full(&hash, seeds[t], offsets[t], tree, sums, scratch, leaf_mask(kind))
            });
        seeds.zeroize();
        self.trees = Some(trees);
    }

    /// Flight 3 in, flight 4 out: the level sums under the OTs; [`SenderEncoding::finish`]
    /// then computes this party's output.
    pub fn on_extension<R: CryptoRng + ?Sized>(
        mut self,
        ext: &Extension,
        rng: &mut R,
    ) -> Result<(SenderEncoding, TreeMessage)> {
        let (p, kind) = (self.params, self.kind);
        self.expand_trees(rng);
        let mut trees = self.trees.take().expect("expanded above");
        let mut q = self.ot.extend(ot_count(&p, kind), &ext.0)?;
        let delta = self.ot.delta();
        let (g, depth) = (gilboa_count(&p, kind), p.shape.depth);
        let mut b_base = gilboa(&q[..g], g / 128);
        let ggm = &q[g..];
        // VOLE: the level sums travel under hashed pads (their offset is not Δ).
        let (mut pad0, mut pad1) = (Vec::new(), Vec::new());
        if kind == Kind::Vole {
            pad0 = pads(ggm);
            let mut shifted: Vec<u128> = ggm.iter().map(|v| v ^ delta).collect();
            pad1 = pads(&shifted);
            shifted.zeroize();
        }
        let (sums, offsets) = (&trees.sums, &trees.offsets);
        let mut msg = Vec::with_capacity(TreeMessage::elements(&p, kind));
        for t in 0..p.trees {
            for l in 0..depth {
                let j = t * depth + l;
                let k0 = sums[j];
                match kind {
                    Kind::Cot => msg.push(Gf128(k0 ^ ggm[j])),
                    Kind::Vole => {
                        msg.push(Gf128(k0 ^ pad0[j]));
                        msg.push(Gf128(k0 ^ offsets[t] ^ pad1[j]));
                    }
                }
            }
        }
        if kind == Kind::Vole {
            msg.extend(offsets.iter().zip(&b_base).map(|(&r, &b)| Gf128(r) + b));
        }
        q.zeroize();
        pad0.zeroize();
        pad1.zeroize();
        b_base.zeroize();
        let w = std::mem::take(&mut trees.w);
        Ok((SenderEncoding { params: p, delta, w }, TreeMessage(msg)))
    }
}

/// Receiver after flight 1: holds the base-OT sender secret.
pub struct ReceiverStart {
    params: Params,
    kind: Kind,
    base: base::Sender,
}

/// Receiver after flight 3: punctured positions, noise values, IKNP outputs.
pub struct ReceiverExtended {
    params: Params,
    kind: Kind,
    alphas: Vec<usize>,
    /// Noise values β_i (VOLE) as the Gilboa choice words.
    betas: Vec<u128>,
    t: Vec<u128>,
}

impl Drop for ReceiverExtended {
    fn drop(&mut self) {
        self.alphas.zeroize();
        self.betas.zeroize();
        self.t.zeroize();
    }
}

/// Receiver's output: the encoded noise (COT: the choice bits `x`, VOLE: `a`) and `c`.
/// Zeroized on drop.
pub struct ReceiverOutput<A: Zeroize> {
    pub a: A,
    pub c: Blocks,
}

impl<A: Zeroize> Drop for ReceiverOutput<A> {
    fn drop(&mut self) {
        self.a.zeroize();
    }
}

impl ReceiverStart {
    /// Flight 1 out.
    pub fn start<R: CryptoRng + ?Sized>(kind: Kind, n: usize, rng: &mut R) -> Result<(ReceiverStart, BaseOffer)> {
        let params = Params::new(n)?;
        let (base, s) = base::Sender::start(rng);
        Ok((ReceiverStart { params, kind, base }, BaseOffer(s)))
    }

    /// Flight 2 in, flight 3 out: picks the punctured leaves (and noise values) and extends the
    /// OTs that carry them.
    pub fn on_base_answer<R: CryptoRng + ?Sized>(
        self,
        answer: &BaseAnswer,
        rng: &mut R,
    ) -> Result<(ReceiverExtended, Extension)> {
        let (p, kind) = (self.params, self.kind);
        let mut pairs = self.base.finish(&answer.0, 128)?;
        let mut ot = iknp::Receiver::new(&pairs);
        pairs.zeroize();
        let (g, depth, m) = (gilboa_count(&p, kind), p.shape.depth, ot_count(&p, kind));
        let alphas: Vec<usize> = (0..p.trees).map(|_| rng.random_range(0..p.shape.leaves)).collect();
        let betas: Vec<u128> = (0..g / 128).map(|_| Gf128::random(rng).0).collect();
        let mut words = vec![0u128; m.div_ceil(128)];
        words[..betas.len()].copy_from_slice(&betas);
        for (i, &alpha) in alphas.iter().enumerate() {
            for l in 1..=depth {
                let j = g + i * depth + l - 1;
                words[j / 128] |= ((1 - path_bit(&p.shape, alpha, l)) as u128) << (j % 128);
            }
        }
        let (msg, t) = ot.extend(m, &words);
        words.zeroize();
        Ok((ReceiverExtended { params: p, kind, alphas, betas, t }, Extension(msg)))
    }
}

impl ReceiverExtended {
    /// Flight 4 in: rebuilds the punctured trees into `u = w + e·Δ` (every leaf but the
    /// punctured ones from the level sums, the punctured ones from the known leaves' sum).
    fn leaves(&self, trees: &TreeMessage) -> Result<Blocks> {
        let (p, kind) = (&self.params, self.kind);
        if trees.0.len() != TreeMessage::elements(p, kind) {
            return Err(PeerError::WrongLength {
                what: format!("'{}'", TreeMessage::KIND),
                unit: "elements",
                expected: TreeMessage::elements(p, kind) as u64,
                got: trees.0.len() as u64,
            }
            .into());
        }
        let (g, depth, leaves) = (gilboa_count(p, kind), p.shape.depth, p.shape.leaves);
        let mut c_base = gilboa(&self.t[..g], g / 128);
        let ggm = &self.t[g..];
        let mut pad = if kind == Kind::Vole { pads(ggm) } else { Vec::new() };
        let mut received: Vec<u128> = (0..p.trees * depth)
            .map(|j| {
                let (t, l) = (j / depth, j % depth + 1);
                match kind {
                    // `K_0 ⊕ q` and our `q ⊕ c·Δ` give `K_c`.
                    Kind::Cot => trees.0[j].0 ^ ggm[j],
                    Kind::Vole => trees.0[2 * j + 1 - path_bit(&p.shape, self.alphas[t], l)].0 ^ pad[j],
                }
            })
            .collect();
        let corrections = if kind == Kind::Vole { &trees.0[p.trees * 2 * depth..] } else { &[] };
        let hash = NodeHash::default();
        let mut u = Blocks::zeroed(p.leaves());
        u.par_chunks_mut(leaves).zip(received.par_chunks(depth)).enumerate().for_each_init(
            Vec::new,
            |scratch, (t, (own, received))| {
                let alpha = self.alphas[t];
                // The known leaves sum to `w_α ⊕ r_t`.
                let known = expand_punctured(&hash, alpha, received, own, scratch, leaf_mask(kind));
                own[alpha] = match kind {
                    // COT: the sender's leaf, low bit cleared, plus Δ (low bit 1).
                    Kind::Cot => known | 1,
                    Kind::Vole => corrections[t].0 ^ known ^ c_base[t].0,
                };
            },
        );
        received.zeroize();
        pad.zeroize();
        c_base.zeroize();
        Ok(u)
    }

    /// Positions of the noise: leaf `α_t` of each tree `t`.
    fn noise_positions(&self) -> Vec<usize> {
        self.alphas.iter().enumerate().map(|(t, &alpha)| t * self.params.shape.leaves + alpha).collect()
    }

    /// Flight 4 in (COT): the choice bits and `t`. The choice bits are the low bits of `t`
    /// (see [`Kind::Cot`]).
    pub fn on_trees_cot(self, trees: &TreeMessage) -> Result<ReceiverOutput<Vec<bool>>> {
        self.expect(Kind::Cot)?;
        let mut c = self.leaves(trees)?;
        self.params.encode_in_place(&mut c);
        let a = c.iter().map(|t| t & 1 == 1).collect();
        Ok(ReceiverOutput { a, c })
    }

    /// Flight 4 in (VOLE): `a` and `c`.
    pub fn on_trees_vole(self, trees: &TreeMessage) -> Result<ReceiverOutput<Blocks>> {
        self.expect(Kind::Vole)?;
        // `a` first, into a buffer of its own size, so that at most two `N`-long buffers live.
        let mut e = Blocks::zeroed(self.params.leaves());
        for (&i, &beta) in self.noise_positions().iter().zip(&self.betas) {
            e[i] = beta;
        }
        self.params.encode_in_place(&mut e);
        let mut a = Blocks::zeroed(self.params.n);
        a.copy_from_slice(&e);
        drop(e);
        let mut c = self.leaves(trees)?;
        self.params.encode_in_place(&mut c);
        Ok(ReceiverOutput { a, c })
    }

    fn expect(&self, kind: Kind) -> Result<()> {
        if self.kind != kind {
            return Err(Error::Input(InputError::Usage {
                op: "pcg",
                detail: format!("receiver set up for {:?}, finished as {kind:?}", self.kind),
            }));
        }
        Ok(())
    }
}
