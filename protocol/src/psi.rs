//! ECDH private set intersection over Ristretto255, with an aligned output order.
//!
//! # Protocol (gov holds X, bank holds Y; `a`, `b` fresh secret scalars per job)
//! 0. Both send `psi.hello` = (hash of [`PsiParams`] and protocol constants, own set size). Differing
//!    hashes abort on both sides; so does `min(|X|, |Y|) < min_intersection` (both can tell).
//! 1. gov → bank: `a·H(x)` for x ∈ X, in a fresh random order (chunks of [`CHUNK`] points).
//!    bank computes `T(b·a·H(x))` for each, where `T` = first `t` bytes of a keyed BLAKE3 hash.
//! 2. bank → gov: `b·H(y)` for y ∈ Y, in a fresh random order.
//! 3. gov → bank: `T(a·b·H(y))` for each received point, in the bank's order (`both`,
//!    `bank_only`), or re-shuffled by gov (`size_only`).
//! 4. bank matches the two tag lists. The aligned order is ascending tag order (a pseudorandom
//!    order neither party controls). Below `min_intersection` bank sends a refusal and both fail.
//!    Otherwise bank sends the size and, for `both`, gov's positions (in gov's step-1 order) of the
//!    matched elements in aligned order.
//!
//! `H` = `RistrettoPoint::hash_from_bytes::<Sha512>(label ‖ len ‖ domain ‖ len ‖ id)` with u64 LE
//! lengths. `t = ceil((39 + 2·ceil(log2(|X|+|Y|))) / 8)` bytes, so any two of all |X|+|Y| elements
//! share a tag with probability ≤ 2^-40 (false matches and ambiguous matches alike).
//! Bytes on the wire ≈ 32·|X| + (32 + t)·|Y| + 4·|X∩Y| (positions only for `both`).
//!
//! # What each party learns (semi-honest, DDH in Ristretto255, `H` and `T` as random oracles)
//! - Always, both: both set sizes |X| and |Y|, and whether the parameters match.
//! - `both`: both learn |X∩Y|; gov learns which of its IDs are in X∩Y, bank which of its IDs are;
//!   both learn the aligned order of the intersection. Nothing about IDs outside X∩Y.
//! - `bank_only`: bank learns X∩Y (its rows) and |X∩Y|; gov learns only |X∩Y|.
//! - `size_only`: both learn only |X∩Y| (gov re-shuffles the bank's tags, so bank cannot tell
//!   which of its own elements matched).
//! - On refusal (`|X∩Y| < min_intersection`) gov learns only that fact; bank computed |X∩Y|
//!   internally but neither returns it.
//!
//! Duplicate IDs in either input are refused by the bank (they would show as equal tags); use
//! [`crate::ids::prepare_ids`] first.
//!
//! Memory: points stream in chunks of [`CHUNK`]; beyond the input strings only compact arrays
//! stay: gov ≈ 4 B per own and 16 B per bank element (+ 8 B per matched row); bank at most
//! ≈ 48 B per element of both sets while sorting tags (under 1 GB for 10M IDs per side). Arrays
//! sized by the peer's announced count (capped at [`MAX_SET_SIZE`]) are zero pages until the
//! peer's data actually arrives.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::{Channel, Error, InputError, PeerError, Result, Role, TransportError};

/// Largest set either party may bring (and the cap on the peer's announced size).
pub const MAX_SET_SIZE: usize = 1 << 28;
/// Elements per frame for points and tags (part of the protocol: both sides must agree).
pub const CHUNK: usize = 1 << 16;
/// Points per batch compression / rayon task.
const BATCH: usize = 512;
/// Protocol label: input of the hash-to-group and the parameter hash.
const LABEL: &[u8] = b"tandem/psi/ecdh-ristretto255-sha512/v1";
/// BLAKE3 key-derivation context for the match tags.
const TAG_CONTEXT: &str = "tandem 2026 psi match tag v1";
/// Statistical security against false or ambiguous matches.
const STAT_BITS: u32 = 40;

/// Who learns the intersection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsiReveal {
    /// Both parties learn the intersection rows (aligned).
    Both,
    /// The bank learns the intersection rows; gov learns only the size.
    BankOnly,
    /// Both learn only the size.
    SizeOnly,
}

impl PsiReveal {
    /// The policy rule (`policy.reveals`, a job's `reveal`) that names this mode.
    pub const fn rule(self) -> &'static str {
        match self {
            PsiReveal::Both => "intersection_ids",
            PsiReveal::BankOnly => "intersection_ids_to_bank",
            PsiReveal::SizeOnly => "intersection_size",
        }
    }
}

/// Parameters both parties must agree on (checked by hash in the first message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsiParams {
    /// Per-job domain separator (e.g. the job id): points of different jobs are unrelated.
    pub domain: String,
    pub reveal: PsiReveal,
    /// Refuse (both sides) when the intersection is smaller than this.
    pub min_intersection: u64,
}

/// One party's PSI result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsiOutput {
    /// |X∩Y|.
    pub size: usize,
    /// Indices into the caller's `ids` of the intersection, in the aligned order shared by both
    /// parties (row i here and row i at the peer are the same entity); `None` when this party may
    /// only learn the size.
    pub rows: Option<Vec<usize>>,
}

