//! VOLE-based private set intersection (RR22 style: an OKVS plus VOLE over GF(2^128)), with the
//! same inputs, outputs, reveal modes, verdict and aligned order as ECDH-PSI ([`crate::psi`]).
//!
//! The protocol is written as message-in/message-out steps (sans-IO, as [`crate::pcg::silent`]):
//! per role a chain of state structs ([`GovStart`] … [`GovAwaitVerdict`], [`BankStart`] …
//! [`BankAwaitTags`]) whose steps take the peer's typed message and return the next state and
//! this party's message; [`intersect`] drives them over a [`Channel`].
//!
//! # Flights (gov holds X, bank holds Y; the bank is the OPRF receiver)
//! Reveal `size_only` is refused before anything is sent: the OPRF receiver learns which of its
//! own IDs matched, so use [`crate::psi::intersect`].
//! 0. both, [`Hello`] (`psi.hello`, bincode, 33..=41 bytes): as in ECDH-PSI, under this
//!    protocol's label (a node running the other protocol aborts with "parameters differ").
//! 1. VOLE of length `m` = [`Okvs::columns`]`(|Y|)`, the four flights of [`crate::pcg::silent`]
//!    (`pcg.*`; bank → gov [`BaseOffer`], gov → bank [`BaseAnswer`], bank → gov [`Extension`],
//!    gov → bank [`TreeMessage`]): gov (sender) gets `Δ` and `b`, bank (receiver) `a` and
//!    `c = b + a·Δ`. Before it the bank draws a 32-byte OKVS seed `s`, hashes each `y` to
//!    `h(y) ∈ GF(2^128)` and an OKVS row, and encodes `P` with `decode(P, y) = h(y)` for all y ∈ Y
//!    (a failure, probability ≤ 2^-40, draws a new seed).
//! 2. bank → gov, [`OkvsHeader`] (`psi.okvs`, bincode, 32 bytes): `s`.
//! 3. bank → gov, [`MaskedChunk`]s (`psi.okvs_masked`, ⌈m / [`CHUNK`]⌉ frames of [`CHUNK`]
//!    columns, the last one shorter; 16 bytes LE per column): `P + a`.
//! 4. gov computes `K = b + (P + a)·Δ = c + P·Δ` chunk by chunk, then for each x ∈ X in a fresh
//!    random order the tag `T(decode(K, x) + Δ·h(x), h(x))`, and sends them: gov → bank,
//!    [`TagChunk`]s (`psi.tags`, ⌈|X| / [`CHUNK`]⌉ frames, `t` bytes per tag). For x = y ∈ Y this
//!    is `T(decode(c, y), h(y))`, which the bank computes for its own IDs.
//! 5. bank → gov, [`VerdictMessage`] (`psi.verdict`, bincode, then for `both` `psi.positions`,
//!    bulk, 4 bytes per match): the bank matches tags and decides exactly as in ECDH-PSI (step 4
//!    there): the aligned order is ascending tag order; for `both`, gov's positions (in its
//!    step-4 order).
//!
//! Every message from the peer is checked against the size it must have (from |X|, |Y|, `m`,
//! `t`) before use; any other is a [`crate::PeerError`].
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
//! ≈ 32 B per column at gov and ≈ 48 B per column at the bank ([`crate::pcg::MAX_N`]). The masked
//! OKVS and the tags stream one frame at a time (the steps take and give one chunk each).

