//! The node's policy check, run on every job before any protocol step, on both nodes: the
//! submitter checks its own side when the operator submits, the peer checks its side when the
//! proposal arrives. A refusal names the rule (config key) that refused the job.

use std::fmt;

use protocol::Role;

use models::scorecard::ScoreOutput;

use super::files;
use super::spec::{JobKind, JobSpec, Params, Reveal};
use crate::config::Config;
use crate::datasets;

/// Why this node refuses a job: the full text for its own operator (record, log, transcript),
/// and the text the peer is told, which names the rule but holds no path, value of this node's
/// configuration or content of its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub local: String,
    pub to_peer: String,
}

impl Refusal {
    /// A refusal whose text is safe for the peer too (it names only the rule and what the job named).
    pub fn same(text: String) -> Refusal {
        Refusal { to_peer: text.clone(), local: text }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.local)
    }
}

/// The config spelling of a score output.
fn output_name(o: ScoreOutput) -> &'static str {
    match o {
        ScoreOutput::Grade => "grade",
        ScoreOutput::Points => "points",
        ScoreOutput::Probability => "probability",
    }
}

/// Checks `spec`, proposed by or to `peer_name` (whose certificate has `peer_fingerprint` when
/// pinned), against this node's policy, datasets and the files the job names. The refusal texts
/// start with `policy:` (or `dataset:` when the data itself does not fit).
pub fn check(config: &Config, spec: &JobSpec, peer_name: &str, peer_fingerprint: Option<&str>) -> Result<(), Refusal> {
    let p = &config.policy;
    let me = &config.node.name;
    let peer_allowed =
        p.allowed_peers.iter().any(|a| a == peer_name || peer_fingerprint.is_some_and(|fp| a.eq_ignore_ascii_case(fp)));
    if !peer_allowed {
        return Err(Refusal::same(format!(
            "policy: peer '{peer_name}' is not allowed to run jobs with node '{me}' (policy.allowed_peers)"
        )));
    }
    if !p.job_kinds.contains(&spec.kind()) {
        return Err(Refusal::same(format!(
            "policy: job kind '{}' is not allowed on node '{me}' (policy.job_kinds)",
            spec.kind().as_str()
        )));
    }
    for r in &spec.reveal {
        if !p.reveals.contains(r) {
            return Err(Refusal::same(format!(
                "policy: reveal '{}' is not allowed on node '{me}' (policy.reveals)",
                r.as_str()
            )));
        }
    }
    if spec.min_intersection < p.min_intersection {
        return Err(Refusal {
            local: format!(
                "policy: the job's min_intersection {} is below node '{me}''s minimum of {} (policy.min_intersection)",
                spec.min_intersection, p.min_intersection
            ),
            to_peer: format!(
                "policy: the job's min_intersection {} is below node '{me}''s minimum (policy.min_intersection)",
                spec.min_intersection
            ),
        });
    }
    if spec.kind() == JobKind::Train {
        for role in [Role::Gov, Role::Bank] {
            let n = spec.side(role).columns.len();
            if n < p.min_model_columns {
                return Err(Refusal {
                    local: format!(
                        "policy: the {role} side of the model has {n} feature column(s); node '{me}' requires at least \
                         {} per side (policy.min_model_columns)",
                        p.min_model_columns
                    ),
                    to_peer: format!(
                        "policy: the {role} side of the model has {n} feature column(s), fewer than node '{me}' \
                         requires per side (policy.min_model_columns)"
                    ),
                });
            }
        }
    }
    if let Params::Train(t) = &spec.params
        && t.for_scoring()
        && !p.job_kinds.contains(&JobKind::Score)
    {
        return Err(Refusal::same(format!(
            "policy: the job approves its model for scoring (params.for_scoring) but node '{me}' does not allow \
             score jobs (policy.job_kinds)"
        )));
    }
    let asked = spec.params.score_output();
    let scores = spec.reveal.contains(&Reveal::ScoresToBank);
    if scores && asked > p.score_output {
        return Err(Refusal::same(format!(
            "policy: the job asks for score_output '{}' but node '{me}' lets the bank learn at most '{}' per \
             entity (policy.score_output)",
            output_name(asked),
            output_name(p.score_output)
        )));
    }
    if spec.reveal.contains(&Reveal::PartialScoresToBank) && p.score_output < ScoreOutput::Probability {
        return Err(Refusal::same(format!(
            "policy: a lookup of named ids gives the bank the gov's partial score, finer than node '{me}''s \
             score_output cap '{}' (policy.score_output must be 'probability' to allow partial_scores_to_bank)",
            output_name(p.score_output)
        )));
    }
    let side = spec.side(config.node.role);
    let name = &side.dataset;
    let Some(dataset) = config.datasets.get(name) else {
        return Err(Refusal::same(format!(
            "policy: dataset '{name}' is not configured on node '{me}' (datasets.{name})"
        )));
    };
    let Some(allowed) = p.datasets.get(name) else {
        return Err(Refusal::same(format!(
            "policy: dataset '{name}' is not allowed for joint use (policy.datasets.{name})"
        )));
    };
    for c in side.used_columns() {
        if !allowed.columns.contains(c) {
            return Err(Refusal::same(format!(
                "policy: column '{c}' of dataset '{name}' is not allowed for joint use (policy.datasets.{name}.columns)"
            )));
        }
    }
    if let Some(label) = &side.label
        && dataset.label.as_ref() != Some(label)
    {
        return Err(Refusal::same(format!(
            "dataset: '{label}' is not the label column of dataset '{name}' (datasets.{name}.label)"
        )));
    }
    datasets::check_columns(name, dataset, side.used_columns()).map_err(|e| Refusal {
        local: format!("dataset: {e:#}"),
        to_peer: format!(
            "dataset: dataset '{name}' of node '{me}' does not have the columns the job names, or cannot be read \
             (datasets.{name}); its operator's job record says why"
        ),
    })?;
    check_files(config, spec)
}

/// The files the job names that this node reads: `params.test_ids_file` (both nodes) and
/// `params.queries_file` (the bank), see [`files`].
fn check_files(config: &Config, spec: &JobSpec) -> Result<(), Refusal> {
    let named = match &spec.params {
        Params::Train(p) => Some(("params.test_ids_file", &p.test_ids_file)),
        Params::Score(p) if config.node.role == Role::Bank => Some(("params.queries_file", &p.queries_file)),
        _ => None,
    };
    if let Some((key, Some(name))) = named {
        files::check(&config.node.data_dir, key, name)
            .map_err(|e| Refusal { local: format!("policy: {e}"), to_peer: e.to_peer(&config.node.name) })?;
    }
    Ok(())
}
