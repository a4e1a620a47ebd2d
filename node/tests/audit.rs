//! Transcripts of a real two-party exchange over the in-memory channel: both verify and agree,
//! and every kind of tampering is caught by the check meant to catch it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use node::audit::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, compare_cmd, report_cmd, verify_cmd};
use node::audit::record::{OUTCOME_SIGNING_CONTEXT, append_hex_field, record_chain, split_hex_field};
use node::audit::writer::PhaseEndError;
use node::audit::{
    Check, DatasetInfo, Failure, Manifest, NodeInfo, Outcome, Policies, Record, Reveal, ScoreHist, TranscriptWriter,
    compare, exchange_manifest_digest, payloads_path, value_hash, verify,
};
use protocol::channel::run_pair;
use protocol::disclose::{Disclosure, Gate, Grant};
use protocol::{Channel, Role, Stats};

/// Test-only deterministic node keys (production keys come from the OS RNG).
fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn manifest(job_id: &str, gov: &SigningKey, bank: &SigningKey, gov_rows: u64, bank_rows: u64) -> Manifest {
    let node = |name: &str, role, k: &SigningKey| NodeInfo {
        name: name.into(),
        role,
        tls_cert_sha256: *blake3::hash(name.as_bytes()).as_bytes(),
        ed25519_public_key: k.verifying_key().to_bytes(),
    };
    Manifest {
        job_id: job_id.into(),
        kind: "train".into(),
        created: "2026-03-01T09:00:00Z".into(),
        proposer: Role::Bank,
        nodes: vec![node("gov-node", Role::Gov, gov), node("bank-node", Role::Bank, bank)],
        datasets: vec![
            DatasetInfo {
                party: Role::Gov,
                name: "tax".into(),
                columns: vec!["id".into(), "revenue".into()],
                rows: gov_rows,
            },
            DatasetInfo {
                party: Role::Bank,
                name: "loans".into(),
                columns: vec!["id".into(), "default".into()],
                rows: bank_rows,
            },
        ],
        parameters: serde_json::json!({"epochs": 1, "learning_rate": 0.5}),
        policies: Policies {
            gov: serde_json::json!({"reveal_intersection": "size"}),
            bank: serde_json::json!({"reveal_intersection": "size", "metrics_to_peer": true}),
        },
        operator: "analyst@bank".into(),
        consent: vec!["DSA-2026-017".into()],
    }
}

fn id_hash(job_id: &str, id: &str) -> [u8; 32] {
    *blake3::keyed_hash(blake3::hash(job_id.as_bytes()).as_bytes(), id.as_bytes()).as_bytes()
}

/// Both nodes record a reveal the same way.
fn size_reveal(size: u64) -> Reveal {
    Reveal {
        phase: "psi".into(),
        name: "intersection_size".into(),
        value_hash: value_hash(&size.to_le_bytes()),
        summary: format!("intersection size {size}"),
        from: Role::Bank,
        to: vec![Role::Gov],
        rule: "bank policy reveal_intersection=size".into(),
        frames: vec![],
    }
}

/// What the bank opens to the gov in the training phase: a small JSON object of metrics.
fn metrics_grant(sum: u64, count: usize) -> Grant {
    Grant::new("metrics", "metrics", serde_json::json!({"sum": sum, "count": count}).to_string())
}

/// The node's gate as far as the transcript goes (like `JobGate`): every opened value becomes a
/// reveal record listing its frames.
struct RecordingGate(TranscriptWriter);

impl Gate for RecordingGate {
    fn allow(&self, _rule: &str) -> protocol::Result<()> {
        Ok(())
    }
    fn record(&mut self, d: Disclosure) -> protocol::Result<()> {
        self.0.reveal(Reveal::from(d)).map_err(|e| protocol::Error::Record(e.to_string()))
    }
}

/// Starts a node's transcript on `ch`, its gate recording reveals, and swaps manifest digests.
fn start(ch: &mut Channel, path: &Path, m: &Manifest, key: &SigningKey, capture: bool) -> TranscriptWriter {
    let w = TranscriptWriter::create(path, m.clone(), key, capture).unwrap();
    ch.set_observer(w.observer());
    ch.set_gate(Box::new(RecordingGate(w.clone())));
    ch.set_phase("setup");
    exchange_manifest_digest(ch, m).unwrap();
    w
}

/// The last phase of a job that ran to its end: both sign `outcome`, then it is recorded.
fn complete(ch: &mut Channel, w: &TranscriptWriter, outcome: Outcome) {
    ch.set_phase("finish");
    w.end_phase(ch, "finish", Some(&outcome)).unwrap();
    w.outcome(outcome).unwrap();
}

struct Job {
    gov: PathBuf,
    bank: PathBuf,
    gov_size: u64,
    bank_size: u64,
    gov_stats: Stats,
    bank_stats: Stats,
}

