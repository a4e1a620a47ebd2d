//! Reading the node's configured CSV datasets, with the one CSV reader
//! ([`models::csv_file`]: BOM, CRLF and blank lines are fine). Errors name the dataset, file and
//! line.

use anyhow::{Context, Result, bail};
use models::csv_file::Rows;

use crate::config::DatasetConfig;

fn bytes(name: &str, d: &DatasetConfig) -> Result<Vec<u8>> {
    std::fs::read(&d.path)
        .with_context(|| format!("dataset '{name}': cannot open {} (datasets.{name}.path)", d.path.display()))
}

fn rows<'a>(name: &str, file: &'a str, bytes: &'a [u8]) -> Result<Rows<'a>> {
    Rows::open(file, bytes, true).with_context(|| format!("dataset '{name}' (datasets.{name}.path)"))
}

/// Checks that the id column and every column in `columns` exist in the header.
pub fn check_columns<'a>(name: &str, d: &DatasetConfig, columns: impl IntoIterator<Item = &'a String>) -> Result<()> {
    let (file, bytes) = (d.path.display().to_string(), bytes(name, d)?);
    let h = rows(name, &file, &bytes)?.header;
    let wanted: Vec<&str> =
        std::iter::once(d.id_column.as_str()).chain(columns.into_iter().map(|c| c.as_str())).collect();
    for c in wanted {
        if !h.iter().any(|x| x == c) {
            bail!(
                "dataset '{name}': column '{c}' is not in the header of {} (columns there: {})",
                d.path.display(),
                h.join(", ")
            );
        }
    }
    Ok(())
}

/// Number of data rows; every row must have a non-empty id. Reads one row at a time.
pub fn count_rows(name: &str, d: &DatasetConfig) -> Result<u64> {
    let (file, bytes) = (d.path.display().to_string(), bytes(name, d)?);
    let mut rows = rows(name, &file, &bytes)?;
    let id_col = rows.header.iter().position(|x| *x == d.id_column).with_context(|| {
        format!(
            "dataset '{name}': id column '{}' (datasets.{name}.id_column) is not in the header of {}",
            d.id_column,
            d.path.display()
        )
    })?;
    let mut count = 0u64;
    while let Some(row) = rows.next_row().with_context(|| format!("dataset '{name}' (datasets.{name}.path)"))? {
        if row.fields[id_col].is_empty() {
            bail!("dataset '{name}': {} line {}: empty id in column '{}'", d.path.display(), row.line, d.id_column);
        }
        count += 1;
    }
    if count == 0 {
        bail!("dataset '{name}': {} has a header but no rows; add one row per entity", d.path.display());
    }
    Ok(count)
}