/// Step 0 of both protocols (frame `psi.hello`, both ways, bincode, 33..=41 bytes): the hash of
/// the parameters and protocol constants, and the sender's set size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    params_hash: [u8; 32],
    set_size: u64,
}

/// The bank's last message (frame `psi.verdict`, bincode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    BelowMinimum,
    Size(u64),
    /// Followed by `psi.positions`: that many u32 LE positions in gov's step-1 order.
    Positions(u64),
}

/// The bank's last flight: the [`Verdict`] and, for [`Verdict::Positions`], the positions
/// (frame `psi.positions`, bulk, 4 bytes per position; empty otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictMessage {
    pub verdict: Verdict,
    pub positions: Vec<u8>,
}

/// Runs PSI on `ids` (normalised and unique, see [`crate::ids::prepare_ids`]) with the peer.
/// `rng` must be a CSPRNG (production: OS-seeded); it draws the secret scalar and the shuffles.
pub fn intersect<R: rand::CryptoRng + ?Sized>(
    ch: &mut Channel,
    ids: &[String],
    params: &PsiParams,
    rng: &mut R,
) -> Result<PsiOutput> {
    abort_on_error(ch, |ch| run(ch, ids, params, rng))
}

/// Which PSI protocol a job runs. Both give the same [`PsiOutput`] for the same inputs and
/// reveal mode (the aligned order differs: it is pseudorandom either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsiProtocol {
    /// ECDH over Ristretto255 ([`intersect`]): every reveal mode.
    Ecdh,
    /// VOLE-based PSI with an OKVS ([`crate::psi_vole::intersect`]): faster, fewer bytes; reveal
    /// modes `both` and `bank_only` (the OPRF receiver always learns which of its IDs matched).
    Vole,
}

impl PsiProtocol {
    /// The default for a reveal mode: VOLE where it applies, ECDH for `size_only`.
    pub fn default_for(reveal: PsiReveal) -> PsiProtocol {
        match reveal {
            PsiReveal::Both | PsiReveal::BankOnly => PsiProtocol::Vole,
            PsiReveal::SizeOnly => PsiProtocol::Ecdh,
        }
    }

    /// Runs this protocol (see [`intersect`] and [`crate::psi_vole::intersect`]).
    pub fn intersect<R: rand::CryptoRng + ?Sized>(
        self,
        ch: &mut Channel,
        ids: &[String],
        params: &PsiParams,
        rng: &mut R,
    ) -> Result<PsiOutput> {
        match self {
            PsiProtocol::Ecdh => intersect(ch, ids, params, rng),
            PsiProtocol::Vole => crate::psi_vole::intersect(ch, ids, params, rng),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PsiProtocol::Ecdh => "ecdh",
            PsiProtocol::Vole => "vole",
        }
    }
}

/// Runs `f` in phase `psi`; a local failure is sent to the peer as an abort naming only its
/// kind ([`Error::peer_notice`]), never its message.
pub(crate) fn abort_on_error<T>(ch: &mut Channel, f: impl FnOnce(&mut Channel) -> Result<T>) -> Result<T> {
    ch.set_phase("psi");
    let result = f(ch);
    if let Err(e) = &result
        && !matches!(
            e,
            Error::PeerAbort(_)
                | Error::Transport(TransportError::Closed(_))
                | Error::Transport(TransportError::Timeout(_))
        )
    {
        ch.abort(&format!("psi: {}", e.peer_notice()));
    }
    result
}

/// What the `psi.hello` exchange establishes.
pub(crate) struct Sizes {
    pub n_gov: usize,
    pub n_bank: usize,
    pub params_hash: [u8; 32],
}

/// Step 0 of both protocols: exchange `psi.hello` and check it ([`Hello::check`]).
pub(crate) fn hello(ch: &mut Channel, own_size: usize, params: &PsiParams, label: &[u8]) -> Result<Sizes> {
    let own = Hello::new(own_size, params, label)?;
    let peer = swap_hello(ch, &own)?;
    own.check(&peer, ch.role(), params, label)
}

/// Sends our hello and receives the peer's.
pub(crate) fn swap_hello(ch: &mut Channel, own: &Hello) -> Result<Hello> {
    ch.send_frame(Hello::KIND, own.encode()?)?;
    Hello::decode(&ch.recv_frame(Hello::KIND)?)
}

impl Hello {
    pub const KIND: &'static str = "psi.hello";

    /// This party's hello under the protocol `label`; a set above [`MAX_SET_SIZE`] is refused.
    pub(crate) fn new(own_size: usize, params: &PsiParams, label: &[u8]) -> Result<Hello> {
        if own_size > MAX_SET_SIZE {
            return Err(InputError::TooManyIds { n: own_size, limit: MAX_SET_SIZE }.into());
        }
        Ok(Hello { params_hash: params_hash_with(label, params), set_size: own_size as u64 })
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        crate::channel::encode(Self::KIND, self)
    }

    /// Decodes the peer's hello; any other length or content is a [`PeerError`].
    pub fn decode(bytes: &[u8]) -> Result<Hello> {
        crate::channel::decode(Self::KIND, bytes)
    }

