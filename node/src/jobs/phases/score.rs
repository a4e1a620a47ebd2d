//! Phases `score` and [`watchlist`]. `score` scores entities with a model of an earlier train job (`params.model`, loaded
//! by each node from `<data_dir>/models/<id>.json`; the job's side `columns` must be the model's).
//!
//! - `target = "intersection"`: every aligned row of the `psi` phase, jointly
//!   ([`secure_score`]); the bank learns the scores, the gov nothing. The bank writes
//!   `<job_dir>/scores.csv` (`id,probability,points,grade`).
//! - `target = "ids"`: the ids in the bank's `queries_file` (CSV `id,consent_ref`, a consent
//!   reference on every row), by private keyed lookup ([`protocol::lookup`]): the gov computes
//!   its partial logit `z_g = x_g·w_g` for every row of its dataset and serves them as a keyed
//!   table; the bank looks up its queries, adds `x_b·w_b + b` and gets probability, points and
//!   grade. The gov learns only the number of queries; the bank learns, per query, whether the
//!   gov holds the id and its partial logit (equivalent to the final score it is entitled to)
//!   and the gov's table size. Needs each node's own weights: a model kept as shares
//!   (`model_shared`) is refused. The bank writes `<job_dir>/scores.csv`
//!   (`id,consent_ref,status,probability,points,grade`) and lists the consent references in its
//!   outcome; ids the gov (or the bank) does not hold get status `not found at gov` (`... bank`).
//!
//! The bank's outcome `stability` compares the scored population with the training population
//! the model keeps (PSI by grade, and by training score decile when logits were opened); it is
//! computed from scores the bank already holds, and the gov learns nothing of it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use models::capped::FixedScorecard;
use models::dataset::Dataset;
use models::evaluation::{Stability, decile_stability, grade_index, grade_stability};
use models::metrics::ScoreBins;
use models::scorecard::ScoreOutput;
use models::secure_lr::{BlockModel, ModelArtifact, ModelReveal, Score, secure_score};
use models::watchlist::{Flags, secure_watchlist};
use protocol::disclose::Grant;
use protocol::fixed::FixedPoint;
use protocol::lookup::{LookupClient, LookupServer};
use protocol::mpc::Engine;
use protocol::{Channel, Role};
use serde_json::json;

use super::psi::take_aligned;
use super::train::{SavedModel, load_model};
use super::{load_dataset, os_rng, prepare_ids, write_csv};
use crate::jobs::failure::{InputResult, JobError, Result, input};
use crate::jobs::files::{self, JobFile};
use crate::jobs::record::JobState;
use crate::jobs::runner::PhaseContext;
use crate::jobs::spec::{JobKind, Reveal, ScoreJobParams, ScoreTarget, WatchlistJobParams};

/// Most ids one lookup job may score (the gov refuses a larger announced batch).
pub const MAX_QUERIES: u64 = 1 << 20;
/// Largest keyed table the bank accepts from the gov.
const MAX_TABLE: usize = protocol::psi::MAX_SET_SIZE;
/// Scores shown in the bank's outcome (all are in `scores.csv`).
const SHOWN: usize = 10;

/// Outcome key both nodes record: the entities a score job scored, counted against
/// `policy.score_budget_per_day`.
pub const SCORED_ENTITIES: &str = "scored_entities";

/// The lookup's disclosure: the gov's partial scores of the ids the bank names.
fn lookup_grant(n: usize) -> Grant {
    Grant::new(
        "partial_scores",
        Reveal::PartialScoresToBank.as_str(),
        format!(
            "the gov's partial score of each of {n} ids the bank names (the gov does not learn which), to the bank"
        ),
    )
}

/// Refuses to score `n` more entities with `model` today (UTC) if that would exceed this node's
/// `policy.score_budget_per_day`, counting the succeeded score, watchlist and checkup jobs of the
/// model in its job store and the queries of its open scoring sessions.
pub(crate) fn check_budget(ctx: &PhaseContext<'_>, model: &str, n: u64) -> Result<()> {
    let budget = ctx.config.policy.score_budget_per_day;
    let day = crate::jobs::record::now_ms() / 86_400_000;
    let jobs_dir = ctx.config.node.data_dir.join("jobs");
    let used = used_on_day(ctx.store, &jobs_dir, model, day)? + ctx.sessions.used_on_day(model, day);
    if used + n > budget {
        return Err(JobError::Policy {
            rule: "policy.score_budget_per_day",
            error: anyhow!(
                "policy: scoring {n} more entities with model '{model}' would exceed node '{}''s budget of {budget} a day \
             ({used} scored today; policy.score_budget_per_day)",
                ctx.config.node.name
            ),
        });
    }
    Ok(())
}

