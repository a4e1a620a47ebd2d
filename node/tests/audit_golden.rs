//! A committed transcript pair of a small real job (`testdata/golden/`, written by
//! [`regenerate_golden_transcripts`]): today's verifier must accept it, so a change that breaks
//! the transcripts nodes already wrote is noticed. Regenerate only together with a new schema
//! version: `cargo test -p node --test audit_golden -- --ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::jobs::train;
use common::jobs::{assert_succeeded, job, pair, repo_root};
use node::audit::{self, Record, SCHEMA, Status};
use protocol::Role;

fn golden(role: Role) -> PathBuf {
    repo_root().join("testdata/golden").join(format!("{role}.jsonl"))
}

/// `tandem audit ARGS`: (exit code, stdout).
fn tandem_audit(args: &[&Path]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem")).arg("audit").args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn golden_transcripts_verify_and_compare() {
    let (gov, bank) = (golden(Role::Gov), golden(Role::Bank));
    let c = audit::compare(&gov, &bank).unwrap();
    assert!(c.ok(), "{:#?}", c.failures);
    for v in [c.gov.unwrap(), c.bank.unwrap()] {
        assert!(v.notes.is_empty(), "{:?}", v.notes);
        let t = &v.transcript;
        assert_eq!(t.manifest.as_ref().unwrap().kind, "train");
        let text = std::fs::read_to_string(&t.path).unwrap();
        assert!(text.starts_with(&format!("{{\"type\":\"manifest\",\"schema\":\"{SCHEMA}\"")));
        // What makes the pair worth keeping: openings listed by their reveals, every reveal
        // signed by both nodes, and a completion both signed.
        let opened: usize = t.reveals.iter().map(|r| r.frames.len()).sum();
        let open_frames = t
            .records
            .iter()
            .filter(|(_, r)| matches!(r, Record::Frame { kind, .. } if kind.starts_with("open.")))
            .count();
        assert!(opened > 0 && opened == open_frames, "{opened} listed, {open_frames} open.* frames");
        assert!(t.reveals.iter().all(|r| r.signed_at.is_some()));
        assert!(t.completion_signed_at.is_some());
        match t.records.last() {
            Some((_, Record::Outcome { outcome, .. })) => assert_eq!(outcome.status, Status::Completed),
            other => panic!("last record: {other:?}"),
        }
    }
    assert_eq!(tandem_audit(&[Path::new("verify"), &gov]).0, 0);
    assert_eq!(tandem_audit(&[Path::new("verify"), &bank]).0, 0);
    let (code, out) = tandem_audit(&[Path::new("compare"), &gov, &bank]);
    assert_eq!(code, 0, "{out}");
    let html = tempfile::tempdir().unwrap();
    let (code, out) = tandem_audit(&[Path::new("report"), &bank, Path::new("--html"), &html.path().join("r.html")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("under rule 'policy.reveals: metrics'"), "{out}");
}

/// Runs a small training job between two real daemons and writes both transcripts to
/// `testdata/golden/` (without payload files).
#[test]
#[ignore = "writes testdata/golden/: run only when the schema version changes"]
fn regenerate_golden_transcripts() {
    let p = pair(&[], |_, _| {});
    let spec = job("demo-train.toml", |s| {
        s.reveal.push(node::jobs::spec::Reveal::ScoresToBank); // test scores and metrics are opened
        train(s).epochs = Some(1);
        train(s).batch_size = Some(2048);
    });
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    std::fs::create_dir_all(repo_root().join("testdata/golden")).unwrap();
    for (role, r) in [(Role::Gov, &gov), (Role::Bank, &bank)] {
        let from = r.transcript.as_ref().unwrap();
        assert!(audit::verify(from).unwrap().ok());
        std::fs::copy(from, golden(role)).unwrap();
    }
}
