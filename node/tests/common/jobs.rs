//! Helpers of the job tests: two real daemons (QUIC on loopback) over small default_credit
//! files with a partial overlap, and plaintext twins of what the jobs compute.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use node::config::Config;
use node::jobs::record::{JobRecord, JobState};
use node::jobs::spec::{CheckupJobParams, JobSpec, Params, ScoreJobParams, TrainJobParams, WatchlistJobParams};

pub use super::daemons::repo_root;

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

/// Two daemons (see [`super::daemons::pair`]) whose datasets are the test's own files.
pub struct Pair {
    daemons: super::daemons::Pair,
    pub data: TestData,
    _data_dir: tempfile::TempDir,
}

impl std::ops::Deref for Pair {
    type Target = super::daemons::Pair;
    fn deref(&self) -> &super::daemons::Pair {
        &self.daemons
    }
}

/// Starts gov and bank from the bundled configs over the test data; `tweak` edits (gov, bank).
pub fn pair(extra_bank_lines: &[&str], tweak: impl FnOnce(&mut Config, &mut Config)) -> Pair {
    let data_dir = tempfile::tempdir().unwrap();
    let data = write_data(data_dir.path(), extra_bank_lines);
    let daemons = super::daemons::pair(|gov, bank| {
        for (c, file) in [(&mut *gov, "gov.csv"), (&mut *bank, "bank.csv")] {
            c.timeouts.read_secs = 30;
            for d in c.datasets.values_mut() {
                d.path = data_dir.path().join(file);
            }
        }
        tweak(gov, bank);
    });
    Pair { daemons, data, _data_dir: data_dir }
}

impl Pair {
    /// Submits `spec` at gov (or at the bank) and returns the final records (gov, bank).
    pub fn run(&self, spec: &JobSpec, at_bank: bool) -> (JobRecord, JobRecord) {
        self.daemons.run_at(spec, at_bank)
    }

    pub fn job_file(&self, config: &Config, id: &str, name: &str) -> PathBuf {
        config.job_dir(id).join(name)
    }
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

/// The records of type `kind` (`reveal`, `outcome`, ...) in a job's transcript, after checking
/// that the transcript verifies.
pub fn transcript_records(record: &JobRecord, kind: &str) -> Vec<serde_json::Value> {
    let path = record.transcript.as_ref().expect("every started job has a transcript");
    assert!(node::audit::verify(path).unwrap().ok(), "transcript {} verifies", path.display());
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == kind)
        .collect()
}

/// The typed `[params]` of a train job, to edit.
pub fn train(s: &mut JobSpec) -> &mut TrainJobParams {
    match &mut s.params {
        Params::Train(p) => p,
        other => panic!("not a train job: {other:?}"),
    }
}

/// The typed `[params]` of a score job, to edit.
pub fn score(s: &mut JobSpec) -> &mut ScoreJobParams {
    match &mut s.params {
        Params::Score(p) => p,
        other => panic!("not a score job: {other:?}"),
    }
}

/// The typed `[params]` of a watchlist job, to edit.
pub fn watchlist(s: &mut JobSpec) -> &mut WatchlistJobParams {
    match &mut s.params {
        Params::Watchlist(p) => p,
        other => panic!("not a watchlist job: {other:?}"),
    }
}

/// The typed `[params]` of a checkup job, to edit.
pub fn checkup(s: &mut JobSpec) -> &mut CheckupJobParams {
    match &mut s.params {
        Params::Checkup(p) => p,
        other => panic!("not a checkup job: {other:?}"),
    }
}

/// A train job that holds out the ids of the file `name` (in each node's data_dir) instead of
/// a hashed fraction.
pub fn test_ids_file(s: &mut JobSpec, name: &str) {
    let p = train(s);
    (p.test_fraction, p.split_seed, p.test_ids_file) = (None, None, Some(name.into()));
}
