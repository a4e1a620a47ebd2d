//! The protocol phases of the job kinds, plugged into the runner by [`super::runner::phases`]:
//! - [`psi`] (every kind): aligns both datasets by ECDH PSI on their entity ids;
//! - [`train`] (kind `train`): secure logistic regression on the aligned rows, model artifact, test metrics;
//! - [`score`] (kind `score`): scores the aligned rows jointly, or single ids by private lookup;
//! - [`checkup`] (kind `checkup`): one consenting entity's credit check-up report for the gov.
//!
//! Every value a phase reveals is recorded with [`PhaseContext::reveal`] (see there).

pub mod checkup;
pub mod psi;
pub mod score;
pub mod train;

use std::path::PathBuf;

use models::dataset::Dataset;
use protocol::Role;
use protocol::ids::{self, PreparedIds};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::failure::{JobContext, Result, input};
use super::runner::PhaseContext;
use super::spec::Reveal;

/// A fresh CSPRNG seeded from the operating system, for a phase's secrets.
pub fn os_rng() -> StdRng {
    StdRng::from_rng(&mut rand::rng())
}

/// Records a value both parties learn from a joint computation: one reveal per direction.
pub fn reveal_joint(ctx: &mut PhaseContext<'_>, name: &str, value: &[u8], summary: &str, rule: Reveal) -> Result<()> {
    reveal_joint_hash(ctx, name, crate::audit::value_hash(value), summary, rule)
}

/// [`reveal_joint`] of a value recorded by the hash `value_hash` ([`PhaseContext::reveal_hash`]).
pub fn reveal_joint_hash(
    ctx: &mut PhaseContext<'_>,
    name: &str,
    value_hash: [u8; 32],
    summary: &str,
    rule: Reveal,
) -> Result<()> {
    ctx.reveal_hash(name, value_hash, summary, Role::Gov, rule)?;
    ctx.reveal_hash(name, value_hash, summary, Role::Bank, rule)
}

/// Loads this node's dataset for the job with the given feature columns (all but id and label
/// when empty) and label.
pub fn load_dataset(ctx: &PhaseContext<'_>, columns: &[String], label: Option<&str>) -> Result<Dataset> {
    let d = ctx.dataset;
    models::dataset::load_with(&d.path, &d.id_column, columns, label, &d.cell_format())
        .with_context(|| format!("dataset '{}' (datasets.{}.path)", ctx.dataset_name, ctx.dataset_name))
}

/// Normalised unique ids of `ds` (its rows in `rows`); bad ids fail naming file and line, or
/// are skipped and counted with `skip_bad`.
pub fn prepare_ids(ctx: &PhaseContext<'_>, ds: &Dataset, skip_bad: bool) -> Result<PreparedIds> {
    let lines = ds.id_lines.iter().copied().zip(ds.ids.iter().map(String::as_str));
    ids::prepare_ids(ctx.dataset.id_kind, &ds.source, lines, skip_bad).map_err(|e| {
        input(anyhow::anyhow!("dataset '{}': {e} (params.skip_invalid_ids = true skips such rows)", ctx.dataset_name))
    })
}

/// Appends `warnings` to the outcome's `warnings` list (shown with the job's result).
pub fn add_warnings(ctx: &mut PhaseContext<'_>, warnings: impl IntoIterator<Item = String>) {
    let list = ctx.outcome.entry("warnings").or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(list) = list.as_array_mut() {
        list.extend(warnings.into_iter().map(serde_json::Value::from));
    }
}

/// Encodes a CSV file with a header, written when the job has succeeded
/// ([`PhaseContext::write_on_success`]).
pub fn write_csv<I, R>(ctx: &mut PhaseContext<'_>, path: PathBuf, header: &[&str], rows: I) -> Result<()>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(anyhow::Error::from)?;
    for r in rows {
        w.write_record(r).map_err(anyhow::Error::from)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("cannot encode {}: {e}", path.display()))?;
    ctx.write_on_success(path, bytes);
    Ok(())
}