/// Entities scored with `model` on UTC day `day` (days since the epoch) by the jobs of `store`
/// (job directories under `jobs_dir`): the succeeded score, watchlist and checkup jobs' counts
/// (closed scoring sessions included) and, for a scoring session that ended otherwise (a failure,
/// a node restart), the ids its budget log admitted that day.
pub(crate) fn used_on_day(store: &crate::jobs::store::Store, jobs_dir: &Path, model: &str, day: u64) -> Result<u64> {
    let mut used = 0;
    for r in store.list()? {
        let scores = matches!(r.spec.kind(), JobKind::Score | JobKind::Watchlist | JobKind::Checkup);
        if !scores || r.spec.params.model_id() != Some(model) {
            continue;
        }
        used += match r.state {
            JobState::Succeeded if r.created_ms / 86_400_000 == day => {
                r.outcome.get(SCORED_ENTITIES).and_then(|v| v.as_u64()).unwrap_or(0)
            }
            JobState::Failed | JobState::Cancelled => crate::sessions::logged_on_day(&jobs_dir.join(&r.id), day)?,
            _ => 0,
        };
    }
    Ok(used)
}

pub fn run(ctx: &mut PhaseContext<'_>, ch: &mut Channel, params: &ScoreJobParams) -> Result<()> {
    let saved = scoring_model(ctx)?;
    match params.target.context("params.target is missing")? {
        ScoreTarget::Intersection => score_aligned(ctx, ch, &saved, params),
        ScoreTarget::Ids => score_by_lookup(ctx, ch, &saved, params),
        ScoreTarget::Session => crate::sessions::run(ctx, ch, &saved, params),
    }
}

/// Phase `watchlist` (job kind `watchlist`): over the aligned rows, the gov learns which
/// entities' joint PD under `params.model` is above `params.threshold`
/// ([`models::watchlist`]), the bank their number. The gov writes `<job_dir>/watchlist.csv`
/// (`id`, the flagged ids). Every aligned entity counts against `policy.score_budget_per_day`.
pub fn watchlist(ctx: &mut PhaseContext<'_>, ch: &mut Channel, params: &WatchlistJobParams) -> Result<()> {
    let threshold = params.threshold.context("params.threshold is missing")?;
    let saved = scoring_model(ctx)?;
    let aligned = take_aligned(ctx)?;
    let n = aligned.data.rows();
    check_budget(ctx, &saved.job_id, n as u64)?;
    let x = model_inputs(ctx, saved.artifact.block(ctx.role), &aligned.data)?;
    ctx.progress(0.1, &format!("comparing the PD of {n} common entities with {threshold}"));
    let flags = {
        let fp = FixedPoint::new(saved.artifact.params.frac_bits);
        let mut engine = Engine::with_correlations(ch, fp, params.correlations(), &mut os_rng())?;
        secure_watchlist(&mut engine, &saved.artifact, &x, threshold)?
    };
    ctx.outcome.insert("threshold".into(), threshold.into());
    ctx.outcome.insert("scored".into(), n.into());
    ctx.outcome.insert(SCORED_ENTITIES.into(), n.into());
    let flagged = match flags {
        Flags::Gov(flags) => {
            let listed: Vec<&String> =
                aligned.data.ids.iter().zip(&flags).filter(|(_, f)| **f).map(|(id, _)| id).collect();
            let path = ctx.job_dir.join("watchlist.csv");
            write_csv(ctx, path.clone(), &["id"], listed.iter().map(|id| [id.as_str()]))?;
            ctx.outcome.insert("watchlist_file".into(), path.display().to_string().into());
            listed.len()
        }
        Flags::Bank(count) => count,
    };
    ctx.outcome.insert("flagged".into(), flagged.into());
    ctx.progress(1.0, &format!("{flagged} of {n} entities above PD {threshold}"));
    Ok(())
}

