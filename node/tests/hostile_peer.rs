//! A hostile peer: a fake `gov` that holds the real gov keys, completes mTLS and the hello with
//! the transport's own functions, and then misbehaves on job streams. The real `bank` daemon must
//! end each job with a clear reason within its configured timeouts, never allocate a payload
//! beyond the frame limit (an oversized header is refused before anything after it is read), bound
//! the jobs it runs at once, and keep serving: `/v1/status` answers, later streams work, and a
//! normal job with the real gov daemon still succeeds.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::daemons::{OPERATOR, cert_fp, config, demo_job, signing_pub, wait_at};
use common::jobs::{score, test_ids_file};
use common::poll;
use node::admin::AdminClient;
use node::config::{Config, parse_fingerprint};
use node::daemon::Daemon;
use node::jobs::failure::{FailureKind, peer_notice};
use node::jobs::record::{JobRecord, JobState};
use node::jobs::runner::{Decision, Proposal};
use node::jobs::spec::JobSpec;
use node::jobs::spec::Params;
use node::jobs::transcript::{NodeKeys, dataset_info};
use node::transport::stream::{open_job_stream, read_frame, read_job_open, write_frame};
use node::transport::{Link, PeerConnection, PeerTrust, TlsIdentity};
use protocol::Role;
use protocol::channel::{DEFAULT_MAX_FRAME, Frame};
use quinn::{RecvStream, SendStream};

/// Short timeouts so that silence is noticed quickly.
fn short_timeouts(c: &mut Config) {
    c.timeouts.connect_secs = 2;
    c.timeouts.read_secs = 2;
    c.timeouts.idle_secs = 10;
    c.timeouts.keepalive_secs = 1;
}

/// A real bank daemon and a fake gov endpoint holding gov's real keys.
struct Harness {
    rt: tokio::runtime::Runtime,
    /// Holds both node directories.
    _dir: tempfile::TempDir,
    bank: Option<Daemon>,
    bank_config: Config,
    /// The real gov's config (its keys are the fake's); the fake builds its proposals from it.
    gov_config: Config,
    api: AdminClient,
    fake: Option<Link>,
}

