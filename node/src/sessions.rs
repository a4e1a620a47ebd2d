//! Scoring sessions: score jobs with `params.target = "session"`.
//!
//! A session is opened by a score job that both nodes' policies approve like any other
//! (`scores_to_bank` and `partial_scores_to_bank`, no PSI). Its `score` phase sets up a private
//! keyed lookup ([`protocol::lookup`]) once: the gov computes its calibrated partial logit
//! `a·x_g·w_g` of every row of its dataset under the model, keys the table with a fresh key and
//! sends it (28 bytes per entity). The phase then stays open, and with it the job, on both nodes:
//! the bank's operator scores single ids through the admin API (`tandem score ID --consent REF`),
//! each query one round trip on the job's stream, until either operator closes the session
//! (`tandem session close`) or a node stops. Closing ends the job normally: both nodes sign the
//! transcript, which holds every query.
//!
//! One request of the bank, answered by the gov, makes one round trip:
//! - bank → gov: `session.req` (`Ping`, `Query` with one keyed consent hash per id, or `Close`),
//!   for a query followed by `lookup.query` (the blinded points `H(id)^b`);
//! - gov → bank: for a query, the table update (changes since the last one, see below) through
//!   the reveal path (`session_table`, rule `partial_scores_to_bank`); `session.status` (`Ok`,
//!   `OverBudget`: the gov's `policy.score_budget_per_day` is used up, `Closed`); then for an
//!   admitted query the evaluated points through the reveal path (`partial_scores`, same rule).
//!
//! The bank pings when idle (every quarter of its `timeouts.read_secs`, at most 20 s), so the gov,
//! which only answers, is never left waiting past its read timeout.
//!
//! **Refresh.** Before answering a query (not a ping) the gov checks whether its dataset file
//! changed (modification time and length); if so it reloads it and sends, under the same key, the
//! entries of changed and added rows (each row's version increased, so each version is masked
//! with its own pad) and the tags of deleted rows. **Rotation.** When
//! `policy.score_session_rotate_minutes` (gov) have passed since the table was keyed, the gov
//! keys it anew ahead of the next query and sends the whole table, which replaces the bank's.
//! The set-up's table, each refresh and each rotation (an empty update when nothing changed) go
//! as one `session_table` reveal, so both transcripts hold a reveal record of every update.
//!
//! What each party learns (besides what the score job's set-up shows: model, table size):
//! - the gov: for each request its kind, time and number of ids, and one 128-bit consent hash per
//!   id (BLAKE3 keyed by a secret of the bank's session, so the gov cannot test guesses of consent
//!   references); never which ids are queried, nor any score;
//! - the bank: per queried id, whether the gov holds it and the gov's calibrated partial logit
//!   (as with target `ids`); per refresh, the numbers of changed/added and of deleted rows, and for
//!   an id it queried under the current key, that its row changed, was added or was deleted (it
//!   holds that id's tag); not the new value until it queries again, and nothing about ids it did
//!   not query (their tags and masked payloads are pseudorandom, a new version's pad is
//!   independent of the old one's). A rotation makes every tag new, so this linkage ends there.
//!
//! Records: every request's frames are in both nodes' transcripts, every table update is a
//! `session_table` reveal record in both, and every answer is a reveal record in both whose
//! summary lists the consent hashes of its ids; both nodes sign all of them
//! when the session closes (the job's last phase end). The bank also appends each query to its
//! owner-only `<job_dir>/session-log.jsonl` (id, consent reference, consent hash, result); its
//! first line holds the consent hash key. An auditor recomputes each consent hash from the bank's
//! log and finds it in the reveal records of both transcripts (`tandem audit compare`), so each
//! query answered is tied to a consent reference without the gov learning either.
//!
//! Budget: each node counts the ids scored per model per UTC day over its succeeded score jobs
//! and its open sessions, against its `policy.score_budget_per_day`; the gov refuses a query past
//! its budget (status `OverBudget`), the bank refuses one past its own before sending it. A closed
//! session counts in the job store like a score job (on the day it was opened); one that a
//! failure or node restart ended counts by its budget log (`<job_dir>/budget.jsonl`, each answer
//! synced before the gov reveals it). The bank refuses a query without a consent
//! reference. Sessions live in memory: a node restart ends them (open a new one).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use models::capped::FixedScorecard;
use models::scorecard::ScoreOutput;
use protocol::disclose::Grant;
use protocol::fixed::FixedPoint;
use protocol::lookup::{LookupServer, Tag, VERSIONED_ENTRY_LEN, VersionedTable, blind_queries};
use protocol::{Channel, Role};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::jobs::failure::Result as JobResult;
use crate::jobs::phases::score::{SCORED_ENTITIES, lookup_weights, model_inputs, used_on_day};
use crate::jobs::phases::train::SavedModel;
use crate::jobs::phases::{load_dataset, os_rng, prepare_ids};
use crate::jobs::runner::PhaseContext;
use crate::jobs::spec::{Reveal, ScoreJobParams};

/// Most ids in one request (the bank batches concurrent queries up to this).
pub const MAX_BATCH: usize = 1024;
/// Largest table a session holds.
pub const MAX_TABLE: usize = 1 << 25;
/// The bank's query log in the job directory.
pub const LOG_FILE: &str = "session-log.jsonl";

/// One id the bank's operator asks to score, with the reference of the consent that allows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub id: String,
    pub consent_ref: String,
}

/// The result of one query: `status` is `ok` (with what the job's `score_output` shows), `not found
/// at gov`, `not in the bank's dataset`, or why it was refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub id: String,
    pub consent_ref: String,
    pub status: String,
    pub probability: Option<f64>,
    pub points: Option<i64>,
    pub grade: Option<String>,
}

