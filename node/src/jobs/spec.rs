//! What a job asks for: written by the submitting operator as TOML, sent to the peer as the proposal.
//!
//! The `[params]` table is typed by the job's kind ([`Params`]): each kind's keys are the fields
//! of its struct ([`CommonParams`] for every kind, then e.g. [`TrainJobParams`]), and the keys a
//! job may use are read from those structs, so the list in an error cannot drift from what is
//! accepted. On the wire and in the transcript's manifest a spec is the same JSON object as the
//! TOML file: `kind`, the sides and a flat `params` object ([`RawJobSpec`]).

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
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

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

/// A policy rule: what may be revealed, and to whom. A job lists every reveal it needs; both
/// policies must allow each; values are opened only under a rule the job lists
/// ([`protocol::disclose`]). Written as the names of [`Reveal::as_str`]; the PSI and model modes
/// are the protocol's own [`PsiReveal`] and [`ModelReveal`], named by their `rule()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reveal {
    /// PSI: `intersection_ids` (both learn which of their own ids are in the intersection, and
    /// its aligned order), `intersection_ids_to_bank` (the bank does; the gov learns only its
    /// size) or `intersection_size` (both learn the size only).
    Psi(PsiReveal),
    /// Train: `model_to_both` (both learn the whole model), `model_to_owners` (each party the
    /// weights of its own feature block, the bank the bias) or `model_shared` (the model stays
    /// secret-shared).
    Model(ModelReveal),
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
    /// Every rule, in the order error messages list them.
    pub const ALL: [Reveal; 12] = [
        Reveal::Psi(PsiReveal::SizeOnly),
        Reveal::Psi(PsiReveal::Both),
        Reveal::Psi(PsiReveal::BankOnly),
        Reveal::Model(ModelReveal::OwnBlock),
        Reveal::Model(ModelReveal::Both),
        Reveal::Model(ModelReveal::None),
        Reveal::ScoresToBank,
        Reveal::PartialScoresToBank,
        Reveal::Metrics,
        Reveal::WatchlistToGov,
        Reveal::WoeToOwner,
        Reveal::CheckupToGov,
    ];

    /// The rule's name in policies and job files; the code that opens a value names the same
    /// constant in its grant.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reveal::Psi(mode) => mode.rule(),
            Reveal::Model(mode) => mode.rule(),
            Reveal::ScoresToBank => models::secure_lr::SCORES_TO_BANK,
            Reveal::PartialScoresToBank => "partial_scores_to_bank",
            Reveal::Metrics => models::secure_lr::METRICS,
            Reveal::WatchlistToGov => models::watchlist::RULE,
            Reveal::WoeToOwner => models::woe_lr::WOE_TO_OWNER,
            Reveal::CheckupToGov => "checkup_to_gov",
        }
    }

    /// How a transcript's reveal record names the rule that allowed it.
    pub fn transcript_rule(rule: &str) -> String {
        format!("policy.reveals: {rule}")
    }
}

/// The names of [`Reveal::ALL`] (for serde's "expected one of").
const REVEAL_NAMES: [&str; 12] = {
    let mut names = [""; 12];
    let mut i = 0;
    while i < names.len() {
        names[i] = Reveal::ALL[i].as_str();
        i += 1;
    }
    names
};

impl Serialize for Reveal {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Reveal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Reveal, D::Error> {
        let name = String::deserialize(d)?;
        Reveal::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| de::Error::unknown_variant(&name, &REVEAL_NAMES))
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

/// A job as the operator writes it (`tandem job submit FILE`), typed. Read and written as its
/// [`RawJobSpec`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawJobSpec")]
pub struct JobSpec {
    /// Free text shown in job lists.
    pub description: String,
    pub reveal: Vec<Reveal>,
    /// PSI refuses to continue if the intersection is smaller.
    pub min_intersection: u64,
    pub gov: SideSpec,
    pub bank: SideSpec,
    /// The `[params]` every kind accepts.
    pub common: CommonParams,
    /// The job's kind and its own `[params]`.
    pub params: Params,
}

/// A job spec as written in a job file and sent to the peer: `params` is the flat `[params]`
/// table. [`JobSpec`] is read from it (unknown keys and wrong types refused naming the key) and
/// written as it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJobSpec {
    pub kind: JobKind,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub reveal: Vec<Reveal>,
    #[serde(default)]
    pub min_intersection: u64,
    pub gov: SideSpec,
    pub bank: SideSpec,
    #[serde(default)]
    pub params: Map<String, Value>,
}

