//! Engine operations for Gram blocks (`cross_gram`, `lift`, `matvec_shared`): both parties over
//! the in-memory channel with seeded RNGs, random inputs, results checked against plaintext
//! integer arithmetic computed here.
//! Every test runs once per correlation source (IKNP, silent; `sources::each_source`).

mod sources;

use std::sync::{Arc, Mutex};

use protocol::channel::run_pair;
use protocol::fixed::FixedPoint;
use protocol::mpc::{CrossGram, Engine, PlainMatrix, cross_gram_ring};
use protocol::transcript::{Direction, FrameEvent, FrameObserver};
use protocol::{Channel, Error, InputError, Role};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Tests open results to check them: a grant of the test pair's allow-all ledger.
fn opened() -> protocol::disclose::Grant {
    protocol::disclose::Grant::new("test", "test", "a value the test checks")
}

const F: u32 = 16;

/// Runs `f` at both parties (see [`sources::both_at`]).
fn both<T: Send>(f: impl Fn(&mut Engine) -> T + Sync) -> (T, T) {
    sources::both_at(F, f)
}

fn mask(bits: u32) -> u64 {
    if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 }
}

#[test]
fn lift_gives_the_sign_extended_value_in_z_2_64() {
    sources::each_source(|| {
        let mut r = ChaCha20Rng::seed_from_u64(100);
        for ring in [3u32, 5, 20, 35, 46, 63, 64] {
            let half = 1i64 << (ring - 2).min(62);
            let mut values: Vec<i64> = (0..300).map(|_| r.random_range(-half..half)).collect();
            values.extend([0, 1, -1, half - 1, -half]);
            let gov_shares: Vec<u64> = values.iter().map(|_| r.next_u64() & mask(ring)).collect();
            let bank_shares: Vec<u64> =
                values.iter().zip(&gov_shares).map(|(&v, g)| (v as u64).wrapping_sub(*g) & mask(ring)).collect();
            let (g, b) = both(|e| {
                let own = if e.role() == Role::Gov { &gov_shares } else { &bank_shares };
                e.lift(own, ring).unwrap()
            });
            for (i, &v) in values.iter().enumerate() {
                assert_eq!(g[i].wrapping_add(b[i]) as i64, v, "ring {ring}, value {v}");
            }
            if ring < 64 {
                // Shares are not the value and not confined to the small ring.
                assert!(g.iter().any(|s| s >> ring != 0) && b.iter().any(|s| s >> ring != 0), "ring {ring}");
            }
        }
    });
}

/// Random A (owner `a_owner`) and B within the bounds, with some entries at the extremes;
/// checks the revealed cross_gram against AᵀB computed in i128.
fn cross_case(a_owner: Role, rows: usize, a_cols: usize, b_cols: usize, a_bits: u32, b_bits: u32, seed: u64) {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let (a_lo, a_hi) = (-(1i64 << (a_bits - 1)), 1i64 << (a_bits - 1));
    let b_hi = 1i64 << (b_bits - 1);
    let mut a: Vec<i64> = (0..rows * a_cols).map(|_| r.random_range(a_lo..a_hi)).collect();
    let mut b: Vec<i64> = (0..rows * b_cols).map(|_| r.random_range(-b_hi + 1..b_hi)).collect();
    for k in 0..rows.min(5) {
        a[k * a_cols] = if k % 2 == 0 { a_lo } else { a_hi - 1 };
        b[k * b_cols] = if k % 2 == 0 { -b_hi + 1 } else { b_hi - 1 };
    }
    let am = PlainMatrix { rows, cols: a_cols, data: a.iter().map(|&v| v as u64).collect() };
    let bm = PlainMatrix { rows, cols: b_cols, data: b.iter().map(|&v| v as u64).collect() };
    let (g, bk) = both(|e| {
        let own = if e.role() == a_owner { &am } else { &bm };
        let s = e.cross_gram(a_owner, own, rows, a_cols, b_cols, a_bits, b_bits).unwrap();
        (e.reveal_both(&opened(), &s).unwrap(), s)
    });
    assert_eq!(g.0, bk.0);
    assert_ne!(g.1, g.0, "a share is not the value");
    for i in 0..a_cols {
        for t in 0..b_cols {
            let want: i128 = (0..rows).map(|k| a[k * a_cols + i] as i128 * b[k * b_cols + t] as i128).sum();
            assert_eq!(
                g.0[i * b_cols + t] as i64 as i128,
                want,
                "entry ({i}, {t}) of {rows}×{a_cols}ᵀ·{rows}×{b_cols}"
            );
        }
    }
}