/// Statuses of results that were not scored.
pub const NOT_AT_GOV: &str = "not found at gov";
pub const NOT_AT_BANK: &str = "not in the bank's dataset";
pub const GOV_BUDGET: &str = "refused: the gov's policy.score_budget_per_day is used up";
pub const BANK_BUDGET: &str = "refused: this node's policy.score_budget_per_day is used up";
pub const CLOSED: &str = "refused: the session was closed";

/// An open session as the admin API lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The score job that opened it.
    pub id: String,
    pub model: String,
    /// Entities in the table.
    pub entities: u64,
    /// Bytes both ways on the session's stream until the table was set up at this node.
    pub setup_bytes: u64,
    /// Ids scored (bank) or answered (gov) so far.
    pub queries: u64,
    pub refreshes: u64,
    pub rotations: u64,
}

/// The gov's answer status (`session.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Status {
    Ok,
    OverBudget,
    Closed,
}

/// The bank's request (`session.req`).
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Ping,
    /// One keyed consent hash per id; the blinded points follow in `lookup.query`.
    Query(Vec<[u8; 16]>),
    Close,
}

/// A request the bank's admin API hands to its session.
enum BankRequest {
    Score(Vec<Query>, Sender<Vec<QueryResult>>),
    Close,
}

struct Entry {
    info: SessionInfo,
    /// The bank's request queue (bank only).
    requests: Option<Sender<BankRequest>>,
    /// Set to close a gov session at the bank's next request.
    close: Arc<AtomicBool>,
    /// Ids scored on UTC day `.0`.
    today: (u64, u64),
}

/// This node's open sessions. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Sessions {
    open: Arc<Mutex<HashMap<String, Entry>>>,
}

fn utc_day() -> u64 {
    crate::jobs::record::now_ms() / 86_400_000
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.open.lock().expect("sessions lock")
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        let mut list: Vec<SessionInfo> = self.lock().values().map(|e| e.info.clone()).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// Ids scored with `model` on UTC day `day` by the open sessions.
    pub fn used_on_day(&self, model: &str, day: u64) -> u64 {
        self.lock().values().filter(|e| e.info.model == model && e.today.0 == day).map(|e| e.today.1).sum()
    }

    /// Scores `queries` in session `session` (the only open one when `None`); blocks until the
    /// answer (at most `timeout`). Bank only.
    pub fn score(&self, session: Option<&str>, queries: Vec<Query>, timeout: Duration) -> Result<Vec<QueryResult>> {
        if queries.is_empty() || queries.len() > MAX_BATCH {
            bail!("a request scores 1 to {MAX_BATCH} ids, not {}", queries.len());
        }
        if let Some(q) = queries.iter().find(|q| q.consent_ref.trim().is_empty()) {
            bail!(
                "consent_ref is empty for id '{}': every scored id needs the reference of the consent that allows it",
                q.id
            );
        }
        let sender = {
            let open = self.lock();
            let entry = match session {
                Some(id) => open.get(id).ok_or_else(|| anyhow!("no open scoring session '{id}' on this node"))?,
                None => {
                    let mut banks = open.values().filter(|e| e.requests.is_some());
                    match (banks.next(), banks.next()) {
                        (Some(e), None) => e,
                        (None, _) => bail!(
                            "no open scoring session on this node: open one with a score job of target \"session\""
                        ),
                        _ => bail!("several scoring sessions are open: name one with --session (tandem session list)"),
                    }
                }
            };
            entry.requests.clone().ok_or_else(|| anyhow!("queries are submitted at the bank; this node is the gov"))?
        };
        let (tx, rx) = std::sync::mpsc::channel();
        sender.send(BankRequest::Score(queries, tx)).map_err(|_| anyhow!("the session has just closed"))?;
        rx.recv_timeout(timeout).map_err(|_| anyhow!("the session did not answer within {} s", timeout.as_secs()))
    }

    /// Closes session `id`: at once at the bank, at the bank's next request at the gov.
    pub fn close(&self, id: &str) -> Result<SessionInfo> {
        let open = self.lock();
        let e = open.get(id).ok_or_else(|| anyhow!("no open scoring session '{id}' on this node"))?;
        e.close.store(true, Ordering::SeqCst);
        if let Some(s) = &e.requests {
            let _ = s.send(BankRequest::Close);
        }
        Ok(e.info.clone())
    }

    /// Closes every session (node shutdown).
    pub fn close_all(&self) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            let _ = self.close(&id);
        }
    }

    fn register(&self, info: SessionInfo, requests: Option<Sender<BankRequest>>) -> Registered {
        let close = Arc::new(AtomicBool::new(false));
        let id = info.id.clone();
        self.lock().insert(id.clone(), Entry { info, requests, close: close.clone(), today: (utc_day(), 0) });
        Registered { sessions: self.clone(), id, close }
    }
}

/// A session in the registry; removed when dropped.
struct Registered {
    sessions: Sessions,
    id: String,
    close: Arc<AtomicBool>,
}

impl Registered {
    fn update(&self, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.sessions.lock().get_mut(&self.id) {
            f(e)
        }
    }

    /// Counts `n` ids scored now.
    fn count(&self, n: u64) {
        self.update(|e| {
            let day = utc_day();
            if e.today.0 != day {
                e.today = (day, 0);
            }
            e.today.1 += n;
            e.info.queries += n;
        });
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
    }
}