impl TryFrom<RawJobSpec> for JobSpec {
    type Error = String;

    fn try_from(raw: RawJobSpec) -> std::result::Result<JobSpec, String> {
        let (common, params) = Params::parse(raw.kind, raw.params)?;
        Ok(JobSpec {
            description: raw.description,
            reveal: raw.reveal,
            min_intersection: raw.min_intersection,
            gov: raw.gov,
            bank: raw.bank,
            common,
            params,
        })
    }
}

impl Serialize for JobSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        RawJobSpec {
            kind: self.kind(),
            description: self.description.clone(),
            reveal: self.reveal.clone(),
            min_intersection: self.min_intersection,
            gov: self.gov.clone(),
            bank: self.bank.clone(),
            params: self.params_map().map_err(serde::ser::Error::custom)?,
        }
        .serialize(s)
    }
}

impl JobSpec {
    /// Reads a job TOML file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<JobSpec> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read job file {}", path.display()))?;
        let spec: JobSpec = toml::from_str(&text).map_err(|e| anyhow::anyhow!("job file {}: {e}", path.display()))?;
        spec.validate().with_context(|| format!("job file {}", path.display()))?;
        Ok(spec)
    }

    pub fn kind(&self) -> JobKind {
        self.params.kind()
    }

    /// The `[params]` table as written (the keys set, with their values).
    pub fn params_map(&self) -> serde_json::Result<Map<String, Value>> {
        let mut map = to_map(&self.common)?;
        map.extend(match &self.params {
            Params::Psi => Map::new(),
            Params::Train(p) => to_map(p)?,
            Params::Score(p) => to_map(p)?,
            Params::Watchlist(p) => to_map(p)?,
            Params::Checkup(p) => to_map(p)?,
        });
        Ok(map)
    }

    /// References of the consents covering the job: `params.consent_refs`, then a check-up's
    /// `params.consent` (recorded in the manifest).
    pub fn consents(&self) -> Vec<String> {
        let checkup = match &self.params {
            Params::Checkup(p) => p.consent.clone(),
            _ => None,
        };
        self.common.consent_refs.iter().flatten().cloned().chain(checkup).collect()
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
        if self.kind() == JobKind::Train && self.bank.label.is_none() {
            bail!("bank.label is missing: a train job needs the bank's label column, e.g. label = \"y\"");
        }
        match &self.params {
            Params::Psi => self.psi_protocol().map(drop),
            Params::Train(p) => self.check_train(p),
            Params::Score(p) => self.check_score(p),
            Params::Watchlist(p) => self.check_watchlist(p),
            Params::Checkup(p) => self.check_checkup(p),
        }
    }

    /// Who learns the intersection: the one PSI mode the job lists in `reveal`.
    pub fn psi_reveal(&self) -> Result<PsiReveal> {
        let missing = format!(
            "reveal: a {} job runs PSI and must list one of \"intersection_ids\" (both learn their aligned rows), \
             \"intersection_ids_to_bank\" (the bank does, the gov learns the size) or \"intersection_size\"",
            self.kind().as_str()
        );
        self.one_mode(
            "PSI",
            |r| match r {
                Reveal::Psi(mode) => Some(mode),
                _ => None,
            },
            &missing,
        )
    }

    /// The PSI protocol: `params.psi_protocol`, or the default for the reveal mode. VOLE with
    /// `intersection_size` is an error (its OPRF receiver learns which of its ids match).
    pub fn psi_protocol(&self) -> Result<PsiProtocol> {
        let reveal = self.psi_reveal()?;
        match self.common.psi_protocol {
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
            |r| match r {
                Reveal::Model(mode) => Some(mode),
                _ => None,
            },
            "reveal: a train job must list one of \"model_to_both\", \"model_to_owners\" (each party its own \
             weights; needed to score single IDs later) or \"model_shared\"",
        )
    }

    /// The one mode `mode_of` finds in `reveal`; none or several is an error.
    fn one_mode<T>(&self, what: &str, mode_of: fn(Reveal) -> Option<T>, missing: &str) -> Result<T> {
        let mut listed: Vec<Reveal> = self.reveal.iter().copied().filter(|r| mode_of(*r).is_some()).collect();
        match listed.len() {
            1 => Ok(mode_of(listed.remove(0)).expect("a mode")),
            0 => bail!("{missing}"),
            n => bail!(
                "reveal lists {n} {what} modes ({}): keep exactly one",
                listed.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn check_train(&self, p: &TrainJobParams) -> Result<()> {
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
        p.binning_params().validate().map_err(|e| anyhow::anyhow!("params.{e}"))?;
        match p.model() {
            TrainModel::WoeScorecard if !self.reveal.contains(&Reveal::WoeToOwner) => bail!(
                "reveal: a WOE scorecard (params.model = \"woe_scorecard\", the default) must list \
                 \"woe_to_owner\": the gov learns the event counts of its own bins; or set model = \"raw_lr\""
            ),
            TrainModel::RawLr => {
                if let Some(k) = p.binning_key_set() {
                    bail!("params.{k} is a binning parameter: it needs model = \"woe_scorecard\"");
                }
                if self.reveal.contains(&Reveal::WoeToOwner) {
                    bail!("reveal: model = \"raw_lr\" bins nothing; remove \"woe_to_owner\"");
                }
            }
            TrainModel::WoeScorecard => {}
        }
        Ok(())
    }

    fn check_score(&self, p: &ScoreJobParams) -> Result<()> {
        check_model_name(&p.model)?;
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
                if let Some(r) = self.reveal.iter().find(|r| matches!(r, Reveal::Psi(_))) {
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
        Ok(())
    }

    fn check_watchlist(&self, p: &WatchlistJobParams) -> Result<()> {
        check_model_name(&p.model)?;
        if self.psi_reveal()? != PsiReveal::Both {
            bail!("reveal: a watchlist job needs \"intersection_ids\": the gov names the flagged entities by id");
        }
        if !self.reveal.contains(&Reveal::WatchlistToGov) {
            bail!("reveal: a watchlist job must list \"watchlist_to_gov\"");
        }
        let threshold = p.threshold.context(
            "params.threshold is missing: the probability of default above which an entity is listed, e.g. 0.3",
        )?;
        models::watchlist::threshold_logit(threshold).map_err(|e| anyhow::anyhow!("params.{e}"))?;
        Ok(())
    }

    fn check_checkup(&self, p: &CheckupJobParams) -> Result<()> {
        check_model_name(&p.model)?;
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
fn check_model_name(model: &Option<String>) -> Result<()> {
    let model = model.as_deref().unwrap_or("");
    if model.is_empty() || !model.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!(
            "params.model = '{model}': name the train job whose model to use (its job id, e.g. \"1714000000-ab12cd34\")"
        );
    }
    Ok(())
}

/// A job's kind with its own typed `[params]`.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per job: boxing the train variant would buy nothing
pub enum Params {
    Psi,
    Train(TrainJobParams),
    Score(ScoreJobParams),
    Watchlist(WatchlistJobParams),
    Checkup(CheckupJobParams),
}

impl Params {
    pub fn kind(&self) -> JobKind {
        match self {
            Params::Psi => JobKind::Psi,
            Params::Train(_) => JobKind::Train,
            Params::Score(_) => JobKind::Score,
            Params::Watchlist(_) => JobKind::Watchlist,
            Params::Checkup(_) => JobKind::Checkup,
        }
    }

    /// The keys of `[params]` a job of `kind` accepts: the fields of [`CommonParams`], then those
    /// of its kind's struct.
    pub fn keys(kind: JobKind) -> Vec<&'static str> {
        let own = match kind {
            JobKind::Psi => &[],
            JobKind::Train => field_names::<TrainJobParams>(),
            JobKind::Score => field_names::<ScoreJobParams>(),
            JobKind::Watchlist => field_names::<WatchlistJobParams>(),
            JobKind::Checkup => field_names::<CheckupJobParams>(),
        };
        field_names::<CommonParams>().iter().chain(own).copied().collect()
    }

    /// Types the flat `[params]` of a job of `kind`: a key the kind does not accept is refused
    /// naming it and listing the accepted ones, a wrong value naming the key and the type expected.
    fn parse(kind: JobKind, params: Map<String, Value>) -> std::result::Result<(CommonParams, Params), String> {
        let keys = Params::keys(kind);
        if let Some(key) = params.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(format!(
                "params.{key} is not a parameter of a {} job (parameters: {})",
                kind.as_str(),
                keys.join(", ")
            ));
        }
        let common_keys = field_names::<CommonParams>();
        let (common, own): (Map<String, Value>, Map<String, Value>) =
            params.into_iter().partition(|(k, _)| common_keys.contains(&k.as_str()));
        let params = match kind {
            JobKind::Psi => Params::Psi,
            JobKind::Train => Params::Train(from_map(own)?),
            JobKind::Score => Params::Score(from_map(own)?),
            JobKind::Watchlist => Params::Watchlist(from_map(own)?),
            JobKind::Checkup => Params::Checkup(from_map(own)?),
        };
        Ok((from_map(common)?, params))
    }

    /// Score, watchlist and checkup jobs: the id of the train job whose model they use.
    pub fn model_id(&self) -> Option<&str> {
        match self {
            Params::Score(p) => p.model.as_deref(),
            Params::Watchlist(p) => p.model.as_deref(),
            Params::Checkup(p) => p.model.as_deref(),
            Params::Psi | Params::Train(_) => None,
        }
    }

    /// What the bank learns per entity: train and score jobs' `score_output` (default grade).
    pub fn score_output(&self) -> ScoreOutput {
        match self {
            Params::Train(p) => p.score_output(),
            Params::Score(p) => p.score_output(),
            _ => ScoreOutput::Grade,
        }
    }

    /// Whether the job runs PSI (a score job of target `ids` or `session`, and a checkup, do not).
    pub fn runs_psi(&self) -> bool {
        match self {
            Params::Psi | Params::Train(_) | Params::Watchlist(_) => true,
            Params::Score(p) => p.target == Some(ScoreTarget::Intersection),
            Params::Checkup(_) => false,
        }
    }
}

/// `value` (a params struct) as the `[params]` keys it sets.
fn to_map<T: Serialize>(value: &T) -> serde_json::Result<Map<String, Value>> {
    match serde_json::to_value(value)? {
        Value::Object(map) => Ok(map),
        other => Err(serde::ser::Error::custom(format!("params serialise to {other}, not a table"))),
    }
}

/// Types `map`, whose keys are all fields of `T`; an error names the key that fails.
fn from_map<T: DeserializeOwned>(map: Map<String, Value>) -> std::result::Result<T, String> {
    serde_json::from_value(Value::Object(map.clone())).map_err(|e| {
        // serde_json does not say which key failed: find the first one that fails alone.
        let key = map.iter().find(|(k, v)| {
            let one = Map::from_iter([((*k).clone(), (*v).clone())]);
            serde_json::from_value::<T>(Value::Object(one)).is_err()
        });
        match key {
            Some((k, _)) => format!("params.{k}: {e}"),
            None => format!("params: {e}"),
        }
    })
}

/// The field names serde reads for struct `T` (renames applied): asks `T`'s derived
/// `Deserialize` for them with a deserializer that only records them.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("only the field names were asked for"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

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
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Winsorize {
    On(bool),
    Percentiles([f64; 2]),
}

// The params structs: every field is a `[params]` key (its serde name), optional, and written
// back only when set, so a spec reads and writes the table as the operator wrote it. File names
// are read by each node on its own machine, inside its `node.data_dir` only
// ([`crate::jobs::files`]: relative, no `..`, regular files).

/// `[params]` every kind accepts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonParams {
    /// PSI: skip rows with an invalid or repeated ID (counted in the outcome) instead of failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_invalid_ids: Option<bool>,
    /// References of the consents covering the job (recorded in both transcripts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_refs: Option<Vec<String>>,
    /// PSI: `"vole"` or `"ecdh"`; default [`PsiProtocol::default_for`] the reveal mode (VOLE
    /// unless only the size is revealed). Both give the same rows; VOLE is faster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi_protocol: Option<PsiProtocol>,
}

impl CommonParams {
    pub fn skip_invalid_ids(&self) -> bool {
        self.skip_invalid_ids.unwrap_or(false)
    }
}

/// `[params]` of a train job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainJobParams {
    /// About this fraction of the aligned entities is held out for testing (default 0.2):
    /// those whose id, hashed with a key from `split_seed` (default 0), falls below it
    /// ([`crate::jobs::phases::train::is_test_id`]), the same in every run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    /// File of test entity ids, one per line (header `id` optional), named relative to
    /// `node.data_dir`. Each node reads it in its own data directory, so both operators must hold
    /// the same list there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_ids_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2_c: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigmoid: Option<Sigmoid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frac_bits: Option<u32>,
    /// Seed of the public mini-batch order (the rows are first ordered by their ids' keyed hash,
    /// [`crate::jobs::phases::train::row_order`], so PSI's order does not matter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<Scorecard>,
    /// Both nodes approve the model for later score jobs (each node's policy must allow job kind
    /// `score`); a score job refuses a model trained without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_scoring: Option<bool>,
    /// With `scores_to_bank`: what the bank learns per test entity, `grade` (default), `points`
    /// or `probability`; each node's `policy.score_output` caps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_output: Option<ScoreOutput>,
    /// Raw features: clip each numeric column at these training-row percentiles (default
    /// `[0.005, 0.995]`; `false`: no clipping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winsorize: Option<Winsorize>,
    /// Raw features: a missing cell is filled and flagged (`"indicator"`, default), filled
    /// (`"impute"`) or fails the job (`"refuse"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<MissingPolicy>,
    /// Raw features: fewest training rows a category needs for its own column (default 20);
    /// rarer ones share `<col>#other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_category_count: Option<usize>,
    /// `woe_scorecard` (default) or `raw_lr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<TrainModel>,
    /// WOE scorecard: bins per numeric column before merging (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bins: Option<usize>,
    /// WOE scorecard: `quantile` (default) or `equal_width`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binning: Option<BinMethod>,
    /// WOE scorecard: smallest share of the training rows per bin (default 0.05).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_bin_share: Option<f64>,
    /// WOE scorecard: merge bins until the event rate is monotonic (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monotonic: Option<bool>,
    /// WOE scorecard: columns with a lower information value are left out (default 0.02).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_iv: Option<f64>,
    /// Where the engine's correlated OTs come from, `"iknp"` (default, faster on a fast link) or
    /// `"silent"` (about a third of the bytes, for slow links) ([`Correlations`]); same results
    /// and security.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlations: Option<Correlations>,
}

