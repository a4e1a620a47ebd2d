//! IKNP OT extension (Ishai–Kilian–Nissim–Petrank 2003, semi-honest) with κ = 128.
//!
//! Setup (128 base OTs, roles swapped): the extension sender picks `Δ ∈ {0,1}^128` and learns
//! `k_j^{Δ_j}`; the extension receiver holds both `k_j^0, k_j^1`. Each seed drives an AES-CTR PRG
//! whose stream continues across calls, so one setup serves any number of extensions.
//!
//! Extending `m` OTs with choice bits `r`: the receiver sends `u_j = G(k_j^0) ⊕ G(k_j^1) ⊕ r`
//! (16 bytes per OT); the sender computes `q_j = G(k_j^{Δ_j}) ⊕ Δ_j·u_j`. After transposing,
//! row `i` satisfies `q_i = t_i ⊕ r_i·Δ` (correlated OT). Messages are then hashed with the
//! tweakable correlation-robust hash ([`super::CrHash`]): `m_b = H(q_i ⊕ b·Δ, i)`, receiver
//! gets `H(t_i, i) = m_{r_i}`.
//!
//! What each party learns: the sender sees only `u_j`, which is masked by the PRG stream of
//! `k_j^{1−Δ_j}` (unknown to it), so it learns nothing about `r`. The receiver never learns `Δ`
//! (base-OT security), so for each OT the unchosen message `H(t_i ⊕ Δ, i)` is pseudorandom to it
//! (correlation robustness; every OT index gets its own tweak, so reusing Δ across calls and
//! across OTs is safe). Because PRG streams never rewind and OT indices only grow, no OT is
//! ever used twice.

use zeroize::Zeroize;

use super::{CtrPrg, base::Key, columns_to_rows};
use crate::{PeerError, Result};

/// Extension sender: holds Δ and one seed per base OT. Δ is zeroized on drop, the PRG key
/// schedules by [`CtrPrg`]'s own drop.
pub struct Sender {
    delta: u128,
    prgs: Vec<CtrPrg>,
    /// OTs extended so far (the index of the next OT).
    pub count: u64,
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.delta.zeroize();
    }
}

/// Extension receiver: holds both seeds per base OT (zeroized on drop by [`CtrPrg`]).
pub struct Receiver {
    prgs: Vec<(CtrPrg, CtrPrg)>,
    /// OTs extended so far (the index of the next OT).
    pub count: u64,
}

/// Bytes the receiver sends to extend `m` OTs (`m` rounded up to a multiple of 128).
pub fn message_len(m: usize) -> usize {
    m.div_ceil(128) * 128 * 16
}

impl Sender {
    /// `delta` bits are the choices used in the base OTs, `keys` the keys received there.
    pub fn new(delta: u128, keys: &[Key]) -> Sender {
        assert_eq!(keys.len(), 128);
        Sender { delta, prgs: keys.iter().map(|k| CtrPrg::new(*k)).collect(), count: 0 }
    }

    pub fn delta(&self) -> u128 {
        self.delta
    }

    /// Processes the receiver's message for `m` OTs and returns `q_i` for each (`m` rows; the
    /// padding up to a multiple of 128 is dropped). Advances `count` by the padded number.
    pub fn extend(&mut self, m: usize, msg: &[u8]) -> Result<Vec<u128>> {
        let nblk = m.div_ceil(128);
        if msg.len() != message_len(m) {
            return Err(PeerError::wrong_bytes(
                format!("OT extension message for {m} OTs"),
                message_len(m) as u64,
                msg.len() as u64,
            )
            .into());
        }
        let mut cols = Vec::with_capacity(128);
        for (j, prg) in self.prgs.iter_mut().enumerate() {
            let mut q = vec![0u128; nblk];
            prg.fill(&mut q);
            if (self.delta >> j) & 1 == 1 {
                let part = &msg[j * nblk * 16..(j + 1) * nblk * 16];
                for (v, b) in q.iter_mut().zip(part.chunks_exact(16)) {
                    *v ^= u128::from_le_bytes(b.try_into().expect("16 bytes"));
                }
            }
            cols.push(q);
        }
        self.count += (nblk * 128) as u64;
        let mut rows = columns_to_rows(&cols);
        rows.truncate(m);
        Ok(rows)
    }
}

impl Receiver {
    pub fn new(keys: &[(Key, Key)]) -> Receiver {
        assert_eq!(keys.len(), 128);
        Receiver { prgs: keys.iter().map(|(a, b)| (CtrPrg::new(*a), CtrPrg::new(*b))).collect(), count: 0 }
    }

    /// Extends OTs with `choices` (bit `i` of word `w` = choice of OT `128w + i`; `m` OTs).
    /// Returns the message for the sender and `t_i` per OT. Advances `count` like the sender.
    pub fn extend(&mut self, m: usize, choices: &[u128]) -> (Vec<u8>, Vec<u128>) {
        let nblk = m.div_ceil(128);
        assert_eq!(choices.len(), nblk, "choice words");
        let mut msg = Vec::with_capacity(message_len(m));
        let mut cols = Vec::with_capacity(128);
        let mut u = vec![0u128; nblk];
        for (p0, p1) in self.prgs.iter_mut() {
            let mut t = vec![0u128; nblk];
            p0.fill(&mut t);
            p1.fill(&mut u);
            for ((uv, tv), c) in u.iter().zip(t.iter()).zip(choices.iter()) {
                msg.extend_from_slice(&(uv ^ tv ^ c).to_le_bytes());
            }
            cols.push(t);
        }
        self.count += (nblk * 128) as u64;
        let mut rows = columns_to_rows(&cols);
        rows.truncate(m);
        (msg, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn correlation_q_equals_t_xor_choice_delta() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut key = || {
            let mut k = [0u8; 16];
            rng.fill_bytes(&mut k);
            k
        };
        let pairs: Vec<(Key, Key)> = (0..128).map(|_| (key(), key())).collect();
        let delta: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        let chosen: Vec<Key> =
            pairs.iter().enumerate().map(|(j, p)| if (delta >> j) & 1 == 1 { p.1 } else { p.0 }).collect();
        let (mut s, mut r) = (Sender::new(delta, &chosen), Receiver::new(&pairs));
        for m in [300usize, 128, 1] {
            let choices: Vec<u128> = (0..m.div_ceil(128))
                .map(|i| (i as u128 + 7).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
                .collect();
            let (msg, t) = r.extend(m, &choices);
            let q = s.extend(m, &msg).unwrap();
            assert_eq!((q.len(), t.len()), (m, m));
            for i in 0..m {
                let bit = (choices[i / 128] >> (i % 128)) & 1;
                assert_eq!(q[i], t[i] ^ if bit == 1 { delta } else { 0 }, "OT {i} of {m}");
            }
            assert!(s.extend(m, &msg[1..]).is_err());
        }
    }
}
