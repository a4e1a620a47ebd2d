//! Exact truncation (`Engine::truncate`) and the range check on opened values: both parties over
//! the in-memory channel with seeded RNGs; every result checked against `⌊x/2^k⌋` computed here.
//! Every test runs once per correlation source (IKNP, silent; `sources::each_source`).

mod sources;

use protocol::fixed::FixedPoint;
use protocol::mpc::{Engine, PlainMatrix, Sigmoid, check_range, product_bound};
use protocol::{Error, InputError, Role};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn opened() -> protocol::disclose::Grant {
    protocol::disclose::Grant::new("test", "test", "a value the test checks")
}

/// Runs `f` at both parties with `frac_bits` (see [`sources::both_at`]).
fn both<T: Send>(frac_bits: u32, f: impl Fn(&mut Engine) -> T + Sync) -> (T, T) {
    sources::both_at(frac_bits, f)
}

/// Truncates the given share pairs with the engine; returns the opened results.
fn engine_truncate(gov: &[u64], bank: &[u64], bits: u32) -> Vec<u64> {
    let (g, b) = both(16, |e| {
        let own = if e.role() == Role::Gov { gov } else { bank };
        let t = e.truncate(own, bits).unwrap();
        (t.clone(), e.reveal_both(&opened(), &t).unwrap())
    });
    assert_eq!(g.1, b.1);
    assert!(g.0 != g.1 && b.0 != b.1, "a party's output share differs from the result");
    g.1
}

/// SecureML's local truncation (the engine's former method), for comparison.
fn local_truncate(gov: u64, bank: u64, bits: u32) -> u64 {
    (gov >> bits).wrapping_sub(bank.wrapping_neg() >> bits)
}

/// Whether `got` is `⌊x/2^bits⌋` or one below (the exact truncation's ±1 ulp).
fn exact(got: u64, x: u64, bits: u32) -> bool {
    let want = (x as i64) >> bits;
    (got as i64) == want || (got as i64) == want - 1
}

#[test]
fn shares_that_break_local_truncation_truncate_exactly() {
    sources::each_source(|| {
        let big = (1u64 << 62) - 1;
        let values: Vec<u64> = vec![0, 1, u64::MAX, 12345 << 24, (-(9876i64 << 30)) as u64, big, big.wrapping_neg()];
        // Gov shares at the wrap points of the local method (0, x − 1, 2^64 − 1) and of the exact
        // one (gov's share + 2^62 crossing 2^63 or 2^64, the bank's share crossing 2^63).
        let mut gov_shares: Vec<u64> = vec![0, 1, u64::MAX, 1 << 63, (1 << 63) - 1, (1 << 63) + 1];
        for c in [1u64 << 62, 3 << 62] {
            gov_shares.extend([c - 1, c, c + 1]);
        }
        let (mut gov, mut bank, mut xs) = (Vec::new(), Vec::new(), Vec::new());
        for &x in &values {
            let near_x = [x.wrapping_sub(1), x, x.wrapping_add(1), x.wrapping_sub(1 << 63)];
            for &g in gov_shares.iter().chain(&near_x) {
                gov.push(g);
                bank.push(x.wrapping_sub(g));
                xs.push(x);
            }
        }
        for bits in [2, 24, 40, 62] {
            let got = engine_truncate(&gov, &bank, bits);
            for i in 0..xs.len() {
                assert!(
                    exact(got[i], xs[i], bits),
                    "bits {bits}: x {:#x} gov share {:#x}: got {:#x}",
                    xs[i],
                    gov[i],
                    got[i]
                );
            }
            // The same shares defeat local truncation (e.g. x = 12345·2^24 with gov share 0 or 1).
            let local_failures =
                (0..xs.len()).filter(|&i| !exact(local_truncate(gov[i], bank[i], bits), xs[i], bits)).count();
            assert!(local_failures >= 10, "bits {bits}: only {local_failures} local failures");
        }
    });
}

#[test]
fn random_values_within_the_bound_truncate_to_within_one_ulp_at_f24() {
    sources::each_source(|| {
        let (f, n) = (24, 1 << 18);
        let mut r = ChaCha20Rng::seed_from_u64(90);
        // Magnitudes spread over all scales up to the bound 2^62, random signs, uniform gov shares.
        let xs: Vec<u64> = (0..n)
            .map(|_| {
                let mag = r.next_u64() >> (2 + r.random_range(0..62));
                if r.random::<bool>() { mag } else { mag.wrapping_neg() }
            })
            .collect();
        let gov: Vec<u64> = (0..n).map(|_| r.next_u64()).collect();
        let bank: Vec<u64> = xs.iter().zip(&gov).map(|(x, g)| x.wrapping_sub(*g)).collect();
        let got = engine_truncate(&gov, &bank, f);
        let mut low = 0;
        for i in 0..n {
            assert!(exact(got[i], xs[i], f), "x {:#x}: got {:#x}", xs[i], got[i]);
            low += (got[i] as i64 != (xs[i] as i64) >> f) as usize;
        }
        // The 1-ulp-low case is the carry of the low bits (about half the time for random shares).
        assert!((n / 3..2 * n / 3).contains(&low), "{low} of {n} one ulp low");
        // Local truncation fails on the same shares at the rate |x|/2^64 (here several thousand).
        let local_failures = (0..n).filter(|&i| !exact(local_truncate(gov[i], bank[i], f), xs[i], f)).count();
        assert!(local_failures > n / 200, "only {local_failures} local failures");
    });
}