/// A small two-party job: toy ID matching (gov sends keyed hashes of its IDs, bank answers with
/// the intersection size; both record its reveal), then a "training" round (bank sends values, gov
/// returns their sum, bank opens metrics to the gov through the reveal path), then `finish`, where
/// both sign their completed outcomes. With `complete = false` both stop after the PSI phase with a
/// failed outcome. Gov captures payloads, bank does not.
fn run_job(dir: &Path, tag: &str, job_id: &str, gov_ids: &[String], bank_ids: &[String], complete_job: bool) -> Job {
    let (gk, bk) = (key(1), key(2));
    let m = manifest(job_id, &gk, &bk, gov_ids.len() as u64, bank_ids.len() as u64);
    let (gov_path, bank_path) = (dir.join(format!("{tag}-gov.jsonl")), dir.join(format!("{tag}-bank.jsonl")));
    let values: Vec<u64> = (0..300u64).map(|i| i * i + 7).collect();
    let ((gov_size, gov_stats), (bank_size, bank_stats)) = run_pair(
        |ch| {
            let w = start(ch, &gov_path, &m, &gk, true);
            ch.set_phase("psi");
            let hashes: Vec<u8> = gov_ids.iter().flat_map(|id| id_hash(job_id, id)).collect();
            ch.send_bulk("psi.ids", &hashes).unwrap();
            let size: u64 = ch.recv("psi.size").unwrap();
            w.reveal(size_reveal(size)).unwrap();
            w.end_phase(ch, "psi", None).unwrap();
            if !complete_job {
                w.outcome(Outcome::failed("stopped after psi")).unwrap();
                return (size, ch.stats());
            }
            ch.set_phase("train");
            let v = ch.recv_u64s("train.values", 300).unwrap();
            let sum = v.iter().fold(0u64, |a, x| a.wrapping_add(*x));
            ch.send("train.sum", &sum).unwrap();
            let opened = ch.reveal_recv(&metrics_grant(sum, v.len()), 64).unwrap();
            assert_eq!(opened, sum.to_le_bytes());
            w.end_phase(ch, "train", None).unwrap();
            complete(ch, &w, Outcome::completed());
            (size, ch.stats())
        },
        |ch| {
            let w = start(ch, &bank_path, &m, &bk, false);
            ch.set_phase("psi");
            let theirs = ch.recv_bulk("psi.ids", 32 * 10_000).unwrap();
            let mine: HashSet<[u8; 32]> = bank_ids.iter().map(|id| id_hash(job_id, id)).collect();
            let size = theirs.chunks_exact(32).filter(|c| mine.contains(*c)).count() as u64;
            ch.send("psi.size", &size).unwrap();
            w.reveal(size_reveal(size)).unwrap();
            w.end_phase(ch, "psi", None).unwrap();
            if !complete_job {
                w.outcome(Outcome::failed("stopped after psi")).unwrap();
                return (size, ch.stats());
            }
            ch.set_phase("train");
            ch.send_u64s("train.values", &values).unwrap();
            let sum: u64 = ch.recv("train.sum").unwrap();
            ch.reveal_send(&metrics_grant(sum, values.len()), &sum.to_le_bytes()).unwrap();
            w.end_phase(ch, "train", None).unwrap();
            let mut outcome = Outcome::completed();
            outcome.roc = Some(vec![[0.0, 0.0], [0.1, 0.5], [0.4, 0.8], [1.0, 1.0]]);
            outcome.score_hist =
                Some(ScoreHist { edges: vec![300.0, 500.0, 700.0, 900.0], good: vec![5, 20, 40], bad: vec![9, 6, 1] });
            complete(ch, &w, outcome);
            (size, ch.stats())
        },
    );
    Job { gov: gov_path, bank: bank_path, gov_size, bank_size, gov_stats, bank_stats }
}

fn ids(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("9131000{i:011}")).collect()
}