impl Harness {
    fn new(tweak: impl FnOnce(&mut Config)) -> Harness {
        let rt = common::daemons::runtime();
        let dir = tempfile::tempdir().unwrap();
        let (gov_dir, bank_dir) = (dir.path().join("gov"), dir.path().join("bank"));
        node::identity::init_node_dir("gov", &gov_dir).unwrap();
        node::identity::init_node_dir("bank", &bank_dir).unwrap();
        let gov_identity = TlsIdentity {
            cert: node::identity::load_cert(&gov_dir.join("tls.crt")).unwrap(),
            key: node::identity::load_key(&gov_dir.join("tls.key")).unwrap(),
        };
        let fake = {
            let _guard = rt.enter();
            common::link(
                &gov_identity,
                &PeerTrust::Pinned(parse_fingerprint(&cert_fp(&bank_dir)).unwrap()),
                common::settings("gov", Role::Gov, "bank", Role::Bank),
            )
        };
        let bank_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let bank_addr = bank_socket.local_addr().unwrap();
        let fake_addr = fake.local_addr().unwrap();
        let mut bank_config =
            config("bank.toml", &bank_dir, bank_addr, fake_addr, &cert_fp(&gov_dir), &signing_pub(&gov_dir));
        short_timeouts(&mut bank_config);
        tweak(&mut bank_config);
        let mut gov_config =
            config("gov.toml", &gov_dir, fake_addr, bank_addr, &cert_fp(&bank_dir), &signing_pub(&bank_dir));
        short_timeouts(&mut gov_config);
        let bank = rt.block_on(Daemon::start_on(bank_config.clone(), bank_socket)).unwrap();
        // The bank dials its peer at start-up; refuse that so the fake decides which connection
        // the bank uses (the one it dials in `connect`).
        let dialled = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), fake.accept()).await });
        dialled.expect("the bank dials its peer at start-up").expect("endpoint open").refuse();
        let api =
            AdminClient::new(bank.admin_addr(), node::identity::load_token(&bank_config.admin.token_file).unwrap());
        Harness { rt, _dir: dir, bank: Some(bank), bank_config, gov_config, api, fake: Some(fake) }
    }

    fn bank_addr(&self) -> std::net::SocketAddr {
        self.bank.as_ref().unwrap().quic_addr()
    }

    /// The fake gov dials the bank and passes TLS and the hello; returns once the bank uses
    /// this connection for its own jobs too.
    fn connect(&self) -> PeerConnection {
        let fake = self.fake.as_ref().unwrap();
        let conn = self.rt.block_on(fake.connect(self.bank_addr())).unwrap();
        poll("the bank to register the connection", || self.api.status().unwrap().peer_connected.then_some(()));
        conn
    }

    /// Opens a job stream for a fresh job id (as a submitting gov would).
    fn open(&self, conn: &PeerConnection, id: &str) -> (SendStream, RecvStream) {
        self.rt.block_on(open_job_stream(&conn.connection, id)).unwrap()
    }

    fn write(&self, send: &mut SendStream, bytes: &[u8]) {
        self.rt.block_on(send.write_all(bytes)).unwrap();
    }

    fn send_frame(&self, send: &mut SendStream, kind: &str, payload: &[u8]) {
        self.rt.block_on(write_frame(send, &Frame { kind: kind.into(), payload: payload.to_vec() })).unwrap();
    }

    /// Next frame from the bank (a guard of 20 s so a broken node fails the test instead of hanging it).
    fn read(&self, recv: &mut RecvStream) -> Frame {
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(20), read_frame(recv, 1 << 20)).await })
            .expect("the bank answered nothing")
            .expect("a frame from the bank")
    }

    /// Reads the bank's answer to a hostile stream: it must be an abort; returns its reason.
    fn abort_reason(&self, recv: &mut RecvStream) -> String {
        let f = self.read(recv);
        assert_eq!(f.kind, "abort", "expected an abort, got '{}'", f.kind);
        String::from_utf8(f.payload).unwrap()
    }

    /// A well-formed proposal of the demo job, built as the real gov would (its keys, dataset
    /// and policy), which the bank's policy accepts.
    fn proposal(&self, id: &str) -> Vec<u8> {
        self.proposal_of(id, demo_job())
    }

    /// A well-formed proposal of `spec`, built as the real gov would.
    fn proposal_of(&self, id: &str, spec: JobSpec) -> Vec<u8> {
        let keys = NodeKeys::load(&self.gov_config).unwrap();
        let side = keys.side(&self.gov_config, &spec, Some(dataset_info(&self.gov_config, &spec).unwrap()));
        let created = node::audit::record::now_rfc3339();
        let p = Proposal { id: id.into(), submitted_by: "gov".into(), created, operator: OPERATOR.into(), spec, side };
        serde_json::to_vec(&p).unwrap()
    }

    /// The bank's decision on a proposal (which must come next on the stream).
    fn decision(&self, recv: &mut RecvStream) -> Decision {
        let f = self.read(recv);
        assert_eq!(f.kind, "job.decision", "{}", String::from_utf8_lossy(&f.payload));
        serde_json::from_slice(&f.payload).unwrap()
    }

    /// An accepting decision as the real gov would send it.
    fn accept(&self) -> Vec<u8> {
        let spec = demo_job();
        let keys = NodeKeys::load(&self.gov_config).unwrap();
        let side = keys.side(&self.gov_config, &spec, Some(dataset_info(&self.gov_config, &spec).unwrap()));
        serde_json::to_vec(&Decision { refusal: None, side }).unwrap()
    }

    /// Proves the bank still serves job streams: a valid proposal on a new stream is accepted;
    /// the fake then aborts that job and the bank records the abort.
    fn assert_still_serving(&self, conn: &PeerConnection) {
        let status = self.api.status().unwrap();
        assert_eq!((status.name.as_str(), status.peer.as_str()), ("bank", "gov"));
        let id = node::jobs::record::new_job_id();
        let (mut send, mut recv) = self.open(conn, &id);
        self.send_frame(&mut send, "job.proposal", &self.proposal(&id));
        let decision = self.decision(&mut recv);
        assert_eq!(decision.refusal, None);
        self.send_frame(&mut send, "abort", b"test: done");
        let r = self.wait_final(&id);
        assert_eq!(r.state, JobState::Failed);
        assert!(r.error.as_deref().unwrap().contains("peer aborted: test: done"), "{:?}", r.error);
    }

    /// Whether a valid proposal on a new stream of `conn` is answered with a decision (any
    /// failure, such as a connection the bank closed, is `false`); the job is then aborted.
    fn accepts_a_job(&self, conn: &PeerConnection) -> bool {
        let id = node::jobs::record::new_job_id();
        self.rt.block_on(async {
            let Ok((mut send, mut recv)) = open_job_stream(&conn.connection, &id).await else { return false };
            let proposal = Frame { kind: "job.proposal".into(), payload: self.proposal(&id) };
            if write_frame(&mut send, &proposal).await.is_err() {
                return false;
            }
            match tokio::time::timeout(Duration::from_secs(20), read_frame(&mut recv, 1 << 20)).await {
                Ok(Ok(f)) if f.kind == "job.decision" => {
                    let _ =
                        write_frame(&mut send, &Frame { kind: "abort".into(), payload: b"test: done".to_vec() }).await;
                    true
                }
                _ => false,
            }
        })
    }

    /// Waits until the bank's record of job `id` ends.
    fn wait_final(&self, id: &str) -> JobRecord {
        wait_at(&self.api, id)
    }

    /// The bank submits the demo job; the fake gov takes the stream and the proposal.
    /// Returns the job id and the fake's ends of the stream.
    fn bank_submits(&self, conn: &PeerConnection) -> (String, SendStream, RecvStream) {
        let submitted = self.api.submit(&demo_job(), OPERATOR).unwrap();
        let (send, mut recv) = self.rt.block_on(conn.connection.accept_bi()).unwrap();
        let id = self.rt.block_on(read_job_open(&mut recv, Duration::from_secs(20))).unwrap();
        assert_eq!(id, submitted.id);
        let proposal = self.read(&mut recv);
        assert_eq!(proposal.kind, "job.proposal");
        (id, send, recv)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(d) = self.bank.take() {
            self.rt.block_on(d.shutdown());
        }
        if let Some(f) = self.fake.take() {
            self.rt.block_on(f.shutdown());
        }
    }
}

