//! Secure vertical logistic regression and scoring on the two-party engine (`protocol::mpc`).
//!
//! The gov holds features X_g, the bank features X_b and the label y, for the same aligned rows
//! (the PSI order). Training runs exactly the algorithm of [`crate::reference`] on additive
//! shares: per mini-batch z = X_g·w_g + X_b·w_b + b (engine `matvec`: owner's plaintext matrix ×
//! shared vector), p = σ̃(z) (engine sigmoid approximation), e = p − y (the bank adds its private
//! −y to its share), gradients X_gᵀe, X_bᵀe (engine `matvec_t`) and Σe, and the update
//! w ← w·(1 − lr·λ) − (lr/|B|)·Xᵀe, b ← b − (lr/|B|)·Σe with public constants.
//!
//! What each party learns (semi-honest):
//! - during training: nothing but the public job data (row counts, column counts and names,
//!   train/test row lists, parameters, batch order). Weights, gradients, predictions on training
//!   rows and the label stay secret-shared; no intermediate value is opened.
//! - after training, per [`ModelReveal`]: `Both`: both learn all weights and the bias; `OwnBlock`:
//!   each party learns only its own weight block, the bank also the bias; `None`: nothing, the
//!   model stays shared (each artifact holds this party's shares).
//! - calibration, after the model reveal: both learn the counts of positive and negative training
//!   rows in each of the 130 fixed ⅛-logit bins of the joint logit (rule `metrics`, computed on
//!   shares as the binned test metrics below) and the Platt slope and intercept fitted on them
//!   ([`Calibration`]); nothing per row. Every score, point and grade afterwards derives from the
//!   calibrated logit a·z + b, a probability of default fitted to the training rows (training
//!   with the linear sigmoid gives logits ≈ 4·(p − ½), not log-odds).
//! - test scores, per [`TrainJob::test_output`]: with a cap, the bank learns the capped score of
//!   each test row (grade; grade and integer points; or the logit z, see [`crate::capped`]) and
//!   the gov nothing per row. With `Points` or `Probability` the bank then computes AUC, KS and
//!   the positive count from those scores and sends them to the gov (message `lr-metrics`).
//!   With `Grade` or without a cap, no finer per-row value is opened: both parties learn the
//!   counts of positive and negative test rows in each of 130 fixed logit bins (computed on
//!   shares) and derive binned AUC and KS from them ([`crate::capped`]).
//! - [`secure_score`]: the bank learns the capped score of each scored row, the gov nothing.
//!
//! Both parties must call these functions with the same public arguments; a setup message with a
//! digest of the job checks that before any secret is shared.
//!
//! Cost: with the linear sigmoid the per-batch Gram matrices are computed once and reused every
//! epoch (`Training::run_linear_gram`): the cross block X_gᵀX_b by the engine's `cross_gram`
//! (a homomorphic product of bounded 16- and 20-bit inputs in a ring just wide enough for the
//! exact block), then one (c+1)² matrix–vector product per step, with the owners' plaintext
//! blocks of G in one COT direction and the shared cross blocks in both, in a 46-bit ring
//! ([`GRAM_THETA_BOUND_BITS`]). On synthetic_30k (24k rows, 10 + 13 features, batch 1024,
//! 10 epochs) the cross blocks and label products take about 1.3 MB per batch, 31 MB in all
//! (250–310 MB with the earlier OT products, silent / IKNP correlations), and the steps about
//! 113 kB of corrections each, 27 MB in all (72 MB with all of G shared in a 64-bit ring).
//! Other sigmoids run four batch-size products per step (`run_general`): each party's batch
//! matrices are prepared once (engine `prepare_matrix`: homomorphic form, the owner's encrypted
//! batch kept by the peer for all epochs) and each step's products cost one reply of about 81 KB
//! per ciphertext block instead of `rows·cols·260` B of OT corrections; both parties' products
//! run at once (`matvec_each`: each evaluates the peer's, then decrypts its own).
//! Fixed point: every truncation is the engine's exact one (no failure probability) while each
//! product stays below `protocol::mpc::product_bound` = 2^(62−2f) in magnitude (2^14 at f = 24).
//! The largest products here are the batch gradient sums Xᵀe of the clipped-linear and poly3
//! sigmoids, at most batch_size·[`GRAM_MAX_ABS`]·2, which `TrainParams::validate` keeps in bound
//! through frac_bits; the logits are far below it for any sane model (|z| < 2^14), and the
//! linear sigmoid's G·θ runs in a narrower ring under the public bound
//! [`GRAM_THETA_BOUND_BITS`].

use protocol::disclose::Grant;
use protocol::fixed::FixedPoint;
use protocol::mpc::{CrossGram, Engine, PlainMatrix, PreparedMatrix, Sigmoid};
use protocol::{Error, InputError, PeerError, Result, Role};
use serde::{Deserialize, Serialize};

use crate::binning::WoeTransform;
pub use crate::capped::Score;
use crate::capped::{FixedScorecard, PARTIAL_MAX, open_binned_counts, open_scores};
use crate::dataset::{DataError, Dataset};
use crate::metrics::{Metrics, ScoreBins};
use crate::reference::{BatchPlan, TrainParams};
use crate::scorecard::{ScoreOutput, Scorecard};
use crate::standardize::{Standardized, Standardizer};

/// Every standardised feature value on a training row must satisfy |x| ≤ `GRAM_MAX_ABS`
/// (checked locally before anything is sent): linear-sigmoid training computes the cross block
/// X_gᵀX_b from both parties' features as bounded fixed-point integers, and the other sigmoids'
/// batch gradients must stay within the exact-truncation bound (`TrainParams::validate`).
pub const GRAM_MAX_ABS: f64 = 127.0;
/// Magnitude bits of the cross-block inputs (2^7 > [`GRAM_MAX_ABS`]).
const GRAM_VALUE_BITS: u32 = 7;
/// Fractional bits of the cross-block values of the party with fewer columns (`cross_gram`'s A).
pub const GRAM_CHOICE_FRAC: u32 = 8;
/// Fractional bits of the other party's cross-block values (`cross_gram`'s B). With
/// [`GRAM_CHOICE_FRAC`] and batch size 1024 the product's ring is 10 + 16 + 20 = 46 bits, within
/// the homomorphic product's 49.
pub const GRAM_CORR_FRAC: u32 = 12;
/// Public bound on the linear sigmoid's per-step product: every `|(G·θ)_i| < 2^12` (real),
/// so `Engine::matvec_shared` runs in a ring of `12 + 2f + 2` bits (46 at f = 16) instead of
/// 64. Derivation: `(G·θ)_i` is ¼ of the batch mean of `x̃_i·z` (`z = x̃·θ` a training row's
/// logit), so `|(G·θ)_i| ≤ ¼·GRAM_MAX_ABS·max|z|`: the bound holds while the logits of the
/// batch stay within ±128, where σ̃(z) = ½ + z/4 is already 32 times beyond [0, 1] (sound
/// linear-sigmoid models have |z| of a few units). Up to fixed-point rounding the secure θ is
/// the reference trainer's, so it can fail only where the reference itself diverges. If it
/// fails, a gradient entry may be off by a multiple of 2^14 and θ jumps by `lr`·2^14: with
/// the weights revealed, the training warnings (|w| > [`WEIGHT_WARN`]) and the partial-logit
/// check on the training rows (a "training diverged" error) report it; with
/// [`ModelReveal::None`] only the metrics show it.
pub const GRAM_THETA_BOUND_BITS: u32 = 12;
/// Batches whose Gram cross products run in one `cross_grams` call (bounds the ciphertexts held
/// at once: about 0.4 MB sent and 0.5 MB received per batch of 1024 rows, 10 × 13 columns).
const GRAM_BATCHES_PER_CALL: usize = 32;