fn standard_job(dir: &Path, tag: &str) -> Job {
    run_job(dir, tag, "job-42", &ids(0..400), &ids(250..700), true)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

/// Writes `lines` as a new transcript, with a copy of the payload file of `payloads_of` if given.
fn write_variant(to: &Path, lines: &[String], payloads_of: Option<&Path>) {
    std::fs::write(to, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    if let Some(from) = payloads_of {
        std::fs::copy(payloads_path(from), payloads_path(to)).unwrap();
    }
}

/// What a forger without the signing keys can do: recompute every chain hash.
fn rechain(lines: &[String]) -> Vec<String> {
    let mut prev = [0u8; 32];
    lines
        .iter()
        .map(|l| {
            let (canonical, _) = split_hex_field::<32>(l.as_bytes(), "chain").unwrap();
            prev = record_chain(&prev, &canonical);
            String::from_utf8(append_hex_field(&canonical, "chain", &prev)).unwrap()
        })
        .collect()
}

fn parse(line: &str) -> Record {
    let (canonical, _) = split_hex_field::<32>(line.as_bytes(), "chain").unwrap();
    let body = split_hex_field::<64>(&canonical, "signature").map_or(canonical, |(body, _)| body);
    serde_json::from_slice(&body).unwrap()
}

fn unparse(r: &Record) -> String {
    String::from_utf8(append_hex_field(&serde_json::to_vec(r).unwrap(), "chain", &[0; 32])).unwrap()
}

/// `line` with its record changed by `f`, keeping its signature (if any) as it was; the chain is
/// left for [`rechain`].
fn edit(line: &str, f: impl FnOnce(&mut Record)) -> String {
    let (canonical, _) = split_hex_field::<32>(line.as_bytes(), "chain").unwrap();
    let (body, signature) = match split_hex_field::<64>(&canonical, "signature") {
        Some((body, sig)) => (body, Some(sig)),
        None => (canonical, None),
    };
    let mut record: Record = serde_json::from_slice(&body).unwrap();
    f(&mut record);
    let mut out = serde_json::to_vec(&record).unwrap();
    if let Some(sig) = signature {
        out = append_hex_field(&out, "signature", &sig);
    }
    String::from_utf8(append_hex_field(&out, "chain", &[0; 32])).unwrap()
}

/// What the node itself can do on top of [`rechain`]: re-sign its outcome (the last line) with
/// its own key.
fn resign_outcome(lines: &[String], key: &SigningKey) -> Vec<String> {
    let mut lines = rechain(lines);
    let last = lines.len() - 1;
    let (_, prev_chain) = split_hex_field::<32>(lines[last - 1].as_bytes(), "chain").unwrap();
    let (canonical, _) = split_hex_field::<32>(lines[last].as_bytes(), "chain").unwrap();
    let (body, _) = split_hex_field::<64>(&canonical, "signature").unwrap();
    let mut msg = OUTCOME_SIGNING_CONTEXT.to_vec();
    msg.extend_from_slice(&prev_chain);
    msg.extend_from_slice(&body);
    let signed = append_hex_field(&body, "signature", &key.sign(&msg).to_bytes());
    lines[last] = String::from_utf8(append_hex_field(&signed, "chain", &[0; 32])).unwrap();
    rechain(&lines)
}

/// Verifies `lines` (chain recomputed) written to `dir/name`.
fn verify_variant(dir: &Path, name: &str, lines: &[String]) -> node::audit::Verification {
    let path = dir.join(name);
    write_variant(&path, lines, None);
    let v = verify(&path).unwrap();
    assert!(!v.failures.iter().any(|f| f.check == Check::Chain), "{name}: chain recomputed: {:?}", checks(&v.failures));
    v
}

/// 0-based line index of the first record matching `pred`.
fn find(lines: &[String], pred: impl Fn(&Record) -> bool) -> usize {
    lines.iter().position(|l| pred(&parse(l))).expect("record present")
}

fn has(failures: &[Failure], check: Check, record: usize) -> bool {
    failures.iter().any(|f| f.check == check && f.record == record)
}

fn checks(failures: &[Failure]) -> Vec<(Check, usize)> {
    failures.iter().map(|f| (f.check, f.record)).collect()
}

#[test]
fn honest_transcripts_verify_agree_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let job = standard_job(dir.path(), "a");
    let expected = ids(0..400).iter().collect::<HashSet<_>>().intersection(&ids(250..700).iter().collect()).count();
    assert_eq!((job.gov_size, job.bank_size), (expected as u64, expected as u64));

    for (path, stats, role) in [(&job.gov, job.gov_stats, Role::Gov), (&job.bank, job.bank_stats, Role::Bank)] {
        let v = verify(path).unwrap();
        assert!(v.ok(), "{:?}", v.failures);
        assert!(v.notes.is_empty(), "{:?}", v.notes);
        assert_eq!(v.transcript.node, Some(role));
        let count = |dir| {
            v.transcript.records.iter().filter(|(_, r)| matches!(r, Record::Frame { dir: d, .. } if *d == dir)).count()
                as u64
        };
        use protocol::transcript::Direction::*;
        assert_eq!((count(Sent), count(Received)), (stats.frames_sent, stats.frames_received));
        let types: Vec<&str> = v.transcript.records.iter().map(|(_, r)| r.type_name()).collect();
        assert_eq!(types.first(), Some(&"manifest"));
        assert_eq!(types.last(), Some(&"outcome"));
        assert_eq!(types.iter().filter(|t| **t == "phase_end").count(), 3);

        // Every record but the last phase end's exchange and the outcome is signed by both; the
        // opened metrics are listed by their reveal, and both reveals are signed in their phase.
        let file = lines(path);
        let phase_end = |p: &str| 1 + find(&file, |r| matches!(r, Record::PhaseEnd { heads, .. } if heads.phase == p));
        assert_eq!(v.transcript.covered, phase_end("finish") - 5);
        assert_eq!(v.transcript.completion_signed_at, Some(phase_end("finish")));
        let opens: Vec<usize> = (1..=file.len())
            .filter(|n| matches!(parse(&file[n - 1]), Record::Frame { kind, .. } if kind == "open.metrics"))
            .collect();
        assert_eq!(opens.len(), 2, "bulk header and one chunk");
        let infos = &v.transcript.reveals;
        assert_eq!(infos.len(), 2);
        assert_eq!((infos[0].frames.as_slice(), infos[0].signed_at), (&[][..], Some(phase_end("psi"))));
        assert_eq!((infos[1].frames.clone(), infos[1].signed_at), (opens, Some(phase_end("train"))));
    }
    assert!(verify(&job.gov).unwrap().transcript.payloads_checked);
    assert!(!verify(&job.bank).unwrap().transcript.payloads_checked);
    let c = compare(&job.gov, &job.bank).unwrap();
    assert!(c.ok(), "{:?}", c.failures);
    assert!(compare(&job.bank, &job.gov).unwrap().ok(), "either argument order");

    let mut out = Vec::new();
    assert_eq!(verify_cmd(&job.gov, &mut out), EXIT_OK);
    assert_eq!(compare_cmd(&job.gov, &job.bank, &mut out), EXIT_OK);
    let html = dir.path().join("report.html");
    let mut text = Vec::new();
    assert_eq!(report_cmd(&job.bank, Some(&html), &mut text), EXIT_OK);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains(&format!("intersection size {expected}")), "{text}");
    assert!(text.contains("job-42") && text.contains("DSA-2026-017") && text.contains("loans: 450 rows"), "{text}");
    assert!(text.contains("[train] metrics: bank -> gov under rule 'metrics'"), "{text}");
    assert!(text.contains("opened in 2 'open.metrics' frame(s)"), "{text}");
    assert!(text.contains("[psi] intersection_size: bank -> gov under rule 'bank policy reveal_intersection=size'"));
    assert!(text.contains("learnt from a protocol's output"), "{text}");
    assert!(text.contains("Outcome:     completed, signed by both nodes at record"), "{text}");
    let html = std::fs::read_to_string(html).unwrap();
    assert!(html.contains("<h2>Metrics</h2>") && html.contains("<td>sum</td>"), "metrics table from the reveal");
    assert!(html.contains("<polyline") && html.contains("score distribution"), "ROC and histogram plots");
}

