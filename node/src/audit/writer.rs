//! Appends a job's transcript: manifest, frames, reveals, phase ends, outcome (`SCHEMA.md`).
//!
//! Invariants: a transcript file is created once and only appended to (an existing file is never
//! opened for writing); each record is written with one `write` call as soon as it happens; the
//! outcome is the last record and is synced to disk; no record is written after it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result, anyhow, bail};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use protocol::transcript::{FrameEvent, FrameObserver};
use protocol::{Channel, Error, Role};

use super::record::{
    MANIFEST_KIND, MANIFEST_SIGNING_CONTEXT, Manifest, Outcome, PHASE_SIG_KIND, PhaseHeads, PhaseSignatures, Record,
    Reveal, SCHEMA, append_hex_field, now_rfc3339, record_chain,
};

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
    chain: [u8; 32],
    frames: u64,
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
            chain: [0; 32],
            frames: 0,
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

    /// Records a value that left a party.
    pub fn reveal(&self, reveal: Reveal) -> Result<()> {
        if reveal.to.is_empty() || reveal.to.contains(&reveal.from) {
            bail!("reveal '{}' must name recipients other than its sender {}", reveal.name, reveal.from);
        }
        self.lock().append(&Record::Reveal { time: now_rfc3339(), reveal })
    }

    /// Records a phase end. Both signatures are checked against the manifest keys first, so a
    /// transcript never holds a phase end that does not verify.
    pub fn phase_end(&self, heads: PhaseHeads) -> Result<()> {
        let mut state = self.lock();
        let msg = heads.view.signing_bytes(&state.job_id, &heads.phase);
        for role in [Role::Gov, Role::Bank] {
            let sig = Signature::from_bytes(heads.signatures.of(role));
            if state.keys[role.index()].verify_strict(&msg, &sig).is_err() {
                bail!(
                    "phase end '{}': the {role} signature does not verify against the manifest's {role} key",
                    heads.phase
                );
            }
        }
        state.append(&Record::PhaseEnd { time: now_rfc3339(), heads })
    }

    /// Records how the job ended, syncs the transcript to disk and closes it.
    pub fn outcome(&self, outcome: Outcome) -> Result<()> {
        let mut state = self.lock();
        state.append(&Record::Outcome { time: now_rfc3339(), outcome })?;
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

    /// Chains and writes one record given its canonical bytes (the JSON object without `chain`).
    fn writable(&self) -> Result<()> {
        if let Some(e) = &self.error {
            bail!("transcript {} is unusable after an earlier error: {e}", self.path.display());
        }
        if self.closed {
            bail!("transcript {} already has its outcome; nothing may follow it", self.path.display());
        }
        Ok(())
    }

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
        return Err(Error::Protocol(format!(
            "the peer's manifest for job '{}' differs from this node's (digest {} vs {}): the nodes \
             disagree on the job; compare both manifests",
            manifest.job_id,
            hex::encode(&theirs[..theirs.len().min(8)]),
            hex::encode(&mine[..8])
        )));
    }
    Ok(())
}

/// Phase-end step of every protocol: both nodes sign the channel's current shared view for
/// `phase` and swap signatures over the channel (frame kind [`PHASE_SIG_KIND`], 64 bytes each).
/// Call it on both sides when the phase's messages are all received (nothing in flight), so both
/// shared views are equal. The peer's signature is verified against `peer_pubkey` (from the
/// manifest); a mismatch means the two nodes saw different traffic, and is an error.
/// The two signature frames themselves are recorded after the signed heads.
pub fn exchange_phase_signatures(
    ch: &mut Channel,
    job_id: &str,
    phase: &str,
    my_key: &SigningKey,
    peer_pubkey: &VerifyingKey,
) -> protocol::Result<PhaseHeads> {
    let view = ch.shared_view();
    let msg = view.signing_bytes(job_id, phase);
    let mine = my_key.sign(&msg).to_bytes();
    ch.send_frame(PHASE_SIG_KIND, mine.to_vec())?;
    let theirs: [u8; 64] = ch.recv_frame(PHASE_SIG_KIND)?.try_into().map_err(|p: Vec<u8>| Error::Decode {
        kind: PHASE_SIG_KIND.into(),
        reason: format!("signature must be 64 bytes, got {}", p.len()),
    })?;
    if peer_pubkey.verify_strict(&msg, &Signature::from_bytes(&theirs)).is_err() {
        return Err(Error::Protocol(format!(
            "the peer's signature over the shared view at the end of phase '{phase}' does not verify: \
             the nodes saw different traffic, or the peer signs with another key than the manifest names"
        )));
    }
    let (gov, bank) = match ch.role() {
        Role::Gov => (mine, theirs),
        Role::Bank => (theirs, mine),
    };
    Ok(PhaseHeads { phase: phase.to_string(), view, signatures: PhaseSignatures { gov, bank } })
}
