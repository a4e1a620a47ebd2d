//! Node configuration (`tandem serve --config FILE`): one TOML file per node.
//!
//! Unknown keys are errors naming the key; every other error names the key and the fix.
//! Relative paths are resolved against the directory of the config file.

use models::scorecard::ScoreOutput;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protocol::Role;
use serde::{Deserialize, Serialize};

use crate::jobs::spec::{JobKind, Reveal};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeSection,
    pub admin: AdminSection,
    pub peer: PeerSection,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub transcript: TranscriptSettings,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub datasets: BTreeMap<String, DatasetConfig>,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub console: ConsoleSection,
}

/// This node's identity and where it keeps its state.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub name: String,
    pub role: Role,
    /// UDP address the QUIC endpoint binds (it both accepts and dials from it).
    pub listen: SocketAddr,
    /// Job database and per-job transcripts live here.
    pub data_dir: PathBuf,
    /// PEM certificate and PKCS#8 key from `tandem init`.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Ed25519 key (hex) that signs transcript heads.
    pub signing_key: PathBuf,
}

/// The local admin API (HTTP on 127.0.0.1 only).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// TCP port on 127.0.0.1; 0 picks a free port (tests).
    pub port: u16,
    /// File holding the bearer token (written by `tandem init`).
    pub token_file: PathBuf,
}

/// The browser console's own listener (optional; the console is always on the admin listener).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// Address of a listener serving only the console, e.g. `"0.0.0.0:8443"` for a bureau's
    /// intranet. Plain HTTP only on a loopback address; anywhere else it needs TLS.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain and PEM private key of the console's TLS listener.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl ConsoleSection {
    /// Refuses a key pair half set, TLS files without a listener, and plain HTTP beyond loopback
    /// (the token and the session cookie would cross the network in clear).
    fn validate(&self) -> Result<()> {
        match (&self.listen, &self.tls_cert, &self.tls_key) {
            (_, Some(_), None) | (_, None, Some(_)) => bail!(
                "console.tls_cert and console.tls_key go together: set both (PEM certificate chain and its \
                 PEM private key) or neither"
            ),
            (None, Some(_), Some(_)) => bail!(
                "console.tls_cert is set but console.listen is not: add `listen = \"0.0.0.0:8443\"` (the address \
                 the console's TLS listener binds) to [console]"
            ),
            (Some(addr), None, None) if !addr.ip().is_loopback() => bail!(
                "[console] listen = \"{addr}\" would serve the console over plain HTTP beyond this machine, \
                 sending the sign-in token and session cookie in clear: set console.tls_cert and console.tls_key \
                 (PEM files) to serve it over TLS, or listen on a loopback address such as \"127.0.0.1:{}\" behind \
                 a TLS reverse proxy",
                addr.port()
            ),
            _ => Ok(()),
        }
    }
}

/// The one peer this node works with. Its role is fixed here and bound to its certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    pub name: String,
    pub role: Role,
    /// `host:port` of the peer's QUIC endpoint.
    pub addr: String,
    /// SHA-256 fingerprint of the peer's DER certificate (`sha256:<64 hex>`), as printed by
    /// `tandem init` on the peer. Exactly one of `fingerprint` and `ca` is set.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// PEM file of a private CA; the peer's certificate must chain to it and name `peer.name`.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The peer's Ed25519 transcript-signing public key: 64 hex digits, the peer's `signing.pub`
    /// as printed by `tandem init` on the peer. It goes into every job's manifest, and the peer's
    /// phase signatures must verify against it.
    pub signing_key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Connection set-up including the hello.
    pub connect_secs: u64,
    /// Longest silence while waiting for one frame from the peer during a job.
    pub read_secs: u64,
    /// QUIC idle timeout (the connection is dropped after this long without any packet).
    pub idle_secs: u64,
    /// QUIC keep-alive interval; must be below `idle_secs`.
    pub keepalive_secs: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect_secs: 10, read_secs: 300, idle_secs: 60, keepalive_secs: 5 }
    }
}

impl Timeouts {
    pub fn connect(&self) -> Duration {
        Duration::from_secs(self.connect_secs)
    }
    pub fn read(&self) -> Duration {
        Duration::from_secs(self.read_secs)
    }
}

/// Bounds on what the peer (or the local operator) can make this node do at once.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Jobs running at once on this node (submitted here or proposed by the peer); a job beyond
    /// it is refused with an error naming this key.
    pub max_concurrent_jobs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_concurrent_jobs: 8 }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscriptSettings {
    /// Also keep every frame payload in `<transcript>.payloads` (`[transcript] payloads = true`).
    /// Off by default: payloads can be large and the hashes are enough to check a transcript
    /// against the peer's.
    pub payloads: bool,
}

/// Kind of entity identifier in a dataset's id column: the protocol's own type (normalisation
/// is done by PSI), so config and protocol cannot drift apart.
pub use protocol::ids::IdKind;

