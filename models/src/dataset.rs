//! Loading one party's CSV file: an ID column, numeric feature columns and (at the bank) a 0/1
//! label. Every problem is reported with the file, line, column and the fix; nothing is dropped
//! silently.

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
        "{file}: column '{column}' is constant on the {rows} training rows (value {value}); it carries no information and cannot be standardised: remove it from the feature columns"
    )]
    ConstantColumn { file: String, column: String, rows: usize, value: f64 },
    #[error(
        "{file}: column '{column}' has values too large to standardise (largest magnitude {largest:e}: its mean or standard deviation is not a finite number); rescale the column (e.g. to thousands) or fix the outlier"
    )]
    Overflow { file: String, column: String, largest: f64 },
}

/// One party's data set, row-major. `ids[i]` is the raw ID text of row `i`, found at file line
/// `id_lines[i]` (1-based, the header is line 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub source: String,
    pub ids: Vec<String>,
    pub id_lines: Vec<usize>,
    pub columns: Vec<String>,
    /// rows × columns.len(), row-major.
    pub x: Vec<f64>,
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
            label: self.label.as_ref().map(|y| rows.iter().map(|&r| y[r]).collect()),
        }
    }
}

/// Loads `path`. `feature_columns` empty means every column except the ID and label columns, in
/// file order. The label, if named, must be 0 or 1 on every row. Feature values must be finite
/// numbers.
pub fn load(
    path: impl AsRef<Path>,
    id_column: &str,
    feature_columns: &[String],
    label_column: Option<&str>,
) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| DataError::Unreadable { file: file.clone(), reason: e.to_string() })?;
    parse(&file, &bytes, id_column, feature_columns, label_column)
}

/// Parses CSV `bytes` named `file` in messages; see [`load`].
pub fn parse(
    file: &str,
    bytes: &[u8],
    id_column: &str,
    feature_columns: &[String],
    label_column: Option<&str>,
) -> Result<Dataset, DataError> {
    let header_err = |message: String| DataError::Header { file: file.to_string(), message };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DataError::Empty { file: file.to_string() });
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let header =
        reader.byte_headers().map_err(|e| header_err(format!("line 1: cannot parse the header ({e})")))?.clone();
    let names: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            std::str::from_utf8(h).map(|s| s.trim().to_string()).map_err(|_| {
                header_err(format!("line 1, column {}: the header is not valid UTF-8; save the file as UTF-8", i + 1))
            })
        })
        .collect::<Result<_, _>>()?;
    if names.len() == 1 {
        for (sep, name) in [(';', "semicolons"), ('\t', "tabs")] {
            if names[0].contains(sep) {
                return Err(header_err(format!(
                    "line 1: the header has one column but contains {name}; the file must be comma-separated: convert it (replace {name} with commas)"
                )));
            }
        }
    }
    let available = names.join(", ");
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(header_err(format!("line 1, column {}: empty column name; name every column", i + 1)));
        }
        if index.insert(n.as_str(), i).is_some() {
            return Err(header_err(format!("line 1: column '{n}' appears twice; rename or remove one of them")));
        }
    }
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

    let mut ds = Dataset {
        source: file.to_string(),
        ids: Vec::new(),
        id_lines: Vec::new(),
        columns,
        x: Vec::new(),
        label: label_idx.map(|_| Vec::new()),
    };
    // File line of a byte offset (csv's own line counter skips blank lines).
    let newlines: Vec<usize> = bytes.iter().enumerate().filter(|&(_, &b)| b == b'\n').map(|(i, _)| i).collect();
    let line_at = |byte: u64| {
        let mut at = byte as usize;
        while at < bytes.len() && matches!(bytes[at], b'\n' | b'\r') {
            at += 1; // a record's position can point at preceding blank lines
        }
        1 + newlines.partition_point(|&i| i < at) as u64
    };
    let mut record = csv::ByteRecord::new();
    loop {
        let start = reader.position().byte();
        let more = reader.read_byte_record(&mut record).map_err(|e| DataError::Row {
            file: file.to_string(),
            line: line_at(e.position().map_or(start, |p| p.byte())),
            message: format!("cannot parse CSV ({e}); fix the quoting on this line"),
        })?;
        if !more {
            break;
        }
        let line = line_at(record.position().map_or(start, |p| p.byte()));
        let row_err = |message: String| DataError::Row { file: file.to_string(), line, message };
        if record.len() == 1 && record[0].iter().all(|b| b.is_ascii_whitespace()) {
            continue; // a blank line
        }
        if record.len() != names.len() {
            return Err(row_err(format!(
                "{} fields but the header has {} columns; every row needs exactly one value per column",
                record.len(),
                names.len()
            )));
        }
        let field = |i: usize| {
            std::str::from_utf8(&record[i])
                .map(str::trim)
                .map_err(|_| row_err(format!("column '{}' is not valid UTF-8; save the file as UTF-8", names[i])))
        };
        let id = field(id_idx)?;
        if id.is_empty() {
            return Err(row_err(format!("column '{id_column}': empty ID; every row needs an ID")));
        }
        for &i in &feature_idx {
            ds.x.push(number(field(i)?, &names[i]).map_err(row_err)?);
        }
        if let (Some(li), Some(labels)) = (label_idx, ds.label.as_mut()) {
            let text = field(li)?;
            let y = match text.parse::<f64>() {
                Ok(v) if v == 0.0 || v == 1.0 => v,
                _ => {
                    return Err(row_err(format!(
                        "label column '{}' has value '{text}'; the label must be 0 or 1 (1 = default)",
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

/// Parses one feature value: a finite number.
fn number(text: &str, column: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "column '{column}' has value '{text}', which is not a finite number; replace NaN/inf by a real value (or impute it)"
        )),
        Err(_) if text.is_empty() => {
            Err(format!("column '{column}' is empty; every feature needs a number (impute missing values)"))
        }
        Err(_) => Err(format!(
            "column '{column}' has value '{text}', which is not a number; use a plain decimal number with '.' as the decimal point"
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
        for (value, hint) in
            [("abc", "not a number"), ("NaN", "not a finite"), ("inf", "not a finite"), ("", "is empty")]
        {
            let m = message(parse_str(&format!("id,a,b\nk1,1,2\nk2,3,{value}\n"), None));
            assert!(m.contains("t.csv, line 3") && m.contains("'b'") && m.contains(hint), "{value}: {m}");
        }
        let m = message(parse_str("id,y,a\nk1,0,1\nk2,2,1\n", Some("y")));
        assert!(m.contains("line 3") && m.contains("must be 0 or 1"), "{m}");
        let m = message(parse_str("id,a\n,1\n", None));
        assert!(m.contains("empty ID"), "{m}");
    }
}
