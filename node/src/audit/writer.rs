//! Appends a job's transcript: manifest, frames, reveals, phase ends, outcome (`SCHEMA.md`).
//!
//! Invariants: a transcript file is created once and only appended to (an existing file is never
//! opened for writing); each record is written with one `write` call as soon as it happens; the
//! outcome is the last record, signed by this node and synced to disk; no record is written after
//! it. Every phase end is signed by both nodes over both record chains, so neither node can later
//! change a record before it (times included) without breaking the peer's signature.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result, anyhow, bail};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use protocol::transcript::{FrameEvent, FrameObserver};
use protocol::{Channel, Error, PeerError, Role};

use super::record::{
    MANIFEST_KIND, MANIFEST_SIGNING_CONTEXT, Manifest, NodeHashes, OUTCOME_SIGNING_CONTEXT, Outcome, PHASE_HEAD_KIND,
    PHASE_SIG_KIND, PhaseHeads, PhaseSignatures, Record, Reveal, SCHEMA, Status, append_hex_field, head_frame,
    now_rfc3339, outcome_digest, record_chain, reveal_hash, reveals_digest,
};

/// Why a phase end failed: the exchange with the peer (the variant says whose fault), or this
/// node's own transcript (storage, encoding).
#[derive(Debug, thiserror::Error)]
pub enum PhaseEndError {
    #[error(transparent)]
    Protocol(#[from] Error),
    #[error("{0:#}")]
    Local(#[from] anyhow::Error),
}

impl From<PeerError> for PhaseEndError {
    fn from(e: PeerError) -> PhaseEndError {
        PhaseEndError::Protocol(e.into())
    }
}

/// Path of the payload capture file that belongs to `transcript` (`<transcript>.payloads`).
pub fn payloads_path(transcript: &Path) -> PathBuf {
    let mut name = transcript.as_os_str().to_owned();
    name.push(".payloads");
    PathBuf::from(name)
}

/// Writes one node's transcript of one job. Cheap to share (clones write the same transcript):
/// the state is behind a mutex that the channel's observer handle shares.
#[derive(Clone)]
pub struct TranscriptWriter {
    state: Arc<Mutex<State>>,
}

struct State {
    path: PathBuf,
    file: File,
    /// Payload capture file and the offset of its end.
    payloads: Option<(File, u64)>,
    job_id: String,
    me: Role,
    keys: [VerifyingKey; 2],
    /// This node's key: signs phase ends and the outcome.
    signing_key: SigningKey,
    chain: [u8; 32],
    frames: u64,
    /// [`reveal_hash`] of each reveal recorded since the last phase end.
    phase_reveals: Vec<[u8; 32]>,
    /// The outcome digest this node signed as completed at the last phase end, if it did.
    signed_completion: Option<[u8; 32]>,
    closed: bool,
    /// First write error; every later call reports it (an observer cannot return errors).
    error: Option<String>,
}

impl TranscriptWriter {
    /// Creates the transcript at `path` (refusing an existing file) and writes the manifest
    /// record signed with `signing_key`, which must be one of the manifest's node keys; that node
    /// is the transcript's owner. With `capture_payloads`, every frame's payload is appended to
    /// `<path>.payloads` so an auditor can re-hash it.
    pub fn create(
        path: &Path,
        manifest: Manifest,
        signing_key: &SigningKey,
        capture_payloads: bool,
    ) -> Result<TranscriptWriter> {
        manifest.validate().map_err(|e| anyhow!("cannot start transcript {}: {e}", path.display()))?;
        let keys = [manifest.verifying_key(Role::Gov), manifest.verifying_key(Role::Bank)]
            .map(|k| k.expect("validated manifest has both keys"));
        let mine = signing_key.verifying_key();
        let me = match keys.iter().position(|k| *k == mine) {
            Some(0) => Role::Gov,
            Some(_) => Role::Bank,
            None => bail!(
                "cannot start transcript {}: this node's signing key (public key {}) is neither node's \
                 ed25519_public_key in the manifest of job '{}'; put this node's public key in the manifest",
                path.display(),
                hex::encode(mine.as_bytes()),
                manifest.job_id
            ),
        };
        let file = create_new(path)?;
        let payloads = if capture_payloads {
            match create_new(&payloads_path(path)) {
                Ok(f) => Some((f, 0)),
                Err(e) => {
                    drop(file);
                    let _ = std::fs::remove_file(path); // empty: created just above
                    return Err(e);
                }
            }
        } else {
            None
        };
        let mut state = State {
            path: path.to_path_buf(),
            file,
            payloads,
            job_id: manifest.job_id.clone(),
            me,
            keys,
            signing_key: signing_key.clone(),
            chain: [0; 32],
            frames: 0,
            phase_reveals: Vec::new(),
            signed_completion: None,
            closed: false,
            error: None,
        };
        let record = Record::Manifest { schema: SCHEMA.into(), time: now_rfc3339(), node: me, manifest };
        let unsigned = serde_json::to_vec(&record).context("cannot encode the manifest record")?;
        let mut signed_msg = MANIFEST_SIGNING_CONTEXT.to_vec();
        signed_msg.extend_from_slice(&unsigned);
        let signature = signing_key.sign(&signed_msg).to_bytes();
        state.append_canonical(append_hex_field(&unsigned, "signature", &signature))?;
        Ok(TranscriptWriter { state: Arc::new(Mutex::new(state)) })
    }

    /// A handle for [`Channel::set_observer`]: records every frame the channel sends or receives.
    pub fn observer(&self) -> Box<dyn FrameObserver> {
        Box::new(Observer { state: Arc::clone(&self.state) })
    }

    /// Records a value that left a party. Both nodes record the same reveals; the next phase end
    /// fails unless they did.
    pub fn reveal(&self, reveal: Reveal) -> Result<()> {
        if reveal.to.is_empty() || reveal.to.contains(&reveal.from) {
            bail!("reveal '{}' must name recipients other than its sender {}", reveal.name, reveal.from);
        }
        let json = serde_json::to_vec(&reveal).context("cannot encode a reveal")?;
        let mut state = self.lock();
        if state.signed_completion.is_some() {
            bail!(
                "reveal '{}' after both nodes signed the job's completion: record reveals in their phase",
                reveal.name
            );
        }
        state.append(&Record::Reveal { time: now_rfc3339(), reveal })?;
        state.phase_reveals.push(reveal_hash(&json));
        Ok(())
    }

    /// Ends `phase` with the peer: call it on both nodes when the phase's messages are all
    /// received. Each node sends its record chain and the digest of the phase's reveals
    /// (`phase.head`), then both sign the [`PhaseHeads`] (the shared view of every frame so far,
    /// both record chains, the phase's reveals) and swap signatures (`phase.sig`); the phase end
    /// record holds both. `completed` is given at the last phase end of a job that ran to its end:
    /// this node's outcome, which both nodes then sign and which [`TranscriptWriter::outcome`]
    /// must record next. Errors when the nodes recorded different reveals, complete differently,
    /// or the peer's signature does not verify against its manifest key (they saw different
    /// traffic); the peer learns only this node's chain head, reveal digest and signature.
    pub fn end_phase(
        &self,
        ch: &mut Channel,
        phase: &str,
        completed: Option<&Outcome>,
    ) -> Result<PhaseHeads, PhaseEndError> {
        if completed.is_some_and(|o| o.status != Status::Completed) {
            return Err(anyhow!("phase end '{phase}': only a completed outcome is signed by both nodes").into());
        }
        let my_outcome = completed
            .map(|o| serde_json::to_vec(o).map(|json| outcome_digest(&json)))
            .transpose()
            .context("cannot encode the outcome")?;
        let (me, job_id, chain, reveals, key, peer_key) = {
            let state = self.lock();
            state.writable()?;
            let me = state.me;
            let peer_key = state.keys[me.peer().index()];
            (me, state.job_id.clone(), state.chain, state.phase_reveals.clone(), state.signing_key.clone(), peer_key)
        };
        let view = ch.shared_view();
        let my_reveals = reveals_digest(&reveals);
        ch.send_frame(PHASE_HEAD_KIND, head_frame(&chain, &my_reveals, my_outcome.as_ref()))?;
        let theirs = ch.recv_frame(PHASE_HEAD_KIND)?;
        let expected_len = if my_outcome.is_some() { 96 } else { 64 };
        if theirs.len() != expected_len {
            let who = match my_outcome {
                Some(_) => "this node completes the job but the peer does not",
                None => "the peer completes the job but this node does not",
            };
            return Err(Error::Mismatch {
                what: "job completions",
                detail: format!("at the end of phase '{phase}' {who} ('{PHASE_HEAD_KIND}' of {} bytes)", theirs.len()),
            }
            .into());
        }
        let field = |i: usize| -> [u8; 32] { theirs[32 * i..32 * (i + 1)].try_into().expect("32 bytes") };
        if field(1) != my_reveals {
            return Err(Error::Mismatch {
                what: "recorded reveals",
                detail: format!(
                    "phase '{phase}' ({} here): a value was opened without both nodes recording it",
                    reveals.len()
                ),
            }
            .into());
        }
        let mut heads = PhaseHeads {
            phase: phase.to_string(),
            view,
            chains: NodeHashes::pair(me, chain, field(0)),
            reveals,
            completed: my_outcome.map(|mine| NodeHashes::pair(me, mine, field(2))),
            signatures: PhaseSignatures { gov: [0; 64], bank: [0; 64] },
        };
        let msg = heads.signing_bytes(&job_id);
        let mine = key.sign(&msg).to_bytes();
        ch.send_frame(PHASE_SIG_KIND, mine.to_vec())?;
        let theirs: [u8; 64] = ch.recv_frame(PHASE_SIG_KIND)?.try_into().map_err(|p: Vec<u8>| {
            Error::Peer(PeerError::Decode {
                kind: PHASE_SIG_KIND.into(),
                reason: format!("signature must be 64 bytes, got {}", p.len()),
            })
        })?;
        if peer_key.verify_strict(&msg, &Signature::from_bytes(&theirs)).is_err() {
            return Err(Error::from(PeerError::BadSignature {
                what: format!("the peer's signature at the end of phase '{phase}' (under the key the manifest names)"),
            })
            .into());
        }
        heads.signatures = match me {
            Role::Gov => PhaseSignatures { gov: mine, bank: theirs },
            Role::Bank => PhaseSignatures { gov: theirs, bank: mine },
        };
        let mut state = self.lock();
        state.append(&Record::PhaseEnd { time: now_rfc3339(), heads: heads.clone() })?;
        state.phase_reveals.clear();
        state.signed_completion = my_outcome;
        Ok(heads)
    }

    /// Records how the job ended, signed by this node over its whole record chain, syncs the
    /// transcript to disk and closes it. A completed outcome must be the one both nodes signed at
    /// the last phase end ([`TranscriptWriter::end_phase`]); after that, nothing else may be
    /// recorded. A failed outcome is signed by this node alone (the peer may be gone).
    pub fn outcome(&self, outcome: Outcome) -> Result<()> {
        let json = serde_json::to_vec(&outcome).context("cannot encode the outcome")?;
        let mut state = self.lock();
        state.writable()?;
        match (state.signed_completion, outcome.status) {
            (Some(signed), Status::Completed) if signed == outcome_digest(&json) => {}
            (Some(_), _) => bail!(
                "transcript {}: both nodes signed another outcome at the last phase end; record exactly that one",
                state.path.display()
            ),
            (None, Status::Completed) => bail!(
                "transcript {}: a completed outcome needs both nodes' signatures: end the last phase with it",
                state.path.display()
            ),
            (None, Status::Failed) => {}
        }
        let unsigned = serde_json::to_vec(&Record::Outcome { time: now_rfc3339(), outcome })
            .context("cannot encode the outcome record")?;
        let mut msg = OUTCOME_SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(&state.chain);
        msg.extend_from_slice(&unsigned);
        let signature = state.signing_key.sign(&msg).to_bytes();
        state.append_canonical(append_hex_field(&unsigned, "signature", &signature))?;
        state.closed = true;
        let synced = state.file.sync_all().and_then(|_| match &state.payloads {
            Some((f, _)) => f.sync_all(),
            None => Ok(()),
        });
        synced.with_context(|| format!("cannot sync transcript {}", state.path.display()))
    }

    /// The node whose transcript this is.
    pub fn role(&self) -> Role {
        self.lock().me
    }

    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Creates a transcript or payload file, owner-only (0600); never an existing file.
fn create_new(path: &Path) -> Result<File> {
    OpenOptions::new().append(true).create_new(true).mode(0o600).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!(
                "transcript file {} already exists; transcripts are never overwritten: use a new path or move the old file away",
                path.display()
            )
        } else {
            anyhow!("cannot create transcript file {}: {e}", path.display())
        }
    })
}

