//! Two real daemons in one process (QUIC on 127.0.0.1, admin API over HTTP), driven as an operator would.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::daemons::{OPERATOR, config, data_rows, demo_job, pair, runtime, start};
use node::admin::AdminClient;
use node::config::Config;
use node::config::format_fingerprint;
use node::daemon::Daemon;
use node::jobs::failure::{FailureKind, peer_notice};
use node::jobs::record::{JobRecord, JobState};
use node::jobs::runner::SHUT_DOWN;
use node::jobs::store::{INTERRUPTED, Store};
use node::transport::Link;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

#[test]
fn full_job_between_two_daemons_via_the_admin_api() {
    let p = pair(|_, _| {});
    let (at_gov, at_bank) = p.run(&demo_job());
    assert_eq!(at_gov.state, JobState::Succeeded, "{:?}", at_gov.error);
    assert_eq!(at_bank.state, JobState::Succeeded, "{:?}", at_bank.error);
    assert_eq!((at_gov.submitted_by.as_str(), at_bank.submitted_by.as_str()), ("gov", "gov"));
    assert_eq!((at_gov.operator.as_str(), at_bank.operator.as_str()), (OPERATOR, OPERATOR));

    // Both learn both row counts (exchanged in the proposal and decision).
    let gov_rows = data_rows(&p.gov_config.datasets["gov_features"].path);
    let bank_rows = data_rows(&p.bank_config.datasets["bank_features"].path);
    for r in [&at_gov, &at_bank] {
        assert_eq!(r.outcome["gov_rows"], gov_rows);
        assert_eq!(r.outcome["bank_rows"], bank_rows);
    }

    // Each record names its node's transcript (its content is checked in tests/audit_daemon.rs).
    for (r, c) in [(&at_gov, &p.gov_config), (&at_bank, &p.bank_config)] {
        let path = c.job_dir(&r.id).join("transcript.jsonl");
        assert_eq!(r.transcript.as_deref(), Some(path.as_path()));
        assert!(path.is_file());
    }

    // The status endpoint and job list agree; a wrong token is refused.
    assert!(p.gov_api.status().unwrap().peer_connected);
    assert_eq!(p.bank_api.list().unwrap(), vec![at_bank.clone()]);
    let intruder = AdminClient::new(p.gov.as_ref().unwrap().admin_addr(), "x".repeat(64));
    let err = intruder.list().unwrap_err().to_string();
    assert!(err.contains("bearer token"), "{err}");
    let err = p.gov_api.submit(&demo_job(), " ").unwrap_err().to_string();
    assert!(err.contains("operator ' ' must be 1 to 200 printable characters"), "{err}");
}

#[test]
fn every_admin_api_error_answers_json() {
    let p = pair(|_, _| {});
    let base = format!("http://{}", p.gov.as_ref().unwrap().admin_addr());
    let token = format!("Bearer {}", node::identity::load_token(&p.gov_config.admin.token_file).unwrap());
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let answer = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
        let mut r = r.unwrap();
        let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
        let body: serde_json::Value = r.body_mut().read_json().unwrap_or_else(|e| panic!("not JSON ({e})"));
        assert_eq!(content_type.as_deref(), Some("application/json"));
        (r.status().as_u16(), body["error"].as_str().unwrap_or_else(|| panic!("no error text: {body}")).to_string())
    };
    let post = |path: &str, body: &[u8]| {
        agent
            .post(format!("{base}{path}"))
            .header("Authorization", &token)
            .header("Content-Type", "application/json")
            .send(body)
    };
    let mut bad_consent = serde_json::json!({ "spec": demo_job(), "operator": OPERATOR });
    bad_consent["spec"]["params"]["consent_refs"] = "DSA-1".into();
    let bad_consent = serde_json::to_vec(&bad_consent).unwrap();
    let cases = [
        (
            answer(agent.get(format!("{base}/v1/nothing")).header("Authorization", &token).call()),
            404,
            "no endpoint GET /v1/nothing",
        ),
        (
            answer(agent.delete(format!("{base}/v1/jobs")).header("Authorization", &token).call()),
            405,
            "/v1/jobs does not take DELETE",
        ),
        (answer(post("/v1/jobs", b"{not json")), 400, "Failed to parse the request body as JSON"),
        (answer(post("/v1/jobs", b"{\"operator\":\"x\"}")), 422, "missing field `spec`"),
        (
            answer(post("/v1/jobs", &bad_consent)),
            422,
            "params.consent_refs: invalid type: string \"DSA-1\", expected a sequence",
        ),
        (
            answer(post("/v1/jobs", &vec![b' '; node::admin::MAX_BODY + 1000])),
            413,
            "larger than the admin API's limit of 1048576 bytes",
        ),
        (
            answer(agent.get(format!("{base}/v1/jobs/none")).header("Authorization", &token).call()),
            404,
            "no job 'none'",
        ),
        (answer(agent.get(format!("{base}/v1/jobs")).call()), 401, "bearer token"),
    ];
    for ((status, error), expected_status, expected) in cases {
        assert_eq!(status, expected_status, "{error}");
        assert!(error.contains(expected), "expected {expected:?} in {error:?}");
    }
    // A job over the limit is refused by the client, naming the limit (not "node unreachable").
    let mut big = demo_job();
    big.description = "x".repeat(node::admin::MAX_BODY);
    let err = p.gov_api.submit(&big, OPERATOR).unwrap_err().to_string();
    assert!(err.contains("over the admin API's limit of 1048576 bytes"), "{err}");
}

