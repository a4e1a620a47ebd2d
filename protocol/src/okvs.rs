//! Oblivious key-value store (OKVS) with random binary bands, for VOLE-PSI.
//!
//! Encoding `n` pairs `(k, v)` with `v ∈ GF(2^128)` gives a vector `P` of [`Okvs::columns`]
//! elements such that `decode(P, k) = ⊕_{j : band(k)_j = 1} P[start(k) + j] = v` for every encoded
//! key. Each key's row is a random start position and a random [`BAND_WIDTH`]-bit band (bit 0 set),
//! both from the caller's hash of the key ([`Row::from_hash`]); the system is solved by sorting
//! the rows by start and eliminating over GF(2) (Bienstock, Patel, Seo, Yeo: "Near-Optimal
//! Oblivious Key-Value Stores for Efficient PSI, PSU and Volume-Hiding Multi-Maps", USENIX
//! Security 2023; RR22 uses an OKVS of the same kind).
//!
//! Parameters: `columns = ceil((1 + ε)·n) + w` with expansion ε = [`EXPANSION_PERCENT`]/100 = 0.1
//! and band width w = 256. Bound used: the paper's fitted estimate of the statistical security
//! for ε = 0.1, `λ ≈ 0.2691·w − 15.21` bits (encoding fails with probability about `2^-λ`), which
//! needs w ≥ 206 for λ = 40; w = 256 gives λ ≈ 53, margin for the fit's (slow) dependence on n
//! beyond the sizes it was fitted on. Encoding failure (a dependent row) is reported as an
//! error, never a wrong store: the caller draws a fresh hash seed and retries.
//!
//! Free columns (not a pivot of any row) are zero. `P` is not hiding by itself: VOLE-PSI sends
//! only `P ⊕ a` with a pseudorandom VOLE vector `a`.

use rayon::prelude::*;

/// Band width in bits.
pub const BAND_WIDTH: usize = 256;
/// Expansion ε in percent: `columns ≈ (1 + ε)·n`.
pub const EXPANSION_PERCENT: usize = 10;
/// Bytes of key hash a [`Row`] consumes.
pub const ROW_HASH_LEN: usize = 40;

const WORDS: usize = BAND_WIDTH / 64;

/// A key's row: ones at columns `start + j` for the set bits `j` of `band`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    start: usize,
    band: [u64; WORDS],
}

impl Row {
    /// First column of the row's band.
    pub fn start(&self) -> usize {
        self.start
    }
}

/// Store dimensions for a given number of keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Okvs {
    columns: usize,
}

/// Encoding failed: the rows are linearly dependent (probability ≤ 2^-40 for distinct keys,
/// certain for a repeated key with two values). Retry with a fresh hash seed.
#[derive(Debug, PartialEq, Eq)]
pub struct EncodeFailure;

impl Okvs {
    /// Dimensions for `n` keys.
    pub fn new(n: usize) -> Okvs {
        Okvs { columns: (n * (100 + EXPANSION_PERCENT)).div_ceil(100) + BAND_WIDTH }
    }

    /// Length of the encoded vector.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// The row of a key from `ROW_HASH_LEN` bytes of its (random-oracle) hash: 8 bytes choose the
    /// start, 32 the band.
    pub fn row(&self, hash: &[u8; ROW_HASH_LEN]) -> Row {
        let starts = (self.columns - BAND_WIDTH + 1) as u128;
        let r = u64::from_le_bytes(hash[..8].try_into().expect("8 bytes")) as u128;
        let mut band = [0u64; WORDS];
        for (w, b) in band.iter_mut().zip(hash[8..].chunks_exact(8)) {
            *w = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        }
        band[0] |= 1;
        Row { start: ((r * starts) >> 64) as usize, band }
    }

    /// Solves `decode(P, row_i) = value_i` for all i. Single-threaded; memory ≈ 56 B per row plus
    /// 20 B per column.
    pub fn encode(&self, mut rows: Vec<(Row, u128)>) -> Result<Vec<u128>, EncodeFailure> {
        const NONE: u32 = u32::MAX;
        assert!(rows.len() < NONE as usize, "OKVS holds fewer than 2^32 keys");
        rows.par_sort_unstable_by_key(|(r, _)| r.start);
        // pivot[c] = index of the row whose leading one is column c; that row is stored shifted
        // so that bit 0 of its band is column c.
        let mut pivot = vec![NONE; self.columns];
        for i in 0..rows.len() {
            let (mut row, mut value) = rows[i];
            loop {
                if row.band == [0; WORDS] {
                    return Err(EncodeFailure);
                }
                let tz = trailing_zeros(&row.band);
                row.start += tz;
                shift_right(&mut row.band, tz);
                match pivot[row.start] {
                    NONE => {
                        pivot[row.start] = i as u32;
                        rows[i] = (row, value);
                        break;
                    }
                    // Rows sorted by start: the pivot row lies within this row's window.
                    j => {
                        let (p, v) = &rows[j as usize];
                        for (a, b) in row.band.iter_mut().zip(&p.band) {
                            *a ^= b;
                        }
                        value ^= v;
                    }
                }
            }
        }
        let mut store = vec![0u128; self.columns];
        for c in (0..self.columns).rev() {
            if pivot[c] != NONE {
                let (row, value) = &rows[pivot[c] as usize];
                let mut band = row.band;
                band[0] &= !1;
                store[c] = value ^ xor_selected(&store[c..], &band);
            }
        }
        Ok(store)
    }

