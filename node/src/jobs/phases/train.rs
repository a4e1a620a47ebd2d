//! Phase `train`: secure vertical logistic regression ([`models::secure_lr`]) on the rows
//! aligned by the `psi` phase.
//!
//! 1. Both nodes put the aligned rows in an order that depends only on the entity ids and
//!    `seed` ([`row_order`]), not on the order PSI produced, so the mini-batch plan (and every
//!    sum over rows) is the same in every run of the job. Train/test split, public and agreed:
//!    `params.test_ids_file` (each node reads that file in its own `node.data_dir`, see
//!    [`crate::jobs::files`], so both operators must hold the same list of ids there), or each
//!    entity is a test entity when the keyed hash of its normalised id under `split_seed`
//!    (default 0) falls below `test_fraction` (default 0.2; [`is_test_id`]): the same entities are
//!    held out in every run. Both nodes then swap a BLAKE3 digest of the sorted test positions
//!    (`train.split`) and refuse on a mismatch.
//! 2. `params.model = "woe_scorecard"` (default): each node bins its own columns on the training
//!    rows (missing values and each category in their own bins) and trains on their WOE values
//!    ([`secure_train_woe`]; the gov's bin event counts come from the bank's shared label under
//!    `woe_to_owner`; binning parameters `bins`, `binning`, `min_bin_share`, `monotonic`,
//!    `min_iv`; IV selection keeps at least `policy.min_model_columns` of this node's columns);
//!    the outcome's `scorecard_table` lists this node's bins, WOE, IV and points per attribute.
//!    `"raw_lr"`: each node prepares and standardises its own columns on the training rows
//!    (plaintext, local; [`models::standardize`]: winsorising at training percentiles, missing
//!    cells filled and flagged, one-hot categories, constant columns dropped with a warning in
//!    the outcome), checks that its side still uses `policy.min_model_columns` dataset columns,
//!    and [`secure_train`] runs on them.
//! 3. Training with an OS-seeded engine; parameters from the job (`epochs`, `batch_size`,
//!    `learning_rate`, `l2_c`, `sigmoid`, `frac_bits`, `seed`, `scorecard`), model reveal from
//!    the job (`model_to_both` / `model_to_owners` / `model_shared`), then the calibration on
//!    binned training logits (rule `metrics`). The outcome has `calibration`, `test_mean_pd` and
//!    `test_default_rate`, and `warnings` (divergence, chance-level AUC), which `tandem job
//!    watch` prints.
//! 4. Each node writes its model artifact ([`SavedModel`]) to `<data_dir>/models/<job id>.json`
//!    (never overwritten) and `<job_dir>/model.json`. Both learn the test AUC/KS (reveal
//!    `metrics`). With `scores_to_bank` the bank learns the test rows' scores and keeps their ROC
//!    curve and score histogram; without it both learn only binned counts of the test logits and
//!    keep the ROC curve and histogram of those bins. Test values outside a column's training
//!    range are clipped to it (outcome `test_values_clipped`; winsorised training values:
//!    `train_values_winsorized`; filled missing cells: `missing_values_filled`). Outcome
//!    `evaluation` ([`models::evaluation`]: Gini, Brier, calibration and gains by decile, bad rate
//!    per grade) is computed locally from the opened bins (both nodes), or from the bank's opened
//!    scores (the bank only); nothing more is opened for it.
//!
//! What each party learns is stated in [`models::secure_lr`]; nothing else is exchanged here
//! but the split digest.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use models::binning::BinningParams;
use models::capped::FixedScorecard;
use models::evaluation::{Evaluation, GradeCuts, grade_index, score_logit};
use models::metrics::{Metrics, ScoreBins};
use models::scorecard::Scorecard;
use models::secure_lr::{ModelArtifact, PartyData, Score, TrainJob, binned_mean_pd, secure_train};
use models::standardize::Standardizer;
use models::woe_lr::{WoeParty, scorecard_table, secure_train_woe};
use protocol::Channel;
use protocol::fixed::FixedPoint;
use protocol::mpc::Engine;
use serde::{Deserialize, Serialize};

use super::os_rng;
use super::psi::take_aligned;
use crate::audit::ScoreHist;
use crate::config::Config;
use crate::jobs::failure::{InputResult, JobError, Result, input};
use crate::jobs::files;
use crate::jobs::runner::PhaseContext;
use crate::jobs::spec::{Reveal, TrainJobParams, TrainModel};