impl TrainJobParams {
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

    pub fn model(&self) -> TrainModel {
        self.model.unwrap_or(TrainModel::WoeScorecard)
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

    /// The first binning parameter (WOE scorecard only) the job sets.
    fn binning_key_set(&self) -> Option<&'static str> {
        [
            ("bins", self.bins.is_some()),
            ("binning", self.binning.is_some()),
            ("min_bin_share", self.min_bin_share.is_some()),
            ("monotonic", self.monotonic.is_some()),
            ("min_iv", self.min_iv.is_some()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }

    pub fn for_scoring(&self) -> bool {
        self.for_scoring.unwrap_or(false)
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

/// `[params]` of a score job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoreJobParams {
    /// The id of the train job whose model to use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<ScoreTarget>,
    /// Target `ids`: the bank's CSV `id,consent_ref`, named relative to its `node.data_dir`
    /// (read at the bank only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queries_file: Option<PathBuf>,
    /// What the bank learns per entity, `grade` (default), `points` or `probability`; each
    /// node's `policy.score_output` caps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_output: Option<ScoreOutput>,
    /// As [`TrainJobParams::correlations`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlations: Option<Correlations>,
}

impl ScoreJobParams {
    pub fn score_output(&self) -> ScoreOutput {
        self.score_output.unwrap_or(ScoreOutput::Grade)
    }

    pub fn correlations(&self) -> Correlations {
        self.correlations.unwrap_or_default()
    }
}

/// `[params]` of a watchlist job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchlistJobParams {
    /// The id of the train job whose model to use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The probability of default above which the gov learns an entity's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// As [`TrainJobParams::correlations`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlations: Option<Correlations>,
}

impl WatchlistJobParams {
    pub fn correlations(&self) -> Correlations {
        self.correlations.unwrap_or_default()
    }
}

/// `[params]` of a checkup job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckupJobParams {
    /// The id of the train job whose model to use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The id of the entity (both nodes look it up in their own dataset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// The reference of the entity's consent (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
    }