/// A local CSV file the node may use in jobs, under a name both operators refer to.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    pub path: PathBuf,
    pub id_column: String,
    pub id_kind: IdKind,
    /// Label column (bank only).
    #[serde(default)]
    pub label: Option<String>,
    /// Columns holding categories (any text) instead of numbers.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Cell texts meaning "missing", compared ignoring ASCII case; an empty cell is always
    /// missing. Default `["NA", "null", "?"]`.
    #[serde(default)]
    pub missing: Option<Vec<String>>,
    /// Gov: named groups of columns shown as one dimension each in check-up reports
    /// (`dimensions = { registration = ["x0", "x1"], tax = ["x2"] }`); every other model column
    /// is a dimension of its own.
    #[serde(default)]
    pub dimensions: BTreeMap<String, Vec<String>>,
}

impl DatasetConfig {
    /// How the loader reads this dataset's cells (`missing`, `categorical`).
    pub fn cell_format(&self) -> models::dataset::CellFormat {
        let default = models::dataset::CellFormat::default();
        models::dataset::CellFormat {
            missing: self.missing.clone().unwrap_or(default.missing),
            categorical: self.categorical.clone(),
        }
    }
}

/// What this node agrees to do with its peer. Checked on every job before any protocol step.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Peers (by configured name or `sha256:` certificate fingerprint) allowed to run jobs.
    pub allowed_peers: Vec<String>,
    pub job_kinds: Vec<JobKind>,
    pub reveals: Vec<Reveal>,
    /// A job must ask for at least this minimum intersection size (PSI enforces it).
    pub min_intersection: u64,
    /// Datasets and columns allowed for joint use; a dataset not listed cannot be used at all.
    pub datasets: BTreeMap<String, DatasetPolicy>,
    /// Fewest feature columns each side must bring to a trained model (default 3): a model on
    /// one or two of a side's columns would turn its partial scores into those columns.
    pub min_model_columns: usize,
    /// Entities this node lets be scored per model per UTC day, over all score jobs (default
    /// 100,000); the gov's budget is the one that protects its data.
    pub score_budget_per_day: u64,
    /// The finest per-entity score the bank may learn in a job with this node: `grade` <
    /// `points` < `probability` (default `grade`). Applied inside MPC; the gov's cap is the one
    /// that protects its data.
    pub score_output: ScoreOutput,
    /// Scoring sessions with this node as gov: minutes after which the gov keys its table anew
    /// (a rotation: new key, the whole table sent again; default 1440, a day).
    pub score_session_rotate_minutes: u64,
}

/// Defaults of the policy keys a config may omit.
pub const DEFAULT_MIN_MODEL_COLUMNS: usize = 3;
pub const DEFAULT_SCORE_BUDGET_PER_DAY: u64 = 100_000;

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            allowed_peers: Vec::new(),
            job_kinds: Vec::new(),
            reveals: Vec::new(),
            min_intersection: 0,
            datasets: BTreeMap::new(),
            min_model_columns: DEFAULT_MIN_MODEL_COLUMNS,
            score_budget_per_day: DEFAULT_SCORE_BUDGET_PER_DAY,
            score_output: ScoreOutput::Grade,
            score_session_rotate_minutes: 1440,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetPolicy {
    pub columns: Vec<String>,
}