use rand::RngExt;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::gf128::{Gf128, Multiplier};
use crate::okvs::{Okvs, ROW_HASH_LEN, Row};
use crate::pcg::Blocks;
use crate::pcg::silent::{
    BaseAnswer, BaseOffer, Extension, Kind, ReceiverExtended, ReceiverOutput, ReceiverStart, SenderEncoding,
    SenderExtending, SenderOutput, SenderStart, TreeMessage,
};
use crate::psi::{
    CHUNK, Chunks, Hello, PsiOutput, PsiParams, PsiReveal, Sizes, VerdictMessage, abort_on_error, bank_decides, chunk,
    decode_tags, encode_tags, gov_output, recv_verdict, send_verdict, swap_hello, tag_len,
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

/// Runs VOLE-PSI on `ids` (normalised and unique, see [`crate::ids::prepare_ids`]) with the peer;
/// the same contract as [`crate::psi::intersect`] for reveal modes `both` and `bank_only`.
/// `rng` must be a CSPRNG; it draws the VOLE secrets, the OKVS seed and the shuffle.
pub fn intersect<R: rand::CryptoRng + ?Sized>(
    ch: &mut Channel,
    ids: &[String],
    params: &PsiParams,
    rng: &mut R,
) -> Result<PsiOutput> {
    // Outside `abort_on_error`: nothing at all goes to the peer.
    refuse_size_only(params)?;
    abort_on_error(ch, |ch| match ch.role() {
        Role::Gov => run_gov(ch, ids, params, rng),
        Role::Bank => run_bank(ch, ids, params, rng),
    })
}

/// Drives gov's steps over `ch`.
fn run_gov<R: rand::CryptoRng + ?Sized>(
    ch: &mut Channel,
    ids: &[String],
    params: &PsiParams,
    rng: &mut R,
) -> Result<PsiOutput> {
    let (gov, hello) = GovStart::new(ids, params)?;
    let gov = gov.on_hello(&swap_hello(ch, &hello)?)?;
    let vole = crate::pcg::Params::new(gov.vole_len())?;
    let (mut gov, answer) = gov.on_base_offer(&BaseOffer::recv(ch)?, rng)?;
    answer.send(ch)?;
    gov.expand_trees(rng);
    let (gov, trees) = gov.on_extension(&Extension::recv(ch, &vole, Kind::Vole)?, rng)?;
    trees.send(ch)?;
    let gov = gov.finish();
    let mut gov = gov.on_okvs_header(&OkvsHeader::decode(&ch.recv_frame(OkvsHeader::KIND)?)?);
    while !gov.incoming().is_complete() {
        let chunk = MaskedChunk::decode(ch.recv_frame(MaskedChunk::KIND)?, gov.incoming())?;
        gov.on_masked_chunk(&chunk)?;
    }
    let gov = gov.tags(rng)?;
    for chunk in gov.tag_chunks() {
        ch.send_frame(TagChunk::KIND, chunk.0)?;
    }
    let gov = gov.sent();
    let verdict = recv_verdict(ch, ids.len(), gov.n_bank(), params)?;
    gov.on_verdict(verdict)
}

/// Drives the bank's steps over `ch`.
fn run_bank<R: rand::CryptoRng + ?Sized>(
    ch: &mut Channel,
    ids: &[String],
    params: &PsiParams,
    rng: &mut R,
) -> Result<PsiOutput> {
    let (bank, hello) = BankStart::new(ids, params)?;
    let (bank, offer) = bank.on_hello(&swap_hello(ch, &hello)?, rng)?;
    let vole = crate::pcg::Params::new(bank.vole_len())?;
    offer.send(ch)?;
    let (bank, ext) = bank.on_base_answer(&BaseAnswer::recv(ch)?, rng)?;
    ext.send(ch)?;
    let (bank, header) = bank.on_trees(&TreeMessage::recv(ch, &vole, Kind::Vole)?)?;
    ch.send_frame(OkvsHeader::KIND, header.encode()?)?;
    for chunk in bank.masked_chunks() {
        ch.send_frame(MaskedChunk::KIND, chunk.0)?;
    }
    let mut bank = bank.sent();
    while !bank.incoming().is_complete() {
        let chunk = TagChunk::decode(ch.recv_frame(TagChunk::KIND)?, bank.incoming())?;
        bank.on_tag_chunk(&chunk)?;
    }
    let (output, verdict) = bank.verdict()?;
    send_verdict(ch, &verdict)?;
    output
}

fn refuse_size_only(params: &PsiParams) -> Result<()> {
    if params.reveal == PsiReveal::SizeOnly {
        return Err(InputError::Param(
            "PSI reveal 'intersection_size' (size only) is not available with psi_protocol \"vole\": its OPRF \
             receiver learns which of its own IDs match; set psi_protocol = \"ecdh\" in the job params"
                .into(),
        )
        .into());
    }
    Ok(())
}

/// Flight 2 (bank → gov, frame `psi.okvs`, bincode, 32 bytes): the seed of the OKVS hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkvsHeader {
    pub seed: [u8; 32],
}

impl OkvsHeader {
    pub const KIND: &'static str = "psi.okvs";