#[test]
fn changed_byte_breaks_the_chain_and_rechaining_breaks_the_signed_heads() {
    let dir = tempfile::tempdir().unwrap();
    let job = standard_job(dir.path(), "a");
    let orig = lines(&job.bank);
    let i = find(&orig, |r| matches!(r, Record::Frame { kind, .. } if kind == "train.values"));
    let mut changed = orig.clone();
    let (from, to) = (r#""len":8,"#, r#""len":9,"#);
    assert!(changed[i].contains(from));
    changed[i] = changed[i].replacen(from, to, 1);
    let path = dir.path().join("changed.jsonl");
    write_variant(&path, &changed, None);
    let v = verify(&path).unwrap();
    assert!(has(&v.failures, Check::Chain, i + 1), "{:?}", checks(&v.failures));
    assert_eq!(v.failures.iter().filter(|f| f.check == Check::Chain).count(), 1, "each break reported once");

    // A forger who recomputes the chain is caught by the heads both nodes signed.
    let path = dir.path().join("rechained.jsonl");
    write_variant(&path, &rechain(&changed), None);
    let v = verify(&path).unwrap();
    let phase_end = find(&orig, |r| matches!(r, Record::PhaseEnd { heads, .. } if heads.phase == "train"));
    assert!(!v.failures.iter().any(|f| f.check == Check::Chain));
    assert!(has(&v.failures, Check::PhaseHeads, phase_end + 1), "{:?}", checks(&v.failures));
    let mut out = Vec::new();
    assert_eq!(verify_cmd(&path, &mut out), EXIT_FAILED);
    assert!(
        String::from_utf8(out).unwrap().contains(&format!("record {}: signed heads of phase 'train'", phase_end + 1))
    );
}

#[test]
fn dropped_and_reordered_records_break_the_chain_where_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let job = standard_job(dir.path(), "a");
    let orig = lines(&job.gov);
    let i = find(&orig, |r| matches!(r, Record::Frame { kind, .. } if kind == "train.values"));

    let mut dropped = orig.clone();
    dropped.remove(i);
    let path = dir.path().join("dropped.jsonl");
    write_variant(&path, &dropped, None);
    let v = verify(&path).unwrap();
    assert!(has(&v.failures, Check::Chain, i + 1), "{:?}", checks(&v.failures));
    assert!(has(&v.failures, Check::FrameSeq, i + 1), "{:?}", checks(&v.failures));

    let mut swapped = orig.clone();
    swapped.swap(i, i + 1);
    let path = dir.path().join("swapped.jsonl");
    write_variant(&path, &swapped, None);
    let v = verify(&path).unwrap();
    assert!(has(&v.failures, Check::Chain, i + 1), "{:?}", checks(&v.failures));

    let mut truncated = orig.clone();
    truncated.pop();
    let path = dir.path().join("truncated.jsonl");
    write_variant(&path, &truncated, None);
    let v = verify(&path).unwrap();
    assert_eq!(checks(&v.failures), vec![(Check::Incomplete, truncated.len())]);
}

#[test]
fn forged_peer_signature_is_rejected_even_with_a_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let job = standard_job(dir.path(), "a");
    let mut forged = lines(&job.gov);
    let i = find(&forged, |r| matches!(r, Record::PhaseEnd { heads, .. } if heads.phase == "psi"));
    let Record::PhaseEnd { time, mut heads } = parse(&forged[i]) else { unreachable!() };
    let intruder = key(99);
    heads.signatures.bank = intruder.sign(&heads.signing_bytes("job-42")).to_bytes();
    forged[i] = unparse(&Record::PhaseEnd { time, heads });
    let path = dir.path().join("forged.jsonl");
    write_variant(&path, &rechain(&forged), Some(&job.gov));
    let v = verify(&path).unwrap();
    assert!(!v.failures.iter().any(|f| f.check == Check::Chain), "{:?}", checks(&v.failures));
    let sig = v.failures.iter().find(|f| f.check == Check::PhaseSignature).expect("signature failure");
    assert_eq!(sig.record, i + 1);
    assert!(sig.reason.contains("bank node's signature"), "{}", sig.reason);
    assert!(!v.failures.iter().any(|f| f.check == Check::PhaseSignature && f.reason.contains("gov node")));
}

