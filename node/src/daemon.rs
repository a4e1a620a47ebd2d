//! The running node (`tandem serve`): QUIC endpoint, job runner threads, admin API.
//!
//! One QUIC connection to the peer is kept and reused (either node may have dialled it); each job
//! runs on its own bidirectional stream, on a blocking thread, with a cancel flag.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use protocol::channel::Transport;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin;
use crate::config::{Config, cert_fingerprint, format_fingerprint, parse_fingerprint};
use crate::identity;
use crate::jobs::policy;
use crate::jobs::record::{JobRecord, JobState, new_job_id, valid_job_id};
use crate::jobs::runner::{self, JobEnv};
use crate::jobs::spec::JobSpec;
use crate::jobs::store::Store;
use crate::transport::stream::{open_job_stream, read_job_open};
use crate::transport::{Hello, Link, LinkSettings, PROTOCOL_VERSION, PeerTrust, QuicTransport, TlsIdentity};

/// State shared by the daemon's tasks and the admin API.
pub struct Node {
    pub config: Arc<Config>,
    pub store: Store,
    link: Link,
    peer_fingerprint: Option<String>,
    connection: tokio::sync::Mutex<Option<quinn::Connection>>,
    /// Cancel flags of jobs running on this node.
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    handle: tokio::runtime::Handle,
}

/// A started node; dropping it does not stop it, call [`Daemon::shutdown`].
pub struct Daemon {
    pub node: Arc<Node>,
    admin_addr: SocketAddr,
    quic_addr: SocketAddr,
    stop_admin: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// Starts the node, binding `node.listen` and the admin port.
    pub async fn start(config: Config) -> Result<Daemon> {
        let socket = UdpSocket::bind(config.node.listen)
            .with_context(|| format!("cannot bind UDP {} (node.listen)", config.node.listen))?;
        Daemon::start_on(config, socket).await
    }