    pub fn encode(&self) -> Result<Vec<u8>> {
        crate::channel::encode(Self::KIND, self)
    }

    /// Any length but 32 bytes is a [`crate::PeerError`].
    pub fn decode(bytes: &[u8]) -> Result<OkvsHeader> {
        crate::channel::decode(Self::KIND, bytes)
    }
}

/// Flight 3 (bank → gov, frames `psi.okvs_masked`): columns of `P + a`, 16 bytes LE each,
/// [`CHUNK`] per frame (the last frame the rest).
pub struct MaskedChunk(pub Vec<u8>);

impl MaskedChunk {
    pub const KIND: &'static str = "psi.okvs_masked";

    /// The next frame of the flight `expected` tracks; any other length is a [`crate::PeerError`].
    pub fn decode(bytes: Vec<u8>, expected: &Chunks) -> Result<MaskedChunk> {
        expected.check(bytes.len())?;
        Ok(MaskedChunk(bytes))
    }
}

/// Flight 4 (gov → bank, frames `psi.tags`): gov's tags, `t` bytes each, [`CHUNK`] per frame.
pub struct TagChunk(pub Vec<u8>);

impl TagChunk {
    pub const KIND: &'static str = "psi.tags";

    /// The next frame of the flight `expected` tracks; any other length is a [`crate::PeerError`].
    pub fn decode(bytes: Vec<u8>, expected: &Chunks) -> Result<TagChunk> {
        expected.check(bytes.len())?;
        Ok(TagChunk(bytes))
    }
}

/// What both parties know after `psi.hello`.
struct Job<'a> {
    ids: &'a [String],
    params: &'a PsiParams,
    sizes: Sizes,
    okvs: Okvs,
    /// Tag length in bytes.
    t: usize,
    tag_key: [u8; 32],
}

impl<'a> Job<'a> {
    fn new(ids: &'a [String], params: &'a PsiParams, own: &Hello, peer: &Hello, role: Role) -> Result<Job<'a>> {
        let sizes = own.check(peer, role, params, LABEL)?;
        Ok(Job {
            ids,
            params,
            okvs: Okvs::new(sizes.n_bank),
            t: tag_len(sizes.n_gov + sizes.n_bank),
            tag_key: blake3::derive_key(TAG_CONTEXT, &sizes.params_hash),
            sizes,
        })
    }
}

/// This party's [`Hello`] (size-only refused, the set size checked).
fn start(ids: &[String], params: &PsiParams) -> Result<Hello> {
    refuse_size_only(params)?;
    Hello::new(ids.len(), params, LABEL)
}

/// An error for a step called before its flight is complete (a driver bug, not the peer's).
fn incomplete(what: &str) -> crate::Error {
    InputError::Usage { op: "psi_vole", detail: format!("{what} called before the whole flight arrived") }.into()
}

/// Gov before `psi.hello`.
pub struct GovStart<'a> {
    ids: &'a [String],
    params: &'a PsiParams,
    hello: Hello,
}

/// Gov waiting for the VOLE's base offer.
pub struct GovVole<'a> {
    job: Job<'a>,
    vole: SenderStart,
}

/// Gov waiting for the VOLE's extension.
pub struct GovExtending<'a> {
    job: Job<'a>,
    vole: SenderExtending,
}

/// Gov after sending the tree message: the VOLE's compression is left, [`GovEncoding::finish`].
pub struct GovEncoding<'a> {
    job: Job<'a>,
    vole: SenderEncoding,
}

/// Gov holding its VOLE output (`Δ`, `b`), waiting for the OKVS seed.
pub struct GovAwaitOkvs<'a> {
    job: Job<'a>,
    vole: SenderOutput,
}

/// Gov receiving the masked OKVS: `keys` turns from `b` into `K` chunk by chunk.
pub struct GovUnmasking<'a> {
    job: Job<'a>,
    hasher: IdHasher,
    delta: Zeroizing<Gf128>,
    /// Wiped on drop ([`Blocks`]).
    keys: Blocks,
    incoming: Chunks,
}

/// Gov with its tags (in `order`), to send.
pub struct GovTagging<'a> {
    job: Job<'a>,
    order: Vec<u32>,
    tags: Vec<u128>,
}

