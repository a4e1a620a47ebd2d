//! Entity ID normalisation and validation before PSI.
//!
//! Both parties must normalise IDs identically, otherwise equal entities do not match: every kind
//! is trimmed and upper-cased, then checked. Unified social credit codes (GB 32100-2015) and
//! resident identity numbers (GB 11643, ISO 7064 MOD 11-2) carry a check character, so typos are
//! caught here with the line number instead of silently shrinking the intersection.

use std::collections::HashMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, InputError, Result};

/// Which kind of entity ID a dataset column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// Unified social credit code: 18 characters with a GB 32100-2015 check character.
    Uscc,
    /// Resident identity number: 17 digits and an ISO 7064 MOD 11-2 check character.
    ResidentId,
    /// Any printable key of at most [`MAX_RAW_LEN`] bytes.
    Raw,
}

impl IdKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Uscc => "uscc",
            IdKind::ResidentId => "resident_id",
            IdKind::Raw => "raw",
        }
    }
}

impl std::fmt::Display for IdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<IdKind> {
        match s.trim() {
            "uscc" => Ok(IdKind::Uscc),
            "resident_id" => Ok(IdKind::ResidentId),
            "raw" => Ok(IdKind::Raw),
            other => Err(InputError::Unknown {
                what: "ID kind",
                got: other.into(),
                allowed: "'uscc', 'resident_id' or 'raw'",
            }
            .into()),
        }
    }
}

/// Longest accepted raw key, in bytes after normalisation.
pub const MAX_RAW_LEN: usize = 256;

/// The 31 characters of a unified social credit code, in check-value order (GB 32100-2015).
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of positions 1..=17 (3^(i-1) mod 31).
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
/// Weights of the first 17 digits of a resident ID (2^(18-i) mod 11).
const RESIDENT_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Resident ID check character indexed by the weighted sum mod 11.
const RESIDENT_CHECK: &[u8; 11] = b"10X98765432";

/// Normalises one ID (trim, upper-case) and checks it against `kind`. The error says what is
/// wrong and how to fix it.
pub fn normalize(kind: IdKind, raw: &str) -> std::result::Result<String, String> {
    let id = raw.trim().to_uppercase();
    match kind {
        IdKind::Uscc => check_uscc(&id)?,
        IdKind::ResidentId => check_resident_id(&id)?,
        IdKind::Raw => check_raw(&id)?,
    }
    Ok(id)
}

fn check_uscc(id: &str) -> std::result::Result<(), String> {
    if id.chars().count() != 18 {
        return Err(format!(
            "has {} characters; a unified social credit code has exactly 18: check for a truncated or \
             merged value",
            id.chars().count()
        ));
    }
    let mut values = [0u32; 18];
    for (pos, (c, v)) in id.chars().zip(values.iter_mut()).enumerate() {
        *v = USCC_CHARSET.iter().position(|&x| x as char == c).ok_or_else(|| {
            format!(
                "character '{c}' at position {} is not allowed in a unified social credit code (allowed: \
                 0-9 and A-H J-N P-R T U W-Y; I, O, S, V, Z never occur): correct the typo",
                pos + 1
            )
        })? as u32;
    }
    let chars = id.as_bytes(); // all ASCII now
    let sum: u32 = values[..17].iter().zip(USCC_WEIGHTS).map(|(v, w)| v * w).sum();
    let expected = USCC_CHARSET[((31 - sum % 31) % 31) as usize];
    if chars[17] != expected {
        return Err(format!(
            "check character is '{}' but the first 17 characters require '{}' (GB 32100-2015): the code \
             is mistyped; correct it from the source record",
            chars[17] as char, expected as char
        ));
    }
    Ok(())
}

fn check_resident_id(id: &str) -> std::result::Result<(), String> {
    if id.chars().count() != 18 {
        return Err(format!(
            "has {} characters; a resident identity number has exactly 18 (17 digits and a check \
             character; old 15-digit numbers must be converted first)",
            id.chars().count()
        ));
    }
    if let Some((pos, c)) = id.chars().enumerate().find(|&(i, c)| !(c.is_ascii_digit() || (i == 17 && c == 'X'))) {
        return Err(format!(
            "character '{c}' at position {} must be a digit (only the 18th character may be 'X'): correct \
             the typo",
            pos + 1
        ));
    }
    let chars = id.as_bytes(); // all ASCII now
    let sum: u32 = chars[..17].iter().zip(RESIDENT_WEIGHTS).map(|(&c, w)| (c - b'0') as u32 * w).sum();
    let expected = RESIDENT_CHECK[(sum % 11) as usize];
    if chars[17] != expected {
        return Err(format!(
            "check character is '{}' but the first 17 digits require '{}' (ISO 7064 MOD 11-2): the number \
             is mistyped; correct it from the source record",
            chars[17] as char, expected as char
        ));
    }
    Ok(())
}

