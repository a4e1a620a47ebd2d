//! Two in-process nodes, gov and bank, connected over real QUIC on 127.0.0.1: fresh self-signed
//! certificates pinned by fingerprint (mutual TLS 1.3), the hello, and job streams carrying
//! [`Channel`]s through [`QuicTransport`]. For benches and tests; the daemon does not use it.
//!
//! [`Loopback`] owns its own tokio runtime, so it must be created and used outside any runtime
//! (plain threads); the channels it hands out block on that runtime and stop working once the
//! `Loopback` is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use protocol::{Channel, Role};
use quinn::{RecvStream, SendStream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use super::stream::{Stop, open_job_stream, read_job_open};
use super::{Hello, Link, LinkSettings, PROTOCOL_VERSION, PeerConnection, PeerTrust, QuicTransport, TlsIdentity};
use crate::config::cert_fingerprint;
use crate::identity::self_signed_cert;

/// A live gov–bank QUIC connection on loopback. Fields drop in order: connections and endpoints
/// before the runtime that drives them.
pub struct Loopback {
    at_gov: PeerConnection,
    at_bank: PeerConnection,
    gov: Link,
    bank: Link,
    /// Never set: the channels of a loopback are not stopped.
    stop: watch::Sender<Option<Stop>>,
    io_timeout: Duration,
    next_job: AtomicU64,
    runtime: tokio::runtime::Runtime,
}

fn identity(name: &str) -> Result<(TlsIdentity, [u8; 32])> {
    let (cert_pem, key_pem, der) = self_signed_cert(name)?;
    let identity = TlsIdentity {
        cert: CertificateDer::from_pem_slice(cert_pem.as_bytes()).context("fresh certificate")?,
        key: PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("fresh key")?,
    };
    Ok((identity, cert_fingerprint(&der)))
}

fn settings(name: &str, role: Role, peer_name: &str) -> LinkSettings {
    LinkSettings {
        me: Hello { version: PROTOCOL_VERSION, name: name.into(), role },
        peer_name: peer_name.into(),
        peer_role: role.peer(),
        connect_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        keepalive: Duration::from_secs(5),
    }
}

/// A tokio runtime with `workers` worker threads.
fn runtime(workers: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Gov: waits for the bank's connection on `link` and completes the handshake.
async fn accept_peer(link: &Link) -> Result<PeerConnection> {
    let incoming = link.accept().await.ok_or_else(|| anyhow!("gov endpoint closed"))?;
    link.handshake(incoming).await
}

/// Gov: accepts the bank's next job stream on `conn`, which must open job `job`.
async fn accept_job(conn: &PeerConnection, job: &str, io_timeout: Duration) -> Result<(SendStream, RecvStream)> {
    let (send, mut recv) = conn.connection.accept_bi().await?;
    let id = read_job_open(&mut recv, io_timeout).await?;
    anyhow::ensure!(id == job, "gov accepted stream of job '{id}', expected '{job}'");
    Ok((send, recv))
}

/// `role`'s channel over a job stream. Benchmarks run without a policy: every reveal allowed.
fn bench_channel(
    (send, recv): (SendStream, RecvStream),
    role: Role,
    runtime: &tokio::runtime::Runtime,
    io_timeout: Duration,
    stop: &watch::Sender<Option<Stop>>,
) -> Channel {
    let transport = QuicTransport::new(send, recv, runtime.handle().clone(), io_timeout, stop.subscribe());
    let mut ch = Channel::new(Box::new(transport), role);
    ch.set_gate(Box::new(protocol::disclose::Ledger::allow_all()));
    ch
}

impl Loopback {
    /// Starts both endpoints (2 runtime workers) and connects bank → gov. Receives on the
    /// channels fail after `io_timeout` of peer silence (pick it above the longest local compute
    /// step of the protocol run over it).
    pub fn start(io_timeout: Duration) -> Result<Loopback> {
        let runtime = runtime(2)?;
        let (gov_id, gov_fp) = identity("gov")?;
        let (bank_id, bank_fp) = identity("bank")?;
        let local = "127.0.0.1:0".parse().expect("socket address");
        let (gov, bank, at_gov, at_bank) = runtime.block_on(async {
            let gov = Link::bind_addr(&gov_id, &PeerTrust::Pinned(bank_fp), settings("gov", Role::Gov, "bank"), local)?;
            let bank =
                Link::bind_addr(&bank_id, &PeerTrust::Pinned(gov_fp), settings("bank", Role::Bank, "gov"), local)?;
            let addr = gov.local_addr()?;
            let (at_gov, at_bank) = tokio::join!(accept_peer(&gov), bank.connect(addr));
            anyhow::Ok((gov, bank, at_gov?, at_bank?))
        })?;
        Ok(Loopback {
            at_gov,
            at_bank,
            gov,
            bank,
            stop: watch::channel(None).0,
            io_timeout,
            next_job: AtomicU64::new(1),
            runtime,
        })
    }

    /// Opens a new job stream (bank opens, gov accepts) and returns its (gov, bank) channels.
    /// Several pairs may be open at once, each on its own stream of the one connection.
    pub fn pair(&self) -> Result<(Channel, Channel)> {
        let job = format!("loopback-{}", self.next_job.fetch_add(1, Ordering::Relaxed));
        let (gov_stream, bank_stream) = self.runtime.block_on(async {
            let open = async { anyhow::Ok(open_job_stream(&self.at_bank.connection, &job).await?) };
            let (g, b) = tokio::join!(accept_job(&self.at_gov, &job, self.io_timeout), open);
            anyhow::Ok((g?, b?))
        })?;
        let channel = |stream, role| bench_channel(stream, role, &self.runtime, self.io_timeout, &self.stop);
        Ok((channel(gov_stream, Role::Gov), channel(bank_stream, Role::Bank)))
    }

    /// Runs `gov` and `bank` on two threads over a fresh job stream; returns both results.
    pub fn run<A, B, FA, FB>(&self, gov: FA, bank: FB) -> Result<(A, B)>
    where
        A: Send,
        B: Send,
        FA: FnOnce(&mut Channel) -> A + Send,
        FB: FnOnce(&mut Channel) -> B + Send,
    {
        let (mut g, mut b) = self.pair()?;
        std::thread::scope(|s| {
            let hg = s.spawn(move || gov(&mut g));
            let hb = s.spawn(move || bank(&mut b));
            let (a, b) = (hg.join(), hb.join());
            Ok((a.map_err(|_| anyhow!("gov thread panicked"))?, b.map_err(|_| anyhow!("bank thread panicked"))?))
        })
    }

    /// The two endpoints' addresses (gov, bank).
    pub fn addrs(&self) -> Result<(std::net::SocketAddr, std::net::SocketAddr)> {
        Ok((self.gov.local_addr()?, self.bank.local_addr()?))
    }
}

/// A fresh self-signed identity for one end of a two-process loopback: its fingerprint goes to
/// the peer process, which pins it.
pub struct EndIdentity {
    tls: TlsIdentity,
    pub fingerprint: [u8; 32],
}

impl EndIdentity {
    pub fn fresh(role: Role) -> Result<EndIdentity> {
        let (tls, fingerprint) = identity(role.as_str())?;
        Ok(EndIdentity { tls, fingerprint })
    }
}

/// One party's end of a loopback whose other party runs in another process (benches that
/// measure each party's memory on its own). Gov listens, bank connects; the bench passes the
/// fingerprints and gov's address between the processes.
pub struct LoopbackEnd {
    conn: PeerConnection,
    _link: Link,
    role: Role,
    stop: watch::Sender<Option<Stop>>,
    io_timeout: Duration,
    runtime: tokio::runtime::Runtime,
}

/// Gov's end, bound to 127.0.0.1 and pinned to the bank's fingerprint, before the bank connects.
pub struct GovListening {
    link: Link,
    runtime: tokio::runtime::Runtime,
}

impl LoopbackEnd {
    /// Gov: binds an ephemeral port on 127.0.0.1 that accepts only `bank_fingerprint`.
    pub fn listen(me: &EndIdentity, bank_fingerprint: [u8; 32]) -> Result<GovListening> {
        let runtime = runtime(1)?;
        let local = "127.0.0.1:0".parse().expect("socket address");
        let link = runtime.block_on(async {
            Link::bind_addr(&me.tls, &PeerTrust::Pinned(bank_fingerprint), settings("gov", Role::Gov, "bank"), local)
        })?;
        Ok(GovListening { link, runtime })
    }

    /// Bank: connects to gov at `addr`, accepting only `gov_fingerprint`.
    pub fn connect(
        me: &EndIdentity,
        gov_fingerprint: [u8; 32],
        addr: std::net::SocketAddr,
        io_timeout: Duration,
    ) -> Result<LoopbackEnd> {
        let runtime = runtime(1)?;
        let local = "127.0.0.1:0".parse().expect("socket address");
        let (link, conn) = runtime.block_on(async {
            let link = Link::bind_addr(
                &me.tls,
                &PeerTrust::Pinned(gov_fingerprint),
                settings("bank", Role::Bank, "gov"),
                local,
            )?;
            let conn = link.connect(addr).await?;
            anyhow::Ok((link, conn))
        })?;
        Ok(LoopbackEnd { conn, _link: link, role: Role::Bank, stop: watch::channel(None).0, io_timeout, runtime })
    }

    /// The channel of job stream `job` (bank opens it, gov accepts it); every reveal allowed.
    pub fn channel(&self, job: &str) -> Result<Channel> {
        let stream = self.runtime.block_on(async {
            match self.role {
                Role::Bank => anyhow::Ok(open_job_stream(&self.conn.connection, job).await?),
                Role::Gov => accept_job(&self.conn, job, self.io_timeout).await,
            }
        })?;
        Ok(bench_channel(stream, self.role, &self.runtime, self.io_timeout, &self.stop))
    }
}

impl GovListening {
    pub fn addr(&self) -> Result<std::net::SocketAddr> {
        self.link.local_addr()
    }

    /// Waits for the bank's connection and completes the handshake.
    pub fn accept(self, io_timeout: Duration) -> Result<LoopbackEnd> {
        let GovListening { link, runtime } = self;
        let conn = runtime.block_on(accept_peer(&link))?;
        Ok(LoopbackEnd { conn, _link: link, role: Role::Gov, stop: watch::channel(None).0, io_timeout, runtime })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both parties send 16 MiB before either receives: far beyond QUIC's flow-control windows,
    /// so this completes only if sends never wait for the peer to read.
    #[test]
    fn both_parties_send_16_mib_before_receiving() {
        let lo = Loopback::start(Duration::from_secs(30)).unwrap();
        let len = 16 << 20;
        let data = |seed: u64| -> Vec<u8> {
            (0..len as u64).map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed).to_le_bytes()[7]).collect()
        };
        let (from_gov, from_bank) = (data(1), data(2));
        fn exchange(ch: &mut Channel, mine: &[u8]) -> protocol::Result<Vec<u8>> {
            ch.send_bulk("big", mine)?;
            ch.send("done", &(mine.len() as u64))?;
            let got = ch.recv_bulk("big", mine.len() as u64)?;
            let n: u64 = ch.recv("done")?;
            assert_eq!(n as usize, got.len());
            Ok(got)
        }
        let (at_gov, at_bank) = lo.run(|ch| exchange(ch, &from_gov), |ch| exchange(ch, &from_bank)).unwrap();
        assert!(at_gov.unwrap() == from_bank, "gov must receive exactly the bank's bytes");
        assert!(at_bank.unwrap() == from_gov, "bank must receive exactly the gov's bytes");
    }

    /// Several job streams on the one connection run at the same time without mixing frames.
    #[test]
    fn concurrent_job_streams_stay_separate() {
        let lo = Loopback::start(Duration::from_secs(30)).unwrap();
        let pairs: Vec<_> = (0..3).map(|_| lo.pair().unwrap()).collect();
        std::thread::scope(|s| {
            for (i, (mut g, mut b)) in pairs.into_iter().enumerate() {
                s.spawn(move || {
                    let values: Vec<u64> = (0..50_000u64).map(|v| v * 7 + i as u64).collect();
                    g.send_u64s("v", &values).unwrap();
                    assert_eq!(b.recv_u64s("v", values.len()).unwrap(), values);
                    b.send("echo", &(i as u64)).unwrap();
                    assert_eq!(g.recv::<u64>("echo").unwrap(), i as u64);
                });
            }
        });
    }

    /// A send after the peer's stream is gone fails on a later send or receive, never hangs.
    #[test]
    fn send_failure_surfaces_on_a_later_call() {
        let lo = Loopback::start(Duration::from_secs(30)).unwrap();
        let (mut g, b) = lo.pair().unwrap();
        drop(b); // bank's receive side is dropped: quinn tells gov to stop sending
        let mut outcome = Ok(());
        for _ in 0..200 {
            outcome = g.send_frame("x", vec![0u8; 1 << 20]);
            if outcome.is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let err = match outcome {
            Err(e) => e,
            Ok(()) => g.recv_frame("y").unwrap_err(),
        };
        assert!(matches!(err, protocol::Error::Transport(protocol::TransportError::Closed(_))), "{err}");
    }
}
