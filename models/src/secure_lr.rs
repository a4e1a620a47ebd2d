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
//! - test scores: the bank learns the test logits z (equivalent to the exact probability
//!   1/(1+e^−z) and the points; the gov learns nothing about them); then the bank computes AUC,
//!   KS and the positive count on the test rows and sends them to the gov (an explicit reveal,
//!   message `lr-metrics`).
//! - [`secure_score`]: the bank learns the logits of the scored rows, the gov nothing.
//!
//! Both parties must call these functions with the same public arguments; a setup message with a
//! digest of the job checks that before any secret is shared.

use protocol::mpc::{Engine, PlainMatrix};
use protocol::{Error, Result, Role};
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::reference::{BatchPlan, TrainParams};
use crate::scorecard::Scorecard;
use crate::standardize::Standardizer;

/// Largest column count accepted from the peer.
pub const MAX_PEER_COLUMNS: usize = 1 << 16;
/// Longest feature name accepted from the peer.
const MAX_NAME_LEN: usize = 256;

/// Who learns the trained model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// One feature block of the model, as this party knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockModel {
    pub features: Vec<String>,
    /// Only the owner's artifact has its standardisation.
    pub standardizer: Option<Standardizer>,
    /// Weights on standardised features; None where not revealed to this party.
    pub weights: Option<Vec<f64>>,
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
}

impl ModelArtifact {
    pub fn block(&self, owner: Role) -> &BlockModel {
        match owner {
            Role::Gov => &self.gov,
            Role::Bank => &self.bank,
        }
    }
}

/// A score the bank receives for one row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// z = x·w + b.
    pub logit: f64,
    /// Exact logistic probability of default 1/(1 + e^−z).
    pub probability: f64,
    pub points: f64,
    pub grade: String,
}

