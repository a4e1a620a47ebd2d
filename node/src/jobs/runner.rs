//! Runs one job over its channel, on a blocking thread, identically on both nodes:
//!
//! 1. `connect` (done by the daemon: QUIC connection, hello, job stream);
//! 2. `policy`: the submitter sends `job.proposal`, the peer checks its policy and answers
//!    `job.decision`; each carries the sender's [`Side`] (keys, dataset and row count, policy
//!    summary). Both nodes then build the job's manifest and start its signed transcript
//!    (`<data_dir>/jobs/<id>/transcript.jsonl`, see [`super::transcript`]). A refusal ends the
//!    job here on both nodes, with the rule that refused it as the transcript's failed outcome.
//!    Otherwise both swap manifest digests (`job.manifest`) and sign the phase;
//! 3. the job kind's [`phases`], in order — **this is where protocol phases plug in** — each
//!    ended by both nodes signing the shared view of all frames so far (`phase.sig`), so a
//!    difference in what the two nodes saw stops the job at the phase where it happened;
//! 4. `finish`: the result files are saved, then one last phase end at which both nodes sign
//!    every frame and record so far and each node's completed outcome; then the outcome.
//!
//! Every transcript that was started gets an outcome, also when the job fails (with the reason).
//! Progress and results go to the job record in the [`Store`], which the admin API serves.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use protocol::channel::Transport;
use protocol::{Channel, Role};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::failure::{self, FailureKind, InputResult, JobContext, JobError, Result};
use super::policy::{self, Refusal};
use super::record::{JobRecord, JobState, StepState, check_operator};
use super::spec::{JobSpec, Params, Reveal};
use super::store::Store;
use super::transcript::{EarlyFrames, JobTerms, JobTranscript, NodeKeys, Side, check_peer_side, dataset_info};
use crate::audit::record::{format_rfc3339, parse_rfc3339};
use crate::audit::{self, Manifest, Outcome, ScoreHist, TranscriptWriter, value_hash};
use crate::config::{Config, DatasetConfig};
use crate::transport::stream::Stop;

pub const CONNECT: &str = "connect";
pub const POLICY: &str = "policy";
pub const FINISH: &str = "finish";

/// Reason given to jobs that were running when their node shut down cleanly.
pub const SHUT_DOWN: &str = "node shutting down; resubmit the job once both nodes run";

/// A protocol phase: runs on both nodes with the same channel; returns when its messages are done.
pub type PhaseFn<'p> = Box<dyn Fn(&mut PhaseContext<'_>, &mut Channel) -> Result<()> + 'p>;

pub struct Phase<'p> {
    /// Step name shown to operators and recorded as the transcript phase of its frames.
    pub name: &'static str,
    pub run: PhaseFn<'p>,
}

/// The phases of each job kind, run in this order on both nodes after the policy step; each
/// gets its kind's typed `[params]`.
pub fn phases(params: &Params) -> Vec<Phase<'_>> {
    use super::phases::{checkup, psi, score, train};
    let psi = Phase { name: "psi", run: Box::new(psi::run) };
    match params {
        Params::Psi => vec![psi],
        Params::Train(p) => vec![psi, Phase { name: "train", run: Box::new(move |ctx, ch| train::run(ctx, ch, p)) }],
        Params::Score(p) => vec![psi, Phase { name: "score", run: Box::new(move |ctx, ch| score::run(ctx, ch, p)) }],
        Params::Watchlist(p) => {
            vec![psi, Phase { name: "watchlist", run: Box::new(move |ctx, ch| score::watchlist(ctx, ch, p)) }]
        }
        Params::Checkup(p) => vec![Phase { name: "checkup", run: Box::new(move |ctx, ch| checkup::run(ctx, ch, p)) }],
    }
}

/// All steps of a job with `params`, as listed in its record.
pub fn step_names(params: &Params) -> Vec<&'static str> {
    let mut names = vec![CONNECT, POLICY];
    names.extend(phases(params).iter().map(|p| p.name));
    names.push(FINISH);
    names
}

/// What phases hand to later phases, typed.
#[derive(Default)]
pub struct Artifacts {
    /// The `psi` phase's aligned rows (when this node learns them: reveal `intersection_ids`).
    pub aligned: Option<super::phases::psi::Aligned>,
}

/// ROC curve and score histogram a training job attaches to its transcript outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomePlot {
    /// Points `[false positive rate, true positive rate]`.
    pub roc: Vec<[f64; 2]>,
    pub score_hist: ScoreHist,
}

