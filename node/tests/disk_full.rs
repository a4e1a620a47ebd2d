//! A node whose disk fills up: jobs fail, none stays `running`, no result file of a failed job
//! is left, and once space is freed the node works again without a restart. Runs on a small
//! tmpfs (needs root to mount; skipped with a printed reason otherwise).

mod common;

use common::Tmpfs;
use common::jobs::*;
use node::jobs::record::{JobRecord, JobState};
use node::jobs::spec::Reveal;
use node::jobs::store::Store;
use protocol::psi::PsiReveal;

fn record(id: &str) -> JobRecord {
    let mut r = JobRecord::new(id, common::daemons::demo_job(), "gov", "bank", &["connect", "policy", "finish"]);
    r.state = JobState::Running;
    r
}

#[test]
fn the_store_records_what_it_could_not_once_the_disk_has_room_again() {
    let Some(disk) = Tmpfs::mount("2m") else { return };
    let store = Store::open(&disk.path().join("data")).unwrap();
    store.insert(&record("1-running")).unwrap();
    disk.fill();
    // The job's end cannot be written now; neither can a new job.
    store.record_end("1-running", |r| r.fail(JobState::Failed, "peer aborted: stop"));
    let during = store.get("1-running");
    assert!(!matches!(&during, Ok(Some(r)) if r.state.is_final()), "written on a full disk? {during:?}");
    let err = format!("{:#}", store.insert(&record("2-new")).unwrap_err());
    assert!(err.contains("No space left on device"), "{err}");

    disk.free();
    // The next use reopens the database and writes the kept end first.
    let r = store.get("1-running").unwrap().unwrap();
    assert_eq!((r.state, r.error.as_deref()), (JobState::Failed, Some("peer aborted: stop")));
    store.insert(&record("2-new")).unwrap();
    let ids: Vec<String> = store.list().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[test]
fn after_a_full_disk_is_freed_the_next_job_runs_without_a_restart() {
    let Some(disk) = Tmpfs::mount("4m") else { return };
    let p = pair(&[], |_, bank| bank.node.data_dir = disk.path().join("data"));
    let spec = job("demo-job.toml", |s| s.reveal = vec![Reveal::Psi(PsiReveal::Both)]);

    disk.fill();
    let id = p.gov_api.submit(&spec, common::daemons::OPERATOR).unwrap().id;
    let gov = p.gov_api.wait(&id, std::time::Duration::from_secs(60), |_| {}).unwrap();
    assert_eq!(gov.state, JobState::Failed);
    // The bank could not record the job; it tells the gov only the kind of failure.
    let error = gov.error.unwrap();
    assert!(error.starts_with("peer aborted: node 'bank', step '"), "{error}");
    assert!(error.contains("reason internal: it failed internally") && !error.contains(disk.path().to_str().unwrap()));

    disk.free();
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    assert!(p.job_file(&p.bank_config, &bank.id, "intersection.csv").is_file());
    // The failed job left no result file at the bank.
    assert!(!p.job_file(&p.bank_config, &id, "intersection.csv").exists());
}
