//! Two-party engine tests: both parties over the in-memory channel with seeded ChaCha RNGs,
//! every result checked against plaintext arithmetic computed here.
//! Every test runs once per correlation source (IKNP, silent; `sources::each_source`).

mod sources;

use std::sync::{Arc, Mutex};

use protocol::channel::run_pair;
use protocol::fixed::FixedPoint;
use protocol::mpc::{Engine, PlainMatrix, Sigmoid, sigmoid};
use protocol::transcript::{Direction, FrameEvent, FrameObserver};
use protocol::{Channel, Error, InputError, Role};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Tests open results to check them: a grant of the test pair's allow-all ledger.
fn opened() -> protocol::disclose::Grant {
    protocol::disclose::Grant::new("test", "test", "a value the test checks")
}

const F: u32 = 16;

fn fp() -> FixedPoint {
    FixedPoint::new(F)
}

/// Runs `f` at both parties (see [`sources::both_at`]).
fn both<T: Send>(f: impl Fn(&mut Engine) -> T + Sync) -> (T, T) {
    sources::both_at(F, f)
}

fn reals(seed: u64, n: usize, range: f64) -> Vec<f64> {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-range..range)).collect()
}

/// `⌊a·b / 2^f⌋` on encoded integers.
fn trunc_prod(sum: i128) -> i64 {
    (sum >> F) as i64
}

fn assert_within(got: u64, want: i64, ulps: i64, what: &str) {
    let diff = (got as i64).wrapping_sub(want);
    assert!(diff.abs() <= ulps, "{what}: got {} want {want} (diff {diff})", got as i64);
}

#[test]
fn share_reveal_and_local_operations_match_plaintext() {
    sources::each_source(|| {
        let (x, y) = (fp().encode_all(&reals(10, 300, 100.0)), fp().encode_all(&reals(11, 300, 100.0)));
        let c = fp().encode_all(&reals(12, 300, 5.0));
        let (g, b) = both(|e| {
            let me = e.role();
            let xs = e.share(Role::Gov, (me == Role::Gov).then_some(&x[..]), x.len()).unwrap();
            let ys = e.share(Role::Bank, (me == Role::Bank).then_some(&y[..]), y.len()).unwrap();
            let sum = e.add(&xs, &ys);
            let diff = e.sub(&xs, &ys);
            let plus_c = e.add_public(&xs, &c);
            let plus_y = e.add_private(Role::Bank, &xs, (me == Role::Bank).then_some(&y[..]));
            let scaled = e.mul_public(&xs, -0.375).unwrap();
            let total = vec![e.sum(&xs)];
            let own_share_is_not_x = xs != x && ys != y;
            let to_bank = e.reveal_to(&opened(), Role::Bank, &sum).unwrap();
            let opened: Vec<Vec<u64>> = [&sum, &diff, &plus_c, &plus_y, &scaled, &total]
                .iter()
                .map(|v| e.reveal_both(&opened(), v).unwrap())
                .collect();
            (opened, to_bank, own_share_is_not_x)
        });
        assert_eq!(g.0, b.0, "reveal_both gives both parties the same values");
        assert!(g.1.is_none());
        assert!(g.2 && b.2, "a party's share differs from the plaintext");
        let o = &b.0;
        assert_eq!(b.1.as_ref().unwrap(), &o[0]);
        let c375 = fp().encode(-0.375) as i64 as i128;
        for i in 0..x.len() {
            assert_eq!(o[0][i], x[i].wrapping_add(y[i]));
            assert_eq!(o[1][i], x[i].wrapping_sub(y[i]));
            assert_eq!(o[2][i], x[i].wrapping_add(c[i]));
            assert_eq!(o[3][i], x[i].wrapping_add(y[i]));
            assert_within(o[4][i], trunc_prod(x[i] as i64 as i128 * c375), 1, "mul_public");
        }
        assert_eq!(o[5][0], x.iter().fold(0u64, |a, v| a.wrapping_add(*v)));
    });
}

