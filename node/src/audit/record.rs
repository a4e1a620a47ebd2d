//! Transcript records (schema `tandem-transcript/2`, see `SCHEMA.md`), the record chain, the bytes
//! both nodes sign at a phase end, and the line encoding shared by the writer and the verifier.
//!
//! Line encoding: every record is one line of compact JSON whose *last* field is
//! `"chain":"<64 hex>"`. The record's canonical bytes are the line without that trailing field
//! (`{...,"chain":"…"}` → `{...}`), so the chain covers the exact bytes on disk and needs no JSON
//! canonicalisation. The manifest and outcome records additionally end (before `chain`) with
//! `"signature":"<128 hex>"`, the node's Ed25519 signature over [`MANIFEST_SIGNING_CONTEXT`] ‖
//! the record's bytes without that field (manifest), or [`OUTCOME_SIGNING_CONTEXT`] ‖ the chain
//! of the record before ‖ the record's bytes without that field (outcome).

use ed25519_dalek::VerifyingKey;
use models::evaluation::{Evaluation, Stability};
use protocol::Role;
use protocol::transcript::{Direction, SharedView, hex_bytes};
use serde::{Deserialize, Serialize};

/// Schema name and version; carried by the first (manifest) record.
pub const SCHEMA: &str = "tandem-transcript/2";
/// BLAKE3 key-derivation context of the record chain.
pub const RECORD_CHAIN_CONTEXT: &str = "tandem transcript record v2";
/// Domain separator prefixed to the manifest record's bytes before signing.
pub const MANIFEST_SIGNING_CONTEXT: &[u8] = b"tandem transcript manifest v2\0";
/// Domain separator of the bytes both nodes sign at a phase end ([`PhaseHeads::signing_bytes`]).
pub const PHASE_SIGNING_CONTEXT: &[u8] = b"tandem phase end v2\0";
/// Domain separator prefixed to the outcome record's signed bytes.
pub const OUTCOME_SIGNING_CONTEXT: &[u8] = b"tandem transcript outcome v2\0";
/// Frame kind that carries a node's record-chain head (and reveal digest) at a phase end.
pub const PHASE_HEAD_KIND: &str = "phase.head";
/// Frame kind that carries a node's signature over the phase heads at a phase end.
pub const PHASE_SIG_KIND: &str = "phase.sig";
/// Frame kind that carries the manifest digest, exchanged before the first protocol message so
/// that both nodes' phase signatures cover the manifest.
pub const MANIFEST_KIND: &str = "job.manifest";
/// BLAKE3 key-derivation context of [`manifest_digest_of_json`].
pub const MANIFEST_DIGEST_CONTEXT: &str = "tandem manifest digest v2";
/// BLAKE3 key-derivation context of [`reveal_hash`].
pub const REVEAL_HASH_CONTEXT: &str = "tandem reveal record v2";
/// BLAKE3 key-derivation context of [`reveals_digest`].
pub const REVEALS_DIGEST_CONTEXT: &str = "tandem phase reveals v2";
/// BLAKE3 key-derivation context of [`outcome_digest`].
pub const OUTCOME_DIGEST_CONTEXT: &str = "tandem outcome digest v2";
/// Longest accepted transcript line (bounds what a verifier allocates for a hostile file).
pub const MAX_LINE: usize = 16 << 20;

/// What a job is about, agreed by both nodes before any protocol frame; the first record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub job_id: String,
    /// Job kind, e.g. `psi`, `train`, `score`.
    pub kind: String,
    /// RFC 3339 UTC time the job was proposed.
    pub created: String,
    pub proposer: Role,
    /// Exactly two entries: one `gov`, one `bank`.
    pub nodes: Vec<NodeInfo>,
    pub datasets: Vec<DatasetInfo>,
    /// Job parameters as agreed (free-form JSON object).
    pub parameters: serde_json::Value,
    pub policies: Policies,
    /// Who started the job (person or service account at the proposing node).
    pub operator: String,
    /// References to the consents / legal bases covering the data (e.g. agreement numbers):
    /// `params.consent_refs`, and a check-up's `params.consent`.
    pub consent: Vec<String>,
}

/// One node as identified for the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    pub name: String,
    pub role: Role,
    /// SHA-256 of the node's TLS certificate (DER).
    #[serde(with = "hex_bytes")]
    pub tls_cert_sha256: [u8; 32],
    /// The node's Ed25519 transcript-signing public key.
    #[serde(with = "hex_bytes")]
    pub ed25519_public_key: [u8; 32],
}

