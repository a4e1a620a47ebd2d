//! Where the engine's correlated OTs come from: one trait, [`OtSource`], with IKNP extension,
//! the silent generator ([`crate::pcg`]) and, for tests only, an ideal dealer.
//!
//! Every source delivers, per OT, the sender's two keys `(k0, k1)` and the receiver's key
//! `k_r` for its choice bit `r`; the engine hashes keys with its tweakable correlation-robust
//! hash before use (Gilboa products in `cot`, AND triples in `boolean`). In all sources
//! `k1 = k0 ⊕ Δ` for the sender's secret `Δ`, and the receiver never learns `Δ` or `k_{1−r}`.
//!
//! Both parties call the same methods in mirrored order: `reserve(send, recv)` at one party
//! matches `reserve(recv, send)` at the other, `receive(m)` matches `send(m)`. Indices of OTs
//! only grow, so no OT is used twice.

use std::collections::VecDeque;

use rand::Rng;
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroize;

use crate::ot::{base, iknp};
use crate::{Channel, Error, InputError, PeerError, Result, Role};

/// Which correlated OTs an engine runs on (the node's job parameter `correlations`).
///
/// Default silent: in `tandem bench lr` (synthetic_30k, raw_lr, linear sigmoid, 10 epochs,
/// 2026-11-30, same run) it trains in 15.9 s against IKNP's 15.3 s on loopback while sending
/// 167 MB against 854 MB, so it wins on any real link (predicted 36 s against 91 s at
/// 100 Mbit/s, 20 ms RTT). IKNP stays available (`correlations = "iknp"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Correlations {
    /// IKNP OT extension: 128 base OTs per direction at set-up, then 16 bytes per OT.
    Iknp,
    /// Silent random COT ([`crate::pcg`]) in batches, derandomised with 1 bit per OT.
    #[default]
    Silent,
}

impl Correlations {
    pub fn as_str(self) -> &'static str {
        match self {
            Correlations::Iknp => "iknp",
            Correlations::Silent => "silent",
        }
    }
}

impl std::str::FromStr for Correlations {
    type Err = Error;
    fn from_str(s: &str) -> Result<Correlations> {
        match s {
            "iknp" => Ok(Correlations::Iknp),
            "silent" => Ok(Correlations::Silent),
            _ => Err(InputError::Param(format!("correlations = '{s}': use \"iknp\" or \"silent\"")).into()),
        }
    }
}

/// The receiver's part of `m` OTs: the message for the sender (empty if the source needs
/// none), the key `k_{r_i}` per OT, the choice bits used (packed 128 per word) and the index of
/// the first OT (for hash tweaks).
pub(crate) struct Received {
    pub msg: Vec<u8>,
    pub keys: Vec<u128>,
    pub choices: Vec<u128>,
    pub start: u64,
}

/// The sender's part of `m` OTs: both keys per OT and the index of the first OT.
pub(crate) struct Sent {
    pub k0: Vec<u128>,
    pub k1: Vec<u128>,
    pub start: u64,
}

impl Drop for Received {
    fn drop(&mut self) {
        self.keys.zeroize();
        self.choices.zeroize();
    }
}

impl Drop for Sent {
    fn drop(&mut self) {
        self.k0.zeroize();
        self.k1.zeroize();
    }
}

/// One source of correlated OTs for both directions (this party as sender and as receiver).
pub(crate) trait OtSource: Send {
    /// Makes the next `send` OTs as sender and `recv` as receiver available (may run a protocol
    /// with the peer, which calls with the two counts swapped).
    fn reserve(&mut self, ch: &mut Channel, send: usize, recv: usize, rng: &mut ChaCha20Rng) -> Result<()>;
    /// Receiver part of `m` OTs, with `choices` (bit `i` of word `w` = choice of OT `128w + i`)
    /// or, for `None`, uniform choice bits the source picks (returned in [`Received::choices`]).
    fn receive(&mut self, m: usize, choices: Option<&[u128]>, rng: &mut ChaCha20Rng) -> Received;
    /// Length of the receiver's message for `m` OTs (0: there is none, nothing is sent).
    fn message_len(&self, m: usize, random_choices: bool) -> usize;
    /// Sender part of `m` OTs, given the receiver's message. Errors on a malformed message.
    fn send(&mut self, m: usize, msg: &[u8], random_choices: bool) -> Result<Sent>;
    /// OTs used so far (as sender, as receiver).
    fn counts(&self) -> (u64, u64);
}

fn random_words(m: usize, rng: &mut ChaCha20Rng) -> Vec<u128> {
    (0..m.div_ceil(128)).map(|_| ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128).collect()
}