/// Policy rules under which this module opens values ([`protocol::disclose`]), besides
/// [`ModelReveal::rule`].
pub const SCORES_TO_BANK: &str = "scores_to_bank";
pub const METRICS: &str = "metrics";

fn metrics_grant(n_test: usize) -> Grant {
    Grant::new(
        "test_metrics",
        METRICS,
        format!("test AUC, KS, row count and positives of {n_test} test rows, to the gov"),
    )
}

/// Largest column count accepted from the peer.
pub const MAX_PEER_COLUMNS: usize = 1 << 16;
/// Longest feature name accepted from the peer.
const MAX_NAME_LEN: usize = 256;

/// Who learns the trained model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelReveal {
    /// Both parties learn every weight and the bias.
    Both,
    /// Each party learns its own block; the bias goes to the bank.
    OwnBlock,
    /// Nobody learns the model; it stays secret-shared.
    None,
}

impl ModelReveal {
    /// The policy rule (`policy.reveals`, a job's `reveal`) that names this mode; the model's
    /// values are opened under it.
    pub const fn rule(self) -> &'static str {
        match self {
            ModelReveal::Both => "model_to_both",
            ModelReveal::OwnBlock => "model_to_owners",
            ModelReveal::None => "model_shared",
        }
    }

    /// Whether `who` learns the weights of `owner`'s block.
    fn learns_block(self, who: Role, owner: Role) -> bool {
        match self {
            ModelReveal::Both => true,
            ModelReveal::OwnBlock => who == owner,
            ModelReveal::None => false,
        }
    }
    /// Whether the owner of each block knows it in plaintext (and the bank the bias).
    fn owners_know(self) -> bool {
        self != ModelReveal::None
    }
}

/// One party's aligned training input.
#[derive(Clone, Copy, Debug)]
pub struct PartyData<'a> {
    /// Standardised features, aligned rows × `features.len()`, row-major.
    pub x: &'a [f64],
    pub features: &'a [String],
    /// This party's fitted standardisation, stored in its artifact.
    pub standardizer: Option<&'a Standardizer>,
    /// 0/1 labels per aligned row: Some at the bank, None at the gov.
    pub label: Option<&'a [f64]>,
}

/// The public job both parties agreed on.
#[derive(Clone, Copy, Debug)]
pub struct TrainJob<'a> {
    pub train_rows: &'a [usize],
    pub test_rows: &'a [usize],
    pub params: &'a TrainParams,
    pub reveal: ModelReveal,
    pub scorecard: &'a Scorecard,
    /// What the bank may learn about each test row (rule `scores_to_bank`); None when the job
    /// does not allow `scores_to_bank`: no per-row test value is opened and the metrics come from
    /// binned counts (rule `metrics`).
    pub test_output: Option<ScoreOutput>,
}

/// One feature block of the model, as this party knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockModel {
    pub features: Vec<String>,
    /// Only the owner's artifact has its standardisation (raw-feature models).
    pub standardizer: Option<Standardizer>,
    /// Only the owner's artifact has its WOE transform (WOE scorecards, [`crate::woe_lr`]):
    /// `features` are then its selected columns, and the model's inputs their WOE values.
    #[serde(default)]
    pub woe: Option<WoeTransform>,
    /// Weights on the model inputs; None where not revealed to this party.
    pub weights: Option<Vec<f64>>,
}

impl BlockModel {
    /// The raw dataset columns a scoring job supplies for this block (before binning or the
    /// raw-feature preparation).
    pub fn input_columns(&self) -> Vec<String> {
        match (&self.woe, &self.standardizer) {
            (Some(woe), _) => woe.input_columns(),
            (None, Some(st)) => st.input_columns(),
            (None, None) => self.features.clone(),
        }
    }