fn check_raw(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err("is empty: fill in the ID or remove the row".into());
    }
    if id.len() > MAX_RAW_LEN {
        return Err(format!("is {} bytes long; raw IDs may have at most {MAX_RAW_LEN} bytes", id.len()));
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character U+{:04X}: remove it", c as u32));
    }
    Ok(())
}

/// Normalised, unique IDs ready for [`crate::psi::intersect`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreparedIds {
    pub ids: Vec<String>,
    /// `rows[i]` is the dataset row (0-based position in the input) that `ids[i]` came from.
    pub rows: Vec<usize>,
    pub skipped_invalid: usize,
    pub skipped_duplicate: usize,
}

/// Normalises `ids` (pairs of line number in `source` and raw value). An invalid or repeated ID is
/// an [`InputError::InvalidId`] / [`InputError::RepeatedId`] naming `source`, the line and the ID (and, for a repeat, the first line);
/// with `skip_bad` such rows are skipped and counted instead (the first occurrence of a repeated
/// ID is kept).
pub fn prepare_ids<'a>(
    kind: IdKind,
    source: &str,
    ids: impl IntoIterator<Item = (usize, &'a str)>,
    skip_bad: bool,
) -> Result<PreparedIds> {
    let mut out = PreparedIds::default();
    let mut lines = Vec::new();
    for (row, (line, raw)) in ids.into_iter().enumerate() {
        match normalize(kind, raw) {
            Ok(id) => {
                out.ids.push(id);
                out.rows.push(row);
                lines.push(line);
            }
            Err(_) if skip_bad => out.skipped_invalid += 1,
            Err(why) => {
                return Err(InputError::InvalidId {
                    file: source.into(),
                    line,
                    id: raw.trim().into(),
                    why: why.to_string(),
                    kind: kind.to_string(),
                }
                .into());
            }
        }
    }
    let mut keep = vec![true; out.ids.len()];
    {
        let mut first_line: HashMap<&str, usize> = HashMap::with_capacity(out.ids.len());
        for (i, id) in out.ids.iter().enumerate() {
            if let Some(&first) = first_line.get(id.as_str()) {
                if !skip_bad {
                    return Err(InputError::RepeatedId {
                        file: source.into(),
                        line: lines[i],
                        id: id.clone(),
                        first_line: first,
                    }
                    .into());
                }
                keep[i] = false;
                out.skipped_duplicate += 1;
            } else {
                first_line.insert(id, lines[i]);
            }
        }
    }
    if out.skipped_duplicate > 0 {
        let mut k = keep.iter();
        out.ids.retain(|_| *k.next().expect("one flag per id"));
        let mut k = keep.iter();
        out.rows.retain(|_| *k.next().expect("one flag per row"));
    }
    Ok(out)
}

/// Local facts about how a node writes its raw IDs (before normalisation), to explain a small
/// intersection: equal entities whose IDs are written differently on the two sides (zero-padded
/// on one side only, or to another width) do not match. Upper/lower case and surrounding spaces
/// are not among the causes: [`normalize`] removes those differences. Computed from this node's
/// own IDs only; nothing of it is sent to the peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdFormat {
    pub count: usize,
    /// IDs made of decimal digits only.
    pub digits: usize,
    /// Digit IDs of two or more characters starting with '0'.
    pub leading_zero: usize,
    /// Shortest and longest digit ID (characters); 0 without digit IDs.
    pub min_len: usize,
    pub max_len: usize,
}