#[cfg(any(test, feature = "test-dealer"))]
fn choice(words: &[u128], i: usize) -> bool {
    (words[i / 128] >> (i % 128)) & 1 == 1
}

// ---- IKNP

/// IKNP in both directions (see [`crate::ot::iknp`] for what each party learns). Set-up: 128
/// base OTs each way, two flights.
pub(crate) struct Iknp {
    sender: iknp::Sender,
    receiver: iknp::Receiver,
}

impl Iknp {
    pub fn setup(ch: &mut Channel, rng: &mut ChaCha20Rng) -> Result<Iknp> {
        let mut delta = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
        let mut choices: Vec<bool> = (0..128).map(|j| (delta >> j) & 1 == 1).collect();
        let base = base::both_directions(ch, rng, &choices);
        choices.zeroize();
        let (mut pairs, mut chosen) = base.inspect_err(|_| delta.zeroize())?;
        let source = Iknp { sender: iknp::Sender::new(delta, &chosen), receiver: iknp::Receiver::new(&pairs) };
        delta.zeroize();
        pairs.zeroize();
        chosen.zeroize();
        Ok(source)
    }
}

impl OtSource for Iknp {
    fn reserve(&mut self, _: &mut Channel, _: usize, _: usize, _: &mut ChaCha20Rng) -> Result<()> {
        Ok(())
    }

    fn receive(&mut self, m: usize, choices: Option<&[u128]>, rng: &mut ChaCha20Rng) -> Received {
        let choices = choices.map_or_else(|| random_words(m, rng), <[u128]>::to_vec);
        let start = self.receiver.count;
        let (msg, keys) = self.receiver.extend(m, &choices);
        Received { msg, keys, choices, start }
    }

    fn message_len(&self, m: usize, _: bool) -> usize {
        iknp::message_len(m)
    }

    fn send(&mut self, m: usize, msg: &[u8], _: bool) -> Result<Sent> {
        let start = self.sender.count;
        let k0 = self.sender.extend(m, msg)?;
        let delta = self.sender.delta();
        let k1 = k0.iter().map(|q| q ^ delta).collect();
        Ok(Sent { k0, k1, start })
    }

    fn counts(&self) -> (u64, u64) {
        (self.sender.count, self.receiver.count)
    }
}

// ---- silent

/// Silent random COTs ([`crate::pcg::cot_send`] / [`crate::pcg::cot_receive`]) generated in
/// batches and derandomised (Beaver 1995).
///
/// A batch gives the sender `Δ` and `s_i`, the receiver random bits `x_i` and `t_i = s_i ⊕ x_i·Δ`.
/// To use OT `i` with its own choice `r_i` the receiver sends `d_i = r_i ⊕ x_i` (1 bit per OT);
/// the sender sets `k0 = s_i ⊕ d_i·Δ`, `k1 = k0 ⊕ Δ`, so that `k_{r_i} = s_i ⊕ x_i·Δ = t_i`, the
/// receiver's key. What each party learns: the sender sees `d_i`, which is `r_i` one-time-padded
/// by `x_i`; `x_i` is pseudorandom to the sender (pcg's guarantee) and each `x_i` pads one bit
/// only, so `d` is uniform in its view and it learns nothing about `r`. The receiver sends only
/// and learns nothing new: `Δ` and `s_{i}⊕(1−x_i)Δ` stay pseudorandom to it as in the batch. For
/// random choices (AND triples) `x_i` itself is the choice and nothing is sent.
///
/// Batches: both parties' pools mirror each other (the sender's pool in one direction is the
/// receiver's in the other party), so both decide refills alike (both directions short: the
/// two refills run interleaved, [`crate::pcg::cot_both`]); a refill makes
/// `min(shortfall + next, MAX_BATCH)` COTs, `next` doubling from [`Silent::FIRST_BATCH`]
/// to [`Silent::MAX_BATCH`], until the shortfall is covered. OTs left in the pools when the engine is dropped are wiped unused.
pub(crate) struct Silent {
    send: VecDeque<SendBatch>,
    recv: VecDeque<RecvBatch>,
    next: [usize; 2],
    counts: (u64, u64),
}

/// `s` and `t` wipe themselves on drop ([`crate::pcg::Blocks`]).
struct SendBatch {
    delta: u128,
    s: crate::pcg::Blocks,
    used: usize,
}

struct RecvBatch {
    x: Vec<bool>,
    t: crate::pcg::Blocks,
    used: usize,
}

impl Drop for SendBatch {
    fn drop(&mut self) {
        self.delta.zeroize();
    }
}