/// What a phase gets besides the channel.
pub struct PhaseContext<'a> {
    pub job_id: &'a str,
    pub spec: &'a JobSpec,
    /// This node's role (the peer has the other one).
    pub role: Role,
    pub config: &'a Config,
    /// This node's dataset for the job: `spec.side(role).dataset`, looked up in `config.datasets`.
    pub dataset_name: &'a str,
    pub dataset: &'a DatasetConfig,
    /// `<data_dir>/jobs/<id>/`: the phase may write its outputs here.
    pub job_dir: &'a Path,
    /// Results shown to this node's operator (`tandem job status`): only what the reveal modes allow.
    pub outcome: &'a mut Map<String, Value>,
    pub artifacts: &'a mut Artifacts,
    /// This node's job records (e.g. for the scoring budget).
    pub store: &'a Store,
    /// This node's open scoring sessions ([`crate::sessions`]).
    pub sessions: &'a crate::sessions::Sessions,
    reporter: &'a Reporter,
    phase: &'static str,
    transcript: &'a TranscriptWriter,
    plot: &'a mut Option<OutcomePlot>,
    files: &'a mut Vec<ResultFile>,
}

/// A result file kept until the whole job has succeeded.
pub struct ResultFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl PhaseContext<'_> {
    /// Reports progress within the current phase (`fraction` in 0..=1). Cheap: writes are throttled.
    pub fn progress(&self, fraction: f64, message: &str) {
        self.reporter.progress(self.phase, fraction, message);
    }

    /// Keeps a result file (owner-only) to write once every phase has run, just before both nodes
    /// sign the job's completion; removed again if that fails, so a failed job leaves no result
    /// files. Written whole, never over an existing file ([`crate::identity::write_new_file`]).
    pub fn write_on_success(&mut self, path: PathBuf, bytes: Vec<u8>) {
        self.files.push(ResultFile { path, bytes });
    }

    /// Records in this node's transcript that the value `name` left party `from` and is now
    /// known to its peer: `value` is its canonical bytes (only their BLAKE3 is recorded),
    /// `summary` a short readable text or a JSON object of metrics (reports show it as a table),
    /// `rule` the policy rule that allowed it (recorded as `policy.reveals: <rule>`).
    ///
    /// **Both nodes must call this with identical arguments for the same reveal**, in the same
    /// order relative to their other reveals (`tandem audit compare` requires equal reveal
    /// records); call it when the value has been sent/received, before the phase returns.
    /// A value both parties learn from a joint computation is two reveals, one per direction
    /// (each party's share left it).
    pub fn reveal(&mut self, name: &str, value: &[u8], summary: &str, from: Role, rule: Reveal) -> Result<()> {
        self.reveal_hash(name, value_hash(value), summary, from, rule)
    }

    /// [`Self::reveal`] of a value whose recorded hash is `value_hash` rather than the value's
    /// plain BLAKE3: for values an auditor could otherwise confirm by guessing (e.g. the
    /// intersection's ids, hashed with the job's audit key, see `SCHEMA.md`).
    pub fn reveal_hash(
        &mut self,
        name: &str,
        value_hash: [u8; 32],
        summary: &str,
        from: Role,
        rule: Reveal,
    ) -> Result<()> {
        Ok(self.transcript.reveal(audit::Reveal {
            phase: self.phase.to_string(),
            name: name.to_string(),
            value_hash,
            summary: summary.to_string(),
            from,
            to: vec![from.peer()],
            rule: Reveal::transcript_rule(rule.as_str()),
            frames: Vec::new(),
        })?)
    }

    /// Attaches a ROC curve and score histogram to the transcript's outcome (training jobs;
    /// only if this node's policy lets its operator see them). `audit report --html` draws them.
    /// The last call wins. Errors when the histogram's shape is inconsistent or a value is not finite.
    pub fn set_outcome_plot(&mut self, roc: Vec<[f64; 2]>, score_hist: ScoreHist) -> Result<()> {
        let h = &score_hist;
        if h.edges.len() != h.good.len() + 1 || !(h.bad.is_empty() || h.bad.len() == h.good.len()) {
            crate::job_bail!(
                "score histogram of phase '{}': {} edges need {} good counts, got {} and {} (bad counts: as many, or none)",
                self.phase,
                h.edges.len(),
                h.edges.len().saturating_sub(1),
                h.good.len(),
                h.bad.len()
            );
        }
        if !roc.iter().flatten().chain(&h.edges).all(|x| x.is_finite()) {
            crate::job_bail!("ROC curve or histogram of phase '{}' has a value that is not finite", self.phase);
        }
        *self.plot = Some(OutcomePlot { roc, score_hist });
        Ok(())
    }
}

