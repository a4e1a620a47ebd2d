//! PSI jobs between two daemons: the intersection, its files, reveal modes and policy refusals.

mod common;

use std::collections::HashSet;

use common::jobs::*;
use node::jobs::failure::{FailureKind, peer_notice};
use node::jobs::record::JobState;
use node::jobs::spec::Reveal;
use protocol::psi::{PsiProtocol, PsiReveal};

#[test]
fn psi_job_aligns_exactly_the_common_ids_on_both_nodes() {
    // The bank file repeats its first row (skipped and counted with skip_invalid_ids).
    let guest =
        std::fs::read_to_string(repo_root().join("testdata/default_credit/default_credit_hetero_guest.csv")).unwrap();
    let first = guest.lines().nth(1).unwrap();
    let p = pair(&[first], |gov, bank| {
        gov.policy.reveals.push(Reveal::Psi(PsiReveal::BankOnly));
        bank.policy.reveals.push(Reveal::Psi(PsiReveal::BankOnly));
    });
    let expected = p.data.common_ids();
    let spec = job("demo-job.toml", |s| {
        s.reveal = vec![Reveal::Psi(PsiReveal::Both)];
        s.common.skip_invalid_ids = Some(true);
    });
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    for r in [&gov, &bank] {
        assert_eq!(r.outcome["intersection_size"], expected.len(), "{:?}", r.outcome);
        assert_eq!(r.outcome["gov_rows"], p.data.gov.len());
        assert_eq!(r.outcome["bank_rows"], p.data.bank.len() + 1);
    }
    assert_eq!(bank.outcome["ids_duplicate_skipped"], 1);
    assert_eq!(gov.outcome["ids_duplicate_skipped"], 0);
    // Both files list the common ids, in the same (aligned) order, each with its own file line.
    let (h, gov_rows) = read_csv(&p.job_file(&p.gov_config, &gov.id, "intersection.csv"));
    let (_, bank_rows) = read_csv(&p.job_file(&p.bank_config, &gov.id, "intersection.csv"));
    assert_eq!(h, ["id", "line"]);
    let gov_ids: Vec<&str> = gov_rows.iter().map(|r| r[0].as_str()).collect();
    let bank_ids: Vec<&str> = bank_rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(gov_ids, bank_ids);
    assert_eq!(gov_ids.iter().map(|s| s.to_string()).collect::<HashSet<_>>(), expected);
    assert_eq!(gov_ids.len(), expected.len(), "no id twice");
    let mut sorted = gov_ids.clone();
    sorted.sort_by_key(|s| s.parse::<u64>().unwrap());
    assert_ne!(gov_ids, sorted, "the aligned order is not the input order");
    let reveals: Vec<_> = transcript_records(&gov, "reveal").into_iter().map(|r| r["reveal"].clone()).collect();
    let bank_reveals: Vec<_> = transcript_records(&bank, "reveal").into_iter().map(|r| r["reveal"].clone()).collect();
    assert_eq!(reveals, bank_reveals, "both transcripts record the same reveals");
    // The ids' reveal is hashed with the job's audit key, which both nodes hold (owner-only) and
    // agreed on without sending it: recomputed here from the key file and the aligned ids.
    let key_file = |c| std::fs::read_to_string(p.job_file(c, &gov.id, "audit.key")).unwrap();
    let key: [u8; 32] = hex::decode(key_file(&p.gov_config)).unwrap().try_into().unwrap();
    assert_eq!(key_file(&p.bank_config), key_file(&p.gov_config));
    let ids_reveal: Vec<_> = reveals.iter().filter(|r| r["name"] == "intersection_ids").collect();
    assert_eq!(ids_reveal.len(), 2, "one per direction");
    let value = gov_ids.join("\n");
    for r in ids_reveal {
        assert_eq!(r["value_hash"], hex::encode(blake3::keyed_hash(&key, value.as_bytes()).as_bytes()));
        assert_ne!(r["value_hash"], hex::encode(blake3::hash(value.as_bytes()).as_bytes()), "not the plain hash");
    }
    let transcript = std::fs::read(gov.transcript.as_ref().unwrap()).unwrap();
    assert!(
        !transcript.windows(64).any(|w| w == key_file(&p.gov_config).as_bytes()),
        "the key is not in the transcript"
    );

    // Only the bank learns the ids: the gov gets the size and no file.
    let spec = job("demo-job.toml", |s| {
        s.reveal = vec![Reveal::Psi(PsiReveal::BankOnly)];
        s.common.skip_invalid_ids = Some(true);
    });
    let (gov, bank) = p.run(&spec, true);
    assert_succeeded(&gov, &bank);
    assert_eq!(gov.outcome["intersection_size"], expected.len());
    assert!(!p.job_file(&p.gov_config, &gov.id, "intersection.csv").exists());
    let (_, rows) = read_csv(&p.job_file(&p.bank_config, &gov.id, "intersection.csv"));
    assert_eq!(rows.iter().map(|r| r[0].clone()).collect::<HashSet<_>>(), expected);

    // Size only: neither node writes the ids.
    let spec = job("demo-job.toml", |s| s.common.skip_invalid_ids = Some(true));
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    assert_eq!(bank.outcome["intersection_size"], expected.len());
    assert!(!p.job_file(&p.gov_config, &gov.id, "intersection.csv").exists());
    assert!(!p.job_file(&p.bank_config, &gov.id, "intersection.csv").exists());

    // Without skip_invalid_ids the repeated id fails the job, naming the file and both lines.
    let spec = job("demo-job.toml", |_| {});
    let (gov, bank) = p.run(&spec, false);
    assert_eq!(bank.state, JobState::Failed);
    let err = bank.error.unwrap();
    let repeated = first.split(',').next().unwrap();
    assert!(err.contains("bank.csv line") && err.contains(&format!("ID '{repeated}' repeats the ID of line")), "{err}");
    // The gov learns only the step and the kind of failure: no id, value, line or path.
    assert_eq!(gov.state, JobState::Failed);
    let notice = peer_notice("bank", "psi", FailureKind::Input);
    assert_eq!(gov.error.as_deref(), Some(format!("phase 'psi': peer aborted: {notice}").as_str()));
    assert!(!notice.contains(repeated) && !notice.contains("line") && !notice.contains('/'), "{notice}");
    let outcome = transcript_records(&gov, "outcome");
    assert_eq!(outcome[0]["outcome"]["reason"], format!("phase 'psi': peer aborted: {notice}"));
}

