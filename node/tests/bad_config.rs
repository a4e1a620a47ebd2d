//! Bad node configuration: every mistake gives an error naming the config key (and file) and the
//! fix, and the daemon does not start half-configured: no port stays bound and `node.data_dir` is
//! not created when start-up fails.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use node::config::Config;
use node::daemon::Daemon;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A node directory from `tandem init` holding `gov.toml`, a copy of the bundled gov config
/// with free ports (`listen` and `admin.port` on port 0 unless edited) and absolute dataset paths.
struct NodeDir {
    dir: tempfile::TempDir,
}

impl NodeDir {
    fn new() -> NodeDir {
        let dir = tempfile::tempdir().unwrap();
        node::identity::init_node_dir("gov", dir.path()).unwrap();
        let d = NodeDir { dir };
        d.write_config(|t| t);
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config_path(&self) -> PathBuf {
        self.path("gov.toml")
    }

    /// Writes `gov.toml` from the bundled template after `edit`.
    fn write_config(&self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(repo_root().join("configs/gov.toml")).unwrap();
        let text = text
            .replace("listen = \"127.0.0.1:7401\"", "listen = \"127.0.0.1:0\"")
            .replace("port = 7411", "port = 0")
            .replace("\"../testdata/", &format!("\"{}/testdata/", repo_root().display()));
        std::fs::write(self.config_path(), edit(text)).unwrap();
    }

    fn load(&self) -> anyhow::Result<Config> {
        Config::load(&self.config_path())
    }

    /// Loads the config and starts the daemon; returns the start-up error as the operator sees it.
    async fn start_err(&self) -> String {
        let config = self.load().unwrap();
        match Daemon::start(config).await {
            Ok(d) => {
                d.shutdown().await;
                panic!("the daemon started despite the bad config")
            }
            Err(e) => format!("{e:#}"),
        }
    }

    /// Nothing of the node's state was created.
    fn assert_no_data_dir(&self) {
        assert!(!self.path("data").exists(), "start-up failed but node.data_dir was created");
    }
}

fn assert_names(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "error does not mention {p:?}:\n{err}");
    }
}

#[test]
fn unknown_key_is_named_with_file_and_line() {
    let d = NodeDir::new();
    d.write_config(|t| t.replace("keepalive_secs = 5", "keepalive_secs = 5\nread_timeout = 30"));
    let err = format!("{:#}", d.load().unwrap_err());
    assert_names(&err, &["gov.toml", "unknown field `read_timeout`", "line", "keepalive_secs"]);

    // An unknown section, and an unknown key inside a dataset.
    d.write_config(|t| format!("{t}\n[limit]\nmax_concurrent_jobs = 2\n"));
    let err = format!("{:#}", d.load().unwrap_err());
    assert_names(&err, &["unknown field `limit`", "limits"]);
    d.write_config(|t| t.replace("id_kind = \"raw\"", "id_kind = \"raw\"\nlabel_column = \"y\""));
    let err = format!("{:#}", d.load().unwrap_err());
    assert_names(&err, &["unknown field `label_column`", "label"]);
}

#[test]
fn malformed_peer_fingerprint_is_named() {
    let d = NodeDir::new();
    for bad in ["sha256:1234", "md5:00", "sha256:zz00000000000000000000000000000000000000000000000000000000000000"] {
        d.write_config(|t| t.replace("sha256:0000000000000000000000000000000000000000000000000000000000000000", bad));
        let err = format!("{:#}", d.load().unwrap_err());
        assert_names(&err, &["gov.toml", "peer.fingerprint", bad, "sha256:<64 hex digits>", "tandem init"]);
    }
}

#[test]
fn zero_job_limit_is_named() {
    let d = NodeDir::new();
    let limit = |n: u32| move |t: String| t.replace("max_concurrent_jobs = 8", &format!("max_concurrent_jobs = {n}"));
    d.write_config(limit(0));
    let err = format!("{:#}", d.load().unwrap_err());
    assert_names(&err, &["limits.max_concurrent_jobs", "at least 1"]);
    d.write_config(limit(3));
    assert_eq!(d.load().unwrap().limits.max_concurrent_jobs, 3);
}

#[tokio::test]
async fn missing_certificate_file_is_named_and_nothing_starts() {
    let d = NodeDir::new();
    std::fs::remove_file(d.path("tls.crt")).unwrap();
    let err = d.start_err().await;
    assert_names(&err, &["node.tls_cert", &d.path("tls.crt").display().to_string(), "tandem init"]);
    d.assert_no_data_dir();
}