#[test]
fn cross_gram_matches_plaintext_for_either_owner() {
    sources::each_source(|| {
        cross_case(Role::Gov, 300, 3, 5, 16, 20, 1);
        cross_case(Role::Bank, 77, 1, 4, 1, 24, 2);
        cross_case(Role::Bank, 128, 2, 3, 9, 7, 3);
        cross_case(Role::Gov, 1, 2, 2, 5, 5, 4);
        // The training cross block: 1000 rows (not a power of two), 11 × 12 columns, ℓ = 46.
        cross_case(Role::Gov, 1000, 11, 12, 16, 20, 5);
        // Rows beyond one polynomial (several row blocks) and beyond one ring chunk (8192 rows
        // at 16 + 20 bits), and a wide B.
        cross_case(Role::Bank, 10_000, 2, 3, 16, 20, 6);
        cross_case(Role::Gov, 3000, 1, 150, 1, 2, 7);
        // a_bits + b_bits = 49: one row per chunk.
        cross_case(Role::Gov, 3, 2, 1, 25, 24, 8);
    });
}

#[test]
fn cross_grams_give_every_shifted_product_in_three_turns() {
    sources::each_source(|| {
        let mut r = ChaCha20Rng::seed_from_u64(500);
        // (a_owner, rows, a_cols, b_cols, a_bits, b_bits, shift): both parties encrypt some, the
        // second has two row chunks (8192 rows at 16 + 20 bits).
        let calls = [
            (Role::Gov, 1000, 10, 13, 16, 20, 16),
            (Role::Bank, 9000, 2, 3, 16, 20, 20),
            (Role::Bank, 1000, 1, 10, 1, 20, 6),
            (Role::Gov, 5, 2, 2, 5, 5, 0),
        ];
        let mats: Vec<(Vec<i64>, Vec<i64>)> = calls
            .iter()
            .map(|&(_, rows, a_cols, b_cols, a_bits, b_bits, _)| {
                let (a_hi, b_hi) = (1i64 << (a_bits - 1), 1i64 << (b_bits - 1));
                let a = (0..rows * a_cols).map(|_| r.random_range(-a_hi..a_hi)).collect();
                (a, (0..rows * b_cols).map(|_| r.random_range(-b_hi + 1..b_hi)).collect())
            })
            .collect();
        let as_matrix = |v: &[i64], rows: usize, cols: usize| PlainMatrix {
            rows,
            cols,
            data: v.iter().map(|&x| x as u64).collect(),
        };
        let (g, b) = both(|e| {
            let owns: Vec<PlainMatrix> = calls
                .iter()
                .zip(&mats)
                .map(
                    |(&(a_owner, rows, a_cols, b_cols, ..), (a, b))| {
                        if e.role() == a_owner { as_matrix(a, rows, a_cols) } else { as_matrix(b, rows, b_cols) }
                    },
                )
                .collect();
            let list: Vec<CrossGram> = calls
                .iter()
                .zip(&owns)
                .map(|(&(a_owner, rows, a_cols, b_cols, a_bits, b_bits, shift), own)| CrossGram {
                    a_owner,
                    own,
                    rows,
                    a_cols,
                    b_cols,
                    a_bits,
                    b_bits,
                    shift,
                })
                .collect();
            e.lift(&[1, 2, 3], 10).unwrap(); // warm-up: the silent source's first OTs
            let before = e.stats();
            let out = e.cross_grams(&list).unwrap();
            let turns = e.stats().since(&before).rounds;
            let too_far = CrossGram { shift: 45, ..list[0] }; // ℓ = 46
            let refused = matches!(e.cross_grams(&[too_far]), Err(Error::Input(InputError::Usage { .. })));
            (out.iter().map(|o| e.reveal_both(&opened(), o).unwrap()).collect::<Vec<_>>(), turns, refused)
        });
        assert_eq!(g.0, b.0);
        assert!(g.1 <= 3 && b.1 <= 3, "turns: gov {}, bank {}", g.1, b.1);
        assert!(g.2 && b.2, "a shift beyond ℓ − 2 bits is refused");
        for (c, (&(_, rows, a_cols, b_cols, _, _, shift), (a, bm))) in calls.iter().zip(&mats).enumerate() {
            let chunks = rows.div_ceil(8192) as i128;
            for i in 0..a_cols {
                for t in 0..b_cols {
                    let want: i128 = (0..rows).map(|k| a[k * a_cols + i] as i128 * bm[k * b_cols + t] as i128).sum();
                    let diff = g.0[c][i * b_cols + t] as i64 as i128 - (want >> shift);
                    assert!((-chunks..=0).contains(&diff), "call {c}, entry ({i}, {t}): off by {diff}");
                }
            }
        }
    });
}