    fn bundled(name: &str) -> JobSpec {
        JobSpec::load(&config_dir().join(name)).unwrap()
    }

    fn err(spec: &JobSpec) -> String {
        format!("{:#}", spec.validate().unwrap_err())
    }

    /// The bundled job file `name` with `lines` set in its `[params]` (replacing a key it sets),
    /// as read from a job file.
    fn with_params(name: &str, lines: &str) -> std::result::Result<JobSpec, String> {
        let text = std::fs::read_to_string(config_dir().join(name)).unwrap();
        let keys: Vec<String> = lines.lines().map(|l| format!("{} =", l.split(" =").next().unwrap())).collect();
        let mut text: String = text
            .lines()
            .filter(|l| !keys.iter().any(|k| l.starts_with(k.as_str())))
            .map(|l| format!("{l}\n"))
            .collect();
        if !text.lines().any(|l| l == "[params]") {
            text.push_str("\n[params]\n");
        }
        text.push_str(&format!("\n{lines}\n"));
        toml::from_str::<JobSpec>(&text).map_err(|e| e.to_string())
    }

    fn train(s: &mut JobSpec) -> &mut TrainJobParams {
        match &mut s.params {
            Params::Train(p) => p,
            other => panic!("not a train job: {other:?}"),
        }
    }