    /// The model inputs of `data` (columns [`BlockModel::input_columns`]): WOE values (WOE
    /// scorecards; categories matched by their text), or the raw-feature preparation and
    /// standardisation with clipping to the training range. Owner only: None without a
    /// standardisation or WOE transform.
    pub fn transform(&self, data: &Dataset) -> std::result::Result<Option<Standardized>, DataError> {
        match (&self.woe, &self.standardizer) {
            (Some(woe), _) => {
                let x = woe.apply_dataset(data);
                Ok(Some(Standardized { x, clipped: vec![0; data.rows()], imputed: 0 }))
            }
            (None, Some(st)) => st.apply(data).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// Centre of each logit bin of ascending, evenly spaced `thresholds` (K + 1 bins; the outer bins:
/// half a step beyond the outer thresholds).
fn bin_centres(t: &[f64]) -> Vec<f64> {
    let k = t.len();
    let half = if k > 1 { (t[1] - t[0]) / 2.0 } else { 0.5 };
    (0..=k)
        .map(|j| {
            if j == 0 {
                t[0] - half
            } else if j == k {
                t[k - 1] + half
            } else {
                t[j - 1] + half
            }
        })
        .collect()
}

/// Mean probability of default σ(centre) over the rows counted in `bins` (each row at its bin's
/// centre) and the observed rate of positives; None without rows.
pub fn binned_mean_pd(bins: &ScoreBins) -> Option<(f64, f64)> {
    let (mut n, mut pos, mut pd) = (0u64, 0u64, 0.0);
    for ((c, &p), &q) in bin_centres(&bins.thresholds).iter().zip(&bins.positives).zip(&bins.negatives) {
        n += p + q;
        pos += p;
        pd += (p + q) as f64 * protocol::mpc::sigmoid::exact(*c);
    }
    (n > 0).then(|| (pd / n as f64, pos as f64 / n as f64))
}

/// Platt calibration of the model's logit z = x·w + b: the probability of default of a row is
/// σ(a·z + b), and its points and grade derive from that calibrated logit. Fitted on the
/// training rows' binned logit counts ([`Calibration::fit`]); the identity is a = 1, b = 0.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

impl Default for Calibration {
    fn default() -> Calibration {
        Calibration { a: 1.0, b: 0.0 }
    }
}

impl Calibration {
    pub fn apply(&self, z: f64) -> f64 {
        self.a * z + self.b
    }

    /// Maximum-likelihood a, b of σ(a·c + b) over counts of positives and negatives per logit
    /// bin, c the bin's centre (the outer bins: half a step beyond the last threshold), by
    /// Newton's method. The identity when the bins hold no positive or no negative.
    pub fn fit(bins: &ScoreBins) -> Calibration {
        if bins.thresholds.len() < 2 || bins.positives.iter().all(|&c| c == 0) || bins.negatives.iter().all(|&c| c == 0)
        {
            return Calibration::default();
        }
        let data: Vec<(f64, f64, f64)> = bin_centres(&bins.thresholds)
            .into_iter()
            .enumerate()
            .filter(|&(j, _)| bins.positives[j] + bins.negatives[j] > 0)
            .map(|(j, c)| (c, bins.positives[j] as f64, bins.negatives[j] as f64))
            .collect();
        let (mut a, mut b) = (1.0, 0.0);
        for _ in 0..100 {
            // Gradient and Hessian of the negative log-likelihood (a tiny ridge keeps it invertible).
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for &(c, pos, neg) in &data {
                let p = protocol::mpc::sigmoid::exact(a * c + b);
                let (g, h) = (p * (pos + neg) - pos, p * (1.0 - p) * (pos + neg));
                ga += g * c;
                gb += g;
                haa += h * c * c;
                hab += h * c;
                hbb += h;
            }
            let det = haa * hbb - hab * hab;
            let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
            a -= da;
            b -= db;
            if !(a.is_finite() && b.is_finite()) {
                return Calibration::default();
            }
            if da.abs() + db.abs() < 1e-12 {
                break;
            }
        }
        Calibration { a, b }
    }
}

/// This party's additive shares of a model that was not revealed (ring elements, fixed point).
/// Secret material: keep it as protected as a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelShares {
    pub gov: Vec<u64>,
    pub bank: Vec<u64>,
    pub bias: u64,
}

/// What one party keeps of a trained model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub role: Role,
    pub reveal: ModelReveal,
    /// Includes the sigmoid approximation and fixed-point fractional bits used.
    pub params: TrainParams,
    pub gov: BlockModel,
    pub bank: BlockModel,
    /// None where not revealed to this party.
    pub bias: Option<f64>,
    /// Present iff `reveal` is `None`.
    pub shares: Option<ModelShares>,
    pub scorecard: Scorecard,
    /// Test metrics (both parties); None without test rows or without both classes among them.
    pub metrics: Option<Metrics>,
    pub n_train: usize,
    pub n_test: usize,
    /// Applied to the logit before scoring (identity in artifacts written before).
    #[serde(default)]
    pub calibration: Calibration,
    /// Counts of the training rows by label over the uncalibrated joint logit, in the ⅛-logit
    /// bins of [`crate::capped::bin_thresholds`] (rule `metrics`): what `calibration` was fitted on.
    #[serde(default)]
    pub train_bins: Option<ScoreBins>,
    /// Signs of a failed training (divergence, a model no better than chance); empty when fine.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl ModelArtifact {
    pub fn block(&self, owner: Role) -> &BlockModel {
        match owner {
            Role::Gov => &self.gov,
            Role::Bank => &self.bank,
        }
    }

    pub fn block_mut(&mut self, owner: Role) -> &mut BlockModel {
        match owner {
            Role::Gov => &mut self.gov,
            Role::Bank => &mut self.bank,
        }
    }
}

/// Result of [`secure_train`].
#[derive(Clone, Debug)]
pub struct TrainOutput {
    pub artifact: ModelArtifact,
    /// Scores of the test rows (in `test_rows` order): Some at the bank only.
    pub test_scores: Option<Vec<Score>>,
}

/// Public facts each party announces before training or scoring; both check the peer's.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Setup {
    rows: u64,
    features: Vec<String>,
    /// BLAKE3 over the job both must share (parameters, policy, row lists, scorecard).
    job_digest: [u8; 32],
}

/// This party's data or parameters are unusable for training or scoring; `msg` names the fix.
fn input_err(msg: String) -> Error {
    Error::Input(InputError::Data(msg))
}

fn job_digest<T: Serialize>(job: &T) -> [u8; 32] {
    let json = serde_json::to_vec(job).expect("job descriptions serialise");
    *blake3::hash(&json).as_bytes()
}

/// Exchanges setups and returns the peer's column names after checking that rows and job match.
fn exchange_setup(
    engine: &mut Engine,
    kind: &str,
    rows: usize,
    features: &[String],
    digest: [u8; 32],
) -> Result<Vec<String>> {
    let mine = Setup { rows: rows as u64, features: features.to_vec(), job_digest: digest };
    let ch = engine.channel();
    ch.send(kind, &mine)?;
    let peer: Setup = ch.recv(kind)?;
    if peer.features.len() > MAX_PEER_COLUMNS || peer.features.iter().any(|f| f.len() > MAX_NAME_LEN) {
        return Err(PeerError::BadCount {
            what: format!("'{kind}' columns (names up to {MAX_NAME_LEN} bytes)"),
            got: peer.features.len() as u64,
            allowed: format!("1 to {MAX_PEER_COLUMNS}"),
        }
        .into());
    }
    if peer.features.is_empty() {
        return Err(PeerError::BadCount {
            what: format!("'{kind}' columns"),
            got: 0,
            allowed: format!("1 to {MAX_PEER_COLUMNS}"),
        }
        .into());
    }
    if peer.rows != mine.rows {
        return Err(Error::Mismatch {
            what: "aligned rows",
            detail: format!("the peer has {} and we have {rows}: both must use the same PSI alignment", peer.rows),
        });
    }
    if peer.job_digest != mine.job_digest {
        return Err(Error::Mismatch {
            what: "job definitions",
            detail: format!(
                "{kind}: parameters, model policy, train/test rows or scorecard differ; both nodes must run the same job definition"
            ),
        });
    }
    Ok(peer.features)
}

fn check_rows(name: &str, list: &[usize], rows: usize, used: &mut [bool]) -> Result<()> {
    for &r in list {
        if r >= rows {
            return Err(input_err(format!("{name} row {r} is out of range: there are {rows} aligned rows")));
        }
        if std::mem::replace(&mut used[r], true) {
            return Err(input_err(format!(
                "row {r} appears twice in the train/test row lists; train and test must be disjoint"
            )));
        }
    }
    Ok(())
}

/// The [`GRAM_MAX_ABS`] bound on this party's training rows.
fn check_gram_bound(data: &PartyData, train_rows: &[usize]) -> Result<()> {
    let cols = data.features.len();
    for &r in train_rows {
        for (name, v) in data.features.iter().zip(&data.x[r * cols..(r + 1) * cols]) {
            if v.is_nan() || v.abs() > GRAM_MAX_ABS {
                return Err(input_err(format!(
                    "feature '{name}' is {v} after standardisation on aligned row {r}: secure training needs |x| ≤ {GRAM_MAX_ABS} on training rows; clip or transform the column (e.g. the logarithm of an amount)"
                )));
            }
        }
    }
    Ok(())
}

/// Every value of this party's block on `rows` is finite and within the fixed-point range
/// (|x| < 2^(62 − 2f), so that a product with a weight of magnitude up to 1 fits the ring).
fn check_inputs(features: &[String], x: &[f64], rows: impl Iterator<Item = usize>, fp: FixedPoint) -> Result<()> {
    let cols = features.len();
    let limit = 2f64.powi(62 - 2 * fp.frac_bits as i32);
    for r in rows {
        for (name, v) in features.iter().zip(&x[r * cols..(r + 1) * cols]) {
            if !v.is_finite() || v.abs() >= limit {
                return Err(input_err(format!(
                    "feature '{name}' is {v} after standardisation on aligned row {r}: values must be finite and within ±{limit} \
                     (frac_bits = {}); check the column for overflowing or absurd values",
                    fp.frac_bits
                )));
            }
        }
    }
    Ok(())
}