#[test]
fn cross_gram_sends_each_public_key_once_per_session() {
    sources::each_source(|| {
        let mut r = ChaCha20Rng::seed_from_u64(400);
        let rows = 500;
        let a: Vec<i64> = (0..rows * 3).map(|_| r.random_range(-128..128)).collect();
        let b: Vec<i64> = (0..rows * 4).map(|_| r.random_range(-127..128)).collect();
        let am = PlainMatrix { rows, cols: 3, data: a.iter().map(|&v| v as u64).collect() };
        let bm = PlainMatrix { rows, cols: 4, data: b.iter().map(|&v| v as u64).collect() };
        // The gov owns A twice (same shape), then the bank owns A (its B is the gov's A).
        let (g, _) = both(|e| {
            let mut out = Vec::new();
            for a_owner in [Role::Gov, Role::Gov, Role::Bank] {
                let (own, a_cols, b_cols) = match (e.role() == Role::Gov, a_owner == Role::Gov) {
                    (true, true) => (&am, 3, 4),
                    (false, true) => (&bm, 3, 4),
                    (false, false) => (&bm, 4, 3),
                    (true, false) => (&am, 4, 3),
                };
                let before = e.traffic().correction_bytes;
                let s = e.cross_gram(a_owner, own, rows, a_cols, b_cols, 8, 8).unwrap();
                let bytes = e.traffic().correction_bytes - before;
                out.push((e.reveal_both(&opened(), &s).unwrap(), bytes));
            }
            out
        });
        let gram = |x: &[i64], xc: usize, y: &[i64], yc: usize| -> Vec<i64> {
            (0..xc)
                .flat_map(|i| (0..yc).map(move |k| (i, k)))
                .map(|(i, k)| (0..rows).map(|t| x[t * xc + i] * y[t * yc + k]).sum())
                .collect()
        };
        let want_ab = gram(&a, 3, &b, 4);
        assert_eq!(g[0].0.iter().map(|&v| v as i64).collect::<Vec<_>>(), want_ab);
        assert_eq!(g[1].0.iter().map(|&v| v as i64).collect::<Vec<_>>(), want_ab);
        assert_eq!(g[2].0.iter().map(|&v| v as i64).collect::<Vec<_>>(), gram(&b, 4, &a, 3));
        // The first call carries the public key (196,640 B plus framing), the second does not.
        let key_bytes = g[0].1 - g[1].1;
        assert!((196_640..197_000).contains(&key_bytes), "{key_bytes}");
    });
}

