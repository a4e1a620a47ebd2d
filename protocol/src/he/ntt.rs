//! Arithmetic modulo one NTT-friendly prime `2^61 < p < 2^62`, `p ≡ 1 (mod 2N)`: Barrett
//! reduction of 124-bit products, Shoup multiplication by precomputed constants, and the
//! negacyclic NTT of `Z_p[X]/(X^N + 1)` (Cooley–Tukey forward, Gentleman–Sande inverse,
//! bit-reversed order). Every reduction is branch-free (the operands are secret: no
//! data-dependent branches, and no mispredictions).

/// One prime modulus with its Barrett constant and NTT tables for degree `n`.
pub(crate) struct Prime {
    pub p: u64,
    /// `⌊2^124 / p⌋` (Barrett).
    barrett: u64,
    /// `ψ^bitrev(k)` and its Shoup constant, ψ a primitive 2n-th root of unity.
    psi: Vec<(u64, u64)>,
    /// `ψ^−bitrev(k)` and its Shoup constant.
    psi_inv: Vec<(u64, u64)>,
    /// `n^−1` and its Shoup constant.
    n_inv: (u64, u64),
    /// `ψ^−bitrev(1)·n^−1` and its Shoup constant (the inverse's last stage).
    last: (u64, u64),
}

impl Prime {
    /// Tables for `p` (prime, `p ≡ 1 mod 2n`, `2^61 < p < 2^62`) and `n ≥ 2` a power of two.
    pub fn new(p: u64, n: usize) -> Prime {
        assert!(p > 1 << 61 && p < 1 << 62 && (p - 1).is_multiple_of(2 * n as u64) && n.is_power_of_two() && n >= 2);
        let barrett = ((1u128 << 124) / p as u128) as u64;
        let base = Prime { p, barrett, psi: Vec::new(), psi_inv: Vec::new(), n_inv: (0, 0), last: (0, 0) };
        let prime = &base;
        // ψ = g^((p−1)/2n) has order 2n iff ψ^n = −1 (g a non-residue).
        let psi = (2..)
            .map(|g| prime.pow(g, (p - 1) / (2 * n as u64)))
            .find(|&w| prime.pow(w, n as u64) == p - 1)
            .expect("a non-residue exists");
        let psi_inv = prime.inv(psi);
        let bits = n.trailing_zeros();
        let table = |w: u64| -> Vec<(u64, u64)> {
            let powers: Vec<u64> = std::iter::successors(Some(1u64), |&x| Some(prime.mul(x, w))).take(n).collect();
            (0..n)
                .map(|k| {
                    let v = powers[(k.reverse_bits() >> (usize::BITS - bits)) & (n - 1)];
                    (v, prime.shoup(v))
                })
                .collect()
        };
        let n_inv = prime.inv(n as u64);
        let psi_inv = table(psi_inv);
        let last = prime.mul(psi_inv[1].0, n_inv);
        Prime {
            p,
            barrett,
            psi: table(psi),
            psi_inv,
            n_inv: (n_inv, prime.shoup(n_inv)),
            last: (last, prime.shoup(last)),
        }
    }

