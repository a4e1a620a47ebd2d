//! Reading the node's configured CSV datasets. Errors name the dataset, file and line.

use anyhow::{Context, Result, bail};

use crate::config::DatasetConfig;

fn reader(name: &str, d: &DatasetConfig) -> Result<csv::Reader<std::fs::File>> {
    csv::Reader::from_path(&d.path)
        .with_context(|| format!("dataset '{name}': cannot open {} (datasets.{name}.path)", d.path.display()))
}

/// Column names of the dataset's header row; an empty file is an error saying so.
pub fn header(name: &str, d: &DatasetConfig) -> Result<Vec<String>> {
    let mut r = reader(name, d)?;
    let h = r.headers().with_context(|| format!("dataset '{name}': cannot read the header of {}", d.path.display()))?;
    if h.iter().all(|c| c.trim().is_empty()) {
        bail!(
            "dataset '{name}': {} is empty; it needs a header line with the column names and one row per entity \
             (datasets.{name}.path)",
            d.path.display()
        );
    }
    Ok(h.iter().map(|s| s.trim().to_string()).collect())
}

/// Checks that the id column and every column in `columns` exist in the header.
pub fn check_columns<'a>(name: &str, d: &DatasetConfig, columns: impl IntoIterator<Item = &'a String>) -> Result<()> {
    let h = header(name, d)?;
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

/// Number of data rows; every row must have a non-empty id.
pub fn count_rows(name: &str, d: &DatasetConfig) -> Result<u64> {
    let mut r = reader(name, d)?;
    let h = header(name, d)?;
    let id_col = h.iter().position(|x| *x == d.id_column).with_context(|| {
        format!(
            "dataset '{name}': id column '{}' (datasets.{name}.id_column) is not in the header of {}",
            d.id_column,
            d.path.display()
        )
    })?;
    let mut n = 0u64;
    for (i, row) in r.records().enumerate() {
        let row = row.with_context(|| format!("dataset '{name}': {} line {}", d.path.display(), i + 2))?;
        if row.get(id_col).is_none_or(|v| v.trim().is_empty()) {
            bail!("dataset '{name}': {} line {}: empty id in column '{}'", d.path.display(), i + 2, d.id_column);
        }
        n += 1;
    }
    if n == 0 {
        bail!("dataset '{name}': {} has a header but no rows; add one row per entity", d.path.display());
    }
    Ok(n)
}
