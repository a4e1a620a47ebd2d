//! The protocol phases of the job kinds, plugged into the runner by [`super::runner::phases`]:
//! - [`psi`] (every kind): aligns both datasets by ECDH PSI on their entity ids;
//! - [`train`] (kind `train`): secure logistic regression on the aligned rows, model artifact, test metrics;
//! - [`score`] (kind `score`): scores the aligned rows jointly, or single ids by private lookup.
//!
//! Every value a phase reveals goes through [`reveal`], which records it (see there).

pub mod psi;
pub mod score;
pub mod train;

use std::path::Path;

use anyhow::{Context, Result};
use models::dataset::Dataset;
use protocol::Role;
use protocol::ids::{self, PreparedIds};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::runner::PhaseContext;
use crate::audit::ScoreHist;
use crate::config::IdKind;

/// A fresh CSPRNG seeded from the operating system, for a phase's secrets.
pub fn os_rng() -> StdRng {
    StdRng::from_rng(&mut rand::rng())
}

/// Who learns a revealed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevealTo {
    Gov,
    Bank,
    Both,
}

/// Records that the value `name` left party `from` and is now known to `to`, under the policy
/// `rule` that allowed it. Both nodes call this with identical arguments for the same reveal:
/// `value` is the value's canonical bytes when both nodes know it, and empty when only the
/// recipient does (the recipient's own files hold it); `summary` is short readable text.
/// A value opened to both from a joint computation is recorded once per direction.
pub fn reveal(ctx: &mut PhaseContext<'_>, name: &str, value: &[u8], summary: &str, from: Role, to: RevealTo, rule: &str) -> Result<()> {
    let to = match to {
        RevealTo::Gov => vec![Role::Gov],
        RevealTo::Bank => vec![Role::Bank],
        RevealTo::Both => vec![Role::Gov, Role::Bank],
    };
    let entry = json!({
        "name": name,
        "summary": summary,
        "from": from,
        "to": to.into_iter().filter(|r| *r != from).collect::<Vec<_>>(),
        "rule": rule,
        "value_blake3": blake3::hash(value).to_hex().to_string(),
    });
    match ctx.outcome.entry("reveals").or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(list) => list.push(entry),
        _ => unreachable!("outcome.reveals is only written here"),
    }
    Ok(())
}

/// Records a value both parties learn from a joint computation: one reveal per direction.
pub fn reveal_joint(ctx: &mut PhaseContext<'_>, name: &str, value: &[u8], summary: &str, rule: &str) -> Result<()> {
    reveal(ctx, name, value, summary, Role::Gov, RevealTo::Bank, rule)?;
    reveal(ctx, name, value, summary, Role::Bank, RevealTo::Gov, rule)
}

/// Keeps the ROC curve and score histogram of a training job's test rows for this node's
/// operator and audit report.
pub fn outcome_plot(ctx: &mut PhaseContext<'_>, roc: Vec<[f64; 2]>, hist: ScoreHist) -> Result<()> {
    ctx.outcome.insert("roc".into(), serde_json::to_value(roc)?);
    ctx.outcome.insert("score_hist".into(), serde_json::to_value(hist)?);
    Ok(())
}

/// Loads this node's dataset for the job with the given feature columns (all but id and label
/// when empty) and label.
pub fn load_dataset(ctx: &PhaseContext<'_>, columns: &[String], label: Option<&str>) -> Result<Dataset> {
    let d = ctx.dataset;
    models::dataset::load(&d.path, &d.id_column, columns, label)
        .with_context(|| format!("dataset '{}' (datasets.{}.path)", ctx.dataset_name, ctx.dataset_name))
}

pub fn id_kind(kind: IdKind) -> ids::IdKind {
    match kind {
        IdKind::Raw => ids::IdKind::Raw,
        IdKind::Uscc => ids::IdKind::Uscc,
        IdKind::ResidentId => ids::IdKind::ResidentId,
    }
}

/// Normalised unique ids of `ds` (its rows in `rows`); bad ids fail naming file and line, or
/// are skipped and counted with `skip_bad`.
pub fn prepare_ids(ctx: &PhaseContext<'_>, ds: &Dataset, skip_bad: bool) -> Result<PreparedIds> {
    let lines = ds.id_lines.iter().copied().zip(ds.ids.iter().map(String::as_str));
    ids::prepare_ids(id_kind(ctx.dataset.id_kind), &ds.source, lines, skip_bad)
        .map_err(|e| anyhow::anyhow!("dataset '{}': {e} (params.skip_invalid_ids = true skips such rows)", ctx.dataset_name))
}

/// Writes a CSV file with a header; refuses to overwrite an existing file.
pub fn write_csv<I, R>(path: &Path, header: &[&str], rows: I) -> Result<()>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    w.write_record(header)?;
    for r in rows {
        w.write_record(r)?;
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
