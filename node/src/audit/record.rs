//! Transcript records (schema `tandem-transcript/1`, see `SCHEMA.md`), the record chain and the
//! line encoding shared by the writer and the verifier.
//!
//! Line encoding: every record is one line of compact JSON whose *last* field is
//! `"chain":"<64 hex>"`. The record's canonical bytes are the line without that trailing field
//! (`{...,"chain":"…"}` → `{...}`), so the chain covers the exact bytes on disk and needs no JSON
//! canonicalisation. The manifest record additionally ends (before `chain`) with
//! `"signature":"<128 hex>"`, the node's Ed25519 signature over
//! [`MANIFEST_SIGNING_CONTEXT`] ‖ the record's bytes without that field.

use ed25519_dalek::VerifyingKey;
use protocol::Role;
use protocol::transcript::{Direction, SharedView, hex_bytes};
use serde::{Deserialize, Serialize};

/// Schema name and version; carried by the first (manifest) record.
pub const SCHEMA: &str = "tandem-transcript/1";
/// BLAKE3 key-derivation context of the record chain.
pub const RECORD_CHAIN_CONTEXT: &str = "tandem transcript record v1";
/// Domain separator prefixed to the manifest record's bytes before signing.
pub const MANIFEST_SIGNING_CONTEXT: &[u8] = b"tandem transcript manifest v1\0";
/// Frame kind that carries a node's signature over the shared view at a phase end.
pub const PHASE_SIG_KIND: &str = "phase.sig";
/// Frame kind that carries the manifest digest, exchanged before the first protocol message so
/// that both nodes' phase signatures cover the manifest.
pub const MANIFEST_KIND: &str = "job.manifest";
/// BLAKE3 key-derivation context of [`manifest_digest`].
pub const MANIFEST_DIGEST_CONTEXT: &str = "tandem manifest digest v1";
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
    /// References to the consents / legal bases covering the data (e.g. agreement numbers).
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

    /// `BLAKE3-derive("tandem manifest digest v1", compact JSON of the manifest)`: the bytes are
    /// exactly the `manifest` field of the transcript's first record.
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

/// Hash of a revealed value's canonical bytes, for [`Reveal::value_hash`].
pub fn value_hash(canonical_bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(canonical_bytes).as_bytes()
}

/// Digest of a manifest given its JSON text, as written in the transcript.
pub fn manifest_digest_of_json(json: &[u8]) -> [u8; 32] {
    blake3::derive_key(MANIFEST_DIGEST_CONTEXT, json)
}

/// Both nodes' signatures over `SharedView::signing_bytes(job_id, phase)`.
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

/// The shared view at a phase end, signed by both nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseHeads {
    pub phase: String,
    pub view: SharedView,
    pub signatures: PhaseSignatures,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Completed,
    Failed,
}

/// How the job ended; the last record.
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
}

impl Outcome {
    pub fn completed() -> Outcome {
        Outcome { status: Status::Completed, reason: None, roc: None, score_hist: None }
    }
    pub fn failed(reason: &str) -> Outcome {
        Outcome { status: Status::Failed, reason: Some(reason.to_string()), roc: None, score_hist: None }
    }
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

/// `chain = BLAKE3-derive("tandem transcript record v1", prev_chain ‖ canonical bytes)`;
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
}
