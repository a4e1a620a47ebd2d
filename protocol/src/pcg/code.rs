//! The compressing linear map of the generator: the transpose ("dual") of an Expand-Convolute
//! code (Raghuraman–Rindal–Tanguy, "Expand-Convolute Codes for Pseudorandom Correlation
//! Generators from LPN", CRYPTO 2023, eprint 2023/882), computed in linear time.
//!
//! It maps `N = 2·n` inputs to `n` outputs in two steps, both linear over GF(2) (so the same map
//! applies to bits, to 128-bit strings and to GF(2^128) elements, and it commutes with
//! multiplication by a field scalar):
//! 1. *Convolute* in place, front to back: each position `i`, once final, is XORed into position
//!    `i + 1` (the accumulator) and into positions `i + 2 + j` for every set bit `j` of a
//!    pseudorandom 24-bit mask `m_i` (the convolution band). Targets past the end wrap around
//!    to the front (modulo `N`), so that the last inputs spread as far as the others.
//! 2. *Expand* (compress): output `k` is the XOR of [`WEIGHT`] = 7 convolved positions, one drawn
//!    uniformly from each of 7 equal regions of `0..N` (a regular sparse matrix; region `r`
//!    draws its indices from its own PRG stream).
//!
//! The masks and indices come from AES-CTR under a public fixed key, counter from zero: both
//! parties derive the identical code for a given `(n, N)`; the code is public.

use aes::Aes128;
use aes::cipher::{Array, KeyInit};
use rayon::prelude::*;

use crate::ot::{CtrPrg, aes_encrypt_all};

/// Expander weight: positions summed into each output.
pub const WEIGHT: usize = 7;
/// Width of the random convolution band.
pub const BAND: u32 = 24;
/// Outputs per PRG batch.
const CHUNK: usize = 4096;

/// The dual Expand-Convolute map from `big_n` inputs to `n` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    pub n: usize,
    pub big_n: usize,
}

/// Element types the map applies to (bits as `u8` 0/1, `u128` strings / field elements).
pub trait Elem: Copy + Send + Sync + std::ops::BitXorAssign + zeroize::DefaultIsZeroes {}
impl Elem for u8 {}
impl Elem for u128 {}

/// A string together with another element, encoded in the same pass (the map is applied to
/// each side; the receiver encodes its leaves and its noise at once). Packed, so that a string
/// with a bit takes 17 bytes rather than 32.
#[derive(Clone, Copy, Default)]
#[repr(C, packed)]
pub struct Pair<T>(pub u128, pub T);

impl<T: Elem> std::ops::BitXorAssign for Pair<T> {
    fn bitxor_assign(&mut self, other: Self) {
        // By value: a packed field cannot be borrowed.
        let (mut string, mut other_side) = (self.0, self.1);
        string ^= other.0;
        other_side ^= other.1;
        *self = Pair(string, other_side);
    }
}
impl<T: Elem> zeroize::DefaultIsZeroes for Pair<T> {}
impl<T: Elem> Elem for Pair<T> {}

fn key(domain: u8) -> [u8; 16] {
    let mut key = *b"tandem-pcg-code0";
    key[15] = domain;
    key
}

fn prg(domain: u8) -> CtrPrg {
    CtrPrg::new(key(domain))
}

/// Block `first + i` of the [`prg`] stream under `aes` into `out[i]` (random access into it).
fn stream_at(aes: &Aes128, first: u128, out: &mut [u128]) {
    for (i, v) in out.iter_mut().enumerate() {
        *v = first + i as u128;
    }
    aes_encrypt_all(aes, out);
}

impl Code {
    pub fn new(n: usize, big_n: usize) -> Code {
        assert!((WEIGHT..1 << 32).contains(&big_n) && n > 0, "code sizes n = {n}, N = {big_n}");
        Code { n, big_n }
    }

    /// Step 1, in place on `x` (`x.len() == big_n`).
    pub fn convolute<T: Elem>(&self, x: &mut [T]) {
        assert_eq!(x.len(), self.big_n);
        let len = x.len();
        let mut masks = prg(b'm');
        let mut words = vec![0u128; CHUNK.div_ceil(5)];
        let mut i = 0;
        while i < len {
            masks.fill(&mut words);
            for w in &words {
                // Five 24-bit masks per 128-bit word.
                for part in 0..5 {
                    if i >= len {
                        return;
                    }
                    let mut m = ((w >> (BAND * part)) as u32) & ((1 << BAND) - 1);
                    let v = x[i];
                    if i + 2 + BAND as usize <= len {
                        x[i + 1] ^= v;
                        while m != 0 {
                            x[i + 2 + m.trailing_zeros() as usize] ^= v;
                            m &= m - 1;
                        }
                    } else {
                        // The last positions wrap around to the front, so that they reach
                        // the outputs as densely as the others.
                        x[(i + 1) % len] ^= v;
                        while m != 0 {
                            x[(i + 2 + m.trailing_zeros() as usize) % len] ^= v;
                            m &= m - 1;
                        }
                    }
                    i += 1;
                }
            }
        }
    }

