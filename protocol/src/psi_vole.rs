//! VOLE-based private set intersection (RR22 style: an OKVS plus VOLE over GF(2^128)), with the
//! same inputs, outputs, reveal modes, verdict and aligned order as ECDH-PSI ([`crate::psi`]).
//!
//! # Protocol (gov holds X, bank holds Y; the bank is the OPRF receiver)
//! 0. `psi.hello` as in ECDH-PSI, under this protocol's label (a node running the other
//!    protocol aborts with "parameters differ"). Reveal `size_only` is refused before anything is
//!    sent: the OPRF receiver learns which of its own IDs matched, so use [`crate::psi::intersect`].
//! 1. VOLE of length `m` = [`Okvs::columns`]`(|Y|)` ([`crate::pcg`]): gov (sender) gets `Δ` and
//!    `b`, bank (receiver) gets `a` and `c = b + a·Δ`.
//! 2. bank draws a 32-byte OKVS seed `s`, hashes each `y` to `h(y) ∈ GF(2^128)` and an OKVS row,
//!    encodes `P` with `decode(P, y) = h(y)` for all y ∈ Y (a failure, probability ≤ 2^-40, draws
//!    a new seed), and sends `psi.okvs` = `s` then `psi.okvs_masked` = `P + a` in chunks.
//! 3. gov computes `K = b + (P + a)·Δ = c + P·Δ` chunk by chunk, then for each x ∈ X in a fresh
//!    random order the tag `T(decode(K, x) + Δ·h(x), h(x))` and sends them (`psi.tags`).
//!    For x = y ∈ Y this is `T(decode(c, y), h(y))`, which the bank computes for its own IDs.
//! 4. bank matches tags and sends the verdict exactly as in ECDH-PSI (step 4 there): the aligned
//!    order is ascending tag order; for `both`, gov's positions (in its step-3 order).
//!
//! `h` and the OKVS rows come from a BLAKE3 XOF keyed with `derive_key(OKVS_CONTEXT, params hash ‖
//! s)` over `len ‖ id`; `T` = first `t` bytes of BLAKE3 keyed with `derive_key(TAG_CONTEXT, params
//! hash)` over `v ‖ h(x)`, `t` = [`crate::psi::tag_len`]`(|X| + |Y|)` (≤ 2^-40 false or
//! ambiguous matches over all pairs). Bytes on the wire ≈ 16·m (`m` ≈ 1.1·|Y| + 256) +
//! t·|X| + 4·|X∩Y| (positions only for `both`) + the VOLE's own traffic.
//!
//! # What each party learns (semi-honest; VOLE secure, `h` and `T` random oracles)
//! - Always, both: both set sizes |X| and |Y|, and whether the parameters match.
//! - `both`: both learn |X∩Y|; gov learns which of its IDs are in X∩Y, bank which of its IDs are;
//!   both learn the aligned order of the intersection. Nothing about IDs outside X∩Y: gov sees
//!   `P + a`, uniform given the VOLE; the bank sees tags of IDs outside Y, pseudorandom without Δ.
//! - `bank_only`: bank learns X∩Y (its rows) and |X∩Y|; gov learns only |X∩Y|.
//! - `size_only`: not offered (refused locally on both sides, nothing sent).
//! - On refusal (`|X∩Y| < min_intersection`) gov learns only that fact; bank computed |X∩Y|
//!   internally but neither returns it.
//!
//! Memory (besides the IDs): the bank holds ≈ 64 B per own ID while encoding plus 52 B per OKVS
//! column, before the VOLE starts (the OKVS needs nothing from gov, so it comes first and its
//! working memory is freed before the VOLE's is taken); both hold ≈ 100 B per own ID while
//! tagging (rows sorted for decoding in store order) plus 16 B per column; the VOLE's own peak is
//! ≈ 32 B per column at gov and ≈ 48 B per column at the bank ([`crate::pcg::MAX_N`]).