/// A whole frame: header and payload.
fn frame(kind: &str, payload: &[u8]) -> Vec<u8> {
    [Frame { kind: kind.into(), payload: payload.to_vec() }.header(), payload.to_vec()].concat()
}

/// `json` (an object) with one more field, `extra`, that no message has.
fn with_extra_field(json: &[u8]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(json).unwrap();
    v.as_object_mut().unwrap().insert("extra".into(), 1.into());
    serde_json::to_vec(&v).unwrap()
}

/// A frame header claiming `len` payload bytes of `kind`, with nothing behind it.
fn header_only(kind: &str, len: u32) -> Vec<u8> {
    let mut h = Frame { kind: kind.into(), payload: vec![] }.header();
    h[..4].copy_from_slice(&len.to_le_bytes());
    h
}

// ---- the fake gov proposes jobs; the bank is the responder ------------------------------------

#[test]
fn hostile_proposals_are_refused_with_a_reason_and_the_bank_keeps_serving() {
    let h = Harness::new(|_| {});
    let conn = h.connect();
    // What the bank tells the peer: the kind of violation in fixed words, nothing it received.
    let peer = |how| peer_notice("bank", "policy", FailureKind::Peer(how));
    let silent = peer_notice("bank", "policy", FailureKind::Transport("no message within the read timeout"));
    let undecodable = peer("a message that does not decode");
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        // 4 GiB announced: refused from the header alone. Had the node waited for the payload,
        // the answer would be a timeout instead.
        ("oversized header", header_only("job.proposal", u32::MAX), peer("a frame over the size limit")),
        // The announced length is fine but only part of the payload arrives, then silence.
        ("truncated frame", [header_only("job.proposal", 100), b"{\"id\":".to_vec()].concat(), silent.clone()),
        ("garbage: kind length 0", b"\x10\x00\x00\x00\x00garbage garbage!".to_vec(), undecodable.clone()),
        ("garbage: binary kind", b"\x01\x00\x00\x00\x03\xff\xfe\xfd\x00".to_vec(), undecodable.clone()),
        ("wrong message kind", frame("job.decision", b"\"Accept\""), peer("an unexpected message")),
        ("malformed JSON", frame("job.proposal", b"{not json"), undecodable.clone()),
        ("unknown field", frame("job.proposal", &with_extra_field(&h.proposal("1-00000000"))), undecodable.clone()),
        ("silence", vec![], silent.clone()),
    ];
    for (name, bytes, expected) in cases {
        let id = node::jobs::record::new_job_id();
        let (mut send, mut recv) = h.open(&conn, &id);
        if !bytes.is_empty() {
            h.write(&mut send, &bytes);
        }
        assert_eq!(h.abort_reason(&mut recv), expected, "{name}");
        assert!(h.api.job(&id).is_err(), "{name}: no job is recorded for an unreadable proposal");
        h.assert_still_serving(&conn);
    }
}

