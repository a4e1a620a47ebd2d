//! Homomorphic `matvec` / `matvec_t` (one party's plaintext matrix, prepared once, times a shared
//! vector): both parties over the in-memory channel with seeded RNGs, random inputs, results
//! checked against plaintext integer products computed here.
//! Every test runs once per correlation source (IKNP, silent; `sources::each_source`).

mod sources;

use protocol::channel::run_pair;
use protocol::fixed::FixedPoint;
use protocol::mpc::{Engine, PlainMatrix};
use protocol::transcript::{Direction, FrameEvent, FrameObserver};
use protocol::{Error, PeerError, Role, TransportError};
use std::sync::{Arc, Mutex};

/// Records the direction of every frame.
struct Directions(Arc<Mutex<Vec<Direction>>>);
impl FrameObserver for Directions {
    fn on_frame(&mut self, f: &FrameEvent<'_>) {
        self.0.lock().unwrap().push(f.direction);
    }
}
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Tests open results to check them: a grant of the test pair's allow-all ledger.
fn opened() -> protocol::disclose::Grant {
    protocol::disclose::Grant::new("test", "test", "a value the test checks")
}

const F: u32 = 16;
/// Bytes of one fresh ciphertext (seed + 3 limbs of N = 8192 u64).
const CT_BYTES: usize = 32 + 3 * 8192 * 8;

/// Runs `f` at both parties (see [`sources::both_at`]).
fn both<T: Send>(f: impl Fn(&mut Engine) -> T + Sync) -> (T, T) {
    sources::both_at(F, f)
}

fn ints(seed: u64, n: usize, bits: u32) -> Vec<u64> {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-(1i64 << bits)..(1i64 << bits)) as u64).collect()
}

/// `⌊x / 2^F⌋` within one ulp.
fn assert_truncated(got: u64, exact: i128, what: &str) {
    let diff = (got as i64).wrapping_sub((exact >> F) as i64);
    assert!(diff.abs() <= 1, "{what}: got {} want {} (diff {diff})", got as i64, (exact >> F) as i64);
}

/// Prepares an `owner` matrix with entries of 40 bits (so that the products stay within the
/// truncation bound with 12-bit `v` and 8-bit `u`), then `calls` times shares fresh `v`, `u`
/// (v by the peer, u by the owner: the homomorphic cross term always involves the peer's
/// uniform share) and checks `M·v` and `Mᵀ·u` against the plaintext. Also checks that each
/// call's products send fewer bytes than the set-up (the encrypted matrix is reused).
fn he_case(owner: Role, rows: usize, cols: usize, calls: usize, seed: u64) {
    let m = PlainMatrix { rows, cols, data: ints(seed, rows * cols, 40) };
    let vs: Vec<Vec<u64>> = (0..calls).map(|c| ints(seed + 10 + c as u64, cols, 12)).collect();
    let us: Vec<Vec<u64>> = (0..calls).map(|c| ints(seed + 20 + c as u64, rows, 8)).collect();
    let (g, b) = both(|e| {
        let me = e.role();
        let before = e.stats().total_bytes();
        let pm = e.prepare_matrix(owner, (me == owner).then_some(&m), rows, cols).unwrap();
        let setup_bytes = e.stats().total_bytes() - before;
        assert!(pm.homomorphic(), "{rows}×{cols} takes the homomorphic products");
        let mut opened_values = Vec::new();
        let mut product_bytes = Vec::new();
        for (v, u) in vs.iter().zip(&us) {
            let vsh = e.share(owner.peer(), (me == owner.peer()).then_some(&v[..]), cols).unwrap();
            let ush = e.share(owner, (me == owner).then_some(&u[..]), rows).unwrap();
            let before = e.stats().total_bytes();
            let mv = e.matvec(&pm, &vsh).unwrap();
            let mtu = e.matvec_t(&pm, &ush).unwrap();
            product_bytes.push(e.stats().total_bytes() - before);
            opened_values.push((e.reveal_both(&opened(), &mv).unwrap(), e.reveal_both(&opened(), &mtu).unwrap()));
        }
        (opened_values, product_bytes, setup_bytes)
    });
    assert_eq!(g.0, b.0);
    for bytes in g.1 {
        assert!(bytes < g.2, "one M·v and one Mᵀ·u sent {bytes} B, the set-up {} B: the matrix was sent again", g.2);
    }
    let at = |i: usize, j: usize| m.data[i * cols + j] as i64 as i128;
    for (c, (mv, mtu)) in g.0.iter().enumerate() {
        for i in 0..rows {
            let want: i128 = (0..cols).map(|j| at(i, j) * vs[c][j] as i64 as i128).sum();
            assert_truncated(mv[i], want, &format!("{rows}×{cols} M·v call {c} row {i}"));
        }
        for j in 0..cols {
            let want: i128 = (0..rows).map(|i| at(i, j) * us[c][i] as i64 as i128).sum();
            assert_truncated(mtu[j], want, &format!("{rows}×{cols} Mᵀ·u call {c} column {j}"));
        }
    }
}

