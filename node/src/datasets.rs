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

/// Bytes read for a header before falling back to the whole file.
const HEADER_PREFIX: u64 = 1 << 20;

/// The start of the dataset file that holds its header: the first [`HEADER_PREFIX`] bytes cut
/// after their last line end. The whole file when it is shorter, or when that start holds no
/// complete non-blank line or a quote (a quoted column name may span lines).
fn header_bytes(name: &str, d: &DatasetConfig) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut prefix = Vec::new();
    std::fs::File::open(&d.path)
        .and_then(|f| f.take(HEADER_PREFIX + 1).read_to_end(&mut prefix))
        .with_context(|| format!("dataset '{name}': cannot open {} (datasets.{name}.path)", d.path.display()))?;
    if prefix.len() as u64 <= HEADER_PREFIX {
        return Ok(prefix);
    }
    match prefix.iter().rposition(|&b| b == b'\n') {
        Some(end) if !prefix[..end].contains(&b'"') && prefix[..end].iter().any(|b| !b.is_ascii_whitespace()) => {
            prefix.truncate(end + 1);
            Ok(prefix)
        }
        _ => bytes(name, d),
    }
}

fn rows<'a>(name: &str, file: &'a str, bytes: &'a [u8]) -> Result<Rows<'a>> {
    Rows::open(file, bytes, true).with_context(|| format!("dataset '{name}' (datasets.{name}.path)"))
}

/// Checks that the id column and every column in `columns` exist in the header (read from the
/// start of the file only: it runs at start-up and in every job's policy check).
pub fn check_columns<'a>(name: &str, d: &DatasetConfig, columns: impl IntoIterator<Item = &'a String>) -> Result<()> {
    let (file, bytes) = (d.path.display().to_string(), header_bytes(name, d)?);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(dir: &tempfile::TempDir, name: &str, text: &[u8]) -> DatasetConfig {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        toml::from_str(&format!("path = {:?}\nid_column = \"id\"\nid_kind = \"raw\"", path.display().to_string()))
            .unwrap()
    }

    /// Files longer than the header prefix: the header is read from their start, also when the
    /// prefix must fall back to the whole file (a quoted name, blank lines past the prefix).
    #[test]
    fn columns_of_large_files_are_checked_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<u8> = (0..100_000).flat_map(|i| format!("e{i:07},{i}\n").into_bytes()).collect();
        assert!(rows.len() as u64 > HEADER_PREFIX);
        let blank = vec![b'\n'; HEADER_PREFIX as usize + 10];
        for (file, header) in [
            ("plain.csv", b"id,a\n".to_vec()),
            ("quoted.csv", b"id,\"a\"\n".to_vec()),
            ("late.csv", [blank.as_slice(), b"id,a\n"].concat()),
        ] {
            let d = dataset(&dir, file, &[header, rows.clone()].concat());
            check_columns("t", &d, &["a".to_string()]).unwrap_or_else(|e| panic!("{file}: {e:#}"));
            let e = format!("{:#}", check_columns("t", &d, &["b".to_string()]).unwrap_err());
            assert!(e.contains("column 'b' is not in the header") && e.contains("columns there: id, a"), "{file}: {e}");
            assert_eq!(count_rows("t", &d).unwrap(), 100_000, "{file}");
        }
    }
}