/// The disclosure of one answer: names the consent hashes of its ids (identical at both nodes).
fn query_grant(hashes: &[[u8; 16]]) -> Grant {
    let list: Vec<String> = hashes.iter().map(hex::encode).collect();
    Grant::new(
        "partial_scores",
        Reveal::PartialScoresToBank.as_str(),
        format!(
            "the gov's partial score of each of {} ids the bank names (the gov does not learn which); consent hashes {}",
            hashes.len(),
            list.join(",")
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// gov

/// One row of the gov's table: its current version and payload (`None`: deleted, kept so a
/// re-added row gets a new version).
struct Row {
    version: u32,
    payload: Option<u64>,
    /// The last refresh that listed the row.
    listed: u32,
}

/// The gov's side of a session: the key and every row it has sent.
pub struct GovTable {
    domain: String,
    server: LookupServer,
    rows: HashMap<String, Row>,
    /// Rows with a payload (not deleted).
    live: usize,
    /// Refreshes so far (marks the rows each one lists).
    refreshes: u32,
    keyed_at: Instant,
}

/// Changes to send: versioned entries and deleted tags.
pub struct Changes {
    rotated: bool,
    entries: Vec<u8>,
    deleted: Vec<Tag>,
}

impl GovTable {
    /// Keys `rows` (`id → payload`, ids normalised and unique) with a fresh key: the table and
    /// the changes that send it whole.
    pub fn new(domain: &str, rows: Vec<(String, u64)>) -> (GovTable, Changes) {
        let mut table = GovTable {
            domain: domain.to_string(),
            server: LookupServer::new(&mut os_rng()),
            rows: HashMap::new(),
            live: 0,
            refreshes: 0,
            keyed_at: Instant::now(),
        };
        let changes = table.rekey(rows);
        (table, changes)
    }

    /// Entities in the table.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new key for `rows`, all at version 0: the whole table again.
    fn rekey(&mut self, rows: Vec<(String, u64)>) -> Changes {
        self.server = LookupServer::new(&mut os_rng());
        self.keyed_at = Instant::now();
        let listed: Vec<(&str, u32, u64)> = rows.iter().map(|(id, p)| (id.as_str(), 0, *p)).collect();
        let entries = self.server.versioned_entries(&self.domain, &listed);
        self.rows = rows.into_iter().map(|(id, p)| (id, Row { version: 0, payload: Some(p), listed: 0 })).collect();
        self.live = self.rows.len();
        Changes { rotated: true, entries, deleted: Vec::new() }
    }

    /// Rotation: a new key for the current rows.
    pub fn rotate(&mut self) -> Changes {
        let rows = self.rows.iter().filter_map(|(id, r)| r.payload.map(|p| (id.clone(), p))).collect();
        self.rekey(rows)
    }

    /// Refresh under the same key to `rows`: entries of the changed and added rows (next
    /// version), tags of the deleted ones.
    pub fn refresh(&mut self, rows: Vec<(String, u64)>) -> Changes {
        self.refreshes += 1;
        let listed = self.refreshes;
        let mut changed: Vec<(String, u32, u64)> = Vec::new();
        for (id, payload) in rows {
            match self.rows.get_mut(&id) {
                Some(r) if r.payload == Some(payload) => r.listed = listed,
                Some(r) => {
                    // A changed row, or a deleted one listed again: its next version.
                    r.version += 1;
                    r.payload = Some(payload);
                    r.listed = listed;
                    changed.push((id, r.version, payload));
                }
                None => {
                    self.rows.insert(id.clone(), Row { version: 0, payload: Some(payload), listed });
                    changed.push((id, 0, payload));
                }
            }
        }
        let gone: Vec<&str> = self
            .rows
            .iter_mut()
            .filter(|(_, r)| r.payload.is_some() && r.listed != listed)
            .map(|(id, r)| {
                r.payload = None;
                id.as_str()
            })
            .collect();
        let deleted = self.server.tags(&self.domain, &gone);
        self.live = self.rows.values().filter(|r| r.payload.is_some()).count();
        let listed: Vec<(&str, u32, u64)> = changed.iter().map(|(id, v, p)| (id.as_str(), *v, *p)).collect();
        Changes { rotated: false, entries: self.server.versioned_entries(&self.domain, &listed), deleted }
    }
}

/// Bytes ahead of a table update's entries: `rotated` (one byte), then the numbers of upserts
/// and deletions (u64 little-endian each).
const UPDATE_HEADER: usize = 17;

/// The grant of a table update (the set-up, a refresh or a rotation) under the session's rule:
/// the bank learns the numbers of changed/added and of deleted rows, and for an id it queried
/// under the current key that its row changed (module docs).
fn table_grant() -> Grant {
    Grant::new(
        "session_table",
        Reveal::PartialScoresToBank.as_str(),
        "the gov's keyed lookup table or its changes ahead of an answer (set-up, refresh or rotation): \
         masked entries of changed and added rows, tags of deleted rows, and their numbers",
    )
}

/// Sends a table update through the reveal path (a reveal record at both nodes).
fn send_changes(ch: &mut Channel, c: &Changes) -> protocol::Result<()> {
    let upserts = (c.entries.len() / VERSIONED_ENTRY_LEN) as u64;
    let mut update = Vec::with_capacity(UPDATE_HEADER + c.entries.len() + 16 * c.deleted.len());
    update.push(u8::from(c.rotated));
    update.extend(upserts.to_le_bytes());
    update.extend((c.deleted.len() as u64).to_le_bytes());
    update.extend_from_slice(&c.entries);
    update.extend_from_slice(c.deleted.as_flattened());
    ch.reveal_send(&table_grant(), &update)
}

/// What the gov's loop needs from its node.
pub struct GovHooks<'a> {
    /// The rows again if the data changed since the last call (`None`: unchanged).
    pub reload: &'a mut dyn FnMut() -> JobResult<Option<Vec<(String, u64)>>>,
    /// Whether `n` more ids are within the budget.
    pub admit: &'a mut dyn FnMut(u64) -> bool,
    /// Records `n` ids in the budget log, before the answer is revealed.
    pub spend: &'a mut dyn FnMut(u64) -> JobResult<()>,
    pub rotate_after: Duration,
}

/// Totals of a session at one node.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    /// Ids answered (gov) or scored with the gov's answer (bank).
    pub queries: u64,
    /// Ids refused for a budget.
    pub refused: u64,
    pub refreshes: u64,
    pub rotations: u64,
}

/// The gov's side of a session: sends the table keyed for `rows` (`id → payload`, normalised,
/// unique), registers the session in `sessions` as `info`, then answers the bank's requests until
/// either side closes.
pub fn gov_session(
    ch: &mut Channel,
    sessions: &Sessions,
    mut info: SessionInfo,
    rows: Vec<(String, u64)>,
    hooks: GovHooks<'_>,
) -> JobResult<Totals> {
    let (mut table, changes) = GovTable::new(&info.id, rows);
    send_changes(ch, &changes)?;
    info.entities = table.len() as u64;
    info.setup_bytes = ch.stats().bytes_sent + ch.stats().bytes_received;
    let reg = sessions.register(info, None);
    let mut totals = Totals::default();
    serve_gov(ch, &mut table, hooks, &reg, &mut totals)?;
    Ok(totals)
}

fn serve_gov(
    ch: &mut Channel,
    table: &mut GovTable,
    hooks: GovHooks<'_>,
    reg: &Registered,
    totals: &mut Totals,
) -> JobResult<()> {
    loop {
        let request: Request = ch.recv("session.req")?;
        let hashes = match request {
            Request::Close => {
                ch.send("session.status", &Status::Closed)?;
                return Ok(());
            }
            Request::Ping => None,
            Request::Query(h) => {
                if h.is_empty() || h.len() > MAX_BATCH {
                    return Err(protocol::PeerError::BadCount {
                        what: "ids in a session query".into(),
                        got: h.len() as u64,
                        allowed: format!("1 to {MAX_BATCH}"),
                    }
                    .into());
                }
                Some(h)
            }
        };
        let points = match &hashes {
            Some(h) => Some(ch.recv_bulk("lookup.query", (h.len() * 32) as u64)?),
            None => None,
        };
        // Ahead of a query's answer only: the table's refresh or rotation (pings get none).
        if hashes.is_some() {
            let changes = if table.keyed_at.elapsed() >= hooks.rotate_after {
                totals.rotations += 1;
                match (hooks.reload)()? {
                    Some(rows) => table.rekey(rows),
                    None => table.rotate(),
                }
            } else if let Some(rows) = (hooks.reload)()? {
                totals.refreshes += 1;
                table.refresh(rows)
            } else {
                Changes { rotated: false, entries: Vec::new(), deleted: Vec::new() }
            };
            send_changes(ch, &changes)?;
        }
        let status = match &hashes {
            _ if reg.close.load(Ordering::SeqCst) => Status::Closed,
            Some(h) if !(hooks.admit)(h.len() as u64) => Status::OverBudget,
            _ => Status::Ok,
        };
        ch.send("session.status", &status)?;
        match (status, hashes, points) {
            (Status::Closed, ..) => return Ok(()),
            (Status::OverBudget, Some(h), _) => totals.refused += h.len() as u64,
            (Status::Ok, Some(h), Some(points)) => {
                let answer = table.server.evaluate(&points)?;
                (hooks.spend)(h.len() as u64)?;
                ch.reveal_send(&query_grant(&h), &answer)?;
                totals.queries += h.len() as u64;
                reg.count(h.len() as u64);
            }
            _ => {}
        }
        let (entities, t) = (table.len() as u64, *totals);
        reg.update(|e| (e.info.entities, e.info.refreshes, e.info.rotations) = (entities, t.refreshes, t.rotations));
    }
}

// ---------------------------------------------------------------------------------------------
// bank

/// What the bank scores with: its own partial logit of each of its ids, and the scorecard.
pub struct BankRows {
    pub id_kind: protocol::ids::IdKind,
    /// Normalised id → the bank's calibrated partial logit `a·x_b·w_b + a·bias + b`.
    pub partial: HashMap<String, f64>,
    pub fp: FixedPoint,
    pub card: FixedScorecard,
    pub output: ScoreOutput,
}

/// The bank's per-session query log (`<job_dir>/session-log.jsonl`, owner-only, append-only):
/// the consent hash key, then one line per query.
pub struct SessionLog {
    file: Option<File>,
    key: [u8; 32],
}

impl SessionLog {
    /// A log with a fresh consent hash key, written to `path` (none: not written, for benches).
    pub fn create(path: Option<&Path>) -> JobResult<SessionLog> {
        let key: [u8; 32] = rand::rng().random();
        let file = match path {
            Some(p) => {
                let mut f = std::fs::OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)
                    .with_context(|| format!("cannot create the session log {}", p.display()))?;
                let head = serde_json::json!({
                    "consent_hash_key": hex::encode(key),
                    "consent_hash": "first 16 bytes of BLAKE3 keyed by consent_hash_key over the consent reference",
                });
                writeln!(f, "{head}")?;
                Some(f)
            }
            None => None,
        };
        Ok(SessionLog { file, key })
    }

    pub fn consent_hash(&self, consent_ref: &str) -> [u8; 16] {
        blake3::keyed_hash(&self.key, consent_ref.as_bytes()).as_bytes()[..16].try_into().expect("16 bytes")
    }

    fn record(&mut self, r: &QueryResult) -> JobResult<()> {
        let hash = self.consent_hash(&r.consent_ref);
        if let Some(f) = &mut self.file {
            let line = serde_json::json!({
                "time": crate::audit::record::now_rfc3339(),
                "consent_hash": hex::encode(hash),
                "result": r,
            });
            writeln!(f, "{line}").context("cannot append to the session log")?;
        }
        Ok(())
    }
}

