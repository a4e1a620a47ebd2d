//! Runs one job over its channel, on a blocking thread, identically on both nodes:
//!
//! 1. `connect` (done by the daemon: QUIC connection, hello, job stream);
//! 2. `policy`: the submitter sends `job.proposal`, the peer checks its policy and answers
//!    `job.decision`; a refusal ends the job on both nodes with the rule that refused it;
//! 3. the job kind's [`phases`], in order — **this is where protocol phases plug in**;
//! 4. `finish`: both nodes exchange their [`SharedView`] of the job's frames (`job.end`) and
//!    require them to be equal, so both transcripts record the same traffic.
//!
//! Progress and results go to the job record in the [`Store`], which the admin API serves.

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use protocol::channel::Transport;
use protocol::transcript::SharedView;
use protocol::{Channel, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::policy;
use super::record::{JobRecord, JobState, StepState};
use super::spec::{JobKind, JobSpec};
use super::store::Store;
use super::transcript_hook::open_transcript;
use crate::config::{Config, DatasetConfig};

pub const CONNECT: &str = "connect";
pub const POLICY: &str = "policy";
pub const FINISH: &str = "finish";

/// A protocol phase: runs on both nodes with the same channel; returns when its messages are done.
pub type PhaseFn = fn(&mut PhaseContext<'_>, &mut Channel) -> Result<()>;

pub struct Phase {
    /// Step name shown to operators and recorded as the transcript phase of its frames.
    pub name: &'static str,
    pub run: PhaseFn,
}

/// The phases of each job kind, run in this order on both nodes after the policy check.
/// To add PSI or training, append `Phase { name: "psi", run: psi_phase }` etc. here.
pub fn phases(kind: JobKind) -> Vec<Phase> {
    use super::phases::{psi, score, train};
    let psi = Phase { name: "psi", run: psi::run };
    match kind {
        JobKind::Psi => vec![psi],
        JobKind::Train => vec![psi, Phase { name: "train", run: train::run }],
        JobKind::Score => vec![psi, Phase { name: "score", run: score::run }],
    }
}

/// All steps of a job of `kind`, as listed in its record.
pub fn step_names(kind: JobKind) -> Vec<&'static str> {
    let mut names = vec![CONNECT, POLICY];
    names.extend(phases(kind).iter().map(|p| p.name));
    names.push(FINISH);
    names
}

/// Values phases hand to later phases (e.g. the PSI alignment to training), by name.
pub type Artifacts = HashMap<&'static str, Box<dyn Any + Send>>;

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
    reporter: &'a Reporter,
    phase: &'static str,
}

impl PhaseContext<'_> {
    /// Reports progress within the current phase (`fraction` in 0..=1). Cheap: writes are throttled.
    pub fn progress(&self, fraction: f64, message: &str) {
        self.reporter.progress(self.phase, fraction, message);
    }
}

/// Throttled writer of step progress into the job record.
struct Reporter {
    store: Store,
    id: String,
    last: Mutex<Option<Instant>>,
}

impl Reporter {
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

