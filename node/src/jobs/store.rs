//! Job records persisted in redb (`<data_dir>/jobs.redb`, mode 0600), one JSON value per job id.
//!
//! After a storage error (a full disk, say) redb refuses every later transaction ("Previous I/O
//! error occurred") until the database is reopened. The store then closes it and opens it again
//! at its next use, so it recovers without a restart once the disk has room again. How a job
//! ended ([`Store::record_end`]) is kept in memory when it cannot be written, and written at the
//! first later use that works, so no job stays `running` after a storage error.

use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::record::{JobRecord, JobState, now_ms};

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");

/// Reason given to jobs that were running when the node stopped.
pub const INTERRUPTED: &str = "interrupted by node restart";

/// A change to a job record that must be written eventually (how the job ended).
type Change = Arc<dyn Fn(&mut JobRecord) + Send + Sync>;

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The database, `None` after a storage error until it is reopened; and how often it was opened.
    db: RwLock<(Option<Database>, u64)>,
    /// Ends of jobs that could not be written yet, in order.
    unrecorded: Mutex<Vec<(String, Change)>>,
}

/// Opens (or creates) the database file owner-only.
fn open_db(path: &Path) -> Result<Database> {
    let open = || -> Result<Database> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?; // a file made by an older version
        let db = Database::builder().create_with_backend(redb::backends::FileBackend::new(file).db()?).db()?;
        let tx = db.begin_write().db()?;
        tx.open_table(JOBS).db()?;
        tx.commit().db()?;
        Ok(db)
    };
    open().with_context(|| {
        format!("cannot open job database {} (is another tandem node using this data_dir?)", path.display())
    })
}

/// Whether `e` is a storage failure after which redb must be reopened.
fn storage_failed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref::<redb::Error>(), Some(redb::Error::Io(_) | redb::Error::PreviousIo))
            || c.is::<std::io::Error>()
    })
}

/// redb's many error types as [`redb::Error`], so [`storage_failed`] can tell storage failures.
trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T, E: Into<redb::Error>> Db<T> for Result<T, E> {
    fn db(self) -> Result<T> {
        self.map_err(|e| anyhow::Error::new(e.into()))
    }
}

fn decode(bytes: &[u8]) -> Result<JobRecord> {
    serde_json::from_slice(bytes).context("corrupt job record")
}

/// Read-modify-write of record `id` in one transaction.
fn update_in(db: &Database, id: &str, change: &dyn Fn(&mut JobRecord)) -> Result<JobRecord> {
    let tx = db.begin_write().db()?;
    let record = {
        let mut t = tx.open_table(JOBS).db()?;
        let mut record = match t.get(id).db()? {
            Some(v) => decode(v.value())?,
            None => anyhow::bail!("no job '{id}'"),
        };
        change(&mut record);
        record.updated_ms = now_ms();
        t.insert(id, serde_json::to_vec(&record)?.as_slice()).db()?;
        record
    };
    tx.commit().db()?;
    Ok(record)
}

impl Store {
    /// Opens (or creates) the job database in `data_dir` (created owner-only if missing).
    pub fn open(data_dir: &Path) -> Result<Store> {
        crate::identity::create_private_dir(data_dir)
            .with_context(|| format!("cannot create node.data_dir {}", data_dir.display()))?;
        let path = data_dir.join("jobs.redb");
        let db = open_db(&path)?;
        Ok(Store {
            inner: Arc::new(Inner { path, db: RwLock::new((Some(db), 1)), unrecorded: Mutex::new(Vec::new()) }),
        })
    }

    /// Runs `op` on the database: opens it first if a storage error closed it, writes what
    /// [`Self::record_end`] could not, and after a storage error closes the database and tries
    /// once more on a fresh opening.
    fn with_db<T>(&self, op: impl Fn(&Database) -> Result<T>) -> Result<T> {
        let result = match self.try_once(&op) {
            Err((e, generation)) if storage_failed(&e) => {
                tracing::warn!("job database: {e:#}; reopening it");
                self.close(generation);
                self.try_once(&op).map_err(|(e, generation)| {
                    if storage_failed(&e) {
                        self.close(generation);
                    }
                    e
                })
            }
            r => r.map_err(|(e, _)| e),
        };
        result.map_err(|e| match storage_failed(&e) {
            true => e.context(format!("job database {}", self.inner.path.display())),
            false => e,
        })
    }