    /// Every key of every kind set, in struct literals without defaults: a field added to a
    /// params struct fails to compile here until the test sets it.
    fn every_key_set() -> Vec<(JobKind, CommonParams, Params)> {
        let common = CommonParams {
            skip_invalid_ids: Some(true),
            consent_refs: Some(vec!["DSA-1".into()]),
            psi_protocol: Some(PsiProtocol::Ecdh),
        };
        let train = TrainJobParams {
            test_fraction: Some(0.25),
            split_seed: Some(3),
            test_ids_file: Some("t.txt".into()),
            epochs: Some(2),
            batch_size: Some(64),
            learning_rate: Some(0.25),
            l2_c: Some(2.0),
            sigmoid: Some(Sigmoid::Poly3),
            frac_bits: Some(14),
            seed: Some(9),
            scorecard: Some(Scorecard::default()),
            for_scoring: Some(true),
            score_output: Some(ScoreOutput::Points),
            winsorize: Some(Winsorize::Percentiles([0.01, 0.99])),
            missing: Some(MissingPolicy::Refuse),
            min_category_count: Some(5),
            model: Some(TrainModel::RawLr),
            bins: Some(7),
            binning: Some(BinMethod::EqualWidth),
            min_bin_share: Some(0.1),
            monotonic: Some(true),
            min_iv: Some(0.05),
            correlations: Some(Correlations::Silent),
        };
        let score = ScoreJobParams {
            model: Some("1-ab".into()),
            target: Some(ScoreTarget::Ids),
            queries_file: Some("q.csv".into()),
            score_output: Some(ScoreOutput::Probability),
            correlations: Some(Correlations::Silent),
        };
        let watchlist = WatchlistJobParams {
            model: Some("1-ab".into()),
            threshold: Some(0.4),
            correlations: Some(Correlations::Iknp),
        };
        let checkup =
            CheckupJobParams { model: Some("1-ab".into()), entity: Some("25115".into()), consent: Some("C-1".into()) };
        vec![
            (JobKind::Psi, common.clone(), Params::Psi),
            (JobKind::Train, common.clone(), Params::Train(train)),
            (JobKind::Score, common.clone(), Params::Score(score)),
            (JobKind::Watchlist, common.clone(), Params::Watchlist(watchlist)),
            (JobKind::Checkup, common, Params::Checkup(checkup)),
        ]
    }