#[test]
fn mul_matches_plaintext_products() {
    sources::each_source(|| {
        let (x, y) = (fp().encode_all(&reals(20, 257, 50.0)), fp().encode_all(&reals(21, 257, 50.0)));
        let (g, b) = both(|e| {
            let me = e.role();
            let xs = e.share(Role::Gov, (me == Role::Gov).then_some(&x[..]), x.len()).unwrap();
            let ys = e.share(Role::Bank, (me == Role::Bank).then_some(&y[..]), y.len()).unwrap();
            let xy = e.mul(&xs, &ys).unwrap();
            let xx = e.mul(&xs, &xs).unwrap();
            assert!(e.mul(&[], &[]).unwrap().is_empty(), "empty vectors need no OTs");
            assert!(e.sigmoid(&[], Sigmoid::ClippedLinear).unwrap().is_empty());
            (e.reveal_both(&opened(), &xy).unwrap(), e.reveal_both(&opened(), &xx).unwrap())
        });
        assert_eq!(g, b);
        for i in 0..x.len() {
            let (a, c) = (x[i] as i64 as i128, y[i] as i64 as i128);
            assert_within(g.0[i], trunc_prod(a * c), 1, "x·y");
            assert_within(g.1[i], trunc_prod(a * a), 1, "x·x");
        }
    });
}

fn matvec_case(owner: Role, rows: usize, cols: usize, seed: u64) {
    let m = PlainMatrix::from_f64(rows, cols, &reals(seed, rows * cols, 4.0), fp());
    let v = fp().encode_all(&reals(seed + 1, cols, 3.0));
    let u = fp().encode_all(&reals(seed + 2, rows, 3.0));
    let (g, _) = both(|e| {
        let me = e.role();
        let mine = (me == owner).then_some(&m);
        // v shared by the non-owner, u by the owner: the cross term always involves the peer share.
        let vs = e.share(owner.peer(), (me == owner.peer()).then_some(&v[..]), cols).unwrap();
        let us = e.share(owner, (me == owner).then_some(&u[..]), rows).unwrap();
        let pm = e.prepare_matrix(owner, mine, rows, cols).unwrap();
        assert!(!pm.homomorphic(), "small matrices take the Gilboa products");
        let mv = e.matvec(&pm, &vs).unwrap();
        let mtu = e.matvec_t(&pm, &us).unwrap();
        (e.reveal_both(&opened(), &mv).unwrap(), e.reveal_both(&opened(), &mtu).unwrap())
    });
    let at = |i: usize, j: usize| m.data[i * cols + j] as i64 as i128;
    for i in 0..rows {
        let want: i128 = (0..cols).map(|j| at(i, j) * v[j] as i64 as i128).sum();
        assert_within(g.0[i], trunc_prod(want), 1, "M·v");
    }
    for j in 0..cols {
        let want: i128 = (0..rows).map(|i| at(i, j) * u[i] as i64 as i128).sum();
        assert_within(g.1[j], trunc_prod(want), 1, "Mᵀ·u");
    }
}

#[test]
fn matvec_and_transpose_match_plaintext_for_either_owner() {
    sources::each_source(|| {
        matvec_case(Role::Gov, 70, 5, 30);
        matvec_case(Role::Bank, 33, 13, 40);
    });
}

#[test]
fn matvec_rejects_wrong_dimensions_without_talking() {
    sources::each_source(|| {
        let m = PlainMatrix::from_f64(2, 2, &[1.0, 2.0, 3.0, 4.0], fp());
        let ((), ()) = both(|e| {
            if e.role() == Role::Gov {
                let input_error = |r: Result<Vec<u64>, Error>, want: &str| match r {
                    Err(Error::Input(InputError::Usage { detail, .. })) => assert!(detail.contains(want), "{detail}"),
                    other => panic!("expected an input error containing {want:?}, got {other:?}"),
                };
                let before = e.stats();
                input_error(
                    e.prepare_matrix(Role::Gov, Some(&m), 3, 2).map(|_| vec![]),
                    "2×2 with 4 entries, the call says 3×2",
                );
                input_error(
                    e.prepare_matrix(Role::Gov, None, 2, 2).map(|_| vec![]),
                    "the matrix owner must pass its matrix",
                );
                let prepared = e.prepare_matrix(Role::Gov, Some(&m), 2, 2).unwrap();
                input_error(e.matvec_t(&prepared, &[0, 0, 0]), "vector has 3 entries, the 2×2 matrix needs 2");
                input_error(e.matvec(&prepared, &[0]), "vector has 1 entries, the 2×2 matrix needs 2");
                assert_eq!(e.stats(), before, "refused before sending anything");
            }
        });
    });
}

