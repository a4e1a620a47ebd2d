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

/// Reads `bytes`, the text of `file`, into memory. With `header`, the first non-blank line holds
/// the column names (non-empty, unique) and every row must have one field per column. A file
/// without any non-blank line is [`DataError::Empty`]. For large files use [`Rows`], which
/// holds one row at a time.
pub fn read(file: &str, bytes: &[u8], header: bool) -> Result<CsvFile, DataError> {
    let mut rows = Rows::open(file, bytes, header)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next_row()? {
        out.push(CsvRow { line: row.line, fields: row.fields.iter().map(|f| f.to_string()).collect() });
    }
    Ok(CsvFile { header: rows.header, rows: out })
}

/// The rows of a CSV file one at a time (the same rules and errors as [`read`]), so a file of
/// millions of rows never becomes millions of strings.
pub struct Rows<'a> {
    file: &'a str,
    bytes: &'a [u8],
    /// Byte offset of every `\n`, for the file line of a record.
    newlines: Vec<usize>,
    reader: csv::Reader<&'a [u8]>,
    record: csv::ByteRecord,
    /// Column names (trimmed) when opened with a header, else empty.
    pub header: Vec<String>,
    /// Whether every row must have one field per header column.
    check_width: bool,
}

/// One non-blank row of [`Rows`], borrowed until the next one is read.
pub struct RowRef<'r> {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    /// Trimmed fields; with a header exactly one per column.
    pub fields: Vec<&'r str>,
}

impl<'a> Rows<'a> {
    /// Opens `bytes`, the text of `file`, and reads the header if `header`. A file without any
    /// non-blank line is [`DataError::Empty`].
    pub fn open(file: &'a str, bytes: &'a [u8], header: bool) -> Result<Rows<'a>, DataError> {
        let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(DataError::Empty { file: file.to_string() });
        }
        let newlines = bytes.iter().enumerate().filter(|&(_, &b)| b == b'\n').map(|(i, _)| i).collect();
        let reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
        let mut rows = Rows {
            file,
            bytes,
            newlines,
            reader,
            record: csv::ByteRecord::new(),
            header: Vec::new(),
            check_width: false,
        };
        if header {
            let line = rows.advance()?.expect("the file has a non-blank line");
            let names = rows.fields(line)?.into_iter().map(str::to_string).collect::<Vec<_>>();
            check_header(&names)
                .map_err(|m| DataError::Header { file: file.to_string(), message: format!("line {line}: {m}") })?;
            rows.header = names;
            rows.check_width = true;
        }
        Ok(rows)
    }

    /// The next non-blank row, or None at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<RowRef<'_>>, DataError> {
        let Some(line) = self.advance()? else { return Ok(None) };
        let fields = self.fields(line)?;
        if self.check_width && fields.len() != self.header.len() {
            return Err(self.row_err(
                line,
                format!(
                    "{} fields but the header has {} columns; every row needs exactly one value per column",
                    fields.len(),
                    self.header.len()
                ),
            ));
        }
        Ok(Some(RowRef { line, fields }))
    }

    fn row_err(&self, line: u64, message: String) -> DataError {
        DataError::Row { file: self.file.to_string(), line, message }
    }

    /// File line of a byte offset (csv's own line counter skips blank lines).
    fn line_at(&self, byte: u64) -> u64 {
        let mut at = byte as usize;
        while at < self.bytes.len() && matches!(self.bytes[at], b'\n' | b'\r') {
            at += 1; // a record's position can point at preceding blank lines
        }
        1 + self.newlines.partition_point(|&i| i < at) as u64
    }

    /// Reads the next non-blank record into `self.record`; its line, or None at the end.
    fn advance(&mut self) -> Result<Option<u64>, DataError> {
        loop {
            let start = self.reader.position().byte();
            let more = self.reader.read_byte_record(&mut self.record).map_err(|e| {
                self.row_err(
                    self.line_at(e.position().map_or(start, |p| p.byte())),
                    format!("cannot parse CSV ({e}); fix the quoting on this line"),
                )
            })?;
            if !more {
                return Ok(None);
            }
            if self.record.len() == 1 && self.record[0].iter().all(|b| b.is_ascii_whitespace()) {
                continue; // a blank line
            }
            return Ok(Some(self.line_at(self.record.position().map_or(start, |p| p.byte()))));
        }
    }

    /// The trimmed fields of the current record.
    fn fields(&self, line: u64) -> Result<Vec<&str>, DataError> {
        self.record
            .iter()
            .enumerate()
            .map(|(i, f)| {
                std::str::from_utf8(f).map(str::trim).map_err(|_| {
                    let column = self.header.get(i).map_or(format!("column {}", i + 1), |n| format!("column '{n}'"));
                    self.row_err(line, format!("{column} is not valid UTF-8; save the file as UTF-8"))
                })
            })
            .collect()
    }
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