/// A node's stored model: its [`ModelArtifact`] and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    /// The train job that produced it.
    pub job_id: String,
    /// Dataset names of the train job (as each node configured them).
    pub gov_dataset: String,
    pub bank_dataset: String,
    /// Both nodes approved the model for later score jobs (`params.for_scoring` of the train job).
    #[serde(default)]
    pub for_scoring: bool,
    pub artifact: ModelArtifact,
}

/// `<data_dir>/models/<id>.json`.
pub fn model_path(config: &Config, id: &str) -> PathBuf {
    config.node.data_dir.join("models").join(format!("{id}.json"))
}

/// Loads this node's model of train job `id`.
pub fn load_model(config: &Config, id: &str) -> anyhow::Result<SavedModel> {
    let path = model_path(config, id);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "no model '{id}' on node '{}': {} is missing (params.model must name a train job both nodes ran)",
            config.node.name,
            path.display()
        )
    })?;
    let saved: SavedModel =
        serde_json::from_slice(&text).with_context(|| format!("{}: not a model file", path.display()))?;
    if saved.job_id != id {
        bail!("{}: holds the model of job '{}', not '{id}'", path.display(), saved.job_id);
    }
    if saved.artifact.role != config.node.role {
        bail!(
            "{}: the model belongs to the {} node, not this {} node",
            path.display(),
            saved.artifact.role,
            config.node.role
        );
    }
    Ok(saved)
}

/// Keyed hash of a normalised entity id under a key derived from `seed` for `purpose`.
fn id_hash(purpose: &str, seed: u64, id: &str) -> [u8; 32] {
    let key = blake3::derive_key(purpose, &seed.to_le_bytes());
    *blake3::keyed_hash(&key, id.as_bytes()).as_bytes()
}

/// Whether the entity with normalised id `id` is held out for testing: the first 8 bytes (LE) of
/// `BLAKE3-keyed(derive_key("tandem train split v1", split_seed LE), id)`, read as a fraction of
/// 2^64, are below `fraction`. A function of the id and the seed only: every run of a job holds
/// out the same entities, about `fraction` of them.
pub fn is_test_id(id: &str, fraction: f64, split_seed: u64) -> bool {
    let h = id_hash("tandem train split v1", split_seed, id);
    let x = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
    (x as f64) < fraction * 2f64.powi(64)
}

/// The aligned rows ordered by `BLAKE3-keyed(derive_key("tandem train row order v1", seed LE),
/// id)`: an order both nodes derive from the ids they share, the same whatever order PSI gave.
pub fn row_order(ids: &[String], seed: u64) -> Vec<usize> {
    let keys: Vec<[u8; 32]> = ids.iter().map(|id| id_hash("tandem train row order v1", seed, id)).collect();
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]).then_with(|| ids[a].cmp(&ids[b])));
    order
}

/// The ids listed in `file` (see [`parse_id_list`]); for `tandem bench lr --test-ids`.
pub fn read_id_list(file: &Path, kind: protocol::ids::IdKind) -> anyhow::Result<HashSet<String>> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read the id list {}", file.display()))?;
    parse_id_list(&file.display().to_string(), &bytes, kind)
}

/// The ids in `bytes`, the text of file `source` (read with [`models::csv_file`]: BOM, CRLF and
/// blank lines are fine): one per line; an optional header `id` and repeats are skipped;
/// normalised like a dataset's of `kind`. An invalid id is an error naming file and line, and so
/// is a list without ids.
pub fn parse_id_list(source: &str, bytes: &[u8], kind: protocol::ids::IdKind) -> anyhow::Result<HashSet<String>> {
    let file = models::csv_file::read(source, bytes, false).map_err(|e| match e {
        models::dataset::DataError::Empty { .. } => {
            anyhow::anyhow!("{source}: the file is empty (no ids); list the test entities' ids, one per line")
        }
        e => e.into(),
    })?;
    let mut ids = HashSet::new();
    for (i, row) in file.rows.iter().enumerate() {
        let line = row.line;
        let [raw] = row.fields.as_slice() else {
            bail!("{source} line {line}: {} fields; the list holds one id per line", row.fields.len());
        };
        if i == 0 && raw.eq_ignore_ascii_case("id") {
            continue;
        }
        let id =
            protocol::ids::normalize(kind, raw).map_err(|why| anyhow::anyhow!("{source} line {line}: the id {why}"))?;
        ids.insert(id);
    }
    if ids.is_empty() {
        bail!("{source}: the file is empty (no ids); list the test entities' ids, one per line");
    }
    Ok(ids)
}