    /// Step 2: the `n` outputs from the convolved `x`. Region by region (one pass each, its
    /// own index stream), so that the random reads stay within one region's share of memory;
    /// within a region the output chunks run in parallel (each seeks its part of the stream).
    pub fn expand<T: Elem>(&self, x: &[T]) -> Vec<T> {
        assert_eq!(x.len(), self.big_n);
        let region = self.big_n / WEIGHT;
        let mut out = vec![T::default(); self.n];
        for k in 0..WEIGHT {
            let part = &x[k * region..(k + 1) * region];
            let aes = Aes128::new(&Array::from(key(b'0' + k as u8)));
            out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
                // Four 32-bit draws per word.
                let mut words = [0u128; CHUNK / 4];
                stream_at(&aes, (c * CHUNK / 4) as u128, &mut words);
                let draws =
                    words.iter().flat_map(|w| [*w as u32, (w >> 32) as u32, (w >> 64) as u32, (w >> 96) as u32]);
                for (o, r) in chunk.iter_mut().zip(draws) {
                    *o ^= part[((r as u64 * region as u64) >> 32) as usize];
                }
            });
        }
        out
    }

    /// The whole map: convolutes `x` in place, then returns the `n` outputs.
    pub fn dual_encode<T: Elem>(&self, x: &mut [T]) -> Vec<T> {
        self.convolute(x);
        self.expand(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The map's matrix, column by column: the image of each unit vector (GF(2), as 0/1 bytes).
    fn dense_matrix(code: &Code) -> Vec<Vec<u8>> {
        (0..code.big_n)
            .map(|j| {
                let mut e = vec![0u8; code.big_n];
                e[j] = 1;
                code.dual_encode(&mut e)
            })
            .collect()
    }

    #[test]
    fn encoding_equals_the_dense_matrix_product_on_bits_and_blocks() {
        let code = Code::new(40, 80);
        let cols = dense_matrix(&code);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..5 {
            let x: Vec<u128> = (0..80).map(|_| ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128).collect();
            let got = code.dual_encode(&mut x.clone());
            for k in 0..40 {
                let want = (0..80).filter(|&j| cols[j][k] == 1).fold(0u128, |a, j| a ^ x[j]);
                assert_eq!(got[k], want, "output {k}");
            }
            // Bit b of every block encodes like the bit vector.
            let bits: Vec<u8> = x.iter().map(|v| (v >> 77) as u8 & 1).collect();
            let enc_bits = code.dual_encode(&mut bits.clone());
            assert!(got.iter().zip(&enc_bits).all(|(g, b)| (g >> 77) as u8 & 1 == *b));
        }
    }

    /// A pair encodes like each of its sides encoded alone.
    #[test]
    fn pairs_encode_like_each_side_alone() {
        let code = Code::new(40, 80);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let x: Vec<u128> = (0..80).map(|_| ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128).collect();
        let bits: Vec<u8> = (0..80).map(|_| rng.next_u64() as u8 & 1).collect();
        let mut pairs: Vec<Pair<u8>> = x.iter().zip(&bits).map(|(&v, &b)| Pair(v, b)).collect();
        let got = code.dual_encode(&mut pairs);
        assert_eq!(got.iter().map(|v| v.0).collect::<Vec<_>>(), code.dual_encode(&mut x.clone()));
        assert_eq!(got.iter().map(|v| v.1).collect::<Vec<_>>(), code.dual_encode(&mut bits.clone()));
    }

    /// The matrix has no zero column and no zero row (every input reaches some output and every
    /// output depends on inputs); the convolution makes columns dense.
    #[test]
    fn every_input_reaches_the_outputs() {
        let code = Code::new(64, 128);
        let cols = dense_matrix(&code);
        assert!(cols.iter().all(|c| c.contains(&1)), "zero column");
        for k in 0..64 {
            assert!(cols.iter().any(|c| c[k] == 1), "zero row {k}");
        }
        let avg: f64 = cols.iter().map(|c| c.iter().filter(|&&b| b == 1).count() as f64).sum::<f64>() / 128.0;
        assert!(avg > 10.0, "columns are sparse: average weight {avg}");
    }

    /// The parallel expansion (each chunk seeking its part of the index stream) equals one
    /// sequential pass over each region's stream, over several chunks and a partial last one.
    #[test]
    fn parallel_expansion_equals_the_sequential_stream() {
        let n = 3 * CHUNK + 5;
        let code = Code::new(n, 2 * n);
        let x: Vec<u128> = (0..2 * n as u128).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c) + 1).collect();
        let region = code.big_n / WEIGHT;
        let mut want = vec![0u128; n];
        for k in 0..WEIGHT {
            let mut words = vec![0u128; n.div_ceil(4)];
            prg(b'0' + k as u8).fill(&mut words);
            for (i, o) in want.iter_mut().enumerate() {
                let r = (words[i / 4] >> (32 * (i % 4))) as u32;
                *o ^= x[k * region + ((r as u64 * region as u64) >> 32) as usize];
            }
        }
        assert_eq!(code.expand(&x), want);
    }

    /// Known answer computed once by this code: a change is a format break (the two nodes must
    /// derive the same code).
    #[test]
    fn known_answer() {
        let code = Code::new(8, 16);
        let mut x: Vec<u128> = (0..16u128).map(|i| 1 << i).collect();
        let out = code.dual_encode(&mut x);
        let hex: Vec<String> = out.iter().map(|v| format!("{v:04x}")).collect();
        assert_eq!(hex.join(" "), "cbb9 9181 0d1e 8eba d4a0 c458 521b 9ff8");
    }
}