#[test]
fn msb_and_less_than_zero_match_plaintext_sign() {
    sources::each_source(|| {
        let mut r = ChaCha20Rng::seed_from_u64(50);
        // Full-range ring elements, values around zero and the extremes.
        let mut x: Vec<u64> = (0..150).map(|_| r.next_u64()).collect();
        x.extend([0, 1, u64::MAX, 1 << 63, (1 << 63) - 1, 2, u64::MAX - 1]);
        let small = fp().encode_all(&reals(51, 100, 2.0));
        let (g, b) = both(|e| {
            let me = e.role();
            let xs = e.share(Role::Gov, (me == Role::Gov).then_some(&x[..]), x.len()).unwrap();
            let bits = e.msb(&xs).unwrap();
            let ss = e.share(Role::Bank, (me == Role::Bank).then_some(&small[..]), small.len()).unwrap();
            let lt = e.less_than_zero(&ss).unwrap();
            (bits, e.reveal_both(&opened(), &lt).unwrap())
        });
        for i in 0..x.len() {
            let bit = ((g.0[i / 64] ^ b.0[i / 64]) >> (i % 64)) & 1;
            assert_eq!(bit, x[i] >> 63, "msb of {:#x}", x[i]);
        }
        for i in 0..small.len() {
            let want = if (small[i] as i64) < 0 { 1.0 } else { 0.0 };
            assert_eq!(fp().decode(g.1[i]), want, "[{} < 0]", fp().decode(small[i]));
        }
    });
}

#[test]
fn mux_selects_with_xor_shared_bits() {
    sources::each_source(|| {
        let y = fp().encode_all(&reals(60, 130, 1000.0));
        let bits_of = |seed| {
            let mut r = ChaCha20Rng::seed_from_u64(seed);
            (0..3).map(|_| r.next_u64()).collect::<Vec<u64>>()
        };
        let (bg, bb) = (bits_of(61), bits_of(62));
        let (g, _) = both(|e| {
            let me = e.role();
            let ys = e.share(Role::Gov, (me == Role::Gov).then_some(&y[..]), y.len()).unwrap();
            let mine = if me == Role::Gov { &bg } else { &bb };
            let mut mine = mine.clone();
            mine[2] &= (1 << (130 - 128)) - 1;
            let out = e.mux(&mine, &ys).unwrap();
            e.reveal_both(&opened(), &out).unwrap()
        });
        for i in 0..y.len() {
            let beta = ((bg[i / 64] ^ bb[i / 64]) >> (i % 64)) & 1;
            assert_eq!(g[i], if beta == 1 { y[i] } else { 0 }, "element {i}");
        }
    });
}

#[test]
fn stated_max_errors_match_a_dense_scan() {
    sources::each_source(|| {
        for approx in [Sigmoid::Linear, Sigmoid::ClippedLinear, Sigmoid::Poly3] {
            let (bound, range) = approx.max_error();
            let r = range.min(50.0);
            let worst = (0..=200_000)
                .map(|i| -r + 2.0 * r * i as f64 / 200_000.0)
                .map(|x| (approx.eval(x) - sigmoid::exact(x)).abs())
                .fold(0.0, f64::max);
            assert!(worst <= bound, "{approx:?}: scanned {worst} above stated {bound}");
            assert!(worst > bound - 1e-3, "{approx:?}: stated bound {bound} is loose (scan {worst})");
        }
    });
}