/// The gate of a job's channel ([`protocol::disclose`]): a value may be opened only under a rule
/// the job lists in `reveal` (both nodes' policies allowed each before the job started), and every
/// opened value becomes a reveal record in this node's transcript, naming the frames that carried it.
struct JobGate {
    allowed: Vec<&'static str>,
    writer: TranscriptWriter,
}

impl JobGate {
    fn new(spec: &JobSpec, writer: &TranscriptWriter) -> JobGate {
        JobGate { allowed: spec.reveal.iter().map(|r| r.as_str()).collect(), writer: writer.clone() }
    }
}

impl protocol::disclose::Gate for JobGate {
    fn allow(&self, rule: &str) -> protocol::Result<()> {
        if self.allowed.contains(&rule) {
            Ok(())
        } else {
            Err(protocol::InputError::RevealRefused { rule: rule.into() }.into())
        }
    }

    fn record(&mut self, d: protocol::disclose::Disclosure) -> protocol::Result<()> {
        let rule = Reveal::transcript_rule(&d.rule);
        let reveal = audit::Reveal { rule, ..audit::Reveal::from(d) };
        self.writer.reveal(reveal).map_err(|e| protocol::Error::Record(format!("{e:#}")))
    }
}

/// Throttled writer of step progress into the job record.
struct Reporter {
    store: Store,
    id: String,
    last: Mutex<Option<Instant>>,
    /// The step last started (named in what the peer is told when the job fails).
    current: Mutex<&'static str>,
}

impl Reporter {
    fn new(store: &Store, id: &str) -> Reporter {
        Reporter { store: store.clone(), id: id.to_string(), last: Mutex::new(None), current: Mutex::new(CONNECT) }
    }

    fn current_step(&self) -> &'static str {
        *self.current.lock().expect("reporter lock")
    }

    fn progress(&self, step: &str, fraction: f64, message: &str) {
        let mut last = self.last.lock().expect("reporter lock");
        let due = fraction >= 1.0 || last.is_none_or(|t| t.elapsed() >= Duration::from_millis(250));
        if !due {
            return;
        }
        *last = Some(Instant::now());
        let _ = self.store.update(&self.id, |r| {
            if let Some(s) = r.step_mut(step) {
                s.progress = fraction.clamp(0.0, 1.0);
                s.message = message.to_string();
            }
        });
    }

    fn step(&self, step: &'static str, state: StepState) {
        if state == StepState::Running {
            *self.current.lock().expect("reporter lock") = step;
        }
        let _ = self.store.update(&self.id, |r| {
            if r.state == JobState::Pending {
                r.state = JobState::Running;
            }
            if let Some(s) = r.step_mut(step) {
                s.state = state;
                if state == StepState::Done {
                    s.progress = 1.0;
                }
            }
        });
    }
}

/// What the runner needs from the daemon.
pub struct JobEnv {
    pub config: Arc<Config>,
    pub store: Store,
    /// Set when this node stops the job: its operator cancelled it, or the node shuts down.
    pub stop: watch::Receiver<Option<Stop>>,
    /// Peer certificate fingerprint (`sha256:..`) when pinned, for `policy.allowed_peers`.
    pub peer_fingerprint: Option<String>,
    /// SHA-256 of the certificate the peer presented on this job's connection (for the manifest).
    pub peer_cert_sha256: [u8; 32],
    pub sessions: crate::sessions::Sessions,
}

/// The proposal the submitter sends; the first message on the job's channel. A field this node
/// does not know refuses the proposal: no term the peer sent is silently dropped.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    pub id: String,
    pub submitted_by: String,
    /// RFC 3339 UTC time the operator submitted the job.
    pub created: String,
    /// Who submitted it (`tandem job submit --operator`).
    pub operator: String,
    pub spec: JobSpec,
    pub side: Side,
}

/// The peer's answer to a proposal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why the peer refuses the job (names the rule); `None` accepts it.
    pub refusal: Option<String>,
    pub side: Side,
}

/// `v` as JSON bytes and as decoded back from them: both nodes build the manifest from the
/// message as decoded from its bytes, so the sender uses exactly what the receiver will see.
fn json_round_trip<T: Serialize + DeserializeOwned>(v: &T) -> Result<(Vec<u8>, T)> {
    let bytes = serde_json::to_vec(v)?;
    let back = serde_json::from_slice(&bytes)?;
    Ok((bytes, back))
}