#[test]
fn a_reveal_mode_the_peer_policy_refuses_is_reported_with_its_rule() {
    let p = pair(&[], |gov, _| gov.policy.reveals.retain(|r| *r != Reveal::Psi(PsiReveal::Both)));
    let spec = job("demo-job.toml", |s| s.reveal = vec![Reveal::Psi(PsiReveal::Both)]);
    let (gov, bank) = p.run(&spec, true);
    let rule = "policy: reveal 'intersection_ids' is not allowed on node 'gov' (policy.reveals)";
    assert_eq!(gov.state, JobState::Failed);
    assert_eq!(gov.error.as_deref(), Some(rule));
    assert_eq!(bank.error.as_deref(), Some(format!("rejected by peer 'gov': {rule}").as_str()));
    assert!(!p.job_file(&p.bank_config, &gov.id, "intersection.csv").exists());
}

#[test]
fn psi_protocol_param_chooses_vole_or_ecdh_with_the_same_aligned_ids() {
    let p = pair(&[], |_, _| {});
    let expected = p.data.common_ids();
    let mut aligned = Vec::new();
    for (protocol, name) in [(PsiProtocol::Vole, "vole"), (PsiProtocol::Ecdh, "ecdh")] {
        let spec = job("demo-job.toml", |s| {
            s.reveal = vec![Reveal::Psi(PsiReveal::Both)];
            s.common.psi_protocol = Some(protocol);
        });
        let (gov, bank) = p.run(&spec, false);
        assert_succeeded(&gov, &bank);
        for r in [&gov, &bank] {
            assert_eq!(r.outcome["psi_protocol"], name);
            assert_eq!(r.outcome["intersection_size"], expected.len());
        }
        let (_, gov_rows) = read_csv(&p.job_file(&p.gov_config, &gov.id, "intersection.csv"));
        let (_, bank_rows) = read_csv(&p.job_file(&p.bank_config, &gov.id, "intersection.csv"));
        let ids = |rows: &[Vec<String>]| rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>();
        assert_eq!(ids(&gov_rows), ids(&bank_rows), "{name}: row i is the same entity on both nodes");
        assert_eq!(ids(&gov_rows).into_iter().collect::<HashSet<_>>(), expected);
        let psi_frames: Vec<String> = transcript_records(&gov, "frame")
            .into_iter()
            .filter_map(|r| r["kind"].as_str().map(str::to_string))
            .filter(|k| k.starts_with("psi.okvs"))
            .collect();
        assert_eq!(!psi_frames.is_empty(), protocol == PsiProtocol::Vole, "{name}: {psi_frames:?}");
        aligned.push(ids(&gov_rows).into_iter().collect::<HashSet<_>>());
    }
    assert_eq!(aligned[0], aligned[1]);

    // VOLE cannot keep a size-only reveal: the job is refused before it runs, naming the param.
    let mut spec = job("demo-job.toml", |_| {});
    spec.common.psi_protocol = Some(PsiProtocol::Vole);
    let err = spec.validate().expect_err("vole with intersection_size").to_string();
    assert!(err.contains("params.psi_protocol") && err.contains("ecdh"), "{err}");
}