#[test]
fn cross_gram_at_the_worst_case_bound_is_exact() {
    sources::each_source(|| {
        // All entries at the extremes: |AᵀB| is just below 2^(ℓ−2), the lift's limit.
        for (rows, a_bits, b_bits) in [(64usize, 6u32, 5u32), (100, 1, 12)] {
            let a = vec![-(1i64 << (a_bits - 1)); rows];
            for sign in [1i64, -1] {
                let b = vec![sign * ((1i64 << (b_bits - 1)) - 1); rows];
                let am = PlainMatrix { rows, cols: 1, data: a.iter().map(|&v| v as u64).collect() };
                let bm = PlainMatrix { rows, cols: 1, data: b.iter().map(|&v| v as u64).collect() };
                let (g, _) = both(|e| {
                    let own = if e.role() == Role::Gov { &am } else { &bm };
                    let s = e.cross_gram(Role::Gov, own, rows, 1, 1, a_bits, b_bits).unwrap();
                    e.reveal_both(&opened(), &s).unwrap()
                });
                let want = rows as i64 * a[0] * b[0];
                assert!(want.unsigned_abs() < 1 << (cross_gram_ring(rows, a_bits, b_bits) - 2));
                assert_eq!(g[0] as i64, want, "rows {rows}, bits {a_bits}/{b_bits}, sign {sign}");
            }
        }
    });
}

#[test]
fn cross_gram_refuses_out_of_bound_entries_and_oversized_rings_without_talking() {
    sources::each_source(|| {
        let m =
            |data: Vec<i64>| PlainMatrix { rows: data.len(), cols: 1, data: data.iter().map(|&v| v as u64).collect() };
        let ((), ()) = both(|e| {
            if e.role() == Role::Gov {
                // A in [−8, 8) with 4 bits; B with |b| < 8.
                let err = e.cross_gram(Role::Gov, &m(vec![1, 8]), 2, 1, 1, 4, 4).unwrap_err();
                assert!(
                    matches!(&err, Error::Input(InputError::Usage { op: "cross_gram", detail }) if detail.contains("(row 1, column 0) = 8")),
                    "{err}"
                );
                let input_error = |r: Result<Vec<u64>, Error>, want: &str| match r {
                    Err(Error::Input(InputError::Usage { detail, .. })) => assert!(detail.contains(want), "{detail}"),
                    other => panic!("expected an input error containing {want:?}, got {other:?}"),
                };
                let before = e.stats();
                input_error(e.cross_gram(Role::Gov, &m(vec![-9, 0]), 2, 1, 1, 4, 4), "A entry (row 0, column 0) = -9");
                input_error(e.cross_gram(Role::Bank, &m(vec![0, -8]), 2, 1, 1, 4, 4), "B entry (row 1, column 0) = -8");
                input_error(e.cross_gram(Role::Bank, &m(vec![0, 8]), 2, 1, 1, 4, 4), "B entry (row 1, column 0) = 8");
                input_error(
                    e.cross_gram(Role::Gov, &m(vec![0, 0]), 2, 1, 1, 26, 24),
                    "need a 50-bit ring even for one row",
                );
                input_error(e.cross_gram(Role::Gov, &m(vec![0, 0]), 3, 1, 1, 4, 4), "the call says 3×1");
                input_error(e.lift(&[0], 2), "ring of 2 bits");
                input_error(e.lift(&[0], 65), "ring of 65 bits");
                assert_eq!(e.stats(), before, "refused before sending anything");
            }
        });
    });
}

/// Reveals `matvec_shared` of `m` (rows × cols, ring units) with the bank's `v` at public
/// `bound_bits`: the entries `known_by` a party are its plaintext (the other passes random
/// values there, which must be ignored), the others shared as a uniform gov share and the
/// bank's complement. Also returns the correction bytes of the call.
fn reveal_matvec_shared(
    m: &[i64],
    known_by: &[Option<Role>],
    (rows, cols): (usize, usize),
    v: &[i64],
    bound_bits: u32,
    seed: u64,
) -> (Vec<i64>, u64) {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let (mut gov_m, mut bank_m) = (Vec::new(), Vec::new());
    for (&x, who) in m.iter().zip(known_by) {
        let (x, noise) = (x as u64, r.next_u64());
        let (g, b) = match who {
            Some(Role::Gov) => (x, noise),
            Some(Role::Bank) => (noise, x),
            None => (noise, x.wrapping_sub(noise)),
        };
        gov_m.push(g);
        bank_m.push(b);
    }
    let v: Vec<u64> = v.iter().map(|&x| x as u64).collect();
    let (g, b) = both(|e| {
        let me = e.role();
        let vs = e.share(Role::Bank, (me == Role::Bank).then_some(&v[..]), cols).unwrap();
        let own = PlainMatrix { rows, cols, data: if me == Role::Gov { gov_m.clone() } else { bank_m.clone() } };
        let before = e.traffic().correction_bytes;
        let out = e.matvec_shared(&own, known_by, &vs, bound_bits).unwrap();
        let bytes = e.traffic().correction_bytes - before;
        (e.reveal_both(&opened(), &out).unwrap(), bytes)
    });
    assert_eq!(g, b);
    (g.0.iter().map(|&x| x as i64).collect(), g.1)
}