/// Per-role pair, indexed by `Role::index()`.
type PerRole<T> = [T; 2];
const ROLES: [Role; 2] = [Role::Gov, Role::Bank];

/// Trains a model on shares; see the module docs for what each party learns. `engine` must use
/// `job.params.frac_bits` fractional bits.
pub fn secure_train(engine: &mut Engine, data: &PartyData, job: &TrainJob) -> Result<TrainOutput> {
    let me = engine.role();
    let params = job.params;
    params.validate().map_err(input_err)?;
    if engine.fixed().frac_bits != params.frac_bits {
        return Err(input_err(format!(
            "engine uses {} fractional bits but the job says frac_bits = {}",
            engine.fixed().frac_bits,
            params.frac_bits
        )));
    }
    let cols = data.features.len();
    if cols == 0 || !data.x.len().is_multiple_of(cols) {
        return Err(input_err(format!("feature matrix of {} values does not have {cols} columns", data.x.len())));
    }
    let rows = data.x.len() / cols;
    let labels = match (me, data.label) {
        (Role::Bank, Some(y)) if y.len() == rows && y.iter().all(|&v| v == 0.0 || v == 1.0) => Some(y),
        (Role::Bank, _) => {
            return Err(input_err(format!("the bank needs one 0/1 label per aligned row ({rows} rows)")));
        }
        (Role::Gov, None) => None,
        (Role::Gov, Some(_)) => return Err(input_err("the gov must not pass a label".into())),
    };
    if job.train_rows.is_empty() {
        return Err(input_err("no training rows".into()));
    }
    let mut used = vec![false; rows];
    check_rows("train", job.train_rows, rows, &mut used)?;
    check_rows("test", job.test_rows, rows, &mut used)?;
    let card = FixedScorecard::new(job.scorecard, engine.fixed()).map_err(input_err)?;
    check_inputs(data.features, data.x, job.train_rows.iter().chain(job.test_rows).copied(), engine.fixed())?;
    check_gram_bound(data, job.train_rows)?;

    engine.channel().set_phase("lr-setup");
    let digest = job_digest(&(params, job.reveal, job.train_rows, job.test_rows, job.scorecard, job.test_output));
    let peer_features = exchange_setup(engine, "lr-setup", rows, data.features, digest)?;
    let mut features: PerRole<Vec<String>> = Default::default();
    features[me.index()] = data.features.to_vec();
    features[me.peer().index()] = peer_features;
    let ncols: PerRole<usize> = [features[0].len(), features[1].len()];

    engine.channel().set_phase("lr-train");
    let fp = engine.fixed();
    let own = PlainMatrix::from_f64(rows, cols, data.x, fp);
    let plan = BatchPlan::new(job.train_rows, params.batch_size, params.seed);
    let train = Training { me, ncols, own: &own, x: data.x, labels, plan: &plan, params };
    let (w, bias) =
        if params.sigmoid == Sigmoid::Linear { train.run_linear_gram(engine)? } else { train.run_general(engine)? };

    engine.channel().set_phase("lr-reveal-model");
    let mut blocks: Vec<BlockModel> = Vec::with_capacity(2);
    for owner in ROLES {
        let share = &w[owner.index()];
        let n = features[owner.index()].len();
        let weights = match job.reveal {
            ModelReveal::Both => {
                let grant = Grant::new(
                    &format!("model_{owner}_weights"),
                    job.reveal.rule(),
                    format!("{n} weights of the {owner}'s features"),
                );
                Some(engine.reveal_both(&grant, share)?)
            }
            ModelReveal::OwnBlock => {
                let grant = Grant::new(
                    &format!("model_{owner}_weights"),
                    job.reveal.rule(),
                    format!("{n} weights of the {owner}'s features, to the {owner}"),
                );
                engine.reveal_to(&grant, owner, share)?
            }
            ModelReveal::None => None,
        };
        debug_assert_eq!(weights.is_some(), job.reveal.learns_block(me, owner));
        blocks.push(BlockModel {
            features: features[owner.index()].clone(),
            standardizer: if owner == me { data.standardizer.cloned() } else { None },
            woe: None,
            weights: weights.map(|v| fp.decode_all(&v)),
        });
    }
    let bias_plain = match job.reveal {
        ModelReveal::Both => {
            Some(engine.reveal_both(&Grant::new("model_bias", job.reveal.rule(), "the model's bias"), &[bias])?)
        }
        ModelReveal::OwnBlock => engine.reveal_to(
            &Grant::new("model_bias", job.reveal.rule(), "the model's bias, to the bank"),
            Role::Bank,
            &[bias],
        )?,
        ModelReveal::None => None,
    };
    let [gov, bank]: [BlockModel; 2] = blocks.try_into().expect("two blocks");
    let shares = (job.reveal == ModelReveal::None).then(|| ModelShares { gov: w[0].clone(), bank: w[1].clone(), bias });
    let mut artifact = ModelArtifact {
        role: me,
        reveal: job.reveal,
        params: params.clone(),
        gov,
        bank,
        bias: bias_plain.map(|b| fp.decode(b[0])),
        shares,
        scorecard: job.scorecard.clone(),
        metrics: None,
        n_train: job.train_rows.len(),
        n_test: job.test_rows.len(),
        calibration: Calibration::default(),
        train_bins: None,
        warnings: Vec::new(),
    };

    // Calibration: binned counts of the training rows' logits (rule `metrics`), Platt fitted on
    // them by both parties alike.
    engine.channel().set_phase("lr-calibrate");
    let rows_of = |list: &[usize]| -> Vec<f64> {
        list.iter().flat_map(|&r| data.x[r * cols..(r + 1) * cols].iter().copied()).collect()
    };
    let labels_of = |list: &[usize]| -> Option<Vec<f64>> { labels.map(|y| list.iter().map(|&r| y[r]).collect()) };
    artifact.warnings = training_warnings(&artifact);
    // A partial logit beyond what scoring accepts on a training row means the model diverged.
    let (z, bounded) = shared_logits(engine, &artifact, &rows_of(job.train_rows)).map_err(|e| match e {
        Error::Input(InputError::Data(msg)) => input_err(
            [format!("{msg} (a training row): training diverged; lower learning_rate or use sigmoid = \"linear\"")]
                .into_iter()
                .chain(artifact.warnings.iter().cloned())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        e => e,
    })?;
    let train_bins = open_binned_counts(engine, &card, &z, bounded, labels_of(job.train_rows).as_deref(), "training")?;
    artifact.calibration = Calibration::fit(&train_bins);
    artifact.train_bins = Some(train_bins);
    artifact.warnings.extend(calibration_warning(artifact.calibration, me));

    if job.test_rows.is_empty() {
        return Ok(TrainOutput { artifact, test_scores: None });
    }
    let test_x = rows_of(job.test_rows);
    let test_y = labels_of(job.test_rows);
    let (z, bounded) = shared_logits(engine, &artifact, &test_x)?;
    let test_scores = match job.test_output {
        Some(cap) => {
            engine.channel().set_phase("lr-test-scores");
            open_scores(engine, &card, &z, bounded, cap, "test rows")?
        }
        None => None,
    };
    engine.channel().set_phase("lr-metrics");
    let bank_computes = matches!(job.test_output, Some(ScoreOutput::Points | ScoreOutput::Probability));
    artifact.metrics = if bank_computes {
        exchange_bank_metrics(engine, test_scores.as_deref(), test_y.as_deref(), job.test_rows.len())?
    } else {
        open_binned_counts(engine, &card, &z, bounded, test_y.as_deref(), "test")?.metrics()
    };
    if let Some(m) = &artifact.metrics
        && (m.auc - 0.5).abs() <= AUC_CHANCE_MARGIN
    {
        artifact.warnings.push(format!(
            "test AUC {:.4} is within {AUC_CHANCE_MARGIN} of 0.5: the model ranks no better than chance (diverged, or features without signal); check learning_rate, epochs and the sigmoid",
            m.auc
        ));
    }
    Ok(TrainOutput { artifact, test_scores })
}

/// A test AUC this close to 0.5 is a warning.
pub const AUC_CHANCE_MARGIN: f64 = 0.02;
/// A weight (or calibrated logit slope) beyond this is a warning: on standardised or WOE inputs
/// sound models stay far below it.
pub const WEIGHT_WARN: f64 = 100.0;

/// Warnings this party can tell from the weights it knows after training: beyond ±[`WEIGHT_WARN`].
fn training_warnings(artifact: &ModelArtifact) -> Vec<String> {
    let mut warnings = Vec::new();
    for owner in ROLES {
        if let Some(w) = &artifact.block(owner).weights {
            let (i, big) =
                w.iter().enumerate().fold((0, 0.0f64), |m, (i, v)| if v.abs() > m.1 { (i, v.abs()) } else { m });
            if big > WEIGHT_WARN {
                warnings.push(format!(
                    "the weight of the {owner}'s feature '{}' is {:e} (|w| > {WEIGHT_WARN}): training diverged; lower learning_rate or use sigmoid = \"linear\"",
                    artifact.block(owner).features[i],
                    w[i]
                ));
            }
        }
    }
    if let Some(b) = artifact.bias.filter(|b| b.abs() > WEIGHT_WARN) {
        warnings.push(format!("the bias is {b:e} (beyond ±{WEIGHT_WARN}): training diverged; lower learning_rate"));
    }
    warnings
}

/// A calibration slope that is not positive, or beyond ±[`WEIGHT_WARN`], or below 1/[`WEIGHT_WARN`]
/// (logits far too spread: a diverged model kept as shares) is a warning.
fn calibration_warning(c: Calibration, me: Role) -> Option<String> {
    (c.a <= 1.0 / WEIGHT_WARN || c.a > WEIGHT_WARN).then(|| {
        format!(
            "the calibration slope on the training rows is {:.4}: the model's logits do not rank defaults on its own training rows, or are far too spread (training diverged); the {me} sees the same counts",
            c.a
        )
    })
}

/// The bank computes the test metrics from its opened scores (the logit, or minus the points)
/// and sends them to the gov, which checks them for plausibility.
fn exchange_bank_metrics(
    engine: &mut Engine,
    scores: Option<&[Score]>,
    labels: Option<&[f64]>,
    n_test: usize,
) -> Result<Option<Metrics>> {
    match (scores, labels) {
        (Some(scores), Some(y)) => {
            let risk: Vec<f64> =
                scores.iter().map(|s| s.logit.unwrap_or_else(|| -(s.points.unwrap_or_default() as f64))).collect();
            let has_both = y.contains(&0.0) && y.contains(&1.0);
            let metrics = has_both.then(|| Metrics::compute(&risk, y));
            let bytes = protocol::channel::encode("lr-metrics", &metrics)?;
            engine.channel().reveal_send(&metrics_grant(n_test), &bytes)?;
            Ok(metrics)
        }
        _ => {
            let bytes = engine.channel().reveal_recv(&metrics_grant(n_test), 4096)?;
            let metrics: Option<Metrics> = protocol::channel::decode("lr-metrics", &bytes)?;
            if let Some(m) = &metrics {
                let ok = (0.0..=1.0).contains(&m.auc)
                    && (0.0..=1.0).contains(&m.ks)
                    && m.n == n_test
                    && m.positives <= m.n
                    && m.bins.is_none();
                if !ok {
                    return Err(
                        PeerError::Inconsistent { what: format!("peer sent implausible test metrics {m:?}") }.into()
                    );
                }
            }
            Ok(metrics)
        }
    }
}

/// Scores aligned rows with a trained model: `x` is this party's standardised block of the rows
/// to score (rows × own columns, same rows in the same order at both parties). `output` is the
/// gov's cap on what the bank learns per row; both parties pass the same. Returns the scores at
/// the bank, None at the gov: the gov learns nothing, the bank per row the grade, plus the
/// integer points from `Points` on, plus the logit (and so the probability) at `Probability`;
/// no finer value is opened ([`crate::capped`]).
pub fn secure_score(
    engine: &mut Engine,
    artifact: &ModelArtifact,
    x: &[f64],
    output: ScoreOutput,
) -> Result<Option<Vec<Score>>> {
    let card = FixedScorecard::new(&artifact.scorecard, engine.fixed()).map_err(input_err)?;
    let (z, bounded) = agreed_logits(engine, artifact, x, "lr-score", &output)?;
    open_scores(engine, &card, &z, bounded, output, "rows")
}

/// Checks `artifact` and this party's block `x` (rows × own columns) against the engine, agrees
/// with the peer on the model, the row count and `purpose` (setup message `<phase>-setup`, a
/// digest: a mismatch fails before any secret is shared) and returns shares of the rows' joint
/// logits with [`shared_logits`]'s `bounded` flag. Nothing is opened.
pub(crate) fn agreed_logits<P: Serialize>(
    engine: &mut Engine,
    artifact: &ModelArtifact,
    x: &[f64],
    phase: &str,
    purpose: &P,
) -> Result<(Vec<u64>, bool)> {
    let me = engine.role();
    if artifact.role != me {
        return Err(input_err(format!("this artifact belongs to the {} node, not the {me}", artifact.role)));
    }
    if engine.fixed().frac_bits != artifact.params.frac_bits {
        return Err(input_err(format!(
            "engine uses {} fractional bits but the model was trained with {}",
            engine.fixed().frac_bits,
            artifact.params.frac_bits
        )));
    }
    let own = artifact.block(me);
    let cols = own.features.len();
    if !x.len().is_multiple_of(cols) {
        return Err(input_err(format!("feature matrix of {} values does not have {cols} columns", x.len())));
    }
    check_inputs(&own.features, x, 0..x.len() / cols, engine.fixed())?;
    engine.channel().set_phase(phase);
    let digest = job_digest(&(
        artifact.reveal,
        &artifact.params,
        &artifact.gov.features,
        &artifact.bank.features,
        &artifact.scorecard,
        &artifact.calibration,
        purpose,
    ));
    let peer_features = exchange_setup(engine, &format!("{phase}-setup"), x.len() / cols, &own.features, digest)?;
    if peer_features != artifact.block(me.peer()).features {
        return Err(Error::Mismatch {
            what: "feature columns",
            detail: "the peer's columns are not the model's".into(),
        });
    }
    shared_logits(engine, artifact, x)
}

/// Rows per chunk of [`shared_logits`] with a shared model: the peer keeps one chunk's encrypted
/// rows at a time (about 2·rows·cols/8192 ciphertexts of 393 KB in memory), and up to 2048 rows
/// two 32-bit digits per share fit the homomorphic noise budget.
const SCORE_CHUNK_ROWS: usize = 2048;

/// Shares of the joint logits of the given rows; nothing is opened. Blocks the owner knows in
/// plaintext are multiplied locally (the product is the owner's share, the other party's share
/// is 0), and each owner checks its partial logit against [`PARTIAL_MAX`], so the second value
/// (`bounded`, the same at both parties) says |z| ≤ `LOGIT_MAX`; shared blocks go through the
/// engine's `matvec` on a matrix prepared for this one product (not bounded).
fn shared_logits(engine: &mut Engine, artifact: &ModelArtifact, x: &[f64]) -> Result<(Vec<u64>, bool)> {
    let me = engine.role();
    let fp = engine.fixed();
    let own = artifact.block(me);
    let cols = own.features.len();
    let rows = x.len() / cols;
    let mut z = vec![0u64; rows];
    if artifact.reveal.owners_know() {
        let w = own.weights.as_ref().ok_or_else(|| input_err("the artifact lacks this party's weights".into()))?;
        let bias = if me == Role::Bank {
            artifact.bias.ok_or_else(|| input_err("the bank's artifact lacks the bias".into()))?
        } else {
            0.0
        };
        let cal = artifact.calibration;
        // The calibrated logit a·(x_g·w_g) + a·(x_b·w_b + bias) + b: each owner scales its part,
        // the bank adds b.
        let offset = if me == Role::Bank { cal.a * bias + cal.b } else { 0.0 };
        for (r, (zi, row)) in z.iter_mut().zip(x.chunks_exact(cols)).enumerate() {
            let partial = cal.a * row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + offset;
            if partial.is_nan() || partial.abs() > PARTIAL_MAX {
                return Err(input_err(format!(
                    "the {me}'s partial logit of scored row {r} is {partial:e}, beyond ±{PARTIAL_MAX}: the model or this row's features are out of range"
                )));
            }
            *zi = fp.encode(partial);
        }
        Ok((z, true))
    } else {
        let shares = artifact.shares.as_ref().ok_or_else(|| input_err("the artifact lacks the model shares".into()))?;
        let own_m = PlainMatrix::from_f64(rows, cols, x, fp);
        z = Vec::with_capacity(rows);
        for (owner, w) in ROLES.into_iter().zip([&shares.gov, &shares.bank]) {
            if w.len() != artifact.block(owner).features.len() {
                return Err(input_err(format!("the {owner} share has the wrong length")));
            }
        }
        // In chunks of rows: each chunk's matrices are prepared for one product, which bounds
        // the peer's kept ciphertexts and keeps two digits per share (see `SCORE_CHUNK_ROWS`).
        for start in (0..rows).step_by(SCORE_CHUNK_ROWS) {
            let chunk: Vec<usize> = (start..(start + SCORE_CHUNK_ROWS).min(rows)).collect();
            let own_chunk = own_m.select_rows(&chunk);
            let mut prepare = |owner: Role, cols: usize| {
                engine.prepare_matrix(owner, (me == owner).then_some(&own_chunk), chunk.len(), cols)
            };
            let (gov, bank) = (prepare(Role::Gov, shares.gov.len())?, prepare(Role::Bank, shares.bank.len())?);
            let parts = engine.matvec_each(&[(&gov, &shares.gov), (&bank, &shares.bank)], false)?;
            z.extend(engine.add(&engine.add(&vec![shares.bias; chunk.len()], &parts[0]), &parts[1]));
        }
        let cal = artifact.calibration;
        if cal != Calibration::default() {
            z = engine.mul_public(&z, cal.a)?;
            z = engine.add_public(&z, &vec![fp.encode(cal.b); rows]);
        }
        Ok((z, false))
    }
}

/// Everything the training loop of one party needs. Both loops return this party's shares of the
/// gov weights, the bank weights and the bias.
struct Training<'a> {
    me: Role,
    ncols: PerRole<usize>,
    /// This party's aligned block, fixed-point encoded.
    own: &'a PlainMatrix,
    /// The same block as reals (row-major, `ncols[me]` columns).
    x: &'a [f64],
    labels: Option<&'a [f64]>,
    plan: &'a BatchPlan,
    params: &'a TrainParams,
}