use rand::RngExt;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::gf128::{Gf128, Multiplier};
use crate::okvs::{Okvs, ROW_HASH_LEN, Row};
use crate::psi::{
    CHUNK, PsiOutput, PsiParams, PsiReveal, abort_on_error, bank_verdict, gov_verdict, hello, recv_chunks, recv_tags,
    send_chunks, send_tags, tag_len,
};
use crate::{Channel, InputError, Result, Role};

/// Protocol label: part of the parameter hash (so ECDH and VOLE nodes never pair).
const LABEL: &[u8] = b"tandem/psi/vole-okvs-gf128-blake3/v1";
/// BLAKE3 key-derivation context for `h(id)` and the OKVS rows.
const OKVS_CONTEXT: &str = "tandem 2026 psi vole okvs hash v1";
/// BLAKE3 key-derivation context for the match tags.
const TAG_CONTEXT: &str = "tandem 2026 psi vole match tag v1";
/// OKVS seeds the bank tries before giving up (each fails with probability ≤ 2^-40).
const ENCODE_ATTEMPTS: usize = 3;
/// IDs per rayon task when hashing and decoding.
const BATCH: usize = 1024;

/// Step 2 message: the seed of the OKVS hash (then `psi.okvs_masked` chunks).
#[derive(Serialize, Deserialize)]
struct OkvsHeader {
    seed: [u8; 32],
}

/// Runs VOLE-PSI on `ids` (normalised and unique, see [`crate::ids::prepare_ids`]) with the peer;
/// the same contract as [`crate::psi::intersect`] for reveal modes `both` and `bank_only`.
/// `rng` must be a CSPRNG; it draws the VOLE secrets, the OKVS seed and the shuffle.
pub fn intersect<R: rand::CryptoRng + ?Sized>(
    ch: &mut Channel,
    ids: &[String],
    params: &PsiParams,
    rng: &mut R,
) -> Result<PsiOutput> {
    if params.reveal == PsiReveal::SizeOnly {
        return Err(InputError::Param(
            "PSI reveal 'intersection_size' (size only) is not available with psi_protocol \"vole\": its OPRF \
             receiver learns which of its own IDs match; set psi_protocol = \"ecdh\" in the job params"
                .into(),
        )
        .into());
    }
    abort_on_error(ch, |ch| {
        let sizes = hello(ch, ids.len(), params, LABEL)?;
        let okvs = Okvs::new(sizes.n_bank);
        let t = tag_len(sizes.n_gov + sizes.n_bank);
        let tag_key = blake3::derive_key(TAG_CONTEXT, &sizes.params_hash);
        match ch.role() {
            Role::Gov => {
                let mut vole = crate::pcg::vole_send(ch, okvs.columns(), rng)?;
                let header: OkvsHeader = ch.recv("psi.okvs")?;
                let hasher = IdHasher::new(&sizes.params_hash, &header.seed, okvs);
                // In place (no copy of `b` left behind).
                let mut keys = Zeroizing::new(std::mem::take(&mut vole.b).into_iter().map(|b| b.0).collect::<Vec<_>>());
                let delta = vole.delta;
                recv_chunks(ch, "psi.okvs_masked", okvs.columns(), 16, |start, bytes| {
                    unmask_chunk(&mut keys[start..start + bytes.len() / 16], bytes, delta);
                    Ok(())
                })?;
                let mut order: Vec<u32> = (0..ids.len() as u32).collect();
                order.shuffle(rng);
                let tags = sender_tags(&hasher, &keys, delta, ids, &order, &tag_key, t);
                drop(keys);
                send_tags(ch, "psi.tags", &tags, t)?;
                drop(tags);
                gov_verdict(ch, &order, sizes.n_bank, params)
            }
            Role::Bank => {
                // The OKVS first (nothing to send yet): its working memory is freed before the
                // VOLE's is taken; the frames go out in the same order.
                let (seed, store) = encode_with_retries(&sizes.params_hash, okvs, ids, rng)?;
                let mut vole = crate::pcg::vole_receive(ch, okvs.columns(), rng)?;
                ch.send("psi.okvs", &OkvsHeader { seed })?;
                send_chunks(ch, "psi.okvs_masked", okvs.columns(), 16, |start, out| {
                    for ((o, p), a) in out.chunks_exact_mut(16).zip(&store[start..]).zip(&vole.a[start..]) {
                        o.copy_from_slice(&(p ^ a.0).to_le_bytes());
                    }
                })?;
                drop(store);
                let c = Zeroizing::new(std::mem::take(&mut vole.c).into_iter().map(|c| c.0).collect::<Vec<_>>());
                drop(vole);
                let hasher = IdHasher::new(&sizes.params_hash, &seed, okvs);
                let own_tags = receiver_tags(&hasher, &c, ids, &tag_key, t);
                drop(c);
                let gov_tags = recv_tags(ch, "psi.tags", sizes.n_gov, t)?;
                let order: Vec<u32> = (0..ids.len() as u32).collect();
                bank_verdict(ch, gov_tags, own_tags, &order, params)
            }
        }
    })
}