/// Receives a table update (see [`send_changes`]) and applies it to `table`, counting a refresh
/// or rotation.
fn apply_update(ch: &mut Channel, table: &mut VersionedTable, totals: &mut Totals) -> protocol::Result<()> {
    const WHAT: &str = "session table update";
    let max = UPDATE_HEADER + MAX_TABLE * (VERSIONED_ENTRY_LEN + 16);
    let update = ch.reveal_recv(&table_grant(), max as u64)?;
    let Some((header, body)) = update.split_at_checked(UPDATE_HEADER) else {
        return Err(protocol::PeerError::wrong_bytes(WHAT, UPDATE_HEADER as u64, update.len() as u64).into());
    };
    let count = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let (rotated, upserts, deletions) = (header[0] != 0, count(1), count(9));
    if upserts > MAX_TABLE as u64 || deletions > MAX_TABLE as u64 {
        return Err(protocol::PeerError::BadCount {
            what: "entries of a session table update".into(),
            got: upserts.max(deletions),
            allowed: format!("at most {MAX_TABLE}"),
        }
        .into());
    }
    let entries_len = upserts as usize * VERSIONED_ENTRY_LEN;
    if body.len() != entries_len + deletions as usize * 16 {
        let expected = (UPDATE_HEADER + entries_len + deletions as usize * 16) as u64;
        return Err(protocol::PeerError::wrong_bytes(WHAT, expected, update.len() as u64).into());
    }
    if rotated {
        table.clear();
    }
    let (entries, tags) = body.split_at(entries_len);
    if upserts > 0 {
        table.upsert(entries, MAX_TABLE)?;
    }
    if deletions > 0 {
        table.delete(tags)?;
    }
    if rotated {
        totals.rotations += 1;
    } else if upserts + deletions > 0 {
        totals.refreshes += 1;
    }
    Ok(())
}

