//! Loading one party's CSV file: an ID column, feature columns (numeric, or categorical when
//! declared so) with missing cells allowed, and (at the bank) a 0/1 label. Every problem is
//! reported with the file, line, column and the fix; nothing is dropped silently.

use std::collections::HashMap;
use std::path::Path;

/// A problem with a party's input data. The message names the file, line, column and the fix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DataError {
    #[error("{file}: cannot read the file ({reason}); check the path and permissions")]
    Unreadable { file: String, reason: String },
    #[error("{file}: the file is empty; it needs a header line with the column names and one row per entity")]
    Empty { file: String },
    #[error("{file}: {message}")]
    Header { file: String, message: String },
    #[error("{file}, line {line}: {message}")]
    Row { file: String, line: u64, message: String },
    #[error(
        "{file}: every feature column is constant on the {rows} training rows after preparation; the model needs at least one column that varies: check the data or the train/test split"
    )]
    NoColumns { file: String, rows: usize },
    #[error(
        "{file}: column '{column}' has values too large to standardise (largest magnitude {largest:e}: its mean or standard deviation is not a finite number); rescale the column (e.g. to thousands) or fix the outlier"
    )]
    Overflow { file: String, column: String, largest: f64 },
}

/// One party's data set, row-major. `ids[i]` is the raw ID text of row `i`, found at file line
/// `id_lines[i]` (1-based, blank lines counted, as an editor shows them).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub source: String,
    pub ids: Vec<String>,
    pub id_lines: Vec<usize>,
    pub columns: Vec<String>,
    /// rows × columns.len(), row-major. A missing cell is `f64::NAN`; a categorical column holds
    /// the index of the row's level in `levels[c]`, as f64.
    pub x: Vec<f64>,
    /// One entry per column: `Some(levels)` (sorted, distinct) for a categorical column, `None`
    /// for a numeric one.
    pub levels: Vec<Option<Vec<String>>>,
    pub label: Option<Vec<f64>>,
}

impl Dataset {
    pub fn rows(&self) -> usize {
        self.ids.len()
    }
    pub fn cols(&self) -> usize {
        self.columns.len()
    }
    /// Row `i` of the feature matrix.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.cols()..(i + 1) * self.cols()]
    }
    /// A new data set holding the given rows, in the given order (e.g. the aligned PSI order).
    pub fn select_rows(&self, rows: &[usize]) -> Dataset {
        Dataset {
            source: self.source.clone(),
            ids: rows.iter().map(|&r| self.ids[r].clone()).collect(),
            id_lines: rows.iter().map(|&r| self.id_lines[r]).collect(),
            columns: self.columns.clone(),
            x: rows.iter().flat_map(|&r| self.row(r).iter().copied()).collect(),
            levels: self.levels.clone(),
            label: self.label.as_ref().map(|y| rows.iter().map(|&r| y[r]).collect()),
        }
    }
}

/// Cell texts that mean "missing" when no other list is configured (besides an empty cell, which
/// is always missing).
pub const DEFAULT_MISSING: [&str; 3] = ["NA", "null", "?"];

/// How to read the cells of a dataset: which texts mean "missing" and which columns hold
/// categories instead of numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct CellFormat {
    /// Texts of a missing cell, compared ignoring ASCII case (an empty cell is always missing).
    pub missing: Vec<String>,
    /// Columns whose values are category labels (any text).
    pub categorical: Vec<String>,
}

impl Default for CellFormat {
    fn default() -> CellFormat {
        CellFormat { missing: DEFAULT_MISSING.iter().map(|s| s.to_string()).collect(), categorical: Vec::new() }
    }
}

impl CellFormat {
    fn is_missing(&self, text: &str) -> bool {
        text.is_empty() || self.missing.iter().any(|m| m.eq_ignore_ascii_case(text))
    }
}

/// Loads `path` with the default [`CellFormat`]; see [`load_with`].
pub fn load(
    path: impl AsRef<Path>,
    id_column: &str,
    feature_columns: &[String],
    label_column: Option<&str>,
) -> Result<Dataset, DataError> {
    load_with(path, id_column, feature_columns, label_column, &CellFormat::default())
}

/// Loads `path` (read with [`crate::csv_file`]: BOM, CRLF and blank lines are fine).
/// `feature_columns` empty means every column except the ID and label columns, in file order.
/// The label, if named, must be 0 or 1 on every row. A feature cell is missing (NaN) when empty
/// or one of `format.missing`; otherwise it is a finite number, or any text in a column of
/// `format.categorical`.
pub fn load_with(
    path: impl AsRef<Path>,
    id_column: &str,
    feature_columns: &[String],
    label_column: Option<&str>,
    format: &CellFormat,
) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| DataError::Unreadable { file: file.clone(), reason: e.to_string() })?;
    parse_with(&file, &bytes, id_column, feature_columns, label_column, format)
}

