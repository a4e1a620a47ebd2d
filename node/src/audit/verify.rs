//! Verifies one transcript on its own, and compares the two nodes' transcripts of a job.
//!
//! `verify` checks: schema and version; the record chain (any changed, dropped, inserted or
//! reordered record breaks it at that point); the manifest signature; record order (manifest
//! first, outcome last); frame numbering; at every phase end, that both nodes' signatures verify
//! against the manifest keys, that the shared view recomputed from the frame records, this node's
//! record chain and the phase's reveal records equal what both signed, and that every `open.*`
//! frame is listed by a reveal record of its phase; that the outcome is signed by this node and,
//! if it says completed, is the outcome both nodes signed; and, when the payload file is present,
//! every frame's hash. So a single transcript shows any change to a record before the last phase
//! end (even by its own node, which lacks the peer's key), and any change at all by someone
//! without this node's key.
//!
//! `compare` additionally checks that both transcripts describe the same job (equal manifests),
//! that every send at one node is a receive at the other in the same order with equal kind,
//! length and hash, and that both hold the same phase heads and reveal records.
//!
//! Reading is bounded: lines over [`MAX_LINE`] are refused and payloads are hashed in streaming
//! fashion after checking they lie inside the payload file.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ed25519_dalek::{Signature, VerifyingKey};
use protocol::Role;
use protocol::disclose::OPEN_PREFIX;
use protocol::transcript::{ChainHead, Direction, SharedView};

use super::record::{
    MANIFEST_KIND, MANIFEST_SIGNING_CONTEXT, MAX_LINE, Manifest, NodeHashes, OUTCOME_SIGNING_CONTEXT, Outcome,
    PHASE_HEAD_KIND, PHASE_SIG_KIND, PhaseHeads, Record, Reveal, SCHEMA, Status, last_field, manifest_digest_of_json,
    outcome_digest, record_chain, reveal_hash, split_hex_field,
};
use super::writer::payloads_path;

/// Which check a failure comes from (stable, for scripts and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// A line is not a well-formed record of this schema.
    Format,
    /// Missing or unsupported schema/version.
    Schema,
    /// Records out of the required order (manifest first, outcome last, nothing after it, nothing
    /// between a signed completion and the outcome).
    Order,
    /// The record chain does not match.
    Chain,
    /// The manifest signature does not verify against the manifest's key for this node.
    ManifestSignature,
    /// A `job.manifest` frame carried another manifest digest than this transcript's manifest.
    ManifestBinding,
    /// Frame sequence numbers are not 0, 1, 2, ...
    FrameSeq,
    /// The `phase.head`/`phase.sig` frames before a phase end are missing or carried other values.
    PhaseSigFrames,
    /// The signed phase heads differ from the shared view recomputed from the frame records.
    PhaseHeads,
    /// A node's phase-end signature does not verify against its manifest key.
    PhaseSignature,
    /// This node's records before a phase end hash to another record chain than both nodes signed.
    PhaseChain,
    /// The reveal records of a phase differ from the reveals both nodes signed at its end.
    PhaseReveals,
    /// An `open.*` frame (an opened value) that no reveal record of its phase lists.
    Unrevealed,
    /// A reveal record lists a frame that is not an unlisted `open.<name>` frame before it.
    RevealFrames,
    /// The outcome record's signature does not verify against this node's manifest key.
    OutcomeSignature,
    /// The outcome contradicts what both nodes signed (completion claimed or denied).
    Outcome,
    /// The payload file disagrees with the frame records.
    Payload,
    /// The transcript has no outcome record.
    Incomplete,
    /// compare: the two transcripts are not of the same job (manifests or roles differ).
    Manifest,
    /// compare: a send at one node does not match the receive at the other.
    Frames,
    /// compare: the phase-end records differ.
    Heads,
    /// compare: the reveal records differ.
    Reveals,
}

/// One verification failure: which file, which record (1-based line number; 0 = whole file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub file: String,
    pub record: usize,
    pub check: Check,
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.record {
            0 => write!(f, "{}: {}", self.file, self.reason),
            n => write!(f, "{}: record {n}: {}", self.file, self.reason),
        }
    }
}

/// What the verifier found out about one reveal record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevealInfo {
    /// The reveal's record number.
    pub record: usize,
    /// Record numbers of the `open.<name>` frames that carried the value (empty: a value learnt
    /// from a protocol's output).
    pub frames: Vec<usize>,
    /// The phase end whose signatures by both nodes cover this reveal, if any.
    pub signed_at: Option<usize>,
}