/// After constant columns were dropped, this side's model must still use at least
/// `policy.min_model_columns` of its dataset's columns (counted as raw columns: the one-hot
/// columns of a category count once).
fn check_model_columns(ctx: &PhaseContext<'_>, st: &Standardizer) -> Result<()> {
    let (used, least) = (st.inputs_used(), ctx.config.policy.min_model_columns);
    if used < least {
        return Err(JobError::Policy {
            rule: "policy.min_model_columns",
            error: anyhow::anyhow!(
                "policy: after dropping the columns that are constant on the training rows, the {} side of the model \
                 uses {used} of its dataset's columns; node '{}' requires at least {least} (policy.min_model_columns); \
                 the outcome's warnings name the dropped columns",
                ctx.role,
                ctx.config.node.name
            ),
        });
    }
    Ok(())
}

#[derive(Serialize, Deserialize, PartialEq)]
struct SplitDigest {
    n_test: u64,
    digest: [u8; 32],
}

pub fn run(ctx: &mut PhaseContext<'_>, ch: &mut Channel, params: &TrainJobParams) -> Result<()> {
    let train_params = params.train_params();
    let aligned = take_aligned(ctx)?;
    let order = row_order(&aligned.ids, train_params.seed);
    let data = &aligned.data.select_rows(&order);
    let ids: Vec<&str> = order.iter().map(|&r| aligned.ids[r].as_str()).collect();
    let n = data.rows();
    let test_rows: Vec<usize> = match &params.test_ids_file {
        Some(f) => {
            let file = files::read(&ctx.config.node.data_dir, "params.test_ids_file", f)?;
            let wanted = parse_id_list(&file.path.display().to_string(), &file.bytes, ctx.dataset.id_kind)
                .context("params.test_ids_file")
                .input()?;
            let rows: Vec<usize> = (0..n).filter(|&r| wanted.contains(ids[r])).collect();
            ctx.outcome.insert("test_ids_not_in_intersection".into(), (wanted.len() - rows.len()).into());
            rows
        }
        None => {
            let (fraction, seed) = (params.test_fraction(), params.split_seed.unwrap_or(0));
            (0..n).filter(|&r| is_test_id(ids[r], fraction, seed)).collect()
        }
    };
    let bytes: Vec<u8> = test_rows.iter().flat_map(|&r| (r as u64).to_le_bytes()).collect();
    let mine = SplitDigest { n_test: test_rows.len() as u64, digest: *blake3::hash(&bytes).as_bytes() };
    ch.send("train.split", &mine)?;
    let theirs: SplitDigest = ch.recv("train.split")?;
    if theirs != mine {
        return Err(input(anyhow::anyhow!(
            "the train/test split differs between the nodes ({} test rows here, {} at the peer): with params.test_ids_file \
             both operators must hold the same list of ids at that path",
            mine.n_test,
            theirs.n_test
        )));
    }
    let mut is_test = vec![false; n];
    test_rows.iter().for_each(|&r| is_test[r] = true);
    let train_rows: Vec<usize> = (0..n).filter(|&r| !is_test[r]).collect();

    // Raw-feature models: this node's preparation, fitted on the training rows, before any protocol step.
    let raw = match params.model() {
        TrainModel::RawLr => {
            let (standardizer, warnings) = Standardizer::fit(data, &train_rows, &params.prep_params())?;
            check_model_columns(ctx, &standardizer)?;
            let prepared = standardizer.apply(data)?;
            ctx.outcome.insert("train_values_winsorized".into(), prepared.clipped_on(&train_rows).into());
            ctx.outcome.insert("test_values_clipped".into(), prepared.clipped_on(&test_rows).into());
            ctx.outcome.insert("missing_values_filled".into(), prepared.imputed.into());
            super::add_warnings(ctx, warnings);
            Some((standardizer, prepared.x))
        }
        TrainModel::WoeScorecard => None,
    };
    let model_reveal = ctx.spec.model_reveal().input()?;
    let scorecard = params.scorecard();
    ctx.progress(0.05, &format!("training on {} rows, testing on {}", train_rows.len(), test_rows.len()));
    let out = {
        let fp = FixedPoint::new(train_params.frac_bits);
        let mut engine = Engine::with_correlations(ch, fp, params.correlations(), &mut os_rng())?;
        let job = TrainJob {
            train_rows: &train_rows,
            test_rows: &test_rows,
            params: &train_params,
            reveal: model_reveal,
            scorecard: &scorecard,
            test_output: ctx.spec.reveal.contains(&Reveal::ScoresToBank).then_some(params.score_output()),
        };
        let out = match &raw {
            None => {
                let party =
                    WoeParty { x: &data.x, columns: &data.columns, levels: &data.levels, label: data.label.as_deref() };
                let binning =
                    BinningParams { min_columns: ctx.config.policy.min_model_columns, ..params.binning_params() };
                secure_train_woe(&mut engine, &party, &job, &binning)?
            }
            Some((standardizer, x)) => {
                let party = PartyData {
                    x,
                    features: &standardizer.columns,
                    standardizer: Some(standardizer),
                    label: data.label.as_deref(),
                };
                secure_train(&mut engine, &party, &job)?
            }
        };
        let traffic = engine.traffic();
        ctx.outcome.insert("traffic".into(), crate::bench::traffic_json(params.correlations(), &traffic));
        out
    };
    let artifact = out.artifact;
    ctx.outcome.insert("model_kind".into(), serde_json::to_value(params.model())?);
    ctx.outcome
        .insert("calibration".into(), serde_json::json!({ "a": artifact.calibration.a, "b": artifact.calibration.b }));
    if let Some(woe) = &artifact.block(ctx.role).woe {
        let dropped: Vec<&str> = woe.columns.iter().filter(|c| !c.selected).map(|c| c.bins.feature.as_str()).collect();
        ctx.outcome.insert("woe_dropped_columns".into(), dropped.into());
    }
    if artifact.gov.woe.is_some() || artifact.bank.woe.is_some() {
        ctx.outcome.insert("scorecard_table".into(), serde_json::to_value(scorecard_table(&artifact))?);
    }
    // Calibration check on the test rows: the mean PD (binned, or exact from opened logits) and
    // the observed default rate.
    let exact_pd = out.test_scores.as_ref().and_then(|s| {
        let pds: Option<Vec<f64>> = s.iter().map(|s| s.probability).collect();
        pds.filter(|p| !p.is_empty()).map(|p| p.iter().sum::<f64>() / p.len() as f64)
    });
    let binned = artifact.metrics.as_ref().and_then(|m| m.bins.as_ref()).and_then(binned_mean_pd);
    let rate = artifact.metrics.as_ref().map(|m| m.positives as f64 / m.n.max(1) as f64);
    if let (Some(pd), Some(rate)) = (exact_pd.or(binned.map(|b| b.0)), rate) {
        ctx.outcome.insert("test_mean_pd".into(), pd.into());
        ctx.outcome.insert("test_default_rate".into(), rate.into());
    }
    super::add_warnings(ctx, artifact.warnings.iter().cloned());

    ctx.outcome.insert("n_train".into(), artifact.n_train.into());
    ctx.outcome.insert("n_test".into(), artifact.n_test.into());
    if let Some(m) = &artifact.metrics {
        ctx.outcome.insert("test_auc".into(), m.auc.into());
        ctx.outcome.insert("test_ks".into(), m.ks.into());
        ctx.outcome.insert("test_positives".into(), m.positives.into());
    }
    match (artifact.metrics.as_ref().and_then(|m| m.bins.as_ref()), &out.test_scores, &data.label) {
        (Some(bins), _, _) => ctx.set_outcome_plot(bins.roc(), bins_histogram(bins, &scorecard))?,
        (None, Some(scores), Some(y)) if artifact.metrics.is_some() => {
            // Risk: the logit, or minus the points when only points were opened.
            let points: Vec<f64> = scores.iter().map(|s| s.points.unwrap_or_default() as f64).collect();
            let risk: Vec<f64> = scores.iter().zip(&points).map(|(s, p)| s.logit.unwrap_or(-p)).collect();
            let labels: Vec<f64> = test_rows.iter().map(|&r| y[r]).collect();
            ctx.set_outcome_plot(roc_curve(&risk, &labels, 200), points_histogram(&points, &labels, 20))?;
        }
        _ => {}
    }

    let cuts = FixedScorecard::new(&scorecard, FixedPoint::new(train_params.frac_bits))
        .map_err(anyhow::Error::msg)?
        .grade_cuts();
    if let Some(e) = test_evaluation(&artifact, out.test_scores.as_deref(), data.label.as_deref(), &test_rows, &cuts) {
        ctx.outcome.insert("test_gini".into(), e.gini.into());
        ctx.outcome.insert("evaluation".into(), serde_json::to_value(&e)?);
    }

    let saved = SavedModel {
        job_id: ctx.job_id.to_string(),
        gov_dataset: ctx.spec.gov.dataset.clone(),
        bank_dataset: ctx.spec.bank.dataset.clone(),
        for_scoring: params.for_scoring(),
        artifact,
    };
    let json = serde_json::to_vec_pretty(&saved)?;
    let path = model_path(ctx.config, ctx.job_id);
    crate::identity::create_private_dir(path.parent().expect("models dir"))?;
    if path.exists() {
        crate::job_bail!("model file {} exists already; an existing model is never overwritten", path.display());
    }
    // Owner-only files (a model kept as shares is secret material), saved when the job succeeds.
    let job_copy = ctx.job_dir.join("model.json");
    ctx.write_on_success(path.clone(), json.clone());
    ctx.write_on_success(job_copy, json);
    ctx.outcome.insert("model_file".into(), path.display().to_string().into());
    let auc = saved.artifact.metrics.as_ref().map(|m: &Metrics| format!(", test AUC {:.4}", m.auc)).unwrap_or_default();
    ctx.progress(1.0, &format!("model saved{auc}"));
    Ok(())
}

