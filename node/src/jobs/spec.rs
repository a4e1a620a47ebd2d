//! What a job asks for: written by the submitting operator as TOML, sent to the peer as the proposal.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use models::binning::{BinMethod, BinningParams};
use models::reference::TrainParams;
use models::scorecard::{ScoreOutput, Scorecard};
use models::secure_lr::ModelReveal;
use models::standardize::{MissingPolicy, PrepParams};
use protocol::Role;
use protocol::mpc::{Correlations, Sigmoid};
use protocol::psi::{PsiProtocol, PsiReveal};
use serde::{Deserialize, Serialize};

/// Kinds of joint computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Private set intersection of the two datasets' ids.
    Psi,
    /// PSI, then secure logistic regression on the intersection.
    Train,
    /// PSI, then scoring of the bank's entities with a trained model.
    Score,
    /// PSI, then the gov's early-warning list: the common entities whose joint PD is above
    /// `params.threshold` under a trained model.
    Watchlist,
    /// Credit check-up of one consenting entity: the gov's one-page report
    /// ([`crate::jobs::phases::checkup`]).
    Checkup,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Psi => "psi",
            JobKind::Train => "train",
            JobKind::Score => "score",
            JobKind::Watchlist => "watchlist",
            JobKind::Checkup => "checkup",
        }
    }
}

/// What may be revealed, and to whom. A job lists every reveal it needs; both policies must allow each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reveal {
    /// Both learn the intersection size only.
    IntersectionSize,
    /// Both learn which of their own ids are in the intersection (and its aligned order).
    IntersectionIds,
    /// The bank learns which of its ids are in the intersection; the gov learns only its size.
    IntersectionIdsToBank,
    /// Each party learns the model weights of its own feature block.
    ModelToOwners,
    /// Both learn the whole model.
    ModelToBoth,
    /// The model stays secret-shared.
    ModelShared,
    /// The bank learns the scores of its entities (capped by `params.score_output`).
    ScoresToBank,
    /// The bank learns the gov's partial score of the ids it names (score jobs with target
    /// `ids`): a separate opt-in of the gov, since with its own block the bank learns the gov's
    /// partial logit, uncapped.
    PartialScoresToBank,
    /// Both learn aggregate metrics (AUC, KS, PSI), and the training rows' counts by label in
    /// fixed logit bins (the calibration).
    Metrics,
    /// Watch-list jobs: the gov learns which common entities have a joint PD above the
    /// threshold; the bank learns how many.
    WatchlistToGov,
    /// WOE scorecards: the gov learns the number of training-row events (label 1) in each of
    /// its own bins ([`models::woe_lr`]).
    WoeToOwner,
    /// Check-up jobs: the gov learns, for the one entity, the bank block's points (with the
    /// base points) as one number.
    CheckupToGov,
}

impl Reveal {
    pub fn as_str(self) -> &'static str {
        match self {
            Reveal::IntersectionSize => "intersection_size",
            Reveal::IntersectionIds => "intersection_ids",
            Reveal::IntersectionIdsToBank => "intersection_ids_to_bank",
            Reveal::ModelToOwners => "model_to_owners",
            Reveal::ModelToBoth => "model_to_both",
            Reveal::ModelShared => "model_shared",
            Reveal::ScoresToBank => "scores_to_bank",
            Reveal::PartialScoresToBank => "partial_scores_to_bank",
            Reveal::Metrics => "metrics",
            Reveal::WatchlistToGov => "watchlist_to_gov",
            Reveal::WoeToOwner => "woe_to_owner",
            Reveal::CheckupToGov => "checkup_to_gov",
        }
    }
}

/// One party's inputs to a job, named by the party's configured dataset name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideSpec {
    pub dataset: String,
    /// Feature columns used jointly.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Label column (bank side of `train`).
    #[serde(default)]
    pub label: Option<String>,
}

impl SideSpec {
    /// Every column this side contributes (features, then the label).
    pub fn used_columns(&self) -> impl Iterator<Item = &String> {
        self.columns.iter().chain(self.label.iter())
    }
}