type Shares = (PerRole<Vec<u64>>, u64);

impl Training<'_> {
    fn decay(&self) -> f64 {
        let n_train: usize = self.plan.batches.iter().map(Vec::len).sum();
        1.0 - self.params.learning_rate * self.params.l2_lambda(n_train)
    }

    /// w ← w·decay − step·g on shares, the first `decayed` entries decayed (the bias is not): both
    /// products are summed in the ring and truncated once (one round trip for the whole vector).
    fn update(engine: &mut Engine, w: &[u64], g: &[u64], decayed: usize, decay: f64, step: f64) -> Result<Vec<u64>> {
        let wide = Self::update_wide(engine, w, g, decayed, decay, step);
        engine.truncate(&wide, engine.fixed().frac_bits)
    }

    /// [`Training::update`] before its truncation (local): `w·decay − step·g` with `2f`
    /// fractional bits.
    fn update_wide(engine: &Engine, w: &[u64], g: &[u64], decayed: usize, decay: f64, step: f64) -> Vec<u64> {
        let fp = engine.fixed();
        let (d, one, s) = (fp.encode(decay), fp.encode(1.0), fp.encode(step));
        (0..w.len())
            .map(|i| w[i].wrapping_mul(if i < decayed { d } else { one }).wrapping_sub(g[i].wrapping_mul(s)))
            .collect()
    }

    /// Any sigmoid: per batch a secure forward pass, the engine sigmoid and a secure backward pass
    /// (four matrix–vector products of batch size per iteration, on batch matrices prepared once
    /// before the first epoch).
    fn run_general(&self, engine: &mut Engine) -> Result<Shares> {
        let (me, ncols, fp) = (self.me, self.ncols, engine.fixed());
        // Each party's batch matrices, prepared once for all epochs (homomorphic form: the
        // owner's encrypted batch, kept by the peer).
        let mut batches: Vec<PerRole<PreparedMatrix>> = Vec::with_capacity(self.plan.batches.len());
        for rows in &self.plan.batches {
            let own = self.own.select_rows(rows);
            let mut prepare = |owner: Role| {
                engine.prepare_matrix(owner, (me == owner).then_some(&own), rows.len(), ncols[owner.index()])
            };
            batches.push([prepare(Role::Gov)?, prepare(Role::Bank)?]);
        }
        let neg_labels: Option<Vec<Vec<u64>>> = self
            .labels
            .map(|y| self.plan.batches.iter().map(|b| b.iter().map(|&r| fp.encode(-y[r])).collect()).collect());
        let decay = self.decay();
        // Shares of zero: both parties start from all-zero shares.
        let mut w: PerRole<Vec<u64>> = [vec![0; ncols[0]], vec![0; ncols[1]]];
        let mut bias: u64 = 0;
        for epoch in 0..self.params.epochs {
            for k in self.plan.epoch_order(epoch) {
                let n = self.plan.batches[k].len();
                let [gov, bank] = &batches[k];
                let parts = engine.matvec_each(&[(gov, &w[0]), (bank, &w[1])], false)?;
                let z = engine.add(&engine.add(&vec![bias; n], &parts[0]), &parts[1]);
                let p = engine.sigmoid(&z, self.params.sigmoid)?;
                let e = engine.add_private(Role::Bank, &p, neg_labels.as_ref().map(|l| l[k].as_slice()));
                let step = self.params.learning_rate / n as f64;
                let mut grad = engine.matvec_each(&[(gov, &e), (bank, &e)], true)?.concat();
                grad.push(engine.sum(&e));
                let theta = [w[0].as_slice(), &w[1], &[bias]].concat();
                let theta = Self::update(engine, &theta, &grad, ncols[0] + ncols[1], decay, step)?;
                w = [theta[..ncols[0]].to_vec(), theta[ncols[0]..ncols[0] + ncols[1]].to_vec()];
                bias = theta[ncols[0] + ncols[1]];
            }
        }
        Ok((w, bias))
    }

    /// Linear sigmoid σ̃(z) = ½ + z/4 makes the batch gradient affine in θ = (w_g, w_b, b):
    /// with x̃ = (x_g, x_b, 1), ĝ = X̃ᵀ(½ − y)/n + G·θ with G = ¼·X̃ᵀX̃/n. The batches are
    /// fixed, so every batch's G and c = X̃ᵀ(½ − y)/n are computed once and kept secret-shared:
    /// - the gov's diagonal block (X_gᵀX_g, X_gᵀ1) and the bank's (X_bᵀX_b, X_bᵀ1, n), and the
    ///   bank's part of c (X_bᵀ(½ − y), 1ᵀ(½ − y)), are local plaintext (the owner's share; the
    ///   other party's share is 0);
    /// - the cross block X_gᵀX_b: engine `cross_gram` on both parties' plaintext features
    ///   ([`GRAM_MAX_ABS`] bound; the party with fewer columns supplies A with
    ///   [`GRAM_CHOICE_FRAC`] fractional bits, the other B with [`GRAM_CORR_FRAC`]);
    /// - X_gᵀ(½ − y) = ½·X_gᵀ1 − X_gᵀy: `cross_gram` with the bank's −y (1-bit entries) against
    ///   the gov's features.
    ///
    /// Per iteration one `matvec_shared` of G ((c_g + c_b + 1)², each block marked as the gov's,
    /// the bank's or shared) with the shared θ in the ring of [`GRAM_THETA_BOUND_BITS`] + 2f + 2
    /// bits (46 at f = 16), lifted and truncated once: COT corrections for each owner block in
    /// one direction (owner sender, peer receiver with its θ share) and for the cross blocks in
    /// both, (c_g + 1)² − 1 + (c_b + 1)² + 4·c_g·c_b entry-directions of 135 B at m = 46
    /// (836 on synthetic_30k, 113 kB per step), plus `2·(c_g + c_b + 1)·m` OTs and the lift. Nothing is opened; each party learns nothing beyond `run_general`. Same algorithm and
    /// same batches as the reference trainer; the only differences are fixed-point rounding and
    /// the rounding of the cross-block inputs (per entry of G/4n at most about 2^-17 in standard
    /// deviation at batch size 1024).
    fn run_linear_gram(&self, engine: &mut Engine) -> Result<Shares> {
        let (me, fp) = (self.me, engine.fixed());
        let f = fp.frac_bits;
        let (cg, cb) = (self.ncols[0], self.ncols[1]);
        let dim = cg + cb + 1;
        let own_cols = self.ncols[me.index()];
        // Index of this party's column i (i = own_cols: the constant 1) in θ = (w_g, w_b, b).
        let first = if me == Role::Gov { 0 } else { cg };
        let pos = |i: usize| if i < own_cols { first + i } else { dim - 1 };
        // The party with fewer columns supplies A, the matrix with fewer fractional bits.
        let chooser = if cg <= cb { Role::Gov } else { Role::Bank };
        let (choice_cols, corr_cols) = (self.ncols[chooser.index()], self.ncols[chooser.peer().index()]);
        let (choice_bits, corr_bits) = (GRAM_VALUE_BITS + GRAM_CHOICE_FRAC + 1, GRAM_VALUE_BITS + GRAM_CORR_FRAC + 1);
        let (choice_fp, corr_fp) = (FixedPoint::new(GRAM_CHOICE_FRAC), FixedPoint::new(GRAM_CORR_FRAC));

        engine.channel().set_phase("lr-train-gram");
        // Per batch: this party's shares of G (dim × dim) and of c (dim). The cross products of
        // up to GRAM_BATCHES_PER_CALL batches run in one `cross_grams` call (the turns of one
        // product), each lifted and rescaled to f fractional bits in its lift.
        let mut grams: Vec<(PlainMatrix, Vec<u64>)> = Vec::with_capacity(self.plan.batches.len());
        for group in self.plan.batches.chunks(GRAM_BATCHES_PER_CALL) {
            // Per batch: its rows, 2^s ≥ n, and this party's inputs to the two cross products.
            let inputs: Vec<(Vec<f64>, u32, PlainMatrix, PlainMatrix)> = group
                .iter()
                .map(|batch| {
                    let (n, nf) = (batch.len(), batch.len() as f64);
                    let rows: Vec<f64> =
                        batch.iter().flat_map(|&r| self.x[r * own_cols..(r + 1) * own_cols].iter().copied()).collect();
                    // Correlation inputs are pre-scaled by 2^s/n ∈ (½, 1] so that dividing by n is
                    // an exact power-of-two rescaling of the shares.
                    let s = usize::BITS - (n - 1).leading_zeros(); // 2^s ≥ n
                    let scaled: Vec<f64> = rows.iter().map(|v| v * (1u64 << s) as f64 / nf).collect();
                    // Cross block ¼·X_gᵀX_b/n (choice_cols × corr_cols, placed both ways below).
                    let own_input = if me == chooser {
                        PlainMatrix::from_f64(n, own_cols, &rows, choice_fp)
                    } else {
                        PlainMatrix::from_f64(n, own_cols, &scaled, corr_fp)
                    };
                    // c: −X_gᵀy/n by the bank's −y bits against the gov's features.
                    let label_input = match self.labels {
                        Some(y) => PlainMatrix {
                            rows: n,
                            cols: 1,
                            data: batch.iter().map(|&r| (-(y[r] as i64)) as u64).collect(),
                        },
                        None => PlainMatrix::from_f64(n, cg, &scaled, corr_fp),
                    };
                    (rows, s, own_input, label_input)
                })
                .collect();
            // Fractional bits of the two products: rescaled to f (shifted right in the lift, or
            // left here when they have fewer).
            let cross_frac = |s: u32| GRAM_CHOICE_FRAC + GRAM_CORR_FRAC + s + 2;
            let label_frac = |s: u32| GRAM_CORR_FRAC + s;
            let calls: Vec<CrossGram> = inputs
                .iter()
                .flat_map(|(_, s, own_input, label_input)| {
                    let n = own_input.rows;
                    [
                        CrossGram {
                            a_owner: chooser,
                            own: own_input,
                            rows: n,
                            a_cols: choice_cols,
                            b_cols: corr_cols,
                            a_bits: choice_bits,
                            b_bits: corr_bits,
                            shift: cross_frac(*s).saturating_sub(f),
                        },
                        CrossGram {
                            a_owner: Role::Bank,
                            own: label_input,
                            rows: n,
                            a_cols: 1,
                            b_cols: cg,
                            a_bits: 1,
                            b_bits: corr_bits,
                            shift: label_frac(*s).saturating_sub(f),
                        },
                    ]
                })
                .collect();
            let raw = engine.cross_grams(&calls)?;
            for ((batch, (rows, s, ..)), products) in group.iter().zip(&inputs).zip(raw.chunks_exact(2)) {
                let nf = batch.len() as f64;
                let mut g = PlainMatrix { rows: dim, cols: dim, data: vec![0; dim * dim] };
                // Own diagonal block ¼·X̃ᵀX̃/n (the bank holds the 1ᵀ1 entry).
                let d = own_cols + 1;
                let mut local = vec![0.0; d * d];
                for xr in rows.chunks_exact(own_cols) {
                    for i in 0..own_cols {
                        for j in 0..own_cols {
                            local[i * d + j] += xr[i] * xr[j];
                        }
                        local[i * d + own_cols] += xr[i];
                        local[own_cols * d + i] += xr[i];
                    }
                }
                if me == Role::Bank {
                    local[d * d - 1] = nf;
                }
                for i in 0..d {
                    for j in 0..d {
                        g.data[pos(i) * dim + pos(j)] = fp.encode(local[i * d + j] / (4.0 * nf));
                    }
                }
                let cross = widen(&products[0], cross_frac(*s), f);
                for (i, row) in cross.chunks_exact(corr_cols).enumerate() {
                    for (t, &v) in row.iter().enumerate() {
                        let (gi, bj) = if chooser == Role::Gov { (i, cg + t) } else { (t, cg + i) };
                        g.data[gi * dim + bj] = v;
                        g.data[bj * dim + gi] = v;
                    }
                }
                // c: the product above plus the gov's ½·X_gᵀ1/n; the bank's part is its plaintext.
                let mut c = vec![0u64; dim];
                c[..cg].copy_from_slice(&widen(&products[1], label_frac(*s), f));
                let mut sums = vec![0.0; own_cols + 1];
                for (k, xr) in rows.chunks_exact(own_cols).enumerate() {
                    let weight = match self.labels {
                        Some(y) => 0.5 - y[batch[k]],
                        None => 0.5,
                    };
                    xr.iter().zip(sums.iter_mut()).for_each(|(v, si)| *si += v * weight);
                    sums[own_cols] += weight;
                }
                let own_part: Vec<u64> = sums.iter().map(|v| fp.encode(v / nf)).collect();
                match me {
                    Role::Gov => {
                        let gov_part = engine.add(&c[..cg], &own_part[..cg]);
                        c[..cg].copy_from_slice(&gov_part);
                    }
                    Role::Bank => c[cg..].copy_from_slice(&own_part),
                }
                grams.push((g, c));
            }
        }

        // Who knows each entry of G: the gov its block (rows and columns of w_g and the bias,
        // except bias × bias), the bank its block with n; the cross blocks are shared.
        let side = |i: usize| match i {
            i if i < cg => Some(Role::Gov),
            i if i < dim - 1 => Some(Role::Bank),
            _ => None,
        };
        let known_by: Vec<Option<Role>> = (0..dim * dim)
            .map(|k| match (side(k / dim), side(k % dim)) {
                (Some(a), Some(b)) if a != b => None,
                (Some(a), _) | (None, Some(a)) => Some(a),
                (None, None) => Some(Role::Bank),
            })
            .collect();
        engine.channel().set_phase("lr-train");
        let (lr, decay) = (self.params.learning_rate, self.decay());
        // θ = (w_g, w_b, b) as shares, all zero at the start. Each step's update is truncated
        // together with the next step's product (`truncate_then_matvec_shared`: the same values
        // as truncating first, without a turn of its own); the last one alone.
        let mut theta = vec![0u64; dim];
        let mut pending: Option<Vec<u64>> = None;
        for epoch in 0..self.params.epochs {
            for k in self.plan.epoch_order(epoch) {
                let (g, c) = &grams[k];
                let g_theta = match pending.take() {
                    None => engine.matvec_shared(g, &known_by, &theta, GRAM_THETA_BOUND_BITS)?,
                    Some(wide) => {
                        let (t, g_theta) =
                            engine.truncate_then_matvec_shared(&wide, f, g, &known_by, GRAM_THETA_BOUND_BITS)?;
                        theta = t;
                        g_theta
                    }
                };
                let grad = engine.add(&g_theta, c);
                pending = Some(Self::update_wide(engine, &theta, &grad, dim - 1, decay, lr));
            }
        }
        if let Some(wide) = pending {
            theta = engine.truncate(&wide, f)?;
        }
        Ok(([theta[..cg].to_vec(), theta[cg..dim - 1].to_vec()], theta[dim - 1]))
    }
}

