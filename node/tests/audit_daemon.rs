//! Transcripts of real jobs: two daemons over QUIC on 127.0.0.1 run jobs, and each node's
//! transcript is checked as an auditor would (library and `tandem audit` CLI).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemons::{OPERATOR, data_rows, demo_job, pair, signing_pub};
use node::audit::{self, Manifest, Outcome, Record, Status, Transcript};
use node::config::Config;
use node::jobs::record::{JobRecord, JobState};
use node::jobs::runner::step_names;
use protocol::Role;

/// `tandem audit ARGS`: (exit code, stdout).
fn tandem_audit(args: &[&Path]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem")).arg("audit").args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
}

fn transcript_path(r: &JobRecord) -> PathBuf {
    r.transcript.clone().expect("the job record names its transcript")
}

fn manifest(t: &Transcript) -> &Manifest {
    t.manifest.as_ref().unwrap()
}

fn last_outcome(t: &Transcript) -> &Outcome {
    match t.records.last() {
        Some((_, Record::Outcome { outcome, .. })) => outcome,
        other => panic!("last record is not the outcome: {other:?}"),
    }
}

fn phase_ends(t: &Transcript) -> Vec<String> {
    t.records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::PhaseEnd { heads, .. } => Some(heads.phase.clone()),
            _ => None,
        })
        .collect()
}

fn cert_sha256(c: &Config) -> [u8; 32] {
    node::config::cert_fingerprint(&node::identity::load_cert(&c.node.tls_cert).unwrap())
}

#[test]
fn a_real_jobs_transcripts_verify_agree_and_reject_tampering() {
    let p = pair(|gov, _| gov.transcript.payloads = true);
    let mut job = demo_job();
    job.bank.label = Some("y".into()); // a used column like any other: the manifest must list it
    job.common.consent_refs = Some(vec!["DSA-2026-017".into(), "bank board decision 12".into()]);
    let (at_gov, at_bank) = p.run(&job);
    assert_eq!((at_gov.state, at_bank.state), (JobState::Succeeded, JobState::Succeeded), "{:?}", at_gov.error);
    let (gov_t, bank_t) = (transcript_path(&at_gov), transcript_path(&at_bank));

    let c = audit::compare(&gov_t, &bank_t).unwrap();
    assert!(c.failures.is_empty(), "{:#?}", c.failures);
    let (gov, bank) = (c.gov.unwrap(), c.bank.unwrap());
    assert!(gov.transcript.payloads_checked, "gov captured payloads and they re-hash");
    assert!(!bank.transcript.payloads_checked);

    // The manifest says what the job was, as both nodes know it.
    let m = manifest(&gov.transcript);
    assert_eq!(m, manifest(&bank.transcript));
    assert_eq!((m.job_id.as_str(), m.kind.as_str(), m.proposer), (at_gov.id.as_str(), "psi", Role::Gov));
    assert_eq!(m.operator, OPERATOR);
    assert_eq!(m.consent, ["DSA-2026-017", "bank board decision 12"]);
    assert_eq!(m.parameters, serde_json::to_value(&job).unwrap());
    for (role, c, dir) in [(Role::Gov, &p.gov_config, "gov"), (Role::Bank, &p.bank_config, "bank")] {
        let n = m.node(role).unwrap();
        assert_eq!(n.name, c.node.name);
        assert_eq!(hex::encode(n.ed25519_public_key), signing_pub(&p.dir.path().join(dir)));
        assert_eq!(n.tls_cert_sha256, cert_sha256(c));
        assert!(m.policies.gov.is_object() && m.policies.bank.is_object());
    }
    let rows: Vec<(Role, u64)> = m.datasets.iter().map(|d| (d.party, d.rows)).collect();
    let expected_rows = [
        (Role::Gov, data_rows(&p.gov_config.datasets["gov_features"].path)),
        (Role::Bank, data_rows(&p.bank_config.datasets["bank_features"].path)),
    ];
    assert_eq!(rows, expected_rows);
    assert_eq!(m.datasets[1].columns.first().map(String::as_str), Some("id"));
    assert!(m.datasets[1].columns.contains(&"y".to_string()), "the bank's label column is listed");

    // Every step after `connect` ends with both nodes' signatures; the outcome closes it.
    let expected_phases: Vec<String> = step_names(&job.params).into_iter().skip(1).map(String::from).collect();
    assert_eq!(phase_ends(&gov.transcript), expected_phases);
    assert_eq!(last_outcome(&gov.transcript), &Outcome::completed());

    // The CLI agrees, with the documented exit codes.
    assert_eq!(tandem_audit(&[Path::new("verify"), &gov_t]).0, 0);
    assert_eq!(tandem_audit(&[Path::new("verify"), &bank_t]).0, 0);
    let (code, out) = tandem_audit(&[Path::new("compare"), &gov_t, &bank_t]);
    assert_eq!(code, 0, "{out}");
    let html = p.dir.path().join("report.html");
    let (code, out) = tandem_audit(&[Path::new("report"), &gov_t, Path::new("--html"), &html]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&at_gov.id) && std::fs::read_to_string(&html).unwrap().contains(&at_gov.id));

    // A copy with one changed byte (a digit of the proposal frame's hash) is rejected.
    let text = std::fs::read_to_string(&gov_t).unwrap();
    let line = text.lines().position(|l| l.contains("\"kind\":\"job.proposal\"")).unwrap();
    let at = text.lines().take(line).map(|l| l.len() + 1).sum::<usize>()
        + text.lines().nth(line).unwrap().find("\"hash\":\"").unwrap()
        + 8;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    let tampered = p.dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, &bytes).unwrap();
    let v = audit::verify(&tampered).unwrap();
    assert!(v.failures.iter().any(|f| f.record == line + 1 && f.check == audit::Check::Chain), "{:#?}", v.failures);
    let (code, out) = tandem_audit(&[Path::new("verify"), &tampered]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(tandem_audit(&[Path::new("compare"), &tampered, &bank_t]).0, 1);

    // A changed payload byte in the capture file is caught too.
    let payloads = audit::payloads_path(&gov_t);
    let mut captured = std::fs::read(&payloads).unwrap();
    captured[0] ^= 1;
    std::fs::copy(&gov_t, &tampered).unwrap();
    std::fs::write(audit::payloads_path(&tampered), captured).unwrap();
    let v = audit::verify(&tampered).unwrap();
    assert!(v.failures.iter().any(|f| f.check == audit::Check::Payload), "{:#?}", v.failures);

    assert_eq!(tandem_audit(&[Path::new("verify"), &p.dir.path().join("missing.jsonl")]).0, 2);
}