/// A dataset a party brings to the job (names and counts only, never values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetInfo {
    pub party: Role,
    pub name: String,
    pub columns: Vec<String>,
    pub rows: u64,
}

/// Both nodes' policies as they applied to this job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    pub gov: serde_json::Value,
    pub bank: serde_json::Value,
}

impl Manifest {
    pub fn node(&self, role: Role) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.role == role)
    }

    /// The Ed25519 key the manifest names for `role`.
    pub fn verifying_key(&self, role: Role) -> Result<VerifyingKey, String> {
        let node = self.node(role).ok_or_else(|| format!("manifest names no {role} node"))?;
        VerifyingKey::from_bytes(&node.ed25519_public_key)
            .map_err(|_| format!("manifest field nodes[{role}].ed25519_public_key is not a valid Ed25519 public key"))
    }

    /// [`manifest_digest_of_json`] of the compact JSON of the manifest: the bytes are exactly the
    /// `manifest` field of the transcript's first record.
    pub fn digest(&self) -> [u8; 32] {
        let json = serde_json::to_vec(self).expect("a manifest always encodes as JSON");
        manifest_digest_of_json(&json)
    }

    /// Checks the structure a verifier relies on; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.job_id.is_empty() {
            return Err("manifest field job_id is empty: give the job's id".into());
        }
        if parse_rfc3339(&self.created).is_none() {
            return Err(format!(
                "manifest field created '{}' is not an RFC 3339 UTC time like 2026-01-31T12:00:00Z",
                self.created
            ));
        }
        let roles: Vec<Role> = self.nodes.iter().map(|n| n.role).collect();
        if roles.len() != 2 || !roles.contains(&Role::Gov) || !roles.contains(&Role::Bank) {
            return Err(format!("manifest field nodes must list exactly one gov and one bank node, found {roles:?}"));
        }
        for role in [Role::Gov, Role::Bank] {
            self.verifying_key(role)?;
        }
        Ok(())
    }
}

/// A value that left one party: first-class in the transcript (design: "reveals are records").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reveal {
    pub phase: String,
    /// What was revealed, e.g. `intersection_size`, `model.bank_block`, `metrics`.
    pub name: String,
    /// BLAKE3 of the value's canonical bytes (see [`value_hash`]).
    #[serde(with = "hex_bytes")]
    pub value_hash: [u8; 32],
    /// Short readable summary, e.g. `intersection size 2876`, or a JSON object of metrics.
    pub summary: String,
    pub from: Role,
    pub to: Vec<Role>,
    /// The policy rule that allowed this reveal.
    pub rule: String,
    /// BLAKE3 of each frame that carried the value (kind `open.<name>`), for a value opened over
    /// the channel ([`protocol::disclose`]); empty for a value both learn from a protocol's
    /// output (e.g. the intersection size).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "hex_list")]
    pub frames: Vec<[u8; 32]>,
}

/// Serde helper: a list of 32-byte hashes as lowercase hex strings.
pub mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        list.iter()
            .map(|s| {
                let v = hex::decode(s).map_err(serde::de::Error::custom)?;
                v.try_into().map_err(|_| serde::de::Error::custom("expected 32 bytes of hex"))
            })
            .collect()
    }
}

impl From<protocol::disclose::Disclosure> for Reveal {
    /// The reveal record of a value opened through the channel's reveal path.
    fn from(d: protocol::disclose::Disclosure) -> Reveal {
        Reveal {
            phase: d.phase,
            name: d.name,
            value_hash: d.value_hash,
            summary: d.summary,
            from: d.from,
            to: vec![d.to],
            rule: d.rule,
            frames: d.frames,
        }
    }
}

/// Hash of a revealed value's canonical bytes, for [`Reveal::value_hash`].
pub fn value_hash(canonical_bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(canonical_bytes).as_bytes()
}

/// Digest of a manifest given its JSON text, as written in the transcript:
/// `BLAKE3-derive("tandem manifest digest v2", JSON text)`.
pub fn manifest_digest_of_json(json: &[u8]) -> [u8; 32] {
    blake3::derive_key(MANIFEST_DIGEST_CONTEXT, json)
}

/// Both nodes' signatures over [`PhaseHeads::signing_bytes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSignatures {
    #[serde(with = "hex_sig")]
    pub gov: [u8; 64],
    #[serde(with = "hex_sig")]
    pub bank: [u8; 64],
}