    /// Checks the peer's hello against ours (`self`, as `role`): the hashes must match and the
    /// announced size be within limits; then applies the `min_intersection` rule to the sizes.
    pub(crate) fn check(&self, peer: &Hello, role: Role, params: &PsiParams, label: &[u8]) -> Result<Sizes> {
        if peer.params_hash != self.params_hash {
            return Err(Error::Mismatch {
                what: "PSI parameters",
                detail: format!(
                    "ours: protocol {}, domain '{}', reveal {:?}, min_intersection {}; both nodes must run the same job \
                     under the same PSI policy and psi_protocol: compare job id, job params and policies",
                    String::from_utf8_lossy(label),
                    params.domain,
                    params.reveal,
                    params.min_intersection
                ),
            });
        }
        if peer.set_size > MAX_SET_SIZE as u64 {
            return Err(PeerError::BadCount {
                what: "'psi.hello' set size".into(),
                got: peer.set_size,
                allowed: format!("up to {MAX_SET_SIZE} IDs"),
            }
            .into());
        }
        let (own, theirs) = (self.set_size as usize, peer.set_size as usize);
        let (n_gov, n_bank) = match role {
            Role::Gov => (own, theirs),
            Role::Bank => (theirs, own),
        };
        if (n_gov.min(n_bank) as u64) < params.min_intersection {
            return Err(refusal(params, &format!("the sets have {n_gov} (gov) and {n_bank} (bank) IDs, so")));
        }
        Ok(Sizes { n_gov, n_bank, params_hash: self.params_hash })
    }
}

fn run<R: rand::CryptoRng + ?Sized>(
    ch: &mut Channel,
    ids: &[String],
    params: &PsiParams,
    rng: &mut R,
) -> Result<PsiOutput> {
    let me = ch.role();
    let Sizes { n_gov, n_bank, params_hash } = hello(ch, ids.len(), params, LABEL)?;
    let job = Job {
        key_half: half_scalar(rng),
        prefix: hash_prefix(&params.domain),
        tag_key: blake3::derive_key(TAG_CONTEXT, &params_hash),
        tag_len: tag_len(n_gov + n_bank),
    };
    let mut order: Zeroizing<Vec<u32>> = Zeroizing::new((0..ids.len() as u32).collect());
    order.shuffle(rng);
    match me {
        Role::Gov => run_gov(ch, ids, &order, n_bank, params, &job, rng),
        Role::Bank => run_bank(ch, ids, &order, n_gov, params, &job),
    }
}

/// Per-job secrets and constants.
struct Job {
    /// `k·2⁻¹` for the secret key `k`: `double_and_compress_batch` of `k·2⁻¹·P` gives `k·P`.
    key_half: Zeroizing<Scalar>,
    /// SHA-512 state after absorbing the label and the domain.
    prefix: Sha512,
    tag_key: [u8; 32],
    tag_len: usize,
}

fn run_gov<R: rand::CryptoRng + ?Sized>(
    ch: &mut Channel,
    ids: &[String],
    order: &[u32],
    n_bank: usize,
    params: &PsiParams,
    job: &Job,
    rng: &mut R,
) -> Result<PsiOutput> {
    send_blinded_ids(ch, "psi.gov_points", ids, order, job)?;
    let mut tags = recv_points_as_tags(ch, "psi.bank_points", n_bank, job)?;
    if params.reveal == PsiReveal::SizeOnly {
        tags.shuffle(rng);
    }
    send_tags(ch, "psi.tags", &tags, job.tag_len)?;
    drop(tags);
    gov_verdict(ch, order, n_bank, params)
}

/// Gov's last step (both protocols): receive the bank's [`VerdictMessage`] and map it to gov's
/// rows ([`gov_output`]).
pub(crate) fn gov_verdict(ch: &mut Channel, order: &[u32], n_bank: usize, params: &PsiParams) -> Result<PsiOutput> {
    let msg = recv_verdict(ch, order.len(), n_bank, params)?;
    gov_output(msg, order, n_bank, params)
}

/// Receives the bank's verdict, and the positions only after their count was checked.
pub(crate) fn recv_verdict(
    ch: &mut Channel,
    n_gov: usize,
    n_bank: usize,
    params: &PsiParams,
) -> Result<VerdictMessage> {
    let verdict = Verdict::decode(&ch.recv_frame(Verdict::KIND)?)?;
    let positions = match verdict.positions_len(n_gov, n_bank, params)? {
        Some(len) => ch.recv_bulk_exact(Verdict::POSITIONS_KIND, len)?,
        None => Vec::new(),
    };
    Ok(VerdictMessage { verdict, positions })
}

impl Verdict {
    pub const KIND: &'static str = "psi.verdict";
    /// Frame kind of the positions that follow [`Verdict::Positions`].
    pub const POSITIONS_KIND: &'static str = "psi.positions";