#[test]
fn proposals_the_bank_cannot_accept_are_rejected_naming_the_problem() {
    let h = Harness::new(|_| {});
    let conn = h.connect();
    // An unknown job kind (e.g. from a newer node): the proposal does not decode.
    let id = node::jobs::record::new_job_id();
    let (mut send, mut recv) = h.open(&conn, &id);
    let mut p: serde_json::Value = serde_json::from_slice(&h.proposal(&id)).unwrap();
    p["spec"]["kind"] = "quantum".into();
    h.send_frame(&mut send, "job.proposal", &serde_json::to_vec(&p).unwrap());
    let reason = h.abort_reason(&mut recv);
    assert_eq!(reason, peer_notice("bank", "policy", FailureKind::Peer("a message that does not decode")));

    // A proposal for another job than the stream names, and one claiming another submitter:
    // both are decoded, recorded and rejected with the reason.
    for (field, value, expected) in [
        ("id", "1-00000000", "but the stream was opened for job"),
        ("submitted_by", "mallory", "proposal claims to come from 'mallory' but the peer is 'gov'"),
    ] {
        let id = node::jobs::record::new_job_id();
        let (mut send, mut recv) = h.open(&conn, &id);
        let mut p: serde_json::Value = serde_json::from_slice(&h.proposal(&id)).unwrap();
        p[field] = value.into();
        h.send_frame(&mut send, "job.proposal", &serde_json::to_vec(&p).unwrap());
        let refusal = h.decision(&mut recv).refusal.unwrap();
        assert!(refusal.contains(expected), "{field}: {refusal}");
        let r = h.wait_final(&id);
        assert_eq!(r.state, JobState::Failed);
        assert!(r.error.as_deref().unwrap().contains(expected), "{:?}", r.error);
    }

    // A job id that could escape the data directory is refused before anything is written.
    let (mut send, mut recv) = h.open(&conn, "../../etc");
    // The bank may stop the stream before the proposal is even written.
    let _ =
        h.rt.block_on(write_frame(&mut send, &Frame { kind: "job.proposal".into(), payload: h.proposal("../../etc") }));
    let stopped =
        h.rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), read_frame(&mut recv, 1 << 20)).await });
    assert!(matches!(stopped, Ok(Err(_))), "the stream is dropped without an answer");
    assert!(!h.bank_config.node.data_dir.join("etc").exists());
    h.assert_still_serving(&conn);
}