/// A job as the operator writes it (`tandem job submit FILE`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub kind: JobKind,
    /// Free text shown in job lists.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub reveal: Vec<Reveal>,
    /// PSI refuses to continue if the intersection is smaller.
    #[serde(default)]
    pub min_intersection: u64,
    pub gov: SideSpec,
    pub bank: SideSpec,
    /// Kind-specific parameters (learning rate, epochs, seeds...), read by the phases of that kind.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl JobSpec {
    /// Reads a job TOML file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<JobSpec> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read job file {}", path.display()))?;
        let spec: JobSpec = toml::from_str(&text).map_err(|e| anyhow::anyhow!("job file {}: {e}", path.display()))?;
        spec.validate().with_context(|| format!("job file {}", path.display()))?;
        Ok(spec)
    }

    /// Shape checks that do not depend on either node's configuration.
    pub fn validate(&self) -> Result<()> {
        for (role, side) in [(Role::Gov, &self.gov), (Role::Bank, &self.bank)] {
            if side.dataset.trim().is_empty() {
                bail!("{role}.dataset is empty: name a dataset configured on the {role} node");
            }
            let mut seen = std::collections::HashSet::new();
            for c in side.used_columns() {
                if !seen.insert(c) {
                    bail!("{role}.columns: column '{c}' is listed twice");
                }
            }
        }
        if self.gov.label.is_some() {
            bail!("gov.label: only the bank holds the label; move it to [bank] label");
        }
        if self.kind == JobKind::Train && self.bank.label.is_none() {
            bail!("bank.label is missing: a train job needs the bank's label column, e.g. label = \"y\"");
        }
        self.check_params()
    }

    /// The typed `[params]`; errors name the key.
    pub fn params(&self) -> Result<JobParams> {
        serde_json::from_value(serde_json::Value::Object(self.params.clone())).map_err(|e| {
            // serde_json does not say which key failed: find the first one that fails alone.
            let key = self.params.iter().find(|(k, v)| {
                let one = serde_json::Map::from_iter([((*k).clone(), (*v).clone())]);
                serde_json::from_value::<JobParams>(serde_json::Value::Object(one)).is_err()
            });
            match key {
                Some((k, _)) => anyhow::anyhow!("params.{k}: {e}"),
                None => anyhow::anyhow!("params: {e}"),
            }
        })
    }

    /// Who learns the intersection: the one PSI mode the job lists in `reveal`.
    pub fn psi_reveal(&self) -> Result<PsiReveal> {
        let missing = format!(
            "reveal: a {} job runs PSI and must list one of \"intersection_ids\" (both learn their aligned rows), \
             \"intersection_ids_to_bank\" (the bank does, the gov learns the size) or \"intersection_size\"",
            self.kind.as_str()
        );
        self.one_mode(
            "PSI",
            [
                (Reveal::IntersectionIds, PsiReveal::Both),
                (Reveal::IntersectionIdsToBank, PsiReveal::BankOnly),
                (Reveal::IntersectionSize, PsiReveal::SizeOnly),
            ],
            &missing,
        )
    }

    /// The PSI protocol: `params.psi_protocol`, or the default for the reveal mode. VOLE with
    /// `intersection_size` is an error (its OPRF receiver learns which of its ids match).
    pub fn psi_protocol(&self) -> Result<PsiProtocol> {
        let reveal = self.psi_reveal()?;
        match self.params()?.psi_protocol {
            None => Ok(PsiProtocol::default_for(reveal)),
            Some(PsiProtocol::Vole) if reveal == PsiReveal::SizeOnly => bail!(
                "params.psi_protocol = \"vole\" cannot keep reveal \"intersection_size\": the bank would learn \
                 which of its ids match; use psi_protocol = \"ecdh\" (or omit it) for a size-only job"
            ),
            Some(p) => Ok(p),
        }
    }

    /// Who learns the trained model: the one model mode the job lists in `reveal`.
    pub fn model_reveal(&self) -> Result<ModelReveal> {
        self.one_mode(
            "model",
            [
                (Reveal::ModelToBoth, ModelReveal::Both),
                (Reveal::ModelToOwners, ModelReveal::OwnBlock),
                (Reveal::ModelShared, ModelReveal::None),
            ],
            "reveal: a train job must list one of \"model_to_both\", \"model_to_owners\" (each party its own \
             weights; needed to score single IDs later) or \"model_shared\"",
        )
    }

    /// The one of `modes` that `reveal` lists; none or several is an error.
    fn one_mode<T: Copy>(&self, what: &str, modes: [(Reveal, T); 3], missing: &str) -> Result<T> {
        let listed: Vec<(Reveal, T)> = modes.into_iter().filter(|(r, _)| self.reveal.contains(r)).collect();
        match listed.as_slice() {
            [(_, mode)] => Ok(*mode),
            [] => bail!("{missing}"),
            _ => bail!(
                "reveal lists {} {what} modes ({}): keep exactly one",
                listed.len(),
                listed.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Kind-specific checks of `params` and `reveal`.
    fn check_params(&self) -> Result<()> {
        let kind_keys: &[&str] = match self.kind {
            JobKind::Psi => &[],
            JobKind::Train => TRAIN_KEYS,
            JobKind::Score => SCORE_KEYS,
            JobKind::Watchlist => WATCHLIST_KEYS,
            JobKind::Checkup => CHECKUP_KEYS,
        };
        for key in self.params.keys() {
            if !COMMON_KEYS.contains(&key.as_str()) && !kind_keys.contains(&key.as_str()) {
                bail!(
                    "params.{key} is not a parameter of a {} job (parameters: {})",
                    self.kind.as_str(),
                    COMMON_KEYS.iter().chain(kind_keys).copied().collect::<Vec<_>>().join(", ")
                );
            }
        }
        let p = self.params()?;
        match self.kind {
            JobKind::Psi => {
                self.psi_protocol()?;
            }
            JobKind::Train => {
                if let Some(m) = p.model.as_deref().filter(|m| !["woe_scorecard", "raw_lr"].contains(m)) {
                    bail!("params.model = '{m}': a train job fits \"woe_scorecard\" (default) or \"raw_lr\"");
                }
                if self.psi_reveal()? != PsiReveal::Both {
                    bail!("reveal: a train job needs \"intersection_ids\": both nodes must know their aligned rows");
                }
                self.model_reveal()?;
                p.train_params().validate().map_err(|e| anyhow::anyhow!("params.{e}"))?;
                if let Some(sc) = &p.scorecard {
                    sc.validate().map_err(|e| anyhow::anyhow!("params.{e}"))?;
                }
                p.prep_params().validate().map_err(|e| anyhow::anyhow!("params.{e}"))?;
                if p.test_ids_file.is_some() && (p.test_fraction.is_some() || p.split_seed.is_some()) {
                    bail!("params: give either test_ids_file or test_fraction/split_seed, not both");
                }
                let fraction = p.test_fraction();
                if !(0.0..1.0).contains(&fraction) {
                    bail!("params.test_fraction = {fraction}: use a fraction in [0, 1), e.g. 0.3");
                }
                if !self.reveal.contains(&Reveal::Metrics) {
                    bail!(
                        "reveal: list \"metrics\": both nodes learn the training rows' binned logit counts (the \
                         calibration) and the test AUC and KS"
                    );
                }
                let binning = p.binning_params();
                binning.validate().map_err(|e| anyhow::anyhow!("params.{e}"))?;
                match p.model() {
                    TrainModel::WoeScorecard if !self.reveal.contains(&Reveal::WoeToOwner) => bail!(
                        "reveal: a WOE scorecard (params.model = \"woe_scorecard\", the default) must list \
                         \"woe_to_owner\": the gov learns the event counts of its own bins; or set model = \"raw_lr\""
                    ),
                    TrainModel::RawLr => {
                        if let Some(k) = WOE_KEYS.iter().find(|k| self.params.contains_key(**k)) {
                            bail!("params.{k} is a binning parameter: it needs model = \"woe_scorecard\"");
                        }
                        if self.reveal.contains(&Reveal::WoeToOwner) {
                            bail!("reveal: model = \"raw_lr\" bins nothing; remove \"woe_to_owner\"");
                        }
                    }
                    TrainModel::WoeScorecard => {}
                }
            }
            JobKind::Watchlist => {
                check_model_name(&p)?;
                if self.psi_reveal()? != PsiReveal::Both {
                    bail!(
                        "reveal: a watchlist job needs \"intersection_ids\": the gov names the flagged entities by id"
                    );
                }
                if !self.reveal.contains(&Reveal::WatchlistToGov) {
                    bail!("reveal: a watchlist job must list \"watchlist_to_gov\"");
                }
                let threshold = p.threshold.context(
                    "params.threshold is missing: the probability of default above which an entity is listed, e.g. 0.3",
                )?;
                models::watchlist::threshold_logit(threshold).map_err(|e| anyhow::anyhow!("params.{e}"))?;
            }
            JobKind::Checkup => {
                check_model_name(&p)?;
                if self.reveal != [Reveal::CheckupToGov] {
                    bail!("reveal: a checkup job lists exactly [\"checkup_to_gov\"] (it runs no PSI)");
                }
                if p.entity.as_deref().is_none_or(|e| e.trim().is_empty()) {
                    bail!("params.entity is missing: the id of the entity that asked for its check-up");
                }
                if p.consent.as_deref().is_none_or(|c| c.trim().is_empty()) {
                    bail!(
                        "params.consent is missing: the reference of the entity's consent to its check-up \
                         (recorded in both transcripts); no check-up runs without it"
                    );
                }
            }
            JobKind::Score => {
                check_model_name(&p)?;
                if !self.reveal.contains(&Reveal::ScoresToBank) {
                    bail!("reveal: a score job must list \"scores_to_bank\"");
                }
                match p.target {
                    None => bail!(
                        "params.target is missing: \"intersection\" (score every common entity) or \"ids\" (the bank scores the ids in queries_file)"
                    ),
                    Some(ScoreTarget::Intersection) => {
                        if self.psi_reveal()? != PsiReveal::Both {
                            bail!(
                                "reveal: target \"intersection\" needs \"intersection_ids\": both nodes must know their aligned rows"
                            );
                        }
                        if p.queries_file.is_some() {
                            bail!("params.queries_file is only used with target = \"ids\"");
                        }
                    }
                    Some(target @ (ScoreTarget::Ids | ScoreTarget::Session)) => {
                        let name = if target == ScoreTarget::Ids { "ids" } else { "session" };
                        if !self.reveal.contains(&Reveal::PartialScoresToBank) {
                            bail!(
                                "reveal: target \"{name}\" must also list \"partial_scores_to_bank\": the private lookup gives \
                                 the bank the gov's partial score of each id it names"
                            );
                        }
                        if let Some(r) = self.reveal.iter().find(|r| {
                            matches!(
                                r,
                                Reveal::IntersectionIds | Reveal::IntersectionIdsToBank | Reveal::IntersectionSize
                            )
                        }) {
                            bail!("reveal: target \"{name}\" runs no PSI; remove \"{}\"", r.as_str());
                        }
                        if target == ScoreTarget::Session && p.queries_file.is_some() {
                            bail!(
                                "params.queries_file is only used with target = \"ids\" (a session's queries come through `tandem score`)"
                            );
                        }
                        if target == ScoreTarget::Ids && p.queries_file.is_none() {
                            bail!("params.queries_file is missing: the bank's CSV of `id,consent_ref` rows to score");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// This party's side of the job.
    pub fn side(&self, role: Role) -> &SideSpec {
        match role {
            Role::Gov => &self.gov,
            Role::Bank => &self.bank,
        }
    }
}

/// `params.model` names a train job by its id.
fn check_model_name(p: &JobParams) -> Result<()> {
    let model = p.model.as_deref().unwrap_or("");
    if model.is_empty() || !model.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!(
            "params.model = '{model}': name the train job whose model to use (its job id, e.g. \"1714000000-ab12cd34\")"
        );
    }
    Ok(())
}

/// Parameters every kind accepts.
const COMMON_KEYS: &[&str] = &["skip_invalid_ids", "consent_refs", "psi_protocol"];
const TRAIN_KEYS: &[&str] = &[
    "test_fraction",
    "split_seed",
    "test_ids_file",
    "epochs",
    "batch_size",
    "learning_rate",
    "l2_c",
    "sigmoid",
    "frac_bits",
    "seed",
    "scorecard",
    "for_scoring",
    "score_output",
    "winsorize",
    "missing",
    "min_category_count",
    "model",
    "bins",
    "binning",
    "min_bin_share",
    "monotonic",
    "min_iv",
    "correlations",
];
/// Train parameters of the WOE scorecard only.
const WOE_KEYS: &[&str] = &["bins", "binning", "min_bin_share", "monotonic", "min_iv"];
const SCORE_KEYS: &[&str] = &["model", "target", "queries_file", "score_output", "correlations"];
const WATCHLIST_KEYS: &[&str] = &["model", "threshold", "correlations"];
const CHECKUP_KEYS: &[&str] = &["model", "entity", "consent"];

/// What a train job fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainModel {
    /// Bin each column, replace values by their bin's WOE, logistic regression on the WOE
    /// columns, points per attribute ([`models::woe_lr`]).
    WoeScorecard,
    /// Logistic regression on the standardised raw columns.
    RawLr,
}

/// What a score job scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreTarget {
    /// Every entity both nodes hold (after PSI), jointly; the bank learns the scores.
    Intersection,
    /// The ids in the bank's `queries_file`, by private lookup: the gov does not learn which.
    Ids,
    /// A scoring session ([`crate::sessions`]): the gov's keyed table is set up once, then the
    /// bank scores single ids through its admin API (`tandem score`) until the session is closed.
    Session,
}

/// `params.winsorize`: `[low, high]` training-row percentiles, or `true` (the default ones) /
/// `false` (none).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Winsorize {
    On(bool),
    Percentiles([f64; 2]),
}

/// The job's `[params]`, typed. File names are read by each node on its own machine, inside its
/// `node.data_dir` only ([`crate::jobs::files`]: relative, no `..`, regular files).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobParams {
    /// PSI: skip rows with an invalid or repeated ID (counted in the outcome) instead of failing.
    pub skip_invalid_ids: bool,
    /// References of the consents covering the job (recorded in both transcripts).
    pub consent_refs: Vec<String>,
    /// PSI: `"vole"` or `"ecdh"`; default [`PsiProtocol::default_for`] the reveal mode (VOLE
    /// unless only the size is revealed). Both give the same rows; VOLE is faster.
    pub psi_protocol: Option<PsiProtocol>,
    /// Train: about this fraction of the aligned entities is held out for testing (default 0.2):
    /// those whose id, hashed with a key from `split_seed` (default 0), falls below it
    /// ([`crate::jobs::phases::train::is_test_id`]), the same in every run.
    pub test_fraction: Option<f64>,
    pub split_seed: Option<u64>,
    /// Train: file of test entity ids, one per line (header `id` optional), named relative to
    /// `node.data_dir`. Each node reads it in its own data directory, so both operators must hold
    /// the same list there.
    pub test_ids_file: Option<PathBuf>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub learning_rate: Option<f64>,
    pub l2_c: Option<f64>,
    pub sigmoid: Option<Sigmoid>,
    pub frac_bits: Option<u32>,
    /// Seed of the public mini-batch order (the rows are first ordered by their ids' keyed hash,
    /// [`crate::jobs::phases::train::row_order`], so PSI's order does not matter).
    pub seed: Option<u64>,
    pub scorecard: Option<Scorecard>,
    /// Train: both nodes approve the model for later score jobs (each node's policy must allow
    /// job kind `score`); a score job refuses a model trained without it.
    pub for_scoring: bool,
    /// Train (test rows, with `scores_to_bank`) and score: what the bank learns per entity,
    /// `grade` (default), `points` or `probability`; each node's `policy.score_output` caps it.
    pub score_output: Option<ScoreOutput>,
    /// Train, raw features: clip each numeric column at these training-row percentiles
    /// (default `[0.005, 0.995]`; `false`: no clipping).
    pub winsorize: Option<Winsorize>,
    /// Train, raw features: a missing cell is filled and flagged (`"indicator"`, default), filled
    /// (`"impute"`) or fails the job (`"refuse"`).
    pub missing: Option<MissingPolicy>,
    /// Train, raw features: fewest training rows a category needs for its own column (default
    /// 20); rarer ones share `<col>#other`.
    pub min_category_count: Option<usize>,
    /// Score, watchlist, checkup: the id of the train job whose model to use. Train: `woe_scorecard`
    /// (default) or `raw_lr` ([`TrainModel`]).
    pub model: Option<String>,
    /// Watchlist: the probability of default above which the gov learns an entity's id.
    pub threshold: Option<f64>,
    /// Train, WOE scorecard: bins per numeric column before merging (default 10).
    pub bins: Option<usize>,
    /// Train, WOE scorecard: `quantile` (default) or `equal_width`.
    pub binning: Option<BinMethod>,
    /// Train, WOE scorecard: smallest share of the training rows per bin (default 0.05).
    pub min_bin_share: Option<f64>,
    /// Train, WOE scorecard: merge bins until the event rate is monotonic (default false).
    pub monotonic: Option<bool>,
    /// Train, WOE scorecard: columns with a lower information value are left out (default 0.02).
    pub min_iv: Option<f64>,
    pub target: Option<ScoreTarget>,
    /// Score, target `ids`: the bank's CSV `id,consent_ref`, named relative to its `node.data_dir`
    /// (read at the bank only).
    pub queries_file: Option<PathBuf>,
    /// Checkup: the id of the entity (both nodes look it up in their own dataset).
    pub entity: Option<String>,
    /// Checkup: the reference of the entity's consent (required).
    pub consent: Option<String>,
    /// Train, score, watchlist: where the engine's correlated OTs come from, `"iknp"` (default,
    /// faster on a fast link) or `"silent"` (about a third of the bytes, for slow links)
    /// ([`Correlations`]); same results and security.
    pub correlations: Option<Correlations>,
}

impl JobParams {
    pub fn test_fraction(&self) -> f64 {
        match (&self.test_ids_file, self.test_fraction) {
            (Some(_), _) => 0.0,
            (None, f) => f.unwrap_or(0.2),
        }
    }

    /// Training parameters: the job's values over the defaults of [`TrainParams`].
    pub fn train_params(&self) -> TrainParams {
        let d = TrainParams::default();
        TrainParams {
            epochs: self.epochs.unwrap_or(d.epochs),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            learning_rate: self.learning_rate.unwrap_or(d.learning_rate),
            l2_c: self.l2_c.or(d.l2_c),
            sigmoid: self.sigmoid.unwrap_or(d.sigmoid),
            frac_bits: self.frac_bits.unwrap_or(d.frac_bits),
            seed: self.seed.unwrap_or(d.seed),
        }
    }

    /// Raw-feature preparation: the job's values over the defaults of [`PrepParams`].
    pub fn prep_params(&self) -> PrepParams {
        let d = PrepParams::default();
        PrepParams {
            winsorize: match self.winsorize {
                None | Some(Winsorize::On(true)) => d.winsorize,
                Some(Winsorize::On(false)) => None,
                Some(Winsorize::Percentiles(p)) => Some(p),
            },
            missing: self.missing.unwrap_or(d.missing),
            min_category_count: self.min_category_count.unwrap_or(d.min_category_count),
        }
    }

    /// Train: the model kind; `params.model` names it (an unknown name is an error of
    /// [`JobSpec::validate`]).
    pub fn model(&self) -> TrainModel {
        match self.model.as_deref() {
            Some("raw_lr") => TrainModel::RawLr,
            _ => TrainModel::WoeScorecard,
        }
    }

    /// Binning parameters: the job's values over the defaults of [`BinningParams`].
    pub fn binning_params(&self) -> BinningParams {
        let d = BinningParams::default();
        BinningParams {
            bins: self.bins.unwrap_or(d.bins),
            method: self.binning.unwrap_or(d.method),
            min_bin_share: self.min_bin_share.unwrap_or(d.min_bin_share),
            monotonic: self.monotonic.unwrap_or(d.monotonic),
            min_iv: self.min_iv.unwrap_or(d.min_iv),
            min_columns: d.min_columns,
        }
    }

    pub fn score_output(&self) -> ScoreOutput {
        self.score_output.unwrap_or(ScoreOutput::Grade)
    }

    pub fn scorecard(&self) -> Scorecard {
        self.scorecard.clone().unwrap_or_default()
    }

    pub fn correlations(&self) -> Correlations {
        self.correlations.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled(name: &str) -> JobSpec {
        JobSpec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs").join(name)).unwrap()
    }

    fn err(spec: &JobSpec) -> String {
        format!("{:#}", spec.validate().unwrap_err())
    }

    #[test]
    fn bundled_job_files_are_valid_and_map_their_reveal_modes() {
        let psi = bundled("demo-job.toml");
        assert_eq!(psi.psi_reveal().unwrap(), PsiReveal::SizeOnly);
        assert_eq!(psi.psi_protocol().unwrap(), PsiProtocol::Ecdh, "size only: ECDH by default");
        let vole = bundled("demo-psi-vole.toml");
        vole.validate().unwrap();
        assert_eq!((vole.psi_reveal().unwrap(), vole.psi_protocol().unwrap()), (PsiReveal::Both, PsiProtocol::Vole));
        let train = bundled("demo-train.toml");
        assert_eq!(train.psi_protocol().unwrap(), PsiProtocol::Vole, "aligned rows: VOLE by default");
        assert_eq!(
            (train.psi_reveal().unwrap(), train.model_reveal().unwrap()),
            (PsiReveal::Both, ModelReveal::OwnBlock)
        );
        let p = train.params().unwrap();
        assert_eq!((p.test_fraction(), p.train_params().epochs, p.train_params().batch_size), (0.3, 5, 1024));
        assert_eq!(p.scorecard(), Scorecard::default());
        assert_eq!(bundled("demo-score.toml").params().unwrap().target, Some(ScoreTarget::Intersection));
        assert_eq!(bundled("demo-score-ids.toml").params().unwrap().target, Some(ScoreTarget::Ids));
    }

    #[test]
    fn wrong_reveals_and_params_are_refused_naming_the_key() {
        let mut s = bundled("demo-job.toml");
        s.reveal.push(Reveal::IntersectionIds);
        assert!(err(&s).contains("2 PSI modes"), "{}", err(&s));
        s.reveal.clear();
        assert!(err(&s).contains("must list one of"), "{}", err(&s));

        let mut t = bundled("demo-train.toml");
        t.reveal = vec![Reveal::IntersectionSize, Reveal::ModelToOwners, Reveal::Metrics];
        assert!(err(&t).contains("needs \"intersection_ids\""), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        t.reveal.retain(|r| *r != Reveal::Metrics);
        assert!(err(&t).contains("\"metrics\""), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        t.params.insert("epochs".into(), 0.into());
        assert!(err(&t).contains("params.epochs = 0"), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        t.params.insert("epoch".into(), 3.into());
        assert!(err(&t).contains("params.epoch is not a parameter of a train job"), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        t.params.insert("test_ids_file".into(), "t.txt".into());
        assert!(err(&t).contains("either test_ids_file or test_fraction"), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        t.params.insert("target".into(), "ids".into());
        assert!(err(&t).contains("params.target is not a parameter of a train job"), "{}", err(&t));

        let mut t = bundled("demo-train.toml");
        t.params.insert("model".into(), "gbm".into());
        assert!(err(&t).contains("params.model = 'gbm'"), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        t.reveal.retain(|r| *r != Reveal::WoeToOwner);
        assert!(err(&t).contains("must list \"woe_to_owner\""), "{}", err(&t));
        t.params.insert("model".into(), "raw_lr".into());
        t.validate().unwrap();
        t.params.insert("bins".into(), 5.into());
        assert!(err(&t).contains("params.bins is a binning parameter"), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        t.params.insert("min_bin_share".into(), 0.6.into());
        assert!(err(&t).contains("params.min_bin_share = 0.6"), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        t.params.insert("binning".into(), "equal_width".into());
        t.params.insert("monotonic".into(), true.into());
        t.validate().unwrap();
        let b = t.params().unwrap().binning_params();
        assert_eq!((b.method, b.monotonic, b.bins), (BinMethod::EqualWidth, true, 10));

        let mut s = bundled("demo-score-ids.toml");
        s.reveal.push(Reveal::IntersectionSize);
        assert!(err(&s).contains("runs no PSI"), "{}", err(&s));
        let mut s = bundled("demo-score-ids.toml");
        s.params.remove("queries_file");
        assert!(err(&s).contains("params.queries_file is missing"), "{}", err(&s));
        let mut s = bundled("demo-score.toml");
        s.params.insert("model".into(), "../x".into());
        assert!(err(&s).contains("params.model = '../x'"), "{}", err(&s));

        let w = bundled("demo-watchlist.toml");
        assert_eq!(w.params().unwrap().threshold, Some(0.5));
        let mut s = w.clone();
        s.reveal.retain(|r| *r != Reveal::WatchlistToGov);
        assert!(err(&s).contains("must list \"watchlist_to_gov\""), "{}", err(&s));
        let mut s = w.clone();
        s.params.insert("threshold".into(), 1.5.into());
        assert!(err(&s).contains("params.threshold = 1.5"), "{}", err(&s));
        let mut s = w.clone();
        s.params.remove("threshold");
        assert!(err(&s).contains("params.threshold is missing"), "{}", err(&s));
        let mut s = w;
        s.params.insert("target".into(), "ids".into());
        assert!(err(&s).contains("params.target is not a parameter of a watchlist job"), "{}", err(&s));
    }
}