    /// Starts the node on an already bound UDP socket.
    pub async fn start_on(config: Config, socket: UdpSocket) -> Result<Daemon> {
        let identity = TlsIdentity {
            cert: identity::load_cert(&config.node.tls_cert)?,
            key: identity::load_key(&config.node.tls_key)?,
        };
        identity::load_signing_key(&config.node.signing_key)?;
        let token = identity::load_token(&config.admin.token_file)?;
        let (trust, peer_fingerprint) = match (&config.peer.fingerprint, &config.peer.ca) {
            (Some(fp), _) => {
                let fp = parse_fingerprint(fp)?;
                (PeerTrust::Pinned(fp), Some(format_fingerprint(&fp)))
            }
            (None, Some(ca)) => (PeerTrust::Ca(vec![identity::load_cert(ca).context("peer.ca")?]), None),
            (None, None) => bail!("peer: set `fingerprint` or `ca`"),
        };
        let t = &config.timeouts;
        let settings = LinkSettings {
            me: Hello { version: PROTOCOL_VERSION, name: config.node.name.clone(), role: config.node.role },
            peer_name: config.peer.name.clone(),
            peer_role: config.peer.role,
            connect_timeout: t.connect(),
            idle_timeout: std::time::Duration::from_secs(t.idle_secs),
            keepalive: std::time::Duration::from_secs(t.keepalive_secs),
        };
        let store = Store::open(&config.node.data_dir)?;
        let interrupted = store.mark_interrupted()?;
        if interrupted > 0 {
            tracing::warn!("{interrupted} job(s) were running when the node stopped; marked failed");
        }
        let link = Link::bind(&identity, &trust, settings, socket)?;
        let quic_addr = link.local_addr()?;
        let node = Arc::new(Node {
            config: Arc::new(config),
            store,
            link,
            peer_fingerprint,
            connection: tokio::sync::Mutex::new(None),
            running: Mutex::new(HashMap::new()),
            handle: tokio::runtime::Handle::current(),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", node.config.admin.port))
            .await
            .with_context(|| format!("cannot bind admin API on 127.0.0.1:{} (admin.port)", node.config.admin.port))?;
        let admin_addr = listener.local_addr()?;
        let (stop_admin, stopped) = tokio::sync::oneshot::channel();
        let admin_task = tokio::spawn(admin::serve(node.clone(), token, listener, async {
            let _ = stopped.await;
        }));
        let accept_task = tokio::spawn(accept_loop(node.clone()));
        tracing::info!(
            "node '{}' ({}) listening on {quic_addr} (QUIC), admin API on http://{admin_addr}",
            node.config.node.name,
            node.config.node.role
        );
        Ok(Daemon { node, admin_addr, quic_addr, stop_admin: Some(stop_admin), tasks: vec![admin_task, accept_task] })
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn quic_addr(&self) -> SocketAddr {
        self.quic_addr
    }

    /// Cancels running jobs, closes the peer connection and the admin API, and waits for them.
    pub async fn shutdown(mut self) {
        for flag in self.node.running.lock().expect("running lock").values() {
            let _ = flag.send(true);
        }
        self.node.link.shutdown().await;
        if let Some(stop) = self.stop_admin.take() {
            let _ = stop.send(());
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        // Job threads finish once their streams are gone; give them a moment to record it.
        for _ in 0..50 {
            if self.node.running.lock().expect("running lock").is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Node {
    /// The peer connection, dialling the peer if there is none.
    async fn peer_connection(self: &Arc<Self>) -> Result<quinn::Connection> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref()
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        let conn = self.link.connect(self.config.peer_addr()?).await?.connection;
        *slot = Some(conn.clone());
        tokio::spawn(serve_streams(self.clone(), conn.clone()));
        Ok(conn)
    }

    /// Whether a live, authenticated connection to the peer exists.
    pub async fn peer_connected(&self) -> bool {
        self.connection.lock().await.as_ref().is_some_and(|c| c.close_reason().is_none())
    }

    /// Submits a job from the local `operator` (person or service account, recorded in the
    /// job's manifest): checks this node's policy, records it, runs it.
    pub fn submit(self: &Arc<Self>, spec: JobSpec, operator: &str) -> Result<JobRecord> {
        spec.validate()?;
        policy::check(&self.config, &spec, &self.config.peer.name, self.peer_fingerprint.as_deref())
            .map_err(|reason| anyhow!("refused by this node: {reason}"))?;
        let id = new_job_id();
        let mut record = JobRecord::new(
            &id,
            spec.clone(),
            &self.config.node.name,
            &self.config.peer.name,
            &runner::step_names(spec.kind),
        );
        record.operator = operator.to_string();
        self.store.insert(&record)?;
        let cancel = self.register(&id);
        let node = self.clone();
        let job_id = id.clone();
        self.handle.spawn(async move {
            let streams = async {
                let conn = node.peer_connection().await?;
                let peer_cert = peer_cert_sha256(&conn)?;
                let (send, recv) = open_job_stream(&conn, &job_id).await.map_err(|e| anyhow!("cannot open a job stream: {e}"))?;
                Ok::<_, anyhow::Error>((send, recv, peer_cert))
            };
            match streams.await {
                Ok((send, recv, peer_cert)) => node.run_blocking(job_id, send, recv, peer_cert, cancel, true).await,
                Err(e) => {
                    let _ = node.store.update(&job_id, |r| r.fail(JobState::Failed, &format!("connect: {e:#}")));
                    node.unregister(&job_id);
                }
            }
        });
        Ok(record)
    }

    /// Cancels a running job.
    pub fn cancel(&self, id: &str) -> Result<JobRecord> {
        let record = self.store.get(id)?.ok_or_else(|| anyhow!("no job '{id}'"))?;
        if record.state.is_final() {
            bail!("job '{id}' already ended ({:?})", record.state);
        }
        match self.running.lock().expect("running lock").get(id) {
            Some(flag) => {
                let _ = flag.send(true);
            }
            None => bail!("job '{id}' is not running on this node"),
        }
        Ok(record)
    }

    fn register(&self, id: &str) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        self.running.lock().expect("running lock").insert(id.to_string(), tx);
        rx
    }

    fn unregister(&self, id: &str) {
        self.running.lock().expect("running lock").remove(id);
    }

    /// Runs the job's protocol on a blocking thread over the stream.
    async fn run_blocking(
        self: Arc<Self>,
        id: String,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        peer_cert_sha256: [u8; 32],
        cancel: watch::Receiver<bool>,
        submitter: bool,
    ) {
        let transport: Box<dyn Transport> =
            Box::new(QuicTransport::new(send, recv, self.handle.clone(), self.config.timeouts.read(), cancel.clone()));
        let env = JobEnv {
            config: self.config.clone(),
            store: self.store.clone(),
            cancel,
            peer_fingerprint: self.peer_fingerprint.clone(),
            peer_cert_sha256,
        };
        let job_id = id.clone();
        let done = tokio::task::spawn_blocking(move || {
            if submitter {
                runner::run_submitter(&env, &job_id, transport)
            } else {
                runner::run_responder(&env, &job_id, transport)
            }
        })
        .await;
        if let Err(e) = done {
            let _ = self.store.update(&id, |r| r.fail(JobState::Failed, &format!("job thread failed: {e}")));
        }
        self.unregister(&id);
    }
}

async fn accept_loop(node: Arc<Node>) {
    while let Some(incoming) = node.link.accept().await {
        let node = node.clone();
        tokio::spawn(async move {
            match node.link.handshake(incoming).await {
                Ok(peer) => {
                    tracing::info!("peer '{}' connected from {}", peer.peer.name, peer.connection.remote_address());
                    *node.connection.lock().await = Some(peer.connection.clone());
                    serve_streams(node, peer.connection).await;
                }
                Err(e) => tracing::warn!("{e:#}"),
            }
        });
    }
}

/// Accepts the job streams the peer opens on `conn` until it closes.
async fn serve_streams(node: Arc<Node>, conn: quinn::Connection) {
    let peer_cert = match peer_cert_sha256(&conn) {
        Ok(fp) => fp,
        Err(e) => return tracing::warn!("{e:#}"),
    };
    loop {
        let (send, mut recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!("peer connection ended: {}", crate::transport::link::describe_close(&e));
                return;
            }
        };
        let node = node.clone();
        tokio::spawn(async move {
            let id = match read_job_open(&mut recv, node.config.timeouts.connect()).await {
                Ok(id) => id,
                Err(e) => return tracing::warn!("peer opened a stream without a job: {e}"),
            };
            let known = node.store.get(&id).map(|r| r.is_some()).unwrap_or(true);
            if !valid_job_id(&id) || known {
                let _ = recv.stop(crate::transport::stream::ABORT_CODE.into());
                return tracing::warn!("peer proposed an invalid or already known job id '{id:.64}'");
            }
            let cancel = node.register(&id);
            node.run_blocking(id, send, recv, peer_cert, cancel, false).await;
        });
    }
}

/// SHA-256 of the certificate the peer presented on `conn` (mutual TLS: there always is one).
fn peer_cert_sha256(conn: &quinn::Connection) -> Result<[u8; 32]> {
    conn.peer_identity()
        .and_then(|id| id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .and_then(|certs| certs.first().map(|c| cert_fingerprint(c)))
        .ok_or_else(|| anyhow!("the peer connection carries no TLS certificate"))
}

/// `tandem serve`: runs until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<()> {
    let daemon = Daemon::start(config).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    daemon.shutdown().await;
    Ok(())
}