    fn try_once<T>(&self, op: &impl Fn(&Database) -> Result<T>) -> Result<T, (anyhow::Error, u64)> {
        loop {
            {
                let slot = self.inner.db.read().unwrap_or_else(|e| e.into_inner());
                if let (Some(db), generation) = &*slot {
                    return self.write_unrecorded(db).and_then(|()| op(db)).map_err(|e| (e, *generation));
                }
            }
            let mut slot = self.inner.db.write().unwrap_or_else(|e| e.into_inner());
            if slot.0.is_none() {
                let generation = slot.1;
                slot.0 = Some(open_db(&self.inner.path).map_err(|e| (e, generation))?);
                slot.1 += 1;
                tracing::info!("job database {} reopened", self.inner.path.display());
            }
        }
    }

    /// Closes the database opening `generation` (not a newer one another thread opened since).
    fn close(&self, generation: u64) {
        let mut slot = self.inner.db.write().unwrap_or_else(|e| e.into_inner());
        if slot.1 == generation {
            slot.0 = None;
        }
    }

    /// Writes the job ends kept by [`Self::record_end`], in order. A storage failure stops
    /// there (the rest stay kept) and is returned; an end whose job has no record is dropped.
    fn write_unrecorded(&self, db: &Database) -> Result<()> {
        let mut pending = self.inner.unrecorded.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((id, change)) = pending.first() {
            match update_in(db, id, change.as_ref()) {
                Ok(_) => tracing::info!("job {id}: its end is recorded now"),
                Err(e) if storage_failed(&e) => return Err(e),
                Err(e) => tracing::error!("job {id}: cannot record how the job ended: {e:#}"),
            }
            pending.remove(0);
        }
        Ok(())
    }

    pub fn insert(&self, record: &JobRecord) -> Result<()> {
        self.with_db(|db| {
            let tx = db.begin_write().db()?;
            {
                let mut t = tx.open_table(JOBS).db()?;
                t.insert(record.id.as_str(), serde_json::to_vec(record)?.as_slice()).db()?;
            }
            tx.commit().db()?;
            Ok(())
        })
    }

    pub fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        self.with_db(|db| {
            let tx = db.begin_read().db()?;
            let t = tx.open_table(JOBS).db()?;
            t.get(id).db()?.map(|v| decode(v.value())).transpose()
        })
    }

    /// All jobs, oldest first.
    pub fn list(&self) -> Result<Vec<JobRecord>> {
        let mut out = self.with_db(|db| {
            let tx = db.begin_read().db()?;
            let t = tx.open_table(JOBS).db()?;
            let mut out = Vec::new();
            for row in t.iter().db()? {
                out.push(decode(row.db()?.1.value())?);
            }
            Ok(out)
        })?;
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    /// Read-modify-write of one record in a single transaction; returns the new record.
    pub fn update(&self, id: &str, change: impl Fn(&mut JobRecord)) -> Result<JobRecord> {
        self.with_db(|db| update_in(db, id, &change))
    }

    /// Records how job `id` ended. If that cannot be written now, it is written at the first
    /// later use of the store that works (and logged): a job never stays `running` because of
    /// a storage error once the storage works again.
    pub fn record_end(&self, id: &str, change: impl Fn(&mut JobRecord) + Send + Sync + 'static) {
        let change: Change = Arc::new(change);
        if let Err(e) = self.update(id, |r| change(r)) {
            tracing::error!("job {id}: cannot record how the job ended, will retry: {e:#}");
            self.inner.unrecorded.lock().unwrap_or_else(|e| e.into_inner()).push((id.to_string(), change));
        }
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