/// The model `params.model` names, approved for scoring, whose columns of this node the job
/// uses; recorded in the outcome.
pub(crate) fn scoring_model(ctx: &mut PhaseContext<'_>) -> Result<SavedModel> {
    let model_id = ctx.spec.params.model_id().unwrap_or_default().to_string();
    let saved = load_model(ctx.config, &model_id).input()?;
    if !saved.for_scoring {
        return Err(JobError::Policy {
            rule: "params.for_scoring",
            error: anyhow!(
                "policy: model '{model_id}' was not approved for scoring: its train job did not set \
                 params.for_scoring = true (both nodes approve scoring when they accept the train job)"
            ),
        });
    }
    let own = saved.artifact.block(ctx.role).input_columns();
    let side = ctx.spec.side(ctx.role);
    if side.columns != own {
        return Err(input(anyhow!(
            "{}.columns must be the model's {} columns [{}] (model '{model_id}')",
            ctx.role,
            ctx.role,
            own.join(", ")
        )));
    }
    ctx.outcome.insert("model".into(), model_id.into());
    Ok(saved)
}

fn score_aligned(
    ctx: &mut PhaseContext<'_>,
    ch: &mut Channel,
    saved: &SavedModel,
    params: &ScoreJobParams,
) -> Result<()> {
    let aligned = take_aligned(ctx)?;
    let art = &saved.artifact;
    check_budget(ctx, &saved.job_id, aligned.data.rows() as u64)?;
    let x = model_inputs(ctx, art.block(ctx.role), &aligned.data)?;
    ctx.progress(0.1, &format!("scoring {} common entities", aligned.data.rows()));
    let scores = {
        let fp = FixedPoint::new(art.params.frac_bits);
        let mut engine = Engine::with_correlations(ch, fp, params.correlations(), &mut os_rng())?;
        secure_score(&mut engine, art, &x, params.score_output())?
    };
    let n = aligned.data.rows();
    ctx.outcome.insert("scored".into(), n.into());
    ctx.outcome.insert(SCORED_ENTITIES.into(), n.into());
    if let Some(scores) = scores {
        let path = ctx.job_dir.join("scores.csv");
        let rows = aligned.data.ids.iter().zip(&scores).map(|(id, s)| {
            let (p, pts) = score_fields(s);
            [id.clone(), p, pts, s.grade.clone()]
        });
        write_csv(ctx, path.clone(), &["id", "probability", "points", "grade"], rows)?;
        let shown: Vec<_> = aligned
            .data
            .ids
            .iter()
            .zip(&scores)
            .take(SHOWN)
            .map(|(id, s)| score_json(id, None, "ok", Some(s)))
            .collect();
        ctx.outcome.insert("first_scores".into(), shown.into());
        ctx.outcome.insert("grades".into(), grade_counts(scores.iter().map(|s| s.grade.as_str())));
        ctx.outcome.insert("scores_file".into(), path.display().to_string().into());
        record_stability(ctx, art, &scores)?;
    }
    ctx.progress(1.0, &format!("{n} entities scored"));
    Ok(())
}