    fn raw(kind: JobKind, params: Map<String, Value>) -> RawJobSpec {
        let side = |d: &str| SideSpec { dataset: d.into(), columns: vec![], label: None };
        RawJobSpec {
            kind,
            description: String::new(),
            reveal: vec![],
            min_intersection: 0,
            gov: side("g"),
            bank: side("b"),
            params,
        }
    }

    #[test]
    fn every_key_of_every_kind_is_accepted_and_a_misspelt_one_refused_listing_the_keys() {
        for (kind, common, params) in every_key_set() {
            let spec = JobSpec {
                description: String::new(),
                reveal: vec![],
                min_intersection: 0,
                gov: SideSpec { dataset: "g".into(), columns: vec![], label: None },
                bank: SideSpec { dataset: "b".into(), columns: vec![], label: None },
                common,
                params,
            };
            let map = spec.params_map().unwrap();
            let mut written: Vec<&str> = map.keys().map(String::as_str).collect();
            let mut keys = Params::keys(kind);
            written.sort();
            keys.sort();
            assert_eq!(written, keys, "{kind:?}: every accepted key is written when set");
            let keys = Params::keys(kind).join(", ");
            for (key, value) in &map {
                let one = Map::from_iter([(key.clone(), value.clone())]);
                let back = JobSpec::try_from(raw(kind, one.clone())).unwrap_or_else(|e| panic!("{kind:?} {key}: {e}"));
                assert_eq!(back.params_map().unwrap(), one, "{kind:?}: {key} reads back as written");

                let misspelt = format!("{key}s");
                let e = JobSpec::try_from(raw(kind, Map::from_iter([(misspelt.clone(), value.clone())]))).unwrap_err();
                let kind = kind.as_str();
                assert_eq!(e, format!("params.{misspelt} is not a parameter of a {kind} job (parameters: {keys})"));
            }
            let back = JobSpec::try_from(raw(kind, map.clone())).unwrap();
            assert_eq!(back, spec, "{kind:?}: all keys together read back as the spec");
        }
        assert_eq!(
            Params::keys(JobKind::Watchlist),
            ["skip_invalid_ids", "consent_refs", "psi_protocol", "model", "threshold", "correlations"]
        );
    }