impl Score {
    fn from_logit(z: f64, scorecard: &Scorecard) -> Score {
        let points = scorecard.points_from_logit(z);
        Score { logit: z, probability: 1.0 / (1.0 + (-z).exp()), points, grade: scorecard.grade(points).to_string() }
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

fn input_err(msg: String) -> Error {
    Error::Input(msg)
}

fn job_digest<T: Serialize>(job: &T) -> [u8; 32] {
    let json = serde_json::to_vec(job).expect("job descriptions serialise");
    *blake3::hash(&json).as_bytes()
}

/// Exchanges setups and returns the peer's column names after checking that rows and job match.
fn exchange_setup(engine: &mut Engine, kind: &str, rows: usize, features: &[String], digest: [u8; 32]) -> Result<Vec<String>> {
    let mine = Setup { rows: rows as u64, features: features.to_vec(), job_digest: digest };
    let ch = engine.channel();
    ch.send(kind, &mine)?;
    let peer: Setup = ch.recv(kind)?;
    if peer.features.len() > MAX_PEER_COLUMNS || peer.features.iter().any(|f| f.len() > MAX_NAME_LEN) {
        return Err(Error::Protocol(format!("peer announced {} columns or an over-long name", peer.features.len())));
    }
    if peer.features.is_empty() {
        return Err(Error::Protocol("peer announced no feature columns".into()));
    }
    if peer.rows != mine.rows {
        return Err(input_err(format!(
            "the peer has {} aligned rows and we have {rows}: both must use the same PSI alignment",
            peer.rows
        )));
    }
    if peer.job_digest != mine.job_digest {
        return Err(input_err(format!(
            "{kind}: the peer's job (parameters, model policy, train/test rows or scorecard) differs from ours; both nodes must run the same job definition"
        )));
    }
    Ok(peer.features)
}

fn check_rows(name: &str, list: &[usize], rows: usize, used: &mut [bool]) -> Result<()> {
    for &r in list {
        if r >= rows {
            return Err(input_err(format!("{name} row {r} is out of range: there are {rows} aligned rows")));
        }
        if std::mem::replace(&mut used[r], true) {
            return Err(input_err(format!("row {r} appears twice in the train/test row lists; train and test must be disjoint")));
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
    job.scorecard.validate().map_err(input_err)?;
    if engine.fixed().frac_bits != params.frac_bits {
        return Err(input_err(format!(
            "engine uses {} fractional bits but the job says frac_bits = {}",
            engine.fixed().frac_bits,
            params.frac_bits
        )));
    }
    let cols = data.features.len();
    if cols == 0 || data.x.len() % cols != 0 {
        return Err(input_err(format!("feature matrix of {} values does not have {cols} columns", data.x.len())));
    }
    let rows = data.x.len() / cols;
    let labels = match (me, data.label) {
        (Role::Bank, Some(y)) if y.len() == rows && y.iter().all(|&v| v == 0.0 || v == 1.0) => Some(y),
        (Role::Bank, _) => return Err(input_err(format!("the bank needs one 0/1 label per aligned row ({rows} rows)"))),
        (Role::Gov, None) => None,
        (Role::Gov, Some(_)) => return Err(input_err("the gov must not pass a label".into())),
    };
    if job.train_rows.is_empty() {
        return Err(input_err("no training rows".into()));
    }
    let mut used = vec![false; rows];
    check_rows("train", job.train_rows, rows, &mut used)?;
    check_rows("test", job.test_rows, rows, &mut used)?;

    engine.channel().set_phase("lr-setup");
    let digest = job_digest(&(params, job.reveal, job.train_rows, job.test_rows, job.scorecard));
    let peer_features = exchange_setup(engine, "lr-setup", rows, data.features, digest)?;
    let mut features: PerRole<Vec<String>> = Default::default();
    features[me.index()] = data.features.to_vec();
    features[me.peer().index()] = peer_features;
    let ncols: PerRole<usize> = [features[0].len(), features[1].len()];

    engine.channel().set_phase("lr-train");
    let fp = engine.fixed();
    let own = PlainMatrix::from_f64(rows, cols, data.x, fp);
    let plan = BatchPlan::new(job.train_rows, params.batch_size, params.seed);
    let batches: Vec<PlainMatrix> = plan.batches.iter().map(|b| own.select_rows(b)).collect();
    let neg_labels: Option<Vec<Vec<u64>>> =
        labels.map(|y| plan.batches.iter().map(|b| b.iter().map(|&r| fp.encode(-y[r])).collect()).collect());
    let decay = 1.0 - params.learning_rate * params.l2_lambda(job.train_rows.len());

    // Shares of zero: both parties start from all-zero shares.
    let mut w: PerRole<Vec<u64>> = [vec![0; ncols[0]], vec![0; ncols[1]]];
    let mut bias: u64 = 0;
    for epoch in 0..params.epochs {
        for k in plan.epoch_order(epoch) {
            let n = plan.batches[k].len();
            let mut z = vec![bias; n];
            for owner in ROLES {
                let m = (me == owner).then_some(&batches[k]);
                let part = engine.matvec(owner, m, n, ncols[owner.index()], &w[owner.index()])?;
                z = engine.add(&z, &part);
            }
            let p = engine.sigmoid(&z, params.sigmoid)?;
            let e = engine.add_private(Role::Bank, &p, neg_labels.as_ref().map(|l| l[k].as_slice()));
            let step = params.learning_rate / n as f64;
            for owner in ROLES {
                let m = (me == owner).then_some(&batches[k]);
                let g = engine.matvec_t(owner, m, n, ncols[owner.index()], &e)?;
                let wo = &mut w[owner.index()];
                let decayed = if decay != 1.0 { engine.mul_public(wo, decay) } else { std::mem::take(wo) };
                *wo = engine.sub(&decayed, &engine.mul_public(&g, step));
            }
            bias = engine.sub(&[bias], &engine.mul_public(&[engine.sum(&e)], step))[0];
        }
    }

    engine.channel().set_phase("lr-reveal-model");
    let mut blocks: Vec<BlockModel> = Vec::with_capacity(2);
    for owner in ROLES {
        let share = &w[owner.index()];
        let weights = match job.reveal {
            ModelReveal::Both => Some(engine.reveal_both(share)?),
            ModelReveal::OwnBlock => engine.reveal_to(owner, share)?,
            ModelReveal::None => None,
        };
        debug_assert_eq!(weights.is_some(), job.reveal.learns_block(me, owner));
        blocks.push(BlockModel {
            features: features[owner.index()].clone(),
            standardizer: if owner == me { data.standardizer.cloned() } else { None },
            weights: weights.map(|v| fp.decode_all(&v)),
        });
    }
    let bias_plain = match job.reveal {
        ModelReveal::Both => Some(engine.reveal_both(&[bias])?),
        ModelReveal::OwnBlock => engine.reveal_to(Role::Bank, &[bias])?,
        ModelReveal::None => None,
    };
    let [gov, bank]: [BlockModel; 2] = blocks.try_into().expect("two blocks");
    let shares = (job.reveal == ModelReveal::None).then(|| ModelShares {
        gov: w[0].clone(),
        bank: w[1].clone(),
        bias,
    });
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
    };

    if job.test_rows.is_empty() {
        return Ok(TrainOutput { artifact, test_scores: None });
    }
    engine.channel().set_phase("lr-test-scores");
    let test_x: Vec<f64> = job.test_rows.iter().flat_map(|&r| data.x[r * cols..(r + 1) * cols].iter().copied()).collect();
    let test_scores = score_rows(engine, &artifact, &test_x)?;
    engine.channel().set_phase("lr-metrics");
    artifact.metrics = match (&test_scores, labels) {
        (Some(scores), Some(y)) => {
            let logits: Vec<f64> = scores.iter().map(|s| s.logit).collect();
            let test_y: Vec<f64> = job.test_rows.iter().map(|&r| y[r]).collect();
            let has_both = test_y.contains(&0.0) && test_y.contains(&1.0);
            let metrics = has_both.then(|| Metrics::compute(&logits, &test_y));
            engine.channel().send("lr-metrics", &metrics)?;
            metrics
        }
        _ => {
            let metrics: Option<Metrics> = engine.channel().recv("lr-metrics")?;
            if let Some(m) = &metrics {
                let ok = (0.0..=1.0).contains(&m.auc) && (0.0..=1.0).contains(&m.ks) && m.n == job.test_rows.len() && m.positives <= m.n;
                if !ok {
                    return Err(Error::Protocol(format!("peer sent implausible test metrics {m:?}")));
                }
            }
            metrics
        }
    };
    Ok(TrainOutput { artifact, test_scores })
}

/// Scores aligned rows with a trained model: `x` is this party's standardised block of the rows
/// to score (rows × own columns, same rows in the same order at both parties). Returns the scores
/// at the bank, None at the gov; the gov learns nothing, the bank the logits of these rows.
pub fn secure_score(engine: &mut Engine, artifact: &ModelArtifact, x: &[f64]) -> Result<Option<Vec<Score>>> {
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
    if x.len() % cols != 0 {
        return Err(input_err(format!("feature matrix of {} values does not have {cols} columns", x.len())));
    }
    engine.channel().set_phase("lr-score");
    let digest = job_digest(&(
        artifact.reveal,
        &artifact.params,
        &artifact.gov.features,
        &artifact.bank.features,
        &artifact.scorecard,
    ));
    let peer_features = exchange_setup(engine, "lr-score-setup", x.len() / cols, &own.features, digest)?;
    if peer_features != artifact.block(me.peer()).features {
        return Err(input_err("the peer's feature columns differ from the model's".into()));
    }
    score_rows(engine, artifact, x)
}

/// Joint logits of the given rows, revealed to the bank only. Blocks the owner knows in plaintext
/// are multiplied locally (the product is the owner's share, the other party's share is 0);
/// shared blocks go through the engine's `matvec`.
fn score_rows(engine: &mut Engine, artifact: &ModelArtifact, x: &[f64]) -> Result<Option<Vec<Score>>> {
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
        for (zi, row) in z.iter_mut().zip(x.chunks_exact(cols)) {
            *zi = fp.encode(row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + bias);
        }
    } else {
        let shares = artifact.shares.as_ref().ok_or_else(|| input_err("the artifact lacks the model shares".into()))?;
        let own_m = PlainMatrix::from_f64(rows, cols, x, fp);
        z = vec![shares.bias; rows];
        for (owner, w) in ROLES.into_iter().zip([&shares.gov, &shares.bank]) {
            if w.len() != artifact.block(owner).features.len() {
                return Err(input_err(format!("the {owner} share has the wrong length")));
            }
            let m = (me == owner).then_some(&own_m);
            let part = engine.matvec(owner, m, rows, w.len(), w)?;
            z = engine.add(&z, &part);
        }
    }
    let opened = engine.reveal_to(Role::Bank, &z)?;
    Ok(opened.map(|v| v.iter().map(|&zi| Score::from_logit(fp.decode(zi), &artifact.scorecard)).collect()))
}
