use super::silent::{BaseAnswer, Extension, Kind, ReceiverStart, SenderStart, TreeMessage};
use super::*;
use crate::PeerError;
use crate::channel::{mem_pair, run_pair};
use crate::gf128::Multiplier;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn vole_pair(n: usize, gov_sends: bool, seed: u64) -> (VoleSender, VoleReceiver) {
    if gov_sends {
        run_pair(|ch| vole_send(ch, n, &mut rng(seed)).unwrap(), |ch| vole_receive(ch, n, &mut rng(seed + 1)).unwrap())
    } else {
        let (r, s) = run_pair(
            |ch| vole_receive(ch, n, &mut rng(seed)).unwrap(),
            |ch| vole_send(ch, n, &mut rng(seed + 1)).unwrap(),
        );
        (s, r)
    }
}

/// (Δ, s) of the sender and (x, t) of the receiver.
type CotPair = ((Gf128, Blocks), (Vec<bool>, Blocks));

fn cot_pair(n: usize, gov_sends: bool, seed: u64) -> CotPair {
    if gov_sends {
        run_pair(|ch| cot_send(ch, n, &mut rng(seed)).unwrap(), |ch| cot_receive(ch, n, &mut rng(seed + 1)).unwrap())
    } else {
        let (r, s) = run_pair(
            |ch| cot_receive(ch, n, &mut rng(seed)).unwrap(),
            |ch| cot_send(ch, n, &mut rng(seed + 1)).unwrap(),
        );
        (s, r)
    }
}

/// Every output satisfies `c_i = b_i + a_i·Δ`, with `a_i·Δ` computed here by the bitwise
/// reference route `Multiplier` shares nothing with the XOR-only generator.
#[test]
fn vole_correlation_holds_on_every_output_for_several_sizes_and_both_roles() {
    for (k, (n, gov_sends)) in
        [(1, true), (100, false), (4096, true), (5000, false), (40_000, true)].into_iter().enumerate()
    {
        let (s, r) = vole_pair(n, gov_sends, 10 * k as u64);
        assert_eq!((s.b.len(), r.a.len(), r.c.len()), (n, n, n));
        let mut times_delta = Multiplier::new(s.delta);
        for i in 0..n {
            assert_eq!(r.c[i], s.b[i] + times_delta.mul(r.a[i]), "n {n}, output {i}");
        }
    }
}

#[test]
fn cot_correlation_holds_on_every_output_for_several_sizes_and_both_roles() {
    for (k, (n, gov_sends)) in [(1, false), (129, true), (4096, false), (70_000, true)].into_iter().enumerate() {
        let ((delta, s), (x, t)) = cot_pair(n, gov_sends, 100 + 10 * k as u64);
        assert_eq!((s.len(), x.len(), t.len()), (n, n, n));
        for i in 0..n {
            assert_eq!(t[i], s[i] ^ if x[i] { delta.0 } else { 0 }, "n {n}, COT {i}");
        }
    }
}

/// Count of ones among `bits` lies within 6 standard deviations of half (fails by chance with
/// probability about 2·10^-9).
fn assert_balanced(what: &str, ones: usize, bits: usize) {
    let (mean, sd) = (bits as f64 / 2.0, (bits as f64).sqrt() / 2.0);
    assert!((ones as f64 - mean).abs() < 6.0 * sd, "{what}: {ones} ones in {bits} bits");
}

fn assert_distinct(what: &str, values: impl Iterator<Item = u128>) {
    let mut v: Vec<u128> = values.collect();
    let len = v.len();
    v.sort_unstable();
    v.dedup();
    assert_eq!(v.len(), len, "{what}: values repeat");
}