    fn step(&self, step: &str, state: StepState) {
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
    /// Set to `true` when the operator cancels the job.
    pub cancel: watch::Receiver<bool>,
    /// Peer certificate fingerprint (`sha256:..`) when pinned, for `policy.allowed_peers`.
    pub peer_fingerprint: Option<String>,
}

/// The proposal the submitter sends; the first message on the job's channel.
#[derive(Debug, Serialize, Deserialize)]
pub struct Proposal {
    pub id: String,
    pub submitted_by: String,
    pub spec: JobSpec,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Decision {
    Accept,
    Reject(String),
}

fn send_json<T: Serialize>(ch: &mut Channel, kind: &str, v: &T) -> Result<()> {
    Ok(ch.send_frame(kind, serde_json::to_vec(v)?)?)
}

fn recv_json<T: serde::de::DeserializeOwned>(ch: &mut Channel, kind: &str) -> Result<T> {
    let bytes = ch.recv_frame(kind)?;
    serde_json::from_slice(&bytes).map_err(|e| anyhow!("cannot decode '{kind}' from the peer: {e}"))
}

fn channel(env: &JobEnv, id: &str, transport: Box<dyn Transport>) -> Result<Channel> {
    let dir = env.config.job_dir(id);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create job directory {}", dir.display()))?;
    let mut ch = Channel::new(transport, env.config.node.role);
    ch.set_observer(Box::new(open_transcript(&dir, &env.config.transcript)?));
    Ok(ch)
}

/// Submitting node: the job record `id` exists (state pending); `transport` is its job stream.
pub fn run_submitter(env: &JobEnv, id: &str, transport: Box<dyn Transport>) {
    let result = (|| -> Result<()> {
        let record = env.store.get(id)?.ok_or_else(|| anyhow!("no job '{id}'"))?;
        let reporter = Reporter { store: env.store.clone(), id: id.to_string(), last: Mutex::new(None) };
        reporter.step(CONNECT, StepState::Done);
        reporter.step(POLICY, StepState::Running);
        let mut ch = channel(env, id, transport)?;
        ch.set_phase("proposal");
        let proposal = Proposal { id: id.to_string(), submitted_by: env.config.node.name.clone(), spec: record.spec.clone() };
        let outcome = (|| {
            send_json(&mut ch, "job.proposal", &proposal)?;
            match recv_json::<Decision>(&mut ch, "job.decision")? {
                Decision::Accept => {}
                Decision::Reject(reason) => {
                    return Err(Refused(format!("rejected by peer '{}': {reason}", env.config.peer.name)).into());
                }
            }
            reporter.step(POLICY, StepState::Done);
            run_phases(env, &reporter, &record.spec, id, &mut ch)
        })();
        finish(env, &reporter, &mut ch, outcome);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = env.store.update(id, |r| r.fail(JobState::Failed, &format!("{e:#}")));
    }
}

/// Peer node: `transport` is a job stream the peer opened for job `id` (not yet in the store).
pub fn run_responder(env: &JobEnv, id: &str, transport: Box<dyn Transport>) {
    let mut ch = match channel(env, id, transport) {
        Ok(ch) => ch,
        Err(e) => return tracing::error!("job {id}: {e:#}"),
    };
    ch.set_phase("proposal");
    let proposal: Proposal = match recv_json(&mut ch, "job.proposal") {
        Ok(p) => p,
        Err(e) => {
            ch.abort(&format!("node '{}' could not read the proposal: {e:#}", env.config.node.name));
            return tracing::warn!("job {id}: {e:#}");
        }
    };
    let peer = env.config.peer.name.clone();
    let refusal = if proposal.id != id {
        Some(format!("proposal names job '{}' but the stream was opened for job '{id}'", proposal.id))
    } else if proposal.submitted_by != peer {
        Some(format!("proposal claims to come from '{}' but the peer is '{peer}'", proposal.submitted_by))
    } else if let Err(e) = proposal.spec.validate() {
        Some(format!("invalid job: {e:#}"))
    } else {
        policy::check(&env.config, &proposal.spec, &peer, env.peer_fingerprint.as_deref()).err()
    };
    let mut record = JobRecord::new(id, proposal.spec.clone(), &peer, &peer, &step_names(proposal.spec.kind));
    record.state = JobState::Running;
    if let Some(s) = record.step_mut(CONNECT) {
        s.state = StepState::Done;
    }
    if let Some(reason) = &refusal {
        record.fail(JobState::Failed, reason);
        if let Some(s) = record.step_mut(POLICY) {
            s.state = StepState::Failed;
        }
    } else if let Some(s) = record.step_mut(POLICY) {
        s.state = StepState::Done;
    }
    if let Err(e) = env.store.insert(&record) {
        ch.abort(&format!("node '{}' cannot record the job: {e:#}", env.config.node.name));
        return tracing::error!("job {id}: {e:#}");
    }
    let decision = match &refusal {
        Some(reason) => Decision::Reject(reason.clone()),
        None => Decision::Accept,
    };
    if let Err(e) = send_json(&mut ch, "job.decision", &decision) {
        let _ = env.store.update(id, |r| r.fail(JobState::Failed, &format!("cannot answer the proposal: {e:#}")));
        return;
    }
    if refusal.is_some() {
        return;
    }
    let reporter = Reporter { store: env.store.clone(), id: id.to_string(), last: Mutex::new(None) };
    let outcome = run_phases(env, &reporter, &proposal.spec, id, &mut ch);
    finish(env, &reporter, &mut ch, outcome);
}

/// A refusal that ends the job without telling the peer again (it told us).
#[derive(Debug)]
struct Refused(String);
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refused {}

/// Runs the kind's phases and the final view exchange; returns the outcome.
fn run_phases(env: &JobEnv, reporter: &Reporter, spec: &JobSpec, id: &str, ch: &mut Channel) -> Result<Map<String, Value>> {
    let role = env.config.node.role;
    let dataset_name = &spec.side(role).dataset;
    let dataset = env
        .config
        .datasets
        .get(dataset_name)
        .ok_or_else(|| anyhow!("dataset '{dataset_name}' is not configured (datasets.{dataset_name})"))?;
    let job_dir = env.config.job_dir(id);
    let mut outcome = Map::new();
    let mut artifacts = Artifacts::new();
    for phase in phases(spec.kind) {
        if *env.cancel.borrow() {
            bail!("cancelled before phase '{}'", phase.name);
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
            reporter,
            phase: phase.name,
        };
        (phase.run)(&mut ctx, ch).with_context(|| format!("phase '{}'", phase.name))?;
        reporter.step(phase.name, StepState::Done);
    }
    reporter.step(FINISH, StepState::Running);
    ch.set_phase(FINISH);
    let mine = ch.shared_view();
    ch.send("job.end", &mine)?;
    let theirs: SharedView = ch.recv("job.end")?;
    if theirs != mine {
        bail!("the peer's view of this job's messages differs from ours: the transcripts do not match");
    }
    outcome.insert("frames".into(), (mine.sent_by_gov.frames + mine.sent_by_bank.frames).into());
    outcome.insert("shared_view".into(), serde_json::to_value(mine)?);
    Ok(outcome)
}

/// Records the outcome; on failure tells the peer why (unless the peer ended the job).
fn finish(env: &JobEnv, reporter: &Reporter, ch: &mut Channel, outcome: Result<Map<String, Value>>) {
    let id = reporter.id.as_str();
    match outcome {
        Ok(values) => {
            let _ = env.store.update(id, |r| {
                r.outcome = values;
                r.state = JobState::Succeeded;
                if let Some(s) = r.step_mut(FINISH) {
                    s.state = StepState::Done;
                    s.progress = 1.0;
                }
            });
        }
        Err(e) => {
            let cancelled = *env.cancel.borrow();
            let from_peer = e.downcast_ref::<Refused>().is_some()
                || matches!(e.root_cause().downcast_ref::<protocol::Error>(), Some(protocol::Error::PeerAbort(_)));
            let me = &env.config.node.name;
            let (state, reason) = if cancelled {
                (JobState::Cancelled, format!("cancelled by the operator of '{me}'"))
            } else {
                (JobState::Failed, format!("{e:#}"))
            };
            if !from_peer {
                ch.abort(&format!("node '{me}': {reason}"));
            }
            let _ = env.store.update(id, |r| r.fail(state, &reason));
        }
    }
}
