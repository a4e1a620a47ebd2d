//! Two-party additive secret sharing over Z_2^64 with fixed-point values, no dealer.
//!
//! Every shared value is `x = x_gov + x_bank (mod 2^64)`; each party's share alone is uniformly
//! random. All correlated randomness comes from OT run by the two parties together, from the
//! [`Correlations`] source chosen at [`Engine::with_correlations`]: IKNP in both directions (set
//! up once, 16 bytes per OT) or the silent generator [`crate::pcg`] (batches of random COTs,
//! derandomised with 1 bit per OT); see [`source`]. No party ever holds both shares of
//! anything, correlated randomness included. (A third source, an ideal dealer from a shared
//! seed, exists only for tests behind the cargo feature `test-dealer`.)
//!
//! Protocols and what each party learns (semi-honest):
//! - `share`: the owner sends `values − r` for fresh uniform `r`; the peer sees a uniform vector.
//! - `reveal_to` / `reveal_both`: the receiving party learns the opened value (and by design
//!   nothing else: the other share is `value − own share`). Both go through the channel's one
//!   reveal path ([`crate::disclose`]): a [`Grant`] names the policy rule, the gate refuses a
//!   rule the job does not allow, and both parties record the disclosure.
//! - `mul`, `matvec_shared`: Gilboa OT multiplication on correlated OT ([`cot`]); see there.
//! - `matvec`, `matvec_t` (one party's plaintext matrix, prepared once by `prepare_matrix`,
//!   times a shared vector): homomorphic (RLWE under the matrix owner's key, the encrypted
//!   matrix reused by every product) or, for small matrices, Gilboa; see [`matvec`].
//! - `cross_gram` (product of two parties' bounded plaintext matrices, homomorphic: RLWE
//!   ciphertexts under one party's key, [`crate::he`]) and `lift` (shares mod 2^ℓ to Z_2^64):
//!   see [`gram`].
//! - `sigmoid(ClippedLinear)`: secure comparison (MSB extraction) with OT-made AND triples and
//!   OT multiplexers ([`boolean`]).
//! - `truncate`: exact truncation with a wrap-bit correction, one correlated OT per element; the
//!   msb of each share stays with its owner and the COT reveals nothing (see [`trunc`]).
//!
//! Truncation: every product (`mul`, `matvec`, `matvec_t`, `matvec_shared`, `mul_public`) and
//! the sigmoid's `x/4` are truncated by [`Engine::truncate`], which never fails while the value
//! before truncating satisfies `|x| < 2^62` in ring units: for a product of two values with `f`
//! fractional bits, a real magnitude below [`product_bound`] `= 2^(62 − 2f)` (2^14 at f = 24,
//! 2^30 at f = 16). The result is `⌊x/2^f⌋` or one ulp below. Outside the bound the result is
//! wrong but lands outside the bound too, so [`check_range`] on opened values reports it. Each
//! truncation by `k` bits costs one round trip and one OT plus `k` bits per element.

mod boolean;
mod compare;
mod cot;
mod gram;
mod matvec;
pub mod sigmoid;
mod source;
mod trunc;

pub use source::Correlations;

pub use gram::{CrossGram, cross_gram_ring};
pub use matvec::PreparedMatrix;

pub use sigmoid::Sigmoid;
pub use trunc::{TRUNC_BOUND_BITS, check_range, product_bound};

use rand::{CryptoRng, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroize;

use crate::channel::Stats;
use crate::disclose::Grant;
use crate::fixed::FixedPoint;
use crate::ot::CrHash;
use crate::{Channel, Error, InputError, Result, Role};
use source::OtSource;

/// A plaintext matrix held by one party, fixed-point encoded, row-major.
#[derive(Clone, Debug)]
pub struct PlainMatrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u64>,
}

impl PlainMatrix {
    /// Encodes a row-major real matrix. Panics if `data.len() != rows * cols`.
    pub fn from_f64(rows: usize, cols: usize, data: &[f64], fp: FixedPoint) -> PlainMatrix {
        assert_eq!(data.len(), rows * cols, "PlainMatrix::from_f64: data length must be rows × cols");
        PlainMatrix { rows, cols, data: fp.encode_all(data) }
    }

    /// The given rows, in the given order (a mini-batch). Panics on an out-of-range row index.
    pub fn select_rows(&self, rows: &[usize]) -> PlainMatrix {
        let mut data = Vec::with_capacity(rows.len() * self.cols);
        for &r in rows {
            data.extend_from_slice(&self.data[r * self.cols..(r + 1) * self.cols]);
        }
        PlainMatrix { rows: rows.len(), cols: self.cols, data }
    }