/// What the bank's loop needs from its node.
pub struct BankHooks<'a> {
    /// Reloads the bank's rows if its data changed.
    pub reload: &'a mut dyn FnMut(&mut BankRows) -> JobResult<()>,
    /// Whether `n` more ids are within this node's budget.
    pub admit: &'a mut dyn FnMut(u64) -> bool,
    /// Records `n` ids in the budget log, once the gov's answer is in.
    pub spend: &'a mut dyn FnMut(u64) -> JobResult<()>,
    pub ping_every: Duration,
    pub log: &'a mut SessionLog,
}

/// A result without a score.
fn unscored(q: &Query, status: &str) -> QueryResult {
    QueryResult {
        id: q.id.clone(),
        consent_ref: q.consent_ref.clone(),
        status: status.to_string(),
        probability: None,
        points: None,
        grade: None,
    }
}

/// The bank's side of a session: receives the gov's table, registers the session in `sessions`
/// as `info` (queries reach it through [`Sessions::score`]), then serves its operator's queries
/// (batched) and pings when idle, until its operator or the gov closes the session.
pub fn bank_session(
    ch: &mut Channel,
    sessions: &Sessions,
    mut info: SessionInfo,
    rows: &mut BankRows,
    hooks: BankHooks<'_>,
) -> JobResult<Totals> {
    let mut table = VersionedTable::default();
    let mut totals = Totals::default();
    apply_update(ch, &mut table, &mut totals)?;
    totals.rotations = 0; // the set-up
    info.entities = table.len() as u64;
    info.setup_bytes = ch.stats().bytes_sent + ch.stats().bytes_received;
    let (tx, rx) = std::sync::mpsc::channel();
    let reg = sessions.register(info, Some(tx));
    serve_bank(ch, &mut table, rows, &rx, hooks, &reg, &mut totals)?;
    Ok(totals)
}