impl State {
    fn append(&mut self, record: &Record) -> Result<()> {
        let canonical = serde_json::to_vec(record).context("cannot encode transcript record")?;
        self.append_canonical(canonical)
    }

    fn writable(&self) -> Result<()> {
        if let Some(e) = &self.error {
            bail!("transcript {} is unusable after an earlier error: {e}", self.path.display());
        }
        if self.closed {
            bail!("transcript {} already has its outcome; nothing may follow it", self.path.display());
        }
        Ok(())
    }

    /// Chains and writes one record given its canonical bytes (the JSON object without `chain`).
    fn append_canonical(&mut self, canonical: Vec<u8>) -> Result<()> {
        self.writable()?;
        let chain = record_chain(&self.chain, &canonical);
        let mut line = append_hex_field(&canonical, "chain", &chain);
        line.push(b'\n');
        if let Err(e) = self.file.write_all(&line).and_then(|_| self.file.flush()) {
            let msg = format!("cannot append to transcript {}: {e}", self.path.display());
            self.error = Some(msg.clone());
            bail!(msg);
        }
        self.chain = chain;
        Ok(())
    }

    fn on_frame(&mut self, frame: &FrameEvent<'_>) -> Result<()> {
        self.writable()?;
        let offset = match &mut self.payloads {
            Some((file, end)) => {
                let offset = *end;
                if let Err(e) = file.write_all(frame.payload).and_then(|_| file.flush()) {
                    let msg = format!("cannot append to payload file of {}: {e}", self.path.display());
                    self.error = Some(msg.clone());
                    bail!(msg);
                }
                *end += frame.payload.len() as u64;
                Some(offset)
            }
            None => None,
        };
        let record = Record::Frame {
            seq: self.frames,
            time: now_rfc3339(),
            dir: frame.direction,
            phase: frame.phase.to_string(),
            kind: frame.kind.to_string(),
            len: frame.payload.len() as u64,
            hash: frame.payload_hash,
            offset,
        };
        self.append(&record)?;
        self.frames += 1;
        Ok(())
    }
}

