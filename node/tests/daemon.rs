//! Two real daemons in one process (QUIC on 127.0.0.1, admin API over HTTP), driven as an operator would.

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;

use node::admin::AdminClient;
use node::config::{Config, format_fingerprint};
use node::daemon::Daemon;
use node::jobs::record::{JobRecord, JobState};
use node::jobs::spec::JobSpec;
use node::jobs::store::{INTERRUPTED, Store};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Loads a bundled config as a template, pointing it at a fresh node directory and the given addresses.
fn config(template: &str, dir: &Path, listen: std::net::SocketAddr, peer: std::net::SocketAddr, peer_fp: &str) -> Config {
    let mut c = Config::load(&repo_root().join("configs").join(template)).unwrap();
    c.node.listen = listen;
    c.node.data_dir = dir.join("data");
    c.node.tls_cert = dir.join("tls.crt");
    c.node.tls_key = dir.join("tls.key");
    c.node.signing_key = dir.join("signing.key");
    c.admin.port = 0;
    c.admin.token_file = dir.join("admin.token");
    c.peer.addr = peer.to_string();
    c.peer.fingerprint = Some(peer_fp.to_string());
    c.timeouts.connect_secs = 5;
    c.timeouts.read_secs = 10;
    c
}

struct Pair {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    gov_config: Config,
    bank_config: Config,
    gov: Option<Daemon>,
    bank: Option<Daemon>,
    gov_api: AdminClient,
    bank_api: AdminClient,
}

fn cert_fp(dir: &Path) -> String {
    let der = node::identity::load_cert(&dir.join("tls.crt")).unwrap();
    format_fingerprint(&node::config::cert_fingerprint(&der))
}

fn start(rt: &tokio::runtime::Runtime, config: &Config, socket: UdpSocket) -> (Daemon, AdminClient) {
    let d = rt.block_on(Daemon::start_on(config.clone(), socket)).unwrap();
    let token = node::identity::load_token(&config.admin.token_file).unwrap();
    let api = AdminClient::new(d.admin_addr(), token);
    (d, api)
}

/// Starts gov and bank from the bundled configs; `tweak` edits (gov, bank) configs first.
fn pair(tweak: impl FnOnce(&mut Config, &mut Config)) -> Pair {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (gov_dir, bank_dir) = (dir.path().join("gov"), dir.path().join("bank"));
    node::identity::init_node_dir("gov", &gov_dir).unwrap();
    node::identity::init_node_dir("bank", &bank_dir).unwrap();
    let gov_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bank_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (ga, ba) = (gov_socket.local_addr().unwrap(), bank_socket.local_addr().unwrap());
    let mut gov_config = config("gov.toml", &gov_dir, ga, ba, &cert_fp(&bank_dir));
    let mut bank_config = config("bank.toml", &bank_dir, ba, ga, &cert_fp(&gov_dir));
    tweak(&mut gov_config, &mut bank_config);
    let (gov, gov_api) = start(&rt, &gov_config, gov_socket);
    let (bank, bank_api) = start(&rt, &bank_config, bank_socket);
    Pair { rt, dir, gov_config, bank_config, gov: Some(gov), bank: Some(bank), gov_api, bank_api }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for d in [self.gov.take(), self.bank.take()].into_iter().flatten() {
            self.rt.block_on(d.shutdown());
        }
    }
}

fn demo_job() -> JobSpec {
    JobSpec::load(&repo_root().join("configs/demo-job.toml")).unwrap()
}