/// The test evaluation this node may see: from the opened binned counts (both nodes), else from
/// the bank's opened test scores (the bank only: the gov learns AUC and KS alone then).
fn test_evaluation(
    artifact: &ModelArtifact,
    scores: Option<&[Score]>,
    labels: Option<&[f64]>,
    test_rows: &[usize],
    cuts: &GradeCuts,
) -> Option<Evaluation> {
    if let Some(bins) = artifact.metrics.as_ref().and_then(|m| m.bins.as_ref()) {
        return Evaluation::from_bins(bins, cuts);
    }
    let (scores, y) = (scores?, labels?);
    let logits: Option<Vec<f64>> = scores.iter().map(|s| score_logit(s, &artifact.scorecard)).collect();
    let grades: Option<Vec<usize>> = scores.iter().map(|s| grade_index(cuts, &s.grade)).collect();
    let labels: Vec<f64> = test_rows.iter().map(|&r| y[r]).collect();
    Evaluation::from_rows(&logits?, &labels, Some(&grades?), cuts)
}

/// ROC curve `[fpr, tpr]` of `scores` (higher = positive) against 0/1 `labels`, from (0,0) to
/// (1,1), thinned to about `max_points` points. Tied scores form one step.
pub fn roc_curve(scores: &[f64], labels: &[f64], max_points: usize) -> Vec<[f64; 2]> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let pos = labels.iter().filter(|&&y| y == 1.0).count().max(1) as f64;
    let neg = (labels.len() as f64 - pos).max(1.0);
    let mut curve = vec![[0.0, 0.0]];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] == 1.0 {
            tp += 1.0
        } else {
            fp += 1.0
        }
        let step_ends = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if step_ends {
            curve.push([fp / neg, tp / pos]);
        }
    }
    let stride = curve.len().div_ceil(max_points.max(2));
    let last = *curve.last().expect("at least the origin");
    let mut thinned: Vec<[f64; 2]> = curve.into_iter().step_by(stride.max(1)).collect();
    if thinned.last() != Some(&last) {
        thinned.push(last);
    }
    thinned
}

