//! The running node (`tandem serve`): QUIC endpoint, job runner threads, admin API.
//!
//! One QUIC connection to the peer is kept and reused (either node may have dialled it); each job
//! runs on its own bidirectional stream, on a blocking thread, with a stop flag (cancel or shutdown).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use protocol::channel::{ABORT, Frame, Transport};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin;
use crate::config::{Config, cert_fingerprint, format_fingerprint, parse_fingerprint};
use crate::console::listener::ConsoleListener;
use crate::identity;
use crate::jobs::failure::{FailureKind, peer_notice};
use crate::jobs::policy;
use crate::jobs::record::{JobRecord, JobState, new_job_id, valid_job_id};
use crate::jobs::runner::{self, JobEnv};
use crate::jobs::spec::JobSpec;
use crate::jobs::store::Store;
use crate::transport::stream::{Stop, open_job_stream, read_frame, read_job_open, within, write_frame};

/// Connections from the peer served at once. A peer normally keeps one (two while both nodes
/// dial at the same moment, a few more while dead ones from its restarts time out); the bound
/// keeps a peer with a valid certificate from holding unbounded connection state here.
pub const MAX_PEER_CONNECTIONS: usize = 8;

/// Largest proposal read (and discarded) from a job stream refused for the job limit.
const MAX_REFUSED_PROPOSAL: usize = 64 << 10;
use crate::transport::link::LinkConfig;
use crate::transport::{Hello, Link, LinkSettings, PROTOCOL_VERSION, PeerTrust, QuicTransport, TlsIdentity};

/// State shared by the daemon's tasks and the admin API.
pub struct Node {
    pub config: Arc<Config>,
    pub store: Store,
    /// Open scoring sessions ([`crate::sessions`]).
    pub sessions: crate::sessions::Sessions,
    link: Link,
    peer_fingerprint: Option<String>,
    connection: tokio::sync::Mutex<Option<quinn::Connection>>,
    /// Connections accepted from the peer that are still being served.
    peer_connections: AtomicUsize,
    /// Stop flags of jobs running on this node.
    running: Mutex<HashMap<String, watch::Sender<Option<Stop>>>>,
    handle: tokio::runtime::Handle,
}

/// A started node; dropping it does not stop it, call [`Daemon::shutdown`].
pub struct Daemon {
    pub node: Arc<Node>,
    admin_addr: SocketAddr,
    console_addr: Option<SocketAddr>,
    quic_addr: SocketAddr,
    /// Stops the admin API and the console listener.
    stop_admin: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// Starts the node, binding `node.listen` and the admin port.
    pub async fn start(config: Config) -> Result<Daemon> {
        let socket = UdpSocket::bind(config.node.listen)
            .map_err(|e| bind_error(e, &format!("UDP {}", config.node.listen), "node.listen"))?;
        Daemon::start_on(config, socket).await
    }