impl IdFormat {
    /// Summarises `ids` (raw, as in the file; surrounding spaces are ignored).
    pub fn of<'a>(ids: impl IntoIterator<Item = &'a str>) -> IdFormat {
        let mut f = IdFormat { min_len: usize::MAX, ..IdFormat::default() };
        for id in ids {
            let id = id.trim();
            f.count += 1;
            if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
                f.digits += 1;
                f.leading_zero += usize::from(id.len() > 1 && id.starts_with('0'));
                f.min_len = f.min_len.min(id.len());
                f.max_len = f.max_len.max(id.len());
            }
        }
        if f.digits == 0 {
            f.min_len = 0;
        }
        f
    }

    /// A warning naming the likely cause when only `matched` of these `count` IDs found a partner
    /// (fewer than half) and [`Self::padding_cause`] applies. None otherwise.
    pub fn mismatch_warning(&self, matched: usize) -> Option<String> {
        if self.count == 0 || matched * 2 >= self.count {
            return None;
        }
        let share = 100.0 * matched as f64 / self.count as f64;
        let cause = self.padding_cause()?;
        Some(format!("only {matched} of this node's {} ids ({share:.1}%) are in the intersection; {cause}", self.count))
    }

    /// Why equal entities may not match when the IDs look like numbers whose zero padding may
    /// differ from the peer's: at least 10 % of the digit IDs start with a zero, or at least 90 %
    /// of the IDs are digits of varying length without leading zeros. None otherwise.
    pub fn padding_cause(&self) -> Option<String> {
        let fix = "write the ids the same way on both sides (e.g. strip the leading zeros on both, or pad both to the \
                   same width)";
        if self.digits > 0 && self.leading_zero * 10 >= self.digits {
            Some(format!(
                "{:.0}% of this node's numeric ids start with a zero ({}–{} digits): if the peer writes the same ids \
                 without the leading zeros (or padded to another width), equal entities do not match; {fix}",
                100.0 * self.leading_zero as f64 / self.digits as f64,
                self.min_len,
                self.max_len
            ))
        } else if self.digits * 10 >= self.count * 9 && self.min_len < self.max_len {
            Some(format!(
                "this node's ids are numbers of {}–{} digits without leading zeros: if the peer pads the same ids with \
                 zeros to a fixed width, equal entities do not match; {fix}",
                self.min_len, self.max_len
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_column(path: &str) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        text.lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect()
    }

    #[test]
    fn uscc_check_accepts_every_id_of_synthetic_30k_and_rejects_each_altered_check_character() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/synthetic_30k");
        let mut n = 0;
        for file in ["gov.csv", "bank.csv"] {
            for id in first_column(&format!("{dir}/{file}")) {
                assert_eq!(normalize(IdKind::Uscc, &id), Ok(id.clone()), "{file}: {id}");
                // Every other check character must be refused: the check is not a constant pass.
                let wrong = USCC_CHARSET.iter().filter(|&&c| c != id.as_bytes()[17]);
                for &c in wrong.take(3) {
                    let bad = format!("{}{}", &id[..17], c as char);
                    let err = normalize(IdKind::Uscc, &bad).unwrap_err();
                    assert!(err.contains("check character"), "{bad}: {err}");
                }
                n += 1;
            }
        }
        assert_eq!(n, 35_000 + 33_000);
    }

    #[test]
    fn uscc_normalises_case_and_space_and_explains_bad_length_and_charset() {
        let id = first_column(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/synthetic_30k/gov.csv")).remove(0);
        assert_eq!(normalize(IdKind::Uscc, &format!("  {}\t", id.to_lowercase())), Ok(id.clone()));
        assert!(normalize(IdKind::Uscc, &id[..17]).unwrap_err().contains("17 characters"));
        let with_o = format!("{}O{}", &id[..3], &id[4..]);
        assert!(normalize(IdKind::Uscc, &with_o).unwrap_err().contains("'O' at position 4"));
    }

    #[test]
    fn resident_id_mod_11_2_accepts_published_examples_and_rejects_altered_ones() {
        for id in ["11010519491231002X", "440524188001010014", "110101199003074477"] {
            assert_eq!(normalize(IdKind::ResidentId, &id.to_lowercase()), Ok(id.to_string()));
            for c in "0123456789X".chars().filter(|&c| c != id.chars().last().unwrap()) {
                let bad = format!("{}{c}", &id[..17]);
                assert!(normalize(IdKind::ResidentId, &bad).unwrap_err().contains("check character"), "{bad}");
            }
            // A transposition of two different digits changes the check value.
            let mut b = id.as_bytes().to_vec();
            let i = (0..16).find(|&i| b[i] != b[i + 1]).unwrap();
            b.swap(i, i + 1);
            assert!(normalize(IdKind::ResidentId, std::str::from_utf8(&b).unwrap()).is_err());
        }
        assert!(normalize(IdKind::ResidentId, "1101051949123100X2").unwrap_err().contains("position 17"));
        assert!(normalize(IdKind::ResidentId, "110105491231002").unwrap_err().contains("15 characters"));
    }

    #[test]
    fn raw_ids_are_trimmed_upper_cased_and_bounded() {
        assert_eq!(normalize(IdKind::Raw, " acct-7 "), Ok("ACCT-7".into()));
        assert!(normalize(IdKind::Raw, "   ").is_err());
        assert!(normalize(IdKind::Raw, "a\u{7}b").unwrap_err().contains("U+0007"));
        assert!(normalize(IdKind::Raw, &"x".repeat(MAX_RAW_LEN)).is_ok());
        assert!(normalize(IdKind::Raw, &"x".repeat(MAX_RAW_LEN + 1)).is_err());
        assert_eq!("resident_id".parse::<IdKind>().unwrap(), IdKind::ResidentId);
        assert!("passport".parse::<IdKind>().is_err());
    }

    #[test]
    fn id_format_warns_of_zero_padding_only_when_few_ids_match() {
        let padded: Vec<String> = (1..=200).map(|i| format!("{i:06}")).collect();
        let plain: Vec<String> = (1..=200).map(|i| i.to_string()).collect();
        let f = IdFormat::of(padded.iter().map(String::as_str));
        assert_eq!(f, IdFormat { count: 200, digits: 200, leading_zero: 200, min_len: 6, max_len: 6 });
        // The same entities written both ways: nothing matches after normalisation.
        let matched = padded.iter().filter(|id| plain.contains(id)).count();
        assert_eq!(matched, 0);
        let w = f.mismatch_warning(matched).expect("a warning");
        assert!(
            w.contains("only 0 of this node's 200 ids")
                && w.contains("100% of this node's numeric ids start with a zero (6–6 digits)"),
            "{w}"
        );
        let w = IdFormat::of(plain.iter().map(String::as_str)).mismatch_warning(0).expect("a warning");
        assert!(w.contains("numbers of 1–3 digits without leading zeros") && w.contains("pads"), "{w}");
        // Enough matches, or ids that are not numbers: no warning.
        assert_eq!(f.mismatch_warning(100), None);
        let codes: Vec<String> = (1..=200).map(|i| format!("acct-{i}")).collect();
        assert_eq!(IdFormat::of(codes.iter().map(String::as_str)).mismatch_warning(0), None);
        let fixed: Vec<String> = (100_000..100_200).map(|i| i.to_string()).collect();
        assert_eq!(IdFormat::of(fixed.iter().map(String::as_str)).mismatch_warning(0), None, "one width, no zeros");
        assert_eq!(IdFormat::of([]).mismatch_warning(0), None);
    }

    #[test]
    fn prepare_ids_reports_invalid_and_duplicate_ids_with_lines_or_skips_and_counts_them() {
        let input = [(2, "k1"), (3, " k2"), (4, ""), (5, "K1"), (6, "k3"), (7, "k2 ")];
        let err = prepare_ids(IdKind::Raw, "bank.csv", input, false).unwrap_err();
        assert!(
            matches!(&err, Error::Input(InputError::InvalidId { file, line: 4, why, .. }) if file == "bank.csv" && why.contains("empty")),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("bank.csv line 4: ID ''"),
            "the operator's message names file and line: {err}"
        );

        let no_empty: Vec<_> = input.iter().copied().filter(|(_, s)| !s.is_empty()).collect();
        let err = prepare_ids(IdKind::Raw, "bank.csv", no_empty, false).unwrap_err();
        assert!(
            matches!(&err, Error::Input(InputError::RepeatedId { line: 5, first_line: 2, id, .. }) if id == "K1"),
            "{err}"
        );

        let p = prepare_ids(IdKind::Raw, "bank.csv", input, true).unwrap();
        assert_eq!(p.ids, ["K1", "K2", "K3"]);
        assert_eq!(p.rows, [0, 1, 4]);
        assert_eq!((p.skipped_invalid, p.skipped_duplicate), (1, 2));
    }
}