impl Drop for RecvBatch {
    fn drop(&mut self) {
        self.x.zeroize();
    }
}

impl Silent {
    pub const FIRST_BATCH: usize = 1 << 16;
    pub const MAX_BATCH: usize = 1 << 22;

    pub fn new() -> Silent {
        Silent { send: VecDeque::new(), recv: VecDeque::new(), next: [Self::FIRST_BATCH; 2], counts: (0, 0) }
    }

    fn available_send(&self) -> usize {
        self.send.iter().map(|b| b.s.len() - b.used).sum()
    }

    fn available_recv(&self) -> usize {
        self.recv.iter().map(|b| b.t.len() - b.used).sum()
    }

    /// Size of the next refill in the direction whose sender is `sender`: the shortfall plus
    /// `next` (so the calls after this one find OTs left and the job makes fewer refills, each
    /// a few turns), at most [`Silent::MAX_BATCH`], so the generator's working memory stays
    /// bounded (a larger shortfall takes several refills).
    fn batch(&mut self, sender: Role, shortfall: usize) -> usize {
        let next = &mut self.next[sender.index()];
        let n = (shortfall + *next).min(Self::MAX_BATCH);
        *next = (*next * 2).min(Self::MAX_BATCH);
        n
    }

    /// Pops `m` entries from the front of the receiver's pool as (x, t).
    fn take_recv(&mut self, m: usize) -> (Vec<bool>, Vec<u128>) {
        let (mut x, mut t) = (Vec::with_capacity(m), Vec::with_capacity(m));
        while x.len() < m {
            let b = self.recv.front_mut().expect("reserve made the OTs available");
            let k = (m - x.len()).min(b.t.len() - b.used);
            x.extend_from_slice(&b.x[b.used..b.used + k]);
            t.extend_from_slice(&b.t[b.used..b.used + k]);
            b.used += k;
            if b.used == b.t.len() {
                self.recv.pop_front();
            }
        }
        (x, t)
    }
}

impl OtSource for Silent {
    fn reserve(&mut self, ch: &mut Channel, send: usize, recv: usize, rng: &mut ChaCha20Rng) -> Result<()> {
        let me = ch.role();
        // Both pools short: one refill each way, interleaved (`pcg::cot_both`); the peer sees
        // the same shortfalls with the directions swapped.
        loop {
            let (short_send, short_recv) =
                (send.saturating_sub(self.available_send()), recv.saturating_sub(self.available_recv()));
            match (short_send > 0, short_recv > 0) {
                (true, true) => {
                    let (n_send, n_recv) = (self.batch(me, short_send), self.batch(me.peer(), short_recv));
                    let ((delta, s), (x, t)) = crate::pcg::cot_both(ch, n_send, n_recv, rng)?;
                    self.send.push_back(SendBatch { delta: delta.0, s, used: 0 });
                    self.recv.push_back(RecvBatch { x, t, used: 0 });
                }
                (true, false) => {
                    let (delta, s) = crate::pcg::cot_send(ch, self.batch(me, short_send), rng)?;
                    self.send.push_back(SendBatch { delta: delta.0, s, used: 0 });
                }
                (false, true) => {
                    let (x, t) = crate::pcg::cot_receive(ch, self.batch(me.peer(), short_recv), rng)?;
                    self.recv.push_back(RecvBatch { x, t, used: 0 });
                }
                (false, false) => return Ok(()),
            }
        }
    }

    fn receive(&mut self, m: usize, choices: Option<&[u128]>, _: &mut ChaCha20Rng) -> Received {
        let start = self.counts.1;
        self.counts.1 += m as u64;
        let (mut x, keys) = self.take_recv(m);
        let mut packed = vec![0u128; m.div_ceil(128)];
        for (i, &xi) in x.iter().enumerate() {
            packed[i / 128] |= (xi as u128) << (i % 128);
        }
        x.zeroize();
        let Some(choices) = choices else {
            return Received { msg: Vec::new(), keys, choices: packed, start };
        };
        // d = r ⊕ x, packed little-endian, 1 bit per OT.
        let mut msg = Vec::with_capacity(self.message_len(m, false));
        for (w, (r, x)) in choices.iter().zip(&packed).enumerate() {
            let bytes = (r ^ x).to_le_bytes();
            let keep = (m - 128 * w).div_ceil(8).min(16);
            msg.extend_from_slice(&bytes[..keep]);
        }
        packed.zeroize();
        Received { msg, keys, choices: choices.to_vec(), start }
    }

    fn message_len(&self, m: usize, random_choices: bool) -> usize {
        if random_choices { 0 } else { m.div_ceil(8) }
    }