fn serve_bank(
    ch: &mut Channel,
    table: &mut VersionedTable,
    rows: &mut BankRows,
    requests: &Receiver<BankRequest>,
    hooks: BankHooks<'_>,
    reg: &Registered,
    totals: &mut Totals,
) -> JobResult<()> {
    let domain = reg.id.clone();
    loop {
        let first = match requests.recv_timeout(hooks.ping_every) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                ch.send("session.req", &Request::Ping)?;
                if ch.recv::<Status>("session.status")? == Status::Closed {
                    return Ok(());
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => BankRequest::Close,
        };
        // Batch the requests waiting now, up to MAX_BATCH ids.
        let mut batch: Vec<(Vec<Query>, Sender<Vec<QueryResult>>)> = Vec::new();
        let mut closing = false;
        let mut next = Some(first);
        while let Some(r) = next.take() {
            match r {
                BankRequest::Close => closing = true,
                BankRequest::Score(q, reply) => batch.push((q, reply)),
            }
            if !closing && batch.iter().map(|b| b.0.len()).sum::<usize>() < MAX_BATCH {
                next = requests.try_recv().ok();
            }
        }
        (hooks.reload)(rows)?;
        let mut gov_closed = false;
        if !batch.is_empty() {
            let queries: Vec<&Query> = batch.iter().flat_map(|b| &b.0).collect();
            let mut results: Vec<QueryResult> = Vec::with_capacity(queries.len());
            let mut sent: Vec<(usize, String, f64)> = Vec::new(); // (result index, id, bank partial)
            for (i, q) in queries.iter().enumerate() {
                results.push(match protocol::ids::normalize(rows.id_kind, &q.id) {
                    Err(why) => unscored(q, &format!("invalid id: the id {why}")),
                    Ok(id) => match rows.partial.get(&id) {
                        None => unscored(q, NOT_AT_BANK),
                        Some(&z) => {
                            sent.push((i, id, z));
                            unscored(q, CLOSED)
                        }
                    },
                });
            }
            if !sent.is_empty() && !(hooks.admit)(sent.len() as u64) {
                sent.iter().for_each(|s| results[s.0].status = BANK_BUDGET.to_string());
                totals.refused += sent.len() as u64;
            } else if !sent.is_empty() {
                let ids: Vec<&str> = sent.iter().map(|s| s.1.as_str()).collect();
                let hashes: Vec<[u8; 16]> =
                    sent.iter().map(|s| hooks.log.consent_hash(&queries[s.0].consent_ref)).collect();
                let (blinding, points) = blind_queries(&domain, &ids, &mut os_rng());
                ch.send("session.req", &Request::Query(hashes.clone()))?;
                ch.send_bulk("lookup.query", &points)?;
                apply_update(ch, table, totals)?;
                match ch.recv::<Status>("session.status")? {
                    Status::Closed => gov_closed = true,
                    Status::OverBudget => {
                        sent.iter().for_each(|s| results[s.0].status = GOV_BUDGET.to_string());
                        totals.refused += sent.len() as u64;
                    }
                    Status::Ok => {
                        let answer = ch.reveal_recv(&query_grant(&hashes), (ids.len() * 32) as u64)?;
                        let gov = table.read_answer(&blinding, &answer)?;
                        for ((i, _, z), g) in sent.iter().zip(gov) {
                            let r = &mut results[*i];
                            match g {
                                None => r.status = NOT_AT_GOV.to_string(),
                                Some(zg) => {
                                    let s = rows.card.score(rows.fp.encode(rows.fp.decode(zg) + z), rows.output);
                                    r.status = "ok".into();
                                    r.probability = s.probability;
                                    r.points = s.points;
                                    r.grade = Some(s.grade);
                                }
                            }
                        }
                        (hooks.spend)(sent.len() as u64)?;
                        totals.queries += sent.len() as u64;
                        reg.count(sent.len() as u64);
                    }
                }
            }
            for r in &results {
                hooks.log.record(r)?;
            }
            let (entities, t) = (table.len() as u64, *totals);
            reg.update(|e| {
                (e.info.entities, e.info.refreshes, e.info.rotations) = (entities, t.refreshes, t.rotations)
            });
            let mut results = results.into_iter();
            for (q, reply) in batch {
                let _ = reply.send(results.by_ref().take(q.len()).collect());
            }
        }
        if gov_closed {
            return Ok(());
        }
        if closing {
            ch.send("session.req", &Request::Close)?;
            let _: Status = ch.recv("session.status")?;
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the job's phase

/// Modification time and length of a file: a change of either means the data changed.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())))
}

/// A budget check against `policy.score_budget_per_day` of this node: the store's count of the
/// day (re-read at most once a minute) plus the open sessions' counts.
fn budget_check(ctx: &PhaseContext<'_>, model: &str) -> impl FnMut(u64) -> bool + use<> {
    let (store, sessions, model) = (ctx.store.clone(), ctx.sessions.clone(), model.to_string());
    let jobs_dir = ctx.config.node.data_dir.join("jobs");
    let budget = ctx.config.policy.score_budget_per_day;
    let mut cached: Option<(u64, Instant, u64)> = None;
    move |n| {
        let day = utc_day();
        let stored = match cached {
            Some((d, at, used)) if d == day && at.elapsed() < Duration::from_secs(60) => used,
            _ => match used_on_day(&store, &jobs_dir, &model, day) {
                Ok(used) => {
                    cached = Some((day, Instant::now(), used));
                    used
                }
                Err(e) => {
                    tracing::error!("scoring session: cannot read the job store for the budget: {e:#}");
                    return false;
                }
            },
        };
        stored + sessions.used_on_day(&model, day) + n <= budget
    }
}

/// Records `n` ids scored now in the session's budget log ([`BUDGET_LOG`]).
fn budget_spend(ctx: &PhaseContext<'_>) -> impl FnMut(u64) -> JobResult<()> + use<> {
    let job_dir = ctx.job_dir.to_path_buf();
    move |n| Ok(log_scored(&job_dir, utc_day(), n).with_context(|| format!("cannot append to {BUDGET_LOG}"))?)
}

/// A session's budget log in its job directory: one line `{"day": d, "ids": n}` per answered
/// request (owner-only, synced: at the gov before it reveals the answer, at the bank when it has
/// it), so a session that a failure or node restart ends still counts ([`logged_on_day`]).
pub(crate) const BUDGET_LOG: &str = "budget.jsonl";

pub(crate) fn log_scored(job_dir: &Path, day: u64, ids: u64) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(job_dir.join(BUDGET_LOG))?;
    writeln!(f, "{}", serde_json::json!({ "day": day, "ids": ids }))?;
    f.sync_data()
}

/// Ids scored on UTC day `day` by the session whose job directory is `job_dir`, from its
/// budget log (0 without one; a torn last line, from a crash mid-write, is skipped).
pub(crate) fn logged_on_day(job_dir: &Path, day: u64) -> Result<u64> {
    let path = job_dir.join(BUDGET_LOG);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["day"].as_u64() == Some(day))
        .filter_map(|v| v["ids"].as_u64())
        .sum())
}

