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
//!
//! Cost: with the linear sigmoid the per-batch Gram blocks are computed once and reused every
//! epoch (`Training::run_linear_gram`); other sigmoids run four batch-size products per step.
//! Fixed point: the engine's local truncation fails (an error of ~2^(64−2f) on one element) with
//! probability |v|·2^(2f−64) for a product of real value v; with the default f = 16 and the
//! values here (|v| ≲ 2^11) that is below 2^-21 per element.

use protocol::mpc::{Engine, PlainMatrix, Sigmoid};
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
    if cols == 0 || !data.x.len().is_multiple_of(cols) {
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
    let train = Training { me, ncols, own: &own, x: data.x, labels, plan: &plan, params };
    let (w, bias) = if params.sigmoid == Sigmoid::Linear {
        train.run_linear_gram(engine)?
    } else {
        train.run_general(engine)?
    };

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
    if !x.len().is_multiple_of(cols) {
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

    /// w ← w·decay − step·g (shares; the decay multiplication is skipped without L2).
    fn update(engine: &Engine, w: &[u64], g: &[u64], decay: f64, step: f64) -> Vec<u64> {
        let decayed = if decay != 1.0 { engine.mul_public(w, decay) } else { w.to_vec() };
        engine.sub(&decayed, &engine.mul_public(g, step))
    }

    /// Any sigmoid: per batch a secure forward pass, the engine sigmoid and a secure backward pass
    /// (four matrix–vector products of batch size per iteration).
    fn run_general(&self, engine: &mut Engine) -> Result<Shares> {
        let (me, ncols, fp) = (self.me, self.ncols, engine.fixed());
        let batches: Vec<PlainMatrix> = self.plan.batches.iter().map(|b| self.own.select_rows(b)).collect();
        let neg_labels: Option<Vec<Vec<u64>>> =
            self.labels.map(|y| self.plan.batches.iter().map(|b| b.iter().map(|&r| fp.encode(-y[r])).collect()).collect());
        let decay = self.decay();
        // Shares of zero: both parties start from all-zero shares.
        let mut w: PerRole<Vec<u64>> = [vec![0; ncols[0]], vec![0; ncols[1]]];
        let mut bias: u64 = 0;
        for epoch in 0..self.params.epochs {
            for k in self.plan.epoch_order(epoch) {
                let n = self.plan.batches[k].len();
                let mut z = vec![bias; n];
                for owner in ROLES {
                    let m = (me == owner).then_some(&batches[k]);
                    let part = engine.matvec(owner, m, n, ncols[owner.index()], &w[owner.index()])?;
                    z = engine.add(&z, &part);
                }
                let p = engine.sigmoid(&z, self.params.sigmoid)?;
                let e = engine.add_private(Role::Bank, &p, neg_labels.as_ref().map(|l| l[k].as_slice()));
                let step = self.params.learning_rate / n as f64;
                for owner in ROLES {
                    let m = (me == owner).then_some(&batches[k]);
                    let g = engine.matvec_t(owner, m, n, ncols[owner.index()], &e)?;
                    w[owner.index()] = Self::update(engine, &w[owner.index()], &g, decay, step);
                }
                bias = Self::update(engine, &[bias], &[engine.sum(&e)], 1.0, step)[0];
            }
        }
        Ok((w, bias))
    }

    /// Linear sigmoid σ̃(z) = ½ + z/4 makes the batch gradient affine in θ = (w_g, w_b, b):
    /// with x̃ = (x, 1), ĝ = X̃ᵀ(½ − y)/n + ¼·(X̃ᵀX̃/n)·θ. The batches are fixed, so every
    /// batch's Gram matrix is computed once and reused in every epoch:
    /// - the gov's block (X_gᵀX_g, X_gᵀ1) and the bank's (X_bᵀX_b, X_bᵀ1, n, X_bᵀ(½ − y),
    ///   1ᵀ(½ − y)) are local plaintext;
    /// - the cross block X_gᵀ[X_b | ½ − y] is computed securely once per batch (one `matvec_t`
    ///   per gov column, the column entering as the gov's private input) and stays shared.
    ///
    /// Per iteration only small products remain: the two local blocks (owner's plaintext × shared
    /// θ, `matvec` of size (cols+1)²) and the shared cross block × shared θ (`mul` of 2·c_g·c_b
    /// elements). Nothing is opened; each party learns nothing beyond `run_general`. Same
    /// algorithm and same batches as the reference trainer, so only fixed-point error differs.
    fn run_linear_gram(&self, engine: &mut Engine) -> Result<Shares> {
        let (me, fp) = (self.me, engine.fixed());
        let (cg, cb) = (self.ncols[0], self.ncols[1]);
        let own_cols = self.ncols[me.index()];
        let lr = self.params.learning_rate;
        let decay = self.decay();

        struct BatchGram {
            /// Owner's plaintext ¼·[[XᵀX/n, Xᵀ1/n], [1ᵀX/n, (bank: 1, gov: 0)]].
            local: PlainMatrix,
            /// Shares of ¼·X_gᵀX_b/n, row-major cg × cb.
            cross: Vec<u64>,
            /// Shares of X_gᵀ(½ − y)/n.
            c_gov: Vec<u64>,
            /// Bank only: X_bᵀ(½ − y)/n and 1ᵀ(½ − y)/n, encoded.
            c_bank: Option<Vec<u64>>,
        }
        let mut grams = Vec::with_capacity(self.plan.batches.len());
        for batch in &self.plan.batches {
            let n = batch.len();
            let nf = n as f64;
            let row = |r: usize| &self.x[r * own_cols..(r + 1) * own_cols];
            // Local block ¼·X̃ᵀX̃/n of this party (the bank holds the 1ᵀ1 entry).
            let d = own_cols + 1;
            let mut local = vec![0.0; d * d];
            for &r in batch {
                let xr = row(r);
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
            local.iter_mut().for_each(|v| *v /= 4.0 * nf);
            // Cross block: the bank's matrix [X_b | ½ − y], pre-scaled by 2^s/n ∈ (1/2, 1] so the
            // division by n needs only exact power-of-two rescaling later.
            let s = usize::BITS - (n - 1).leading_zeros(); // 2^s ≥ n
            let scale = (1u64 << s) as f64 / nf;
            let bank_m = self.labels.map(|y| {
                let m: Vec<f64> =
                    batch.iter().flat_map(|&r| row(r).iter().map(|v| v * scale).chain([(0.5 - y[r]) * scale])).collect();
                PlainMatrix::from_f64(n, cb + 1, &m, fp)
            });
            let mut cross = Vec::with_capacity(cg * cb);
            let mut c_gov = Vec::with_capacity(cg);
            for j in 0..cg {
                // Gov column j as the gov's private input (its share is the value, the bank's 0).
                let col: Option<Vec<u64>> = (me == Role::Gov).then(|| batch.iter().map(|&r| fp.encode(row(r)[j])).collect());
                let v = engine.add_private(Role::Gov, &vec![0; n], col.as_deref());
                let out = engine.matvec_t(Role::Bank, bank_m.as_ref(), n, cb + 1, &v)?;
                cross.extend(scale_pow2(engine, &out[..cb], s + 2));
                c_gov.extend(scale_pow2(engine, &out[cb..], s));
            }
            let c_bank = self.labels.map(|y| {
                let mut c = vec![0.0; cb + 1];
                for &r in batch {
                    let e0 = 0.5 - y[r];
                    row(r).iter().zip(c.iter_mut()).for_each(|(v, ci)| *ci += v * e0);
                    c[cb] += e0;
                }
                c.iter().map(|v| fp.encode(v / nf)).collect()
            });
            grams.push(BatchGram { local: PlainMatrix::from_f64(d, d, &local, fp), cross, c_gov, c_bank });
        }

        // θ_g = (w_g, b), θ_b = (w_b, b) as shares; all zero at the start.
        let mut w: PerRole<Vec<u64>> = [vec![0; cg], vec![0; cb]];
        let mut bias: u64 = 0;
        for epoch in 0..self.params.epochs {
            for k in self.plan.epoch_order(epoch) {
                let gram = &grams[k];
                let theta = |wo: &Vec<u64>| [wo.as_slice(), &[bias]].concat();
                let mut u: PerRole<Vec<u64>> = Default::default();
                for owner in ROLES {
                    let d = self.ncols[owner.index()] + 1;
                    let m = (me == owner).then_some(&gram.local);
                    u[owner.index()] = engine.matvec(owner, m, d, d, &theta(&w[owner.index()]))?;
                }
                // Cross terms ¼·G_gb·w_b (length cg) and ¼·G_gbᵀ·w_g (length cb) in one `mul`.
                let tiled_wb: Vec<u64> = (0..cg).flat_map(|_| w[1].iter().copied()).collect();
                let repeated_wg: Vec<u64> = w[0].iter().flat_map(|&v| std::iter::repeat_n(v, cb)).collect();
                let prod = engine.mul(&[gram.cross.as_slice(), &gram.cross].concat(), &[tiled_wb, repeated_wg].concat())?;
                let (to_gov, to_bank) = prod.split_at(cg * cb);
                let g_gov = engine.add(&gram.c_gov, &engine.add(&u[0][..cg], &row_sums(to_gov, cb)));
                let c_bank = gram.c_bank.as_deref();
                let g_bank = engine.add_private(Role::Bank, &engine.add(&u[1][..cb], &col_sums(to_bank, cb)), c_bank.map(|c| &c[..cb]));
                let g_bias = engine.add_private(Role::Bank, &[u[0][cg].wrapping_add(u[1][cb])], c_bank.map(|c| &c[cb..]));
                w[0] = Self::update(engine, &w[0], &g_gov, decay, lr);
                w[1] = Self::update(engine, &w[1], &g_bank, decay, lr);
                bias = Self::update(engine, &[bias], &g_bias, 1.0, lr)[0];
            }
        }
        Ok((w, bias))
    }
}

/// Multiplies shares by 2^−k exactly (public powers of two, at most 2^−f per step).
fn scale_pow2(engine: &Engine, x: &[u64], mut k: u32) -> Vec<u64> {
    let f = engine.fixed().frac_bits;
    let mut out = x.to_vec();
    while k > 0 {
        let step = k.min(f);
        out = engine.mul_public(&out, 0.5f64.powi(step as i32));
        k -= step;
    }
    out
}

/// Sums of consecutive groups of `width` (rows of a row-major matrix).
fn row_sums(x: &[u64], width: usize) -> Vec<u64> {
    x.chunks_exact(width).map(|r| r.iter().fold(0u64, |a, b| a.wrapping_add(*b))).collect()
}

/// Column sums of a row-major matrix with `width` columns.
fn col_sums(x: &[u64], width: usize) -> Vec<u64> {
    let mut out = vec![0u64; width];
    for r in x.chunks_exact(width) {
        out.iter_mut().zip(r).for_each(|(o, v)| *o = o.wrapping_add(*v));
    }
    out
}