    fn send(&mut self, m: usize, msg: &[u8], random_choices: bool) -> Result<Sent> {
        if msg.len() != self.message_len(m, random_choices) {
            return Err(PeerError::wrong_bytes(
                "the OT derandomisation message",
                self.message_len(m, random_choices) as u64,
                msg.len() as u64,
            )
            .into());
        }
        let start = self.counts.0;
        self.counts.0 += m as u64;
        let (mut k0, mut k1) = (Vec::with_capacity(m), Vec::with_capacity(m));
        while k0.len() < m {
            let b = self.send.front_mut().expect("reserve made the OTs available");
            let k = (m - k0.len()).min(b.s.len() - b.used);
            for j in 0..k {
                let i = k0.len();
                let d = !random_choices && (msg[i / 8] >> (i % 8)) & 1 == 1;
                let key = b.s[b.used + j] ^ if d { b.delta } else { 0 };
                k0.push(key);
                k1.push(key ^ b.delta);
            }
            b.used += k;
            if b.used == b.s.len() {
                self.send.pop_front();
            }
        }
        Ok(Sent { k0, k1, start })
    }

    fn counts(&self) -> (u64, u64) {
        self.counts
    }
}

// ---- test dealer

/// Test fixture only (cargo feature `test-dealer`, never in the node binary): an ideal dealer
/// simulated from a seed both parties know. Each party derives only its own part — the sender
/// `Δ` and `s_i`, the receiver `t_i = s_i ⊕ r_i·Δ` for its choices — from one AES-CTR stream per
/// direction; no messages. Since both hold the seed, either could compute the other's part: it
/// gives NO security and exists to make model tests fast.
#[cfg(any(test, feature = "test-dealer"))]
pub(crate) struct Dealer {
    /// Per direction (index = sender's role): Δ and the stream of `s_i`.
    streams: [(u128, crate::ot::CtrPrg); 2],
    me: Role,
    counts: (u64, u64),
}

#[cfg(any(test, feature = "test-dealer"))]
impl Dealer {
    pub fn new(seed: u64, me: Role) -> Dealer {
        let stream = |sender: Role| {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&seed.to_le_bytes());
            key[8] = sender.index() as u8;
            let mut prg = crate::ot::CtrPrg::new(key);
            let mut delta = [0u128; 1];
            prg.fill(&mut delta);
            (delta[0], prg)
        };
        Dealer { streams: [stream(Role::Gov), stream(Role::Bank)], me, counts: (0, 0) }
    }
}

#[cfg(any(test, feature = "test-dealer"))]
impl OtSource for Dealer {
    fn reserve(&mut self, _: &mut Channel, _: usize, _: usize, _: &mut ChaCha20Rng) -> Result<()> {
        Ok(())
    }

    fn receive(&mut self, m: usize, choices: Option<&[u128]>, rng: &mut ChaCha20Rng) -> Received {
        let choices = choices.map_or_else(|| random_words(m, rng), <[u128]>::to_vec);
        let (delta, prg) = &mut self.streams[self.me.peer().index()];
        let mut keys = vec![0u128; m];
        prg.fill(&mut keys);
        for (i, k) in keys.iter_mut().enumerate() {
            *k ^= if choice(&choices, i) { *delta } else { 0 };
        }
        let start = self.counts.1;
        self.counts.1 += m as u64;
        Received { msg: Vec::new(), keys, choices, start }
    }

    fn message_len(&self, _: usize, _: bool) -> usize {
        0
    }

    fn send(&mut self, m: usize, _: &[u8], _: bool) -> Result<Sent> {
        let (delta, prg) = &mut self.streams[self.me.index()];
        let mut k0 = vec![0u128; m];
        prg.fill(&mut k0);
        let k1 = k0.iter().map(|k| k ^ *delta).collect();
        let start = self.counts.0;
        self.counts.0 += m as u64;
        Ok(Sent { k0, k1, start })
    }