/// Gov waiting for the bank's verdict.
pub struct GovAwaitVerdict<'a> {
    job: Job<'a>,
    order: Vec<u32>,
}

impl<'a> GovStart<'a> {
    /// Flight 0 out.
    pub fn new(ids: &'a [String], params: &'a PsiParams) -> Result<(GovStart<'a>, Hello)> {
        let hello = start(ids, params)?;
        Ok((GovStart { ids, params, hello: hello.clone() }, hello))
    }

    /// Flight 0 in: checks the bank's hello; nothing to send (the bank opens the VOLE).
    pub fn on_hello(self, peer: &Hello) -> Result<GovVole<'a>> {
        let job = Job::new(self.ids, self.params, &self.hello, peer, Role::Gov)?;
        let vole = SenderStart::new(Kind::Vole, job.okvs.columns())?;
        Ok(GovVole { job, vole })
    }
}

impl<'a> GovVole<'a> {
    /// The VOLE's length `m` (OKVS columns).
    pub fn vole_len(&self) -> usize {
        self.job.okvs.columns()
    }

    pub fn on_base_offer<R: rand::CryptoRng + ?Sized>(
        self,
        offer: &BaseOffer,
        rng: &mut R,
    ) -> Result<(GovExtending<'a>, BaseAnswer)> {
        let (vole, answer) = self.vole.on_base_offer(offer, rng)?;
        Ok((GovExtending { job: self.job, vole }, answer))
    }
}

impl<'a> GovExtending<'a> {
    /// The VOLE sender's trees, expanded while the bank computes its extension (optional).
    pub fn expand_trees<R: rand::CryptoRng + ?Sized>(&mut self, rng: &mut R) {
        self.vole.expand_trees(rng);
    }

    pub fn on_extension<R: rand::CryptoRng + ?Sized>(
        self,
        ext: &Extension,
        rng: &mut R,
    ) -> Result<(GovEncoding<'a>, TreeMessage)> {
        let (vole, trees) = self.vole.on_extension(ext, rng)?;
        Ok((GovEncoding { job: self.job, vole }, trees))
    }
}

impl<'a> GovEncoding<'a> {
    /// The VOLE's compression (run after the tree message is out, while the bank does its own).
    pub fn finish(self) -> GovAwaitOkvs<'a> {
        GovAwaitOkvs { job: self.job, vole: self.vole.finish() }
    }
}

impl<'a> GovAwaitOkvs<'a> {
    /// Flight 2 in: the OKVS seed; the masked columns follow ([`GovUnmasking::on_masked_chunk`]).
    pub fn on_okvs_header(mut self, header: &OkvsHeader) -> GovUnmasking<'a> {
        let hasher = IdHasher::new(&self.job.sizes.params_hash, &header.seed, self.job.okvs);
        // Moved, not copied: no copy of `b` left behind.
        let keys = std::mem::take(&mut self.vole.b);
        let incoming = Chunks::new(MaskedChunk::KIND, self.job.okvs.columns(), 16);
        GovUnmasking { delta: Zeroizing::new(Gf128(self.vole.delta)), hasher, keys, incoming, job: self.job }
    }
}

impl<'a> GovUnmasking<'a> {
    /// The masked-OKVS frames still expected.
    pub fn incoming(&self) -> &Chunks {
        &self.incoming
    }

    /// Flight 3 in, one frame: `K = b + (P + a)·Δ` on its columns.
    pub fn on_masked_chunk(&mut self, chunk: &MaskedChunk) -> Result<()> {
        let start = self.incoming.accept(&chunk.0)?;
        unmask_chunk(&mut self.keys[start..start + chunk.0.len() / 16], &chunk.0, *self.delta);
        Ok(())
    }

    /// After the last masked frame: gov's tags in a fresh random order (flight 4 follows).
    pub fn tags<R: rand::CryptoRng + ?Sized>(self, rng: &mut R) -> Result<GovTagging<'a>> {
        if !self.incoming.is_complete() {
            return Err(incomplete("GovUnmasking::tags"));
        }
        let ids = self.job.ids;
        let mut order: Vec<u32> = (0..ids.len() as u32).collect();
        order.shuffle(rng);
        let tags = sender_tags(&self.hasher, &self.keys, *self.delta, ids, &order, &self.job.tag_key, self.job.t);
        Ok(GovTagging { job: self.job, order, tags })
    }
}