struct Observer {
    state: Arc<Mutex<State>>,
}

impl FrameObserver for Observer {
    fn on_frame(&mut self, frame: &FrameEvent<'_>) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The channel cannot take an error: keep the first one for the next reveal/phase_end/
        // outcome call to report (a frame after the outcome is refused and only logged).
        if let Err(e) = state.on_frame(frame) {
            if state.error.is_none() && !state.closed {
                state.error = Some(e.to_string());
            }
            tracing::error!("transcript: {e}");
        }
    }
}

/// First step of every job, right after the observer is set: each node sends the digest of its
/// manifest (frame kind [`MANIFEST_KIND`], 32 bytes) and checks the peer's is equal. The two
/// frames enter the shared view, so every later phase signature of both nodes covers the manifest.
pub fn exchange_manifest_digest(ch: &mut Channel, manifest: &Manifest) -> protocol::Result<()> {
    let mine = manifest.digest();
    ch.send_frame(MANIFEST_KIND, mine.to_vec())?;
    let theirs = ch.recv_frame(MANIFEST_KIND)?;
    if theirs != mine {
        return Err(Error::Mismatch {
            what: "job manifests",
            detail: format!(
                "job '{}', digest {} here and {} at the peer: the nodes disagree on the job; compare both manifests",
                manifest.job_id,
                hex::encode(&mine[..8]),
                hex::encode(&theirs[..theirs.len().min(8)])
            ),
        });
    }
    Ok(())
}