/// `h(id)` and the OKVS row of each ID under one seed.
struct IdHasher {
    key: [u8; 32],
    okvs: Okvs,
}

impl IdHasher {
    fn new(params_hash: &[u8; 32], seed: &[u8; 32], okvs: Okvs) -> IdHasher {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(params_hash);
        material[32..].copy_from_slice(seed);
        IdHasher { key: blake3::derive_key(OKVS_CONTEXT, &material), okvs }
    }

    /// A keyed BLAKE3 state for [`IdHasher::hash`], built once per batch of IDs (building one
    /// per ID costs more than hashing the ID).
    fn state(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.key)
    }

    /// `(h(id), row(id))`, using `h` from [`IdHasher::state`] (reset here).
    fn hash(&self, h: &mut blake3::Hasher, id: &str) -> (u128, Row) {
        let mut out = [0u8; 16 + ROW_HASH_LEN];
        h.reset();
        // One update of `len ‖ id` (each update copies into BLAKE3's block buffer).
        let mut input = [0u8; 8 + 64];
        if id.len() <= 64 {
            input[..8].copy_from_slice(&(id.len() as u64).to_le_bytes());
            input[8..8 + id.len()].copy_from_slice(id.as_bytes());
            h.update(&input[..8 + id.len()]);
        } else {
            h.update(&(id.len() as u64).to_le_bytes()).update(id.as_bytes());
        }
        h.finalize_xof().fill(&mut out);
        let value = u128::from_le_bytes(out[..16].try_into().expect("16 bytes"));
        (value, self.okvs.row(out[16..].try_into().expect("row hash")))
    }
}

/// Step 2 (bank): the OKVS of `h(y)` for all y, retrying with a fresh seed on the (≤ 2^-40)
/// encoding failure. Repeated IDs fail every attempt and are reported as such.
fn encode_with_retries<R: rand::CryptoRng + ?Sized>(
    params_hash: &[u8; 32],
    okvs: Okvs,
    ids: &[String],
    rng: &mut R,
) -> Result<([u8; 32], Vec<u128>)> {
    for _ in 0..ENCODE_ATTEMPTS {
        let seed: [u8; 32] = rng.random();
        let hasher = IdHasher::new(params_hash, &seed, okvs);
        let rows: Vec<(Row, u128)> =
            ids.par_iter().with_min_len(BATCH).map_init(|| hasher.state(), |h, id| swap(hasher.hash(h, id))).collect();
        if let Ok(store) = okvs.encode(rows) {
            return Ok((seed, store));
        }
    }
    // Every attempt fails only for repeated IDs (or with negligible probability).
    Err(InputError::RepeatedIds { who: "the bank" }.into())
}

fn swap((value, row): (u128, Row)) -> (Row, u128) {
    (row, value)
}