/// Phase `score` of target `session`: sets the session up, serves it until it is closed, and
/// records its totals in the outcome (`session_queries`, `session_refused`, `session_refreshes`,
/// `session_rotations`; `scored_entities` counts the queries in the budget).
pub fn run(ctx: &mut PhaseContext<'_>, ch: &mut Channel, saved: &SavedModel, params: &ScoreJobParams) -> JobResult<()> {
    let skip_bad = ctx.spec.common.skip_invalid_ids();
    let art = &saved.artifact;
    let weights = lookup_weights(ctx, ch, saved)?.to_vec();
    let own = art.block(ctx.role).clone();
    let fp = FixedPoint::new(art.params.frac_bits);
    let cal = art.calibration;
    let offset = match ctx.role {
        Role::Bank => cal.a * art.bias.context("the bank's model file lacks the bias")? + cal.b,
        Role::Gov => 0.0,
    };
    let data_path: PathBuf = ctx.dataset.path.clone();
    // Each row's calibrated partial logit at this node.
    let load = |ctx: &mut PhaseContext<'_>| -> JobResult<Vec<(String, f64)>> {
        let data = load_dataset(ctx, &own.input_columns(), None)?;
        let prepared = prepare_ids(ctx, &data, skip_bad)?;
        let x = model_inputs(ctx, &own, &data)?;
        let cols = own.features.len();
        Ok(prepared
            .ids
            .into_iter()
            .zip(prepared.rows)
            .map(|(id, r)| {
                let z = x[r * cols..(r + 1) * cols].iter().zip(&weights).map(|(a, b)| a * b).sum::<f64>();
                (id, cal.a * z + offset)
            })
            .collect())
    };
    let mut seen = stamp(&data_path);
    let rows = load(ctx)?;
    let info = SessionInfo {
        id: ctx.job_id.to_string(),
        model: saved.job_id.clone(),
        entities: 0,
        setup_bytes: 0,
        queries: 0,
        refreshes: 0,
        rotations: 0,
    };
    let sessions = ctx.sessions.clone();
    let (mut admit, mut spend) = (budget_check(ctx, &saved.job_id), budget_spend(ctx));
    ctx.progress(0.5, &format!("session open: {} entities here; serving queries until it is closed", rows.len()));
    let totals = match ctx.role {
        Role::Gov => {
            let rotate_after = Duration::from_secs(ctx.config.policy.score_session_rotate_minutes * 60);
            let payloads = |rows: Vec<(String, f64)>| rows.into_iter().map(|(id, z)| (id, fp.encode(z))).collect();
            let mut reload = || -> JobResult<Option<Vec<(String, u64)>>> {
                let now = stamp(&data_path);
                if now == seen {
                    return Ok(None);
                }
                seen = now;
                Ok(Some(payloads(load(ctx)?)))
            };
            let hooks = GovHooks { reload: &mut reload, admit: &mut admit, spend: &mut spend, rotate_after };
            gov_session(ch, &sessions, info, payloads(rows), hooks)?
        }
        Role::Bank => {
            let card = FixedScorecard::new(&art.scorecard, fp).map_err(|e| anyhow!("model '{}': {e}", saved.job_id))?;
            let mut bank_rows = BankRows {
                id_kind: ctx.dataset.id_kind,
                partial: rows.into_iter().collect(),
                fp,
                card,
                output: params.score_output(),
            };
            let log_path = ctx.job_dir.join(LOG_FILE);
            let mut log = SessionLog::create(Some(&log_path))?;
            ctx.outcome.insert("session_log".into(), log_path.display().to_string().into());
            let ping_every = (ctx.config.timeouts.read() / 4).min(Duration::from_secs(20));
            let mut reload = |rows: &mut BankRows| -> JobResult<()> {
                let now = stamp(&data_path);
                if now != seen {
                    seen = now;
                    rows.partial = load(ctx)?.into_iter().collect();
                }
                Ok(())
            };
            let hooks =
                BankHooks { reload: &mut reload, admit: &mut admit, spend: &mut spend, ping_every, log: &mut log };
            bank_session(ch, &sessions, info, &mut bank_rows, hooks)?
        }
    };
    for (key, value) in [
        ("session_queries", totals.queries),
        ("session_refused", totals.refused),
        ("session_refreshes", totals.refreshes),
        ("session_rotations", totals.rotations),
        (SCORED_ENTITIES, totals.queries),
    ] {
        ctx.outcome.insert(key.into(), value.into());
    }
    ctx.progress(1.0, &format!("session closed after {} queries", totals.queries));
    Ok(())
}

#[cfg(test)]
mod tests {
    use protocol::channel::run_pair;

    use super::*;

    const FP: FixedPoint = FixedPoint { frac_bits: 16 };

    fn rows(range: std::ops::Range<u32>, shift: f64) -> Vec<(String, u64)> {
        range.map(|i| (format!("E{i}"), FP.encode(i as f64 / 10.0 + shift))).collect()
    }

    fn info() -> SessionInfo {
        SessionInfo {
            id: "s-1".into(),
            model: "m".into(),
            entities: 0,
            setup_bytes: 0,
            queries: 0,
            refreshes: 0,
            rotations: 0,
        }
    }

    /// Runs a session over an in-memory channel pair: the gov serves `first` (then whatever
    /// `next` holds when asked), the bank holds ids E0..E99 with partial logit 0; `script` queries
    /// through the bank's registry and closes the session. Totals (gov, bank).
    fn session(
        first: Vec<(String, u64)>,
        rotate_after: Duration,
        script: impl FnOnce(&Sessions, &Sessions, &Mutex<Option<Vec<(String, u64)>>>) + Send,
    ) -> (Totals, Totals) {
        let (gov_s, bank_s, next) = (Sessions::default(), Sessions::default(), Mutex::new(None));
        std::thread::scope(|s| {
            s.spawn(|| {
                // A failed check closes the session, so the test fails instead of hanging.
                let _close = CloseOnDrop(&bank_s);
                common_poll(|| bank_s.list().len() == 1 && gov_s.list().len() == 1);
                script(&bank_s, &gov_s, &next);
            });
            let (g, b) = run_pair(
                |ch| {
                    let mut reload = || -> JobResult<Option<Vec<(String, u64)>>> { Ok(next.lock().unwrap().take()) };
                    let mut admit = |_: u64| true;
                    let mut spend = |_: u64| -> JobResult<()> { Ok(()) };
                    gov_session(
                        ch,
                        &gov_s,
                        info(),
                        first,
                        GovHooks { reload: &mut reload, admit: &mut admit, spend: &mut spend, rotate_after },
                    )
                },
                |ch| {
                    let mut rows = BankRows {
                        id_kind: protocol::ids::IdKind::Raw,
                        partial: (0..100).map(|i| (format!("E{i}"), 0.0)).collect(),
                        fp: FP,
                        card: FixedScorecard::new(&models::scorecard::Scorecard::default(), FP).unwrap(),
                        output: ScoreOutput::Probability,
                    };
                    let mut log = SessionLog::create(None).unwrap();
                    let (mut reload, mut admit) = (|_: &mut BankRows| -> JobResult<()> { Ok(()) }, |_: u64| true);
                    let mut spend = |_: u64| -> JobResult<()> { Ok(()) };
                    let ping_every = Duration::from_millis(50);
                    let hooks = BankHooks {
                        reload: &mut reload,
                        admit: &mut admit,
                        spend: &mut spend,
                        ping_every,
                        log: &mut log,
                    };
                    bank_session(ch, &bank_s, info(), &mut rows, hooks)
                },
            );
            (g.unwrap(), b.unwrap())
        })
    }