impl PhaseSignatures {
    pub fn of(&self, role: Role) -> &[u8; 64] {
        match role {
            Role::Gov => &self.gov,
            Role::Bank => &self.bank,
        }
    }
}

/// One 32-byte hash per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeHashes {
    #[serde(with = "hex_bytes")]
    pub gov: [u8; 32],
    #[serde(with = "hex_bytes")]
    pub bank: [u8; 32],
}

impl NodeHashes {
    pub fn of(&self, role: Role) -> &[u8; 32] {
        match role {
            Role::Gov => &self.gov,
            Role::Bank => &self.bank,
        }
    }

    /// `mine` for `me` and `theirs` for the peer.
    pub fn pair(me: Role, mine: [u8; 32], theirs: [u8; 32]) -> NodeHashes {
        match me {
            Role::Gov => NodeHashes { gov: mine, bank: theirs },
            Role::Bank => NodeHashes { gov: theirs, bank: mine },
        }
    }
}

/// What both nodes sign at a phase end: the shared view of the frames, each node's record chain
/// (so every record of both transcripts up to the phase end, times included), the phase's reveal
/// records, and at the end of a completed job both nodes' outcomes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseHeads {
    pub phase: String,
    pub view: SharedView,
    /// Each node's record chain (the `chain` of its last record before its `phase.head` frame).
    pub chains: NodeHashes,
    /// [`reveal_hash`] of each reveal record since the previous phase end, in order (both nodes
    /// record the same reveals).
    #[serde(with = "hex_list")]
    pub reveals: Vec<[u8; 32]>,
    /// At the last phase end of a completed job: [`outcome_digest`] of each node's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<NodeHashes>,
    pub signatures: PhaseSignatures,
}

impl PhaseHeads {
    /// The bytes each node signs (fixed layout, all integers little-endian):
    /// [`PHASE_SIGNING_CONTEXT`] ‖ u32 len ‖ job id ‖ u32 len ‖ phase ‖ gov view (u64 frames ‖
    /// 32-byte hash) ‖ bank view (same) ‖ gov chain ‖ bank chain ‖ [`reveals_digest`] ‖ u8 0, or
    /// u8 1 ‖ gov outcome digest ‖ bank outcome digest for a completed job.
    pub fn signing_bytes(&self, job_id: &str) -> Vec<u8> {
        let mut b = Vec::with_capacity(320 + job_id.len() + self.phase.len());
        b.extend_from_slice(PHASE_SIGNING_CONTEXT);
        for s in [job_id, self.phase.as_str()] {
            b.extend_from_slice(&(s.len() as u32).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        for c in [&self.view.sent_by_gov, &self.view.sent_by_bank] {
            b.extend_from_slice(&c.frames.to_le_bytes());
            b.extend_from_slice(&c.hash);
        }
        b.extend_from_slice(&self.chains.gov);
        b.extend_from_slice(&self.chains.bank);
        b.extend_from_slice(&reveals_digest(&self.reveals));
        match &self.completed {
            None => b.push(0),
            Some(c) => {
                b.push(1);
                b.extend_from_slice(&c.gov);
                b.extend_from_slice(&c.bank);
            }
        }
        b
    }

    /// Payload of `role`'s `phase.head` frame: its chain ‖ [`reveals_digest`] ‖ its outcome
    /// digest (completed jobs' last phase end only).
    pub fn head_frame(&self, role: Role) -> Vec<u8> {
        head_frame(self.chains.of(role), &reveals_digest(&self.reveals), self.completed.as_ref().map(|c| c.of(role)))
    }
}

/// Payload of a `phase.head` frame.
pub fn head_frame(chain: &[u8; 32], reveals: &[u8; 32], outcome: Option<&[u8; 32]>) -> Vec<u8> {
    let mut b = Vec::with_capacity(96);
    b.extend_from_slice(chain);
    b.extend_from_slice(reveals);
    if let Some(o) = outcome {
        b.extend_from_slice(o);
    }
    b
}

/// `BLAKE3-derive("tandem reveal record v2", JSON text of the record's reveal field)`.
pub fn reveal_hash(reveal_json: &[u8]) -> [u8; 32] {
    blake3::derive_key(REVEAL_HASH_CONTEXT, reveal_json)
}

/// `BLAKE3-derive("tandem phase reveals v2", u32 LE count ‖ each reveal hash)`.
pub fn reveals_digest(hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(REVEALS_DIGEST_CONTEXT);
    h.update(&(hashes.len() as u32).to_le_bytes());
    for x in hashes {
        h.update(x);
    }
    *h.finalize().as_bytes()
}

/// `BLAKE3-derive("tandem outcome digest v2", JSON text of the record's outcome field)`.
pub fn outcome_digest(outcome_json: &[u8]) -> [u8; 32] {
    blake3::derive_key(OUTCOME_DIGEST_CONTEXT, outcome_json)
}

/// The JSON text of `name`, the last field of the JSON object `obj` (`{…,"name":<value>}`).
/// A `,"` never occurs inside a JSON string (quotes there are escaped), so the first `,"name":`
/// outside nested objects is the field; callers use it for records whose earlier fields are flat.
pub fn last_field<'a>(obj: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let inner = obj.strip_suffix(b"}")?;
    let key = format!(",\"{name}\":");
    let at = inner.windows(key.len()).position(|w| w == key.as_bytes())?;
    Some(&inner[at + key.len()..])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Completed,
    Failed,
}

/// How the job ended; the last record, signed by its node. A completed outcome is also bound by
/// both nodes' signatures at the last phase end ([`PhaseHeads::completed`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// ROC curve points `[fpr, tpr]` (training jobs, if the policy lets this node see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roc: Option<Vec<[f64; 2]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_hist: Option<ScoreHist>,
    /// Train jobs: the test evaluation this node's operator sees (outcome field `evaluation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// Score jobs: population stability against the training population (outcome `stability`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stability: Option<Vec<Stability>>,
    /// Train jobs: the IV/scorecard table (outcome `scorecard_table`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard_table: Option<Vec<ScorecardFeature>>,
}

