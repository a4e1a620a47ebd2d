//! The node's policy check, run on every job before any protocol step, on both nodes: the
//! submitter checks its own side when the operator submits, the peer checks its side when the
//! proposal arrives. A refusal names the rule (config key) that refused the job.

use crate::config::Config;
use crate::datasets;

use protocol::Role;

use models::scorecard::ScoreOutput;

use super::spec::{JobKind, JobSpec, Reveal};

/// The config spelling of a score output.
fn output_name(o: ScoreOutput) -> &'static str {
    match o {
        ScoreOutput::Grade => "grade",
        ScoreOutput::Points => "points",
        ScoreOutput::Probability => "probability",
    }
}

/// Checks `spec`, proposed by or to `peer_name` (whose certificate has `peer_fingerprint` when
/// pinned), against this node's policy and datasets. `Err` is the refusal text shown to both
/// operators, starting with `policy:` (or `dataset:` when the data itself does not fit).
pub fn check(config: &Config, spec: &JobSpec, peer_name: &str, peer_fingerprint: Option<&str>) -> Result<(), String> {
    let p = &config.policy;
    let me = &config.node.name;
    let peer_allowed =
        p.allowed_peers.iter().any(|a| a == peer_name || peer_fingerprint.is_some_and(|fp| a.eq_ignore_ascii_case(fp)));
    if !peer_allowed {
        return Err(format!(
            "policy: peer '{peer_name}' is not allowed to run jobs with node '{me}' (policy.allowed_peers)"
        ));
    }
    if !p.job_kinds.contains(&spec.kind) {
        return Err(format!(
            "policy: job kind '{}' is not allowed on node '{me}' (policy.job_kinds)",
            spec.kind.as_str()
        ));
    }
    for r in &spec.reveal {
        if !p.reveals.contains(r) {
            return Err(format!("policy: reveal '{}' is not allowed on node '{me}' (policy.reveals)", r.as_str()));
        }
    }
    if spec.min_intersection < p.min_intersection {
        return Err(format!(
            "policy: the job's min_intersection {} is below node '{me}''s minimum of {} (policy.min_intersection)",
            spec.min_intersection, p.min_intersection
        ));
    }
    if spec.kind == JobKind::Train {
        for role in [Role::Gov, Role::Bank] {
            let n = spec.side(role).columns.len();
            if n < p.min_model_columns {
                return Err(format!(
                    "policy: the {role} side of the model has {n} feature column(s); node '{me}' requires at least {} \
                     per side (policy.min_model_columns)",
                    p.min_model_columns
                ));
            }
        }
        let for_scoring = spec.params().map(|params| params.for_scoring).unwrap_or(false);
        if for_scoring && !p.job_kinds.contains(&JobKind::Score) {
            return Err(format!(
                "policy: the job approves its model for scoring (params.for_scoring) but node '{me}' does not allow \
                 score jobs (policy.job_kinds)"
            ));
        }
    }
    if let Ok(params) = spec.params() {
        let asked = params.score_output();
        let scores = spec.reveal.contains(&Reveal::ScoresToBank);
        if scores && asked > p.score_output {
            return Err(format!(
                "policy: the job asks for score_output '{}' but node '{me}' lets the bank learn at most '{}' per \
                 entity (policy.score_output)",
                output_name(asked),
                output_name(p.score_output)
            ));
        }
        if spec.reveal.contains(&Reveal::PartialScoresToBank) && p.score_output < ScoreOutput::Probability {
            return Err(format!(
                "policy: a lookup of named ids gives the bank the gov's partial score, finer than node '{me}''s \
                 score_output cap '{}' (policy.score_output must be 'probability' to allow partial_scores_to_bank)",
                output_name(p.score_output)
            ));
        }
    }
    let side = spec.side(config.node.role);
    let name = &side.dataset;
    let Some(dataset) = config.datasets.get(name) else {
        return Err(format!("policy: dataset '{name}' is not configured on node '{me}' (datasets.{name})"));
    };
    let Some(allowed) = p.datasets.get(name) else {
        return Err(format!("policy: dataset '{name}' is not allowed for joint use (policy.datasets.{name})"));
    };
    for c in side.used_columns() {
        if !allowed.columns.contains(c) {
            return Err(format!(
                "policy: column '{c}' of dataset '{name}' is not allowed for joint use (policy.datasets.{name}.columns)"
            ));
        }
    }
    if let Some(label) = &side.label
        && dataset.label.as_ref() != Some(label)
    {
        return Err(format!("dataset: '{label}' is not the label column of dataset '{name}' (datasets.{name}.label)"));
    }
    datasets::check_columns(name, dataset, side.used_columns()).map_err(|e| format!("dataset: {e:#}"))
}