/// Shares with `from` fractional bits brought to `to ≥ from` by a left shift (shares with more
/// were shifted right in their lift, see `CrossGram::shift`).
fn widen(x: &[u64], from: u32, to: u32) -> Vec<u64> {
    x.iter().map(|v| v << to.saturating_sub(from)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn platt_recovers_a_known_link_from_binned_counts() {
        // Labels drawn with P(y = 1) = σ(2z − 1) for z uniform in [−3, 2]: the fit on ⅛-logit bins
        // recovers a ≈ 2, b ≈ −1, and the binned mean PD matches the observed rate.
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let uniform = |rng: &mut rand_chacha::ChaCha20Rng| rng.next_u64() as f64 / u64::MAX as f64;
        let (mut z, mut y) = (Vec::new(), Vec::new());
        for _ in 0..200_000 {
            let v = -3.0 + 5.0 * uniform(&mut rng);
            let p = protocol::mpc::sigmoid::exact(2.0 * v - 1.0);
            z.push(v);
            y.push(if uniform(&mut rng) < p { 1.0 } else { 0.0 });
        }
        let bins = ScoreBins::count(&z, &y, &crate::capped::bin_thresholds());
        let c = Calibration::fit(&bins);
        assert!((c.a - 2.0).abs() < 0.05 && (c.b + 1.0).abs() < 0.05, "{c:?}");
        let calibrated: Vec<f64> = z.iter().map(|&v| c.apply(v)).collect();
        let (pd, rate) = binned_mean_pd(&ScoreBins::count(&calibrated, &y, &crate::capped::bin_thresholds())).unwrap();
        assert!((pd - rate).abs() < 0.005, "mean PD {pd} vs rate {rate}");
        // One class only: the identity.
        let ones = ScoreBins::count(&z, &vec![1.0; z.len()], &crate::capped::bin_thresholds());
        assert_eq!(Calibration::fit(&ones), Calibration::default());
    }
}