/// The records of one transcript that could be parsed.
#[derive(Clone, Debug)]
pub struct Transcript {
    pub path: PathBuf,
    /// Whose transcript it is (from the manifest record).
    pub node: Option<Role>,
    pub manifest: Option<Manifest>,
    /// Parsed records with their 1-based record numbers.
    pub records: Vec<(usize, Record)>,
    /// Whether a payload file was present and checked.
    pub payloads_checked: bool,
    /// One entry per reveal record, in order.
    pub reveals: Vec<RevealInfo>,
    /// Records `1..=covered` are covered by both nodes' phase-end signatures (0: none).
    pub covered: usize,
    /// The phase end at which both nodes signed the job's completion and this outcome.
    pub completion_signed_at: Option<usize>,
}

/// A transcript and everything wrong with it.
#[derive(Clone, Debug)]
pub struct Verification {
    pub transcript: Transcript,
    pub failures: Vec<Failure>,
    /// Things the auditor should know that are not failures (e.g. no payload file).
    pub notes: Vec<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Verifies the transcript at `path` (and `<path>.payloads` if present). `Err` only when the
/// files cannot be read; everything wrong with their content is a [`Failure`].
pub fn verify(path: &Path) -> Result<Verification> {
    let file = File::open(path).with_context(|| format!("cannot open transcript {}", path.display()))?;
    let payload_path = payloads_path(path);
    let payloads = match File::open(&payload_path) {
        Ok(f) => {
            let len = f.metadata().with_context(|| format!("cannot read {}", payload_path.display()))?.len();
            Some(PayloadFile { file: f, len, end: 0 })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot open payload file {}", payload_path.display())),
    };
    let mut v = Verifier::new(path, payloads);
    let mut reader = BufReader::new(file);
    let mut number = 0;
    loop {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read transcript {}", path.display()))?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.pop() != Some(b'\n') {
            if line.len() >= MAX_LINE {
                v.fail(number, Check::Format, format!("record is longer than {MAX_LINE} bytes; not verifying further"));
                break;
            }
            v.fail(number, Check::Format, "last record has no newline: the file was cut while being written".into());
        }
        if !v.line(number, &line)? {
            break;
        }
    }
    Ok(v.finish(number))
}

struct PayloadFile {
    file: File,
    len: u64,
    /// Where the next frame's payload must start (payloads are contiguous, in frame order).
    end: u64,
}

/// A frame record kept to check the `phase.head`/`phase.sig` exchange before a phase end.
struct RecentFrame {
    record: usize,
    dir: Direction,
    kind: String,
    hash: [u8; 32],
    view_before: SharedView,
    /// The record chain before this record.
    chain_before: [u8; 32],
}

/// An `open.*` frame no reveal record has listed yet.
struct OpenFrame {
    record: usize,
    phase: String,
    kind: String,
    hash: [u8; 32],
}

/// The frames of a phase-end exchange, in order.
const EXCHANGE: [(&str, Direction); 4] = [
    (PHASE_HEAD_KIND, Direction::Sent),
    (PHASE_HEAD_KIND, Direction::Received),
    (PHASE_SIG_KIND, Direction::Sent),
    (PHASE_SIG_KIND, Direction::Received),
];

struct Verifier {
    file: String,
    t: Transcript,
    failures: Vec<Failure>,
    notes: Vec<String>,
    prev_chain: [u8; 32],
    keys: Option<[VerifyingKey; 2]>,
    next_seq: u64,
    view: SharedView,
    recent: VecDeque<RecentFrame>,
    payloads: Option<PayloadFile>,
    frames_with_offset: u64,
    outcome_at: Option<usize>,
    /// Digest of the manifest exactly as written, and how many `job.manifest` frames matched it.
    manifest_digest: Option<[u8; 32]>,
    manifest_frames: usize,
    /// Reveal records since the last phase end: (index in `t.reveals`, reveal hash).
    phase_reveals: Vec<(usize, [u8; 32])>,
    unlisted_opens: Vec<OpenFrame>,
    /// The phase end that signed the job's completion, with both nodes' outcome digests.
    completion: Option<(usize, NodeHashes)>,
    /// Whether a phase end's record chain already failed (every later one then fails too).
    chain_failed: bool,
}

impl Verifier {
    fn new(path: &Path, payloads: Option<PayloadFile>) -> Verifier {
        Verifier {
            file: path.display().to_string(),
            t: Transcript {
                path: path.to_path_buf(),
                node: None,
                manifest: None,
                records: Vec::new(),
                payloads_checked: payloads.is_some(),
                reveals: Vec::new(),
                covered: 0,
                completion_signed_at: None,
            },
            failures: Vec::new(),
            notes: Vec::new(),
            prev_chain: [0; 32],
            keys: None,
            next_seq: 0,
            view: SharedView::default(),
            recent: VecDeque::new(),
            payloads,
            frames_with_offset: 0,
            outcome_at: None,
            manifest_digest: None,
            manifest_frames: 0,
            phase_reveals: Vec::new(),
            unlisted_opens: Vec::new(),
            completion: None,
            chain_failed: false,
        }
    }