impl<'a> GovTagging<'a> {
    /// Flight 4 out, frame by frame.
    pub fn tag_chunks(&self) -> impl Iterator<Item = TagChunk> + '_ {
        let (n, t) = (self.tags.len(), self.job.t);
        (0..n)
            .step_by(CHUNK)
            .map(move |start| TagChunk(chunk(n, t, start, |s, out| encode_tags(&self.tags[s..], t, out))))
    }

    /// After the last tag frame.
    pub fn sent(self) -> GovAwaitVerdict<'a> {
        GovAwaitVerdict { job: self.job, order: self.order }
    }
}

impl GovAwaitVerdict<'_> {
    /// |Y|, to check the verdict's size before its positions are received.
    pub fn n_bank(&self) -> usize {
        self.job.sizes.n_bank
    }

    /// Flight 5 in: gov's output.
    pub fn on_verdict(self, msg: VerdictMessage) -> Result<PsiOutput> {
        gov_output(msg, &self.order, self.job.sizes.n_bank, self.job.params)
    }
}

/// The bank before `psi.hello`.
pub struct BankStart<'a> {
    ids: &'a [String],
    params: &'a PsiParams,
    hello: Hello,
}

/// The bank with its OKVS `store` (under `seed`), waiting for the VOLE's base answer.
pub struct BankVole<'a> {
    job: Job<'a>,
    seed: [u8; 32],
    store: Vec<u128>,
    vole: ReceiverStart,
}

/// The bank waiting for the VOLE's tree message.
pub struct BankAwaitTrees<'a> {
    job: Job<'a>,
    seed: [u8; 32],
    store: Vec<u128>,
    vole: ReceiverExtended,
}

/// The bank holding its VOLE output (`a`, `c`), sending the masked OKVS.
pub struct BankMasking<'a> {
    job: Job<'a>,
    seed: [u8; 32],
    store: Vec<u128>,
    vole: ReceiverOutput<Blocks>,
}

/// The bank with its own tags, receiving gov's.
pub struct BankAwaitTags<'a> {
    job: Job<'a>,
    own_tags: Vec<u128>,
    gov_tags: Vec<u128>,
    incoming: Chunks,
}

impl<'a> BankStart<'a> {
    /// Flight 0 out.
    pub fn new(ids: &'a [String], params: &'a PsiParams) -> Result<(BankStart<'a>, Hello)> {
        let hello = start(ids, params)?;
        Ok((BankStart { ids, params, hello: hello.clone() }, hello))
    }

    /// Flight 0 in, the VOLE's first flight out: checks gov's hello, then encodes the OKVS
    /// before the VOLE (it needs nothing from gov; its working memory is freed before the
    /// VOLE's is taken).
    pub fn on_hello<R: rand::CryptoRng + ?Sized>(self, peer: &Hello, rng: &mut R) -> Result<(BankVole<'a>, BaseOffer)> {
        let job = Job::new(self.ids, self.params, &self.hello, peer, Role::Bank)?;
        let (seed, store) = encode_with_retries(&job.sizes.params_hash, job.okvs, job.ids, rng)?;
        let (vole, offer) = ReceiverStart::start(Kind::Vole, job.okvs.columns(), rng)?;
        Ok((BankVole { job, seed, store, vole }, offer))
    }
}

impl<'a> BankVole<'a> {
    /// The VOLE's length `m` (OKVS columns).
    pub fn vole_len(&self) -> usize {
        self.job.okvs.columns()
    }

    pub fn on_base_answer<R: rand::CryptoRng + ?Sized>(
        self,
        answer: &BaseAnswer,
        rng: &mut R,
    ) -> Result<(BankAwaitTrees<'a>, Extension)> {
        let (vole, ext) = self.vole.on_base_answer(answer, rng)?;
        Ok((BankAwaitTrees { job: self.job, seed: self.seed, store: self.store, vole }, ext))
    }
}

impl<'a> BankAwaitTrees<'a> {
    /// The VOLE's last flight in, flight 2 out (the masked columns follow,
    /// [`BankMasking::masked_chunks`]).
    pub fn on_trees(self, trees: &TreeMessage) -> Result<(BankMasking<'a>, OkvsHeader)> {
        let vole = self.vole.on_trees_vole(trees)?;
        Ok((BankMasking { job: self.job, seed: self.seed, store: self.store, vole }, OkvsHeader { seed: self.seed }))
    }
}