#[test]
fn a_node_cannot_later_change_the_manifest_in_its_own_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let job = standard_job(dir.path(), "a");
    let mut edited = lines(&job.bank);
    let Record::Manifest { schema, time, node, mut manifest } = parse(&edited[0]) else { unreachable!() };
    manifest.consent = vec!["DSA-2026-999".into()];
    // The bank re-signs with its own key and re-chains: its own signature is fine ...
    let unsigned = serde_json::to_vec(&Record::Manifest { schema, time, node, manifest }).unwrap();
    let mut msg = node::audit::record::MANIFEST_SIGNING_CONTEXT.to_vec();
    msg.extend_from_slice(&unsigned);
    let signed = append_hex_field(&unsigned, "signature", &key(2).sign(&msg).to_bytes());
    edited[0] = String::from_utf8(append_hex_field(&signed, "chain", &[0; 32])).unwrap();
    let path = dir.path().join("edited.jsonl");
    write_variant(&path, &rechain(&edited), None);
    let v = verify(&path).unwrap();
    // ... but the digests exchanged in frames (covered by both phase signatures) no longer match,
    // the record chain is not the one the gov signed, and the outcome signature is off.
    let sent = find(&edited, |r| matches!(r, Record::Frame { kind, .. } if kind == "job.manifest"));
    let psi_end = find(&edited, |r| matches!(r, Record::PhaseEnd { .. }));
    assert_eq!(
        checks(&v.failures),
        vec![
            (Check::ManifestBinding, sent + 1),
            (Check::ManifestBinding, sent + 2),
            (Check::PhaseChain, psi_end + 1),
            (Check::OutcomeSignature, edited.len())
        ]
    );
}

#[test]
fn exchange_refuses_a_peer_with_another_manifest() {
    let (gk, bk) = (key(1), key(2));
    let m = manifest("job-7", &gk, &bk, 1, 1);
    let mut other = m.clone();
    other.parameters = serde_json::json!({"epochs": 2});
    let (g, b) = run_pair(|ch| exchange_manifest_digest(ch, &m), |ch| exchange_manifest_digest(ch, &other));
    for r in [g, b] {
        assert!(matches!(r, Err(protocol::Error::Mismatch { what: "job manifests", .. })));
    }
}

#[test]
fn phase_end_refuses_a_peer_signing_with_a_key_not_in_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (gk, bk) = (key(1), key(2));
    let m = manifest("job-7", &gk, &bk, 1, 1);
    let bank_view = manifest("job-7", &gk, &key(3), 1, 1); // the bank signs with another key
    let (g, _) = run_pair(
        |ch| {
            let w = TranscriptWriter::create(&dir.path().join("g.jsonl"), m.clone(), &gk, false).unwrap();
            ch.send("x", &1u8).unwrap();
            w.end_phase(ch, "p", None)
        },
        |ch| {
            let w = TranscriptWriter::create(&dir.path().join("b.jsonl"), bank_view.clone(), &key(3), false).unwrap();
            let _: u8 = ch.recv("x").unwrap();
            w.end_phase(ch, "p", None)
        },
    );
    let e = g.unwrap_err();
    assert!(
        matches!(&e, PhaseEndError::Protocol(protocol::Error::Peer(protocol::PeerError::BadSignature { what }))
            if what.contains("phase 'p'")),
        "{e:#}"
    );
}

#[test]
fn phase_end_refuses_nodes_that_recorded_different_reveals() {
    let dir = tempfile::tempdir().unwrap();
    let (gk, bk) = (key(1), key(2));
    let m = manifest("job-7", &gk, &bk, 1, 1);
    let (g, b) = run_pair(
        |ch| {
            let w = start(ch, &dir.path().join("g.jsonl"), &m, &gk, false);
            w.reveal(size_reveal(5)).unwrap();
            w.end_phase(ch, "psi", None)
        },
        |ch| {
            let w = start(ch, &dir.path().join("b.jsonl"), &m, &bk, false);
            w.reveal(size_reveal(6)).unwrap();
            w.end_phase(ch, "psi", None)
        },
    );
    for e in [g.unwrap_err(), b.unwrap_err()] {
        assert!(
            matches!(&e, PhaseEndError::Protocol(protocol::Error::Mismatch { what: "recorded reveals", detail })
                if detail.contains("phase 'psi'")),
            "{e:#}"
        );
    }
}

#[test]
fn transcripts_of_different_runs_do_not_compare() {
    let dir = tempfile::tempdir().unwrap();
    let a = standard_job(dir.path(), "a");
    // Same manifest, different bank data: each transcript verifies alone, but not together.
    let b = run_job(dir.path(), "b", "job-42", &ids(0..400), &ids(300..750), true);
    assert!(verify(&b.bank).unwrap().ok());
    let c = compare(&a.gov, &b.bank).unwrap();
    assert!(!c.failures.iter().any(|f| f.check == Check::Manifest), "{:?}", checks(&c.failures));
    // First differing send each way: bank's answer (another intersection size), and gov's record
    // chain (other times, another reveal) at the first phase end.
    let size_sent = find(&lines(&b.bank), |r| matches!(r, Record::Frame { kind, .. } if kind == "psi.size"));
    let sig_sent = find(&lines(&a.gov), |r| matches!(r, Record::Frame { kind, .. } if kind == "phase.head"));
    let frames: Vec<(&str, usize)> =
        c.failures.iter().filter(|f| f.check == Check::Frames).map(|f| (f.file.as_str(), f.record)).collect();
    assert!(frames.contains(&(b.bank.to_str().unwrap(), size_sent + 1)), "{frames:?}");
    assert!(frames.contains(&(a.gov.to_str().unwrap(), sig_sent + 1)), "{frames:?}");
    assert!(c.failures.iter().any(|f| f.check == Check::Heads));
    assert!(c.failures.iter().any(|f| f.check == Check::Reveals));
    let mut out = Vec::new();
    assert_eq!(compare_cmd(&a.gov, &b.bank, &mut out), EXIT_FAILED);

    // Another job altogether: the manifests differ.
    let other = run_job(dir.path(), "c", "job-43", &ids(0..400), &ids(250..700), true);
    let c = compare(&a.gov, &other.bank).unwrap();
    let m = c.failures.iter().find(|f| f.check == Check::Manifest).expect("manifest mismatch");
    assert!(m.reason.contains("job_id"), "{}", m.reason);
    // Two transcripts of the same node are not a pair.
    let c = compare(&a.gov, &other.gov).unwrap();
    assert_eq!(checks(&c.failures), vec![(Check::Manifest, 1)]);
}