/// The peer learns of a job when its proposal arrives; wait for its record to end.
fn wait_at(api: &AdminClient, id: &str) -> JobRecord {
    for _ in 0..200 {
        if let Ok(r) = api.job(id)
            && r.state.is_final()
        {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("job {id} did not end at the peer");
}

fn data_rows(path: &Path) -> u64 {
    std::fs::read_to_string(path).unwrap().lines().skip(1).filter(|l| !l.trim().is_empty()).count() as u64
}

#[test]
fn full_job_between_two_daemons_via_the_admin_api() {
    let p = pair(|_, _| {});
    let submitted = p.gov_api.submit(&demo_job()).unwrap();
    let at_gov = p.gov_api.wait(&submitted.id, Duration::from_secs(20), |_| {}).unwrap();
    let at_bank = wait_at(&p.bank_api, &submitted.id);
    assert_eq!(at_gov.state, JobState::Succeeded, "{:?}", at_gov.error);
    assert_eq!(at_bank.state, JobState::Succeeded, "{:?}", at_bank.error);
    assert_eq!((at_gov.submitted_by.as_str(), at_bank.submitted_by.as_str()), ("gov", "gov"));

    let gov_rows = data_rows(&p.gov_config.datasets["gov_features"].path);
    let bank_rows = data_rows(&p.bank_config.datasets["bank_features"].path);
    for r in [&at_gov, &at_bank] {
        assert_eq!(r.outcome["gov_rows"], gov_rows);
        assert_eq!(r.outcome["bank_rows"], bank_rows);
    }
    assert_eq!(at_gov.outcome["shared_view"], at_bank.outcome["shared_view"]);

    // Both transcripts list the same frames, each as sent on one side and received on the other.
    let read = |c: &Config| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(c.job_dir(&submitted.id).join("transcript.jsonl")).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let (tg, tb) = (read(&p.gov_config), read(&p.bank_config));
    assert_eq!(tg.len(), tb.len());
    assert_eq!(tg.len() as u64, at_gov.outcome["frames"].as_u64().unwrap() + 2, "+ the two job.end frames");
    let key = |v: &serde_json::Value| (v["kind"].clone(), v["len"].clone(), v["blake3"].clone());
    let sent = |t: &[serde_json::Value]| -> Vec<_> { t.iter().filter(|v| v["direction"] == "sent").map(key).collect() };
    let received = |t: &[serde_json::Value]| -> Vec<_> { t.iter().filter(|v| v["direction"] == "received").map(key).collect() };
    assert_eq!(sent(&tg), received(&tb));
    assert_eq!(sent(&tb), received(&tg));
    assert_eq!(tg[0]["kind"], "job.proposal");

    // The status endpoint and job list agree; a wrong token is refused.
    assert!(p.gov_api.status().unwrap().peer_connected);
    assert_eq!(p.bank_api.list().unwrap().iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![submitted.id.clone()]);
    let intruder = AdminClient::new(p.gov.as_ref().unwrap().admin_addr(), "x".repeat(64));
    let err = intruder.list().unwrap_err().to_string();
    assert!(err.contains("bearer token"), "{err}");
}

#[test]
fn policy_refusal_is_reported_to_both_operators() {
    let p = pair(|_, bank| {
        bank.policy.datasets.get_mut("bank_features").unwrap().columns.retain(|c| c != "x3");
    });
    let submitted = p.gov_api.submit(&demo_job()).unwrap();
    let at_gov = p.gov_api.wait(&submitted.id, Duration::from_secs(20), |_| {}).unwrap();
    let at_bank = wait_at(&p.bank_api, &submitted.id);
    let rule = "policy: column 'x3' of dataset 'bank_features' is not allowed for joint use (policy.datasets.bank_features.columns)";
    assert_eq!(at_bank.state, JobState::Failed);
    assert_eq!(at_bank.error.as_deref(), Some(rule));
    assert_eq!(at_gov.state, JobState::Failed);
    assert_eq!(at_gov.error.as_deref(), Some(format!("rejected by peer 'bank': {rule}").as_str()));
    assert!(at_gov.outcome.is_empty() && at_bank.outcome.is_empty(), "no protocol step ran");

    // The submitting node's own policy is checked at submission, before the peer is contacted.
    let mut job = demo_job();
    job.min_intersection = 5;
    let err = p.gov_api.submit(&job).unwrap_err().to_string();
    assert!(err.contains("min_intersection 5 is below node 'gov''s minimum of 100 (policy.min_intersection)"), "{err}");
}

#[test]
fn restart_keeps_the_job_list_and_fails_interrupted_jobs() {
    let mut p = pair(|_, _| {});
    let done = p.gov_api.submit(&demo_job()).unwrap();
    let done = p.gov_api.wait(&done.id, Duration::from_secs(20), |_| {}).unwrap();
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);

    // Stop gov; leave a job that was mid-run when the process died (as a crash would).
    p.rt.block_on(p.gov.take().unwrap().shutdown());
    let store = Store::open(&p.gov_config.node.data_dir).unwrap();
    let mut crashed = JobRecord::new("1-deadbeef", demo_job(), "gov", "bank", &["connect", "policy", "check", "finish"]);
    crashed.state = JobState::Running;
    store.insert(&crashed).unwrap();
    drop(store);

    let socket = UdpSocket::bind(p.gov_config.node.listen).unwrap();
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

#[test]
fn cancelling_a_job_stops_it_and_tells_the_peer() {
    // gov is a real daemon; the "bank" is a bare endpoint that accepts the job but never answers.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
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
    let submitted = api.submit(&demo_job()).unwrap();
    // Wait until the job is waiting for the peer's decision, then cancel it.
    for _ in 0..100 {
        if api.job(&submitted.id).unwrap().steps[1].state == node::jobs::record::StepState::Running {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    api.cancel(&submitted.id).unwrap();
    let r = api.wait(&submitted.id, Duration::from_secs(5), |_| {}).unwrap();
    assert_eq!(r.state, JobState::Cancelled);
    assert_eq!(r.error.as_deref(), Some("cancelled by the operator of 'gov'"));
    let (id, first, next, reason, _bank) = rt.block_on(silent_bank).unwrap();
    assert_eq!((id.as_str(), first.as_str(), next.as_str()), (submitted.id.as_str(), "job.proposal", "abort"));
    assert_eq!(reason, "node 'gov': cancelled by the operator of 'gov'");
    let err = api.cancel(&submitted.id).unwrap_err().to_string();
    assert!(err.contains("already ended"), "{err}");
    rt.block_on(gov.shutdown());
}