    /// Every bundled job file reads as typed, and its spec is written to the peer as the same
    /// JSON as the file's flat form: the wire and manifest format did not change.
    #[test]
    fn bundled_job_files_read_and_are_written_as_their_flat_form() {
        let mut n = 0;
        for entry in std::fs::read_dir(config_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if !name.starts_with("demo-") {
                continue; // node configs (gov.toml, bank.toml): tests/config.rs
            }
            let spec = JobSpec::load(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let flat: RawJobSpec = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(serde_json::to_value(&spec).unwrap(), serde_json::to_value(&flat).unwrap(), "{name}");
            let bytes = serde_json::to_vec(&spec).unwrap();
            assert_eq!(serde_json::from_slice::<JobSpec>(&bytes).unwrap(), spec, "{name}");
            n += 1;
        }
        assert_eq!(n, 8, "the bundled job files");
    }

    #[test]
    fn bundled_job_files_are_valid_and_map_their_reveal_modes() {
        let psi = bundled("demo-job.toml");
        assert_eq!(psi.psi_reveal().unwrap(), PsiReveal::SizeOnly);
        assert_eq!(psi.psi_protocol().unwrap(), PsiProtocol::Ecdh, "size only: ECDH by default");
        let vole = bundled("demo-psi-vole.toml");
        assert_eq!((vole.psi_reveal().unwrap(), vole.psi_protocol().unwrap()), (PsiReveal::Both, PsiProtocol::Vole));
        let mut t = bundled("demo-train.toml");
        assert_eq!(t.psi_protocol().unwrap(), PsiProtocol::Vole, "aligned rows: VOLE by default");
        assert_eq!((t.psi_reveal().unwrap(), t.model_reveal().unwrap()), (PsiReveal::Both, ModelReveal::OwnBlock));
        let p = train(&mut t);
        assert_eq!((p.test_fraction(), p.train_params().epochs, p.train_params().batch_size), (0.3, 5, 1024));
        assert_eq!((p.scorecard(), p.model(), p.for_scoring()), (Scorecard::default(), TrainModel::WoeScorecard, true));
        let target = |name| match bundled(name).params {
            Params::Score(p) => p.target,
            other => panic!("{other:?}"),
        };
        assert_eq!(target("demo-score.toml"), Some(ScoreTarget::Intersection));
        assert_eq!(target("demo-score-ids.toml"), Some(ScoreTarget::Ids));
        assert!(bundled("demo-score.toml").params.runs_psi() && !bundled("demo-score-ids.toml").params.runs_psi());
        assert_eq!(bundled("demo-watchlist.toml").params.model_id(), Some("TRAIN_JOB_ID"));
    }

    #[test]
    fn reveal_rules_read_and_write_by_their_one_name() {
        let written = [
            "intersection_size",
            "intersection_ids",
            "intersection_ids_to_bank",
            "model_to_owners",
            "model_to_both",
            "model_shared",
            "scores_to_bank",
            "partial_scores_to_bank",
            "metrics",
            "watchlist_to_gov",
            "woe_to_owner",
            "checkup_to_gov",
        ];
        assert_eq!(REVEAL_NAMES, written, "the names in policies and job files (README, configs/)");
        for r in Reveal::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<Reveal>(&json).unwrap(), r);
        }
        assert_eq!(Reveal::Psi(PsiReveal::BankOnly).as_str(), "intersection_ids_to_bank");
        assert_eq!(Reveal::Model(ModelReveal::None).as_str(), "model_shared");
        let e = serde_json::from_str::<Reveal>("\"model_to_all\"").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown variant `model_to_all`, expected one of `intersection_size`, `intersection_ids`, "),
            "{e}"
        );
        assert!(e.contains("`woe_to_owner`, `checkup_to_gov`"), "{e}");
    }

    #[test]
    fn wrong_reveals_and_params_are_refused_naming_the_key() {
        let mut s = bundled("demo-job.toml");
        s.reveal.push(Reveal::Psi(PsiReveal::Both));
        assert!(err(&s).contains("2 PSI modes (intersection_size, intersection_ids)"), "{}", err(&s));
        s.reveal.clear();
        assert!(err(&s).contains("must list one of"), "{}", err(&s));

        let mut t = bundled("demo-train.toml");
        t.reveal = vec![Reveal::Psi(PsiReveal::SizeOnly), Reveal::Model(ModelReveal::OwnBlock), Reveal::Metrics];
        assert!(err(&t).contains("needs \"intersection_ids\""), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        t.reveal.retain(|r| *r != Reveal::Metrics);
        assert!(err(&t).contains("\"metrics\""), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        train(&mut t).epochs = Some(0);
        assert!(err(&t).contains("params.epochs = 0"), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        train(&mut t).test_ids_file = Some("t.txt".into());
        assert!(err(&t).contains("either test_ids_file or test_fraction"), "{}", err(&t));

        let e = with_params("demo-train.toml", "epoch = 3").unwrap_err();
        assert!(e.contains("params.epoch is not a parameter of a train job (parameters: skip_invalid_ids, "), "{e}");
        let e = with_params("demo-train.toml", "target = \"ids\"").unwrap_err();
        assert!(e.contains("params.target is not a parameter of a train job"), "{e}");
        let e = with_params("demo-job.toml", "epochs = 3").unwrap_err();
        assert!(e.contains("params.epochs is not a parameter of a psi job (parameters: skip_invalid_ids, consent_refs, psi_protocol)"), "{e}");
        let e = with_params("demo-train.toml", "bins = \"big\"").unwrap_err();
        assert!(e.contains("params.bins: invalid type: string \"big\", expected usize"), "{e}");
        let e = with_params("demo-job.toml", "skip_invalid_ids = 1").unwrap_err();
        assert!(e.contains("params.skip_invalid_ids: invalid type: integer `1`, expected a boolean"), "{e}");
        let e = with_params("demo-train.toml", "missing = \"drop\"").unwrap_err();
        assert!(
            e.contains("params.missing: unknown variant `drop`, expected one of `indicator`, `impute`, `refuse`"),
            "{e}"
        );

        let e = with_params("demo-train.toml", "model = \"gbm\"").unwrap_err();
        assert!(e.contains("params.model: unknown variant `gbm`, expected `woe_scorecard` or `raw_lr`"), "{e}");
        let mut t = bundled("demo-train.toml");
        t.reveal.retain(|r| *r != Reveal::WoeToOwner);
        assert!(err(&t).contains("must list \"woe_to_owner\""), "{}", err(&t));
        train(&mut t).model = Some(TrainModel::RawLr);
        t.validate().unwrap();
        train(&mut t).bins = Some(5);
        assert!(err(&t).contains("params.bins is a binning parameter"), "{}", err(&t));
        let mut t = bundled("demo-train.toml");
        train(&mut t).min_bin_share = Some(0.6);
        assert!(err(&t).contains("params.min_bin_share = 0.6"), "{}", err(&t));
        let mut t = with_params("demo-train.toml", "binning = \"equal_width\"\nmonotonic = true").unwrap();
        t.validate().unwrap();
        let b = train(&mut t).binning_params();
        assert_eq!((b.method, b.monotonic, b.bins), (BinMethod::EqualWidth, true, 10));

        let mut s = bundled("demo-score-ids.toml");
        s.reveal.push(Reveal::Psi(PsiReveal::SizeOnly));
        assert!(err(&s).contains("runs no PSI; remove \"intersection_size\""), "{}", err(&s));
        let mut s = bundled("demo-score-ids.toml");
        let Params::Score(p) = &mut s.params else { panic!() };
        p.queries_file = None;
        assert!(err(&s).contains("params.queries_file is missing"), "{}", err(&s));
        let mut s = bundled("demo-score.toml");
        let Params::Score(p) = &mut s.params else { panic!() };
        p.model = Some("../x".into());
        assert!(err(&s).contains("params.model = '../x'"), "{}", err(&s));

        let w = bundled("demo-watchlist.toml");
        fn threshold(s: &mut JobSpec) -> &mut Option<f64> {
            match &mut s.params {
                Params::Watchlist(p) => &mut p.threshold,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(*threshold(&mut w.clone()), Some(0.5));
        let mut s = w.clone();
        s.reveal.retain(|r| *r != Reveal::WatchlistToGov);
        assert!(err(&s).contains("must list \"watchlist_to_gov\""), "{}", err(&s));
        let mut s = w.clone();
        *threshold(&mut s) = Some(1.5);
        assert!(err(&s).contains("params.threshold = 1.5"), "{}", err(&s));
        let mut s = w;
        *threshold(&mut s) = None;
        assert!(err(&s).contains("params.threshold is missing"), "{}", err(&s));
        let e = with_params("demo-watchlist.toml", "target = \"ids\"").unwrap_err();
        assert!(e.contains("params.target is not a parameter of a watchlist job"), "{e}");
    }
}