    /// Starts the node on an already bound UDP socket.
    ///
    /// Everything that can be checked is checked before any side effect: key files, admin token,
    /// peer trust, TLS configuration and datasets first; then the admin port is bound, the job
    /// database opened (creating `node.data_dir`) and finally the QUIC endpoint started. On any
    /// error nothing stays bound: the listener and the socket are dropped.
    pub async fn start_on(config: Config, socket: UdpSocket) -> Result<Daemon> {
        let identity = TlsIdentity {
            cert: identity::load_cert(&config.node.tls_cert)?,
            key: identity::load_key(&config.node.tls_key)?,
        };
        identity::load_signing_key(&config.node.signing_key).context("node.signing_key")?;
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
            idle_timeout: Duration::from_secs(t.idle_secs),
            keepalive: Duration::from_secs(t.keepalive_secs),
        };
        let link_config = LinkConfig::new(&identity, &trust, settings)?;
        config.check_datasets()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.admin.port))
            .await
            .map_err(|e| bind_error(e, &format!("admin API on 127.0.0.1:{}", config.admin.port), "admin.port"))?;
        let admin_addr = listener.local_addr()?;
        let console_listener = ConsoleListener::bind(&config.console).await?;
        let console_addr = console_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        // The store before the endpoint: once quinn owns the socket it is released asynchronously.
        let store = Store::open(&config.node.data_dir).context("node.data_dir")?;
        let link = link_config.bind(socket)?;
        let quic_addr = link.local_addr()?;
        let interrupted = store.mark_interrupted()?;
        if interrupted > 0 {
            tracing::warn!("{interrupted} job(s) were running when the node stopped; marked failed");
        }
        let node = Arc::new(Node {
            config: Arc::new(config),
            store,
            sessions: crate::sessions::Sessions::default(),
            link,
            peer_fingerprint,
            connection: tokio::sync::Mutex::new(None),
            peer_connections: AtomicUsize::new(0),
            running: Mutex::new(HashMap::new()),
            handle: tokio::runtime::Handle::current(),
        });
        let (stop_admin, stopped) = watch::channel(false);
        let stop_signal = |mut stopped: watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let mut tasks = Vec::new();
        if let Some(l) = console_listener {
            let console = l.serve(node.clone(), Arc::new(token.clone()), stop_signal(stopped.clone()));
            tasks.push(tokio::spawn(console));
        }
        tasks.push(tokio::spawn(admin::serve(node.clone(), token, listener, stop_signal(stopped))));
        tasks.push(tokio::spawn(accept_loop(node.clone())));
        // Dial the peer now rather than at the first job: after this node restarts, the peer
        // swaps its stale connection (which it would only drop after timeouts.idle_secs) for
        // this one, so the next job does not fail on the dead one.
        let dialler = node.clone();
        tokio::spawn(async move {
            if let Err(e) = dialler.peer_connection().await {
                tracing::info!("peer not reachable yet, will dial again for the next job: {e:#}");
            }
        });
        tracing::info!(
            "node '{}' ({}) listening on {quic_addr} (QUIC), admin API on http://{admin_addr}",
            node.config.node.name,
            node.config.node.role
        );
        tracing::info!("AES for OT extension: {} (detected at start-up)", protocol::ot::aes_backend());
        if let Some(addr) = console_addr {
            tracing::info!("console on its own listener at {addr} (console.listen)");
        }
        Ok(Daemon { node, admin_addr, console_addr, quic_addr, stop_admin: Some(stop_admin), tasks })
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Address of the console's own listener (`console.listen`), if configured.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console_addr
    }

    pub fn quic_addr(&self) -> SocketAddr {
        self.quic_addr
    }

    /// Stops running jobs (up to 5 s for them to record it and tell the peer), closes the peer
    /// connection and the admin API, and waits (up to 10 s) until every task holding the node
    /// has ended, which closes the job database.
    pub async fn shutdown(mut self) {
        self.node.sessions.close_all();
        for flag in self.node.running.lock().expect("running lock").values() {
            let _ = flag.send(Some(Stop::Shutdown));
        }
        // Stopped jobs record their outcome and tell the peer, then unregister; wait (up to 5 s)
        // so the connection still carries their abort.
        wait_until(Duration::from_secs(5), || self.node.running.lock().expect("running lock").is_empty()).await;
        self.node.link.shutdown().await;
        if let Some(stop) = self.stop_admin.take() {
            let _ = stop.send(true);
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        // Connection tasks end once the endpoint is closed, job threads once their streams are
        // gone (recording that). Each holds the node, and so the job database: wait for the last
        // one, so that a restart in the same process can open the database again.
        if !wait_until(Duration::from_secs(10), || Arc::strong_count(&self.node) == 1).await {
            tracing::warn!("shutdown: some connection or job tasks did not end within 10 s");
        }
    }
}