/// Outcome `stability` (bank only: the gov learns no score, and nothing is opened for this):
/// PSI of the scored rows' grades, and with opened logits of their training score deciles,
/// against the training population kept in the model ([`reference_bins`]). Left out when the
/// model keeps no training distribution.
fn record_stability(ctx: &mut PhaseContext<'_>, art: &ModelArtifact, scores: &[Score]) -> Result<()> {
    let Some(reference) = reference_bins(art) else { return Ok(()) };
    let cuts = FixedScorecard::new(&art.scorecard, FixedPoint::new(art.params.frac_bits))
        .map_err(anyhow::Error::msg)?
        .grade_cuts();
    let grades: Option<Vec<usize>> = scores.iter().map(|s| grade_index(&cuts, &s.grade)).collect();
    let logits: Option<Vec<f64>> = scores.iter().map(|s| s.logit).collect();
    let tables: Vec<Stability> = [
        grades.and_then(|g| grade_stability(reference, &cuts, &g)),
        logits.and_then(|z| decile_stability(reference, &z)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !tables.is_empty() {
        ctx.outcome.insert("stability".into(), serde_json::to_value(&tables)?);
    }
    Ok(())
}

/// The training population's score distribution a model keeps: the binned test counts the
/// train job opened under rule `metrics` (absent when its metrics came from opened scores).
pub fn reference_bins(art: &ModelArtifact) -> Option<&ScoreBins> {
    art.metrics.as_ref().and_then(|m| m.bins.as_ref())
}

/// One row of the bank's queries file.
struct Query {
    raw: String,
    id: String,
    consent: String,
}

/// Reads `id,consent_ref` rows of the queries file (with [`models::csv_file`]: BOM, CRLF and
/// blank lines are fine); errors name the file and line.
fn read_queries(file: &JobFile, kind: protocol::ids::IdKind) -> anyhow::Result<Vec<Query>> {
    let name = file.path.display().to_string();
    let csv = models::csv_file::read(&name, &file.bytes, true).map_err(|e| match e {
        models::dataset::DataError::Empty { .. } => {
            anyhow!("{name}: the file is empty; it needs the header `id,consent_ref` and one row per id to score")
        }
        e => e.into(),
    })?;
    if csv.header != ["id", "consent_ref"] {
        bail!("{name} line 1: the header must be `id,consent_ref` (found `{}`)", csv.header.join(","));
    }
    let mut queries = Vec::new();
    for row in &csv.rows {
        let (line, raw, consent) = (row.line, &row.fields[0], &row.fields[1]);
        if consent.is_empty() {
            bail!(
                "{name} line {line}: consent_ref is empty: every scored id needs the reference of the consent that allows it"
            );
        }
        let id =
            protocol::ids::normalize(kind, raw).map_err(|why| anyhow::anyhow!("{name} line {line}: the id {why}"))?;
        queries.push(Query { raw: raw.to_string(), id, consent: consent.to_string() });
    }
    if queries.is_empty() || queries.len() as u64 > MAX_QUERIES {
        bail!("{name}: has {} ids; a lookup job scores 1 to {MAX_QUERIES}", queries.len());
    }
    Ok(queries)
}

/// This node's weights of `saved` for scoring by private lookup, after checking with the peer
/// (message `score.model`) that both hold the same model. A model kept as shares is refused.
pub(crate) fn lookup_weights<'m>(ctx: &PhaseContext<'_>, ch: &mut Channel, saved: &'m SavedModel) -> Result<&'m [f64]> {
    let art = &saved.artifact;
    if art.reveal == ModelReveal::None {
        return Err(input(anyhow!(
            "model '{}' was kept as secret shares (model_shared): scoring named ids needs each node's own weights; \
             train with reveal \"model_to_owners\" (or \"model_to_both\"), or score with target = \"intersection\"",
            saved.job_id
        )));
    }
    let weights = art.block(ctx.role).weights.as_deref().context("the model file lacks this node's weights")?;
    agree_on_model(ch, saved)?;
    Ok(weights)
}

fn score_by_lookup(
    ctx: &mut PhaseContext<'_>,
    ch: &mut Channel,
    saved: &SavedModel,
    params: &ScoreJobParams,
) -> Result<()> {
    let art = &saved.artifact;
    let own = art.block(ctx.role);
    let weights = lookup_weights(ctx, ch, saved)?;
    let fp = FixedPoint::new(art.params.frac_bits);
    let queries = match (ctx.role, &params.queries_file) {
        (Role::Bank, Some(name)) => {
            let file = files::read(&ctx.config.node.data_dir, "params.queries_file", name)?;
            Some(read_queries(&file, ctx.dataset.id_kind).context("params.queries_file").input()?)
        }
        _ => None,
    };

    let data = load_dataset(ctx, &own.input_columns(), None)?;
    let prepared = prepare_ids(ctx, &data, ctx.spec.common.skip_invalid_ids())?;
    let x = model_inputs(ctx, own, &data)?;
    let card = FixedScorecard::new(&art.scorecard, fp).map_err(|e| anyhow::anyhow!("model '{}': {e}", saved.job_id))?;
    let cols = own.features.len();
    // Calibrated partial logits: a·(x·w) at each node; the bank adds a·bias + b.
    let cal = art.calibration;
    let partial = |r: usize| cal.a * x[r * cols..(r + 1) * cols].iter().zip(weights).map(|(a, b)| a * b).sum::<f64>();

    let n = match ctx.role {
        Role::Gov => {
            ctx.progress(0.1, &format!("serving partial scores of {} ids", prepared.ids.len()));
            let payloads: Vec<u64> = prepared.rows.iter().map(|&r| fp.encode(partial(r))).collect();
            let server = LookupServer::new(&mut os_rng());
            server.send_table(ch, ctx.job_id, &prepared.ids, &payloads)?;
            let announced: u64 = ch.recv("score.queries")?;
            if announced == 0 || announced > MAX_QUERIES {
                return Err(protocol::Error::from(protocol::PeerError::BadCount {
                    what: "'score.queries'".into(),
                    got: announced,
                    allowed: format!("1 to {MAX_QUERIES} queries"),
                })
                .into());
            }
            check_budget(ctx, &saved.job_id, announced)?;
            let answered = server.answer(ch, &lookup_grant(announced as usize), announced as usize)?;
            if answered as u64 != announced {
                return Err(protocol::Error::from(protocol::PeerError::WrongLength {
                    what: "'lookup.query' (announced in 'score.queries')".into(),
                    unit: "queries",
                    expected: announced,
                    got: answered as u64,
                })
                .into());
            }
            ctx.outcome.insert("queries".into(), answered.into());
            ctx.outcome.insert(SCORED_ENTITIES.into(), answered.into());
            answered
        }
        Role::Bank => {
            let queries = queries.context("a lookup job needs params.queries_file at the bank").input()?;
            // Only ids of the bank's own dataset are looked up: the bank may not learn the gov's
            // partial score of an entity it does not hold.
            let bank_row: HashMap<&str, usize> =
                prepared.ids.iter().map(String::as_str).zip(prepared.rows.iter().copied()).collect();
            let held: Vec<&Query> = queries.iter().filter(|q| bank_row.contains_key(q.id.as_str())).collect();
            if held.is_empty() {
                crate::job_bail!(
                    "none of the {} ids of params.queries_file is in the bank's dataset '{}': only the bank's own \
                     customers may be looked up",
                    queries.len(),
                    ctx.dataset_name
                );
            }
            check_budget(ctx, &saved.job_id, held.len() as u64)?;
            let client = LookupClient::receive_table(ch, MAX_TABLE)?;
            ch.send("score.queries", &(held.len() as u64))?;
            ctx.progress(0.5, &format!("looking up {} ids", held.len()));
            let ids: Vec<String> = held.iter().map(|q| q.id.clone()).collect();
            let gov_parts = client.query(ch, &lookup_grant(held.len()), ctx.job_id, &ids, &mut os_rng())?;
            let bias = art.bias.context("the bank's model file lacks the bias")?;
            let gov_part: HashMap<&str, Option<u64>> =
                held.iter().map(|q| q.id.as_str()).zip(gov_parts.iter().copied()).collect();
            let results: Vec<(&Query, &str, Option<Score>)> = queries
                .iter()
                .map(|q| match (bank_row.get(q.id.as_str()), gov_part.get(q.id.as_str())) {
                    (None, _) => (q, "not in the bank's dataset", None),
                    (Some(&r), Some(Some(zg))) => (
                        q,
                        "ok",
                        Some(card.score(
                            fp.encode(fp.decode(*zg) + partial(r) + cal.a * bias + cal.b),
                            ScoreOutput::Probability,
                        )),
                    ),
                    (Some(_), _) => (q, "not found at gov", None),
                })
                .collect();
            write_lookup_results(ctx, &results)?;
            let scored: Vec<Score> = results.iter().filter_map(|r| r.2.clone()).collect();
            record_stability(ctx, art, &scored)?;
            ctx.outcome.insert(SCORED_ENTITIES.into(), held.len().into());
            held.len()
        }
    };
    ctx.progress(1.0, &format!("{n} ids scored"));
    Ok(())
}

/// Both nodes must hold the same model: each sends a digest of its public parts (`score.model`)
/// and refuses the job on a mismatch.
pub(crate) fn agree_on_model(ch: &mut Channel, saved: &SavedModel) -> Result<()> {
    let art = &saved.artifact;
    let digest = *blake3::hash(&serde_json::to_vec(&(
        &saved.job_id,
        art.reveal,
        &art.params,
        &art.gov.features,
        &art.bank.features,
        &art.scorecard,
        &art.calibration,
    ))?)
    .as_bytes();
    ch.send("score.model", &digest)?;
    let theirs: [u8; 32] = ch.recv("score.model")?;
    if theirs != digest {
        return Err(input(anyhow!(
            "the peer's model '{}' differs from ours (parameters, columns or scorecard): both must score with the same train job",
            saved.job_id
        )));
    }
    Ok(())
}

fn write_lookup_results(ctx: &mut PhaseContext<'_>, results: &[(&Query, &str, Option<Score>)]) -> Result<()> {
    let path = ctx.job_dir.join("scores.csv");
    let rows = results.iter().map(|(q, status, s)| {
        let (p, pts, g) = s.as_ref().map_or_else(Default::default, |s| {
            let (p, pts) = score_fields(s);
            (p, pts, s.grade.clone())
        });
        [q.raw.clone(), q.consent.clone(), status.to_string(), p, pts, g]
    });
    write_csv(ctx, path.clone(), &["id", "consent_ref", "status", "probability", "points", "grade"], rows)?;
    let count = |st: &str| results.iter().filter(|r| r.1 == st).count();
    ctx.outcome.insert("queries".into(), results.len().into());
    ctx.outcome.insert("scored".into(), count("ok").into());
    ctx.outcome.insert("not_found_at_gov".into(), count("not found at gov").into());
    ctx.outcome.insert("not_in_bank_dataset".into(), count("not in the bank's dataset").into());
    ctx.outcome.insert("consent_refs".into(), results.iter().map(|r| r.0.consent.clone()).collect::<Vec<_>>().into());
    let shown: Vec<_> =
        results.iter().take(SHOWN).map(|(q, st, s)| score_json(&q.raw, Some(&q.consent), st, s.as_ref())).collect();
    ctx.outcome.insert("first_scores".into(), shown.into());
    ctx.outcome
        .insert("grades".into(), grade_counts(results.iter().filter_map(|r| r.2.as_ref().map(|s| s.grade.as_str()))));
    ctx.outcome.insert("scores_file".into(), path.display().to_string().into());
    Ok(())
}

/// The model inputs of this node's raw columns in `data` ([`BlockModel::transform`]): their WOE
/// values (WOE scorecards), or the raw-feature preparation and standardisation, values outside a
/// column's training range clipped to it (outcome `values_clipped`), missing cells filled
/// (outcome `missing_values_filled`).
pub(crate) fn model_inputs(ctx: &mut PhaseContext<'_>, block: &BlockModel, data: &Dataset) -> Result<Vec<f64>> {
    let out = block.transform(data)?.context("the model file lacks this node's standardisation or WOE")?;
    ctx.outcome.insert("values_clipped".into(), out.clipped_total().into());
    ctx.outcome.insert("missing_values_filled".into(), out.imputed.into());
    Ok(out.x)
}

/// Probability and points as CSV fields (empty where the score cap withheld them).
fn score_fields(s: &Score) -> (String, String) {
    (s.probability.map(|p| p.to_string()).unwrap_or_default(), s.points.map(|p| p.to_string()).unwrap_or_default())
}

fn score_json(id: &str, consent: Option<&str>, status: &str, s: Option<&Score>) -> serde_json::Value {
    let mut v = json!({ "id": id, "status": status });
    if let Some(c) = consent {
        v["consent_ref"] = c.into();
    }
    if let Some(s) = s {
        v["probability"] = s.probability.into();
        v["points"] = s.points.into();
        v["grade"] = s.grade.clone().into();
    }
    v
}

fn grade_counts<'a>(grades: impl Iterator<Item = &'a str>) -> serde_json::Value {
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    grades.for_each(|g| *counts.entry(g.to_string()).or_default() += 1);
    serde_json::to_value(counts).expect("counts serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::record::JobRecord;
    use crate::jobs::spec::JobSpec;
    use crate::jobs::store::Store;
    use crate::sessions::log_scored;

    /// A session that a restart ended (marked failed at start-up) still counts the ids its
    /// budget log admitted, per day; a succeeded job counts its outcome.
    #[test]
    fn an_interrupted_session_counts_against_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let jobs_dir = dir.path().join("jobs");
        let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/demo-score-session.toml");
        let spec = JobSpec::load(&spec_path).unwrap();
        let model = "TRAIN_JOB_ID";
        let day = crate::jobs::record::now_ms() / 86_400_000;

        let mut session = JobRecord::new("1-session", spec.clone(), "bank", "gov", &["score"]);
        session.state = JobState::Running;
        store.insert(&session).unwrap();
        std::fs::create_dir_all(jobs_dir.join(&session.id)).unwrap();
        for (d, n) in [(day - 1, 7), (day, 2), (day, 3)] {
            log_scored(&jobs_dir.join(&session.id), d, n).unwrap();
        }
        let mut closed = JobRecord::new("2-closed", spec, "bank", "gov", &["score"]);
        closed.state = JobState::Succeeded;
        closed.outcome.insert(SCORED_ENTITIES.into(), 11.into());
        store.insert(&closed).unwrap();

        // Running: the open session counts in memory (Sessions), not here.
        assert_eq!(used_on_day(&store, &jobs_dir, model, day).unwrap(), 11);
        store.mark_interrupted().unwrap();
        assert_eq!(used_on_day(&store, &jobs_dir, model, day).unwrap(), 11 + 2 + 3);
        assert_eq!(used_on_day(&store, &jobs_dir, model, day - 1).unwrap(), 7);
        assert_eq!(used_on_day(&store, &jobs_dir, "other-model", day).unwrap(), 0);
    }
}