/// `⌊M·v / 2^F⌋` in i128 (ring units).
fn plain_matvec(m: &[i64], cols: usize, v: &[i64]) -> Vec<i128> {
    m.chunks_exact(cols).map(|row| row.iter().zip(v).map(|(&a, &b)| a as i128 * b as i128).sum::<i128>() >> F).collect()
}

#[test]
fn matvec_shared_is_exact_up_to_the_bound() {
    sources::each_source(|| {
        let mut r = ChaCha20Rng::seed_from_u64(200);
        // Rings m = bound_bits + 2F + 2: 34 (the smallest), 46 (training), 64 (no lift).
        for bound_bits in [0u32, 12, 30] {
            for (rows, cols) in [(24usize, 24usize), (7, 13), (1, 1), (3, 2)] {
                // |M_ij|, |v_j| ≤ a with cols·a² < 2^(bound_bits + 2F) ring units: every |M·v| is
                // below the bound, rows 0 and 1 (all entries ±a) just below it.
                let a = (2f64.powi((bound_bits + 2 * F) as i32) / cols as f64).sqrt() as i64 - 1;
                let mut m: Vec<i64> = (0..rows * cols).map(|_| r.random_range(-a..=a)).collect();
                let v: Vec<i64> = (0..cols).map(|_| if r.random_bool(0.5) { a } else { -a }).collect();
                for j in 0..cols {
                    m[j] = v[j].signum() * a;
                    if rows > 1 {
                        m[cols + j] = -v[j].signum() * a;
                    }
                }
                let extreme = cols as i128 * a as i128 * a as i128;
                assert!(extreme < 1 << (bound_bits + 2 * F) && extreme > 1 << (bound_bits + 2 * F - 1));
                // Each entry the gov's, the bank's or shared, at random.
                let known_by: Vec<Option<Role>> =
                    (0..rows * cols).map(|_| [Some(Role::Gov), Some(Role::Bank), None][r.random_range(0..3)]).collect();
                let (got, _) = reveal_matvec_shared(&m, &known_by, (rows, cols), &v, bound_bits, r.next_u64());
                for (i, want) in plain_matvec(&m, cols, &v).into_iter().enumerate() {
                    let diff = got[i] as i128 - want;
                    assert!(
                        diff == 0 || diff == -1,
                        "bound 2^{bound_bits}, row {i} of {rows}×{cols}: off by {diff} ulps"
                    );
                }
            }
        }
    });
}