#[test]
fn streams_without_a_job_and_many_streams_do_not_stop_the_node() {
    let h = Harness::new(|_| {});
    let conn = h.connect();
    // Streams that announce a job but never finish the job.open frame, and oversized job.open
    // frames: each is dropped after timeouts.connect_secs (or at once); none becomes a job.
    let mut held = Vec::new();
    for i in 0..20u32 {
        let (mut send, recv) = h.rt.block_on(conn.connection.open_bi()).unwrap();
        let bytes =
            if i % 2 == 0 { header_only("job.open", 10)[..3].to_vec() } else { header_only("job.open", 1 << 30) };
        h.write(&mut send, &bytes);
        held.push((send, recv));
    }
    h.assert_still_serving(&conn);
    assert!(h.api.list().unwrap().iter().all(|r| r.state.is_final()));
    for (_, mut recv) in held {
        let r = h
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(20), read_frame(&mut recv, 1 << 20)).await });
        assert!(matches!(r, Ok(Err(_))), "the bank drops a stream without a job");
    }
}

#[test]
fn concurrent_jobs_are_bounded_by_the_configured_limit() {
    let h = Harness::new(|c| {
        c.limits.max_concurrent_jobs = 2;
        // Long enough that the two held jobs are still running when the third arrives.
        c.timeouts.read_secs = 60;
    });
    let conn = h.connect();
    let mut running = Vec::new();
    for _ in 0..2 {
        let id = node::jobs::record::new_job_id();
        let (mut send, mut recv) = h.open(&conn, &id);
        h.send_frame(&mut send, "job.proposal", &h.proposal(&id));
        assert_eq!(h.decision(&mut recv).refusal, None);
        running.push((id, send, recv));
    }
    // A third proposal from the peer is answered with an abort naming the limit's key (not its value).
    let id = node::jobs::record::new_job_id();
    let (mut send, mut recv) = h.open(&conn, &id);
    h.send_frame(&mut send, "job.proposal", &h.proposal(&id));
    let reason = h.abort_reason(&mut recv);
    assert_eq!(reason, peer_notice("bank", "connect", FailureKind::Busy));
    assert!(reason.contains("(limits.max_concurrent_jobs)") && !reason.contains('2'), "{reason}");
    assert!(h.api.job(&id).is_err());
    // The bank's own operator is refused with the limit itself.
    let err = h.api.submit(&demo_job(), OPERATOR).unwrap_err().to_string();
    assert!(err.contains("node 'bank' already runs 2 jobs, its limit (limits.max_concurrent_jobs = 2)"), "{err}");

    // Once a job ends, a new one is accepted.
    let (ended, mut send, _recv) = running.remove(0);
    h.send_frame(&mut send, "abort", b"test: make room");
    assert_eq!(h.wait_final(&ended).state, JobState::Failed);
    // The ended job's record is final a moment before its slot is released.
    poll("a job slot to be freed when a job ended", || {
        let id = node::jobs::record::new_job_id();
        let (mut send, mut recv) = h.open(&conn, &id);
        h.send_frame(&mut send, "job.proposal", &h.proposal(&id));
        (h.read(&mut recv).kind == "job.decision").then(|| h.send_frame(&mut send, "abort", b"test: done"))
    });
}