impl Outcome {
    pub fn completed() -> Outcome {
        Outcome {
            status: Status::Completed,
            reason: None,
            roc: None,
            score_hist: None,
            evaluation: None,
            stability: None,
            scorecard_table: None,
        }
    }
    pub fn failed(reason: &str) -> Outcome {
        Outcome { status: Status::Failed, reason: Some(reason.to_string()), ..Outcome::completed() }
    }

    /// The completed outcome carrying the report fields of the operator's `outcome`
    /// (`evaluation`, `stability`, `scorecard_table`, when present); an error names a field that
    /// does not have its documented shape.
    pub fn completed_with(outcome: &serde_json::Map<String, serde_json::Value>) -> anyhow::Result<Outcome> {
        fn field<T: serde::de::DeserializeOwned>(
            outcome: &serde_json::Map<String, serde_json::Value>,
            key: &str,
        ) -> anyhow::Result<Option<T>> {
            outcome.get(key).map(|v| serde_json::from_value(v.clone())).transpose().map_err(|e| {
                anyhow::anyhow!("outcome field '{key}' does not have its documented shape (SCHEMA.md): {e}")
            })
        }
        Ok(Outcome {
            evaluation: field(outcome, "evaluation")?,
            stability: field(outcome, "stability")?,
            scorecard_table: field(outcome, "scorecard_table")?,
            ..Outcome::completed()
        })
    }
}

/// One feature of the IV/scorecard table; None where this node may not see the value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScorecardFeature {
    /// "gov" or "bank".
    pub owner: String,
    pub feature: String,
    pub iv: Option<f64>,
    pub bins: Vec<ScorecardBin>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScorecardBin {
    pub bin: String,
    pub count: u64,
    pub woe: Option<f64>,
    pub points: Option<f64>,
}

/// Score distribution: `edges.len() == good.len() + 1`; `bad` is empty or as long as `good`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreHist {
    pub edges: Vec<f64>,
    pub good: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad: Vec<u64>,
}

/// One transcript record without its trailing `signature`/`chain` fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    Manifest {
        schema: String,
        time: String,
        /// Whose transcript this is.
        node: Role,
        manifest: Manifest,
    },
    Frame {
        /// 0-based frame number in this transcript (both directions).
        seq: u64,
        time: String,
        dir: Direction,
        phase: String,
        kind: String,
        len: u64,
        #[serde(with = "hex_bytes")]
        hash: [u8; 32],
        /// Offset of the payload in `<transcript>.payloads` when payloads are captured.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    Reveal {
        time: String,
        reveal: Reveal,
    },
    PhaseEnd {
        time: String,
        heads: PhaseHeads,
    },
    Outcome {
        time: String,
        outcome: Outcome,
    },
}