    fn counts(&self) -> (u64, u64) {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::channel::run_pair;

    /// What one party saw of a run: the keys it got as sender (k0, k1) and as receiver (keys,
    /// choices), per call.
    #[derive(Default)]
    struct View {
        sent: Vec<(Vec<u128>, Vec<u128>)>,
        received: Vec<(Vec<u128>, Vec<u128>)>,
    }

    /// Calls of (OTs with the gov as sender, OTs with the bank as sender, random choices?).
    /// The second call crosses the silent source's first batch.
    const CALLS: [(usize, usize, bool); 4] =
        [(1000, 300, false), (Silent::FIRST_BATCH, 5, false), (77, 4096, true), (0, 129, false)];

    fn run(ch: &mut Channel, mut ots: Box<dyn OtSource>, seed: u64) -> View {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let me = ch.role();
        let mut view = View::default();
        for (i, &(gov_sends, bank_sends, random)) in CALLS.iter().enumerate() {
            let (send, recv) = if me == Role::Gov { (gov_sends, bank_sends) } else { (bank_sends, gov_sends) };
            ots.reserve(ch, send, recv, &mut rng).unwrap();
            let choices = random_words(recv, &mut ChaCha20Rng::seed_from_u64(100 + i as u64));
            let r = ots.receive(recv, (!random).then_some(&choices[..]), &mut rng);
            assert!(random || r.choices == choices, "the receiver's own choices are used");
            if ots.message_len(recv, random) > 0 {
                ch.send_bulk("test.u", &r.msg).unwrap();
            }
            let len = ots.message_len(send, random);
            let msg = if len > 0 { ch.recv_bulk("test.u", len as u64).unwrap() } else { Vec::new() };
            let s = ots.send(send, &msg, random).unwrap();
            view.sent.push((s.k0.clone(), s.k1.clone()));
            view.received.push((r.keys.clone(), r.choices.clone()));
        }
        view
    }

    /// Checks every OT of `sender`'s calls against the receiver's view: the receiver holds
    /// `k_r` for its choice `r`, and `k0 ⊕ k1` is one Δ per batch, never 0.
    fn check(sender: &View, receiver: &View, which: usize) {
        for (call, ((k0, k1), (keys, choices))) in sender.sent.iter().zip(&receiver.received).enumerate() {
            let m = [CALLS[call].0, CALLS[call].1][which];
            assert_eq!((k0.len(), k1.len(), keys.len()), (m, m, m), "call {call}: lengths");
            for i in 0..m {
                let want = if choice(choices, i) { k1[i] } else { k0[i] };
                assert_eq!(keys[i], want, "call {call}, OT {i}: the receiver's key is not k_r");
                assert_ne!(k0[i], k1[i], "call {call}, OT {i}: Δ = 0");
            }
        }
    }

    fn check_source(make: impl Fn(&mut Channel) -> Box<dyn OtSource> + Sync) {
        let party = |ch: &mut Channel, seed: u64| {
            let ots = make(ch);
            run(ch, ots, seed)
        };
        let (gov, bank) = run_pair(|ch| party(ch, 1), |ch| party(ch, 2));
        check(&gov, &bank, 0);
        check(&bank, &gov, 1);
        // Random choices are balanced, and differ between the directions.
        let (_, c) = &gov.received[2];
        let ones: u32 = c.iter().map(|w| w.count_ones()).sum();
        assert!((ones as f64 / 4096.0 - 0.5).abs() < 0.05, "{ones} of 4096 random choices are 1");
    }

    #[test]
    fn silent_source_gives_correct_correlated_ots_in_both_directions_across_batches() {
        check_source(|_| Box::new(Silent::new()));
    }

    #[test]
    fn iknp_source_gives_correct_correlated_ots_in_both_directions() {
        check_source(|ch| {
            Box::new(Iknp::setup(ch, &mut ChaCha20Rng::seed_from_u64(ch.role().index() as u64)).unwrap())
        });
    }

    #[test]
    fn dealer_gives_correct_correlated_ots_in_both_directions() {
        check_source(|ch| Box::new(Dealer::new(9, ch.role())));
    }

    #[test]
    fn silent_refills_of_both_directions_take_two_turns() {
        // Both pools empty: one refill each way, interleaved (four turns one after the other).
        let party = |ch: &mut Channel| {
            let (send, recv) = if ch.role() == Role::Gov { (1000, 300) } else { (300, 1000) };
            let before = ch.stats();
            Silent::new().reserve(ch, send, recv, &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
            ch.stats().since(&before).rounds
        };
        assert_eq!(run_pair(party, party), (2, 2));
    }

    #[test]
    fn derandomisation_message_has_the_documented_length_and_is_checked() {
        let s = Silent::new();
        assert_eq!((s.message_len(129, false), s.message_len(129, true)), (17, 0));
        let mut s = Silent::new();
        assert!(s.send(8, &[0; 2], false).is_err(), "a message of the wrong length is refused");
    }

    #[test]
    fn correlations_parse_from_the_job_parameter() {
        assert_eq!("iknp".parse::<Correlations>().unwrap(), Correlations::Iknp);
        assert_eq!("silent".parse::<Correlations>().unwrap(), Correlations::Silent);
        assert!("dealer".parse::<Correlations>().is_err());
    }
}