#[test]
fn connections_from_the_peer_are_bounded() {
    let h = Harness::new(|_| {});
    let max = node::daemon::MAX_PEER_CONNECTIONS;
    let mut conns: Vec<PeerConnection> = (0..max).map(|_| h.connect()).collect();
    let fake = h.fake.as_ref().unwrap();
    // The bank closes the extra connection right after the hello; the fake sees that either
    // while connecting or just after.
    let refusal = match h.rt.block_on(fake.connect(h.bank_addr())) {
        Err(e) => format!("{e:#}"),
        Ok(extra) => {
            let closed =
                h.rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), extra.connection.closed()).await });
            node::transport::link::describe_close(&closed.expect("the bank closes the extra connection"))
        }
    };
    assert!(
        refusal.contains(&format!("peer closed the connection: peer 'gov' already has {max} connections open")),
        "{refusal}"
    );
    // Every admitted connection still serves jobs.
    h.assert_still_serving(&conns[0]);
    h.assert_still_serving(&conns[max - 1]);
    // Once the peer closes one, a new one is admitted.
    let gone = conns.pop().unwrap();
    gone.connection.close(0u32.into(), b"bye");
    let admitted = (0..100).find_map(|_| {
        let c = h.rt.block_on(fake.connect(h.bank_addr())).ok()?;
        h.accepts_a_job(&c).then_some(c)
    });
    h.assert_still_serving(&admitted.expect("a connection is admitted once one closed"));
}

#[test]
fn a_job_naming_a_file_the_bank_must_not_read_is_refused_at_once() {
    let h = Harness::new(|_| {});
    let conn = h.connect();
    let data = &h.bank_config.node.data_dir;
    assert!(std::process::Command::new("mkfifo").arg(data.join("fifo")).status().unwrap().success());
    std::os::unix::fs::symlink(&h.bank_config.node.signing_key, data.join("key-link")).unwrap();
    let train = |name: &str| {
        let mut s = JobSpec::load(&common::daemons::repo_root().join("configs/demo-train.toml")).unwrap();
        test_ids_file(&mut s, name);
        s
    };
    let lookup = |name: &str| {
        let mut s = JobSpec::load(&common::daemons::repo_root().join("configs/demo-score-ids.toml")).unwrap();
        score(&mut s).queries_file = Some(name.into());
        s
    };
    let cases = [
        ("params.test_ids_file", train("/dev/zero"), "absolute paths are refused"),
        ("params.test_ids_file", train("../signing.key"), "'..' is refused"),
        ("params.test_ids_file", train("fifo"), "is a FIFO"),
        ("params.test_ids_file", train("key-link"), "outside node.data_dir"),
        ("params.queries_file", lookup("/dev/zero"), "absolute paths are refused"),
        ("params.queries_file", lookup("fifo"), "is a FIFO"),
    ];
    for (key, spec, rule) in cases {
        let name = match &spec.params {
            Params::Train(p) => p.test_ids_file.clone(),
            Params::Score(p) => p.queries_file.clone(),
            _ => None,
        };
        let name = name.unwrap().display().to_string();
        let id = node::jobs::record::new_job_id();
        let (mut send, mut recv) = h.open(&conn, &id);
        let started = std::time::Instant::now();
        h.send_frame(&mut send, "job.proposal", &h.proposal_of(&id, spec));
        let refusal = h.decision(&mut recv).refusal;
        let took = started.elapsed();
        // The peer learns only that the job named a file the bank refuses: no path, no rule.
        let expected = format!(
            "policy: {key} names a file node 'bank' refuses to read (a job may name only regular files inside the \
             node's data directory)"
        );
        assert_eq!(refusal.as_deref(), Some(expected.as_str()), "{name}");
        assert!(took < Duration::from_secs(1), "{name}: refused after {took:?}");
        h.send_frame(&mut send, "abort", b"test: done");
        // The bank's operator sees the rule.
        let error = h.wait_final(&id).error.unwrap();
        assert!(error.starts_with(&format!("policy: {key} = '{name}': ")) && error.contains(rule), "{error}");
    }
    h.assert_still_serving(&conn);
}