/// Polls `done` every 20 ms until it holds or `limit` has passed; whether it held.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
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
    /// Does not wait while a dial is in progress (that counts as not connected yet).
    pub async fn peer_connected(&self) -> bool {
        self.connection.try_lock().is_ok_and(|slot| slot.as_ref().is_some_and(|c| c.close_reason().is_none()))
    }

    /// Fingerprint of the certificate the peer presented on the live connection, if any (the
    /// console shows it, also when the peer is trusted through `peer.ca`).
    pub fn connected_peer_fingerprint(&self) -> Option<String> {
        let slot = self.connection.try_lock().ok()?;
        let c = slot.as_ref().filter(|c| c.close_reason().is_none())?;
        peer_cert_sha256(c).ok().map(|fp| format_fingerprint(&fp))
    }

    /// This node's policy check of `spec` with its peer, as run on submission (the console's
    /// pre-check calls it too: one implementation).
    pub fn policy_check(&self, spec: &JobSpec) -> Result<(), policy::Refusal> {
        policy::check(&self.config, spec, &self.config.peer.name, self.peer_fingerprint.as_deref())
    }

    /// Submits a job from the local `operator` (person or service account, recorded in the
    /// job's manifest): checks this node's policy, records it, runs it.
    pub fn submit(self: &Arc<Self>, spec: JobSpec, operator: &str) -> Result<JobRecord> {
        spec.validate()?;
        self.policy_check(&spec).map_err(|reason| anyhow!("refused by this node: {reason}"))?;
        let id = new_job_id();
        let stop = self.try_register(&id)?;
        let mut record = JobRecord::new(
            &id,
            spec.clone(),
            &self.config.node.name,
            &self.config.peer.name,
            &runner::step_names(&spec.params),
        );
        record.operator = operator.to_string();
        if let Err(e) = self.store.insert(&record) {
            self.unregister(&id);
            return Err(e);
        }
        let node = self.clone();
        let job_id = id.clone();
        self.handle.spawn(async move {
            let streams = async {
                let conn = node.peer_connection().await?;
                let peer_cert = peer_cert_sha256(&conn)?;
                let limit = node.config.timeouts.connect();
                // Bounded: a peer that grants no stream must not leave the job pending forever.
                let (send, recv) = within(limit, open_job_stream(&conn, &job_id)).await.map_err(|e| match e {
                    protocol::Error::Transport(protocol::TransportError::Timeout(s)) => anyhow!(
                        "cannot open a job stream: peer '{}' accepted no new stream within {s} s (timeouts.connect_secs)",
                        node.config.peer.name
                    ),
                    e => anyhow!("cannot open a job stream: {e}"),
                })?;
                Ok::<_, anyhow::Error>((send, recv, peer_cert))
            };
            match streams.await {
                Ok((send, recv, peer_cert)) => node.run_blocking(job_id, send, recv, peer_cert, stop, true).await,
                Err(e) => {
                    let reason = format!("connect: {e:#}");
                    node.store.record_end(&job_id, move |r| r.fail(JobState::Failed, &reason));
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
                let _ = flag.send(Some(Stop::Cancelled));
            }
            None => bail!("job '{id}' is not running on this node"),
        }
        Ok(record)
    }

    /// Registers a starting job and returns its stop flag, unless
    /// `limits.max_concurrent_jobs` jobs already run on this node.
    fn try_register(&self, id: &str) -> Result<watch::Receiver<Option<Stop>>> {
        let max = self.config.limits.max_concurrent_jobs;
        let mut running = self.running.lock().expect("running lock");
        if running.len() >= max {
            bail!(
                "node '{}' already runs {max} jobs, its limit (limits.max_concurrent_jobs = {max}); \
                 wait for one to end or raise the limit",
                self.config.node.name
            );
        }
        let (tx, rx) = watch::channel(None);
        running.insert(id.to_string(), tx);
        Ok(rx)
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
        stop: watch::Receiver<Option<Stop>>,
        submitter: bool,
    ) {
        let stream = QuicTransport::new(send, recv, self.handle.clone(), self.config.timeouts.read(), stop.clone());
        let flushed = stream.flushed();
        let transport: Box<dyn Transport> = Box::new(PeerStream { stream, peer: self.config.peer.name.clone() });
        let env = JobEnv {
            config: self.config.clone(),
            store: self.store.clone(),
            stop,
            peer_fingerprint: self.peer_fingerprint.clone(),
            peer_cert_sha256,
            sessions: self.sessions.clone(),
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
            let reason = format!("job thread failed: {e}");
            self.store.record_end(&id, move |r| r.fail(JobState::Failed, &reason));
        }
        // The job's last frames (e.g. its abort) reach the peer before the job counts as ended,
        // so a shutdown that waits for running jobs does not cut them off.
        flushed.await;
        self.unregister(&id);
    }
}

/// A job stream whose connection failures name the peer ("... timed out (peer 'gov')"), so the
/// job's error says whom this node lost.
struct PeerStream {
    stream: QuicTransport,
    peer: String,
}

impl PeerStream {
    fn name_peer(&self, e: protocol::Error) -> protocol::Error {
        match e {
            protocol::Error::Transport(protocol::TransportError::Closed(why)) => {
                protocol::Error::Transport(protocol::TransportError::Closed(format!("{why} (peer '{}')", self.peer)))
            }
            other => other,
        }
    }
}

impl Transport for PeerStream {
    fn send(&mut self, frame: Frame) -> Result<(), protocol::Error> {
        self.stream.send(frame).map_err(|e| self.name_peer(e))
    }
    fn recv(&mut self, max_payload: usize) -> Result<Frame, protocol::Error> {
        self.stream.recv(max_payload).map_err(|e| self.name_peer(e))
    }
}

/// A bind failure naming what was bound, the config key, and the fix.
fn bind_error(e: std::io::Error, what: &str, key: &str) -> anyhow::Error {
    let fix = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "another process (another tandem node?) already uses this port: stop it or choose a free port".to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => "the address is not one of this machine's addresses".to_string(),
        _ => "check the address and port".to_string(),
    };
    anyhow!("cannot bind {what} ({key}): {e}; {fix} in {key}")
}

