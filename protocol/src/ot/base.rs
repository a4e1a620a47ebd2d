//! Base OT: Chou–Orlandi "simplest OT" over Ristretto255, batched (one sender key for all OTs).
//!
//! Sender: `y` random, sends `S = y·G`. Receiver with choice `c_j`: `x_j` random, sends
//! `R_j = c_j·S + x_j·G`, key `k_j = H(j, S, R_j, x_j·S)`. Sender: `k_j^0 = H(j, S, R_j, y·R_j)`,
//! `k_j^1 = H(j, S, R_j, y·R_j − y·S)`.
//!
//! What each party learns (semi-honest): `R_j` is uniform whatever `c_j` is, so the sender learns
//! nothing about the choices (perfectly). The receiver's other key would need `y·x'_j·G` for a
//! point it did not make, i.e. CDH; with `H` a random oracle (BLAKE3, domain separated, indexed by
//! `j` and bound to `S`, `R_j`) the unchosen key is pseudorandom. This is the setting the protocol
//! is proven for (semi-honest, ROM); it is not used against malicious parties here.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand::CryptoRng;
use rayon::prelude::*;
use zeroize::Zeroize;

use crate::{Channel, PeerError, Result};

/// A 128-bit OT key (seeds the extension PRGs).
pub type Key = [u8; 16];

fn kdf(j: usize, s: &CompressedRistretto, r: &CompressedRistretto, p: &RistrettoPoint) -> Key {
    let mut h = blake3::Hasher::new_derive_key("tandem base-ot chou-orlandi v1");
    h.update(&(j as u64).to_le_bytes());
    h.update(s.as_bytes());
    h.update(r.as_bytes());
    let mut shared = p.compress();
    h.update(shared.as_bytes());
    shared.zeroize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.finalize().as_bytes()[..16]);
    k
}

fn decompress(bytes: &[u8], what: &str) -> Result<(CompressedRistretto, RistrettoPoint)> {
    let c = CompressedRistretto::from_slice(bytes)
        .map_err(|_| PeerError::NotOnCurve { what: format!("base OT: {what} (not 32 bytes)") })?;
    let p = c.decompress().ok_or_else(|| PeerError::NotOnCurve { what: format!("base OT: {what}") })?;
    Ok((c, p))
}

/// Base-OT sender state after its first message. The secret `y` (and `y·S`) is zeroized on drop.
pub struct Sender {
    y: Scalar,
    s: CompressedRistretto,
    ys: RistrettoPoint,
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.y.zeroize();
        self.ys.zeroize();
    }
}

impl Sender {
    /// Picks `y` and returns the first message `S` (32 bytes).
    pub fn start<R: CryptoRng + ?Sized>(rng: &mut R) -> (Sender, Vec<u8>) {
        let y = Scalar::random(rng);
        let sp = &y * RISTRETTO_BASEPOINT_TABLE;
        let s = sp.compress();
        (Sender { y, s, ys: y * sp }, s.as_bytes().to_vec())
    }

    /// Derives both keys of each OT from the receiver's points (`n` × 32 bytes).
    pub fn finish(self, msg: &[u8], n: usize) -> Result<Vec<(Key, Key)>> {
        if msg.len() != 32 * n {
            return Err(PeerError::wrong_bytes(
                format!("base OT: {n} receiver points"),
                32 * n as u64,
                msg.len() as u64,
            )
            .into());
        }
        // One variable-base multiplication per OT, spread over the cores.
        msg.par_chunks_exact(32)
            .enumerate()
            .map(|(j, b)| {
                let (rc, rp) = decompress(b, "receiver point")?;
                let mut yr = self.y * rp;
                let mut yr_minus_ys = yr - self.ys;
                let keys = (kdf(j, &self.s, &rc, &yr), kdf(j, &self.s, &rc, &yr_minus_ys));
                yr.zeroize();
                yr_minus_ys.zeroize();
                Ok(keys)
            })
            .collect()
    }
}

/// Receiver side: answers the sender's `S` for the given choices; returns (message, chosen keys).
/// The per-OT secrets `x_j`, `x_j·G` and `x_j·S` are zeroized once used.
pub fn receive<R: CryptoRng + ?Sized>(rng: &mut R, sender_msg: &[u8], choices: &[bool]) -> Result<(Vec<u8>, Vec<Key>)> {
    let (sc, sp) = decompress(sender_msg, "sender point")?;
    if sp == RistrettoPoint::identity() {
        return Err(PeerError::NotOnCurve { what: "base OT: sender point (the identity)".into() }.into());
    }
    // `S` is public: a table of its multiples makes each `x_j·S` a fixed-base multiplication
    // (a few per cent faster than variable-base here); the OTs are spread over the cores.
    let s_table = RistrettoBasepointTable::create(&sp);
    let mut secrets: Vec<Scalar> = choices.iter().map(|_| Scalar::random(rng)).collect();
    let (points, keys): (Vec<[u8; 32]>, Vec<Key>) = secrets
        .par_iter()
        .zip(choices)
        .enumerate()
        .map(|(j, (x, &c))| {
            let mut xg = x * RISTRETTO_BASEPOINT_TABLE;
            let rc = if c { xg + sp } else { xg }.compress();
            let mut xs = x * &s_table;
            let key = kdf(j, &sc, &rc, &xs);
            xg.zeroize();
            xs.zeroize();
            (rc.to_bytes(), key)
        })
        .unzip();
    secrets.zeroize();
    Ok((points.concat(), keys))
}