impl Record {
    pub fn time(&self) -> &str {
        match self {
            Record::Manifest { time, .. }
            | Record::Frame { time, .. }
            | Record::Reveal { time, .. }
            | Record::PhaseEnd { time, .. }
            | Record::Outcome { time, .. } => time,
        }
    }
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::Manifest { .. } => "manifest",
            Record::Frame { .. } => "frame",
            Record::Reveal { .. } => "reveal",
            Record::PhaseEnd { .. } => "phase_end",
            Record::Outcome { .. } => "outcome",
        }
    }
}

/// `chain = BLAKE3-derive("tandem transcript record v2", prev_chain ‖ canonical bytes)`;
/// the first record's `prev_chain` is 32 zero bytes.
pub fn record_chain(prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(RECORD_CHAIN_CONTEXT);
    h.update(prev);
    h.update(canonical);
    *h.finalize().as_bytes()
}

/// Appends `"name":"<hex of value>"` as the last field of the JSON object `obj`.
pub fn append_hex_field(obj: &[u8], name: &str, value: &[u8]) -> Vec<u8> {
    assert!(obj.len() > 2 && obj.ends_with(b"}"), "records are non-empty JSON objects");
    let mut out = Vec::with_capacity(obj.len() + name.len() + 2 * value.len() + 6);
    out.extend_from_slice(&obj[..obj.len() - 1]);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(hex::encode(value).as_bytes());
    out.extend_from_slice(b"\"}");
    out
}

/// Inverse of [`append_hex_field`]: splits `{…,"name":"<hex>"}` into `{…}` and the N decoded
/// bytes; `None` if the object does not end with exactly that field.
pub fn split_hex_field<const N: usize>(obj: &[u8], name: &str) -> Option<(Vec<u8>, [u8; N])> {
    let tail_len = name.len() + 2 * N + 7; // ,"name":"<hex>"}
    if obj.len() < tail_len + 2 || !obj.starts_with(b"{") {
        return None;
    }
    let (head, tail) = obj.split_at(obj.len() - tail_len);
    let mut expected_prefix = Vec::with_capacity(name.len() + 5);
    expected_prefix.extend_from_slice(b",\"");
    expected_prefix.extend_from_slice(name.as_bytes());
    expected_prefix.extend_from_slice(b"\":\"");
    let hex_part = tail.strip_prefix(expected_prefix.as_slice())?.strip_suffix(b"\"}")?;
    if !hex_part.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return None;
    }
    let bytes: [u8; N] = hex::decode(hex_part).ok()?.try_into().ok()?;
    let mut canonical = head.to_vec();
    canonical.push(b'}');
    Some((canonical, bytes))
}

/// Serde helper: 64-byte signatures as lowercase hex.
pub mod hex_sig {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(&s).map_err(serde::de::Error::custom)?;
        v.try_into().map_err(|_| serde::de::Error::custom("expected 64 bytes of hex"))
    }
}

/// Current time as RFC 3339 UTC with microseconds, e.g. `2026-01-31T12:00:00.000001Z`.
pub fn now_rfc3339() -> String {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format_rfc3339(since.as_secs() as i64, since.subsec_micros())
}

/// Formats Unix seconds + microseconds as RFC 3339 UTC.
pub fn format_rfc3339(unix_secs: i64, micros: u32) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` into Unix microseconds; `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let rest = s.get(19..)?.strip_suffix('Z')?;
    let micros = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        Some(frac) if !frac.is_empty() && frac.len() <= 9 && frac.bytes().all(|c| c.is_ascii_digit()) => {
            format!("{frac:0<6}")[..6].parse::<i64>().ok()?
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000) + micros)
}