#[test]
fn policy_refusal_is_reported_to_both_operators() {
    let p = pair(|_, bank| {
        bank.policy.datasets.get_mut("bank_features").unwrap().columns.retain(|c| c != "x3");
    });
    let (at_gov, at_bank) = p.run(&demo_job());
    let rule = "policy: column 'x3' of dataset 'bank_features' is not allowed for joint use (policy.datasets.bank_features.columns)";
    assert_eq!(at_bank.state, JobState::Failed);
    assert_eq!(at_bank.error.as_deref(), Some(rule));
    assert_eq!(at_gov.state, JobState::Failed);
    assert_eq!(at_gov.error.as_deref(), Some(format!("rejected by peer 'bank': {rule}").as_str()));
    assert!(at_gov.outcome.is_empty() && at_bank.outcome.is_empty(), "no protocol step ran");

    // The submitting node's own policy is checked at submission, before the peer is contacted.
    let mut job = demo_job();
    job.min_intersection = 5;
    let err = p.gov_api.submit(&job, OPERATOR).unwrap_err().to_string();
    assert!(err.contains("min_intersection 5 is below node 'gov''s minimum of 100 (policy.min_intersection)"), "{err}");
}

#[test]
fn restart_keeps_the_job_list_and_fails_interrupted_jobs() {
    let mut p = pair(|_, _| {});
    let (done, _) = p.run(&demo_job());
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);

    // Stop gov; leave a job that was mid-run when the process died (as a crash would).
    p.rt.block_on(p.gov.take().unwrap().shutdown());
    let store = Store::open(&p.gov_config.node.data_dir).unwrap();
    let mut crashed = JobRecord::new("1-deadbeef", demo_job(), "gov", "bank", &["connect", "policy", "finish"]);
    crashed.state = JobState::Running;
    store.insert(&crashed).unwrap();
    drop(store);

    // The stopped endpoint's socket may close a moment after shutdown returns (loaded machine).
    let socket = (0..50)
        .find_map(|_| {
            UdpSocket::bind(p.gov_config.node.listen).map_err(|_| std::thread::sleep(Duration::from_millis(100))).ok()
        })
        .expect("the gov's port is free again after its shutdown");
    let (gov, api) = start(&p.rt, &p.gov_config, socket);
    p.gov = Some(gov);
    let jobs = api.list().unwrap();
    assert_eq!(jobs.len(), 2);
    let kept = jobs.iter().find(|r| r.id == done.id).unwrap();
    assert_eq!(kept, &done, "a finished job survives the restart unchanged");
    let interrupted = jobs.iter().find(|r| r.id == "1-deadbeef").unwrap();
    assert_eq!(interrupted.state, JobState::Failed);
    assert_eq!(interrupted.error.as_deref(), Some(INTERRUPTED));
    let _ = &p.dir;
}

/// The bank side of [`gov_waiting_on_a_silent_bank`]: the job id, the kinds of the first two
/// frames gov sent, the second one's payload, and the endpoint (kept alive).
type SilentBankView = (String, String, String, String, Link);