#[test]
fn homomorphic_matvec_matches_plaintext_for_odd_shapes_either_owner_and_reused_matrices() {
    sources::each_source(|| {
        // One block; two blocks with a short last one; many rows of few columns.
        he_case(Role::Gov, 1000, 7, 3, 1);
        he_case(Role::Bank, 333, 25, 2, 2);
        he_case(Role::Bank, 2100, 3, 2, 3);
    });
}

#[test]
fn homomorphic_matvec_is_exact_for_full_range_matrix_entries() {
    // The owner's entries may be anything in Z_2^64: with v = 0 and u = 0 the owner's local
    // product −M·v_peer must cancel the homomorphic M·v_peer exactly (mod 2^64), while the
    // peer's share is uniform.
    sources::each_source(|| {
        let (rows, cols) = (700, 11);
        let mut r = ChaCha20Rng::seed_from_u64(5);
        let m = PlainMatrix { rows, cols, data: (0..rows * cols).map(|_| r.random::<u64>()).collect() };
        let (g, _) = both(|e| {
            let me = e.role();
            let pm = e.prepare_matrix(Role::Gov, (me == Role::Gov).then_some(&m), rows, cols).unwrap();
            assert!(pm.homomorphic());
            let vsh = e.share(Role::Bank, (me == Role::Bank).then_some(&vec![0; cols][..]), cols).unwrap();
            let ush = e.share(Role::Bank, (me == Role::Bank).then_some(&vec![0; rows][..]), rows).unwrap();
            let (mv, mtu) = (e.matvec(&pm, &vsh).unwrap(), e.matvec_t(&pm, &ush).unwrap());
            (e.reveal_both(&opened(), &mv).unwrap(), e.reveal_both(&opened(), &mtu).unwrap())
        });
        g.0.iter().chain(&g.1).enumerate().for_each(|(i, &x)| assert_truncated(x, 0, &format!("output {i}")));
    });
}