    pub fn encode(&self) -> Result<Vec<u8>> {
        crate::channel::encode(Self::KIND, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Verdict> {
        crate::channel::decode(Self::KIND, bytes)
    }

    /// The intersection size this verdict reports, checked against the set sizes, the
    /// `min_intersection` rule and the reveal mode (gov's side; a refusal is an error).
    fn checked_size(&self, n_gov: usize, n_bank: usize, params: &PsiParams) -> Result<usize> {
        let max_size = n_gov.min(n_bank) as u64;
        let k = match (self, params.reveal) {
            (Verdict::BelowMinimum, _) => return Err(refusal(params, "")),
            (Verdict::Positions(k), PsiReveal::Both)
            | (Verdict::Size(k), PsiReveal::BankOnly | PsiReveal::SizeOnly) => *k,
            (v, reveal) => {
                return Err(PeerError::Inconsistent {
                    what: format!("bank sent verdict {v:?}, which does not fit reveal mode {reveal:?}"),
                }
                .into());
            }
        };
        if k > max_size || k < params.min_intersection {
            return Err(PeerError::OutOfRange {
                what: "the bank's reported intersection size".into(),
                got: k,
                range: format!("{}..={max_size}", params.min_intersection),
            }
            .into());
        }
        Ok(k as usize)
    }

    /// Bytes of `psi.positions` that must follow this verdict (`None`: no such frame).
    pub(crate) fn positions_len(&self, n_gov: usize, n_bank: usize, params: &PsiParams) -> Result<Option<u64>> {
        let k = self.checked_size(n_gov, n_bank, params)?;
        Ok(matches!(self, Verdict::Positions(_)).then_some(k as u64 * 4))
    }
}

/// Gov's output from the bank's verdict: the size, and for `both` its rows `order[p]` for the
/// positions `p` in the aligned order (each below |X| and distinct, else a [`PeerError`]).
pub(crate) fn gov_output(msg: VerdictMessage, order: &[u32], n_bank: usize, params: &PsiParams) -> Result<PsiOutput> {
    let n_gov = order.len();
    let k = msg.verdict.checked_size(n_gov, n_bank, params)?;
    if !matches!(msg.verdict, Verdict::Positions(_)) {
        return Ok(PsiOutput { size: k, rows: None });
    }
    if msg.positions.len() != 4 * k {
        return Err(PeerError::wrong_bytes(
            format!("'{}'", Verdict::POSITIONS_KIND),
            4 * k as u64,
            msg.positions.len() as u64,
        )
        .into());
    }
    let mut seen = vec![0u64; n_gov.div_ceil(64)];
    let mut rows = Vec::with_capacity(k);
    for p in msg.positions.chunks_exact(4) {
        let p = u32::from_le_bytes(p.try_into().expect("4 bytes")) as usize;
        if p >= n_gov || seen[p / 64] & (1 << (p % 64)) != 0 {
            return Err(PeerError::OutOfRange {
                what: "a position the bank sent".into(),
                got: p as u64,
                range: format!("0..{n_gov}"),
            }
            .into());
        }
        seen[p / 64] |= 1 << (p % 64);
        rows.push(order[p] as usize);
    }
    Ok(PsiOutput { size: k, rows: Some(rows) })
}

fn run_bank(
    ch: &mut Channel,
    ids: &[String],
    order: &[u32],
    n_gov: usize,
    params: &PsiParams,
    job: &Job,
) -> Result<PsiOutput> {
    let gov_tags = recv_points_as_tags(ch, "psi.gov_points", n_gov, job)?;
    send_blinded_ids(ch, "psi.bank_points", ids, order, job)?;
    let own_tags = recv_tags(ch, "psi.tags", ids.len(), job.tag_len)?;
    bank_verdict(ch, gov_tags, own_tags, order, params)
}

/// The bank's last step (both protocols): [`bank_decides`], then sends the verdict.
pub(crate) fn bank_verdict(
    ch: &mut Channel,
    gov_tags: Vec<u128>,
    own_tags: Vec<u128>,
    order: &[u32],
    params: &PsiParams,
) -> Result<PsiOutput> {
    let (output, msg) = bank_decides(gov_tags, own_tags, order, params)?;
    send_verdict(ch, &msg)?;
    output
}

/// Sends `psi.verdict` and, for [`Verdict::Positions`], `psi.positions`.
pub(crate) fn send_verdict(ch: &mut Channel, msg: &VerdictMessage) -> Result<()> {
    ch.send_frame(Verdict::KIND, msg.verdict.encode()?)?;
    if matches!(msg.verdict, Verdict::Positions(_)) {
        ch.send_bulk(Verdict::POSITIONS_KIND, &msg.positions)?;
    }
    Ok(())
}

/// The bank's decision (both protocols): match gov's tags (in gov's sent order) against the
/// bank's own (in the bank's `order`), apply `min_intersection` and build the [`VerdictMessage`]
/// for the reveal mode. Returns the bank's own result (the refusal below `min_intersection`) and
/// the message to send; an `Err` (equal tags within one side: repeated IDs) sends no verdict.
pub(crate) fn bank_decides(
    gov_tags: Vec<u128>,
    own_tags: Vec<u128>,
    order: &[u32],
    params: &PsiParams,
) -> Result<(Result<PsiOutput>, VerdictMessage)> {
    let gov = sorted_unique(gov_tags).ok_or_else(|| PeerError::DuplicateTag {
        what: format!("'psi.tags' (the gov's PSI input contains repeated IDs, or two tags collide: probability below 2^-{STAT_BITS})"),
    })?;
    let bank = sorted_unique(own_tags).ok_or(InputError::RepeatedIds { who: "the bank" })?;
    let matched = merge_matches(&gov, &bank);
    drop((gov, bank));

    let k = matched.len();
    let message = |verdict| VerdictMessage { verdict, positions: Vec::new() };
    if (k as u64) < params.min_intersection {
        return Ok((Err(refusal(params, "")), message(Verdict::BelowMinimum)));
    }
    let rows = || Some(matched.iter().map(|&(_, b)| order[b as usize] as usize).collect());
    Ok(match params.reveal {
        PsiReveal::Both => {
            let positions = matched.iter().flat_map(|&(g, _)| g.to_le_bytes()).collect();
            (
                Ok(PsiOutput { size: k, rows: rows() }),
                VerdictMessage { verdict: Verdict::Positions(k as u64), positions },
            )
        }
        PsiReveal::BankOnly => (Ok(PsiOutput { size: k, rows: rows() }), message(Verdict::Size(k as u64))),
        PsiReveal::SizeOnly => (Ok(PsiOutput { size: k, rows: None }), message(Verdict::Size(k as u64))),
    })
}

/// The refusal both parties report when the `min_intersection` rule fails.
fn refusal(params: &PsiParams, why: &str) -> Error {
    let why =
        if why.is_empty() { "the intersection is smaller than".to_string() } else { format!("{why} it cannot reach") };
    InputError::BelowMinimum { min: params.min_intersection, why }.into()
}

/// Hash binding the protocol `label` and everything both parties must agree on.
fn params_hash_with(label: &[u8], params: &PsiParams) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&(label.len() as u64).to_le_bytes()).update(label);
    h.update(&(params.domain.len() as u64).to_le_bytes()).update(params.domain.as_bytes());
    h.update(&[params.reveal as u8]);
    h.update(&params.min_intersection.to_le_bytes());
    h.update(&(CHUNK as u64).to_le_bytes());
    h.update(&STAT_BITS.to_le_bytes());
    *h.finalize().as_bytes()
}