/// This party's key pairs as sender and its chosen keys as receiver.
pub type BothDirections = (Vec<(Key, Key)>, Vec<Key>);

/// Runs `n` base OTs in both directions at once: this party is sender of one batch (returns its
/// key pairs) and receiver of the other with `choices` (returns the chosen keys). Two flights.
pub fn both_directions<R: CryptoRng + ?Sized>(
    ch: &mut Channel,
    rng: &mut R,
    choices: &[bool],
) -> Result<BothDirections> {
    let n = choices.len();
    let (sender, s_msg) = Sender::start(rng);
    ch.send_frame("ot.base.s", s_msg)?;
    let peer_s = ch.recv_frame("ot.base.s")?;
    let (r_msg, chosen) = receive(rng, &peer_s, choices)?;
    ch.send_frame("ot.base.r", r_msg)?;
    let peer_r = ch.recv_frame("ot.base.r")?;
    Ok((sender.finish(&peer_r, n)?, chosen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::run_pair;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn receiver_gets_chosen_key_only_in_both_directions() {
        let choices = |seed| {
            let mut r = ChaCha20Rng::seed_from_u64(seed);
            (0..16).map(|_| r.next_u32() & 1 == 1).collect::<Vec<bool>>()
        };
        let (cg, cb) = (choices(10), choices(11));
        let (cg2, cb2) = (cg.clone(), cb.clone());
        let (g, b) = run_pair(
            move |ch| both_directions(ch, &mut ChaCha20Rng::seed_from_u64(1), &cg2).unwrap(),
            move |ch| both_directions(ch, &mut ChaCha20Rng::seed_from_u64(2), &cb2).unwrap(),
        );
        // gov's sender pairs are received by bank with bank's choices, and vice versa.
        for (pairs, chosen, c) in [(&g.0, &b.1, &cb), (&b.0, &g.1, &cg)] {
            for j in 0..16 {
                let (k0, k1) = pairs[j];
                assert_ne!(k0, k1);
                assert_eq!(chosen[j], if c[j] { k1 } else { k0 }, "OT {j}");
            }
        }
    }

    /// A receiver that reused one secret `x` for every OT would send equal points `R_j` for equal
    /// choices, telling the sender which choices agree. Points and keys must all differ.
    #[test]
    fn every_ot_uses_fresh_receiver_randomness() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let (sender, s_msg) = Sender::start(&mut rng);
        let choices = [true, true, true, false, false, false, true, false];
        let (r_msg, chosen) = receive(&mut rng, &s_msg, &choices).unwrap();
        let mut points: Vec<&[u8]> = r_msg.chunks_exact(32).collect();
        points.sort();
        points.dedup();
        assert_eq!(points.len(), choices.len(), "receiver points repeat");
        let pairs = sender.finish(&r_msg, choices.len()).unwrap();
        let mut keys: Vec<Key> = pairs.iter().flat_map(|&(k0, k1)| [k0, k1]).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 2 * choices.len(), "sender keys repeat across OTs");
        for (j, &c) in choices.iter().enumerate() {
            let (k0, k1) = pairs[j];
            assert_eq!(chosen[j], if c { k1 } else { k0 });
            assert_ne!(chosen[j], if c { k0 } else { k1 }, "OT {j}: receiver holds the unchosen key");
        }
    }

    /// Known answer computed once by this code. A change to it is a format break: base OT
    /// stops interoperating with nodes of the previous version.
    #[test]
    fn known_answer_of_key_derivation() {
        let s = (&Scalar::from(3u64) * RISTRETTO_BASEPOINT_TABLE).compress();
        let r = (&Scalar::from(5u64) * RISTRETTO_BASEPOINT_TABLE).compress();
        let p = &Scalar::from(15u64) * RISTRETTO_BASEPOINT_TABLE;
        assert_eq!(hex::encode(kdf(0, &s, &r, &p)), "4bd114706ca5c74f238c74046791a3df");
        assert_eq!(hex::encode(kdf(1, &s, &r, &p)), "f63c0f58e550a4f375cf92f5b814097d");
    }

    #[test]
    fn malformed_points_are_errors() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        assert!(receive(&mut rng, &[0u8; 31], &[true]).is_err());
        assert!(receive(&mut rng, &[0u8; 32], &[true]).is_err(), "identity");
        assert!(receive(&mut rng, &[0xffu8; 32], &[true]).is_err(), "not a point");
        let (s, _) = Sender::start(&mut rng);
        assert!(s.finish(&[0u8; 10], 1).is_err());
    }
}