/// Histogram of binned test counts in scorecard points, lowest points first: the logit bins in
/// reverse, empty bins at either end left out, the open-ended outer bins one step wide.
pub fn bins_histogram(bins: &ScoreBins, scorecard: &Scorecard) -> ScoreHist {
    let t = &bins.thresholds;
    let k = t.len();
    let step = if k > 1 { t[1] - t[0] } else { 1.0 };
    // Lower logit edge of bin j (its upper edge is that of bin j + 1).
    let lower = |j: usize| {
        if j == 0 {
            t[0] - step
        } else if j > k {
            t[k - 1] + step
        } else {
            t[j - 1]
        }
    };
    let used: Vec<usize> = (0..=k).filter(|&j| bins.positives[j] + bins.negatives[j] > 0).collect();
    let (first, last) = (used.first().copied().unwrap_or(0), used.last().copied().unwrap_or(k));
    let js: Vec<usize> = (first..=last).rev().collect();
    let mut edges = vec![scorecard.points_from_logit(lower(last + 1))];
    edges.extend(js.iter().map(|&j| scorecard.points_from_logit(lower(j))));
    ScoreHist {
        edges,
        good: js.iter().map(|&j| bins.negatives[j]).collect(),
        bad: js.iter().map(|&j| bins.positives[j]).collect(),
    }
}