/// gov as a real daemon whose demo job is waiting for the peer's decision; the "bank" is a bare
/// endpoint that accepts the job, reads the proposal and the next frame, and never answers.
fn gov_waiting_on_a_silent_bank()
-> (Runtime, TempDir, Config, Daemon, AdminClient, JobRecord, JoinHandle<SilentBankView>) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    node::identity::init_node_dir("gov", dir.path()).unwrap();
    let (bank_id, bank_fp) = common::tls_identity("bank");
    let gov_fp = node::config::cert_fingerprint(&node::identity::load_cert(&dir.path().join("tls.crt")).unwrap());
    let bank = {
        let _guard = rt.enter();
        common::link(
            &bank_id,
            &node::transport::PeerTrust::Pinned(gov_fp),
            common::settings("bank", protocol::Role::Bank, "gov", protocol::Role::Gov),
        )
    };
    let gov_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let gov_config = config(
        "gov.toml",
        dir.path(),
        gov_socket.local_addr().unwrap(),
        bank.local_addr().unwrap(),
        &format_fingerprint(&bank_fp),
        &hex::encode(ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key().as_bytes()),
    );
    let silent_bank = rt.spawn(async move {
        use node::transport::stream::{read_frame, read_job_open};
        let conn = bank.handshake(bank.accept().await.unwrap()).await.unwrap();
        let (_send, mut recv) = conn.connection.accept_bi().await.unwrap();
        let id = read_job_open(&mut recv, Duration::from_secs(5)).await.unwrap();
        let proposal = read_frame(&mut recv, 1 << 20).await.unwrap();
        let next = read_frame(&mut recv, 1 << 20).await.unwrap();
        (id, proposal.kind, next.kind, String::from_utf8(next.payload).unwrap(), bank)
    });
    let (gov, api) = start(&rt, &gov_config, gov_socket);
    let submitted = api.submit(&demo_job(), OPERATOR).unwrap();
    common::poll("the job to wait for the peer's decision", || {
        (api.job(&submitted.id).unwrap().steps[1].state == node::jobs::record::StepState::Running).then_some(())
    });
    (rt, dir, gov_config, gov, api, submitted, silent_bank)
}

#[test]
fn cancelling_a_job_stops_it_and_tells_the_peer() {
    let (rt, _dir, _config, gov, api, submitted, silent_bank) = gov_waiting_on_a_silent_bank();
    api.cancel(&submitted.id).unwrap();
    let r = api.wait(&submitted.id, Duration::from_secs(60), |_| {}).unwrap();
    assert_eq!(r.state, JobState::Cancelled);
    assert_eq!(r.error.as_deref(), Some("cancelled by the operator of 'gov'"));
    let (id, first, next, reason, _bank) = rt.block_on(silent_bank).unwrap();
    assert_eq!((id.as_str(), first.as_str(), next.as_str()), (submitted.id.as_str(), "job.proposal", "abort"));
    assert_eq!(reason, peer_notice("gov", "policy", FailureKind::Cancelled));
    // gov's transcript holds what happened: its proposal, its abort, and the cancellation.
    let v = node::audit::verify(r.transcript.as_deref().unwrap()).unwrap();
    assert!(v.ok(), "{:#?}", v.failures);
    let kinds: Vec<&str> = v
        .transcript
        .records
        .iter()
        .filter_map(|(_, rec)| match rec {
            node::audit::Record::Frame { kind, .. } => Some(kind.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["job.proposal", "abort"]);
    match v.transcript.records.last() {
        Some((_, node::audit::Record::Outcome { outcome, .. })) => {
            assert_eq!(outcome, &node::audit::Outcome::failed("cancelled by the operator of 'gov'"))
        }
        other => panic!("{other:?}"),
    }
    let err = api.cancel(&submitted.id).unwrap_err().to_string();
    assert!(err.contains("already ended"), "{err}");
    rt.block_on(gov.shutdown());
}

#[test]
fn shutting_down_fails_running_jobs_with_the_reason() {
    let (rt, _dir, gov_config, gov, _api, submitted, silent_bank) = gov_waiting_on_a_silent_bank();
    rt.block_on(gov.shutdown());
    // The peer is told before the connection closes.
    let (id, first, next, reason, _bank) = rt.block_on(silent_bank).unwrap();
    assert_eq!((id.as_str(), first.as_str(), next.as_str()), (submitted.id.as_str(), "job.proposal", "abort"));
    assert_eq!(reason, peer_notice("gov", "policy", FailureKind::Shutdown));
    // The record and the transcript say the node shut down (not that the operator cancelled).
    let r = Store::open(&gov_config.node.data_dir).unwrap().get(&submitted.id).unwrap().unwrap();
    assert_eq!(r.state, JobState::Failed);
    assert_eq!(r.error.as_deref(), Some(SHUT_DOWN));
    let v = node::audit::verify(r.transcript.as_deref().unwrap()).unwrap();
    assert!(v.ok(), "{:#?}", v.failures);
    match v.transcript.records.last() {
        Some((_, node::audit::Record::Outcome { outcome, .. })) => {
            assert_eq!(outcome, &node::audit::Outcome::failed(SHUT_DOWN))
        }
        other => panic!("{other:?}"),
    }
}
