//! Per-operator console tokens (`tandem operator add NAME` / `list` / `revoke NAME`).
//!
//! A token is 256 random bits, printed once when it is issued. The node keeps only its keyed
//! BLAKE3 hash, with the operator's name, in `data_dir/console-operators.json` (mode 0600).
//! Signing in with an operator token fixes the session's operator to the token's name. The
//! console reads the file on every request, so a revoked token is refused at once and the
//! sessions opened with it end at their next request. Comparisons are constant-time.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::jobs::record::check_operator;

/// The file, in `node.data_dir`.
pub const FILE: &str = "console-operators.json";
/// Largest operators file read (it is local, but never read unbounded).
const MAX_FILE: u64 = 1 << 20;
const HASH_CONTEXT: &str = "tandem console operator token v1";

/// One issued token: whose it is and its hash (never the token).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    pub name: String,
    /// Keyed BLAKE3 hash of the token, hex.
    pub token_hash: String,
    /// When it was issued (unix ms).
    pub created_ms: u64,
}

/// The operators file of the node described by `config`.
pub fn file(config: &Config) -> PathBuf {
    config.node.data_dir.join(FILE)
}

/// Hash under which a token is stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(HASH_CONTEXT);
    h.update(token.as_bytes());
    *h.finalize().as_bytes()
}

/// The issued tokens; none when the file does not exist.
pub fn load(path: &Path) -> Result<Vec<Operator>> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut text = String::new();
    f.take(MAX_FILE + 1).read_to_string(&mut text).with_context(|| format!("cannot read {}", path.display()))?;
    if text.len() as u64 > MAX_FILE {
        bail!("{} is larger than 1 MiB: it is not an operators file; move it away", path.display());
    }
    serde_json::from_str(&text).with_context(|| {
        format!("{} is not a valid operators file; fix it or remove it and issue the tokens again", path.display())
    })
}

/// Replaces the file with `operators`, owner-only, atomically (temporary file, then rename).
fn save(path: &Path, operators: &[Operator]) -> Result<()> {
    if let Some(dir) = path.parent() {
        crate::identity::create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.new");
    let _ = std::fs::remove_file(&tmp);
    crate::identity::write_private(&tmp, &serde_json::to_vec_pretty(operators)?)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// Issues a fresh token for `name` and stores its hash; returns the token (shown once).
pub fn add(path: &Path, name: &str) -> Result<Zeroizing<String>> {
    check_operator(name).map_err(anyhow::Error::msg)?;
    let mut operators = load(path)?;
    if operators.iter().any(|o| o.name == name) {
        bail!("operator '{name}' already has a token; `tandem operator revoke {name}` first to issue a new one");
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    {
        use rand::Rng;
        rand::rng().fill_bytes(secret.as_mut());
    }
    let token = Zeroizing::new(hex::encode(secret.as_ref()));
    let created_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    operators.push(Operator {
        name: name.to_string(),
        token_hash: hex::encode(token_hash(&token)),
        created_ms: created_ms as u64,
    });
    save(path, &operators)?;
    Ok(token)
}

/// Removes `name`'s token: it no longer signs in, and its open sessions end.
pub fn revoke(path: &Path, name: &str) -> Result<()> {
    let mut operators = load(path)?;
    let before = operators.len();
    operators.retain(|o| o.name != name);
    if operators.len() == before {
        bail!("no operator '{name}' in {}; `tandem operator list` shows who has a token", path.display());
    }
    save(path, &operators)
}

/// The operator whose stored hash equals `hash`. Every entry is compared, in constant time.
pub fn find_by_hash<'a>(operators: &'a [Operator], hash: &[u8; 32]) -> Option<&'a Operator> {
    let wanted = hex::encode(hash);
    let mut found = None;
    for o in operators {
        if crate::admin::token_matches(o.token_hash.as_bytes(), wanted.as_bytes()) {
            found = Some(o);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_are_issued_once_stored_hashed_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join(FILE);
        let alice = add(&path, "Alice").unwrap();
        let bob = add(&path, "Bob").unwrap();
        assert_ne!(*alice, *bob);
        assert_eq!(alice.len(), 64);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(alice.as_str()) && !text.contains(bob.as_str()), "only hashes are stored");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let ops = load(&path).unwrap();
        assert_eq!(find_by_hash(&ops, &token_hash(&alice)).unwrap().name, "Alice");
        assert_eq!(find_by_hash(&ops, &token_hash(&bob)).unwrap().name, "Bob");
        assert!(find_by_hash(&ops, &token_hash("0".repeat(64).as_str())).is_none());
        assert!(add(&path, "Alice").unwrap_err().to_string().contains("revoke Alice"));
        revoke(&path, "Alice").unwrap();
        let ops = load(&path).unwrap();
        assert!(find_by_hash(&ops, &token_hash(&alice)).is_none());
        assert_eq!(find_by_hash(&ops, &token_hash(&bob)).unwrap().name, "Bob");
        assert!(revoke(&path, "Alice").unwrap_err().to_string().contains("operator list"));
        assert!(add(&path, " ").is_err(), "names follow the operator rules");
    }
}
