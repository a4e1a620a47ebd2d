//! A job as both operators see it: its spec, where it stands, and its outcome.

use serde::{Deserialize, Serialize};

use super::spec::JobSpec;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// The state's name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
}

/// One step of a job (fixed steps `connect`, `policy`, `finish` around the kind's phases).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStatus {
    pub name: String,
    pub state: StepState,
    /// 0.0 ..= 1.0 within the step, as reported by the phase.
    pub progress: f64,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub spec: JobSpec,
    /// Node that proposed the job.
    pub submitted_by: String,
    /// Person or service account that submitted it at the proposing node (`--operator`).
    #[serde(default)]
    pub operator: String,
    /// The other node.
    pub peer: String,
    pub state: JobState,
    pub steps: Vec<StepStatus>,
    /// Why the job failed or was cancelled (names the policy rule, phase or peer).
    pub error: Option<String>,
    /// Results visible to this node's operator (what the job's reveal modes allow).
    pub outcome: serde_json::Map<String, serde_json::Value>,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// This node's signed transcript of the job (`tandem audit verify` checks it); set once the
    /// transcript exists, i.e. once the proposal has been answered or the job has failed trying.
    #[serde(default)]
    pub transcript: Option<std::path::PathBuf>,
}

impl JobRecord {
    pub fn new(id: &str, spec: JobSpec, submitted_by: &str, peer: &str, step_names: &[&str]) -> JobRecord {
        let now = now_ms();
        JobRecord {
            id: id.to_string(),
            spec,
            submitted_by: submitted_by.to_string(),
            operator: String::new(),
            peer: peer.to_string(),
            state: JobState::Pending,
            steps: step_names
                .iter()
                .map(|n| StepStatus {
                    name: n.to_string(),
                    state: StepState::Pending,
                    progress: 0.0,
                    message: String::new(),
                })
                .collect(),
            error: None,
            outcome: Default::default(),
            created_ms: now,
            updated_ms: now,
            transcript: None,
        }
    }

    pub fn step_mut(&mut self, name: &str) -> Option<&mut StepStatus> {
        self.steps.iter_mut().find(|s| s.name == name)
    }

    /// Marks the job failed (or cancelled) with `reason`; the running step is marked failed.
    pub fn fail(&mut self, state: JobState, reason: &str) {
        self.state = state;
        self.error = Some(reason.to_string());
        for s in &mut self.steps {
            if s.state == StepState::Running {
                s.state = StepState::Failed;
            }
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A fresh job id: `<unix seconds>-<8 random hex>`; sortable by time, unguessable enough to not collide.
pub fn new_job_id() -> String {
    use rand::Rng;
    let mut r = [0u8; 4];
    rand::rng().fill_bytes(&mut r);
    format!("{}-{}", now_ms() / 1000, hex::encode(r))
}

/// Checks an operator name (it comes from the peer too, and is shown in reports):
/// 1..=200 characters, no control characters.
pub fn check_operator(operator: &str) -> Result<(), String> {
    let o = operator;
    if o.trim().is_empty() || o.chars().count() > 200 || o.chars().any(char::is_control) {
        return Err(format!(
            "operator '{o:.200}' must be 1 to 200 printable characters naming who submits the job (--operator)"
        ));
    }
    Ok(())
}

/// Ids come from the peer too: only short `[0-9a-z-]` strings are accepted (they name directories).
pub fn valid_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
}