#[test]
fn truncate_then_matvec_shared_gives_both_results_in_the_turns_of_the_product() {
    sources::each_source(|| {
        let mut r = ChaCha20Rng::seed_from_u64(300);
        let (rows, cols, bound_bits) = (9usize, 9usize, 12u32);
        // x with 2F fractional bits, |x| < 2^12 real; M within the product's bound for such v.
        let x: Vec<i64> = (0..cols).map(|_| r.random_range(-(1i64 << (12 + 2 * F))..1 << (12 + 2 * F))).collect();
        let m: Vec<i64> = (0..rows * cols).map(|_| r.random_range(-(1i64 << (F - 4))..1 << (F - 4))).collect();
        let known_by: Vec<Option<Role>> =
            (0..rows * cols).map(|_| [Some(Role::Gov), Some(Role::Bank), None][r.random_range(0..3)]).collect();
        let xu: Vec<u64> = x.iter().map(|&v| v as u64).collect();
        // Each party's entries: its plaintext, its share of a shared entry, noise at the peer's.
        let parts: Vec<(u64, u64)> = m
            .iter()
            .zip(&known_by)
            .map(|(&v, who)| {
                let noise = r.next_u64();
                match who {
                    Some(Role::Gov) => (v as u64, noise),
                    Some(Role::Bank) => (noise, v as u64),
                    None => (noise, (v as u64).wrapping_sub(noise)),
                }
            })
            .collect();
        let (g, b) = both(|e| {
            let me = e.role();
            let xs = e.share(Role::Bank, (me == Role::Bank).then_some(&xu[..]), cols).unwrap();
            let data = parts.iter().map(|&(g, b)| if me == Role::Gov { g } else { b }).collect();
            let own = PlainMatrix { rows, cols, data };
            // Warm-up: the silent source makes its first batch of OTs (turns of its own).
            e.matvec_shared(&own, &known_by, &vec![0; cols], bound_bits).unwrap();
            // By F bits: merged; by 64 − m + 1 bits (m = 46): the two calls.
            [F, 64 - (bound_bits + 2 * F + 2) + 1].map(|bits| {
                let before = e.stats();
                let (t, p) = e.truncate_then_matvec_shared(&xs, bits, &own, &known_by, bound_bits).unwrap();
                let turns = e.stats().since(&before).rounds;
                let before = e.stats();
                e.matvec_shared(&own, &known_by, &t, bound_bits).unwrap();
                let product_alone = e.stats().since(&before).rounds;
                let (t, p) = (e.reveal_both(&opened(), &t).unwrap(), e.reveal_both(&opened(), &p).unwrap());
                (bits, t, p, turns - product_alone)
            })
        });
        // Merged: no turn beyond the product's at either party (the two calls: more at one).
        assert_eq!((g[0].3, b[0].3), (0, 0), "by F bits: turns beyond the product's");
        assert!(g[1].3 + b[1].3 > 0, "by 19 bits: the two calls");
        for ((bits, t, p, _), (_, bt, bp, _)) in g.into_iter().zip(b) {
            assert_eq!((&t, &p), (&bt, &bp));
            let t: Vec<i64> = t.iter().map(|&v| v as i64).collect();
            for (j, (&got, &xj)) in t.iter().zip(&x).enumerate() {
                let diff = got - (xj >> bits);
                assert!(diff == 0 || diff == -1, "by {bits} bits, truncation {j}: off by {diff} ulps");
            }
            for (i, want) in plain_matvec(&m, cols, &t).into_iter().enumerate() {
                let diff = p[i] as i64 as i128 - want;
                assert!(diff == 0 || diff == -1, "by {bits} bits, product row {i}: off by {diff} ulps");
            }
        }
    });
}

#[test]
fn matvec_shared_beyond_the_bound_is_off_by_multiples_of_the_ring() {
    sources::each_source(|| {
        // |M·v| between 2^(bound_bits + 2F) and 3 times that: right or off by a multiple of
        // 2^(m − F) ulps (m = bound_bits + 2F + 2) depending on the random shares, unnoticed.
        let (bound_bits, rows) = (6u32, 200);
        let a = 3i64 << ((bound_bits + 2 * F - 2) / 2);
        let m = vec![a; rows];
        let (got, _) = reveal_matvec_shared(&m, &vec![None; rows], (rows, 1), &[a], bound_bits, 7);
        let want = plain_matvec(&m, 1, &[a])[0];
        let period = 1i128 << (bound_bits + F + 2);
        let mut wrong = 0;
        for &g in &got {
            let diff = g as i128 - want;
            assert!(diff.rem_euclid(period) == 0 || (diff + 1).rem_euclid(period) == 0, "off by {diff}");
            wrong += (diff.abs() > 1) as usize;
        }
        assert!((rows / 10..rows).contains(&wrong), "{wrong} of {rows} wrong");
    });
}

