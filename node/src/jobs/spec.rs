//! What a job asks for: written by the submitting operator as TOML, sent to the peer as the proposal.

use std::path::Path;

use anyhow::{Context, Result, bail};
use protocol::Role;
use serde::{Deserialize, Serialize};

/// Kinds of joint computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Private set intersection of the two datasets' ids.
    Psi,
    /// PSI, then secure logistic regression on the intersection.
    Train,
    /// PSI, then scoring of the bank's entities with a trained model.
    Score,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Psi => "psi",
            JobKind::Train => "train",
            JobKind::Score => "score",
        }
    }
}

/// What may be revealed, and to whom. A job lists every reveal it needs; both policies must allow each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reveal {
    /// Both learn the intersection size only.
    IntersectionSize,
    /// Both learn which of their own ids are in the intersection.
    IntersectionIds,
    /// Each party learns the model weights of its own feature block.
    ModelToOwners,
    /// Both learn the whole model.
    ModelToBoth,
    /// The model stays secret-shared.
    ModelShared,
    /// The bank learns the scores of its entities.
    ScoresToBank,
    /// Both learn aggregate metrics (AUC, KS, PSI).
    Metrics,
}

impl Reveal {
    pub fn as_str(self) -> &'static str {
        match self {
            Reveal::IntersectionSize => "intersection_size",
            Reveal::IntersectionIds => "intersection_ids",
            Reveal::ModelToOwners => "model_to_owners",
            Reveal::ModelToBoth => "model_to_both",
            Reveal::ModelShared => "model_shared",
            Reveal::ScoresToBank => "scores_to_bank",
            Reveal::Metrics => "metrics",
        }
    }
}

/// One party's inputs to a job, named by the party's configured dataset name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideSpec {
    pub dataset: String,
    /// Feature columns used jointly.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Label column (bank side of `train`).
    #[serde(default)]
    pub label: Option<String>,
}

impl SideSpec {
    /// Every column this side contributes (features, then the label).
    pub fn used_columns(&self) -> impl Iterator<Item = &String> {
        self.columns.iter().chain(self.label.iter())
    }
}

/// A job as the operator writes it (`tandem job submit FILE`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub kind: JobKind,
    /// Free text shown in job lists.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub reveal: Vec<Reveal>,
    /// PSI refuses to continue if the intersection is smaller.
    #[serde(default)]
    pub min_intersection: u64,
    pub gov: SideSpec,
    pub bank: SideSpec,
    /// Kind-specific parameters (learning rate, epochs, seeds...), read by the phases of that kind.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl JobSpec {
    /// Reads a job TOML file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<JobSpec> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read job file {}", path.display()))?;
        let spec: JobSpec = toml::from_str(&text).map_err(|e| anyhow::anyhow!("job file {}: {e}", path.display()))?;
        spec.validate().with_context(|| format!("job file {}", path.display()))?;
        Ok(spec)
    }

    /// Shape checks that do not depend on either node's configuration.
    pub fn validate(&self) -> Result<()> {
        for (role, side) in [(Role::Gov, &self.gov), (Role::Bank, &self.bank)] {
            if side.dataset.trim().is_empty() {
                bail!("{role}.dataset is empty: name a dataset configured on the {role} node");
            }
            let mut seen = std::collections::HashSet::new();
            for c in side.used_columns() {
                if !seen.insert(c) {
                    bail!("{role}.columns: column '{c}' is listed twice");
                }
            }
        }
        if self.gov.label.is_some() {
            bail!("gov.label: only the bank holds the label; move it to [bank] label");
        }
        if self.kind == JobKind::Train && self.bank.label.is_none() {
            bail!("bank.label is missing: a train job needs the bank's label column, e.g. label = \"y\"");
        }
        Ok(())
    }

    /// This party's side of the job.
    pub fn side(&self, role: Role) -> &SideSpec {
        match role {
            Role::Gov => &self.gov,
            Role::Bank => &self.bank,
        }
    }
}