#[test]
fn tampered_payload_file_is_caught_at_its_frame() {
    let dir = tempfile::tempdir().unwrap();
    let job = standard_job(dir.path(), "a");
    let orig = lines(&job.gov);
    let i = find(&orig, |r| matches!(r, Record::Frame { kind, len, .. } if kind == "train.values" && *len > 8));
    let Record::Frame { offset: Some(offset), .. } = parse(&orig[i]) else { panic!("gov captures payloads") };
    let mut payloads = std::fs::read(payloads_path(&job.gov)).unwrap();
    payloads[offset as usize + 17] ^= 1;
    std::fs::write(payloads_path(&job.gov), &payloads).unwrap();
    let v = verify(&job.gov).unwrap();
    assert_eq!(checks(&v.failures), vec![(Check::Payload, i + 1)]);

    payloads.push(0);
    std::fs::write(payloads_path(&job.gov), &payloads).unwrap();
    let v = verify(&job.gov).unwrap();
    assert!(has(&v.failures, Check::Payload, 0), "extra bytes: {:?}", checks(&v.failures));

    std::fs::remove_file(payloads_path(&job.gov)).unwrap();
    let v = verify(&job.gov).unwrap();
    assert!(v.ok() && v.notes.iter().any(|n| n.contains("payload file is absent")));
}

#[test]
fn writer_never_overwrites_and_rejects_foreign_keys_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (gk, bk) = (key(1), key(2));
    let m = manifest("job-1", &gk, &bk, 1, 1);
    let path = dir.path().join("t.jsonl");
    let w = TranscriptWriter::create(&path, m.clone(), &gk, false).unwrap();
    assert_eq!(w.role(), Role::Gov);
    let before = std::fs::read(&path).unwrap();
    let e = TranscriptWriter::create(&path, m.clone(), &bk, false).err().expect("existing file refused");
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "untouched");
    let e = TranscriptWriter::create(&dir.path().join("u.jsonl"), m.clone(), &key(5), false).err().unwrap();
    assert!(e.to_string().contains("neither node"), "{e}");
    let mut bad = m.clone();
    bad.created = "yesterday".into();
    let e = TranscriptWriter::create(&dir.path().join("v.jsonl"), bad, &gk, false).err().unwrap();
    assert!(e.to_string().contains("field created"), "{e}");
    let e = w.outcome(Outcome::completed()).unwrap_err().to_string();
    assert!(e.contains("a completed outcome needs both nodes' signatures"), "{e}");
    w.outcome(Outcome::failed("peer unreachable")).unwrap();
    assert!(w.reveal(size_reveal(1)).is_err(), "nothing after the outcome");
    let v = verify(&path).unwrap();
    assert!(v.ok(), "{:?}", v.failures);
    assert!(v.notes.iter().any(|n| n.contains("failed outcome is signed by the gov node alone")), "{:?}", v.notes);

    let mut out = Vec::new();
    assert_eq!(verify_cmd(&dir.path().join("missing.jsonl"), &mut out), EXIT_USAGE);
    let tandem = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tandem")).arg("audit").args(args).output().unwrap().status.code()
    };
    assert_eq!(tandem(&["verify"]), Some(EXIT_USAGE), "missing FILE");
    assert_eq!(tandem(&["verify", path.to_str().unwrap()]), Some(EXIT_OK));
    std::fs::write(dir.path().join("junk.jsonl"), "{\"schema\":\"other/9\"}\n").unwrap();
    let v = verify(&dir.path().join("junk.jsonl")).unwrap();
    assert_eq!(checks(&v.failures)[0], (Check::Format, 1), "no chain field");
}

/// Which record of `file` (1-based) is the phase end of `phase`.
fn phase_end_of(file: &[String], phase: &str) -> usize {
    1 + find(file, |r| matches!(r, Record::PhaseEnd { heads, .. } if heads.phase == phase))
}

fn reveal_named(file: &[String], name: &str) -> usize {
    find(file, |r| matches!(r, Record::Reveal { reveal, .. } if reveal.name == name))
}