    fn fail(&mut self, record: usize, check: Check, reason: String) {
        self.failures.push(Failure { file: self.file.clone(), record, check, reason });
    }

    /// Checks one line; returns false when verification cannot go on (unsupported schema).
    fn line(&mut self, n: usize, line: &[u8]) -> Result<bool> {
        let Some((canonical, claimed)) = split_hex_field::<32>(line, "chain") else {
            self.fail(n, Check::Format, "record does not end with a \"chain\":\"<64 lowercase hex>\" field".into());
            return Ok(true);
        };
        let prev = self.prev_chain;
        if record_chain(&prev, &canonical) != claimed {
            self.fail(
                n,
                Check::Chain,
                "chain hash does not match this record and the one before: this record or an earlier one \
                 was changed, dropped, inserted or reordered"
                    .into(),
            );
        }
        // Resynchronise so that each break is reported once, where it happens.
        self.prev_chain = claimed;

        let (body, signature) = match split_hex_field::<64>(&canonical, "signature") {
            Some((body, sig)) => (body, Some(sig)),
            None => (canonical, None),
        };
        if n == 1 {
            let schema = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("schema").and_then(|s| s.as_str()).map(str::to_string));
            match schema {
                Some(s) if s == SCHEMA => {}
                Some(s) => {
                    self.fail(
                        n,
                        Check::Schema,
                        format!("schema '{s}' is not supported (this verifier reads {SCHEMA})"),
                    );
                    return Ok(false);
                }
                None => {
                    self.fail(
                        n,
                        Check::Schema,
                        format!("first record has no \"schema\" field: not a {SCHEMA} transcript"),
                    );
                    return Ok(false);
                }
            }
        }
        let record: Record = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                self.fail(n, Check::Format, format!("not a valid {SCHEMA} record: {e}"));
                return Ok(true);
            }
        };
        if signature.is_some() && !matches!(record, Record::Manifest { .. } | Record::Outcome { .. }) {
            let msg =
                format!("a '{}' record carries a signature; only manifest and outcome records do", record.type_name());
            self.fail(n, Check::Format, msg);
        }
        if let Some(at) = self.outcome_at {
            self.fail(n, Check::Order, format!("record after the outcome (record {at}); the outcome must be last"));
        } else if let Some((at, _)) = self.completion
            && !matches!(record, Record::Outcome { .. })
        {
            self.fail(
                n,
                Check::Order,
                format!("a '{}' record after both nodes signed the job's completion (record {at}); the outcome must follow it", record.type_name()),
            );
        }
        match (&record, n) {
            (Record::Manifest { node, manifest, .. }, 1) => self.manifest(n, *node, manifest, &body, signature),
            (Record::Manifest { .. }, _) => self.fail(n, Check::Order, "a second manifest record".into()),
            (other, 1) => self.fail(
                n,
                Check::Order,
                format!("first record is a '{}' record; it must be the signed manifest", other.type_name()),
            ),
            (Record::Frame { seq, dir, phase, kind, len, hash, offset, .. }, _) => {
                self.frame(n, prev, *seq, *dir, phase, kind, *len, hash, *offset)?
            }
            (Record::Reveal { reveal, .. }, _) => self.reveal(n, reveal, &body),
            (Record::PhaseEnd { heads, .. }, _) => self.phase_end(n, heads),
            (Record::Outcome { outcome, .. }, _) => self.outcome(n, prev, outcome, &body, signature),
        }
        self.t.records.push((n, record));
        Ok(true)
    }

    fn manifest(&mut self, n: usize, node: Role, manifest: &Manifest, body: &[u8], signature: Option<[u8; 64]>) {
        self.t.node = Some(node);
        self.t.manifest = Some(manifest.clone());
        // The manifest object is the record's last field.
        self.manifest_digest = last_field(body, "manifest").map(manifest_digest_of_json);
        if let Err(e) = manifest.validate() {
            self.fail(n, Check::Format, e);
            return;
        }
        let keys = [Role::Gov, Role::Bank].map(|r| manifest.verifying_key(r).expect("validated"));
        self.keys = Some(keys);
        let Some(signature) = signature else {
            self.fail(n, Check::ManifestSignature, "manifest record has no trailing \"signature\" field".into());
            return;
        };
        let mut msg = MANIFEST_SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(body);
        if keys[node.index()].verify_strict(&msg, &Signature::from_bytes(&signature)).is_err() {
            self.fail(
                n,
                Check::ManifestSignature,
                format!("manifest signature does not verify against the {node} node's key in the manifest"),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn frame(
        &mut self,
        n: usize,
        chain_before: [u8; 32],
        seq: u64,
        dir: Direction,
        phase: &str,
        kind: &str,
        len: u64,
        hash: &[u8; 32],
        offset: Option<u64>,
    ) -> Result<()> {
        if seq != self.next_seq {
            self.fail(
                n,
                Check::FrameSeq,
                format!("frame seq {seq} where {} was expected: a frame record is missing or repeated", self.next_seq),
            );
        }
        self.next_seq = seq + 1;
        if offset.is_some() {
            self.frames_with_offset += 1;
        }
        self.check_payload(n, len, hash, offset)?;
        if kind == MANIFEST_KIND
            && let Some(digest) = self.manifest_digest
        {
            if *hash == *blake3::hash(&digest).as_bytes() {
                self.manifest_frames += 1;
            } else {
                let whose = if dir == Direction::Sent { "this node" } else { "the peer" };
                self.fail(
                    n,
                    Check::ManifestBinding,
                    format!("the manifest digest {whose} sent differs from this transcript's manifest (record 1)"),
                );
            }
        }
        if kind.starts_with(OPEN_PREFIX) {
            self.unlisted_opens.push(OpenFrame {
                record: n,
                phase: phase.to_string(),
                kind: kind.to_string(),
                hash: *hash,
            });
        }
        if let Some(me) = self.t.node {
            let sender = if dir == Direction::Sent { me } else { me.peer() };
            if self.recent.len() == EXCHANGE.len() {
                self.recent.pop_front();
            }
            self.recent.push_back(RecentFrame {
                record: n,
                dir,
                kind: kind.to_string(),
                hash: *hash,
                view_before: self.view,
                chain_before,
            });
            self.view.record(sender, kind, len, hash);
        }
        Ok(())
    }

    /// A reveal record: its hash joins the phase's reveals; each frame it lists must be an
    /// unlisted `open.<name>` frame of its phase before it.
    fn reveal(&mut self, n: usize, reveal: &Reveal, body: &[u8]) {
        let hash = last_field(body, "reveal").map_or([0; 32], reveal_hash);
        let mut info = RevealInfo { record: n, frames: Vec::new(), signed_at: None };
        let kind = format!("{OPEN_PREFIX}{}", reveal.name);
        for h in &reveal.frames {
            match self.unlisted_opens.iter().position(|f| f.hash == *h && f.kind == kind && f.phase == reveal.phase) {
                Some(i) => info.frames.push(self.unlisted_opens.remove(i).record),
                None => self.fail(
                    n,
                    Check::RevealFrames,
                    format!(
                        "reveal '{}' lists frame {}, but no unlisted '{kind}' frame of phase '{}' with that hash precedes it",
                        reveal.name,
                        hex::encode(&h[..8]),
                        reveal.phase
                    ),
                ),
            }
        }
        self.phase_reveals.push((self.t.reveals.len(), hash));
        self.t.reveals.push(info);
    }
    fn check_payload(&mut self, n: usize, len: u64, hash: &[u8; 32], offset: Option<u64>) -> Result<()> {
        let Some(p) = self.payloads.as_mut() else { return Ok(()) };
        let problem = match offset {
            None => Some("frame record has no payload offset although a payload file is present".to_string()),
            Some(o) if o != p.end => {
                Some(format!("payload offset {o}, expected {} (payloads are stored contiguously)", p.end))
            }
            Some(o) if o.checked_add(len).is_none_or(|e| e > p.len) => Some(format!(
                "payload {o}..{} lies past the end of the payload file ({} bytes)",
                o.saturating_add(len),
                p.len
            )),
            Some(o) => {
                p.file.seek(SeekFrom::Start(o)).context("cannot seek in payload file")?;
                let mut hasher = blake3::Hasher::new();
                std::io::copy(&mut (&mut p.file).take(len), &mut hasher).context("cannot read payload file")?;
                let actual = *hasher.finalize().as_bytes();
                (actual != *hash).then(|| {
                    format!(
                        "payload bytes {o}..{} in the payload file hash to {}, the record says {}",
                        o + len,
                        hex::encode(&actual[..8]),
                        hex::encode(&hash[..8])
                    )
                })
            }
        };
        if let Some(o) = offset {
            p.end = o.saturating_add(len);
        }
        if let Some(reason) = problem {
            self.fail(n, Check::Payload, reason);
        }
        Ok(())
    }

    fn phase_end(&mut self, n: usize, heads: &PhaseHeads) {
        let (Some(me), Some(keys), Some(manifest)) = (self.t.node, self.keys, self.t.manifest.as_ref()) else {
            return; // already reported at the manifest
        };
        let phase = heads.phase.clone();
        let msg = heads.signing_bytes(&manifest.job_id);
        let bad_sig: Vec<Role> = [Role::Gov, Role::Bank]
            .into_iter()
            .filter(|role| {
                keys[role.index()].verify_strict(&msg, &Signature::from_bytes(heads.signatures.of(*role))).is_err()
            })
            .collect();
        for role in bad_sig {
            self.fail(
                n,
                Check::PhaseSignature,
                format!(
                    "the {role} node's signature over the heads of phase '{phase}' does not verify against its key in the manifest"
                ),
            );
        }
        self.phase_reveals_signed(n, heads);
        for f in std::mem::take(&mut self.unlisted_opens) {
            self.fail(
                f.record,
                Check::Unrevealed,
                format!(
                    "frame '{}' of phase '{}' carries an opened value, but no reveal record lists it before the end of \
                     phase '{phase}' (record {n})",
                    f.kind, f.phase
                ),
            );
        }
        if let Some(c) = heads.completed {
            self.completion = Some((n, c));
        }
        let recent: Vec<RecentFrame> = self.recent.drain(..).collect();
        let exchange_ok = recent.len() == EXCHANGE.len()
            && recent
                .iter()
                .zip(EXCHANGE)
                .enumerate()
                .all(|(i, (f, (kind, dir)))| f.kind == kind && f.dir == dir && f.record + EXCHANGE.len() == n + i);
        if !exchange_ok {
            self.fail(
                n,
                Check::PhaseSigFrames,
                format!(
                    "phase end '{phase}' does not directly follow its exchange: '{PHASE_HEAD_KIND}' sent, then \
                     received, '{PHASE_SIG_KIND}' sent, then received"
                ),
            );
            return;
        }
        let recomputed = recent[0].view_before;
        if heads.view != recomputed {
            let show = |c: &ChainHead| format!("{} frames, head {}", c.frames, hex::encode(&c.hash[..8]));
            self.fail(
                n,
                Check::PhaseHeads,
                format!(
                    "signed heads of phase '{phase}' (gov sent {}; bank sent {}) differ from the frame records \
                     (gov sent {}; bank sent {})",
                    show(&heads.view.sent_by_gov),
                    show(&heads.view.sent_by_bank),
                    show(&recomputed.sent_by_gov),
                    show(&recomputed.sent_by_bank)
                ),
            );
        }
        let last = recent[0].record - 1;
        if *heads.chains.of(me) != recent[0].chain_before && !self.chain_failed {
            self.chain_failed = true;
            self.fail(
                n,
                Check::PhaseChain,
                format!(
                    "records 1..={last} of this transcript do not hash to the record chain both nodes signed at the \
                     end of phase '{phase}': one of records {}..={last} was changed, dropped or inserted (times \
                     included); later phase ends cannot be checked against this node's records either",
                    self.t.covered + 1
                ),
            );
        }
        let expected = [
            (&recent[0], heads.head_frame(me), me),
            (&recent[1], heads.head_frame(me.peer()), me.peer()),
            (&recent[2], heads.signatures.of(me).to_vec(), me),
            (&recent[3], heads.signatures.of(me.peer()).to_vec(), me.peer()),
        ];
        let wrong: Vec<(usize, String, Role)> = expected
            .iter()
            .filter(|(f, payload, _)| f.hash != *blake3::hash(payload).as_bytes())
            .map(|(f, _, role)| (f.record, f.kind.clone(), *role))
            .collect();
        for (record, kind, role) in wrong {
            self.fail(
                n,
                Check::PhaseSigFrames,
                format!("the '{kind}' frame at record {record} does not carry the {role} values recorded here"),
            );
        }
        self.t.covered = last;
    }

    /// The reveal records since the last phase end against the reveals both nodes signed.
    fn phase_reveals_signed(&mut self, n: usize, heads: &PhaseHeads) {
        let recorded = std::mem::take(&mut self.phase_reveals);
        let phase = &heads.phase;
        for (i, (idx, hash)) in recorded.iter().enumerate() {
            let record = self.t.reveals[*idx].record;
            match heads.reveals.get(i) {
                Some(signed) if signed == hash => self.t.reveals[*idx].signed_at = Some(n),
                Some(_) => self.fail(
                    record,
                    Check::PhaseReveals,
                    format!(
                        "reveal record differs from reveal #{} both nodes signed at the end of phase '{phase}' \
                         (record {n}): its value, recipients, rule or another field was changed",
                        i + 1
                    ),
                ),
                None => self.fail(
                    record,
                    Check::PhaseReveals,
                    format!(
                        "reveal record is not among the {} reveal(s) both nodes signed at the end of phase '{phase}' \
                         (record {n})",
                        heads.reveals.len()
                    ),
                ),
            }
        }
        if heads.reveals.len() > recorded.len() {
            self.fail(
                n,
                Check::PhaseReveals,
                format!(
                    "both nodes signed {} reveal(s) in phase '{phase}', but this transcript records {} since the \
                     previous phase end: a reveal record was removed",
                    heads.reveals.len(),
                    recorded.len()
                ),
            );
        }
    }

    fn outcome(&mut self, n: usize, prev: [u8; 32], outcome: &Outcome, body: &[u8], signature: Option<[u8; 64]>) {
        self.outcome_at = Some(n);
        let (Some(me), Some(keys)) = (self.t.node, self.keys) else { return };
        match signature {
            None => self.fail(n, Check::OutcomeSignature, "outcome record has no trailing \"signature\" field".into()),
            Some(sig) => {
                let mut msg = OUTCOME_SIGNING_CONTEXT.to_vec();
                msg.extend_from_slice(&prev);
                msg.extend_from_slice(body);
                if keys[me.index()].verify_strict(&msg, &Signature::from_bytes(&sig)).is_err() {
                    self.fail(
                        n,
                        Check::OutcomeSignature,
                        format!(
                            "the outcome's signature does not verify against the {me} node's key: the outcome or a \
                             record before it was changed"
                        ),
                    );
                }
            }
        }
        let digest = last_field(body, "outcome").map(outcome_digest);
        match (self.completion, outcome.status) {
            (Some((at, signed)), Status::Completed) if digest.as_ref() == Some(signed.of(me)) => {
                self.t.completion_signed_at = Some(at)
            }
            (Some((at, _)), Status::Completed) => self.fail(
                n,
                Check::Outcome,
                format!("the outcome differs from the completed outcome both nodes signed at record {at}"),
            ),
            (Some((at, _)), Status::Failed) => self.fail(
                n,
                Check::Outcome,
                format!("the outcome says failed, but both nodes signed the job's completion at record {at}"),
            ),
            (None, Status::Completed) => self.fail(
                n,
                Check::Outcome,
                "the outcome says completed, but no phase end signed by both nodes binds it (a completed job's \
                 last phase end carries both nodes' outcomes)"
                    .into(),
            ),
            (None, Status::Failed) => {
                let covered = match self.t.covered {
                    0 => "no record is covered by both nodes' signatures (no phase end)".to_string(),
                    c => format!(
                        "records 1..={c} are covered by both nodes' signatures, records {}..={n} by this node's only",
                        c + 1
                    ),
                };
                self.notes.push(format!(
                    "the failed outcome is signed by the {me} node alone (the peer may be gone): {covered}"
                ));
                let opens = std::mem::take(&mut self.unlisted_opens);
                if !opens.is_empty() {
                    let records: Vec<String> = opens.iter().map(|f| f.record.to_string()).collect();
                    self.notes.push(format!(
                        "records {}: '{}' frame(s) after the last phase end that no reveal record lists: an opening \
                         cut short when the job failed, or an unrecorded reveal; compare with the peer's transcript",
                        records.join(", "),
                        opens[0].kind
                    ));
                }
            }
        }
    }

    fn finish(mut self, lines: usize) -> Verification {
        if self.manifest_frames == 0 && self.t.manifest.is_some() {
            self.notes.push(format!(
                "no '{MANIFEST_KIND}' exchange: the manifest is signed by this node only, not covered by the peer's signatures"
            ));
        }
        if lines == 0 {
            self.fail(0, Check::Format, "file is empty".into());
        } else if self.outcome_at.is_none() {
            self.fail(
                lines,
                Check::Incomplete,
                format!("transcript ends at record {lines} without an outcome record: cut short, or the job is still running"),
            );
        }
        for f in std::mem::take(&mut self.unlisted_opens) {
            if self.outcome_at.is_some() {
                self.fail(
                    f.record,
                    Check::Unrevealed,
                    format!(
                        "frame '{}' of phase '{}' carries an opened value, but no reveal record lists it",
                        f.kind, f.phase
                    ),
                );
            }
        }
        match self.payloads.take() {
            Some(p) if p.end != p.len => self.fail(
                0,
                Check::Payload,
                format!("payload file has {} bytes but the frame records account for {}", p.len, p.end),
            ),
            Some(_) => {}
            None if self.frames_with_offset > 0 => self.notes.push(format!(
                "{} frame payloads were captured but the payload file is absent; frame hashes not re-checked",
                self.frames_with_offset
            )),
            None => {}
        }
        Verification { transcript: self.t, failures: self.failures, notes: self.notes }
    }
}

/// Result of comparing both nodes' transcripts of one job.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub gov: Option<Verification>,
    pub bank: Option<Verification>,
    /// Each transcript's own failures, then every disagreement between them.
    pub failures: Vec<Failure>,
    pub notes: Vec<String>,
}

impl Comparison {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// How many disagreements of one kind are listed before the rest are summarised.
const MAX_LISTED: usize = 5;

/// Verifies both transcripts and cross-checks them (either order; roles come from the files).
pub fn compare(a: &Path, b: &Path) -> Result<Comparison> {
    let (va, vb) = (verify(a)?, verify(b)?);
    let mut failures: Vec<Failure> = va.failures.iter().chain(&vb.failures).cloned().collect();
    let mut notes: Vec<String> = va.notes.iter().chain(&vb.notes).cloned().collect();
    let fail = |failures: &mut Vec<Failure>, t: &Transcript, record: usize, check: Check, reason: String| {
        failures.push(Failure { file: t.path.display().to_string(), record, check, reason })
    };
    let (gov, bank) = match (va.transcript.node, vb.transcript.node) {
        (Some(Role::Gov), Some(Role::Bank)) => (va, vb),
        (Some(Role::Bank), Some(Role::Gov)) => (vb, va),
        (ra, rb) => {
            fail(
                &mut failures,
                &va.transcript,
                1,
                Check::Manifest,
                format!(
                    "the transcripts must be one gov and one bank transcript; found {} and {}",
                    ra.map_or("unknown".into(), |r| r.to_string()),
                    rb.map_or("unknown".into(), |r| r.to_string())
                ),
            );
            return Ok(Comparison { gov: None, bank: None, failures, notes });
        }
    };
    let (g, k) = (&gov.transcript, &bank.transcript);

    if let (Some(mg), Some(mb)) = (&g.manifest, &k.manifest)
        && mg != mb
    {
        let (vg, vb) = (serde_json::to_value(mg).unwrap_or_default(), serde_json::to_value(mb).unwrap_or_default());
        let fields: Vec<&str> = vg
            .as_object()
            .map(|o| o.keys().filter(|key| vg.get(key.as_str()) != vb.get(key.as_str())).map(String::as_str).collect())
            .unwrap_or_default();
        fail(
            &mut failures,
            g,
            1,
            Check::Manifest,
            format!("the manifests differ (fields: {}): not the same job", fields.join(", ")),
        );
    }

    for (sender, receiver) in [(g, k), (k, g)] {
        let sent = frames(sender, Direction::Sent);
        let received = frames(receiver, Direction::Received);
        let sender_role = sender.node.expect("role known");
        let receiver_role = receiver.node.expect("role known");
        let mut listed = 0;
        let mut unlisted = 0;
        for i in 0..sent.len().max(received.len()) {
            let (record_in, at, reason) = match (sent.get(i), received.get(i)) {
                (Some(s), Some(r)) if s.1 == r.1 => continue,
                (Some(s), Some(r)) => (
                    sender,
                    s.0,
                    format!(
                        "{sender_role}'s frame #{i} sent is {}, but {receiver_role}'s frame #{i} received (record {}) is {}",
                        show_frame(&s.1),
                        r.0,
                        show_frame(&r.1)
                    ),
                ),
                (Some(s), None) => (
                    sender,
                    s.0,
                    format!(
                        "{sender_role}'s frame #{i} sent ({}) was never received by {receiver_role}",
                        show_frame(&s.1)
                    ),
                ),
                (None, Some(r)) => (
                    receiver,
                    r.0,
                    format!(
                        "{receiver_role}'s frame #{i} received ({}) was never sent by {sender_role}",
                        show_frame(&r.1)
                    ),
                ),
                (None, None) => unreachable!(),
            };
            if listed < MAX_LISTED {
                fail(&mut failures, record_in, at, Check::Frames, reason);
                listed += 1;
            } else {
                unlisted += 1;
            }
        }
        if unlisted > 0 {
            notes.push(format!("{unlisted} further {sender_role}→{receiver_role} frame mismatches not listed"));
        }
    }

    let heads = |t: &Transcript| -> Vec<(usize, PhaseHeads)> {
        t.records
            .iter()
            .filter_map(|(n, r)| match r {
                Record::PhaseEnd { heads, .. } => Some((*n, heads.clone())),
                _ => None,
            })
            .collect()
    };
    list_mismatch(&mut failures, g, k, Check::Heads, "phase end", &heads(g), &heads(k), |h| {
        let show = |c: &ChainHead| format!("{} frames, head {}", c.frames, hex::encode(&c.hash[..8]));
        format!(
            "phase '{}' (gov sent {}; bank sent {})",
            h.phase,
            show(&h.view.sent_by_gov),
            show(&h.view.sent_by_bank)
        )
    });
    let reveals = |t: &Transcript| -> Vec<(usize, Reveal)> {
        t.records
            .iter()
            .filter_map(|(n, r)| match r {
                Record::Reveal { reveal, .. } => Some((*n, reveal.clone())),
                _ => None,
            })
            .collect()
    };
    list_mismatch(&mut failures, g, k, Check::Reveals, "reveal", &reveals(g), &reveals(k), |r| {
        format!("'{}' from {} ({})", r.name, r.from, r.summary)
    });
    Ok(Comparison { gov: Some(gov), bank: Some(bank), failures, notes })
}

/// What must match between a send and its receive.
type FrameKey = (String, u64, [u8; 32]);

fn frames(t: &Transcript, dir: Direction) -> Vec<(usize, FrameKey)> {
    t.records
        .iter()
        .filter_map(|(n, r)| match r {
            Record::Frame { dir: d, kind, len, hash, .. } if *d == dir => Some((*n, (kind.clone(), *len, *hash))),
            _ => None,
        })
        .collect()
}

fn show_frame(f: &FrameKey) -> String {
    format!("'{}' of {} bytes, hash {}", f.0, f.1, hex::encode(&f.2[..8]))
}

/// Reports where two lists of records that must be equal first differ, and any length difference.
#[allow(clippy::too_many_arguments)]
fn list_mismatch<T: PartialEq>(
    failures: &mut Vec<Failure>,
    g: &Transcript,
    k: &Transcript,
    check: Check,
    what: &str,
    at_gov: &[(usize, T)],
    at_bank: &[(usize, T)],
    show: impl Fn(&T) -> String,
) {
    let differ = at_gov.iter().zip(at_bank).position(|(a, b)| a.1 != b.1);
    if let Some(i) = differ {
        failures.push(Failure {
            file: g.path.display().to_string(),
            record: at_gov[i].0,
            check,
            reason: format!(
                "{what} #{i} differs: gov has {}, bank (record {}) has {}",
                show(&at_gov[i].1),
                at_bank[i].0,
                show(&at_bank[i].1)
            ),
        });
    }
    if at_gov.len() != at_bank.len() {
        failures.push(Failure {
            file: g.path.display().to_string(),
            record: 0,
            check,
            reason: format!(
                "gov has {} {what} records, bank ({}) has {}",
                at_gov.len(),
                k.path.display(),
                at_bank.len()
            ),
        });
    }
}