#[test]
fn a_full_disk_fails_the_job_and_once_freed_the_next_job_runs_without_a_restart() {
    let Some(disk) = common::Tmpfs::mount("2m") else { return };
    let h = Harness::new(|c| c.node.data_dir = disk.path().join("data"));
    let conn = h.connect();
    let id = node::jobs::record::new_job_id();
    let (mut send, mut recv) = h.open(&conn, &id);
    h.send_frame(&mut send, "job.proposal", &h.proposal(&id));
    assert_eq!(h.decision(&mut recv).refusal, None);
    poll("the bank to start the job's transcript", || h.api.job(&id).unwrap().transcript.map(drop));
    // Now the disk is full: the bank cannot write its transcript outcome, and its job database
    // fails as soon as a write needs a new page (tests/disk_full.rs checks the store that way).
    disk.fill();
    h.send_frame(&mut send, "abort", b"test: stop");
    let ended = h.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            while read_frame(&mut recv, 1 << 20).await.is_ok() {} // the bank's last frames, then its end of the stream
        })
        .await
    });
    assert!(ended.is_ok(), "the bank's job ended");
    // Space again: the bank records how the job ended, and takes new jobs, without a restart.
    disk.free();
    let r = h.wait_final(&id);
    assert_eq!(r.state, JobState::Failed);
    assert_eq!(r.error.as_deref(), Some("peer aborted: test: stop"));
    h.assert_still_serving(&conn);
}

// ---- the bank submits; the fake gov is the responder -------------------------------------------

#[test]
fn hostile_answers_fail_the_submitted_job_with_a_reason() {
    let h = Harness::new(|_| {});
    let conn = h.connect();
    let limit = DEFAULT_MAX_FRAME;
    let peer = |how| FailureKind::Peer(how);
    let silent = FailureKind::Transport("no message within the read timeout");
    let undecodable = peer("a message that does not decode");
    let cases: Vec<(&str, Vec<u8>, String, FailureKind)> = vec![
        (
            "oversized header",
            header_only("job.decision", u32::MAX),
            format!("of {} bytes exceeds the limit of {limit} bytes", u32::MAX),
            peer("a frame over the size limit"),
        ),
        (
            "truncated frame",
            [header_only("job.decision", 50), b"\"Acc".to_vec()].concat(),
            "peer sent nothing for 2 s (timeout)".into(),
            silent,
        ),
        (
            "garbage",
            b"\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec(),
            "kind length 0 outside 1..=64".into(),
            undecodable,
        ),
        (
            "wrong message kind",
            frame("check.rows", &[7]),
            "expected message 'job.decision' from peer but got 'check.rows'".into(),
            peer("an unexpected message"),
        ),
        (
            "malformed JSON",
            frame("job.decision", b"{{{{{"),
            "cannot decode message 'job.decision' from peer: JSON: ".into(),
            undecodable,
        ),
        (
            "unknown field",
            frame("job.decision", &with_extra_field(&h.accept())),
            "unknown field `extra`".into(),
            undecodable,
        ),
        ("silence", vec![], "peer sent nothing for 2 s (timeout)".into(), silent),
    ];
    for (name, bytes, expected, kind) in cases {
        let (id, mut send, mut recv) = h.bank_submits(&conn);
        if !bytes.is_empty() {
            h.write(&mut send, &bytes);
        }
        let r = h.wait_final(&id);
        assert_eq!(r.state, JobState::Failed, "{name}");
        let error = r.error.clone().unwrap();
        assert!(error.contains(&expected), "{name}: expected {expected:?} in {error:?}");
        // The bank tells the peer the step and the kind of failure; the details stay here.
        assert_eq!(h.abort_reason(&mut recv), peer_notice("bank", "policy", kind), "{name}");
        h.assert_still_serving(&conn);
    }
}