/// Every edit a forger without keys can make, chain recomputed, is caught by `verify` alone at
/// the record the signatures pin it to.
#[test]
fn edited_reveals_outcomes_and_times_are_rejected_by_verify_alone() {
    let dir = tempfile::tempdir().unwrap();
    let job = standard_job(dir.path(), "a");
    let orig = lines(&job.bank);
    let size = reveal_named(&orig, "intersection_size");
    let metrics = reveal_named(&orig, "metrics");
    let outcome = orig.len() - 1;
    let frame = find(&orig, |r| matches!(r, Record::Frame { kind, .. } if kind == "psi.size"));
    let with = |i: usize, f: &dyn Fn(&mut Record)| {
        let mut l = orig.clone();
        l[i] = edit(&l[i], f);
        rechain(&l)
    };
    let on_reveal = |f: fn(&mut Reveal)| {
        move |r: &mut Record| match r {
            Record::Reveal { reveal, .. } => f(reveal),
            _ => unreachable!(),
        }
    };
    let on_outcome = |f: fn(&mut Outcome)| {
        move |r: &mut Record| match r {
            Record::Outcome { outcome, .. } => f(outcome),
            _ => unreachable!(),
        }
    };
    let set_time = |r: &mut Record| match r {
        Record::Frame { time, .. } | Record::Outcome { time, .. } => *time = "2026-03-01T09:00:00.000000Z".into(),
        _ => unreachable!(),
    };
    let mut deleted_size = orig.clone();
    deleted_size.remove(size);
    let mut deleted_metrics = orig.clone();
    deleted_metrics.remove(metrics);

    let cases: Vec<(&str, Vec<String>, Check, usize)> = vec![
        ("value", with(size, &on_reveal(|r| r.value_hash = value_hash(b"0"))), Check::PhaseReveals, size + 1),
        (
            "recipients",
            with(metrics, &on_reveal(|r| r.to = vec![Role::Gov, Role::Bank])),
            Check::PhaseReveals,
            metrics + 1,
        ),
        (
            "rule",
            with(size, &on_reveal(|r| r.rule = "bank policy reveal_intersection=ids".into())),
            Check::PhaseReveals,
            size + 1,
        ),
        ("delete", rechain(&deleted_size), Check::PhaseReveals, phase_end_of(&deleted_size, "psi")),
        ("delete opened", rechain(&deleted_metrics), Check::PhaseReveals, phase_end_of(&deleted_metrics, "train")),
        (
            "failed",
            with(outcome, &on_outcome(|o| *o = Outcome::failed("peer unreachable"))),
            Check::Outcome,
            outcome + 1,
        ),
        ("frame time", with(frame, &set_time), Check::PhaseChain, phase_end_of(&orig, "psi")),
        ("outcome time", with(outcome, &set_time), Check::OutcomeSignature, outcome + 1),
    ];
    for (name, lines, check, record) in cases {
        let v = verify_variant(dir.path(), &format!("{name}.jsonl"), &lines);
        assert!(has(&v.failures, check, record), "{name}: {:?}", checks(&v.failures));
        let mut out = Vec::new();
        let path = dir.path().join(format!("{name}.jsonl"));
        assert_eq!(verify_cmd(&path, &mut out), EXIT_FAILED, "{name}");
        assert!(String::from_utf8(out).unwrap().contains(&format!("record {record}: ")), "{name}");
    }
    // The deleted opened value also leaves its frames unlisted.
    let v = verify_variant(dir.path(), "deleted.jsonl", &rechain(&deleted_metrics));
    let opens: Vec<usize> = (0..deleted_metrics.len())
        .filter(|i| matches!(parse(&deleted_metrics[*i]), Record::Frame { kind, .. } if kind == "open.metrics"))
        .map(|i| i + 1)
        .collect();
    assert_eq!(opens.len(), 2);
    for n in opens {
        assert!(has(&v.failures, Check::Unrevealed, n), "{:?}", checks(&v.failures));
    }
}

/// The node itself holds its key but not the peer's: it can re-sign its outcome, yet still not
/// deny a completion both signed, nor change a record before the last phase end.
#[test]
fn a_node_cannot_rewrite_its_own_signed_records() {
    let dir = tempfile::tempdir().unwrap();
    let job = standard_job(dir.path(), "a");
    let orig = lines(&job.gov);
    let last = orig.len() - 1;

    let mut denied = orig.clone();
    denied[last] = edit(&denied[last], |r| {
        if let Record::Outcome { outcome, .. } = r {
            *outcome = Outcome::failed("never ran")
        }
    });
    let v = verify_variant(dir.path(), "denied.jsonl", &resign_outcome(&denied, &key(1)));
    assert_eq!(checks(&v.failures), vec![(Check::Outcome, last + 1)]);
    assert!(v.failures[0].reason.contains("both nodes signed the job's completion"), "{}", v.failures[0].reason);

    let mut retimed = orig.clone();
    let i = find(&orig, |r| matches!(r, Record::Reveal { .. }));
    retimed[i] = edit(&retimed[i], |r| {
        if let Record::Reveal { time, .. } = r {
            *time = "2026-03-01T09:00:00.000000Z".into()
        }
    });
    let v = verify_variant(dir.path(), "retimed.jsonl", &resign_outcome(&retimed, &key(1)));
    assert_eq!(checks(&v.failures), vec![(Check::PhaseChain, phase_end_of(&orig, "psi"))]);
    assert!(v.failures[0].reason.contains(&format!("one of records 1..={}", phase_end_of(&orig, "psi") - 5)));

    // Re-signing an unchanged transcript is harmless: the check is not against the signature bytes.
    let v = verify_variant(dir.path(), "resigned.jsonl", &resign_outcome(&orig, &key(1)));
    assert!(v.ok(), "{:?}", v.failures);
}

