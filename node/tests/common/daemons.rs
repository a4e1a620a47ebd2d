//! Two real daemons in one process (QUIC on 127.0.0.1, admin API over HTTP), for the daemon and
//! audit tests.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use node::admin::AdminClient;
use node::config::{Config, format_fingerprint};
use node::daemon::Daemon;
use node::jobs::record::JobRecord;
use node::jobs::spec::JobSpec;

/// Operator name the tests submit jobs as.
pub const OPERATOR: &str = "test-operator";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The Ed25519 public key `tandem init` wrote in `dir` (what the peer puts in `peer.signing_key`).
pub fn signing_pub(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("signing.pub")).unwrap().trim().to_string()
}

pub fn cert_fp(dir: &Path) -> String {
    let der = node::identity::load_cert(&dir.join("tls.crt")).unwrap();
    format_fingerprint(&node::config::cert_fingerprint(&der))
}

/// Loads a bundled config as a template, pointing it at a fresh node directory, the given
/// addresses and the peer's certificate fingerprint and signing key.
pub fn config(
    template: &str,
    dir: &Path,
    listen: SocketAddr,
    peer: SocketAddr,
    peer_fp: &str,
    peer_key: &str,
) -> Config {
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
    c.peer.signing_key = peer_key.to_string();
    c.timeouts.connect_secs = 5;
    c.timeouts.read_secs = 30; // demo PSI on a loaded 2-core CI machine takes ~8 s per message
    c
}

pub fn start(rt: &tokio::runtime::Runtime, config: &Config, socket: UdpSocket) -> (Daemon, AdminClient) {
    let d = rt.block_on(Daemon::start_on(config.clone(), socket)).unwrap();
    let token = node::identity::load_token(&config.admin.token_file).unwrap();
    let api = AdminClient::new(d.admin_addr(), token);
    (d, api)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub struct Pair {
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub gov_config: Config,
    pub bank_config: Config,
    pub gov: Option<Daemon>,
    pub bank: Option<Daemon>,
    pub gov_api: AdminClient,
    pub bank_api: AdminClient,
}

/// Starts gov and bank from the bundled configs, each knowing the other's certificate and
/// signing key; `tweak` edits (gov, bank) configs first.
pub fn pair(tweak: impl FnOnce(&mut Config, &mut Config)) -> Pair {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (gov_dir, bank_dir) = (dir.path().join("gov"), dir.path().join("bank"));
    node::identity::init_node_dir("gov", &gov_dir).unwrap();
    node::identity::init_node_dir("bank", &bank_dir).unwrap();
    let gov_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bank_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (ga, ba) = (gov_socket.local_addr().unwrap(), bank_socket.local_addr().unwrap());
    let mut gov_config = config("gov.toml", &gov_dir, ga, ba, &cert_fp(&bank_dir), &signing_pub(&bank_dir));
    let mut bank_config = config("bank.toml", &bank_dir, ba, ga, &cert_fp(&gov_dir), &signing_pub(&gov_dir));
    tweak(&mut gov_config, &mut bank_config);
    let (gov, gov_api) = start(&rt, &gov_config, gov_socket);
    let (bank, bank_api) = start(&rt, &bank_config, bank_socket);
    Pair { rt, dir, gov_config, bank_config, gov: Some(gov), bank: Some(bank), gov_api, bank_api }
}

impl Pair {
    /// Submits `job` at gov and waits until it ended on both nodes: (gov's record, bank's record).
    pub fn run(&self, job: &JobSpec) -> (JobRecord, JobRecord) {
        self.run_at(job, false)
    }

    /// Submits `job` at gov (or at the bank) and waits until it ended on both nodes:
    /// (gov's record, bank's record).
    pub fn run_at(&self, job: &JobSpec, at_bank: bool) -> (JobRecord, JobRecord) {
        let (submitter, peer) = if at_bank { (&self.bank_api, &self.gov_api) } else { (&self.gov_api, &self.bank_api) };
        let id = submitter.submit(job, OPERATOR).unwrap().id;
        let mine = submitter.wait(&id, Duration::from_secs(120), |_| {}).unwrap();
        let theirs = wait_at(peer, &id);
        if at_bank { (theirs, mine) } else { (mine, theirs) }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for d in [self.gov.take(), self.bank.take()].into_iter().flatten() {
            self.rt.block_on(d.shutdown());
        }
    }
}

pub fn demo_job() -> JobSpec {
    JobSpec::load(&repo_root().join("configs/demo-job.toml")).unwrap()
}

/// The peer learns of a job when its proposal arrives; wait for its record to end.
pub fn wait_at(api: &AdminClient, id: &str) -> JobRecord {
    super::poll(&format!("job {id} to end at the peer"), || api.job(id).ok().filter(|r| r.state.is_final()))
}

/// Data rows of a CSV file (header excluded), counted here independently of the node.
pub fn data_rows(path: &Path) -> u64 {
    std::fs::read_to_string(path).unwrap().lines().skip(1).filter(|l| !l.trim().is_empty()).count() as u64
}