#[test]
fn garbage_after_the_decision_fails_the_job() {
    let h = Harness::new(|_| {});
    let conn = h.connect();
    let (id, mut send, mut recv) = h.bank_submits(&conn);
    h.send_frame(&mut send, "job.decision", &h.accept());
    // Whatever comes after the decision, a frame whose kind is not a name ends the job.
    h.write(&mut send, b"\x02\x00\x00\x00\x02\x00\x01\xaa\xbb");
    let r = h.wait_final(&id);
    assert_eq!(r.state, JobState::Failed);
    let error = r.error.clone().unwrap();
    assert!(error.contains("kind is not a printable ASCII name"), "{error}");
    let mut last = h.read(&mut recv);
    while last.kind != "abort" {
        last = h.read(&mut recv); // the phase's own messages before the bank gave up
    }
    let notice = peer_notice("bank", "policy", FailureKind::Peer("a message that does not decode"));
    assert_eq!(String::from_utf8(last.payload).unwrap(), notice);
    h.assert_still_serving(&conn);
}

#[test]
fn a_peer_that_goes_away_mid_job_is_named_in_the_error() {
    let h = Harness::new(|_| {});
    let conn = h.connect();
    let (id, mut send, _recv) = h.bank_submits(&conn);
    h.send_frame(&mut send, "job.decision", &h.accept());
    conn.connection.close(0u32.into(), b"gone");
    let r = h.wait_final(&id);
    assert_eq!(r.state, JobState::Failed);
    let error = r.error.unwrap();
    assert!(error.contains("connection to peer closed") && error.ends_with("(peer 'gov')"), "{error}");
    // The bank redials for its next job; nobody answers at the fake's address now, so the job
    // fails at connect, naming the peer, and the node keeps serving.
    h.rt.block_on(h.fake.as_ref().unwrap().shutdown());
    let next = h.api.submit(&demo_job(), OPERATOR).unwrap();
    let r = h.wait_final(&next.id);
    assert!(r.error.as_deref().unwrap().starts_with("connect: connecting to peer 'gov'"), "{:?}", r.error);
    h.api.status().unwrap();
}

// ---- after all that, a real gov daemon ---------------------------------------------------------

#[test]
fn after_a_hostile_session_a_normal_job_with_the_real_gov_succeeds() {
    // Real protocol steps in a debug build may compute for longer than the 2 s used elsewhere.
    let mut h = Harness::new(|c| c.timeouts.read_secs = 120);
    {
        let conn = h.connect();
        let id = node::jobs::record::new_job_id();
        let (mut send, mut recv) = h.open(&conn, &id);
        h.write(&mut send, &header_only("job.proposal", u32::MAX));
        assert!(
            h.abort_reason(&mut recv)
                .contains("reason peer: a message it received breaks the protocol (a frame over the size limit)")
        );
        let (_id, mut send, _recv) = h.bank_submits(&conn);
        h.write(&mut send, b"\x00\x00\x00\x00\x00");
    }
    let fake = h.fake.take().unwrap();
    h.rt.block_on(fake.shutdown());

    let gov_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut gov_config = h.gov_config.clone();
    gov_config.node.listen = gov_socket.local_addr().unwrap();
    gov_config.timeouts.read_secs = 120;
    let gov = h.rt.block_on(Daemon::start_on(gov_config.clone(), gov_socket)).unwrap();
    let gov_api = AdminClient::new(gov.admin_addr(), node::identity::load_token(&gov_config.admin.token_file).unwrap());
    let submitted = gov_api.submit(&demo_job(), OPERATOR).unwrap();
    let at_gov = gov_api.wait(&submitted.id, Duration::from_secs(60), |_| {}).unwrap();
    let at_bank = h.wait_final(&submitted.id);
    h.rt.block_on(gov.shutdown());
    assert_eq!(at_gov.state, JobState::Succeeded, "{:?}", at_gov.error);
    assert_eq!(at_bank.state, JobState::Succeeded, "{:?}", at_bank.error);
    let gov_rows = common::daemons::data_rows(&gov_config.datasets["gov_features"].path);
    for r in [&at_gov, &at_bank] {
        assert_eq!(r.outcome["gov_rows"], gov_rows, "{:?}", r.outcome);
    }
}