/// SHA-512 state over `label ‖ len(domain) ‖ domain` (lengths u64 LE).
/// Hash state over the protocol label and the domain separator, shared by every `H(id)` of a job.
pub(crate) fn hash_prefix(domain: &str) -> Sha512 {
    let mut h = Sha512::new();
    h.update(LABEL);
    h.update((domain.len() as u64).to_le_bytes());
    h.update(domain.as_bytes());
    h
}

/// `H(id)`: equals `RistrettoPoint::hash_from_bytes::<Sha512>(label ‖ len ‖ domain ‖ len ‖ id)`,
/// continuing from the cached prefix state (no allocation).
pub(crate) fn hash_to_group(prefix: &Sha512, id: &str) -> RistrettoPoint {
    let mut h = prefix.clone();
    h.update((id.len() as u64).to_le_bytes());
    h.update(id.as_bytes());
    RistrettoPoint::from_hash(h)
}

fn half_scalar<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<Scalar> {
    let key = Zeroizing::new(Scalar::random(rng));
    Zeroizing::new(*key * Scalar::from(2u64).invert())
}

/// Tag length in bytes for `total` elements on both sides (40-bit bound over all pairs).
pub fn tag_len(total: usize) -> usize {
    let ceil_log2 = if total <= 1 { 0 } else { usize::BITS - (total - 1).leading_zeros() };
    (STAT_BITS + 2 * ceil_log2 - 1).div_ceil(8) as usize
}

fn tag(key: &[u8; 32], point: &CompressedRistretto, len: usize) -> u128 {
    let mut t = [0u8; 16];
    t[..len].copy_from_slice(&blake3::keyed_hash(key, point.as_bytes()).as_bytes()[..len]);
    u128::from_le_bytes(t)
}

/// Sends `k·H(ids[order[i]])` for all i, compressed, in frames of [`CHUNK`] points.
fn send_blinded_ids(ch: &mut Channel, kind: &str, ids: &[String], order: &[u32], job: &Job) -> Result<()> {
    send_chunks(ch, kind, order.len(), 32, |start, out| {
        let idx = &order[start..start + out.len() / 32];
        out.par_chunks_mut(BATCH * 32).zip(idx.par_chunks(BATCH)).for_each(|(out, idx)| {
            let points: Vec<RistrettoPoint> =
                idx.iter().map(|&i| *job.key_half * hash_to_group(&job.prefix, &ids[i as usize])).collect();
            for (o, c) in out.chunks_exact_mut(32).zip(RistrettoPoint::double_and_compress_batch(&points)) {
                o.copy_from_slice(c.as_bytes());
            }
        });
    })
}

/// Receives `n` peer points, raises each to the own key and returns their tags in arrival order.
fn recv_points_as_tags(ch: &mut Channel, kind: &'static str, n: usize, job: &Job) -> Result<Vec<u128>> {
    let mut tags = vec![0u128; n];
    recv_chunks(ch, kind, n, 32, |start, bytes| {
        let out = &mut tags[start..start + bytes.len() / 32];
        out.par_chunks_mut(BATCH).zip(bytes.par_chunks(BATCH * 32)).enumerate().try_for_each(|(b, (out, encs))| {
            let mut points = Vec::with_capacity(out.len());
            for (i, enc) in encs.chunks_exact(32).enumerate() {
                let enc = CompressedRistretto(enc.try_into().expect("32-byte chunk"));
                let p = enc.decompress().ok_or_else(|| PeerError::NotOnCurve {
                    what: format!("'{kind}' element {}", start + b * BATCH + i),
                })?;
                points.push(*job.key_half * p);
            }
            for (o, c) in out.iter_mut().zip(RistrettoPoint::double_and_compress_batch(&points)) {
                *o = tag(&job.tag_key, &c, job.tag_len);
            }
            Ok(())
        })
    })?;
    Ok(tags)
}