// Howard Hinnant's civil-date algorithms (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_rejects_other_forms() {
        for (secs, micros) in [(0i64, 0u32), (951_782_400, 5), (1_767_225_599, 999_999), (4_102_444_800, 123_456)] {
            let s = format_rfc3339(secs, micros);
            assert_eq!(parse_rfc3339(&s), Some(secs * 1_000_000 + micros as i64), "{s}");
        }
        assert_eq!(format_rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400 * 1_000_000));
        for bad in ["2000-02-29 00:00:00Z", "2000-02-29T00:00:00+01:00", "2000-13-01T00:00:00Z", "x"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_fields_split_exactly_what_was_appended() {
        let obj = br#"{"type":"x","a":1}"#;
        let with = append_hex_field(obj, "chain", &[0xab; 32]);
        let (canonical, bytes) = split_hex_field::<32>(&with, "chain").unwrap();
        assert_eq!((canonical.as_slice(), bytes), (&obj[..], [0xab; 32]));
        assert!(split_hex_field::<32>(&with, "chainx").is_none());
        assert!(split_hex_field::<64>(&with, "chain").is_none());
        let upper = String::from_utf8(with).unwrap().replace("ab", "AB");
        assert!(split_hex_field::<32>(upper.as_bytes(), "chain").is_none(), "hex must be lowercase");
    }

    /// Known answers: any change to the record chain, the phase signing bytes or the digests they
    /// bind makes existing transcripts unverifiable, so it must be a new schema version.
    #[test]
    fn record_chain_and_digests_known_answers() {
        let c1 = record_chain(&[0; 32], br#"{"type":"outcome"}"#);
        assert_eq!(hex::encode(c1), "b26f2bb280b2dc88c4bcf577182ea9fc351df04b7ba6c8567ed64646c0741805");
        assert_eq!(
            hex::encode(record_chain(&c1, b"{}")),
            "b84f27b8b4804b02c6379bd7e1a1dd4536ab6923b05e03894e1c0e4daaed700f"
        );
        assert_eq!(
            hex::encode(reveals_digest(&[])),
            "ec15b0b40b2b2e7432ad6670be3ea036de6f628e19a7ed94355cdc121a6c1612"
        );
        assert_eq!(
            hex::encode(reveals_digest(&[[5; 32], [6; 32]])),
            "55d208910c48bbf79732a649c898d53dea88f0a47c90051e24e06299a1e76c6f"
        );
        assert_eq!(
            hex::encode(reveal_hash(br#"{"phase":"psi"}"#)),
            "9d207a1b0745fb9d132a0c09ad4a98847219293fabd2346901b4806f5f9fcd18"
        );
        assert_eq!(
            hex::encode(outcome_digest(br#"{"status":"completed"}"#)),
            "cef490a2c4ce88504c5173ff181fbfbc0d840c47d743185c01d5765eeaded498"
        );
        assert_eq!(
            hex::encode(manifest_digest_of_json(br#"{"job_id":"j"}"#)),
            "035978870d928f7f266b017ba435083448d28661301ee559293cceac49270110"
        );
    }

    #[test]
    fn phase_signing_bytes_known_answer() {
        use protocol::transcript::ChainHead;
        let mut heads = PhaseHeads {
            phase: "psi".into(),
            view: SharedView {
                sent_by_gov: ChainHead { frames: 3, hash: [1; 32] },
                sent_by_bank: ChainHead { frames: 258, hash: [2; 32] },
            },
            chains: NodeHashes { gov: [3; 32], bank: [4; 32] },
            reveals: vec![[5; 32], [6; 32]],
            completed: None,
            signatures: PhaseSignatures { gov: [0; 64], bank: [0; 64] },
        };
        // The layout written out by hand.
        let mut expected = b"tandem phase end v2\0".to_vec();
        expected.extend_from_slice(&[6, 0, 0, 0]);
        expected.extend_from_slice(b"job-42");
        expected.extend_from_slice(&[3, 0, 0, 0]);
        expected.extend_from_slice(b"psi");
        expected.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[1; 32]);
        expected.extend_from_slice(&[2, 1, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[2; 32]);
        expected.extend_from_slice(&[3; 32]);
        expected.extend_from_slice(&[4; 32]);
        expected.extend_from_slice(
            &hex::decode("55d208910c48bbf79732a649c898d53dea88f0a47c90051e24e06299a1e76c6f").unwrap(),
        );
        expected.push(0);
        assert_eq!(heads.signing_bytes("job-42"), expected);
        assert_eq!(
            hex::encode(blake3::hash(&expected).as_bytes()),
            "c7194b44e2532c80d44f5a3335ce7cd9fbd2378cde3a64aee8913b15fbc9c897"
        );

        heads.completed = Some(NodeHashes { gov: [7; 32], bank: [8; 32] });
        expected.pop();
        expected.push(1);
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(&[8; 32]);
        assert_eq!(heads.signing_bytes("job-42"), expected);
        assert_eq!(
            hex::encode(blake3::hash(&expected).as_bytes()),
            "cda0dcce0d02a97f171ea39e74f30ea1f8483c1cfeab211959e24496dc192c80"
        );
        let head = heads.head_frame(Role::Bank);
        assert_eq!(
            head,
            [
                &[4u8; 32][..],
                &hex::decode("55d208910c48bbf79732a649c898d53dea88f0a47c90051e24e06299a1e76c6f").unwrap(),
                &[8; 32]
            ]
            .concat()
        );
    }
}
