//! A job's signed transcript (the [`audit`](crate::audit) module writes it; schema in
//! `audit/SCHEMA.md`): what each node tells the other about itself in the proposal and decision
//! ([`Side`]), the [`Manifest`] both build from that, and the writer with this node's keys.
//!
//! Both nodes build the manifest from the same exchanged values (the proposal and decision as
//! decoded from their frames) and from what each trusts about the peer — its name and Ed25519
//! key from the config, its certificate from the connection — never from what the peer says
//! about itself. So honest nodes build identical manifests, and `exchange_manifest_digest` checks
//! that they did. The proposal and decision are exchanged before the manifest exists: their
//! frames are held by [`EarlyFrames`] and written to the transcript, in order, right after the
//! manifest, so the transcript holds every frame of the job.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use ed25519_dalek::SigningKey;
use protocol::transcript::{Direction, FrameEvent, FrameObserver, hex_bytes};
use protocol::{Channel, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::spec::JobSpec;
use crate::audit::writer::PhaseEndError;
use crate::audit::{DatasetInfo, Manifest, NodeInfo, Outcome, Policies, TranscriptWriter, exchange_manifest_digest};
use crate::config::{Config, cert_fingerprint, format_fingerprint};
use crate::{datasets, identity};

/// File name of a job's transcript in its job directory.
pub const TRANSCRIPT_FILE: &str = "transcript.jsonl";

/// What a node tells its peer about itself, in the proposal (submitter) or decision (responder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    /// SHA-256 of the node's TLS certificate; the peer checks it against the connection.
    #[serde(with = "hex_bytes")]
    pub tls_cert_sha256: [u8; 32],
    /// The node's transcript-signing key; the peer checks it against its `peer.signing_key`.
    #[serde(with = "hex_bytes")]
    pub ed25519_public_key: [u8; 32],
    /// The dataset the node brings (names and row count); `None` when the node refuses the job.
    pub dataset: Option<DatasetInfo>,
    /// [`policy_summary`] of the node's policy.
    pub policy: Value,
}

/// This node's keys for a job: the transcript signing key and its certificate's fingerprint.
pub struct NodeKeys {
    pub signing: SigningKey,
    pub tls_cert_sha256: [u8; 32],
}

impl NodeKeys {
    pub fn load(config: &Config) -> Result<NodeKeys> {
        let cert = identity::load_cert(&config.node.tls_cert)?;
        Ok(NodeKeys {
            signing: identity::load_signing_key(&config.node.signing_key)?,
            tls_cert_sha256: cert_fingerprint(&cert),
        })
    }

    /// This node's [`Side`] for `spec`.
    pub fn side(&self, config: &Config, spec: &JobSpec, dataset: Option<DatasetInfo>) -> Side {
        Side {
            tls_cert_sha256: self.tls_cert_sha256,
            ed25519_public_key: self.signing.verifying_key().to_bytes(),
            dataset,
            policy: policy_summary(config, spec),
        }
    }
}

/// This node's dataset for `spec`: its name, the id column and the columns the job uses, and its
/// row count (read from the file now).
pub fn dataset_info(config: &Config, spec: &JobSpec) -> Result<DatasetInfo> {
    let role = config.node.role;
    let side = spec.side(role);
    let name = &side.dataset;
    let d = config.datasets.get(name).ok_or_else(|| anyhow!("dataset '{name}' is not configured (datasets.{name})"))?;
    let rows = datasets::count_rows(name, d)?;
    let columns = std::iter::once(&d.id_column).chain(side.used_columns()).cloned().collect();
    Ok(DatasetInfo { party: role, name: name.clone(), columns, rows })
}

/// What the manifest records of a node's policy: the rules that apply to `spec`, and the BLAKE3
/// of the whole `[policy]` section (as JSON) to tell policy versions apart.
pub fn policy_summary(config: &Config, spec: &JobSpec) -> Value {
    let p = &config.policy;
    let dataset = &spec.side(config.node.role).dataset;
    let whole = serde_json::to_vec(p).expect("a policy always encodes as JSON");
    json!({
        "blake3": hex::encode(blake3::hash(&whole).as_bytes()),
        "job_kinds": p.job_kinds,
        "reveals": p.reveals,
        "min_intersection": p.min_intersection,
        "dataset": dataset,
        "allowed_columns": p.datasets.get(dataset).map(|d| &d.columns),
    })
}

/// Checks what the peer says about itself against this node's config and the connection.
/// `Err` is a refusal text naming the config key to fix.
pub fn check_peer_side(config: &Config, peer_cert_sha256: &[u8; 32], side: &Side) -> Result<(), String> {
    let peer = &config.peer.name;
    let configured = config.peer_signing_key().map_err(|e| format!("{e:#}"))?;
    if side.ed25519_public_key != configured.to_bytes() {
        return Err(format!(
            "peer '{peer}' signs transcripts with key {} but this node's peer.signing_key is {}: \
             set peer.signing_key to the peer's signing.pub",
            hex::encode(side.ed25519_public_key),
            hex::encode(configured.as_bytes())
        ));
    }
    if side.tls_cert_sha256 != *peer_cert_sha256 {
        return Err(format!(
            "peer '{peer}' reports TLS certificate {} but presented {} on the connection",
            format_fingerprint(&side.tls_cert_sha256),
            format_fingerprint(peer_cert_sha256)
        ));
    }
    if let Some(d) = &side.dataset
        && d.party != config.peer.role
    {
        return Err(format!(
            "peer '{peer}' describes a dataset of party {} but its role is {}",
            d.party, config.peer.role
        ));
    }
    Ok(())
}