fn recv_json<T: DeserializeOwned>(ch: &mut Channel, kind: &str) -> protocol::Result<T> {
    let bytes = ch.recv_frame(kind)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| protocol::PeerError::Decode { kind: kind.to_string(), reason: format!("JSON: {e}") }.into())
}

/// A channel for a job whose first frames are kept until the transcript exists.
fn early_channel(env: &JobEnv, transport: Box<dyn Transport>) -> (Channel, EarlyFrames) {
    let early = EarlyFrames::default();
    let mut ch = Channel::new(transport, env.config.node.role);
    ch.set_observer(Box::new(early.clone()));
    ch.set_phase(POLICY);
    (ch, early)
}

/// Starts the transcript and points the job record at it.
fn start_transcript(
    env: &JobEnv,
    keys: &NodeKeys,
    manifest: anyhow::Result<Manifest>,
    early: &EarlyFrames,
    ch: &mut Channel,
) -> Result<JobTranscript> {
    let transcript = JobTranscript::start(&env.config, keys, manifest?, early, ch)?;
    let path = transcript.path.clone();
    env.store.update(&transcript.manifest.job_id, |r| r.transcript = Some(path.clone()))?;
    Ok(transcript)
}

/// Submitting node: the job record `id` exists (state pending); `transport` is its job stream.
pub fn run_submitter(env: &JobEnv, id: &str, transport: Box<dyn Transport>) {
    let reporter = Reporter::new(&env.store, id);
    let (mut ch, early) = early_channel(env, transport);
    let result = (|| -> Result<()> {
        let record = env.store.get(id)?.ok_or_else(|| anyhow!("no job '{id}'"))?;
        reporter.step(CONNECT, StepState::Done);
        reporter.step(POLICY, StepState::Running);
        let keys = NodeKeys::load(&env.config)?;
        let me = keys.side(&env.config, &record.spec, Some(dataset_info(&env.config, &record.spec).input()?));
        let created = format_rfc3339((record.created_ms / 1000) as i64, (record.created_ms % 1000) as u32 * 1000);
        let proposal = Proposal {
            id: id.to_string(),
            submitted_by: env.config.node.name.clone(),
            created,
            operator: record.operator.clone(),
            spec: record.spec.clone(),
            side: me,
        };
        let (bytes, proposal) = json_round_trip(&proposal)?;
        let decision =
            ch.send_frame("job.proposal", bytes).and_then(|()| recv_json::<Decision>(&mut ch, "job.decision"));
        let terms = JobTerms {
            job_id: id,
            created: &proposal.created,
            proposer: env.config.node.role,
            operator: &proposal.operator,
            spec: &proposal.spec,
        };
        let peer_side = decision.as_ref().ok().map(|d| &d.side);
        let manifest =
            super::transcript::manifest(&env.config, &keys, &env.peer_cert_sha256, &terms, &proposal.side, peer_side);
        let transcript = match start_transcript(env, &keys, manifest, &early, &mut ch) {
            Ok(t) => t,
            Err(e) => {
                finish(env, &reporter, &mut ch, None, Err(e));
                return Ok(());
            }
        };
        let outcome = decision.map_err(JobError::from).and_then(|d| {
            if let Some(reason) = d.refusal {
                return Err(JobError::Refused(format!("rejected by peer '{}': {reason}", env.config.peer.name)));
            }
            check_peer_side(&env.config, &env.peer_cert_sha256, &d.side)
                .map_err(|e| JobError::Policy { rule: "peer.signing_key / peer.fingerprint", error: anyhow!(e) })?;
            run_agreed(env, &reporter, &transcript, &terms, &mut ch)
        });
        finish(env, &reporter, &mut ch, Some(&transcript), outcome);
        Ok(())
    })();
    if let Err(e) = result {
        // Nothing was proposed (or the record is gone): tell the peer, fail the job here.
        finish(env, &reporter, &mut ch, None, Err(e));
    }
}