    /// The entries column by column (column `j` is `data[j·rows..(j+1)·rows]`).
    pub fn column_major(&self) -> Vec<u64> {
        let mut out = vec![0u64; self.rows * self.cols];
        for i in 0..self.rows {
            for j in 0..self.cols {
                out[j * self.rows + i] = self.data[i * self.cols + j];
            }
        }
        out
    }

    /// `M·v` in the ring (no truncation).
    pub fn mul_vec(&self, v: &[u64]) -> Vec<u64> {
        assert_eq!(v.len(), self.cols);
        if self.cols == 0 {
            return vec![0; self.rows];
        }
        self.data
            .chunks_exact(self.cols.max(1))
            .take(self.rows)
            .map(|row| row.iter().zip(v).fold(0u64, |acc, (a, b)| acc.wrapping_add(a.wrapping_mul(*b))))
            .collect()
    }

    /// `Mᵀ·v` in the ring (no truncation), row-major loop.
    pub fn mul_vec_t(&self, v: &[u64]) -> Vec<u64> {
        assert_eq!(v.len(), self.rows);
        let mut out = vec![0u64; self.cols];
        for (row, &x) in self.data.chunks_exact(self.cols.max(1)).zip(v) {
            for (o, a) in out.iter_mut().zip(row) {
                *o = o.wrapping_add(a.wrapping_mul(x));
            }
        }
        out
    }
}

/// The engine's private ChaCha20 stream (share masks, OT choices). `rand_chacha` 0.10 has no
/// `zeroize` support, so on drop the state is overwritten with a fixed-seed state and passed to
/// `black_box`, which keeps the overwrite from being optimised away (best effort, no `unsafe`).
/// Kept as its own type so that `Engine` itself needs no `Drop` (its channel borrow ends early).
struct SessionRng(ChaCha20Rng);

impl Drop for SessionRng {
    fn drop(&mut self) {
        self.0 = ChaCha20Rng::from_seed([0; 32]);
        std::hint::black_box(&mut self.0);
    }
}

/// Bytes the engine's channel carried in both directions since the engine was made, by kind,
/// and this party's round trips. See [`Traffic::predicted_seconds`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Traffic {
    /// Set-up: the base OTs of IKNP (none for the silent source).
    pub setup_bytes: u64,
    /// Correlation generation during the steps: IKNP extension messages, or silent COT batches
    /// and derandomisation bits.
    pub correlation_bytes: u64,
    /// Products: Gilboa corrections (the sender's `m0 − m1 + c` words of each correlated OT
    /// product) and the homomorphic products' keys, ciphertexts and replies (`cross_gram`,
    /// `prepare_matrix`, `matvec`, `matvec_t`).
    pub correction_bytes: u64,
    /// Everything else: input shares, AND-gate openings, reveals and the caller's own messages.
    pub opening_bytes: u64,
    /// Round trips (this party's send → receive turns), set-up included.
    pub rounds: u64,
    pub setup_rounds: u64,
}

impl Traffic {
    pub fn total_bytes(&self) -> u64 {
        self.setup_bytes + self.correlation_bytes + self.correction_bytes + self.opening_bytes
    }

    /// Time the counted traffic needs on a link of `bits_per_second` and round trip `rtt`
    /// seconds, computation excluded: `total_bytes · 8 / bits_per_second + rounds · rtt`
    /// (both directions' bytes on one link: an upper bound for a full-duplex link).
    pub fn predicted_seconds(&self, bits_per_second: f64, rtt: f64) -> f64 {
        self.total_bytes() as f64 * 8.0 / bits_per_second + self.rounds as f64 * rtt
    }
}

/// One party's side of a two-party session. See the module docs. Secret session state (Δ, PRG
/// key schedules, unused correlations, the ChaCha state) is wiped when the engine is dropped.
pub struct Engine<'c> {
    ch: &'c mut Channel,
    role: Role,
    fp: FixedPoint,
    rng: SessionRng,
    /// The correlated OTs in both directions.
    ots: Box<dyn OtSource>,
    hash: CrHash,
    /// Channel counters when the engine was made and after its set-up.
    start: Stats,
    setup: Stats,
    correlation_bytes: u64,
    correction_bytes: u64,
    /// Keys and counters of the homomorphic products ([`gram`]).
    he: gram::HeState,
}

