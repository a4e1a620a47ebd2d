//! The one CSV reader of every input file (datasets, test-id lists, queries files): a UTF-8 byte
//! order mark is stripped, CRLF and LF line ends are both accepted, blank lines are skipped, every
//! field is trimmed, and every error names the file and its 1-based line (the line numbers of the
//! file as an editor shows them, blank lines included).

use std::collections::HashSet;

use crate::dataset::DataError;

/// The rows of a CSV file, with the file line of each.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvFile {
    /// Column names (trimmed) when read with a header, else empty.
    pub header: Vec<String>,
    pub rows: Vec<CsvRow>,
}

/// One non-blank row.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvRow {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    /// Trimmed fields; with a header exactly one per column.
    pub fields: Vec<String>,
}

/// The UTF-8 byte order mark that some editors (and spreadsheet exports) put first.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `bytes`, the text of `file`. With `header`, the first non-blank line holds the column
/// names (non-empty, unique) and every row must have one field per column. A file without any
/// non-blank line is [`DataError::Empty`].
pub fn read(file: &str, bytes: &[u8], header: bool) -> Result<CsvFile, DataError> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DataError::Empty { file: file.to_string() });
    }
    let row_err = |line: u64, message: String| DataError::Row { file: file.to_string(), line, message };
    // File line of a byte offset (csv's own line counter skips blank lines).
    let newlines: Vec<usize> = bytes.iter().enumerate().filter(|&(_, &b)| b == b'\n').map(|(i, _)| i).collect();
    let line_at = |byte: u64| {
        let mut at = byte as usize;
        while at < bytes.len() && matches!(bytes[at], b'\n' | b'\r') {
            at += 1; // a record's position can point at preceding blank lines
        }
        1 + newlines.partition_point(|&i| i < at) as u64
    };
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut out = CsvFile { header: Vec::new(), rows: Vec::new() };
    let mut record = csv::ByteRecord::new();
    let mut have_header = !header;
    loop {
        let start = reader.position().byte();
        let more = reader.read_byte_record(&mut record).map_err(|e| {
            row_err(
                line_at(e.position().map_or(start, |p| p.byte())),
                format!("cannot parse CSV ({e}); fix the quoting on this line"),
            )
        })?;
        if !more {
            break;
        }
        let line = line_at(record.position().map_or(start, |p| p.byte()));
        if record.len() == 1 && record[0].iter().all(|b| b.is_ascii_whitespace()) {
            continue; // a blank line
        }
        let fields: Vec<String> = record
            .iter()
            .enumerate()
            .map(|(i, f)| {
                std::str::from_utf8(f).map(|s| s.trim().to_string()).map_err(|_| {
                    let column = out.header.get(i).map_or(format!("column {}", i + 1), |n| format!("column '{n}'"));
                    row_err(line, format!("{column} is not valid UTF-8; save the file as UTF-8"))
                })
            })
            .collect::<Result<_, _>>()?;
        if !have_header {
            check_header(&fields)
                .map_err(|m| DataError::Header { file: file.to_string(), message: format!("line {line}: {m}") })?;
            out.header = fields;
            have_header = true;
            continue;
        }
        if header && fields.len() != out.header.len() {
            return Err(row_err(
                line,
                format!(
                    "{} fields but the header has {} columns; every row needs exactly one value per column",
                    fields.len(),
                    out.header.len()
                ),
            ));
        }
        out.rows.push(CsvRow { line, fields });
    }
    Ok(out)
}

/// Column names must be non-empty and unique; a single name holding `;` or a tab means the file
/// uses another separator.
fn check_header(names: &[String]) -> Result<(), String> {
    if let [only] = names {
        for (sep, name) in [(';', "semicolons"), ('\t', "tabs")] {
            if only.contains(sep) {
                return Err(format!(
                    "the header has one column but contains {name}; the file must be comma-separated: convert it (replace {name} with commas)"
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(format!("column {}: empty column name; name every column", i + 1));
        }
        if !seen.insert(n.as_str()) {
            return Err(format!("column '{n}' appears twice; rename or remove one of them"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(f: &CsvFile) -> Vec<(u64, Vec<&str>)> {
        f.rows.iter().map(|r| (r.line, r.fields.iter().map(String::as_str).collect())).collect()
    }

    #[test]
    fn bom_crlf_blank_lines_and_line_numbers() {
        let plain = read("t.csv", b"id,a\n\nk1, 1 \n   \nk2,2\n", true).unwrap();
        assert_eq!(plain.header, ["id", "a"]);
        assert_eq!(lines(&plain), [(3, vec!["k1", "1"]), (5, vec!["k2", "2"])]);
        // The same file with a BOM, CRLF line ends and a blank first line reads the same,
        // one line further down.
        let dos = read("t.csv", b"\xEF\xBB\xBF\r\nid,a\r\n\r\nk1, 1 \r\n   \r\nk2,2", true).unwrap();
        assert_eq!(dos.header, ["id", "a"]);
        assert_eq!(lines(&dos), [(4, vec!["k1", "1"]), (6, vec!["k2", "2"])]);
        let no_header = read("ids.txt", b"\xEF\xBB\xBFk1\r\nk2\r\n", false).unwrap();
        assert_eq!(lines(&no_header), [(1, vec!["k1"]), (2, vec!["k2"])]);
    }

    #[test]
    fn errors_name_the_file_line() {
        let e = read("t.csv", b"id,a\n\nk1,1\n\nk2\n", true).unwrap_err().to_string();
        assert!(e.starts_with("t.csv, line 5: 1 fields but the header has 2 columns"), "{e}");
        let e = read("t.csv", b"id,a\r\n\r\nk\xff,1\r\n", true).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("column 'id'") && e.contains("UTF-8"), "{e}");
        let e = read("t.csv", b"\n\nid,id\n", true).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("'id' appears twice"), "{e}");
        assert_eq!(read("t.csv", b"\xEF\xBB\xBF \r\n", true), Err(DataError::Empty { file: "t.csv".into() }));
    }
}