/// Parses CSV `bytes` named `file` in messages with the default [`CellFormat`]; see [`load_with`].
pub fn parse(
    file: &str,
    bytes: &[u8],
    id_column: &str,
    feature_columns: &[String],
    label_column: Option<&str>,
) -> Result<Dataset, DataError> {
    parse_with(file, bytes, id_column, feature_columns, label_column, &CellFormat::default())
}

/// Parses CSV `bytes` named `file` in messages; see [`load_with`].
pub fn parse_with(
    file: &str,
    bytes: &[u8],
    id_column: &str,
    feature_columns: &[String],
    label_column: Option<&str>,
    format: &CellFormat,
) -> Result<Dataset, DataError> {
    let header_err = |message: String| DataError::Header { file: file.to_string(), message };
    let mut rows = crate::csv_file::Rows::open(file, bytes, true)?;
    let names = &rows.header.clone();
    let available = names.join(", ");
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let find = |name: &str, role: &str| {
        index.get(name).copied().ok_or_else(|| {
            header_err(format!("the {role} column '{name}' is not in the header; available columns: {available}"))
        })
    };
    let id_idx = find(id_column, "ID")?;
    let label_idx = label_column.map(|l| find(l, "label")).transpose()?;
    if label_idx == Some(id_idx) {
        return Err(header_err(format!("the ID column '{id_column}' cannot also be the label column")));
    }
    for c in &format.categorical {
        let i = find(c, "categorical")?;
        if i == id_idx || Some(i) == label_idx {
            return Err(header_err(format!("column '{c}' is the ID or label column and cannot be categorical")));
        }
    }
    let feature_idx: Vec<usize> = if feature_columns.is_empty() {
        (0..names.len()).filter(|&i| i != id_idx && Some(i) != label_idx).collect()
    } else {
        let mut seen = std::collections::HashSet::new();
        let mut idx = Vec::with_capacity(feature_columns.len());
        for c in feature_columns {
            if !seen.insert(c.as_str()) {
                return Err(header_err(format!(
                    "feature column '{c}' is listed twice in the configuration; list it once"
                )));
            }
            let i = find(c, "feature")?;
            if i == id_idx || Some(i) == label_idx {
                return Err(header_err(format!("column '{c}' is the ID or label column and cannot be a feature")));
            }
            idx.push(i);
        }
        idx
    };
    if feature_idx.is_empty() {
        return Err(header_err(format!("no feature columns; available columns: {available}")));
    }
    let columns: Vec<String> = feature_idx.iter().map(|&i| names[i].clone()).collect();
    let categorical: Vec<bool> = columns.iter().map(|c| format.categorical.contains(c)).collect();
    // Levels of the categorical columns: sorted distinct texts of non-missing cells (a first
    // pass over the file, only when there are categorical columns).
    let mut level_sets: Vec<Option<std::collections::BTreeSet<String>>> =
        categorical.iter().map(|&cat| cat.then(Default::default)).collect();
    if categorical.contains(&true) {
        let mut first_pass = crate::csv_file::Rows::open(file, bytes, true)?;
        while let Some(row) = first_pass.next_row()? {
            for (&i, set) in feature_idx.iter().zip(level_sets.iter_mut()) {
                if let Some(set) = set
                    && !format.is_missing(row.fields[i])
                    && !set.contains(row.fields[i])
                {
                    set.insert(row.fields[i].to_string());
                }
            }
        }
    }
    let levels: Vec<Option<Vec<String>>> = level_sets.into_iter().map(|s| s.map(|s| s.into_iter().collect())).collect();

    // A capacity hint: rows of about 8 bytes per field.
    let estimate = (bytes.len() / 8 / (feature_idx.len() + 1)).max(1);
    let mut ds = Dataset {
        source: file.to_string(),
        ids: Vec::with_capacity(estimate),
        id_lines: Vec::with_capacity(estimate),
        columns,
        x: Vec::with_capacity(estimate * feature_idx.len()),
        levels,
        label: label_idx.map(|_| Vec::with_capacity(estimate)),
    };
    while let Some(row) = rows.next_row()? {
        let line = row.line;
        let row_err = |message: String| DataError::Row { file: file.to_string(), line, message };
        let id = &row.fields[id_idx];
        if id.is_empty() {
            return Err(row_err(format!("column '{id_column}': empty ID; every row needs an ID")));
        }
        for (&i, levels) in feature_idx.iter().zip(&ds.levels) {
            let text = row.fields[i];
            let v = match levels {
                _ if format.is_missing(text) => f64::NAN,
                Some(levels) => {
                    levels.binary_search_by(|l| l.as_str().cmp(text)).expect("level collected above") as f64
                }
                None => number(text, &names[i]).map_err(row_err)?,
            };
            ds.x.push(v);
        }
        if let (Some(li), Some(labels)) = (label_idx, ds.label.as_mut()) {
            let text = row.fields[li];
            let y = match text.parse::<f64>() {
                Ok(v) if v == 0.0 || v == 1.0 => v,
                _ => {
                    return Err(row_err(format!(
                        "label column '{}' has value '{text}'; the label must be 0 or 1 (1 = default) on every row",
                        names[li]
                    )));
                }
            };
            labels.push(y);
        }
        ds.ids.push(id.to_string());
        ds.id_lines.push(line as usize);
    }
    if ds.ids.is_empty() {
        return Err(DataError::Empty { file: file.to_string() });
    }
    Ok(ds)
}