/// Sends `tags` truncated to `t` bytes each, in frames of [`CHUNK`].
pub(crate) fn send_tags(ch: &mut Channel, kind: &str, tags: &[u128], t: usize) -> Result<()> {
    send_chunks(ch, kind, tags.len(), t, |start, out| encode_tags(&tags[start..], t, out))
}

/// Writes tags truncated to `t` bytes each into `out` (as many as fit).
pub(crate) fn encode_tags(tags: &[u128], t: usize, out: &mut [u8]) {
    for (o, tag) in out.chunks_exact_mut(t).zip(tags) {
        o.copy_from_slice(&tag.to_le_bytes()[..t]);
    }
}

/// Reads `t`-byte tags from `bytes` into `tags` (as many as fit).
pub(crate) fn decode_tags(bytes: &[u8], t: usize, tags: &mut [u128]) {
    for (tag, b) in tags.iter_mut().zip(bytes.chunks_exact(t)) {
        let mut full = [0u8; 16];
        full[..t].copy_from_slice(b);
        *tag = u128::from_le_bytes(full);
    }
}

/// Receives `n` tags of `t` bytes sent by [`send_tags`].
pub(crate) fn recv_tags(ch: &mut Channel, kind: &'static str, n: usize, t: usize) -> Result<Vec<u128>> {
    let mut tags = vec![0u128; n];
    recv_chunks(ch, kind, n, t, |start, bytes| {
        decode_tags(bytes, t, &mut tags[start..]);
        Ok(())
    })?;
    Ok(tags)
}

/// Sends `count` items of `item_len` bytes in frames of [`CHUNK`] items; `fill(start, buf)` writes
/// items `start..` into `buf`.
pub(crate) fn send_chunks(
    ch: &mut Channel,
    kind: &str,
    count: usize,
    item_len: usize,
    mut fill: impl FnMut(usize, &mut [u8]),
) -> Result<()> {
    for start in (0..count).step_by(CHUNK) {
        ch.send_frame(kind, chunk(count, item_len, start, &mut fill))?;
    }
    Ok(())
}

/// The frame of items `start..` (at most [`CHUNK`]) of `count` items of `item_len` bytes,
/// written by `fill(start, buf)`.
pub(crate) fn chunk(count: usize, item_len: usize, start: usize, fill: impl FnOnce(usize, &mut [u8])) -> Vec<u8> {
    let mut buf = vec![0u8; CHUNK.min(count - start) * item_len];
    fill(start, &mut buf);
    buf
}

/// Receives exactly `count` items of `item_len` bytes sent by [`send_chunks`]; any other frame
/// size is a protocol error.
pub(crate) fn recv_chunks(
    ch: &mut Channel,
    kind: &'static str,
    count: usize,
    item_len: usize,
    mut take: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut flight = Chunks::new(kind, count, item_len);
    while !flight.is_complete() {
        let bytes = ch.recv_frame(kind)?;
        take(flight.accept(&bytes)?, &bytes)?;
    }
    Ok(())
}

/// The receiver's progress through a flight of `count` items of `item_len` bytes sent in frames
/// of [`CHUNK`] items (the last one the rest).
#[derive(Clone, Copy, Debug)]
pub struct Chunks {
    kind: &'static str,
    count: usize,
    item_len: usize,
    /// First item of the next frame.
    next: usize,
}

impl Chunks {
    pub(crate) fn new(kind: &'static str, count: usize, item_len: usize) -> Chunks {
        Chunks { kind, count, item_len, next: 0 }
    }

    /// Bytes the next frame must have (`None`: the flight is complete).
    pub fn next_len(&self) -> Option<usize> {
        (!self.is_complete()).then(|| CHUNK.min(self.count - self.next) * self.item_len)
    }

    pub fn is_complete(&self) -> bool {
        self.next >= self.count
    }

    /// Checks that `len` is the next frame's length (any other, or a frame after the last, is
    /// a [`PeerError`]) and returns the index of its first item.
    pub fn check(&self, len: usize) -> Result<usize> {
        let expected = self.next_len().unwrap_or(0);
        if len != expected || self.is_complete() {
            let items = expected / self.item_len;
            return Err(PeerError::wrong_bytes(
                format!("'{}' frame at element {} ({items} elements of {} bytes)", self.kind, self.next, self.item_len),
                expected as u64,
                len as u64,
            )
            .into());
        }
        Ok(self.next)
    }

    /// [`Chunks::check`], then expects the frame after.
    pub(crate) fn accept(&mut self, bytes: &[u8]) -> Result<usize> {
        let start = self.check(bytes.len())?;
        self.next += CHUNK;
        Ok(start)
    }
}

