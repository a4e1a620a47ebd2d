//! `tandem audit ...` commands. Exit codes auditors can script on: [`EXIT_OK`] when everything
//! verifies, [`EXIT_FAILED`] when verification fails (each failure printed with its record
//! number and reason), [`EXIT_USAGE`] for bad arguments or unreadable files.

use std::io::Write;
use std::path::Path;

use super::report;
use super::verify::{Failure, compare, verify};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

fn io_error(e: anyhow::Error) -> i32 {
    eprintln!("error: {e:#}");
    EXIT_USAGE
}

/// Prints notes and failures, then `OK <ok>` or `FAILED <subject>: N problem(s)`.
fn print_result(out: &mut dyn Write, subject: &str, ok: &str, failures: &[Failure], notes: &[String]) -> i32 {
    for n in notes {
        let _ = writeln!(out, "note: {n}");
    }
    for f in failures {
        let _ = writeln!(out, "FAILED {f}");
    }
    if failures.is_empty() {
        let _ = writeln!(out, "OK {subject}: {ok}");
        EXIT_OK
    } else {
        let _ = writeln!(out, "FAILED {subject}: {} problem(s)", failures.len());
        EXIT_FAILED
    }
}

/// `tandem audit verify FILE`.
pub fn verify_cmd(file: &Path, out: &mut dyn Write) -> i32 {
    match verify(file) {
        Ok(v) => {
            let ok = format!(
                "{} records verified{}",
                v.transcript.records.len(),
                if v.transcript.payloads_checked { ", payloads re-hashed" } else { "" }
            );
            print_result(out, &file.display().to_string(), &ok, &v.failures, &v.notes)
        }
        Err(e) => io_error(e),
    }
}

/// `tandem audit compare GOV BANK`.
pub fn compare_cmd(gov: &Path, bank: &Path, out: &mut dyn Write) -> i32 {
    match compare(gov, bank) {
        Ok(c) => {
            let subject = format!("{} vs {}", gov.display(), bank.display());
            print_result(
                out,
                &subject,
                "both verify and agree on every frame, phase end and reveal",
                &c.failures,
                &c.notes,
            )
        }
        Err(e) => io_error(e),
    }
}

/// `tandem audit report FILE [--html OUT]`: prints the text report; writes HTML to `html`.
/// Exit code 1 if the transcript does not verify (the report still shows what it holds).
pub fn report_cmd(file: &Path, html: Option<&Path>, out: &mut dyn Write) -> i32 {
    let v = match verify(file) {
        Ok(v) => v,
        Err(e) => return io_error(e),
    };
    let _ = out.write_all(report::text(&v).as_bytes());
    if let Some(path) = html
        && let Err(e) = std::fs::write(path, report::html(&v))
    {
        eprintln!("error: cannot write HTML report {}: {e}", path.display());
        return EXIT_USAGE;
    }
    if v.ok() { EXIT_OK } else { EXIT_FAILED }
}