impl<'c> Engine<'c> {
    /// [`Engine::with_correlations`] with [`Correlations::Iknp`]: 128 base OTs in each
    /// direction and both IKNP instances set up here (two flights).
    pub fn new<R: CryptoRng>(ch: &'c mut Channel, fp: FixedPoint, rng: &mut R) -> Result<Engine<'c>> {
        Self::with_correlations(ch, fp, Correlations::Iknp, rng)
    }

    /// An engine whose correlated OTs come from `correlations`. `rng` is a CSPRNG owned by the
    /// caller; the engine seeds its own ChaCha20 from it. Both parties must pick the same source.
    pub fn with_correlations<R: CryptoRng>(
        ch: &'c mut Channel,
        fp: FixedPoint,
        correlations: Correlations,
        rng: &mut R,
    ) -> Result<Engine<'c>> {
        let mut rng = Self::session_rng(rng);
        let start = ch.stats();
        let ots: Box<dyn OtSource> = match correlations {
            Correlations::Iknp => Box::new(source::Iknp::setup(ch, &mut rng.0)?),
            Correlations::Silent => Box::new(source::Silent::new()),
        };
        Ok(Self::assemble(ch, fp, rng, ots, start))
    }

    /// Test fixture (feature `test-dealer`, never in the node binary): correlated OTs from an
    /// ideal dealer simulated from `seed`, which both parties pass. Gives no security — either
    /// party could derive the other's OT keys from the seed — and sends no OT messages.
    #[cfg(any(test, feature = "test-dealer"))]
    pub fn with_test_dealer<R: CryptoRng>(ch: &'c mut Channel, fp: FixedPoint, seed: u64, rng: &mut R) -> Engine<'c> {
        let rng = Self::session_rng(rng);
        let start = ch.stats();
        let ots = Box::new(source::Dealer::new(seed, ch.role()));
        Self::assemble(ch, fp, rng, ots, start)
    }

    fn session_rng<R: CryptoRng>(rng: &mut R) -> SessionRng {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let rng = SessionRng(ChaCha20Rng::from_seed(seed));
        seed.zeroize();
        rng
    }

    fn assemble(
        ch: &'c mut Channel,
        fp: FixedPoint,
        rng: SessionRng,
        ots: Box<dyn OtSource>,
        start: Stats,
    ) -> Engine<'c> {
        let (role, setup) = (ch.role(), ch.stats().since(&start));
        Engine {
            ch,
            role,
            fp,
            rng,
            ots,
            hash: CrHash::default(),
            start,
            setup,
            correlation_bytes: 0,
            correction_bytes: 0,
            he: gram::HeState::default(),
        }
    }

    /// Bytes by kind and rounds since the engine was made (see [`Traffic`]).
    pub fn traffic(&self) -> Traffic {
        let all = self.ch.stats().since(&self.start);
        let counted = self.setup.total_bytes() + self.correlation_bytes + self.correction_bytes;
        Traffic {
            setup_bytes: self.setup.total_bytes(),
            correlation_bytes: self.correlation_bytes,
            correction_bytes: self.correction_bytes,
            opening_bytes: all.total_bytes() - counted,
            rounds: all.rounds,
            setup_rounds: self.setup.rounds,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }
    pub fn fixed(&self) -> FixedPoint {
        self.fp
    }
    /// For protocol messages of the caller (e.g. reveals of metrics).
    pub fn channel(&mut self) -> &mut Channel {
        self.ch
    }
    /// Channel counters (bytes, rounds) so far; diff two snapshots with [`Stats::since`].
    pub fn stats(&self) -> Stats {
        self.ch.stats()
    }
    /// Number of OTs used so far (as sender, as receiver; IKNP counts whole blocks of 128).
    pub fn ot_counts(&self) -> (u64, u64) {
        self.ots.counts()
    }

    fn random_vec(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.rng.0.next_u64()).collect()
    }

    // ---- input / output

    /// `owner` secret-shares its ring-encoded `values`; the other party passes None and `len`.
    /// The owner keeps a fresh uniform `r` and sends `values − r`.
    pub fn share(&mut self, owner: Role, values: Option<&[u64]>, len: usize) -> Result<Vec<u64>> {
        if owner == self.role {
            let values = values.ok_or_else(|| {
                Error::Input(InputError::Usage { op: "share", detail: "the owner must pass its values".into() })
            })?;
            if values.len() != len {
                return Err(Error::Input(InputError::Usage {
                    op: "share",
                    detail: format!("{} values but len {len}", values.len()),
                }));
            }
            let r = self.random_vec(len);
            let peer: Vec<u64> = values.iter().zip(&r).map(|(v, r)| v.wrapping_sub(*r)).collect();
            self.ch.send_u64s("mpc.share", &peer)?;
            Ok(r)
        } else {
            self.ch.recv_u64s("mpc.share", len)
        }
    }

