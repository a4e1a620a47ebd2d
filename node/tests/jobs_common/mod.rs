//! Helpers of the job tests: two real daemons (QUIC on loopback) over small default_credit
//! files with a partial overlap, and plaintext twins of what the jobs compute.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;

use node::admin::AdminClient;
use node::config::{Config, format_fingerprint};
use node::daemon::Daemon;
use node::jobs::record::{JobRecord, JobState};
use node::jobs::spec::JobSpec;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Rows of the bundled default_credit files used by the tests.
pub const ROWS: usize = 2000;

/// The test's own copy of both parties' data: rows by id.
pub struct TestData {
    /// id → (gov features x0..x9)
    pub gov: HashMap<String, Vec<f64>>,
    /// id → (bank features x0..x12, label)
    pub bank: HashMap<String, (Vec<f64>, f64)>,
}

impl TestData {
    pub fn common_ids(&self) -> HashSet<String> {
        self.gov.keys().filter(|k| self.bank.contains_key(*k)).cloned().collect()
    }
}

/// Writes the first [`ROWS`] rows of default_credit: the gov drops every 10th row, the bank
/// every 7th and adds rows the gov lacks; `extra_bank_lines` are appended to the bank file.
fn write_data(dir: &Path, extra_bank_lines: &[&str]) -> TestData {
    let read = |name: &str| -> (String, Vec<String>) {
        let text = std::fs::read_to_string(repo_root().join("testdata/default_credit").join(name)).unwrap();
        let mut lines = text.lines().map(str::to_string);
        (lines.next().unwrap(), lines.collect())
    };
    let (gov_header, gov_lines) = read("default_credit_hetero_host.csv");
    let (bank_header, bank_lines) = read("default_credit_hetero_guest.csv");
    let mut data = TestData { gov: HashMap::new(), bank: HashMap::new() };
    let mut gov_out = vec![gov_header];
    let mut bank_out = vec![bank_header];
    let fields = |l: &str| -> Vec<String> { l.split(',').map(str::to_string).collect() };
    for i in 0..ROWS + 100 {
        if i < ROWS && i % 10 != 3 {
            let f = fields(&gov_lines[i]);
            data.gov.insert(f[0].clone(), f[1..].iter().map(|v| v.parse().unwrap()).collect());
            gov_out.push(gov_lines[i].clone());
        }
        if i % 7 != 5 {
            let f = fields(&bank_lines[i]);
            let label: f64 = f[1].parse().unwrap();
            data.bank.insert(f[0].clone(), (f[2..].iter().map(|v| v.parse().unwrap()).collect(), label));
            bank_out.push(bank_lines[i].clone());
        }
    }
    bank_out.extend(extra_bank_lines.iter().map(|s| s.to_string()));
    std::fs::write(dir.join("gov.csv"), gov_out.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("bank.csv"), bank_out.join("\n") + "\n").unwrap();
    data
}

fn config(template: &str, dir: &Path, listen: std::net::SocketAddr, peer: std::net::SocketAddr, peer_fp: &str, data: &Path) -> Config {
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
    c.timeouts.read_secs = 30;
    for d in c.datasets.values_mut() {
        d.path = data.to_path_buf();
    }
    c
}

fn cert_fp(dir: &Path) -> String {
    let der = node::identity::load_cert(&dir.join("tls.crt")).unwrap();
    format_fingerprint(&node::config::cert_fingerprint(&der))
}

pub struct Pair {
    rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub data: TestData,
    pub gov_config: Config,
    pub bank_config: Config,
    gov: Option<Daemon>,
    bank: Option<Daemon>,
    pub gov_api: AdminClient,
    pub bank_api: AdminClient,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for d in [self.gov.take(), self.bank.take()].into_iter().flatten() {
            self.rt.block_on(d.shutdown());
        }
    }
}

/// Starts gov and bank from the bundled configs over the test data; `tweak` edits (gov, bank).
pub fn pair(extra_bank_lines: &[&str], tweak: impl FnOnce(&mut Config, &mut Config)) -> Pair {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(dir.path(), extra_bank_lines);
    let (gov_dir, bank_dir) = (dir.path().join("gov"), dir.path().join("bank"));
    node::identity::init_node_dir("gov", &gov_dir).unwrap();
    node::identity::init_node_dir("bank", &bank_dir).unwrap();
    let gov_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bank_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (ga, ba) = (gov_socket.local_addr().unwrap(), bank_socket.local_addr().unwrap());
    let mut gov_config = config("gov.toml", &gov_dir, ga, ba, &cert_fp(&bank_dir), &dir.path().join("gov.csv"));
    let mut bank_config = config("bank.toml", &bank_dir, ba, ga, &cert_fp(&gov_dir), &dir.path().join("bank.csv"));
    tweak(&mut gov_config, &mut bank_config);
    let start = |config: &Config, socket| {
        let d = rt.block_on(Daemon::start_on(config.clone(), socket)).unwrap();
        let api = AdminClient::new(d.admin_addr(), node::identity::load_token(&config.admin.token_file).unwrap());
        (d, api)
    };
    let (gov, gov_api) = start(&gov_config, gov_socket);
    let (bank, bank_api) = start(&bank_config, bank_socket);
    Pair { rt, dir, data, gov_config, bank_config, gov: Some(gov), bank: Some(bank), gov_api, bank_api }
}

impl Pair {
    /// Submits `spec` at gov (or at the bank) and returns the final records (gov, bank).
    pub fn run(&self, spec: &JobSpec, at_bank: bool) -> (JobRecord, JobRecord) {
        let (submitter, peer) = if at_bank { (&self.bank_api, &self.gov_api) } else { (&self.gov_api, &self.bank_api) };
        let id = submitter.submit(spec).unwrap().id;
        let mine = submitter.wait(&id, Duration::from_secs(120), |_| {}).unwrap();
        let theirs = wait_at(peer, &id);
        if at_bank { (theirs, mine) } else { (mine, theirs) }
    }

    pub fn job_file(&self, config: &Config, id: &str, name: &str) -> PathBuf {
        config.job_dir(id).join(name)
    }
}

/// The peer learns of a job when its proposal arrives; waits for its record to end.
pub fn wait_at(api: &AdminClient, id: &str) -> JobRecord {
    for _ in 0..600 {
        if let Ok(r) = api.job(id)
            && r.state.is_final()
        {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("job {id} did not end at the peer");
}

pub fn assert_succeeded(gov: &JobRecord, bank: &JobRecord) {
    assert_eq!(gov.state, JobState::Succeeded, "gov: {:?}", gov.error);
    assert_eq!(bank.state, JobState::Succeeded, "bank: {:?}", bank.error);
}

/// A bundled job file with edits.
pub fn job(file: &str, edit: impl FnOnce(&mut JobSpec)) -> JobSpec {
    let mut spec = JobSpec::load(&repo_root().join("configs").join(file)).unwrap();
    spec.min_intersection = 100;
    edit(&mut spec);
    spec.validate().unwrap();
    spec
}

/// Reads a CSV written by a job: header and rows of fields.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r.records().map(|rec| rec.unwrap().iter().map(str::to_string).collect()).collect();
    (header, rows)
}
