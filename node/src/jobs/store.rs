//! Job records persisted in redb (`<data_dir>/jobs.redb`), one JSON value per job id.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::record::{JobRecord, JobState, now_ms};

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");

/// Reason given to jobs that were running when the node stopped.
pub const INTERRUPTED: &str = "interrupted by node restart";

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) the job database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create node.data_dir {}", data_dir.display()))?;
        let path = data_dir.join("jobs.redb");
        let db = Database::create(&path).with_context(|| {
            format!("cannot open job database {} (is another tandem node using this data_dir?)", path.display())
        })?;
        let tx = db.begin_write()?;
        tx.open_table(JOBS)?;
        tx.commit()?;
        Ok(Store { db: Arc::new(db) })
    }

    pub fn insert(&self, record: &JobRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(JOBS)?;
            t.insert(record.id.as_str(), serde_json::to_vec(record)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(JOBS)?;
        match t.get(id)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).context("corrupt job record")?)),
            None => Ok(None),
        }
    }

    /// All jobs, oldest first.
    pub fn list(&self) -> Result<Vec<JobRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(JOBS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(serde_json::from_slice::<JobRecord>(v.value()).context("corrupt job record")?);
        }
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    /// Read-modify-write of one record in a single transaction; returns the new record.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut JobRecord)) -> Result<JobRecord> {
        let tx = self.db.begin_write()?;
        let record = {
            let mut t = tx.open_table(JOBS)?;
            let mut record: JobRecord = match t.get(id)? {
                Some(v) => serde_json::from_slice(v.value()).context("corrupt job record")?,
                None => anyhow::bail!("no job '{id}'"),
            };
            change(&mut record);
            record.updated_ms = now_ms();
            t.insert(id, serde_json::to_vec(&record)?.as_slice())?;
            record
        };
        tx.commit()?;
        Ok(record)
    }

    /// At start-up: every job that was pending or running is failed with [`INTERRUPTED`].
    /// Returns how many were marked.
    pub fn mark_interrupted(&self) -> Result<usize> {
        let stale: Vec<String> = self.list()?.into_iter().filter(|r| !r.state.is_final()).map(|r| r.id).collect();
        for id in &stale {
            self.update(id, |r| r.fail(JobState::Failed, INTERRUPTED))?;
        }
        Ok(stale.len())
    }
}