#[test]
fn secure_sigmoids_match_plaintext_approximations() {
    sources::each_source(|| {
        let mut xs = reals(70, 200, 6.0);
        xs.extend([-2.0, 2.0, 0.0, -1e-4, 1e-4, -30.0, 30.0]);
        // Up to the engine's bound (`product_bound` = 2^30 at f = 16): the narrow sign tests hold.
        let big = protocol::mpc::product_bound(fp()) - 1.0;
        xs.extend([-1e6, 1e6, -big, big]);
        let x = fp().encode_all(&xs);
        let (g, b) = both(|e| {
            let me = e.role();
            let s = e.share(Role::Bank, (me == Role::Bank).then_some(&x[..]), x.len()).unwrap();
            [Sigmoid::Linear, Sigmoid::ClippedLinear, Sigmoid::Poly3].map(|a| {
                let y = e.sigmoid(&s, a).unwrap();
                e.reveal_both(&opened(), &y).unwrap()
            })
        });
        assert_eq!(g, b);
        let ulp = 1.0 / fp().scale();
        for (k, approx) in [Sigmoid::Linear, Sigmoid::ClippedLinear, Sigmoid::Poly3].iter().enumerate() {
            for (i, &xv) in xs.iter().enumerate() {
                let xq = fp().decode(x[i]);
                let got = fp().decode(g[k][i]);
                let want = approx.eval(xq);
                // Linear/Clipped: one truncation (±1 ulp) + 0.5 ulp rounding of x/4. Poly3: coefficient
                // encoding (≤ 0.5 ulp · (|x| + |x|³)) and three truncations, each scaled by ≤ |x|.
                let tol = match approx {
                    Sigmoid::Poly3 => ulp * (4.0 + 2.0 * xq.abs() + xq.abs().powi(3)),
                    _ => 2.0 * ulp,
                };
                assert!((got - want).abs() <= tol, "{approx:?}({xv}): got {got}, want {want}");
            }
        }
    });
}

/// Records every payload this party receives.
struct Recorder(Arc<Mutex<Vec<u8>>>);
impl FrameObserver for Recorder {
    fn on_frame(&mut self, f: &FrameEvent<'_>) {
        if f.direction == Direction::Received {
            self.0.lock().unwrap().extend_from_slice(f.payload);
        }
    }
}

/// What bank receives while gov multiplies its private input with a fixed public-ish value.
fn bank_view_of_mul(gov_input: &[u64], bank_input: &[u64]) -> Vec<u8> {
    let src = sources::source();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    let n = gov_input.len();
    run_pair(
        |ch: &mut Channel| {
            let mut e = Engine::with_correlations(ch, fp(), src, &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
            let xs = e.share(Role::Gov, Some(gov_input), n).unwrap();
            let ys = e.share(Role::Bank, None, n).unwrap();
            let z = e.mul(&xs, &ys).unwrap();
            let pm = e.prepare_matrix(Role::Bank, None, n, 2).unwrap();
            e.matvec_t(&pm, &z).unwrap();
        },
        move |ch: &mut Channel| {
            ch.set_observer(Box::new(Recorder(rec)));
            let mut e = Engine::with_correlations(ch, fp(), src, &mut ChaCha20Rng::seed_from_u64(4)).unwrap();
            let xs = e.share(Role::Gov, None, n).unwrap();
            let ys = e.share(Role::Bank, Some(bank_input), n).unwrap();
            let z = e.mul(&xs, &ys).unwrap();
            let m = PlainMatrix { rows: n, cols: 2, data: bank_input.iter().flat_map(|v| [*v, v ^ 1]).collect() };
            let pm = e.prepare_matrix(Role::Bank, Some(&m), n, 2).unwrap();
            e.matvec_t(&pm, &z).unwrap();
        },
    );
    seen.lock().unwrap().clone()
}

#[test]
fn peer_view_of_multiplication_hides_the_input() {
    sources::each_source(|| {
        let n = 64;
        let bank_input = fp().encode_all(&vec![1.5; n]);
        let a = fp().encode_all(&reals(80, n, 10.0));
        let b = fp().encode_all(&(0..n).map(|i| i as f64 - 7.25).collect::<Vec<_>>());
        let (va, vb) = (bank_view_of_mul(&a, &bank_input), bank_view_of_mul(&b, &bank_input));
        assert_eq!(va.len(), vb.len(), "message sizes do not depend on the input");
        assert_ne!(va, vb);
        for (view, input) in [(&va, &a), (&vb, &b)] {
            for v in input.iter().filter(|v| (**v as i64).abs() > 255) {
                let pat = v.to_le_bytes();
                assert!(!view.windows(8).any(|w| w == pat), "encoded input {v:#x} appears in the peer's view");
            }
            let ones: u64 = view.iter().map(|b| b.count_ones() as u64).sum();
            let frac = ones as f64 / (8 * view.len()) as f64;
            assert!((frac - 0.5).abs() < 0.02, "fraction of 1 bits {frac}");
        }
    });
}
