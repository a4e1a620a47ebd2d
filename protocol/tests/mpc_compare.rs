//! Comparisons with public thresholds, exact truncation and bit selection (`mpc::compare`):
//! both parties over the in-memory channel, every opened result checked against plaintext
//! arithmetic computed here.
//! Every test runs once per correlation source (IKNP, silent; `sources::each_source`).

mod sources;

use protocol::Role;
use protocol::mpc::Engine;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn opened() -> protocol::disclose::Grant {
    protocol::disclose::Grant::new("test", "test", "a value the test checks")
}

/// Runs `f` at both parties (see [`sources::both_at`]).
fn both<T: Send>(f: impl Fn(&mut Engine) -> T + Sync) -> (T, T) {
    sources::both_at(16, f)
}

/// `x` secret-shared by the gov (uniform shares).
fn shared(e: &mut Engine, x: &[u64]) -> Vec<u64> {
    let me = e.role();
    e.share(Role::Gov, (me == Role::Gov).then_some(x), x.len()).unwrap()
}

fn small_values(seed: u64, n: usize, bound: i64) -> Vec<u64> {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-bound..=bound) as u64).collect()
}

#[test]
fn greater_than_and_count_above_match_plaintext_over_full_and_narrow_widths() {
    sources::each_source(|| {
        let mut r = ChaCha20Rng::seed_from_u64(5);
        // Full range: random ring elements, the thresholds themselves and their neighbours.
        let thresholds: Vec<u64> = [-1000i64, -1, 0, 7, 1 << 40].iter().map(|&t| t as u64).collect();
        let mut wide: Vec<u64> = (0..100).map(|_| r.next_u64() >> r.random_range(0..60)).collect();
        wide.iter_mut().step_by(2).for_each(|v| *v = v.wrapping_neg());
        for &t in &thresholds {
            wide.extend([t, t.wrapping_add(1), t.wrapping_sub(1)]);
        }
        // Narrow: |x − t| ≤ 2^19 + 2^18 < 2^20 for width 21.
        let narrow = small_values(6, 150, 1 << 19);
        let narrow_t: Vec<u64> = [-(1i64 << 18), -5, 0, 3, 1 << 18].iter().map(|&t| t as u64).collect();
        let (g, b) = both(|e| {
            let (xw, xn) = (shared(e, &wide), shared(e, &narrow));
            let bits = e.greater_than(&xw, &thresholds, 64).unwrap();
            let count = e.count_above(&xw, &thresholds, 64).unwrap();
            let count_narrow = e.count_above(&xn, &narrow_t, 21).unwrap();
            let counts = [count, count_narrow].map(|c| e.reveal_both(&opened(), &c).unwrap());
            (bits, counts)
        });
        assert_eq!(g.1, b.1);
        let n = wide.len();
        for (k, &t) in thresholds.iter().enumerate() {
            for (i, &x) in wide.iter().enumerate() {
                let e = k * n + i;
                let got = ((g.0[e / 64] ^ b.0[e / 64]) >> (e % 64)) & 1;
                assert_eq!(got == 1, x as i64 > t as i64, "[{} > {}]", x as i64, t as i64);
            }
        }
        let count = |x: u64, ts: &[u64]| ts.iter().filter(|&&t| x as i64 > t as i64).count() as u64;
        assert_eq!(g.1[0], wide.iter().map(|&x| count(x, &thresholds)).collect::<Vec<_>>());
        assert_eq!(g.1[1], narrow.iter().map(|&x| count(x, &narrow_t)).collect::<Vec<_>>());
    });
}

/// Every width 2..=64 (so every leaf split of the carry tree, a short top leaf included):
/// random values in range, zero, ±1 and the range ends (long carry and propagate chains).
#[test]
fn narrow_msb_is_the_sign_of_small_values_at_every_width() {
    sources::each_source(|| {
        let per_width: Vec<Vec<u64>> = (2..=64u32)
            .map(|w| {
                let bound = ((1u128 << (w - 1)) - 1) as i64;
                let mut x = small_values(u64::from(w), 40, bound);
                x.extend([0, 1, -1, bound, -bound, -bound - 1].map(|v: i64| v as u64));
                x
            })
            .collect();
        let (g, b) = both(|e| {
            (2..=64u32)
                .zip(&per_width)
                .map(|(w, x)| {
                    let xs = shared(e, x);
                    e.msb_width(&xs, w).unwrap()
                })
                .collect::<Vec<_>>()
        });
        for ((w, x), (gw, bw)) in (2..=64u32).zip(&per_width).zip(g.iter().zip(&b)) {
            for (i, &v) in x.iter().enumerate() {
                let got = ((gw[i / 64] ^ bw[i / 64]) >> (i % 64)) & 1 == 1;
                assert_eq!(got, (v as i64) < 0, "sign of {} at width {w}", v as i64);
            }
        }
    });
}

#[test]
fn floor_shift_is_exact() {
    sources::each_source(|| {
        let mut r = ChaCha20Rng::seed_from_u64(8);
        let mut x: Vec<u64> = (0..130).map(|_| r.next_u64()).collect();
        x.extend(small_values(9, 130, 1 << 20));
        x.extend([0, 1, u64::MAX, 1 << 32, (1 << 32) - 1, 1u64.wrapping_neg() << 32]);
        for s in [1u32, 14, 32, 63] {
            let (g, b) = both(|e| {
                let xs = shared(e, &x);
                let q = e.floor_shift(&xs, s).unwrap();
                // Reduce modulo 2^(64−s) by shifting the shares up before opening.
                let up: Vec<u64> = q.iter().map(|v| v << s).collect();
                e.reveal_both(&opened(), &up).unwrap()
            });
            assert_eq!(g, b);
            for (i, &v) in x.iter().enumerate() {
                assert_eq!((g[i] as i64) >> s, (v as i64) >> s, "⌊{} / 2^{s}⌋", v as i64);
            }
        }
    });
}