async fn accept_loop(node: Arc<Node>) {
    while let Some(incoming) = node.link.accept().await {
        let node = node.clone();
        tokio::spawn(async move {
            let peer = match node.link.handshake(incoming).await {
                Ok(peer) => peer,
                Err(e) => return tracing::warn!("{e:#}"),
            };
            let remote = peer.connection.remote_address();
            if node.peer_connections.fetch_add(1, Ordering::SeqCst) >= MAX_PEER_CONNECTIONS {
                node.peer_connections.fetch_sub(1, Ordering::SeqCst);
                let reason = format!("peer '{}' already has {MAX_PEER_CONNECTIONS} connections open", peer.peer.name);
                tracing::warn!("refused connection from {remote}: {reason}");
                return peer.connection.close(crate::transport::link::REFUSED_CODE.into(), reason.as_bytes());
            }
            tracing::info!("peer '{}' connected from {remote}", peer.peer.name);
            *node.connection.lock().await = Some(peer.connection.clone());
            serve_streams(node.clone(), peer.connection).await;
            node.peer_connections.fetch_sub(1, Ordering::SeqCst);
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
            if !valid_job_id(&id) {
                let _ = recv.stop(crate::transport::stream::ABORT_CODE.into());
                return tracing::warn!("peer proposed an invalid job id '{id:.64}'");
            }
            let refusal = match node.store.get(&id) {
                Ok(Some(_)) => {
                    let _ = recv.stop(crate::transport::stream::ABORT_CODE.into());
                    return tracing::warn!("peer proposed an already known job id '{id}'");
                }
                Ok(None) => match node.try_register(&id) {
                    Ok(stop) => return node.run_blocking(id, send, recv, peer_cert, stop, false).await,
                    Err(e) => (e, FailureKind::Busy),
                },
                Err(e) => (e, FailureKind::Internal),
            };
            // Answer the proposal with an abort so the peer's job fails with the kind of reason.
            tracing::warn!("refused job '{id}' proposed by the peer: {:#}", refusal.0);
            let (mut send, limit) = (send, node.config.timeouts.connect());
            let notice = peer_notice(&node.config.node.name, runner::CONNECT, refusal.1);
            let _ = within(limit, write_frame(&mut send, &Frame { kind: ABORT.into(), payload: notice.into_bytes() }))
                .await;
            let _ = send.finish();
            // Take the proposal off the wire (bounded) so the peer's write of it does not fail
            // before it reads the abort.
            let _ = within(limit, read_frame(&mut recv, MAX_REFUSED_PROPOSAL)).await;
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