/// Peer node: `transport` is a job stream the peer opened for job `id` (not yet in the store).
pub fn run_responder(env: &JobEnv, id: &str, transport: Box<dyn Transport>) {
    let me_name = env.config.node.name.clone();
    let (mut ch, early) = early_channel(env, transport);
    let proposal = recv_json::<Proposal>(&mut ch, "job.proposal").and_then(|p| match parse_rfc3339(&p.created) {
        Some(_) => Ok(p),
        None => Err(protocol::PeerError::Decode {
            kind: "job.proposal".into(),
            reason: format!("field created '{:.40}' is not an RFC 3339 UTC time", p.created),
        }
        .into()),
    });
    let proposal = match proposal {
        Ok(p) => p,
        Err(e) => {
            ch.abort(&failure::peer_notice(&me_name, POLICY, FailureKind::of_protocol(&e)));
            return tracing::warn!("job {id}: could not read the proposal: {e:#}");
        }
    };
    let keys = match NodeKeys::load(&env.config) {
        Ok(k) => k,
        Err(e) => {
            ch.abort(&failure::peer_notice(&me_name, POLICY, FailureKind::Internal));
            return tracing::error!("job {id}: {e:#}");
        }
    };
    let peer = env.config.peer.name.clone();
    let spec = &proposal.spec;
    let mut refusal = if proposal.id != id {
        Some(Refusal::same(format!(
            "proposal names job '{:.64}' but the stream was opened for job '{id}'",
            proposal.id
        )))
    } else if proposal.submitted_by != peer {
        Some(Refusal::same(format!(
            "proposal claims to come from '{:.64}' but the peer is '{peer}'",
            proposal.submitted_by
        )))
    } else if let Err(e) = spec.validate() {
        Some(Refusal::same(format!("invalid job: {e:#}")))
    } else if let Err(e) = check_operator(&proposal.operator) {
        Some(Refusal::same(format!("invalid job: {e}")))
    } else if let Err(e) = check_peer_side(&env.config, &env.peer_cert_sha256, &proposal.side) {
        Some(Refusal {
            local: e,
            to_peer: format!(
                "the proposal's keys are not the ones node '{me_name}' has configured for peer '{peer}' \
                 (peer.signing_key, peer.fingerprint)"
            ),
        })
    } else {
        policy::check(&env.config, spec, &peer, env.peer_fingerprint.as_deref()).err()
    };
    let mut dataset = None;
    if refusal.is_none() {
        match dataset_info(&env.config, spec) {
            Ok(d) => dataset = Some(d),
            Err(e) => {
                refusal = Some(Refusal {
                    local: format!("dataset: {e:#}"),
                    to_peer: format!(
                        "dataset: the dataset node '{me_name}' would bring cannot be read; its operator's job record says why"
                    ),
                })
            }
        }
    }
    let mut record = JobRecord::new(id, spec.clone(), &peer, &peer, &step_names(&spec.params));
    record.operator = proposal.operator.clone();
    record.state = JobState::Running;
    if let Some(s) = record.step_mut(CONNECT) {
        s.state = StepState::Done;
    }
    if let Some(s) = record.step_mut(POLICY) {
        s.state = StepState::Running; // a refusal is recorded by `finish`, after the transcript's outcome
    }
    if let Err(e) = env.store.insert(&record) {
        ch.abort(&failure::peer_notice(&me_name, POLICY, FailureKind::Internal));
        return tracing::error!("job {id}: cannot record the job: {e:#}");
    }
    let reporter = Reporter::new(&env.store, id);
    *reporter.current.lock().expect("reporter lock") = POLICY;
    let result = (|| -> Result<()> {
        let to_peer = refusal.as_ref().map(|r| r.to_peer.clone());
        let (bytes, decision) =
            json_round_trip(&Decision { refusal: to_peer, side: keys.side(&env.config, spec, dataset) })?;
        let sent = ch.send_frame("job.decision", bytes);
        let terms = JobTerms {
            job_id: id,
            created: &proposal.created,
            proposer: env.config.peer.role,
            operator: &proposal.operator,
            spec,
        };
        let manifest = super::transcript::manifest(
            &env.config,
            &keys,
            &env.peer_cert_sha256,
            &terms,
            &decision.side,
            Some(&proposal.side),
        );
        let transcript = start_transcript(env, &keys, manifest, &early, &mut ch)?;
        let outcome = match (refusal, sent) {
            (Some(reason), _) => Err(JobError::Refused(reason.local)),
            (None, Err(e)) => Err(JobError::from(e).context("cannot answer the proposal")),
            (None, Ok(())) => run_agreed(env, &reporter, &transcript, &terms, &mut ch),
        };
        finish(env, &reporter, &mut ch, Some(&transcript), outcome);
        Ok(())
    })();
    if let Err(e) = result {
        finish(env, &reporter, &mut ch, None, Err(e));
    }
}