#[test]
fn a_refused_job_has_valid_transcripts_ending_in_the_refusal() {
    let p = pair(|_, bank| bank.policy.job_kinds.retain(|k| k.as_str() != "psi"));
    let (at_gov, at_bank) = p.run(&demo_job());
    assert_eq!((at_gov.state, at_bank.state), (JobState::Failed, JobState::Failed));
    let c = audit::compare(&transcript_path(&at_gov), &transcript_path(&at_bank)).unwrap();
    assert!(c.failures.is_empty(), "{:#?}", c.failures);
    for (v, r) in [(c.gov.unwrap(), &at_gov), (c.bank.unwrap(), &at_bank)] {
        let outcome = last_outcome(&v.transcript);
        assert_eq!(outcome.status, Status::Failed);
        assert_eq!(outcome.reason, r.error, "the transcript and the job record give the same reason");
        assert!(
            r.error.as_deref().unwrap().contains("job kind 'psi' is not allowed on node 'bank' (policy.job_kinds)")
        );
        let m = manifest(&v.transcript);
        assert_eq!(
            m.datasets.iter().map(|d| d.party).collect::<Vec<_>>(),
            [Role::Gov],
            "the refusing bank described no data"
        );
        assert!(phase_ends(&v.transcript).is_empty(), "nothing was agreed, so nothing was signed jointly");
    }
}

#[test]
fn a_wrong_peer_signing_key_stops_the_job_naming_the_key() {
    let stranger = hex::encode(ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key().as_bytes());
    let p = pair(|gov, _| gov.peer.signing_key = stranger.clone());
    let (at_gov, at_bank) = p.run(&demo_job());
    assert_eq!((at_gov.state, at_bank.state), (JobState::Failed, JobState::Failed));
    let err = at_gov.error.clone().unwrap();
    assert!(err.contains(&format!("this node's peer.signing_key is {stranger}")), "{err}");
    assert!(
        at_bank.error.as_deref().unwrap().contains("peer.signing_key"),
        "the bank is told why: {:?}",
        at_bank.error
    );
    // Each transcript is valid on its own; they disagree on the bank's key, and compare says so.
    for r in [&at_gov, &at_bank] {
        let v = audit::verify(&transcript_path(r)).unwrap();
        assert!(v.ok(), "{:#?}", v.failures);
        assert_eq!(last_outcome(&v.transcript).status, Status::Failed);
    }
    let c = audit::compare(&transcript_path(&at_gov), &transcript_path(&at_bank)).unwrap();
    assert!(!c.failures.is_empty());
}