impl<'a> BankMasking<'a> {
    /// Flight 3 out, frame by frame: `P + a`.
    pub fn masked_chunks(&self) -> impl Iterator<Item = MaskedChunk> + '_ {
        let m = self.job.okvs.columns();
        (0..m).step_by(CHUNK).map(move |start| {
            MaskedChunk(chunk(m, 16, start, |start, out| {
                for ((o, p), a) in out.chunks_exact_mut(16).zip(&self.store[start..]).zip(&self.vole.a[start..]) {
                    o.copy_from_slice(&(p ^ a).to_le_bytes());
                }
            }))
        })
    }

    /// After the last masked frame: the bank's own tags `T(decode(c, y), h(y))` (flight 4 in
    /// follows).
    pub fn sent(mut self) -> BankAwaitTags<'a> {
        drop(self.store);
        let c = std::mem::take(&mut self.vole.c);
        drop(self.vole);
        let hasher = IdHasher::new(&self.job.sizes.params_hash, &self.seed, self.job.okvs);
        let own_tags = receiver_tags(&hasher, &c, self.job.ids, &self.job.tag_key, self.job.t);
        drop(c);
        let n_gov = self.job.sizes.n_gov;
        let incoming = Chunks::new(TagChunk::KIND, n_gov, self.job.t);
        BankAwaitTags { job: self.job, own_tags, gov_tags: vec![0u128; n_gov], incoming }
    }
}

impl<'a> BankAwaitTags<'a> {
    /// The tag frames still expected.
    pub fn incoming(&self) -> &Chunks {
        &self.incoming
    }

    /// Flight 4 in, one frame.
    pub fn on_tag_chunk(&mut self, chunk: &TagChunk) -> Result<()> {
        let start = self.incoming.accept(&chunk.0)?;
        decode_tags(&chunk.0, self.job.t, &mut self.gov_tags[start..]);
        Ok(())
    }

    /// After the last tag frame, flight 5 out: the bank's own result (the refusal below
    /// `min_intersection`) and its verdict for gov. An `Err` (repeated IDs) sends no verdict.
    pub fn verdict(self) -> Result<(Result<PsiOutput>, VerdictMessage)> {
        if !self.incoming.is_complete() {
            return Err(incomplete("BankAwaitTags::verdict"));
        }
        let order: Vec<u32> = (0..self.job.ids.len() as u32).collect();
        bank_decides(self.gov_tags, self.own_tags, &order, self.job.params)
    }
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::channel::run_pair;
    use crate::psi::Verdict;
    use crate::{Error, PeerError};

    fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    fn params(reveal: PsiReveal) -> PsiParams {
        PsiParams { domain: "job-steps".into(), reveal, min_intersection: 0 }
    }

    /// Random distinct IDs: `common` in both sets, the rest in one only, each set shuffled.
    fn sets(seed: u64, only_gov: usize, only_bank: usize, common: usize) -> (Vec<String>, Vec<String>) {
        let mut r = rng(seed);
        let mut pool = HashSet::new();
        while pool.len() < only_gov + only_bank + common {
            pool.insert(format!("ID{:016X}", r.random::<u64>()));
        }
        let mut pool: Vec<String> = pool.into_iter().collect();
        pool.sort();
        pool.shuffle(&mut r);
        let (mut gov, mut bank) = (pool[..only_gov + common].to_vec(), pool[only_gov..].to_vec());
        gov.shuffle(&mut r);
        bank.shuffle(&mut r);
        (gov, bank)
    }