/// Values whose products reach 2^13 at f = 24 (bound 2^14), where local truncation would fail
/// on about one element in 16: every engine product is `⌊exact/2^f⌋` or one below.
#[test]
fn products_near_the_bound_at_f24_are_exact() {
    sources::each_source(|| {
        let f = 24;
        let fp = FixedPoint::new(f);
        let (n, cols) = (600, 4);
        let mut r = ChaCha20Rng::seed_from_u64(91);
        let mut reals =
            |n: usize, range: f64| -> Vec<u64> { (0..n).map(|_| fp.encode(r.random_range(-range..range))).collect() };
        let (x, y, u) = (reals(n, 90.0), reals(n, 90.0), reals(n, 0.5));
        let m = PlainMatrix { rows: n, cols, data: reals(n * cols, 40.0) };
        let v = reals(cols, 40.0);
        // A 5×3 matrix shared as a uniform gov share and the bank's complement.
        let shared = reals(15, 40.0);
        let gov_m = PlainMatrix { rows: 5, cols: 3, data: (0..15).map(|_| r.next_u64()).collect() };
        let bank_m = PlainMatrix {
            rows: 5,
            cols: 3,
            data: shared.iter().zip(&gov_m.data).map(|(s, g)| s.wrapping_sub(*g)).collect(),
        };
        let (g, b) = both(f, |e| {
            let me = e.role();
            let gov_owns = (me == Role::Gov).then_some(&m);
            let xs = e.share(Role::Gov, (me == Role::Gov).then_some(&x[..]), n).unwrap();
            let ys = e.share(Role::Bank, (me == Role::Bank).then_some(&y[..]), n).unwrap();
            let us = e.share(Role::Bank, (me == Role::Bank).then_some(&u[..]), n).unwrap();
            let vs = e.share(Role::Bank, (me == Role::Bank).then_some(&v[..]), cols).unwrap();
            let outs = [
                e.mul(&xs, &ys).unwrap(),
                e.mul_public(&xs, -91.25).unwrap(),
                {
                    let pm = e.prepare_matrix(Role::Gov, gov_owns, n, cols).unwrap();
                    e.matvec(&pm, &vs).unwrap()
                },
                {
                    let pm = e.prepare_matrix(Role::Gov, gov_owns, n, cols).unwrap();
                    e.matvec_t(&pm, &us).unwrap()
                },
                e.matvec_shared(if me == Role::Gov { &gov_m } else { &bank_m }, &[None; 15], &vs[..3], 62 - 2 * f)
                    .unwrap(),
                e.sigmoid(&xs, Sigmoid::Linear).unwrap(),
            ];
            outs.map(|o| e.reveal_both(&opened(), &o).unwrap())
        });
        assert_eq!(g, b);
        let int = |v: u64| v as i64 as i128;
        let check = |got: u64, exact: i128, bits: u32, what: &str| {
            let want = (exact >> bits) as i64;
            assert!(got as i64 == want || got as i64 == want - 1, "{what}: got {} want {want}", got as i64);
        };
        for i in 0..n {
            check(g[0][i], int(x[i]) * int(y[i]), f, "x·y");
            check(g[1][i], int(x[i]) * int(fp.encode(-91.25)), f, "x·c");
            check(g[2][i], (0..cols).map(|j| int(m.data[i * cols + j]) * int(v[j])).sum(), f, "M·v");
            check(g[5][i].wrapping_sub(fp.encode(0.5)), int(x[i]), 2, "x/4");
        }
        for j in 0..cols {
            check(g[3][j], (0..n).map(|i| int(m.data[i * cols + j]) * int(u[i])).sum(), f, "Mᵀ·u");
        }
        for i in 0..5 {
            check(g[4][i], (0..3).map(|j| int(shared[i * 3 + j]) * int(v[j])).sum(), f, "shared M·v");
        }
    });
}

#[test]
fn out_of_bound_values_come_out_outside_the_bound_and_fail_the_range_check() {
    sources::each_source(|| {
        let (f, n) = (24, 4000);
        let fp = FixedPoint::new(f);
        let mut r = ChaCha20Rng::seed_from_u64(92);
        // |x| in [2^62, 2^63], both signs, edges included.
        let mut xs: Vec<u64> = (0..n)
            .map(|i| {
                let m = (1u64 << 62) | (r.next_u64() >> 2);
                if i % 2 == 0 { m } else { m.wrapping_neg() }
            })
            .collect();
        xs.extend([1 << 62, (1u64 << 62).wrapping_neg(), 1 << 63, (1 << 63) - 1, (1 << 63) + 1]);
        let gov: Vec<u64> = (0..xs.len()).map(|_| r.next_u64()).collect();
        let bank: Vec<u64> = xs.iter().zip(&gov).map(|(x, g)| x.wrapping_sub(*g)).collect();
        let got = engine_truncate(&gov, &bank, f);
        let floor = (1u64 << (62 - f)) - 1;
        for (i, &y) in got.iter().enumerate() {
            assert!((y as i64).unsigned_abs() >= floor, "x {:#x} came out as {:#x}, inside the bound", xs[i], y);
            let err = check_range("test values", &[y], fp, product_bound(fp) / 2.0).unwrap_err();
            assert!(matches!(err, Error::Input(InputError::Data(_))));
        }
        // In-bound results pass the same check; the message names the value kind and the fix only.
        check_range("scores", &[fp.encode(-8191.0), fp.encode(8191.0), 0], fp, product_bound(fp) / 2.0).unwrap();
        let msg = check_range("scores", &[fp.encode(1.0), fp.encode(-1234.5)], fp, 1000.0).unwrap_err().to_string();
        assert!(msg.starts_with("scores: 1 of 2 opened values") && msg.contains("frac_bits = 24"), "{msg}");
        assert!(!msg.contains("1234"), "the message must not show the value: {msg}");
    });
}