    /// `⊕ store[start + j]` over the set bits `j` of the row's band.
    pub fn decode(&self, store: &[u128], row: &Row) -> u128 {
        xor_selected(&store[row.start..row.start + BAND_WIDTH], &row.band)
    }
}

fn xor_selected(window: &[u128], band: &[u64; WORDS]) -> u128 {
    let mut acc = 0;
    for (w, &bits) in band.iter().enumerate() {
        let mut bits = bits;
        while bits != 0 {
            acc ^= window[w * 64 + bits.trailing_zeros() as usize];
            bits &= bits - 1;
        }
    }
    acc
}

fn trailing_zeros(band: &[u64; WORDS]) -> usize {
    let w = band.iter().position(|&w| w != 0).expect("nonzero band");
    w * 64 + band[w].trailing_zeros() as usize
}

fn shift_right(band: &mut [u64; WORDS], k: usize) {
    let (words, bits) = (k / 64, k % 64);
    for i in 0..WORDS {
        let lo = band.get(i + words).copied().unwrap_or(0);
        let hi = band.get(i + words + 1).copied().unwrap_or(0);
        band[i] = if bits == 0 { lo } else { (lo >> bits) | (hi << (64 - bits)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn random_rows(okvs: &Okvs, n: usize, seed: u64) -> Vec<(Row, u128)> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let mut h = [0u8; ROW_HASH_LEN];
                rng.fill(&mut h[..]);
                (okvs.row(&h), rng.random())
            })
            .collect()
    }

    /// Dense reference of a row: the set of its columns.
    fn columns_of(row: &Row) -> Vec<usize> {
        (0..BAND_WIDTH).filter(|j| row.band[j / 64] >> (j % 64) & 1 == 1).map(|j| row.start + j).collect()
    }

    #[test]
    fn every_encoded_key_decodes_to_its_value() {
        for (n, seed) in [(0, 1), (1, 2), (2, 3), (300, 4), (5000, 5), (100_000, 6)] {
            let okvs = Okvs::new(n);
            let rows = random_rows(&okvs, n, seed);
            let store = okvs.encode(rows.clone()).expect("encodes");
            assert_eq!(store.len(), okvs.columns());
            for (row, value) in &rows {
                assert_eq!(okvs.decode(&store, row), *value, "n = {n}");
                let dense = columns_of(row).iter().fold(0, |acc, &c| acc ^ store[c]);
                assert_eq!(dense, *value, "dense reference, n = {n}");
            }
            let other = random_rows(&okvs, 50, seed + 100);
            let hits = other.iter().filter(|(row, v)| okvs.decode(&store, row) == *v).count();
            assert_eq!(hits, 0, "a key that was not encoded decodes to a pseudorandom value");
        }
    }

    #[test]
    fn rows_are_in_range_with_bit_zero_set_and_columns_follow_the_stated_expansion() {
        let okvs = Okvs::new(1000);
        assert_eq!(okvs.columns(), 1100 + BAND_WIDTH);
        assert_eq!(Okvs::new(0).columns(), BAND_WIDTH);
        let row = okvs.row(&[0xff; ROW_HASH_LEN]);
        assert_eq!(row.start, okvs.columns() - BAND_WIDTH);
        assert_eq!(okvs.row(&[0; ROW_HASH_LEN]), Row { start: 0, band: [1, 0, 0, 0] });
    }

    #[test]
    fn a_repeated_key_with_two_values_is_an_encoding_failure_not_a_wrong_store() {
        let okvs = Okvs::new(100);
        let mut rows = random_rows(&okvs, 100, 7);
        rows.push((rows[10].0, rows[10].1 ^ 1));
        assert_eq!(okvs.encode(rows), Err(EncodeFailure));
    }

    #[test]
    fn shifting_moves_bits_across_words() {
        let mut band = [0, 1 << 63, 5, 0];
        shift_right(&mut band, 127);
        assert_eq!(band, [0b1011, 0, 0, 0]);
        let mut band = [0, 0, 0, 1 << 63];
        shift_right(&mut band, 255);
        assert_eq!(band, [1, 0, 0, 0]);
        assert_eq!(trailing_zeros(&[0, 0, 8, 0]), 131);
    }
}