    /// Gov at its first masked-OKVS frame and the bank about to send it, by the steps alone.
    fn to_masking<'a>(
        gov_ids: &'a [String],
        bank_ids: &'a [String],
        p: &'a PsiParams,
        rg: &mut ChaCha20Rng,
        rb: &mut ChaCha20Rng,
    ) -> Result<(GovUnmasking<'a>, BankMasking<'a>)> {
        let (gov, gov_hello) = GovStart::new(gov_ids, p)?;
        let (bank, bank_hello) = BankStart::new(bank_ids, p)?;
        let gov = gov.on_hello(&Hello::decode(&bank_hello.encode()?)?)?;
        let (bank, offer) = bank.on_hello(&Hello::decode(&gov_hello.encode()?)?, rb)?;
        let (gov, answer) = gov.on_base_offer(&offer, rg)?;
        let (bank, ext) = bank.on_base_answer(&answer, rb)?;
        let (gov, trees) = gov.on_extension(&ext, rg)?;
        let (bank, header) = bank.on_trees(&trees)?;
        Ok((gov.finish().on_okvs_header(&OkvsHeader::decode(&header.encode()?)?), bank))
    }

    /// Both roles' outputs from the steps alone, every message through its decode.
    fn run_steps(gov_ids: &[String], bank_ids: &[String], p: &PsiParams, seeds: (u64, u64)) -> (PsiOutput, PsiOutput) {
        let (mut rg, mut rb) = (rng(seeds.0), rng(seeds.1));
        let (mut gov, bank) = to_masking(gov_ids, bank_ids, p, &mut rg, &mut rb).unwrap();
        for chunk in bank.masked_chunks() {
            gov.on_masked_chunk(&MaskedChunk::decode(chunk.0, gov.incoming()).unwrap()).unwrap();
        }
        let mut bank = bank.sent();
        let gov = gov.tags(&mut rg).unwrap();
        for chunk in gov.tag_chunks() {
            bank.on_tag_chunk(&TagChunk::decode(chunk.0, bank.incoming()).unwrap()).unwrap();
        }
        let (bank_out, msg) = bank.verdict().unwrap();
        let verdict = Verdict::decode(&msg.verdict.encode().unwrap()).unwrap();
        let gov_out = gov.sent().on_verdict(VerdictMessage { verdict, positions: msg.positions }).unwrap();
        (gov_out, bank_out.unwrap())
    }

    /// The steps driven directly give both parties the intersection computed here (aligned for
    /// `both`), and exactly the outputs of the channel-driven run with the same seeds. The large
    /// case sends the masked OKVS and the tags in two frames each.
    #[test]
    fn steps_without_a_channel_equal_the_channel_run() {
        for (seed, only_gov, only_bank, common) in [(1, 300, 200, 150), (2, 40_000, 30_000, 30_000)] {
            let (gov_ids, bank_ids) = sets(seed, only_gov, only_bank, common);
            let in_bank: HashSet<&str> = bank_ids.iter().map(String::as_str).collect();
            let expected: HashSet<&str> =
                gov_ids.iter().map(String::as_str).filter(|id| in_bank.contains(id)).collect();
            assert_eq!(expected.len(), common);
            for reveal in [PsiReveal::Both, PsiReveal::BankOnly] {
                let p = params(reveal);
                let (gov, bank) = run_steps(&gov_ids, &bank_ids, &p, (10 * seed, 10 * seed + 1));
                assert_eq!((gov.size, bank.size), (common, common));
                let bank_rows: Vec<&str> = bank.rows.as_ref().unwrap().iter().map(|&r| bank_ids[r].as_str()).collect();
                assert_eq!(bank_rows.iter().copied().collect::<HashSet<_>>(), expected);
                match reveal {
                    PsiReveal::Both => {
                        let gov_rows: Vec<&str> =
                            gov.rows.as_ref().unwrap().iter().map(|&r| gov_ids[r].as_str()).collect();
                        assert_eq!(gov_rows, bank_rows, "rows must be aligned");
                    }
                    _ => assert_eq!(gov.rows, None),
                }
                let (by_channel_gov, by_channel_bank) = run_pair(
                    |ch| intersect(ch, &gov_ids, &p, &mut rng(10 * seed)).unwrap(),
                    |ch| intersect(ch, &bank_ids, &p, &mut rng(10 * seed + 1)).unwrap(),
                );
                assert_eq!((gov, bank), (by_channel_gov, by_channel_bank), "seed {seed}, {reveal:?}");
            }
        }
    }

    fn is_peer_error<T>(r: Result<T>) -> bool {
        matches!(r, Err(Error::Peer(_)))
    }

    fn is_wrong_length<T>(r: Result<T>) -> bool {
        matches!(r, Err(Error::Peer(PeerError::WrongLength { .. })))
    }

    /// Every step and decode refuses a truncated or oversized message with a `PeerError`.
    #[test]
    fn truncated_or_oversized_messages_are_peer_errors() {
        let (gov_ids, bank_ids) = sets(3, 30, 20, 10);
        let p = params(PsiReveal::Both);
        let (_, hello) = GovStart::new(&gov_ids, &p).unwrap();
        let bytes = hello.encode().unwrap();
        assert!(is_peer_error(Hello::decode(&bytes[..bytes.len() - 1])), "short hello");
        assert!(is_peer_error(Hello::decode(&[bytes.clone(), vec![0]].concat())), "long hello");
        let bytes = OkvsHeader { seed: [7; 32] }.encode().unwrap();
        assert_eq!(bytes.len(), 32);
        assert!(is_peer_error(OkvsHeader::decode(&bytes[..31])), "short OKVS header");
        assert!(is_peer_error(OkvsHeader::decode(&[bytes, vec![0]].concat())), "long OKVS header");
        let bytes = Verdict::Positions(3).encode().unwrap();
        assert!(is_peer_error(Verdict::decode(&[bytes.clone(), vec![0]].concat())), "long verdict");
        assert!(is_peer_error(Verdict::decode(&bytes[..1])), "short verdict");

        // The VOLE's flights inside the PSI steps.
        let (gov, _) = GovStart::new(&gov_ids, &p).unwrap();
        let (bank, bank_hello) = BankStart::new(&bank_ids, &p).unwrap();
        let gov = gov.on_hello(&bank_hello).unwrap();
        assert!(is_peer_error(gov.on_base_offer(&BaseOffer(vec![1; 31]), &mut rng(4))), "short base offer");
        let (gov, gov_hello) = GovStart::new(&gov_ids, &p).unwrap();
        let gov = gov.on_hello(&bank_hello).unwrap();
        let (bank, offer) = bank.on_hello(&gov_hello, &mut rng(5)).unwrap();
        let (gov, answer) = gov.on_base_offer(&offer, &mut rng(6)).unwrap();
        let (bank, ext) = bank.on_base_answer(&answer, &mut rng(7)).unwrap();
        let (_, trees) = gov.on_extension(&ext, &mut rng(8)).unwrap();
        assert!(is_wrong_length(bank.on_trees(&TreeMessage(trees.0[1..].to_vec()))), "short tree message");

        // Masked OKVS frames: short, long, and one after the last.
        let (mut gov, bank) = to_masking(&gov_ids, &bank_ids, &p, &mut rng(9), &mut rng(10)).unwrap();
        let chunk = bank.masked_chunks().next().unwrap().0;
        assert_eq!(bank.masked_chunks().count(), 1);
        assert!(is_wrong_length(MaskedChunk::decode(chunk[16..].to_vec(), gov.incoming())), "short masked chunk");
        assert!(is_wrong_length(MaskedChunk::decode([&chunk[..], &[0; 16]].concat(), gov.incoming())), "long");
        assert!(is_wrong_length(gov.on_masked_chunk(&MaskedChunk(chunk[..chunk.len() - 1].to_vec()))), "typed");
        gov.on_masked_chunk(&MaskedChunk(chunk.clone())).unwrap();
        assert!(is_wrong_length(gov.on_masked_chunk(&MaskedChunk(chunk))), "a masked chunk after the last");

        // Tag frames, and the positions of the verdict.
        let mut bank = bank.sent();
        let gov = gov.tags(&mut rng(11)).unwrap();
        let tags = gov.tag_chunks().next().unwrap().0;
        assert!(is_wrong_length(TagChunk::decode(tags[1..].to_vec(), bank.incoming())), "short tag chunk");
        assert!(is_wrong_length(bank.on_tag_chunk(&TagChunk([&tags[..], &[0]].concat()))), "long tag chunk, typed");
        bank.on_tag_chunk(&TagChunk(tags.clone())).unwrap();
        assert!(is_wrong_length(bank.on_tag_chunk(&TagChunk(tags))), "a tag chunk after the last");
        let (_, msg) = bank.verdict().unwrap();
        assert_eq!(msg.verdict, Verdict::Positions(10));
        let short = VerdictMessage { verdict: msg.verdict.clone(), positions: msg.positions[4..].to_vec() };
        assert!(is_wrong_length(gov.sent().on_verdict(short)), "short positions");
    }
}