/// `(tag, position)` pairs sorted by tag; equal tags (repeated IDs, or a collision with
/// probability ≤ 2^-40) are refused with `what`.
fn sorted_unique(tags: Vec<u128>) -> Option<Vec<(u128, u32)>> {
    let mut pairs: Vec<(u128, u32)> = tags.into_iter().zip(0u32..).collect();
    pairs.par_sort_unstable();
    if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    Some(pairs)
}

/// Positions `(gov, bank)` of equal tags, in ascending tag order (the aligned order).
fn merge_matches(gov: &[(u128, u32)], bank: &[(u128, u32)]) -> Vec<(u32, u32)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < gov.len() && j < bank.len() {
        match gov[i].0.cmp(&bank[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push((gov[i].1, bank[j].1));
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The minimum elliptic-curve work of ECDH-PSI for two sets of `n_per_party` IDs, both parties
/// together: per element one hash-to-group and two variable-base scalar multiplications, on the
/// rayon pool, without compression, hashing of tags or transfer. Returns the elements processed
/// (2·`n_per_party`). Benches time it next to [`intersect`] to report PSI time / EC cost.
pub fn ec_reference_work(n_per_party: usize) -> usize {
    let k1 = Scalar::from_bytes_mod_order_wide(&[7u8; 64]);
    let k2 = Scalar::from_bytes_mod_order_wide(&[9u8; 64]);
    (0..2 * n_per_party as u64)
        .into_par_iter()
        .map(|i| {
            let p = RistrettoPoint::hash_from_bytes::<Sha512>(&i.to_le_bytes());
            std::hint::black_box(p * k1 * k2);
            1
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::run_pair;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn params() -> PsiParams {
        PsiParams { domain: "job-7".into(), reveal: PsiReveal::Both, min_intersection: 0 }
    }

    fn ids(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn hash_to_group_equals_hash_from_bytes_over_the_length_prefixed_input() {
        let (domain, id) = ("job-7", "91350100M000100Y43");
        let mut input = LABEL.to_vec();
        input.extend_from_slice(&(domain.len() as u64).to_le_bytes());
        input.extend_from_slice(domain.as_bytes());
        input.extend_from_slice(&(id.len() as u64).to_le_bytes());
        input.extend_from_slice(id.as_bytes());
        assert_eq!(hash_to_group(&hash_prefix(domain), id), RistrettoPoint::hash_from_bytes::<Sha512>(&input));
        assert_ne!(hash_to_group(&hash_prefix("job-8"), id), hash_to_group(&hash_prefix(domain), id));
    }

    /// Known answers computed once by this code. A change to any of them is a format break: a
    /// node with the change no longer matches peers (or transcripts) of the previous version.
    #[test]
    fn known_answers_of_psi_hashes() {
        let prefix = hash_prefix("job-7");
        let point = hash_to_group(&prefix, "91350100M000100Y43").compress();
        assert_eq!(hex::encode(point.as_bytes()), "64359d9903ff36910158d782f9a9d3d2dde2008a1a1121ebaeed035295f3ee46");
        assert_eq!(
            hex::encode(hash_to_group(&prefix, "").compress().as_bytes()),
            "30b6142101b1f7b98188f6159e33c796a83d7fa2cbeb5b21cc2bb1d2bc21ef72"
        );
        let ph = params_hash_with(LABEL, &params());
        assert_eq!(hex::encode(ph), "68e14e796dc8fe5a0052c277eca0c65a3d7ee7dfe53f14d85607ddfffe745c16");
        let key = blake3::derive_key(TAG_CONTEXT, &ph);
        assert_eq!(format!("{:032x}", tag(&key, &point, 16)), "183ce6ed81f9144a4bf7a1f673fbf434");
        assert_eq!(format!("{:032x}", tag(&key, &point, 6)), "00000000000000000000a1f673fbf434");
    }

    #[test]
    fn tag_length_bounds_collisions_over_all_pairs_by_2_pow_minus_40() {
        for total in [0usize, 1, 2, 3, 1000, 1 << 17, (1 << 17) + 1, 2 * MAX_SET_SIZE] {
            let t = tag_len(total) as u32;
            assert!(t <= 16);
            // total²/2 pairs, each colliding with probability 2^-8t.
            let log2_pairs = 2.0 * (total.max(1) as f64).log2() - 1.0;
            assert!(8.0 * t as f64 - log2_pairs >= 40.0, "total {total}: {t} bytes");
            assert!(8.0 * (t - 1) as f64 - log2_pairs < 40.0 + 16.0, "total {total}: {t} bytes is wasteful");
        }
    }

    #[test]
    fn double_and_compress_with_half_scalar_equals_plain_multiplication() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let half = half_scalar(&mut rng);
        let key = *half * Scalar::from(2u64);
        let points: Vec<RistrettoPoint> = (0..5).map(|_| RistrettoPoint::random(&mut rng)).collect();
        let halves: Vec<RistrettoPoint> = points.iter().map(|p| *half * p).collect();
        let batch = RistrettoPoint::double_and_compress_batch(&halves);
        for (p, c) in points.iter().zip(batch) {
            assert_eq!((key * p).compress(), c);
        }
    }

    /// Runs honest gov `intersect` against a bank closure that speaks the protocol by hand.
    fn against_fake_bank(n_gov: usize, fake: impl FnOnce(&mut Channel) + Send) -> Error {
        let gov_ids = ids("g", n_gov);
        let (g, ()) = run_pair(
            |ch| intersect(ch, &gov_ids, &params(), &mut ChaCha20Rng::seed_from_u64(2)),
            |ch| {
                ch.set_phase("psi");
                fake(ch)
            },
        );
        g.expect_err("gov must refuse the fake bank's input")
    }

    fn fake_hello(ch: &mut Channel, set_size: u64) -> Hello {
        ch.send("psi.hello", &Hello { params_hash: params_hash_with(LABEL, &params()), set_size }).unwrap();
        ch.recv::<Hello>("psi.hello").unwrap()
    }

    fn drain_gov_points(ch: &mut Channel, n: usize) {
        recv_chunks(ch, "psi.gov_points", n, 32, |_, _| Ok(())).unwrap();
    }

    #[test]
    fn a_local_failure_reaches_the_peer_as_its_kind_only() {
        let (id, file) = ("91110000TESTSECRET1", "/data/gov-private.csv");
        let (g, b) = run_pair(
            |ch| {
                abort_on_error(ch, |_| {
                    let why = "has a bad check digit".to_string();
                    let bad =
                        InputError::InvalidId { file: file.into(), line: 7, id: id.into(), why, kind: "uscc".into() };
                    Err::<(), Error>(bad.into())
                })
            },
            |ch| {
                ch.set_phase("psi");
                ch.recv::<u8>("psi.hello")
            },
        );
        let g = g.expect_err("the gov's input fails");
        assert!(matches!(g, Error::Input(InputError::InvalidId { .. })), "{g}");
        assert!(g.to_string().contains(id), "the local message names the id: {g}");
        match b {
            Err(Error::PeerAbort(text)) => {
                assert_eq!(text, format!("psi: {}", g.peer_notice()));
                assert!(!text.contains(id) && !text.contains(file) && !text.contains("line 7"), "{text}");
            }
            other => panic!("the bank must see the gov's abort, got {other:?}"),
        }
    }

    #[test]
    fn malformed_point_from_peer_is_a_protocol_error() {
        let err = against_fake_bank(3, |ch| {
            fake_hello(ch, 2);
            drain_gov_points(ch, 3);
            let mut bytes = RistrettoPoint::random(&mut ChaCha20Rng::seed_from_u64(3)).compress().to_bytes().to_vec();
            bytes.extend_from_slice(&[0xff; 32]); // not a canonical field element
            ch.send_frame("psi.bank_points", bytes).unwrap();
        });
        assert!(
            matches!(&err, Error::Peer(PeerError::NotOnCurve { what }) if what == "'psi.bank_points' element 1"),
            "{err}"
        );
    }

    #[test]
    fn wrong_point_count_oversized_announcement_and_bad_positions_are_errors() {
        let err = against_fake_bank(3, |ch| {
            fake_hello(ch, 2);
            drain_gov_points(ch, 3);
            ch.send_frame("psi.bank_points", vec![0u8; 3 * 32]).unwrap();
        });
        assert!(matches!(&err, Error::Peer(PeerError::WrongLength { expected: 64, got: 96, .. })), "{err}");

        let err = against_fake_bank(3, |ch| {
            fake_hello(ch, MAX_SET_SIZE as u64 + 1);
        });
        assert!(
            matches!(&err, Error::Peer(PeerError::BadCount { got, .. }) if *got == MAX_SET_SIZE as u64 + 1),
            "{err}"
        );

        for (positions, bad) in [(vec![0u32, 0], 0), (vec![0, 3], 3)] {
            let err = against_fake_bank(3, |ch| {
                fake_hello(ch, 2);
                drain_gov_points(ch, 3);
                let mut rng = ChaCha20Rng::seed_from_u64(4);
                let pts: Vec<u8> =
                    (0..2).flat_map(|_| RistrettoPoint::random(&mut rng).compress().to_bytes()).collect();
                ch.send_frame("psi.bank_points", pts).unwrap();
                recv_chunks(ch, "psi.tags", 2, tag_len(5), |_, _| Ok(())).unwrap();
                ch.send("psi.verdict", &Verdict::Positions(2)).unwrap();
                let bytes: Vec<u8> = positions.iter().flat_map(|p| p.to_le_bytes()).collect();
                ch.send_bulk("psi.positions", &bytes).unwrap();
            });
            assert!(
                matches!(&err, Error::Peer(PeerError::OutOfRange { got, range, .. }) if *got == bad && range == "0..3"),
                "{err}"
            );
        }

        let err = against_fake_bank(1, |ch| {
            fake_hello(ch, 1);
            drain_gov_points(ch, 1);
            let pt = RistrettoPoint::random(&mut ChaCha20Rng::seed_from_u64(5)).compress().to_bytes().to_vec();
            ch.send_frame("psi.bank_points", pt).unwrap();
            recv_chunks(ch, "psi.tags", 1, tag_len(2), |_, _| Ok(())).unwrap();
            ch.send("psi.verdict", &Verdict::Size(2)).unwrap();
        });
        assert!(matches!(&err, Error::Peer(PeerError::Inconsistent { .. })), "{err}");
    }
}