/// Step 3 (gov), per chunk: `K = b + (P + a)·Δ` in place.
fn unmask_chunk(keys: &mut [u128], masked: &[u8], delta: Gf128) {
    keys.par_chunks_mut(BATCH).zip(masked.par_chunks(BATCH * 16)).for_each(|(keys, masked)| {
        let mut times_delta = Multiplier::new(delta);
        for (k, m) in keys.iter_mut().zip(masked.chunks_exact(16)) {
            let m = u128::from_le_bytes(m.try_into().expect("16 bytes"));
            *k ^= times_delta.mul(Gf128(m)).0;
        }
    });
}

/// Step 3 (gov): `T(decode(K, x) + Δ·h(x), h(x))` for `x = ids[order[i]]`.
fn sender_tags(
    hasher: &IdHasher,
    keys: &[u128],
    delta: Gf128,
    ids: &[String],
    order: &[u32],
    tag_key: &[u8; 32],
    t: usize,
) -> Vec<u128> {
    tags_in_store_order(hasher, keys, order.len(), |i| &ids[order[i] as usize], Some(delta), tag_key, t)
}

/// Step 4 (bank): `T(decode(c, y), h(y))` for its own IDs, in input order.
fn receiver_tags(hasher: &IdHasher, c: &[u128], ids: &[String], tag_key: &[u8; 32], t: usize) -> Vec<u128> {
    tags_in_store_order(hasher, c, ids.len(), |i| &ids[i], None, tag_key, t)
}

/// Tag `i` is `T(decode(store, x) + Δ·h(x), h(x))` (the `Δ` term only with `delta`) for
/// `x = id_at(i)`, `i < n`. The IDs are decoded in ascending row start (their rows sorted,
/// 64 bytes per ID), so that consecutive decodes read overlapping windows of `store` from cache;
/// in input order each decode fetches its own 4 KiB window from memory.
fn tags_in_store_order<'a>(
    hasher: &IdHasher,
    store: &[u128],
    n: usize,
    id_at: impl Fn(usize) -> &'a str + Sync,
    delta: Option<Gf128>,
    tag_key: &[u8; 32],
    t: usize,
) -> Vec<u128> {
    let mut rows: Vec<(Row, u128, u32)> = (0..n)
        .into_par_iter()
        .with_min_len(BATCH)
        .map_init(
            || hasher.state(),
            |state, i| {
                let (h, row) = hasher.hash(state, id_at(i));
                (row, h, i as u32)
            },
        )
        .collect();
    rows.par_sort_unstable_by_key(|(row, _, _)| row.start());
    let sorted: Vec<u128> = rows
        .par_chunks(BATCH)
        .flat_map_iter(|chunk| {
            let mut times_delta = delta.map(Multiplier::new);
            chunk
                .iter()
                .map(|(row, h, _)| {
                    let extra = times_delta.as_mut().map_or(0, |m| m.mul(Gf128(*h)).0);
                    tag(tag_key, hasher.okvs.decode(store, row) ^ extra, *h, t)
                })
                .collect::<Vec<u128>>()
        })
        .collect();
    let mut tags = vec![0u128; n];
    for ((_, _, i), &tag) in rows.iter().zip(&sorted) {
        tags[*i as usize] = tag;
    }
    tags
}

fn tag(key: &[u8; 32], v: u128, h: u128, len: usize) -> u128 {
    let mut input = [0u8; 32];
    input[..16].copy_from_slice(&v.to_le_bytes());
    input[16..].copy_from_slice(&h.to_le_bytes());
    let mut t = [0u8; 16];
    t[..len].copy_from_slice(&blake3::keyed_hash(key, &input).as_bytes()[..len]);
    u128::from_le_bytes(t)
}

const _: () = assert!(CHUNK * 16 <= crate::channel::DEFAULT_MAX_FRAME, "a masked-OKVS frame fits a frame");