    /// Opens x to `to` only, through the channel's one reveal path ([`crate::disclose`]): the
    /// other party sends its share under `grant` (refused unless the gate allows the grant's
    /// rule). Returns Some(plaintext ring values) at `to`, None at the other party.
    pub fn reveal_to(&mut self, grant: &Grant, to: Role, x: &[u64]) -> Result<Option<Vec<u64>>> {
        if to == self.role {
            let other = self.ch.reveal_recv_u64s(grant, x.len())?;
            Ok(Some(self.add(x, &other)))
        } else {
            self.ch.reveal_send_u64s(grant, x)?;
            Ok(None)
        }
    }

    /// Opens x to both parties: two disclosures under `grant`, gov's share to the bank first.
    pub fn reveal_both(&mut self, grant: &Grant, x: &[u64]) -> Result<Vec<u64>> {
        let to_bank = self.reveal_to(grant, Role::Bank, x)?;
        let to_gov = self.reveal_to(grant, Role::Gov, x)?;
        Ok(to_bank.or(to_gov).expect("one of the two openings is to this party"))
    }

    // ---- local operations

    pub fn add(&self, x: &[u64], y: &[u64]) -> Vec<u64> {
        assert_eq!(x.len(), y.len(), "add: length mismatch");
        x.iter().zip(y).map(|(a, b)| a.wrapping_add(*b)).collect()
    }

    pub fn sub(&self, x: &[u64], y: &[u64]) -> Vec<u64> {
        assert_eq!(x.len(), y.len(), "sub: length mismatch");
        x.iter().zip(y).map(|(a, b)| a.wrapping_sub(*b)).collect()
    }

    /// Adds a public ring vector (gov adds it, bank keeps its share).
    pub fn add_public(&self, x: &[u64], c: &[u64]) -> Vec<u64> {
        assert_eq!(x.len(), c.len(), "add_public: length mismatch");
        if self.role == Role::Gov { self.add(x, c) } else { x.to_vec() }
    }

    /// Adds `owner`'s private ring vector: the owner passes Some(values) and adds it to its
    /// share, the other passes None and keeps its share.
    pub fn add_private(&self, owner: Role, x: &[u64], values: Option<&[u64]>) -> Vec<u64> {
        if owner == self.role {
            self.add(x, values.expect("add_private: the owner must pass its values"))
        } else {
            x.to_vec()
        }
    }

    /// Multiplies by a public real constant and truncates (exact while `|x·c| <`
    /// [`product_bound`]; one round trip).
    pub fn mul_public(&mut self, x: &[u64], c: f64) -> Result<Vec<u64>> {
        let c = self.fp.encode(c);
        let prod: Vec<u64> = x.iter().map(|v| v.wrapping_mul(c)).collect();
        self.truncate(&prod, self.fp.frac_bits)
    }

    /// Sum of all elements (local).
    pub fn sum(&self, x: &[u64]) -> u64 {
        x.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }

    // ---- interactive operations

    /// Element-wise product of two shared vectors, truncated. Each party is COT sender with its
    /// `x` share as correlation and COT receiver with the bits of its `y` share, so the two
    /// Gilboa cross terms `x_me·y_peer` and `x_peer·y_me` run at once (one flight with the silent
    /// source, two with IKNP; see `cot`).
    pub fn mul(&mut self, x: &[u64], y: &[u64]) -> Result<Vec<u64>> {
        if x.len() != y.len() {
            return Err(Error::Input(InputError::Usage {
                op: "mul",
                detail: format!("lengths {} and {} differ", x.len(), y.len()),
            }));
        }
        let n = x.len();
        let (s, r) = self.cot(
            Some(cot::CotSend { corr: x, groups: n, width: 1, bits: 64 }),
            Some(cot::CotRecv { choices: y, groups: n, width: 1, bits: 64 }),
        )?;
        let z: Vec<u64> = (0..n).map(|i| x[i].wrapping_mul(y[i]).wrapping_add(s[i]).wrapping_add(r[i])).collect();
        self.truncate(&z, self.fp.frac_bits)
    }
}

/// `out += Σ_g shares[g]` where `shares` holds groups of `out.len()` values.
fn add_groups(out: &mut [u64], shares: &[u64]) {
    if out.is_empty() {
        return;
    }
    for group in shares.chunks_exact(out.len()) {
        for (o, s) in out.iter_mut().zip(group) {
            *o = o.wrapping_add(*s);
        }
    }
}