/// What a job that ran to its end leaves: the operator's results and the transcript outcome both
/// nodes signed.
struct Completed {
    outcome: Map<String, Value>,
    signed: Outcome,
    /// The result files written just before completion was signed (removed if the outcome
    /// cannot be recorded).
    files: Vec<ResultFile>,
}

/// Everything after an accepted proposal, identical on both nodes: manifest digests, the
/// policy phase end, the kind's phases (each ended by a signed phase end), the finish phase end.
fn run_agreed(
    env: &JobEnv,
    reporter: &Reporter,
    transcript: &JobTranscript,
    terms: &JobTerms<'_>,
    ch: &mut Channel,
) -> Result<Completed> {
    let (id, spec) = (terms.job_id, terms.spec);
    ch.set_gate(Box::new(JobGate::new(spec, &transcript.writer)));
    transcript.exchange_manifest_digest(ch)?;
    transcript.end_phase(ch, POLICY)?;
    reporter.step(POLICY, StepState::Done);

    let role = env.config.node.role;
    let dataset_name = &spec.side(role).dataset;
    let dataset = env.config.datasets.get(dataset_name).ok_or_else(|| {
        failure::input(anyhow!("dataset '{dataset_name}' is not configured (datasets.{dataset_name})"))
    })?;
    let job_dir = env.config.job_dir(id);
    let mut outcome = Map::new();
    for d in &transcript.manifest.datasets {
        outcome.insert(format!("{}_rows", d.party), d.rows.into());
    }
    let mut artifacts = Artifacts::default();
    let mut plot = None;
    let mut files = Vec::new();
    for phase in phases(&spec.params) {
        if let Some(stop) = *env.stop.borrow() {
            crate::job_bail!("{stop} before phase '{}'", phase.name);
        }
        reporter.step(phase.name, StepState::Running);
        ch.set_phase(phase.name);
        let mut ctx = PhaseContext {
            job_id: id,
            spec,
            role,
            config: &env.config,
            dataset_name,
            dataset,
            job_dir: &job_dir,
            outcome: &mut outcome,
            artifacts: &mut artifacts,
            store: &env.store,
            sessions: &env.sessions,
            reporter,
            phase: phase.name,
            transcript: &transcript.writer,
            plot: &mut plot,
            files: &mut files,
        };
        (phase.run)(&mut ctx, ch).with_context(|| format!("phase '{}'", phase.name))?;
        transcript.end_phase(ch, phase.name).with_context(|| format!("end of phase '{}'", phase.name))?;
        reporter.step(phase.name, StepState::Done);
    }
    reporter.step(FINISH, StepState::Running);
    ch.set_phase(FINISH);
    // Results are saved before this node signs completion, so a node that signed it records it.
    let signed = completed_outcome(plot, &outcome)?;
    save_results(&files)?;
    if let Err(e) = transcript.end_completed(ch, FINISH, &signed) {
        remove_results(&files);
        return Err(e.into());
    }
    Ok(Completed { outcome, signed, files })
}

/// Writes the job's result files (owner-only, never over an existing file); on an error removes
/// the ones it wrote.
fn save_results(files: &[ResultFile]) -> anyhow::Result<()> {
    for (i, f) in files.iter().enumerate() {
        if let Err(e) = crate::identity::write_new_file(&f.path, &f.bytes, 0o600) {
            remove_results(&files[..i]);
            return Err(e.context("the job ran but its results could not be saved"));
        }
    }
    Ok(())
}

/// Removes result files of a job that failed after they were written.
fn remove_results(files: &[ResultFile]) {
    for f in files {
        if let Err(e) = std::fs::remove_file(&f.path) {
            tracing::error!("cannot remove the result file {} of a failed job: {e}", f.path.display());
        }
    }
}

/// The transcript outcome of a job that ran to its end: the plot and the report fields of the
/// operator's `outcome` ([`Outcome::completed_with`]).
fn completed_outcome(plot: Option<OutcomePlot>, outcome: &Map<String, Value>) -> Result<Outcome> {
    let (roc, score_hist) = plot.map(|p| (p.roc, p.score_hist)).unzip();
    Ok(Outcome { roc, score_hist, ..Outcome::completed_with(outcome)? })
}