/// Histogram of scorecard `points` in `bins` equal bins over their range, split by label
/// (good = 0, bad = 1).
pub fn points_histogram(points: &[f64], labels: &[f64], bins: usize) -> ScoreHist {
    let lo = points.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = points.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (lo.min(0.0), lo.max(0.0) + 1.0) };
    let width = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (0..=bins).map(|i| lo + width * i as f64).collect();
    let (mut good, mut bad) = (vec![0u64; bins], vec![0u64; bins]);
    for (&p, &y) in points.iter().zip(labels) {
        let b = (((p - lo) / width) as usize).min(bins - 1);
        if y == 1.0 { bad[b] += 1 } else { good[b] += 1 }
    }
    ScoreHist { edges, good, bad }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test count of `n` entities at `fraction` lies within 5 binomial standard deviations.
    fn plausible(count: usize, n: usize, fraction: f64) -> bool {
        let (mean, sd) = (n as f64 * fraction, (n as f64 * fraction * (1.0 - fraction)).sqrt());
        (count as f64 - mean).abs() <= 5.0 * sd
    }

    #[test]
    fn the_split_and_the_row_order_depend_on_ids_and_seeds_only() {
        let ids: Vec<String> = (0..5000).map(|i| format!("{}", 100_000 + 7 * i)).collect();
        let test: HashSet<&String> = ids.iter().filter(|id| is_test_id(id, 0.3, 7)).collect();
        assert!(plausible(test.len(), ids.len(), 0.3), "{} of {}", test.len(), ids.len());
        // The same entities for the same seed, other ones for another seed; none at fraction 0.
        let mut reversed = ids.clone();
        reversed.reverse();
        assert_eq!(reversed.iter().filter(|id| is_test_id(id, 0.3, 7)).collect::<HashSet<_>>(), test);
        let other: HashSet<&String> = ids.iter().filter(|id| is_test_id(id, 0.3, 8)).collect();
        assert!(plausible(test.intersection(&other).count(), ids.len(), 0.09), "seeds draw independently");
        assert!(ids.iter().all(|id| !is_test_id(id, 0.0, 7)));
        // Recomputed here from the definition: BLAKE3 keyed with the derived key, first 8 bytes LE.
        let key = blake3::derive_key("tandem train split v1", &7u64.to_le_bytes());
        for id in &ids[..100] {
            let h = blake3::keyed_hash(&key, id.as_bytes());
            let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) as f64 / 2f64.powi(64);
            assert_eq!(is_test_id(id, 0.3, 7), x < 0.3, "{id}");
        }

        // The row order is the order of the ids' keyed hashes, whatever order they come in.
        let by_id = |ids: &[String], seed| row_order(ids, seed).into_iter().map(|r| ids[r].clone()).collect::<Vec<_>>();
        let ordered = by_id(&ids, 3);
        assert_eq!(by_id(&reversed, 3), ordered);
        assert_ne!(by_id(&ids, 4), ordered);
        let key = blake3::derive_key("tandem train row order v1", &3u64.to_le_bytes());
        let hashes: Vec<[u8; 32]> =
            ordered.iter().map(|id| *blake3::keyed_hash(&key, id.as_bytes()).as_bytes()).collect();
        assert!(hashes.windows(2).all(|w| w[0] < w[1]));
        let mut sorted = ordered.clone();
        sorted.sort();
        assert_eq!(sorted.len(), ids.len());
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "a permutation");
    }

    #[test]
    fn id_lists_skip_header_blanks_and_repeats_and_name_the_line_of_a_bad_id() {
        let ids = parse_id_list("ids.txt", b"id\n 123 \n\nABC\n123\n", protocol::ids::IdKind::Raw).unwrap();
        assert_eq!(ids, HashSet::from(["123".to_string(), "ABC".to_string()]));

        let err = parse_id_list("ids.txt", b"id\n523205824LGLEW8D52\nnot-a-code\n", protocol::ids::IdKind::Uscc);
        let err = format!("{:#}", err.unwrap_err());
        assert!(err.starts_with("ids.txt line 3: the id "), "{err}");
        for empty in [&b""[..], b"id\n", b"\n\n"] {
            let err = format!("{:#}", parse_id_list("ids.txt", empty, protocol::ids::IdKind::Raw).unwrap_err());
            assert!(err.starts_with("ids.txt: the file is empty"), "{err}");
        }
        let err = format!("{:#}", parse_id_list("ids.txt", b"id\n\xff\n", protocol::ids::IdKind::Raw).unwrap_err());
        assert!(err.contains("ids.txt, line 2") && err.contains("UTF-8"), "{err}");
        // A byte order mark and CRLF line ends (a spreadsheet export) change nothing: the first
        // id is kept, with or without the header.
        for text in [&b"\xEF\xBB\xBFid\r\n007\r\n\r\nABC\r\n"[..], b"\xEF\xBB\xBF007\r\nABC"] {
            let ids = parse_id_list("ids.txt", text, protocol::ids::IdKind::Raw).unwrap();
            assert_eq!(ids, HashSet::from(["007".to_string(), "ABC".to_string()]));
        }
        let err =
            format!("{:#}", parse_id_list("ids.txt", b"id\r\n\r\n1,2\r\n", protocol::ids::IdKind::Raw).unwrap_err());
        assert!(err.starts_with("ids.txt line 3: 2 fields"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let err =
            format!("{:#}", read_id_list(&dir.path().join("missing.txt"), protocol::ids::IdKind::Raw).unwrap_err());
        assert!(err.contains("cannot read the id list") && err.contains("missing.txt"), "{err}");
    }

    #[test]
    fn roc_area_matches_the_auc_and_histogram_counts_every_row() {
        let scores = [0.9, 0.8, 0.8, 0.4, 0.3, 0.2, 0.2, 0.1];
        let labels = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0];
        let roc = roc_curve(&scores, &labels, 100);
        assert_eq!((roc[0], *roc.last().unwrap()), ([0.0, 0.0], [1.0, 1.0]));
        let area: f64 = roc.windows(2).map(|w| (w[1][0] - w[0][0]) * (w[1][1] + w[0][1]) / 2.0).sum();
        assert!((area - models::metrics::auc(&scores, &labels)).abs() < 1e-12, "{area}");
        let h = points_histogram(&scores, &labels, 4);
        assert_eq!(h.edges.len(), 5);
        assert_eq!(h.good.iter().sum::<u64>(), 4);
        assert_eq!(h.bad.iter().sum::<u64>(), 4);
        assert_eq!(h.bad[3], 2, "0.9 and 0.8 (bad) fall in the top bin");
    }

    #[test]
    fn binned_histogram_lists_the_used_bins_in_ascending_points() {
        let bins =
            ScoreBins { thresholds: vec![-1.0, 0.0, 1.0], positives: vec![0, 1, 0, 3], negatives: vec![0, 4, 2, 0] };
        let sc = Scorecard::default();
        let h = bins_histogram(&bins, &sc);
        // Bins 3 (z > 1, one step wide), 2 and 1; bin 0 is empty and left out.
        let want: Vec<f64> = [2.0, 1.0, 0.0, -1.0].iter().map(|&z| sc.points_from_logit(z)).collect();
        assert_eq!(h.edges, want);
        assert_eq!((h.good, h.bad), (vec![0, 2, 4], vec![3, 0, 1]));
    }
}