/// What the proposal fixed about the job (the proposal as decoded from its frame).
pub struct JobTerms<'a> {
    pub job_id: &'a str,
    /// RFC 3339 UTC time the job was submitted.
    pub created: &'a str,
    pub proposer: Role,
    pub operator: &'a str,
    pub spec: &'a JobSpec,
}

/// The job's manifest as this node sees it; `peer_side` is `None` when no decision arrived.
pub fn manifest(
    config: &Config,
    keys: &NodeKeys,
    peer_cert_sha256: &[u8; 32],
    terms: &JobTerms<'_>,
    my_side: &Side,
    peer_side: Option<&Side>,
) -> Result<Manifest> {
    let me = NodeInfo {
        name: config.node.name.clone(),
        role: config.node.role,
        tls_cert_sha256: keys.tls_cert_sha256,
        ed25519_public_key: keys.signing.verifying_key().to_bytes(),
    };
    let peer = NodeInfo {
        name: config.peer.name.clone(),
        role: config.peer.role,
        tls_cert_sha256: *peer_cert_sha256,
        ed25519_public_key: config.peer_signing_key()?.to_bytes(),
    };
    let i_am_gov = config.node.role == Role::Gov;
    let [gov_node, bank_node] = if i_am_gov { [me, peer] } else { [peer, me] };
    let [gov_side, bank_side] = if i_am_gov { [Some(my_side), peer_side] } else { [peer_side, Some(my_side)] };
    let datasets = [(Role::Gov, gov_side), (Role::Bank, bank_side)]
        .into_iter()
        .filter_map(|(role, side)| side?.dataset.clone().filter(|d| d.party == role))
        .collect();
    let policy = |side: Option<&Side>| side.map_or(Value::Null, |s| s.policy.clone());
    Ok(Manifest {
        job_id: terms.job_id.to_string(),
        kind: terms.spec.kind().as_str().to_string(),
        created: terms.created.to_string(),
        proposer: terms.proposer,
        nodes: vec![gov_node, bank_node],
        datasets,
        parameters: serde_json::to_value(terms.spec)?,
        policies: Policies { gov: policy(gov_side), bank: policy(bank_side) },
        operator: terms.operator.to_string(),
        consent: terms.spec.consents(),
    })
}

/// Frames seen before the transcript exists (proposal, decision), kept to be written into it.
#[derive(Clone, Default)]
pub struct EarlyFrames(Arc<Mutex<Vec<EarlyFrame>>>);

struct EarlyFrame {
    direction: Direction,
    phase: String,
    kind: String,
    payload: Vec<u8>,
    payload_hash: [u8; 32],
}

impl FrameObserver for EarlyFrames {
    fn on_frame(&mut self, f: &FrameEvent<'_>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(EarlyFrame {
            direction: f.direction,
            phase: f.phase.to_string(),
            kind: f.kind.to_string(),
            payload: f.payload.to_vec(),
            payload_hash: f.payload_hash,
        });
    }
}

/// A job's transcript (its writer holds the key that signs phase ends and the outcome).
pub struct JobTranscript {
    pub writer: TranscriptWriter,
    pub path: PathBuf,
    /// The manifest the transcript starts with.
    pub manifest: Manifest,
}

impl JobTranscript {
    /// Creates `<job_dir>/transcript.jsonl` (never an existing file) with `manifest`, writes the
    /// early frames into it, and makes it the observer of every later frame on `ch`.
    pub fn start(
        config: &Config,
        keys: &NodeKeys,
        manifest: Manifest,
        early: &EarlyFrames,
        ch: &mut Channel,
    ) -> Result<JobTranscript> {
        let dir = config.job_dir(&manifest.job_id);
        identity::create_private_dir(&dir).with_context(|| format!("cannot create job directory {}", dir.display()))?;
        let path = dir.join(TRANSCRIPT_FILE);
        let writer = TranscriptWriter::create(&path, manifest.clone(), &keys.signing, config.transcript.payloads)?;
        let mut observer = writer.observer();
        for f in std::mem::take(&mut *early.0.lock().unwrap_or_else(|p| p.into_inner())) {
            observer.on_frame(&FrameEvent {
                direction: f.direction,
                phase: &f.phase,
                kind: &f.kind,
                payload: &f.payload,
                payload_hash: f.payload_hash,
            });
        }
        ch.set_observer(observer);
        Ok(JobTranscript { writer, path, manifest })
    }

    /// First step once both nodes accepted the job: swap manifest digests (each checks the peer
    /// built the same manifest), so every later phase signature covers the manifest.
    pub fn exchange_manifest_digest(&self, ch: &mut Channel) -> protocol::Result<()> {
        exchange_manifest_digest(ch, &self.manifest)
    }

    /// Ends `phase`: both nodes sign every frame so far, both record chains and the phase's
    /// reveals, swap signatures (each checks the other's) and record the phase end. A mismatch
    /// means the nodes saw different traffic or recorded different reveals.
    pub fn end_phase(&self, ch: &mut Channel, phase: &str) -> Result<(), PhaseEndError> {
        self.writer.end_phase(ch, phase, None).map(|_| ())
    }

    /// Ends the last phase of a job that ran to its end: as [`JobTranscript::end_phase`], and
    /// both nodes also sign each node's `outcome`, which must be recorded next.
    pub fn end_completed(&self, ch: &mut Channel, phase: &str, outcome: &Outcome) -> Result<(), PhaseEndError> {
        self.writer.end_phase(ch, phase, Some(outcome)).map(|_| ())
    }
}