/// Records how the job ended: in the job record, and as the transcript's outcome (last record).
/// On failure tells the peer the step and the kind of failure ([`failure::peer_notice`]), unless
/// the peer ended the job or the job was refused; the full reason stays on this node.
fn finish(
    env: &JobEnv,
    reporter: &Reporter,
    ch: &mut Channel,
    transcript: Option<&JobTranscript>,
    result: Result<Completed>,
) {
    let id = reporter.id.as_str();
    let me = &env.config.node.name;
    let (state, reason) = match result {
        Ok(done) => match transcript.map_or(Ok(()), |t| t.writer.outcome(done.signed)) {
            Ok(()) => {
                let outcome = done.outcome;
                return env.store.record_end(id, move |r| {
                    r.outcome = outcome.clone();
                    r.state = JobState::Succeeded;
                    if let Some(s) = r.step_mut(FINISH) {
                        s.state = StepState::Done;
                        s.progress = 1.0;
                    }
                });
            }
            Err(e) => {
                remove_results(&done.files);
                (JobState::Failed, format!("the job ran but its transcript could not be completed: {e:#}"))
            }
        },
        Err(e) => {
            let from_peer = e.peer_knows();
            let (state, reason, kind) = match *env.stop.borrow() {
                Some(Stop::Cancelled) => {
                    (JobState::Cancelled, format!("cancelled by the operator of '{me}'"), FailureKind::Cancelled)
                }
                Some(Stop::Shutdown) => (JobState::Failed, SHUT_DOWN.to_string(), FailureKind::Shutdown),
                None => (JobState::Failed, e.to_string(), e.kind()),
            };
            if !from_peer {
                ch.abort(&failure::peer_notice(me, reporter.current_step(), kind));
            }
            if let Some(t) = transcript
                && let Err(e) = t.writer.outcome(Outcome::failed(&reason))
            {
                tracing::error!("job {id}: {e:#}");
            }
            (state, reason)
        }
    };
    tracing::warn!("job {id} {}: {reason}", if state == JobState::Cancelled { "cancelled" } else { "failed" });
    env.store.record_end(id, move |r| r.fail(state, &reason));
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use ed25519_dalek::SigningKey;
    use protocol::channel::run_pair;

    use super::*;
    use crate::audit::{self, NodeInfo, Policies, Record, exchange_manifest_digest};

    fn repo_file(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
    }

    fn test_manifest(keys: &[SigningKey; 2]) -> Manifest {
        let node = |name: &str, role, key: &SigningKey| NodeInfo {
            name: name.into(),
            role,
            tls_cert_sha256: [role.index() as u8; 32],
            ed25519_public_key: key.verifying_key().to_bytes(),
        };
        Manifest {
            job_id: "1-abcdef01".into(),
            kind: "train".into(),
            created: "2026-01-31T12:00:00Z".into(),
            proposer: Role::Gov,
            nodes: vec![node("gov", Role::Gov, &keys[0]), node("bank", Role::Bank, &keys[1])],
            datasets: vec![],
            parameters: serde_json::json!({}),
            policies: Policies { gov: Value::Null, bank: Value::Null },
            operator: "tester".into(),
            consent: vec![],
        }
    }

    /// A phase like a training phase's end: the bank sends a metric, both record its reveal, and
    /// the gov attaches a plot. Also makes a wrong call and returns its error.
    fn metric_phase(ctx: &mut PhaseContext<'_>, ch: &mut Channel) -> Result<Option<String>> {
        let auc = match ctx.role {
            Role::Bank => {
                ch.send("metric.auc", &0.75f64)?;
                0.75f64
            }
            Role::Gov => ch.recv::<f64>("metric.auc")?,
        };
        let summary = serde_json::json!({ "auc": auc }).to_string();
        ctx.reveal("metrics", &auc.to_le_bytes(), &summary, Role::Bank, Reveal::Metrics)?;
        let bad_hist = ScoreHist { edges: vec![0.0, 0.5], good: vec![1, 2], bad: vec![] };
        let hist_err = ctx.set_outcome_plot(vec![], bad_hist).unwrap_err().to_string();
        if ctx.role == Role::Gov {
            let hist = ScoreHist { edges: vec![0.0, 0.5, 1.0], good: vec![3, 1], bad: vec![1, 2] };
            ctx.set_outcome_plot(vec![[0.0, 0.0], [0.25, 0.75], [1.0, 1.0]], hist)?;
        }
        Ok(Some(hist_err))
    }

    /// Runs `metric_phase` on one node with a real context and transcript; returns the
    /// transcript path and the error of the wrong call.
    fn node_side(role: Role, keys: &[SigningKey; 2], dir: &Path, ch: &mut Channel) -> (PathBuf, Option<String>) {
        let config =
            Config::load(&repo_file(if role == Role::Gov { "configs/gov.toml" } else { "configs/bank.toml" })).unwrap();
        let spec = JobSpec::load(&repo_file("configs/demo-job.toml")).unwrap();
        let dataset_name = spec.side(role).dataset.clone();
        let path = dir.join(format!("{role}.jsonl"));
        let manifest = test_manifest(keys);
        let writer = TranscriptWriter::create(&path, manifest.clone(), &keys[role.index()], false).unwrap();
        ch.set_observer(writer.observer());
        exchange_manifest_digest(ch, &manifest).unwrap();
        ch.set_phase("train");
        let store = Store::open(&dir.join(role.as_str())).unwrap();
        let reporter = Reporter::new(&store, "1-abcdef01");
        let (mut outcome, mut artifacts, mut plot, mut files) = (Map::new(), Artifacts::default(), None, Vec::new());
        let mut ctx = PhaseContext {
            job_id: "1-abcdef01",
            spec: &spec,
            role,
            config: &config,
            dataset_name: &dataset_name,
            dataset: &config.datasets[&dataset_name],
            job_dir: dir,
            outcome: &mut outcome,
            artifacts: &mut artifacts,
            store: &store,
            sessions: &crate::sessions::Sessions::default(),
            reporter: &reporter,
            phase: "train",
            transcript: &writer,
            plot: &mut plot,
            files: &mut files,
        };
        let errors = metric_phase(&mut ctx, ch).unwrap();
        let outcome = completed_outcome(plot, &outcome).unwrap();
        writer.end_phase(ch, "train", Some(&outcome)).unwrap();
        writer.outcome(outcome).unwrap();
        (path, errors)
    }

    #[test]
    fn reveals_and_outcome_plot_are_recorded_and_both_transcripts_agree() {
        let dir = tempfile::tempdir().unwrap();
        let keys = [SigningKey::from_bytes(&[7; 32]), SigningKey::from_bytes(&[9; 32])];
        let ((gov, gov_err), (bank, _)) = run_pair(
            |ch| node_side(Role::Gov, &keys, dir.path(), ch),
            |ch| node_side(Role::Bank, &keys, dir.path(), ch),
        );
        let gov_err = gov_err.unwrap();
        assert!(gov_err.contains("2 edges need 1 good counts, got 2 and 0"), "{gov_err}");

        let c = audit::compare(&gov, &bank).unwrap();
        assert!(c.failures.is_empty(), "{:?}", c.failures);
        let v = c.gov.unwrap();
        let reveals: Vec<&audit::Reveal> = v
            .transcript
            .records
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Reveal { reveal, .. } => Some(reveal),
                _ => None,
            })
            .collect();
        assert_eq!(reveals.len(), 1, "the refused calls recorded nothing");
        let r = reveals[0];
        assert_eq!(
            (r.phase.as_str(), r.name.as_str(), r.from, r.to.as_slice()),
            ("train", "metrics", Role::Bank, &[Role::Gov][..])
        );
        assert_eq!(r.value_hash, *blake3::hash(&0.75f64.to_le_bytes()).as_bytes());
        let html = crate::audit::report::html(&v);
        assert!(html.contains("ROC curve"), "the gov's outcome carries the plot");
        let bank_html = crate::audit::report::html(&c.bank.unwrap());
        assert!(!bank_html.contains("ROC curve"), "the bank attached none");
    }

    #[test]
    fn results_are_saved_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| ResultFile { path: dir.path().join(name), bytes: bytes.to_vec() };
        std::fs::write(dir.path().join("taken.csv"), b"old").unwrap();
        let files = [file("a.csv", b"a"), file("taken.csv", b"new"), file("c.csv", b"c")];
        let e = format!("{:#}", save_results(&files).unwrap_err());
        assert!(e.starts_with("the job ran but its results could not be saved: cannot create"), "{e}");
        assert!(!dir.path().join("a.csv").exists(), "the file written before the error is removed");
        assert_eq!(std::fs::read(dir.path().join("taken.csv")).unwrap(), b"old", "an existing file is kept");
        assert!(!dir.path().join("c.csv").exists());

        save_results(&[file("a.csv", b"a"), file("c.csv", b"c")]).unwrap();
        assert_eq!(std::fs::read(dir.path().join("c.csv")).unwrap(), b"c");
    }
}