    struct CloseOnDrop<'a>(&'a Sessions);
    impl Drop for CloseOnDrop<'_> {
        fn drop(&mut self) {
            self.0.close_all();
        }
    }

    fn common_poll(mut done: impl FnMut() -> bool) {
        for _ in 0..3000 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("gave up waiting");
    }

    /// Scores `ids` and checks each against `table` (σ of its payload, or not found at gov).
    fn check(bank: &Sessions, ids: &[&str], table: &[(String, u64)]) {
        let queries = ids.iter().map(|id| Query { id: id.to_string(), consent_ref: "C".into() }).collect();
        let got = bank.score(None, queries, Duration::from_secs(60)).unwrap();
        for (id, r) in ids.iter().zip(got) {
            match table.iter().find(|(t, _)| t == id) {
                Some(&(_, p)) => {
                    let expected = 1.0 / (1.0 + (-FP.decode(p)).exp());
                    assert_eq!(r.status, "ok", "{id}");
                    assert!((r.probability.unwrap() - expected).abs() < 1e-12, "{id}: {r:?} vs {expected}");
                }
                None => assert_eq!(r.status, NOT_AT_GOV, "{id}"),
            }
        }
    }

    #[test]
    fn a_refresh_changes_adds_and_deletes_rows_under_the_same_key() {
        let before = rows(0..50, 0.0);
        // E0 is deleted, E1..E9 change, E10.. stay, E50..E59 are added.
        let mut after = rows(1..10, 1.5);
        after.extend(rows(10..60, 0.0));
        let ids = ["E0", "E1", "E5", "E20", "E55", "E99"];
        let (gov, bank) = session(before.clone(), Duration::MAX, |bank, _, next| {
            check(bank, &ids, &before);
            *next.lock().unwrap() = Some(after.clone());
            check(bank, &ids, &after);
            let listed = bank.list().pop().unwrap();
            assert_eq!((listed.entities, listed.refreshes, listed.rotations), (59, 1, 0));
            bank.close("s-1").unwrap();
        });
        assert_eq!(gov, Totals { queries: 12, refused: 0, refreshes: 1, rotations: 0 });
        assert_eq!(bank, gov);
    }

    /// Malformed table updates from the gov are peer errors at the bank, and nothing is applied:
    /// shorter than the header, counts past the table limit, a length that does not match.
    #[test]
    fn malformed_table_updates_are_peer_errors() {
        let header = |rotated: u8, upserts: u64, deletions: u64| {
            let mut h = vec![rotated];
            h.extend(upserts.to_le_bytes());
            h.extend(deletions.to_le_bytes());
            h
        };
        let mut one_short = header(0, 1, 1);
        one_short.extend(vec![0u8; VERSIONED_ENTRY_LEN + 15]);
        let cases = [vec![0u8; UPDATE_HEADER - 1], header(0, MAX_TABLE as u64 + 1, 0), header(1, 0, 2), one_short];
        for update in cases {
            let (_, (result, len)) = run_pair(
                |ch| ch.reveal_send(&table_grant(), &update).unwrap(),
                |ch| {
                    let mut table = VersionedTable::default();
                    let result = apply_update(ch, &mut table, &mut Totals::default());
                    (result, table.len())
                },
            );
            let e = result.expect_err("a malformed update is refused");
            assert!(matches!(e, protocol::Error::Peer(_)), "{e}");
            assert_eq!(len, 0, "nothing applied");
        }
    }

    #[test]
    fn a_rotation_sends_the_whole_table_under_a_new_key() {
        let table = rows(0..30, -1.0);
        let (gov, bank) = session(table.clone(), Duration::ZERO, |bank, _, _| {
            check(bank, &["E3", "E29", "E30"], &table);
            check(bank, &["E7"], &table);
            assert_eq!(bank.list().pop().unwrap().entities, 30);
            bank.close("s-1").unwrap();
        });
        assert!(gov.rotations >= 2 && bank.rotations == gov.rotations, "{gov:?} {bank:?}");
        assert_eq!((gov.queries, bank.queries), (4, 4));
    }

    #[test]
    fn the_gov_closes_at_the_next_request() {
        let (gov, bank) = session(rows(0..10, 0.0), Duration::MAX, |bank, gov, _| {
            gov.close("s-1").unwrap();
            // A query may still be answered by the closing request (a ping may come first).
            let got =
                bank.score(None, vec![Query { id: "E1".into(), consent_ref: "C".into() }], Duration::from_secs(60));
            if let Ok(r) = got {
                assert_eq!(r[0].status, CLOSED);
            }
            let e = bank.score(None, vec![Query { id: "E1".into(), consent_ref: "".into() }], Duration::from_secs(1));
            assert!(e.unwrap_err().to_string().contains("consent_ref is empty"));
        });
        assert_eq!((gov.queries, bank.queries), (0, 0));
    }
}