/// The outputs look uniform: every bit position of `a`, `b`, `c` is balanced over the outputs,
/// no value repeats, and the COT choice bits are balanced and not periodic (and packed in the
/// low bits, the rest of `s` balanced). A generator that
/// left the noise sparse (no code), or reused a tree, fails these.
#[test]
fn outputs_look_uniform() {
    let n = 1 << 14;
    let (s, r) = vole_pair(n, true, 7);
    assert_ne!(s.delta, Gf128::ZERO);
    for (what, xs) in [("a", &r.a), ("b", &s.b), ("c", &r.c)] {
        for bit in 0..128 {
            let ones = xs.iter().filter(|v| (v.0 >> bit) & 1 == 1).count();
            assert_balanced(&format!("{what} bit {bit}"), ones, n);
        }
        assert_distinct(what, xs.iter().map(|v| v.0));
    }
    let ((delta, s), (x, t)) = cot_pair(n, false, 8);
    assert_balanced("choice bits", x.iter().filter(|&&b| b).count(), n);
    // Choice-bit packing: Δ and t carry the choice in bit 0, s has it clear; the other bits of
    // s are balanced.
    assert_eq!(delta.0 & 1, 1, "Δ's low bit");
    assert!(s.iter().all(|v| v & 1 == 0), "s's low bits");
    assert!(x.iter().zip(&t).all(|(&x, t)| (t & 1 == 1) == x), "t's low bits are the choices");
    for bit in 1..128 {
        assert_balanced(&format!("s bit {bit}"), s.iter().filter(|v| (*v >> bit) & 1 == 1).count(), n);
    }
    let agree = x.windows(2).filter(|w| w[0] == w[1]).count();
    assert_balanced("equal neighbouring choice bits", agree, n - 1);
    assert_distinct("s", s.iter().copied());
    assert_distinct("t", t.iter().copied());
}

/// Driving the message-in/message-out steps directly (no channel) gives the same correlation.
#[test]
fn steps_without_a_channel() {
    let n = 300;
    let mut rs = rng(1);
    let mut rr = rng(2);
    let sender = SenderStart::new(Kind::Vole, n).unwrap();
    let (receiver, offer) = ReceiverStart::start(Kind::Vole, n, &mut rr).unwrap();
    let (sender, answer) = sender.on_base_offer(&offer, &mut rs).unwrap();
    let (receiver, ext) = receiver.on_base_answer(&answer, &mut rr).unwrap();
    let (encoding, trees) = sender.on_extension(&ext, &mut rs).unwrap();
    let out_s = encoding.finish();
    let out_r = receiver.on_trees_vole(&trees).unwrap();
    let mut times_delta = Multiplier::new(Gf128(out_s.delta));
    for i in 0..n {
        assert_eq!(Gf128(out_r.c[i]), Gf128(out_s.b[i]) + times_delta.mul(Gf128(out_r.a[i])));
    }
}

/// Malformed or mismatched peer messages are errors, never panics or wrong outputs.
#[test]
fn malformed_peer_messages_are_errors() {
    let n = 500;
    let p = Params::new(n).unwrap();
    let mut rr = rng(3);
    let mut rs = rng(4);
    let (receiver, offer) = ReceiverStart::start(Kind::Cot, n, &mut rr).unwrap();
    let (sender, answer) = SenderStart::new(Kind::Cot, n).unwrap().on_base_offer(&offer, &mut rs).unwrap();
    let short = BaseAnswer(answer.0[..answer.0.len() - 1].to_vec());
    let (receiver_again, _) = ReceiverStart::start(Kind::Cot, n, &mut rr).unwrap();
    assert!(receiver_again.on_base_answer(&short, &mut rr).is_err(), "short base answer");
    let (receiver, ext) = receiver.on_base_answer(&answer, &mut rr).unwrap();
    assert_eq!(ext.0.len(), Extension::len(&p, Kind::Cot));
    let (_, trees) = sender.on_extension(&ext, &mut rs).unwrap();
    let bytes = trees.encode();
    assert!(TreeMessage::decode(&p, Kind::Cot, &bytes[..bytes.len() - 16]).is_err(), "short tree message");
    assert!(TreeMessage::decode(&p, Kind::Cot, &[bytes.clone(), vec![0; 16]].concat()).is_err(), "long tree message");
    assert!(receiver.on_trees_cot(&TreeMessage(trees.0[1..].to_vec())).is_err(), "short tree message, typed");

    // A sender set up for COT and a receiver for VOLE disagree on the extension length.
    let (s, r) =
        run_pair(|ch| cot_send(ch, n, &mut rng(5)).map(|_| ()), |ch| vole_receive(ch, n, &mut rng(6)).map(|_| ()));
    assert!(s.is_err() && r.is_err(), "mismatched correlations must fail on both sides");

    // A truncated extension over the channel.
    let (mut g, mut b) = mem_pair();
    let sender = std::thread::spawn(move || cot_send(&mut g, n, &mut rng(7)).map(|_| ()));
    let (receiver, offer) = ReceiverStart::start(Kind::Cot, n, &mut rr).unwrap();
    b.send_frame(super::silent::BaseOffer::KIND, offer.0).unwrap();
    let answer = BaseAnswer(b.recv_bulk(BaseAnswer::KIND, BaseAnswer::LEN as u64).unwrap());
    let (_, ext) = receiver.on_base_answer(&answer, &mut rr).unwrap();
    b.send_bulk(Extension::KIND, &ext.0[..ext.0.len() - 16]).unwrap();
    assert!(matches!(sender.join().unwrap(), Err(Error::Peer(PeerError::WrongLength { .. }))));
    assert!(Params::new(0).is_err() && Params::new(MAX_N + 1).is_err());
}

