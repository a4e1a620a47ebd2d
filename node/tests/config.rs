//! Config and job files: bundled examples parse, mistakes are named.

use std::path::{Path, PathBuf};

use node::config::Config;
use node::jobs::spec::{JobKind, JobSpec};
use protocol::Role;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn bundled_configs_and_job_parse() {
    let gov = Config::load(&repo_root().join("configs/gov.toml")).unwrap();
    let bank = Config::load(&repo_root().join("configs/bank.toml")).unwrap();
    assert_eq!((gov.node.role, bank.node.role), (Role::Gov, Role::Bank));
    assert_eq!((gov.peer.name.as_str(), bank.peer.name.as_str()), ("bank", "gov"));
    assert!(
        gov.datasets["gov_features"].path.is_absolute() || gov.datasets["gov_features"].path.starts_with(repo_root())
    );
    assert!(gov.datasets["gov_features"].path.exists(), "bundled demo data is present");
    assert!(bank.datasets["bank_features"].path.exists(), "bundled demo data is present");
    let job = JobSpec::load(&repo_root().join("configs/demo-job.toml")).unwrap();
    assert_eq!(job.kind(), JobKind::Psi);
    // The demo job passes both bundled policies.
    node::jobs::policy::check(&gov, &job, "bank", None).unwrap();
    node::jobs::policy::check(&bank, &job, "gov", None).unwrap();
}

fn write_variant(name: &str, edit: impl FnOnce(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(repo_root().join("configs/gov.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, edit(text)).unwrap();
    (dir, path)
}

#[test]
fn config_mistakes_are_named() {
    let (_d, p) = write_variant("typo.toml", |t| t.replace("keepalive_secs = 5", "keepalive_sec = 5"));
    let err = format!("{:#}", Config::load(&p).unwrap_err());
    assert!(err.contains("unknown field `keepalive_sec`"), "{err}");
    assert!(err.contains("typo.toml"), "{err}");

    let (_d, p) = write_variant("both.toml", |t| t.replace("fingerprint = ", "ca = \"ca.crt\"\nfingerprint = "));
    let err = format!("{:#}", Config::load(&p).unwrap_err());
    assert!(err.contains("set exactly one of `fingerprint`"), "{err}");

    let (_d, p) = write_variant("fp.toml", |t| t.replace("sha256:0000", "sha256:zz00"));
    let err = format!("{:#}", Config::load(&p).unwrap_err());
    assert!(err.contains("peer.fingerprint"), "{err}");

    let (_d, p) = write_variant("role.toml", |t| t.replace("role = \"bank\"", "role = \"gov\""));
    let err = format!("{:#}", Config::load(&p).unwrap_err());
    assert!(err.contains("node.role and peer.role are both 'gov'"), "{err}");

    let (_d, p) =
        write_variant("policy.toml", |t| t.replace("[policy.datasets.gov_features]", "[policy.datasets.other]"));
    let err = format!("{:#}", Config::load(&p).unwrap_err());
    assert!(err.contains("policy.datasets.other names a dataset that is not configured"), "{err}");
}

#[test]
fn init_writes_private_keys_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = node::identity::init_node_dir("gov", dir.path()).unwrap();
    for f in ["tls.crt", "tls.key", "signing.key", "signing.pub", "admin.token"] {
        let mode = std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let der = node::identity::load_cert(&dir.path().join("tls.crt")).unwrap();
    assert_eq!(out.fingerprint, node::config::format_fingerprint(&node::config::cert_fingerprint(&der)));
    node::identity::load_key(&dir.path().join("tls.key")).unwrap();
    let sk = node::identity::load_signing_key(&dir.path().join("signing.key")).unwrap();
    assert_eq!(hex::encode(sk.verifying_key().as_bytes()), out.signing_public_key);
    let err = node::identity::init_node_dir("gov", dir.path()).unwrap_err().to_string();
    assert!(err.contains("refusing to overwrite"), "{err}");
}