    /// `⌊w·2^64 / p⌋` for [`Prime::mul_shoup`].
    pub fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.p as u128) as u64
    }

    /// `x·w mod p` for `w < p` with `w_shoup = shoup(w)`, any `x < 2^64` (the reduced form of
    /// the NTT's lazy product, for tests).
    #[cfg(test)]
    pub fn mul_shoup(&self, x: u64, w: u64, w_shoup: u64) -> u64 {
        reduce_once(lazy_mul_shoup(x, w, w_shoup, self.p), self.p)
    }

    /// `a·b mod p` for `a, b < p` (Barrett on the 124-bit product: the quotient estimate is
    /// short by at most 2 for `p > 2^61`, so `r < 3p` before the two corrections).
    #[inline]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        let x = a as u128 * b as u128;
        let q = (((x >> 60) * self.barrett as u128) >> 64) as u64;
        let r = (x - q as u128 * self.p as u128) as u64;
        reduce_once(reduce_once(r, 2 * self.p), self.p)
    }

    #[inline]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        reduce_once(a + b, self.p)
    }

    #[inline]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        let d = a.wrapping_sub(b);
        d.min(d.wrapping_add(self.p))
    }

    /// A signed integer with `|v| < 2^127` reduced to `[0, p)` (without a division when
    /// `|v| < p`, the common case: errors, ternary and plaintext coefficients).
    #[inline]
    pub fn reduce_i128(&self, v: i128) -> u64 {
        let m = v.unsigned_abs();
        if m < self.p as u128 {
            let m = m as u64;
            if v < 0 && m != 0 { self.p - m } else { m }
        } else {
            v.rem_euclid(self.p as i128) as u64
        }
    }

    pub fn pow(&self, mut b: u64, mut e: u64) -> u64 {
        let mut r = 1;
        while e > 0 {
            if e & 1 == 1 {
                r = self.mul(r, b);
            }
            b = self.mul(b, b);
            e >>= 1;
        }
        r
    }

    /// Inverse of a non-zero `a < p` (Fermat).
    pub fn inv(&self, a: u64) -> u64 {
        self.pow(a, self.p - 2)
    }

    /// In-place forward negacyclic NTT (output in bit-reversed order). Harvey's lazy
    /// butterflies: values stay in `[0, 4p)` between stages (`4p < 2^64`), reduced once at the
    /// end; branch-free.
    pub fn forward(&self, a: &mut [u64]) {
        let n = a.len();
        let (p, two_p) = (self.p, 2 * self.p);
        let (mut t, mut m) = (n, 1);
        while m < n {
            t >>= 1;
            for (chunk, &(w, ws)) in a.chunks_exact_mut(2 * t).zip(&self.psi[m..2 * m]) {
                let (lo, hi) = chunk.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let u = reduce_once(*x, two_p);
                    let v = lazy_mul_shoup(*y, w, ws, p);
                    *x = u + v;
                    *y = u + two_p - v;
                }
            }
            m <<= 1;
        }
        a.iter_mut().for_each(|x| *x = reduce_once(reduce_once(*x, two_p), p));
    }

    /// In-place inverse of [`Prime::forward`] (Gentleman–Sande, lazy: values in `[0, 2p)`),
    /// the scaling by `n^−1` folded into the last stage.
    pub fn inverse(&self, a: &mut [u64]) {
        let n = a.len();
        let (p, two_p) = (self.p, 2 * self.p);
        let (mut t, mut m) = (1, n);
        while m > 2 {
            let h = m / 2;
            for (chunk, &(w, ws)) in a.chunks_exact_mut(2 * t).zip(&self.psi_inv[h..m]) {
                let (lo, hi) = chunk.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (u, v) = (*x, *y);
                    *x = reduce_once(u + v, two_p);
                    *y = lazy_mul_shoup(u + two_p - v, w, ws, p);
                }
            }
            t <<= 1;
            m = h;
        }
        // Last stage (one group, ψ^−bitrev(1)): both outputs times n^−1.
        let (ni, nis) = self.n_inv;
        let (w, ws) = self.last;
        let (lo, hi) = a.split_at_mut(n / 2);
        for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
            let (u, v) = (*x, *y);
            *x = reduce_once(lazy_mul_shoup(u + v, ni, nis, p), p);
            *y = reduce_once(lazy_mul_shoup(u + two_p - v, w, ws, p), p);
        }
    }
}

/// `x − m` if `x ≥ m`, else `x` (branch-free).
#[inline(always)]
fn reduce_once(x: u64, m: u64) -> u64 {
    x.min(x.wrapping_sub(m))
}

/// `x·w mod p` up to one `p` (in `[0, 2p)`), any `x < 2^64`, `ws = shoup(w)`.
#[inline(always)]
fn lazy_mul_shoup(x: u64, w: u64, ws: u64, p: u64) -> u64 {
    let q = ((x as u128 * ws as u128) >> 64) as u64;
    x.wrapping_mul(w).wrapping_sub(q.wrapping_mul(p))
}