#[tokio::test]
async fn garbled_or_unreadable_keys_are_named() {
    let d = NodeDir::new();
    let key = d.path("tls.key");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----\n").unwrap();
    let err = d.start_err().await;
    assert_names(&err, &["node.tls_key", &key.display().to_string()]);

    // Unreadable: a directory where the key should be (chmod does not stop root, who runs CI here).
    std::fs::remove_file(&key).unwrap();
    std::fs::create_dir(&key).unwrap();
    let err = d.start_err().await;
    assert_names(&err, &["node.tls_key", &key.display().to_string()]);
    std::fs::remove_dir(&key).unwrap();

    // A well-formed key that does not belong to the certificate.
    let other = tempfile::tempdir().unwrap();
    node::identity::init_node_dir("gov", other.path()).unwrap();
    std::fs::copy(other.path().join("tls.key"), &key).unwrap();
    let err = d.start_err().await;
    assert_names(&err, &["node.tls_cert / node.tls_key"]);

    // The transcript signing key.
    std::fs::copy(other.path().join("tls.key"), d.path("tls.key")).unwrap();
    std::fs::copy(other.path().join("tls.crt"), d.path("tls.crt")).unwrap();
    std::fs::write(d.path("signing.key"), "xyz").unwrap();
    let err = d.start_err().await;
    assert_names(&err, &["node.signing_key", "64 hex digits", "tandem init"]);
    d.assert_no_data_dir();
}

#[tokio::test]
async fn listen_port_in_use_is_named_and_the_admin_port_stays_free() {
    let d = NodeDir::new();
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = taken.local_addr().unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin_port = admin.local_addr().unwrap().port();
    drop(admin);
    d.write_config(|t| {
        t.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{udp}\""))
            .replace("port = 0", &format!("port = {admin_port}"))
    });
    let err = d.start_err().await;
    assert_names(&err, &["node.listen", &udp.to_string(), "already uses this port"]);
    TcpListener::bind(("127.0.0.1", admin_port)).expect("the admin port was not left bound");
    d.assert_no_data_dir();
}

#[tokio::test]
async fn admin_port_in_use_is_named_and_the_udp_socket_is_released() {
    let d = NodeDir::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin_port = taken.local_addr().unwrap().port();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    d.write_config(|t| {
        t.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{udp}\""))
            .replace("port = 0", &format!("port = {admin_port}"))
    });
    let err = d.start_err().await;
    assert_names(&err, &["admin.port", &format!("127.0.0.1:{admin_port}"), "already uses this port"]);
    UdpSocket::bind(udp).expect("node.listen was left bound");
    d.assert_no_data_dir();
}

#[tokio::test]
async fn missing_dataset_file_or_column_is_named_before_anything_binds() {
    let d = NodeDir::new();
    let missing = d.path("nowhere.csv");
    d.write_config(|t| {
        let start = t.find("path = \"").unwrap();
        let end = start + t[start..].find('\n').unwrap();
        format!("{}path = \"nowhere.csv\"{}", &t[..start], &t[end..])
    });
    let err = d.start_err().await;
    assert_names(&err, &["datasets.gov_features.path", &missing.display().to_string(), "does not exist"]);
    d.assert_no_data_dir();

    // The file exists but lacks a column the policy allows for joint use.
    std::fs::write(&missing, "id,x0,x1\n1,0.5,0.25\n").unwrap();
    let err = d.start_err().await;
    assert_names(&err, &["policy.datasets.gov_features.columns", "column 'x2'", &missing.display().to_string()]);
    d.assert_no_data_dir();

    // An empty file is named as such (not as a file lacking columns).
    std::fs::write(&missing, "").unwrap();
    let err = d.start_err().await;
    assert_names(&err, &["dataset 'gov_features'", &missing.display().to_string(), "is empty", "header line"]);
    d.assert_no_data_dir();
}

#[tokio::test]
async fn unusable_data_dir_is_named_and_ports_are_released() {
    let d = NodeDir::new();
    std::fs::write(d.path("data"), "a file, not a directory").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let admin_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    d.write_config(|t| {
        t.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{udp}\""))
            .replace("port = 0", &format!("port = {admin_port}"))
    });
    let err = d.start_err().await;
    assert_names(&err, &["node.data_dir", &d.path("data").display().to_string()]);
    UdpSocket::bind(udp).expect("node.listen was left bound");
    TcpListener::bind(("127.0.0.1", admin_port)).expect("the admin port was left bound");
}

/// The operator's view: `tandem serve` prints one `error:` line naming the key and exits 1.
#[test]
fn tandem_serve_reports_the_error_and_exits_nonzero() {
    let d = NodeDir::new();
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = taken.local_addr().unwrap();
    d.write_config(|t| t.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{udp}\"")));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--config"])
        .arg(d.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_names(&stderr, &["node.listen", &udp.to_string(), "already uses this port"]);
    d.assert_no_data_dir();
}