impl Config {
    /// Reads, parses, resolves relative paths and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate().with_context(|| format!("config {}", path.display()))?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.node.data_dir);
        fix(&mut self.node.tls_cert);
        fix(&mut self.node.tls_key);
        fix(&mut self.node.signing_key);
        fix(&mut self.admin.token_file);
        if let Some(ca) = self.peer.ca.as_mut() {
            fix(ca);
        }
        for p in [&mut self.console.tls_cert, &mut self.console.tls_key].into_iter().flatten() {
            fix(p);
        }
        for d in self.datasets.values_mut() {
            fix(&mut d.path);
        }
    }

    /// Checks cross-field rules that serde cannot express.
    pub fn validate(&self) -> Result<()> {
        if self.node.name.trim().is_empty() {
            bail!("node.name is empty: set it to this node's name, e.g. \"gov\"");
        }
        if self.node.role == self.peer.role {
            bail!("node.role and peer.role are both '{}': one node is 'gov' and the other 'bank'", self.node.role);
        }
        if self.peer.name == self.node.name {
            bail!("peer.name equals node.name '{}': give the peer its own name", self.node.name);
        }
        match (&self.peer.fingerprint, &self.peer.ca) {
            (Some(fp), None) => {
                parse_fingerprint(fp).context("peer.fingerprint")?;
            }
            (None, Some(_)) => {}
            _ => bail!(
                "peer: set exactly one of `fingerprint` (the peer's certificate fingerprint printed by \
                 `tandem init`) or `ca` (PEM file of the private CA that signed the peer's certificate)"
            ),
        }
        self.peer_signing_key()?;
        self.console.validate()?;
        let t = &self.timeouts;
        if t.connect_secs == 0 || t.read_secs == 0 || t.idle_secs == 0 {
            bail!("timeouts: connect_secs, read_secs and idle_secs must be at least 1");
        }
        if t.keepalive_secs == 0 || t.keepalive_secs >= t.idle_secs {
            bail!(
                "timeouts.keepalive_secs = {} must be at least 1 and below timeouts.idle_secs = {}",
                t.keepalive_secs,
                t.idle_secs
            );
        }
        if self.policy.score_session_rotate_minutes == 0 {
            bail!(
                "policy.score_session_rotate_minutes = 0: set the minutes between key rotations of a scoring session (default 1440)"
            );
        }
        if self.limits.max_concurrent_jobs == 0 {
            bail!("limits.max_concurrent_jobs = 0 would refuse every job: set it to at least 1 (default 8)");
        }
        for name in self.policy.datasets.keys() {
            if !self.datasets.contains_key(name) {
                bail!(
                    "policy.datasets.{name} names a dataset that is not configured: add [datasets.{name}] \
                     or remove the policy entry"
                );
            }
        }
        for (name, d) in &self.datasets {
            if d.id_column.trim().is_empty() {
                bail!("datasets.{name}.id_column is empty: name the CSV column holding entity ids");
            }
            if d.label.is_some() && self.node.role != Role::Bank {
                bail!("datasets.{name}.label: only the bank node holds a label; remove the key");
            }
            if let Some(c) = d.categorical.iter().find(|c| **c == d.id_column || Some(*c) == d.label.as_ref()) {
                bail!("datasets.{name}.categorical: '{c}' is the id or label column; list feature columns only");
            }
            models::checkup::group_dimensions(&[], &d.dimensions)
                .map_err(|e| anyhow::anyhow!("datasets.{name}.{e}"))?;
            if let Some(t) = d.missing.iter().flatten().find(|t| t.trim().is_empty() || t.trim() != t.as_str()) {
                bail!(
                    "datasets.{name}.missing: '{t}' is empty or has surrounding spaces; cells are trimmed, and an \
                     empty cell is always missing: list trimmed texts such as \"NA\""
                );
            }
        }
        Ok(())
    }

    /// Start-up check of everything the config points to on disk, so that `tandem serve` stops
    /// before binding any port when a file is missing or unusable: every configured dataset
    /// exists and its header has the id column, the label and the columns its policy allows.
    /// (Key files are checked by loading them, see [`crate::identity`].)
    pub fn check_datasets(&self) -> Result<()> {
        for (name, d) in &self.datasets {
            if !d.path.is_file() {
                bail!(
                    "datasets.{name}.path: {} does not exist or is not a file; fix the path (relative paths are \
                     relative to the config file) or remove [datasets.{name}]",
                    d.path.display()
                );
            }
            let allowed = self.policy.datasets.get(name).map(|p| p.columns.as_slice()).unwrap_or_default();
            crate::datasets::check_columns(name, d, allowed.iter().chain(&d.label).chain(&d.categorical))
                .with_context(|| format!("datasets.{name} / policy.datasets.{name}.columns"))?;
        }
        Ok(())
    }

    /// The peer's address, resolved.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        use std::net::ToSocketAddrs;
        self.peer
            .addr
            .to_socket_addrs()
            .with_context(|| format!("peer.addr '{}' is not a reachable host:port", self.peer.addr))?
            .next()
            .with_context(|| format!("peer.addr '{}' resolves to no address", self.peer.addr))
    }

    /// The peer's transcript-signing public key (`peer.signing_key`).
    pub fn peer_signing_key(&self) -> Result<ed25519_dalek::VerifyingKey> {
        let key = &self.peer.signing_key;
        let bytes: [u8; 32] = hex::decode(key.trim()).ok().and_then(|b| b.try_into().ok()).with_context(|| {
            format!(
                "peer.signing_key '{key}' is not 64 hex digits: set it to the peer's Ed25519 public key \
                 (its signing.pub, printed by `tandem init` on the peer)"
            )
        })?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| {
            anyhow::anyhow!(
                "peer.signing_key '{key}' is not a valid Ed25519 public key: copy the peer's signing.pub exactly"
            )
        })
    }

    /// Directory of one job's files (transcript, outputs).
    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.node.data_dir.join("jobs").join(job_id)
    }
}

/// Parses `sha256:<64 hex>` (colons between bytes and upper case are accepted).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32]> {
    let hex_part = text.trim().strip_prefix("sha256:").unwrap_or(text.trim()).replace(':', "");
    let bytes = hex::decode(&hex_part).ok().filter(|b| b.len() == 32).with_context(|| {
        format!("'{text}' is not a SHA-256 fingerprint: expected sha256:<64 hex digits> as printed by `tandem init`")
    })?;
    Ok(bytes.try_into().expect("32 bytes"))
}

/// Formats a certificate fingerprint the way configs and `tandem init` show it.
pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(fp))
}

/// SHA-256 fingerprint of a DER certificate.
pub fn cert_fingerprint(der: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(der).into()
}