/// The noise weight is the smallest multiple of 8 whose linear-test bias `(1 − 2δ)^t` is at most
/// 2^-128 for the code's estimated relative distance δ = 0.15 (recomputed here).
#[test]
fn noise_weight_is_the_smallest_that_bounds_the_linear_test() {
    let security_bits = |t: usize| -(t as f64) * (1.0 - 2.0 * 0.15f64).log2();
    assert_eq!(NOISE_WEIGHT % 8, 0);
    assert!(security_bits(NOISE_WEIGHT) >= 128.0, "t = {NOISE_WEIGHT} too small");
    assert!(security_bits(NOISE_WEIGHT - 8) < 128.0, "t = {NOISE_WEIGHT} not the smallest");
}

/// Above [`PIECE_N`] the run is cut into pieces, each compressed on its own and its outputs
/// moved behind the previous piece's: the correlations hold on every output of both kinds, and
/// each piece's choice bits are balanced (outputs left uncompressed would be the sparse noise).
#[test]
fn correlations_hold_across_pieces() {
    let n = PIECE_N + 5000;
    let p = Params::new(n).unwrap();
    assert_eq!((p.pieces, p.code.n), (2, n.div_ceil(2)), "two equal pieces");
    assert!(p.trees.is_multiple_of(2) && p.trees / 2 >= NOISE_WEIGHT, "{} trees", p.trees);
    let ((delta, s), (x, t)) = cot_pair(n, true, 300);
    assert_eq!((s.len(), x.len()), (n, n));
    assert!((0..n).all(|i| t[i] == s[i] ^ if x[i] { delta.0 } else { 0 }), "COT correlation");
    for range in [0..p.code.n, p.code.n..n] {
        let len = range.len();
        assert_balanced("choice bits of one piece", x[range].iter().filter(|&&b| b).count(), len);
    }
    let (s, r) = vole_pair(n, false, 310);
    let mut times_delta = Multiplier::new(s.delta);
    let boundary = p.code.n - 50..p.code.n + 50;
    for i in (0..n).step_by(101).chain(boundary).chain(n - 10..n) {
        assert_eq!(r.c[i], s.b[i] + times_delta.mul(r.a[i]), "VOLE output {i}");
    }
    let ones = r.a[p.code.n..].iter().filter(|v| v.0 & 1 == 1).count();
    assert_balanced("low bits of the second piece's a", ones, n - p.code.n);
}

/// `encode_in_place` equals each piece's code applied to its own copy of its leaves, the
/// outputs concatenated in piece order.
#[test]
fn pieces_encode_like_separate_codes() {
    let p = Params::new(2 * PIECE_N + 3).unwrap();
    assert_eq!(p.pieces, 3);
    let mut g = rng(320);
    let x: Vec<u128> = (0..p.leaves()).map(|_| g.random()).collect();
    let mut want = Vec::with_capacity(p.n);
    for piece in x.chunks_exact(p.code.big_n) {
        let mut own = piece.to_vec();
        p.code.dual_encode(&mut own);
        want.extend_from_slice(&own[..p.code.n]);
    }
    want.truncate(p.n);
    let mut got = Blocks::zeroed(x.len());
    got.copy_from_slice(&x);
    p.encode_in_place(&mut got);
    assert!(*got == want[..], "pieces encoded differently");
}