#[test]
fn select_multiplies_xor_shared_bits_with_one_partys_plaintext() {
    const NARROW: u32 = 13;
    sources::each_source(|| {
        let n: usize = 150;
        let random_bits = |seed| {
            let mut r = ChaCha20Rng::seed_from_u64(seed);
            let mut w: Vec<u64> = (0..n.div_ceil(64)).map(|_| r.next_u64()).collect();
            *w.last_mut().unwrap() &= (1 << (n % 64)) - 1;
            w
        };
        let (gov_bits, bank_bits) = (random_bits(10), random_bits(11));
        let values = small_values(12, 2 * n, 1 << 40);
        let (g, b) = both(|e| {
            let me = e.role();
            let mine = if me == Role::Gov { &gov_bits } else { &bank_bits };
            let own_values = (me == Role::Bank).then_some(&values[..]);
            let sel = e.select(Role::Bank, own_values, 2, mine, n, 64).unwrap();
            let ones = e.bits_to_arith(mine, n).unwrap();
            let narrow = e.select(Role::Bank, own_values, 2, mine, n, NARROW).unwrap();
            let refused = e.select(Role::Bank, own_values, 2, &mine[..1], n, 64).is_err();
            let in_ring = narrow.iter().all(|&v| v >> NARROW == 0);
            ([sel, ones, narrow].map(|v| e.reveal_both(&opened(), &v).unwrap()), refused, in_ring)
        });
        assert_eq!(g.0, b.0);
        assert!(g.1 && b.1, "a bit vector of the wrong length is refused");
        assert!(g.2 && b.2, "narrow-ring shares are reduced to the ring");
        for i in 0..n {
            let beta = ((gov_bits[i / 64] ^ bank_bits[i / 64]) >> (i % 64)) & 1;
            assert_eq!(g.0[1][i], beta);
            assert_eq!(&g.0[0][2 * i..2 * i + 2], &[values[2 * i] * beta, values[2 * i + 1] * beta]);
            let low = |v: u64| v & ((1 << NARROW) - 1);
            let narrow = [low(g.0[2][2 * i]), low(g.0[2][2 * i + 1])];
            assert_eq!(narrow, [low(values[2 * i] * beta), low(values[2 * i + 1] * beta)], "product mod 2^{NARROW}");
        }
    });
}

#[test]
fn thermometer_gives_every_at_least_bit_inside_and_outside_the_range() {
    sources::each_source(|| {
        let mut x = small_values(13, 300, 300);
        x.extend([0, 1, 127, 128, 129, u64::MAX, 64, 511, 512]);
        // m = 9: more ANDs on one common operand than one set of triples' arity (groups).
        for m in [1, 2, 7, 9] {
            let (g, b) = both(|e| {
                let xs = shared(e, &x);
                e.thermometer(&xs, m, 12).unwrap()
            });
            let n = x.len();
            for k in 0..=(1usize << m) {
                for (i, &v) in x.iter().enumerate() {
                    let e = k * n + i;
                    let got = ((g[e / 64] ^ b[e / 64]) >> (e % 64)) & 1;
                    assert_eq!(got == 1, v as i64 >= k as i64, "m {m}: [{} ≥ {k}]", v as i64);
                }
            }
        }
    });
}

/// Calls larger than one piece (more than 2^21 OTs in `select`'s COT; more than 2^18 leaf OTs
/// and 2^20 two-AND triples in `greater_than`) are cut into pieces at both parties alike;
/// results unchanged.
#[test]
fn calls_larger_than_one_piece_match_plaintext() {
    sources::each_source(|| {
        let n: usize = (1 << 21) + 1000;
        let mut r = ChaCha20Rng::seed_from_u64(20);
        let (gov_bits, bank_bits): (Vec<u64>, Vec<u64>) =
            (0..n.div_ceil(64)).map(|_| (r.next_u64(), r.next_u64())).unzip();
        let mask_last = |mut w: Vec<u64>| {
            *w.last_mut().unwrap() &= (1 << (n % 64)) - 1;
            w
        };
        let (gov_bits, bank_bits) = (mask_last(gov_bits), mask_last(bank_bits));
        let x = small_values(21, 80_000, 1 << 30);
        let (g, b) = both(|e| {
            let mine = if e.role() == Role::Gov { &gov_bits } else { &bank_bits };
            let ones = e.bits_to_arith(mine, n).unwrap();
            let xs = shared(e, &x);
            let above = e.greater_than(&xs, &[0], 64).unwrap();
            (e.reveal_both(&opened(), &ones).unwrap(), above)
        });
        assert_eq!(g.0, b.0);
        for i in 0..n {
            assert_eq!(g.0[i], ((gov_bits[i / 64] ^ bank_bits[i / 64]) >> (i % 64)) & 1, "bit {i}");
        }
        for (i, &v) in x.iter().enumerate() {
            assert_eq!(((g.1[i / 64] ^ b.1[i / 64]) >> (i % 64)) & 1 == 1, v as i64 > 0, "[{} > 0]", v as i64);
        }
    });
}