#[test]
fn a_failed_outcome_is_signed_by_its_node_and_cannot_be_turned_into_a_completion() {
    let dir = tempfile::tempdir().unwrap();
    let job = run_job(dir.path(), "f", "job-9", &ids(0..50), &ids(20..80), false);
    let c = compare(&job.gov, &job.bank).unwrap();
    assert!(c.ok(), "{:?}", c.failures);
    let gov = c.gov.unwrap();
    let orig = lines(&job.gov);
    assert_eq!(gov.transcript.covered, phase_end_of(&orig, "psi") - 5);
    assert!(gov.notes.iter().any(|n| n.contains(&format!(
        "signed by the gov node alone (the peer may be gone): records 1..={} are covered by both",
        gov.transcript.covered
    ))));
    let mut text = Vec::new();
    assert_eq!(report_cmd(&job.gov, None, &mut text), EXIT_OK);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("failed: stopped after psi (signed by the gov node alone)"), "{text}");

    let last = orig.len() - 1;
    let mut claimed = orig.clone();
    claimed[last] = edit(&claimed[last], |r| {
        if let Record::Outcome { outcome, .. } = r {
            *outcome = Outcome::completed()
        }
    });
    let v = verify_variant(dir.path(), "claimed.jsonl", &rechain(&claimed));
    assert!(has(&v.failures, Check::Outcome, last + 1), "{:?}", checks(&v.failures));
    assert!(has(&v.failures, Check::OutcomeSignature, last + 1), "{:?}", checks(&v.failures));
    let v = verify_variant(dir.path(), "claimed-resigned.jsonl", &resign_outcome(&claimed, &key(1)));
    assert_eq!(checks(&v.failures), vec![(Check::Outcome, last + 1)], "even re-signed by the gov itself");
}

/// A node that opens a value without recording it (here: the channels' gates are plain ledgers,
/// not the transcript), or records a reveal naming frames that never crossed.
fn careless_job(dir: &Path, tag: &str, reveal_frames: Vec<[u8; 32]>, complete_job: bool) -> (PathBuf, PathBuf) {
    let (gk, bk) = (key(1), key(2));
    let m = manifest("job-5", &gk, &bk, 1, 1);
    let paths = (dir.join(format!("{tag}-gov.jsonl")), dir.join(format!("{tag}-bank.jsonl")));
    let node = |ch: &mut Channel, path: &Path, k: &SigningKey| {
        let w = TranscriptWriter::create(path, m.clone(), k, false).unwrap();
        ch.set_observer(w.observer());
        exchange_manifest_digest(ch, &m).unwrap();
        ch.set_phase("train");
        let grant = Grant::new("x", "metrics", "one number");
        match ch.role() {
            Role::Bank => ch.reveal_send(&grant, &7u64.to_le_bytes()).unwrap(),
            Role::Gov => assert_eq!(ch.reveal_recv(&grant, 8).unwrap(), 7u64.to_le_bytes()),
        }
        if !reveal_frames.is_empty() {
            let mut r = size_reveal(7);
            r.phase = "train".into();
            r.name = "x".into();
            r.frames = reveal_frames.clone();
            w.reveal(r).unwrap();
        }
        if complete_job {
            w.end_phase(ch, "train", None).unwrap();
            complete(ch, &w, Outcome::completed());
        } else {
            w.outcome(Outcome::failed("peer unreachable")).unwrap();
        }
    };
    run_pair(|ch| node(ch, &paths.0, &gk), |ch| node(ch, &paths.1, &bk));
    paths
}

fn open_frames(path: &Path) -> Vec<(usize, [u8; 32])> {
    let file = lines(path);
    (0..file.len())
        .filter_map(|i| match parse(&file[i]) {
            Record::Frame { kind, hash, .. } if kind == "open.x" => Some((i + 1, hash)),
            _ => None,
        })
        .collect()
}

#[test]
fn every_opened_value_needs_a_reveal_record_listing_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    // Forgot the reveal: both nodes agree (neither recorded it) and sign, yet verify refuses.
    let (gov, bank) = careless_job(dir.path(), "forgot", vec![], true);
    for path in [&gov, &bank] {
        let v = verify(path).unwrap();
        let opens = open_frames(path);
        assert_eq!(opens.len(), 2, "bulk header and one chunk");
        let expected: Vec<(Check, usize)> = opens.iter().map(|(n, _)| (Check::Unrevealed, *n)).collect();
        assert_eq!(checks(&v.failures), expected);
        let mut out = Vec::new();
        assert_eq!(verify_cmd(path, &mut out), EXIT_FAILED);
    }

    // A reveal listing the real frames verifies; one listing a frame that never crossed does not.
    let real: Vec<[u8; 32]> = open_frames(&gov).into_iter().map(|(_, h)| h).collect();
    let (gov, _) = careless_job(dir.path(), "listed", real.clone(), true);
    let v = verify(&gov).unwrap();
    assert!(v.ok(), "{:?}", v.failures);
    let (gov, _) = careless_job(dir.path(), "invented", vec![real[0], [7; 32]], true);
    let v = verify(&gov).unwrap();
    let reveal = 1 + reveal_named(&lines(&gov), "x");
    let opens = open_frames(&gov);
    assert_eq!(checks(&v.failures), vec![(Check::RevealFrames, reveal), (Check::Unrevealed, opens[1].0)]);

    // A failed job may end in the middle of an opening: the auditor is told, compare decides.
    let (gov, _) = careless_job(dir.path(), "cut", vec![], false);
    let v = verify(&gov).unwrap();
    assert!(v.ok(), "{:?}", v.failures);
    assert!(
        v.notes.iter().any(|n| n.contains("'open.x' frame(s) after the last phase end that no reveal record lists"))
    );
}