/// A pair where the gov prepares a 1000 × 7 matrix honestly and the bank sends `forged` bytes
/// as its reply to the gov's `matvec`; returns the gov's result.
fn gov_matvec_against_forged_reply(forged: Vec<u8>) -> protocol::Result<Vec<u64>> {
    let (rows, cols) = (1000, 7);
    let m = PlainMatrix { rows, cols, data: ints(7, rows * cols, 20) };
    let src = sources::source();
    let fp = FixedPoint::new(F);
    let (gov, ()) = run_pair(
        |ch| {
            let mut e = Engine::with_correlations(ch, fp, src, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
            let pm = e.prepare_matrix(Role::Gov, Some(&m), rows, cols).unwrap();
            e.matvec(&pm, &[0; 7])
        },
        |ch| {
            let mut e = Engine::with_correlations(ch, fp, src, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
            e.prepare_matrix(Role::Gov, None, rows, cols).unwrap();
            // The gov may refuse the frame and hang up before it is all sent.
            e.channel().send_bulk("he.prod", &forged).ok();
        },
    );
    gov
}

/// A pair where the gov sends `forged` bytes as its encrypted 1000 × 7 matrix (key included);
/// returns the bank's `prepare_matrix` outcome.
fn bank_prepare_against_forged_matrix(forged: Vec<u8>) -> protocol::Result<()> {
    let src = sources::source();
    let fp = FixedPoint::new(F);
    let ((), bank) = run_pair(
        |ch| {
            let mut e = Engine::with_correlations(ch, fp, src, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
            e.channel().send_bulk("he.ct", &forged).unwrap();
        },
        |ch| {
            let mut e = Engine::with_correlations(ch, fp, src, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
            e.prepare_matrix(Role::Gov, None, 1000, 7).map(drop)
        },
    );
    bank
}

#[test]
fn malformed_ciphertexts_and_replies_are_peer_errors() {
    sources::each_source(|| {
        // 1000 × 7 fits one ciphertext block, two digits: key + 2 ciphertexts; the reply is the
        // switched a part (N coefficients of 79 bits) and 1000 wanted coefficients.
        let setup = 3 * CT_BYTES;
        let reply = 8192 * 79 / 8 + (1000 * 79usize).div_ceil(8);
        for len in [reply - 1, 0] {
            let got = gov_matvec_against_forged_reply(vec![0; len]);
            assert!(matches!(got, Err(Error::Peer(PeerError::WrongLength { .. }))), "{len} B: {got:?}");
        }
        // Longer than expected: the channel refuses the frame before reading it.
        let got = gov_matvec_against_forged_reply(vec![0; reply + 1]);
        assert!(matches!(got, Err(Error::Transport(TransportError::FrameTooLarge { .. }))), "{got:?}");
        let got = bank_prepare_against_forged_matrix(vec![0; setup - 8]);
        assert!(matches!(got, Err(Error::Peer(PeerError::WrongLength { .. }))), "{got:?}");
        // A residue equal to its prime (the first limb's prime is 2^62 − 2^16 + 1).
        let mut bad = vec![0u8; setup];
        bad[CT_BYTES + 32..CT_BYTES + 40].copy_from_slice(&0x3fff_ffff_ffff_0001u64.to_le_bytes());
        let got = bank_prepare_against_forged_matrix(bad);
        assert!(matches!(got, Err(Error::Peer(PeerError::OutOfRange { .. }))), "{got:?}");
    });
}

/// `matvec_each` over a gov and a bank matrix (homomorphic) and a small gov matrix (Gilboa), in
/// both orientations, equals the plaintext products; at once, both parties evaluate the peer's
/// product before they wait for their own (one flight for both, then one truncation).
#[test]
fn matvec_each_matches_plaintext_and_both_parties_evaluate_at_once() {
    sources::each_source(|| {
        let shapes = [(Role::Gov, 400, 7), (Role::Bank, 400, 9), (Role::Gov, 8, 3)];
        let ms: Vec<PlainMatrix> = shapes
            .iter()
            .enumerate()
            .map(|(k, &(_, rows, cols))| PlainMatrix { rows, cols, data: ints(40 + k as u64, rows * cols, 40) })
            .collect();
        let vs: Vec<Vec<u64>> = shapes.iter().enumerate().map(|(k, s)| ints(50 + k as u64, s.2, 12)).collect();
        let u = ints(60, 400, 8);
        let u_small = ints(61, 8, 8);
        let (g, b) = both(|e| {
            let me = e.role();
            let pms: Vec<_> = shapes
                .iter()
                .zip(&ms)
                .map(|(&(owner, rows, cols), m)| {
                    e.prepare_matrix(owner, (me == owner).then_some(m), rows, cols).unwrap()
                })
                .collect();
            assert_eq!(pms.iter().map(|p| p.homomorphic()).collect::<Vec<_>>(), [true, true, false]);
            let vsh: Vec<Vec<u64>> =
                vs.iter().map(|v| e.share(Role::Gov, (me == Role::Gov).then_some(&v[..]), v.len()).unwrap()).collect();
            let ush = e.share(Role::Bank, (me == Role::Bank).then_some(&u[..]), u.len()).unwrap();
            let ush_small = e.share(Role::Bank, (me == Role::Bank).then_some(&u_small[..]), u_small.len()).unwrap();
            let mv = e.matvec_each(&[(&pms[0], &vsh[0]), (&pms[1], &vsh[1]), (&pms[2], &vsh[2])], false).unwrap();
            let mtu = e.matvec_each(&[(&pms[0], &ush), (&pms[1], &ush), (&pms[2], &ush_small)], true).unwrap();
            // The directions of this party's frames during `f`.
            let directions = |e: &mut Engine, f: &dyn Fn(&mut Engine)| {
                let seen = Arc::new(Mutex::new(Vec::new()));
                e.channel().set_observer(Box::new(Directions(seen.clone())));
                f(e);
                seen.lock().unwrap().clone()
            };
            let one_by_one = directions(e, &|e: &mut Engine| {
                drop(e.matvec(&pms[0], &vsh[0]).unwrap());
                drop(e.matvec(&pms[1], &vsh[1]).unwrap());
            });
            let at_once = directions(e, &|e: &mut Engine| {
                drop(e.matvec_each(&[(&pms[0], &vsh[0]), (&pms[1], &vsh[1])], false).unwrap())
            });
            let open = |e: &mut Engine, xs: &[Vec<u64>]| {
                xs.iter().map(|x| e.reveal_both(&opened(), x).unwrap()).collect::<Vec<_>>()
            };
            (open(e, &mv), open(e, &mtu), one_by_one, at_once)
        });
        assert_eq!((&g.0, &g.1), (&b.0, &b.1));
        // One by one, the gov waits for the bank's reply to its matrix before it evaluates the
        // bank's; at once, each party sends its evaluation before it waits for anything.
        assert_eq!(g.2[0], Direction::Received, "one by one, the gov starts by waiting");
        for (party, at_once) in [("gov", &g.3), ("bank", &b.3)] {
            assert_eq!(at_once[0], Direction::Sent, "the {party} evaluates before it waits: {at_once:?}");
        }
        for (k, (m, v)) in ms.iter().zip(&vs).enumerate() {
            let at = |i: usize, j: usize| m.data[i * m.cols + j] as i64 as i128;
            for i in 0..m.rows {
                let want: i128 = (0..m.cols).map(|j| at(i, j) * v[j] as i64 as i128).sum();
                assert_truncated(g.0[k][i], want, &format!("product {k} M·v row {i}"));
            }
            let u = if k == 2 { &u_small } else { &u };
            for j in 0..m.cols {
                let want: i128 = (0..m.rows).map(|i| at(i, j) * u[i] as i64 as i128).sum();
                assert_truncated(g.1[k][j], want, &format!("product {k} Mᵀ·u column {j}"));
            }
        }
    });
}