/// Parses one numeric feature value: a finite number.
fn number(text: &str, column: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "column '{column}' has value '{text}', which is not a finite number; if it marks a missing value, add \
             '{text}' to the dataset's missing = [..] list, else replace it by a real value"
        )),
        Err(_) => Err(format!(
            "column '{column}' has value '{text}', which is not a number: if '{column}' holds categories, declare it \
             in the dataset's categorical = [..] list; if '{text}' marks a missing value, add it to the dataset's \
             missing = [..] list; else use a plain decimal number with '.' as the decimal point"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str, label: Option<&str>) -> Result<Dataset, DataError> {
        parse("t.csv", text.as_bytes(), "id", &[], label)
    }

    fn message(r: Result<Dataset, DataError>) -> String {
        r.expect_err("must fail").to_string()
    }

    #[test]
    fn loads_features_label_ids_and_line_numbers() {
        let ds = parse_str("id,y,a,b\nk1,1,1.5,-2\n\nk2,0,3e2,0.25\n", Some("y")).unwrap();
        assert_eq!(ds.ids, vec!["k1", "k2"]);
        assert_eq!(ds.id_lines, vec![2, 4]);
        assert_eq!(ds.columns, vec!["a", "b"]);
        assert_eq!(ds.x, vec![1.5, -2.0, 300.0, 0.25]);
        assert_eq!(ds.label, Some(vec![1.0, 0.0]));
        let chosen = parse("t.csv", b"id,y,a,b\nk1,1,1.5,-2\n", "id", &["b".into()], None).unwrap();
        assert_eq!((chosen.columns, chosen.x, chosen.label), (vec!["b".to_string()], vec![-2.0], None));
    }

    #[test]
    fn missing_and_empty_files() {
        let e = load("/nonexistent/dir/f.csv", "id", &[], None).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir/f.csv"), "{e}");
        assert_eq!(parse_str("", None), Err(DataError::Empty { file: "t.csv".into() }));
        assert_eq!(parse_str("id,a\n", None), Err(DataError::Empty { file: "t.csv".into() }));
    }

    #[test]
    fn column_problems_list_the_available_columns() {
        let m = message(parse("t.csv", b"id,a,b\nk,1,2\n", "id", &["c".into()], None));
        assert!(m.contains("'c'") && m.contains("available columns: id, a, b"), "{m}");
        let m = message(parse("t.csv", b"uid,a\nk,1\n", "id", &[], None));
        assert!(m.contains("ID column 'id'") && m.contains("uid, a"), "{m}");
        let m = message(parse_str("id,a\nk,1\n", Some("y")));
        assert!(m.contains("label column 'y'"), "{m}");
        let m = message(parse_str("id,a,a\nk,1,2\n", None));
        assert!(m.contains("'a' appears twice"), "{m}");
        let m = message(parse("t.csv", b"id,a\nk,1\n", "id", &["a".into(), "a".into()], None));
        assert!(m.contains("listed twice"), "{m}");
        let m = message(parse_str("id,a\nk,1,2\n", None));
        assert!(m.contains("line 2") && m.contains("3 fields") && m.contains("2 columns"), "{m}");
        let m = message(parse_str("id,a,b\nk1,1,2\nk2,1\n", None));
        assert!(m.contains("line 3") && m.contains("2 fields"), "{m}");
    }

    #[test]
    fn wrong_delimiter_is_detected() {
        let m = message(parse_str("id;a;b\nk;1;2\n", None));
        assert!(m.contains("semicolons") && m.contains("comma-separated"), "{m}");
        let m = message(parse_str("id\ta\nk\t1\n", None));
        assert!(m.contains("tabs"), "{m}");
    }

    #[test]
    fn invalid_utf8_names_line_and_column() {
        let m = message(parse("t.csv", b"id,a\nk,1\nk\xff,2\n", "id", &[], None));
        assert!(m.contains("line 3") && m.contains("'id'") && m.contains("UTF-8"), "{m}");
        let m = message(parse("t.csv", b"id,\xe9\nk,1\n", "id", &[], None));
        assert!(m.contains("line 1") && m.contains("UTF-8"), "{m}");
    }

    #[test]
    fn bad_values_name_line_column_and_fix() {
        for (value, hint) in [
            ("abc", "declare it in the dataset's categorical = [..]"),
            ("NaN", "not a finite number; if it marks a missing value, add 'NaN' to the dataset's missing = [..]"),
            ("inf", "not a finite"),
        ] {
            let m = message(parse_str(&format!("id,a,b\nk1,1,2\n\nk2,3,{value}\n"), None));
            assert!(m.contains("t.csv, line 4") && m.contains("column 'b'") && m.contains(hint), "{value}: {m}");
        }
        let m = message(parse_str("id,y,a\nk1,0,1\nk2,2,1\n", Some("y")));
        assert!(m.contains("line 3") && m.contains("must be 0 or 1"), "{m}");
        let m = message(parse_str("id,y,a\nk1,0,1\nk2,,1\n", Some("y")));
        assert!(m.contains("line 3") && m.contains("must be 0 or 1"), "a missing label is an error: {m}");
        let m = message(parse_str("id,a\n,1\n", None));
        assert!(m.contains("empty ID"), "{m}");
    }

    #[test]
    fn missing_cells_are_nan_and_missing_tokens_are_configurable() {
        let text = "id,a,b\nk1,,2\nk2,NA,null\nk3,?, n/a \nk4,na,5\n";
        // Default tokens "", NA, null, ? (ignoring case, so "na" too); "n/a" is not one of them.
        let m = message(parse_str(text, None));
        assert!(m.contains("line 4") && m.contains("'n/a'") && m.contains("missing = [..]"), "{m}");
        let format =
            CellFormat { missing: vec!["n/a".into(), "NA".into(), "null".into(), "?".into()], categorical: vec![] };
        let ds = parse_with("t.csv", text.as_bytes(), "id", &[], None, &format).unwrap();
        let shown: Vec<Option<f64>> = ds.x.iter().map(|v| (!v.is_nan()).then_some(*v)).collect();
        assert_eq!(shown, [None, Some(2.0), None, None, None, None, None, Some(5.0)]);
        // Without "?" in the list, '?' is a bad value again.
        let format = CellFormat { missing: vec!["n/a".into(), "NA".into(), "null".into()], categorical: vec![] };
        let m = message(parse_with("t.csv", text.as_bytes(), "id", &[], None, &format));
        assert!(m.contains("line 4") && m.contains("'?'") && m.contains("missing = [..]"), "{m}");
    }

    #[test]
    fn categorical_columns_hold_level_indices() {
        let format = CellFormat { categorical: vec!["city".into()], ..CellFormat::default() };
        let text = "id,city,a\nk1,Xi'an,1\nk2,Beijing,2\nk3,,3\nk4,Xi'an,4\n";
        let ds = parse_with("t.csv", text.as_bytes(), "id", &[], None, &format).unwrap();
        assert_eq!(ds.levels, vec![Some(vec!["Beijing".to_string(), "Xi'an".to_string()]), None]);
        let city: Vec<f64> = (0..4).map(|r| ds.row(r)[0]).collect();
        assert_eq!((city[0], city[1], city[3]), (1.0, 0.0, 1.0));
        assert!(city[2].is_nan(), "a missing category is NaN");
        let m = message(parse_str(text, None));
        assert!(m.contains("line 2") && m.contains("'city'") && m.contains("categorical = [..]"), "{m}");
        let bad = CellFormat { categorical: vec!["town".into()], ..CellFormat::default() };
        let m = message(parse_with("t.csv", text.as_bytes(), "id", &[], None, &bad));
        assert!(m.contains("categorical column 'town' is not in the header"), "{m}");
    }

    #[test]
    fn bom_and_crlf_read_like_plain_text() {
        let plain = parse_str("id,y,a\nk1,1,1.5\nk2,0,2\n", Some("y")).unwrap();
        let dos = parse_str("\u{feff}id,y,a\r\nk1,1,1.5\r\nk2,0,2\r\n", Some("y")).unwrap();
        assert_eq!(dos, plain);
        assert_eq!(dos.ids[0], "k1", "the BOM is not part of the first header name or ID");
    }
}