#[test]
fn matvec_shared_sends_corrections_one_way_for_plaintext_entries() {
    sources::each_source(|| {
        // 24 × 24 at m = 12 + 2F + 2 = 46: all shared, all the gov's, all the bank's. One
        // direction's corrections are 576 entries × Σ_{k<46}(46 − k) = 1081 bits, in 64-bit words.
        let (rows, cols, bound_bits) = (24usize, 24usize, 12u32);
        let one_way = (rows * cols * 1081).div_ceil(64) as u64 * 8;
        let m = vec![1i64 << 20; rows * cols];
        let v = vec![1i64 << 10; cols];
        let mut bytes = Vec::new();
        for who in [None, Some(Role::Gov), Some(Role::Bank)] {
            let (got, b) = reveal_matvec_shared(&m, &vec![who; rows * cols], (rows, cols), &v, bound_bits, 9);
            assert!(got.iter().all(|&x| x == (24i64 << 30) >> F || x == ((24i64 << 30) >> F) - 1), "{who:?}");
            bytes.push(b);
        }
        for b in &bytes[1..] {
            let saved = bytes[0] - b;
            assert!((one_way..one_way + 64).contains(&saved), "saved {saved} B, one direction is {one_way} B");
        }
    });
}

#[test]
fn matvec_shared_refuses_a_bound_beyond_64_bits() {
    sources::each_source(|| {
        let ((), ()) = both(|e| {
            let own = PlainMatrix { rows: 1, cols: 1, data: vec![0] };
            let before = e.stats();
            match e.matvec_shared(&own, &[None], &[0], 31) {
                Err(Error::Input(InputError::Usage { detail, .. })) => {
                    assert!(detail.contains("65-bit ring; use bound_bits ≤ 30"), "{detail}")
                }
                other => panic!("expected an input error, got {other:?}"),
            }
            assert_eq!(e.stats(), before, "refused before sending anything");
        });
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

/// What `observer` (gov or bank) receives during one `cross_gram` with the gov's A and the bank's B.
fn view_of_cross_gram(observer: Role, a: &PlainMatrix, b: &PlainMatrix) -> Vec<u8> {
    let src = sources::source();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let party = |ch: &mut Channel, seed: u64| {
        if ch.role() == observer {
            ch.set_observer(Box::new(Recorder(seen.clone())));
        }
        let mut e =
            Engine::with_correlations(ch, FixedPoint::new(F), src, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
        let own = if e.role() == Role::Gov { a } else { b };
        e.cross_gram(Role::Gov, own, a.rows, a.cols, b.cols, 12, 12).unwrap();
    };
    run_pair(|ch| party(ch, 5), |ch| party(ch, 6));
    seen.lock().unwrap().clone()
}

#[test]
fn peer_views_of_cross_gram_hide_the_inputs() {
    sources::each_source(|| {
        let mut r = ChaCha20Rng::seed_from_u64(300);
        let mut random = |rows: usize, cols: usize| PlainMatrix {
            rows,
            cols,
            data: (0..rows * cols).map(|_| r.random_range(-2000i64..2000) as u64).collect(),
        };
        let (a1, b1, b2) = (random(64, 2), random(64, 3), random(64, 3));
        // Constant inputs are the easiest to spot if they leaked.
        let a_const = PlainMatrix { rows: 64, cols: 2, data: vec![1234; 128] };
        let b_const = PlainMatrix { rows: 64, cols: 3, data: vec![(-777i64) as u64; 192] };
        for (observer, x, y) in [(Role::Bank, (&a1, &b1), (&a_const, &b1)), (Role::Gov, (&a1, &b2), (&a1, &b_const))] {
            let (vx, vy) = (view_of_cross_gram(observer, x.0, x.1), view_of_cross_gram(observer, y.0, y.1));
            assert_eq!(vx.len(), vy.len(), "{observer}: message sizes do not depend on the peer's input");
            assert_ne!(vx, vy);
            for view in [&vx, &vy] {
                let ones: u64 = view.iter().map(|b| b.count_ones() as u64).sum();
                let frac = ones as f64 / (8 * view.len()) as f64;
                assert!((frac - 0.5).abs() < 0.02, "{observer}: fraction of 1 bits {frac}");
            }
        }
    });
}
