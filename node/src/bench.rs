//! `tandem bench ...`: both parties in this process, talking over real QUIC with mutual TLS on
//! 127.0.0.1 ([`Loopback`]), each on its own thread with an OS-seeded CSPRNG. Every bench prints
//! JSON lines and quotes its figures as ratios against a reference measured in the same run (raw
//! QUIC throughput and round trips, the minimum elliptic-curve work, the plaintext trainer), so
//! the figures stay comparable on a shared machine. Bytes are everything both parties sent.
//!
//! Wall times include both parties competing for the same cores. CPU seconds (where given) are
//! this process's user + system time, i.e. both parties together.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Subcommand;
use models::binning::BinningParams;
use models::dataset::{self, Dataset};
use models::metrics::auc;
use models::reference::{TrainParams, train_reference};
use models::scorecard::{ScoreOutput, Scorecard};
use models::secure_lr::{ModelArtifact, ModelReveal, PartyData, TrainJob, TrainOutput, secure_train};
use models::standardize::{PrepParams, Standardizer};
use models::watchlist::{Flags, secure_watchlist};
use models::woe_lr::{WoeParty, secure_train_woe, train_woe_reference};
use protocol::fixed::FixedPoint;
use protocol::ids::{IdKind, PreparedIds, prepare_ids};
use protocol::lookup::{LookupClient, LookupServer};
use protocol::mpc::{Correlations, Engine, PlainMatrix, Sigmoid, Traffic};
use protocol::psi::{PsiOutput, PsiParams, PsiProtocol, PsiReveal, ec_reference_work, intersect};
use protocol::{Channel, Role, Stats};
use rand::{Rng, RngExt};
use serde_json::{Value, json};

use crate::jobs::failure::Result as JobResult;
use crate::jobs::spec::TrainModel;
use crate::transport::loopback::{EndIdentity, Loopback, LoopbackEnd};

/// Receive timeout of the bench channels: above the longest local compute step (PSI at 2^22).
const IO_TIMEOUT: Duration = Duration::from_secs(900);

/// SPU cheetah (OT + HE, no dealer) on synthetic_30k, 10 epochs, batch 1024, lr 0.5
/// (notes/anchors.md): (seconds, bytes) per sigmoid; no figure for poly3.
fn cheetah_anchor(sigmoid: Sigmoid) -> Option<(f64, f64)> {
    match sigmoid {
        Sigmoid::Linear => Some((36.9, 520e6)),
        Sigmoid::ClippedLinear => Some((60.6, 579e6)),
        Sigmoid::Poly3 => None,
    }
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Two-party engine: OT throughput, 1024×32 matrix–vector products (both orientations),
    /// 1024-element multiplication and sigmoids, one LR iteration; against raw QUIC throughput.
    Mpc,
    /// PSI on two generated sets of n raw IDs: VOLE-PSI and ECDH-PSI in one run (VOLE's time and
    /// bytes as ratios to ECDH's), ECDH against the minimum EC work of ECDH-PSI.
    Psi {
        /// IDs per party.
        #[arg(long, default_value_t = 1 << 16)]
        n: usize,
        /// Fraction of each party's IDs the other party holds too.
        #[arg(long, default_value_t = 0.5)]
        overlap: f64,
        /// Run only this protocol (`vole` or `ecdh`); both by default.
        #[arg(long, value_parser = parse_psi_protocol)]
        protocol: Option<PsiProtocol>,
        /// 1: both parties in this process; 2: the bank in a child process of this binary (QUIC
        /// over 127.0.0.1 as well), so that each party's peak RSS is measured on its own.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        processes: u8,
    },
    /// The bank's side of `bench psi --processes 2`, started by it (stdin/stdout carry the
    /// connection set-up and the result line).
    #[command(hide = true)]
    PsiBank {
        #[arg(long)]
        n: usize,
        #[arg(long)]
        overlap: f64,
        /// Seed of the generated IDs (hex), shared with the gov process.
        #[arg(long)]
        seed: String,
        #[arg(long, value_parser = parse_psi_protocol)]
        protocol: PsiProtocol,
    },
    /// PSI-aligned secure logistic regression on two CSV files; against the plaintext trainer.
    Lr(LrArgs),
    /// Silent random COT (protocol::pcg) against IKNP random COT, both measured in this run.
    Cot {
        /// COTs per run.
        #[arg(long, default_value_t = 1 << 20)]
        n: usize,
        /// Runs of each generator, alternated (silent, IKNP, silent, ...): the figures are the
        /// median run's, with the fastest and slowest beside them (a shared machine's speed
        /// swings between seconds).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Single-entity scoring by private lookup (gov serves per-entity partial scores, the bank
    /// sends one-ID queries); against raw QUIC round trips.
    Score {
        /// Entities in the gov's table.
        #[arg(long, default_value_t = 100_000)]
        entities: usize,
        /// Single-ID lookups per job.
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// Concurrent jobs (one stream each on the one connection) in the second phase; 0 skips it.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Scoring session ([`crate::sessions`]): seconds of sustained load at --qps; 0 skips it.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Scoring session: single-id queries per second in the sustained load.
        #[arg(long, default_value_t = 100)]
        qps: u64,
        /// Run only the scoring-session part.
        #[arg(long)]
        session_only: bool,
    },
    /// The gov's early-warning list: trains as `bench lr` does, then flags `rows` entities
    /// drawn from the aligned rows by secure comparison; checked against the plaintext model.
    Watchlist {
        #[command(flatten)]
        lr: LrArgs,
        /// Entities compared with the threshold (aligned rows drawn with repetition).
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// PD threshold.
        #[arg(long, default_value_t = 0.5)]
        threshold: f64,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct LrArgs {
    /// Gov CSV: ID column + feature columns.
    #[arg(long)]
    pub gov: PathBuf,
    /// Bank CSV: ID column + feature columns + label column.
    #[arg(long)]
    pub bank: PathBuf,
    /// Test-set IDs, one per line; without it every 5th aligned row is a test row.
    #[arg(long)]
    pub test_ids: Option<PathBuf>,
    #[arg(long, default_value = "uscc")]
    pub id_column: String,
    /// Kind of the IDs: uscc, resident_id or raw.
    #[arg(long, default_value = "uscc")]
    pub id_kind: IdKind,
    #[arg(long, default_value = "default_12m")]
    pub label_column: String,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    #[arg(long, default_value_t = 0.5)]
    pub lr: f64,
    /// linear, clipped_linear or poly3.
    #[arg(long, default_value = "linear", value_parser = parse_sigmoid)]
    pub sigmoid: Sigmoid,
    /// woe_scorecard (default binning parameters) or raw_lr.
    #[arg(long, default_value = "woe_scorecard", value_parser = parse_model)]
    pub model: TrainModel,
    /// Correlated-OT sources to train with, one line each (same PSI, data and parameters):
    /// comma-separated `iknp`, `silent` (e.g. `--correlations iknp,silent` compares both).
    #[arg(long, default_value = "silent", value_delimiter = ',', value_parser = parse_correlations)]
    pub correlations: Vec<Correlations>,
}

impl LrArgs {
    /// The training parameters these arguments give (the rest default), checked.
    fn train_params(&self) -> Result<TrainParams> {
        let params = TrainParams {
            epochs: self.epochs,
            batch_size: self.batch,
            learning_rate: self.lr,
            sigmoid: self.sigmoid,
            ..Default::default()
        };
        params.validate().map_err(|e| anyhow!("{e}"))?;
        Ok(params)
    }
}

fn parse_correlations(s: &str) -> Result<Correlations, String> {
    s.parse().map_err(|e: protocol::Error| e.to_string())
}

/// The link the traffic report predicts for: 100 Mbit/s, 20 ms round trip.
const LINK_BITS_PER_SECOND: f64 = 1e8;
const LINK_RTT_SECONDS: f64 = 0.02;

/// The engine's traffic by kind (bytes in both directions) and its round trips, with the time
/// predicted from those counts alone on a 100 Mbit/s, 20 ms RTT link:
/// `total_bytes · 8 / 1e8 + rounds · 0.02` seconds (computation and TCP/QUIC effects excluded).
pub fn traffic_json(correlations: Correlations, t: &Traffic) -> Value {
    json!({
        "correlations": correlations.as_str(),
        "setup_bytes": t.setup_bytes,
        "correlation_bytes": t.correlation_bytes,
        "correction_bytes": t.correction_bytes,
        "opening_bytes": t.opening_bytes,
        "total_bytes": t.total_bytes(),
        "rounds": t.rounds,
        "setup_rounds": t.setup_rounds,
        "predicted_seconds_100mbit_20ms": round(t.predicted_seconds(LINK_BITS_PER_SECOND, LINK_RTT_SECONDS), 2),
        "prediction": "total_bytes*8/1e8 + rounds*0.02",
    })
}

fn parse_model(s: &str) -> Result<TrainModel, String> {
    serde_json::from_value(Value::String(s.to_string()))
        .map_err(|_| format!("unknown model '{s}': use woe_scorecard or raw_lr"))
}

fn parse_psi_protocol(s: &str) -> Result<PsiProtocol, String> {
    serde_json::from_value(Value::String(s.to_string()))
        .map_err(|_| format!("unknown PSI protocol '{s}': use vole or ecdh"))
}

fn parse_sigmoid(s: &str) -> Result<Sigmoid, String> {
    serde_json::from_value(Value::String(s.to_string()))
        .map_err(|_| format!("unknown sigmoid '{s}': use linear, clipped_linear or poly3"))
}

/// Runs one bench and prints its JSON lines.
pub fn run(command: BenchCommand) -> Result<()> {
    let lines = match command {
        BenchCommand::Mpc => mpc()?,
        BenchCommand::Psi { n, overlap, protocol, processes: 1 } => psi(n, overlap, protocol)?,
        BenchCommand::Psi { n, overlap, protocol, .. } => psi_two_processes(n, overlap, protocol)?,
        BenchCommand::PsiBank { n, overlap, seed, protocol } => vec![psi_bank_process(n, overlap, &seed, protocol)?],
        BenchCommand::Lr(args) => lr(&args)?,
        BenchCommand::Score { entities, queries, jobs, seconds, qps, session_only } => {
            let mut lines = if session_only { Vec::new() } else { score(entities, queries, jobs)? };
            if seconds > 0 {
                lines.extend(score_session(entities, queries, seconds, qps)?);
            }
            lines
        }
        BenchCommand::Cot { n, runs } => cot(n, runs)?,
        BenchCommand::Watchlist { lr, rows, threshold } => vec![watchlist(&lr, rows, threshold)?],
    };
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// Rounds to `digits` decimals for printing.
fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 100 ticks/s);
/// None where unavailable.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Wall and CPU seconds of `f`.
fn clocked<T>(f: impl FnOnce() -> T) -> (T, f64, Option<f64>) {
    let (start, cpu) = (Instant::now(), process_cpu_seconds());
    let out = f();
    let cpu = cpu.zip(process_cpu_seconds()).map(|(a, b)| b - a);
    (out, start.elapsed().as_secs_f64(), cpu)
}

/// Runs both parties over a fresh stream of `lo`; each result comes with that party's channel
/// counters. A failure on either side is an error naming the party.
fn run_both<A: Send, B: Send>(
    lo: &Loopback,
    gov: impl FnOnce(&mut Channel) -> protocol::Result<A> + Send,
    bank: impl FnOnce(&mut Channel) -> protocol::Result<B> + Send,
) -> Result<((A, Stats), (B, Stats))> {
    let (g, b) = lo.run(|ch| gov(ch).map(|a| (a, ch.stats())), |ch| bank(ch).map(|b| (b, ch.stats())))?;
    Ok((g.map_err(|e| anyhow!("gov: {e}"))?, b.map_err(|e| anyhow!("bank: {e}"))?))
}

fn bytes_sent(g: &Stats, b: &Stats) -> u64 {
    g.bytes_sent + b.bytes_sent
}

// ---------------------------------------------------------------------------------------------
// Reference: raw QUIC on the same loopback

/// Both parties send `len` bytes at once, then read the peer's: bytes both sent per second.
fn link_throughput(lo: &Loopback, len: usize) -> Result<(f64, Value)> {
    let data = vec![0x5au8; len];
    let exchange = |ch: &mut Channel| {
        ch.send_bulk("bench.link", &data)?;
        ch.recv_bulk("bench.link", len as u64).map(|got| got.len())
    };
    let (outcome, seconds, _) = clocked(|| run_both(lo, exchange, exchange));
    let ((got_g, gs), (got_b, bs)) = outcome?;
    ensure!(got_g == len && got_b == len, "link reference: a party received a short transfer");
    let bytes = bytes_sent(&gs, &bs);
    let rate = bytes as f64 / seconds;
    let line = json!({
        "bench": "mpc", "op": "link_reference", "size": format!("2x{} MiB at once", len >> 20),
        "seconds": round(seconds, 4), "bytes": bytes, "mb_per_s": round(rate / 1e6, 1),
    });
    Ok((rate, line))
}

/// Round trips of a small message on one stream: sorted latencies in seconds.
fn round_trips(lo: &Loopback, count: usize) -> Result<Vec<f64>> {
    let ((mut rtts, _), _) = run_both(
        lo,
        |ch| {
            let mut rtts = Vec::with_capacity(count);
            for i in 0..count as u64 {
                let t = Instant::now();
                ch.send("bench.ping", &i)?;
                let echoed: u64 = ch.recv("bench.pong")?;
                rtts.push(t.elapsed().as_secs_f64());
                if echoed != i {
                    return Err(
                        protocol::PeerError::Inconsistent { what: format!("pong {echoed} for ping {i}") }.into()
                    );
                }
            }
            Ok(rtts)
        },
        |ch| {
            for _ in 0..count {
                let i: u64 = ch.recv("bench.ping")?;
                ch.send("bench.pong", &i)?;
            }
            Ok(())
        },
    )?;
    rtts.sort_by(f64::total_cmp);
    Ok(rtts)
}

/// The `p`-quantile (0..=1) of sorted values.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ---------------------------------------------------------------------------------------------
// mpc

/// One engine operation as seen by one party.
struct Measured {
    op: String,
    size: String,
    seconds: f64,
    stats: Stats,
    /// OTs extended during the operation, in both directions.
    ots: u64,
}

fn measure<T>(
    e: &mut Engine,
    out: &mut Vec<Measured>,
    op: &str,
    size: &str,
    f: impl FnOnce(&mut Engine) -> protocol::Result<T>,
) -> protocol::Result<T> {
    let (before, ots_before, t) = (e.stats(), e.ot_counts(), Instant::now());
    let value = f(e)?;
    let seconds = t.elapsed().as_secs_f64();
    let ots = e.ot_counts();
    let ots = (ots.0 - ots_before.0) + (ots.1 - ots_before.1);
    out.push(Measured { op: op.into(), size: size.into(), seconds, stats: e.stats().since(&before), ots });
    Ok(value)
}

/// The engine benchmark at one party (both must call it): setup, a large multiplication for OT
/// throughput, 1024×32 matvec / matvec_t, 1024 multiplications, each sigmoid on 1024 values, one
/// vertical-LR iteration (gov 1024×10, bank 1024×13). Inputs are random.
fn engine_ops(ch: &mut Channel) -> protocol::Result<Vec<Measured>> {
    let fp = FixedPoint::new(16);
    let mut rng = rand::rng();
    let mut out = Vec::new();
    let (before, t) = (ch.stats(), Instant::now());
    let mut e = Engine::new(ch, fp, &mut rng)?;
    out.push(Measured {
        op: "setup".into(),
        size: "2x128 base OT".into(),
        seconds: t.elapsed().as_secs_f64(),
        stats: e.stats().since(&before),
        ots: 0,
    });
    let me = e.role();
    let mut vals = |n: usize| -> Vec<u64> { (0..n).map(|_| fp.encode(rng.random::<f64>() * 4.0 - 2.0)).collect() };

    let (big_x, big_y) = (vals(1 << 14), vals(1 << 14));
    measure(&mut e, &mut out, "mul_ot_throughput", "16384 (2^21 correlated OTs)", |e| e.mul(&big_x, &big_y))?;

    let (rows, cols) = (1024, 32);
    let mat = PlainMatrix { rows, cols, data: vals(rows * cols) };
    let (v, u, x) = (vals(cols), vals(rows), vals(1024));
    let owner_m = (me == Role::Gov).then_some(&mat);
    let prepared =
        measure(&mut e, &mut out, "prepare_matrix", "1024x32", |e| e.prepare_matrix(Role::Gov, owner_m, rows, cols))?;
    measure(&mut e, &mut out, "matvec", "1024x32", |e| e.matvec(&prepared, &v))?;
    measure(&mut e, &mut out, "matvec_t", "1024x32", |e| e.matvec_t(&prepared, &u))?;
    measure(&mut e, &mut out, "mul", "1024", |e| e.mul(&x, &u))?;
    for s in [Sigmoid::Linear, Sigmoid::Poly3, Sigmoid::ClippedLinear] {
        let name = format!("sigmoid_{}", serde_json::to_value(s).expect("sigmoid name").as_str().unwrap_or("?"));
        measure(&mut e, &mut out, &name, "1024", |e| e.sigmoid(&x, s))?;
    }

    // One vertical-LR iteration: z = X_g·w_g + X_b·w_b, p = σ(z), g_g = X_gᵀp, g_b = X_bᵀp.
    let xg = PlainMatrix { rows: 1024, cols: 10, data: vals(10240) };
    let xb = PlainMatrix { rows: 1024, cols: 13, data: vals(13312) };
    let (wg, wb) = (vals(10), vals(13));
    let (gm, bm) = ((me == Role::Gov).then_some(&xg), (me == Role::Bank).then_some(&xb));
    // The batch matrices are prepared once per training job; the iteration reuses them.
    let (pg, pb) = (e.prepare_matrix(Role::Gov, gm, 1024, 10)?, e.prepare_matrix(Role::Bank, bm, 1024, 13)?);
    measure(&mut e, &mut out, "lr_iteration_linear", "gov 1024x10 + bank 1024x13", |e| {
        let z = e.matvec_each(&[(&pg, &wg), (&pb, &wb)], false)?;
        let p = e.sigmoid(&e.add(&z[0], &z[1]), Sigmoid::Linear)?;
        Ok(e.matvec_each(&[(&pg, &p), (&pb, &p)], true)?.concat())
    })?;
    Ok(out)
}

/// `tandem bench mpc`: one line for the link reference, one per engine operation (gov's clock;
/// bytes both sent). `ratio_to_wire` = seconds / (bytes at the reference link rate).
pub fn mpc() -> Result<Vec<Value>> {
    let lo = Loopback::start(IO_TIMEOUT)?;
    let (link_rate, link_line) = link_throughput(&lo, 32 << 20)?;
    let ((gov, _), (bank, _)) = run_both(&lo, engine_ops, engine_ops)?;
    let mut lines = vec![link_line];
    for (g, b) in gov.iter().zip(&bank) {
        let bytes = g.stats.bytes_sent + b.stats.bytes_sent;
        let wire = bytes as f64 / link_rate;
        lines.push(json!({
            "bench": "mpc", "op": g.op, "size": g.size,
            "seconds": round(g.seconds, 5), "bytes": bytes, "rounds": g.stats.rounds.max(b.stats.rounds),
            "ots": g.ots, "ots_per_second": round(g.ots as f64 / g.seconds, 0),
            "wire_seconds": round(wire, 5), "ratio_to_wire": round(g.seconds / wire, 2),
        }));
    }
    Ok(lines)
}

// ---------------------------------------------------------------------------------------------
// cot

/// IKNP random COT as the reference: gov is the IKNP sender (base-OT receiver with Δ's bits),
/// bank the receiver with random choices; outputs are the raw correlation `t = q ⊕ x·Δ`, like
/// the silent generator's. Returns the number of COTs.
fn iknp_cots(ch: &mut Channel, n: usize) -> protocol::Result<usize> {
    use protocol::ot::{base, iknp};
    let mut rng = rand::rng();
    let len = iknp::message_len(n) as u64;
    if ch.role() == Role::Gov {
        let delta: u128 = rng.random();
        let choices: Vec<bool> = (0..128).map(|j| (delta >> j) & 1 == 1).collect();
        let (msg, keys) = base::receive(&mut rng, &ch.recv_frame("bench.base.s")?, &choices)?;
        ch.send_bulk("bench.base.r", &msg)?;
        let mut sender = iknp::Sender::new(delta, &keys);
        let u = ch.recv_bulk("bench.iknp.u", len)?;
        Ok(sender.extend(n, &u)?.len())
    } else {
        let (base_sender, s) = base::Sender::start(&mut rng);
        ch.send_frame("bench.base.s", s)?;
        let pairs = base_sender.finish(&ch.recv_bulk("bench.base.r", 128 * 32)?, 128)?;
        let words: Vec<u128> = (0..n.div_ceil(128)).map(|_| rng.random()).collect();
        let (msg, t) = iknp::Receiver::new(&pairs).extend(n, &words);
        ch.send_bulk("bench.iknp.u", &msg)?;
        Ok(t.len())
    }
}

/// `tandem bench cot`: `n` random COTs from the silent generator (gov sends, bank receives)
/// and from IKNP, each with setup (base OTs) included, `runs` times each, alternated; COTs per
/// second of wall time of the median run with both parties on this machine, and bits on the
/// wire per COT.
pub fn cot(n: usize, runs: usize) -> Result<Vec<Value>> {
    ensure!((1..=protocol::pcg::MAX_N).contains(&n), "--n {n}: use 1..={}", protocol::pcg::MAX_N);
    ensure!(runs >= 1, "--runs {runs}: use at least 1");
    let lo = Loopback::start(IO_TIMEOUT)?;
    let (mut silent, mut iknp) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (outcome, seconds, cpu) = clocked(|| {
            run_both(
                &lo,
                |ch| protocol::pcg::cot_send(ch, n, &mut rand::rng()).map(|(_, s)| s.len()),
                |ch| protocol::pcg::cot_receive(ch, n, &mut rand::rng()).map(|(x, _)| x.len()),
            )
        });
        let ((g_n, g), (b_n, b)) = outcome?;
        ensure!(g_n == n && b_n == n, "silent COT returned {g_n} / {b_n} outputs, expected {n}");
        silent.push((seconds, cpu, bytes_sent(&g, &b), g.rounds.max(b.rounds)));
        let (outcome, seconds, cpu) = clocked(|| run_both(&lo, |ch| iknp_cots(ch, n), |ch| iknp_cots(ch, n)));
        let ((g_n, g), (b_n, b)) = outcome?;
        ensure!(g_n == n && b_n == n, "IKNP returned {g_n} / {b_n} outputs, expected {n}");
        iknp.push((seconds, cpu, bytes_sent(&g, &b), g.rounds.max(b.rounds)));
    }
    let line = |name: &str, runs: &mut Vec<(f64, Option<f64>, u64, u64)>| {
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (seconds, cpu, bytes, rounds) = runs[runs.len() / 2];
        let line = json!({
            "bench": "cot", "generator": name, "n": n, "runs": runs.len(), "seconds": round(seconds, 4),
            "cpu_seconds": cpu.map(|c| round(c, 2)), "cot_per_s": round(n as f64 / seconds, 0),
            "fastest_cot_per_s": round(n as f64 / runs[0].0, 0),
            "slowest_cot_per_s": round(n as f64 / runs[runs.len() - 1].0, 0),
            "bytes": bytes, "bits_per_cot": round(bytes as f64 * 8.0 / n as f64, 3), "rounds": rounds,
        });
        (line, seconds, bytes)
    };
    let ((silent_line, silent_seconds, silent_bytes), (iknp_line, iknp_seconds, iknp_bytes)) =
        (line("silent", &mut silent), line("iknp", &mut iknp));
    Ok(vec![
        silent_line,
        iknp_line,
        json!({
            "bench": "cot", "n": n, "speed_ratio_silent_to_iknp": round(iknp_seconds / silent_seconds, 3),
            "bytes_ratio_silent_to_iknp": round(silent_bytes as f64 / iknp_bytes as f64, 4),
        }),
    ])
}

// ---------------------------------------------------------------------------------------------
// psi

/// One party's set of `n` raw IDs (32 upper-case hex digits) in random order, in the node's
/// prepared form: the first `round(overlap·n)` drawn from `seed` for both parties, the rest
/// from `seed` and the party's role. Returns the set and the common count.
fn generated_set(n: usize, overlap: f64, seed: &[u8; 16], role: Role) -> Result<(PreparedIds, usize)> {
    ensure!((0.0..=1.0).contains(&overlap), "--overlap {overlap}: use a fraction between 0 and 1");
    ensure!(n > 0, "--n must be at least 1");
    let common = (overlap * n as f64).round() as usize;
    let id = |label: &str, i: usize| {
        let mut h = blake3::Hasher::new();
        h.update(seed).update(label.as_bytes()).update(&(i as u64).to_le_bytes());
        hex::encode_upper(&h.finalize().as_bytes()[..16])
    };
    let mut ids: Vec<String> =
        (0..common).map(|i| id("common", i)).chain((common..n).map(|i| id(role.as_str(), i))).collect();
    use rand::seq::SliceRandom;
    ids.shuffle(&mut rand::rng());
    // Upper-case hex is already a normalised raw ID (checked on a sample), and 128-bit hashes
    // do not repeat: the set is taken as prepared, without a second copy of every ID.
    let source = format!("generated {} IDs", role.as_str());
    let sample = prepare_ids(IdKind::Raw, &source, ids.iter().take(1000).map(|s| (1, s.as_str())), false)?;
    ensure!(sample.ids[..] == ids[..sample.ids.len()], "generated IDs are not normalised raw IDs");
    Ok((PreparedIds { rows: (0..n).collect(), ids, ..PreparedIds::default() }, common))
}

/// Both parties' generated sets under a fresh seed, and their common count.
fn generated_sets(n: usize, overlap: f64) -> Result<(PreparedIds, PreparedIds, usize)> {
    let seed: [u8; 16] = rand::rng().random();
    let (gov, common) = generated_set(n, overlap, &seed, Role::Gov)?;
    let (bank, _) = generated_set(n, overlap, &seed, Role::Bank)?;
    Ok((gov, bank, common))
}

/// The PSI parameters of `bench psi` and the protocols it runs (VOLE then ECDH, or only `only`).
fn psi_plan(only: Option<PsiProtocol>) -> (PsiParams, Vec<PsiProtocol>) {
    let params = PsiParams { domain: "bench".into(), reveal: PsiReveal::Both, min_intersection: 0 };
    (params, only.map_or_else(|| vec![PsiProtocol::Vole, PsiProtocol::Ecdh], |p| vec![p]))
}

/// `tandem bench psi`: VOLE-PSI then ECDH-PSI (or only `only`) over QUIC on the same sets, both
/// parties in this process; ECDH then against the EC reference (`psi::ec_reference_work`, n
/// hash-to-group + 2n scalar multiplications per party). With both, the VOLE line gives its
/// time and bytes as ratios to ECDH's. `peak_rss_bytes` is this process's high-water mark so far
/// (both parties together, so an upper bound for one party).
pub fn psi(n: usize, overlap: f64, only: Option<PsiProtocol>) -> Result<Vec<Value>> {
    let (gov_ids, bank_ids, expected) = generated_sets(n, overlap)?;
    let lo = Loopback::start(IO_TIMEOUT)?;
    let (params, protocols) = psi_plan(only);
    let mut lines = Vec::new();
    for protocol in protocols {
        let (outcome, seconds, cpu) = clocked(|| {
            run_both(
                &lo,
                |ch| protocol.intersect(ch, &gov_ids.ids, &params, &mut rand::rng()),
                |ch| protocol.intersect(ch, &bank_ids.ids, &params, &mut rand::rng()),
            )
        });
        let ((g, gs), (b, bs)) = outcome?;
        check_intersection(&g, &b, &gov_ids, &bank_ids, expected)?;
        let bytes = bytes_sent(&gs, &bs);
        lines.push(json!({
            "protocol": protocol.as_str(), "n": n, "overlap": overlap,
            "seconds": round(seconds, 3), "bytes": bytes, "intersection": g.size,
            "cpu_seconds": cpu.map(|c| round(c, 2)),
            "bytes_per_n": round(bytes as f64 / n as f64, 2),
            "rounds": gs.rounds.max(bs.rounds),
            "peak_rss_bytes": peak_rss_bytes(),
        }));
    }
    if let Some(ecdh) = lines.iter_mut().find(|l| l["protocol"] == "ecdh") {
        let (work, ec_seconds, ec_cpu) = clocked(|| ec_reference_work(n));
        ensure!(work == 2 * n, "EC reference processed {work} elements, expected {}", 2 * n);
        let (seconds, cpu) = (ecdh["seconds"].as_f64().unwrap_or(0.0), ecdh["cpu_seconds"].as_f64());
        ecdh["ec_reference_seconds"] = json!(round(ec_seconds, 3));
        ecdh["ratio_to_ec"] = json!(round(seconds / ec_seconds, 3));
        ecdh["ec_reference_cpu_seconds"] = json!(ec_cpu.map(|c| round(c, 2)));
        ecdh["cpu_ratio_to_ec"] = json!(cpu.zip(ec_cpu).map(|(a, b)| round(a / b, 3)));
    }
    if let [vole, ecdh] = lines.as_mut_slice() {
        let ratio = |key: &str| round(vole[key].as_f64().unwrap_or(0.0) / ecdh[key].as_f64().unwrap_or(1.0), 4);
        let (time_ratio, bytes_ratio) = (ratio("seconds"), ratio("bytes"));
        vole["seconds_ratio_to_ecdh"] = json!(time_ratio);
        vole["bytes_ratio_to_ecdh"] = json!(bytes_ratio);
    }
    Ok(lines)
}

/// Digest of the IDs a party's aligned rows name, in order (both parties must get the same).
fn aligned_digest(ids: &PreparedIds, out: &PsiOutput) -> Result<String> {
    let mut h = blake3::Hasher::new();
    for &r in out.rows.as_ref().context("PSI rows")? {
        h.update(ids.ids[r].as_bytes()).update(b"\n");
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Frame the gov sends when its PSI is done: the bank process exits only after it, so no frame
/// of the bank's is lost with its process.
const PSI_DONE: &str = "bench.psi.done";

/// `tandem bench psi --processes 2`: per protocol, a child process of this binary runs the bank
/// (`bench psi-bank`); the two connect over QUIC on 127.0.0.1 with fresh pinned certificates
/// (fingerprints and gov's address pass over the child's stdin/stdout). Each party generates
/// only its own set. `peak_rss_bytes_gov` is this process's high-water mark (it runs the gov
/// only, but every protocol so far), `peak_rss_bytes_bank` the child's; `rss_with_ids_bytes_*`
/// each process's resident size once its set is generated, before the PSI.
pub fn psi_two_processes(n: usize, overlap: f64, only: Option<PsiProtocol>) -> Result<Vec<Value>> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let seed: [u8; 16] = rand::rng().random();
    let (gov_ids, expected) = generated_set(n, overlap, &seed, Role::Gov)?;
    let gov_rss_ids = rss_bytes();
    let (params, protocols) = psi_plan(only);
    let mut lines = Vec::new();
    for protocol in protocols {
        let me = EndIdentity::fresh(Role::Gov)?;
        let exe = std::env::current_exe().context("path of this binary")?;
        let mut child = Command::new(exe)
            .args(["bench", "psi-bank", "--n", &n.to_string(), "--overlap", &overlap.to_string()])
            .args(["--seed", &hex::encode(seed), "--protocol", protocol.as_str()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the bank process")?;
        let mut from_bank = BufReader::new(child.stdout.take().context("bank stdout")?);
        let mut line = String::new();
        from_bank.read_line(&mut line).context("bank process: fingerprint line")?;
        let bank_fp = parse_fingerprint(line.trim()).context("bank process: fingerprint line")?;
        let listening = LoopbackEnd::listen(&me, bank_fp)?;
        let mut to_bank = child.stdin.take().context("bank stdin")?;
        writeln!(to_bank, "{} {}", hex::encode(me.fingerprint), listening.addr()?).context("bank process stdin")?;
        drop(to_bank);
        let end = listening.accept(IO_TIMEOUT)?;
        let mut ch = end.channel("bench-psi")?;
        let (outcome, seconds, cpu) = clocked(|| protocol.intersect(&mut ch, &gov_ids.ids, &params, &mut rand::rng()));
        let g = outcome.map_err(|e| anyhow!("gov: {e}"))?;
        ch.send(PSI_DONE, &0u8).map_err(|e| anyhow!("gov: {e}"))?;
        let gs = ch.stats();
        line.clear();
        from_bank.read_line(&mut line).context("bank process: result line")?;
        let status = child.wait().context("bank process")?;
        ensure!(status.success(), "bank process failed ({status})");
        let bank: Value = serde_json::from_str(line.trim()).context("bank process: result line")?;
        ensure!(
            g.size == expected && bank["size"] == expected,
            "PSI found {} (gov) / {} (bank) common IDs, expected {expected}",
            g.size,
            bank["size"]
        );
        ensure!(
            bank["rows_digest"] == aligned_digest(&gov_ids, &g)?,
            "aligned rows name different IDs at gov and bank"
        );
        let bytes = gs.bytes_sent + bank["bytes_sent"].as_u64().context("bank bytes")?;
        let bank_cpu = bank["cpu_seconds"].as_f64();
        lines.push(json!({
            "protocol": protocol.as_str(), "n": n, "overlap": overlap, "processes": 2,
            "seconds": round(seconds, 3), "bank_seconds": bank["seconds"], "bytes": bytes, "intersection": g.size,
            "cpu_seconds": cpu.zip(bank_cpu).map(|(a, b)| round(a + b, 2)),
            "cpu_seconds_gov": cpu.map(|c| round(c, 2)), "cpu_seconds_bank": bank_cpu,
            "bytes_per_n": round(bytes as f64 / n as f64, 2),
            "rounds": gs.rounds.max(bank["rounds"].as_u64().unwrap_or(0)),
            "peak_rss_bytes_gov": peak_rss_bytes(), "peak_rss_bytes_bank": bank["peak_rss_bytes"],
            "rss_with_ids_bytes_gov": gov_rss_ids, "rss_with_ids_bytes_bank": bank["rss_with_ids_bytes"],
        }));
    }
    Ok(lines)
}

fn parse_fingerprint(s: &str) -> Result<[u8; 32]> {
    let bytes = hex::decode(s).context("not hex")?;
    bytes.try_into().map_err(|_| anyhow!("not 32 bytes"))
}

/// `tandem bench psi-bank`: the bank process of [`psi_two_processes`]. Prints its certificate
/// fingerprint, reads gov's fingerprint and address, runs the PSI, waits for gov's done frame
/// and prints one JSON line: size, aligned-rows digest, its own time, CPU, bytes and peak RSS.
pub fn psi_bank_process(n: usize, overlap: f64, seed: &str, protocol: PsiProtocol) -> Result<Value> {
    use std::io::{BufRead, Write};
    let seed: [u8; 16] = hex::decode(seed).ok().and_then(|b| b.try_into().ok()).context("--seed: 32 hex digits")?;
    let (bank_ids, _) = generated_set(n, overlap, &seed, Role::Bank)?;
    let rss_ids = rss_bytes();
    let me = EndIdentity::fresh(Role::Bank)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", hex::encode(me.fingerprint))?;
    stdout.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("gov's fingerprint and address on stdin")?;
    let (fp, addr) = line.trim().split_once(' ').context("expected '<fingerprint> <address>' on stdin")?;
    let end = LoopbackEnd::connect(&me, parse_fingerprint(fp)?, addr.parse().context("gov address")?, IO_TIMEOUT)?;
    let mut ch = end.channel("bench-psi")?;
    let (params, _) = psi_plan(Some(protocol));
    let (outcome, seconds, cpu) = clocked(|| protocol.intersect(&mut ch, &bank_ids.ids, &params, &mut rand::rng()));
    let b = outcome.map_err(|e| anyhow!("bank: {e}"))?;
    let _: u8 = ch.recv(PSI_DONE).map_err(|e| anyhow!("bank: {e}"))?;
    let stats = ch.stats();
    Ok(json!({
        "size": b.size, "rows_digest": aligned_digest(&bank_ids, &b)?, "seconds": round(seconds, 3),
        "cpu_seconds": cpu.map(|c| round(c, 2)), "bytes_sent": stats.bytes_sent, "rounds": stats.rounds,
        "peak_rss_bytes": peak_rss_bytes(), "rss_with_ids_bytes": rss_ids,
    }))
}

/// This process's peak resident set size (Linux `VmHWM`), if known.
fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// This process's resident set size now (Linux `VmRSS`), if known.
fn rss_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// The intersection must have the expected size, and the aligned rows must name the same IDs.
fn check_intersection(
    g: &PsiOutput,
    b: &PsiOutput,
    gov: &PreparedIds,
    bank: &PreparedIds,
    expected: usize,
) -> Result<()> {
    if g.size != expected || b.size != expected {
        bail!("PSI found {} (gov) / {} (bank) common IDs, expected {expected}", g.size, b.size);
    }
    let (gr, br) = (g.rows.as_ref().context("gov rows")?, b.rows.as_ref().context("bank rows")?);
    ensure!(gr.len() == expected && br.len() == expected, "aligned row lists have the wrong length");
    if let Some(i) = (0..expected).find(|&i| gov.ids[gr[i]] != bank.ids[br[i]]) {
        bail!("aligned row {i} names different IDs at gov and bank");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// lr

/// One party's data after PSI alignment, raw and standardised on the training rows.
struct Aligned {
    /// The aligned rows as loaded (NaN = missing, categorical level indices), for binning.
    raw: Dataset,
    x: Vec<f64>,
    features: Vec<String>,
    standardizer: Standardizer,
    label: Option<Vec<f64>>,
    train: Vec<usize>,
    test: Vec<usize>,
}

fn load_party(path: &PathBuf, args: &LrArgs, label: Option<&str>) -> Result<(Dataset, PreparedIds)> {
    let ds = dataset::load(path, &args.id_column, &[], label)?;
    let ids =
        prepare_ids(args.id_kind, &ds.source, ds.ids.iter().zip(&ds.id_lines).map(|(s, &l)| (l, s.as_str())), false)?;
    Ok((ds, ids))
}

/// Aligns `ds` by PSI result rows and splits train/test on the aligned order (test = IDs in
/// `test_ids`, or every 5th row without it); both parties get the same split.
fn align(ds: &Dataset, ids: &PreparedIds, psi: &PsiOutput, test_ids: Option<&HashSet<String>>) -> Result<Aligned> {
    let rows: Vec<usize> = psi.rows.as_ref().context("PSI rows")?.iter().map(|&i| ids.rows[i]).collect();
    let aligned = ds.select_rows(&rows);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, &r) in psi.rows.as_ref().expect("rows").iter().enumerate() {
        let is_test = match test_ids {
            Some(t) => t.contains(&ids.ids[r]),
            None => i % 5 == 4,
        };
        if is_test { test.push(i) } else { train.push(i) }
    }
    // The raw-feature preparation of a train job with default parameters.
    let (standardizer, _) = Standardizer::fit(&aligned, &train, &PrepParams::default())?;
    Ok(Aligned {
        x: standardizer.apply(&aligned)?.x,
        features: standardizer.columns.clone(),
        standardizer,
        label: aligned.label.clone(),
        raw: aligned,
        train,
        test,
    })
}

/// One party of the LR bench: PSI, alignment, secure training. Returns the aligned data (for
/// the plaintext reference), the training output, (PSI seconds, PSI stats) and the engine's
/// traffic.
fn lr_party(
    ch: &mut Channel,
    ds: &Dataset,
    ids: &PreparedIds,
    test_ids: Option<&HashSet<String>>,
    params: &TrainParams,
    model: TrainModel,
    correlations: Correlations,
) -> Result<(Aligned, TrainOutput, f64, Stats, Traffic)> {
    let t = Instant::now();
    let psi_params = PsiParams { domain: "bench-lr".into(), reveal: PsiReveal::Both, min_intersection: 1 };
    let psi = intersect(ch, &ids.ids, &psi_params, &mut rand::rng())?;
    let (psi_seconds, psi_stats) = (t.elapsed().as_secs_f64(), ch.stats());
    let data = align(ds, ids, &psi, test_ids)?;
    let scorecard = Scorecard::default();
    let job = TrainJob {
        train_rows: &data.train,
        test_rows: &data.test,
        params,
        reveal: ModelReveal::Both,
        scorecard: &scorecard,
        test_output: Some(ScoreOutput::Probability),
    };
    let party = PartyData {
        x: &data.x,
        features: &data.features,
        standardizer: Some(&data.standardizer),
        label: data.label.as_deref(),
    };
    let fp = FixedPoint::new(params.frac_bits);
    let mut engine = Engine::with_correlations(ch, fp, correlations, &mut rand::rng())?;
    let out = match model {
        TrainModel::RawLr => secure_train(&mut engine, &party, &job)?,
        TrainModel::WoeScorecard => {
            let raw = &data.raw;
            let woe = WoeParty { x: &raw.x, columns: &raw.columns, levels: &raw.levels, label: data.label.as_deref() };
            secure_train_woe(&mut engine, &woe, &job, &BinningParams::default())?
        }
    };
    let traffic = engine.traffic();
    Ok((data, out, psi_seconds, psi_stats, traffic))
}

/// `tandem bench lr`: PSI + secure training over QUIC, then the plaintext reference trainer (same
/// algorithm, batches and sigmoid; and with the exact sigmoid) on the same aligned data. One
/// line per correlation source in `args.correlations`.
pub fn lr(args: &LrArgs) -> Result<Vec<Value>> {
    args.correlations.iter().map(|&c| lr_with(args, c)).collect()
}

fn lr_with(args: &LrArgs, correlations: Correlations) -> Result<Value> {
    let params = args.train_params()?;
    let (gov_ds, gov_ids) = load_party(&args.gov, args, None)?;
    let (bank_ds, bank_ids) = load_party(&args.bank, args, Some(&args.label_column))?;
    let test_ids = match &args.test_ids {
        Some(path) => Some(crate::jobs::phases::train::read_id_list(path, args.id_kind).context("--test-ids")?),
        None => None,
    };
    let lo = Loopback::start(IO_TIMEOUT)?;
    let tests = test_ids.as_ref();
    let (outcome, seconds, _) = clocked(|| {
        lo.run(
            |ch| lr_party(ch, &gov_ds, &gov_ids, tests, &params, args.model, correlations).map(|r| (r, ch.stats())),
            |ch| lr_party(ch, &bank_ds, &bank_ids, tests, &params, args.model, correlations).map(|r| (r, ch.stats())),
        )
    });
    let (g, b) = outcome?;
    let ((gov, _, g_psi_s, g_psi, _), gs) = g.context("gov")?;
    let ((bank, bank_out, b_psi_s, b_psi, traffic), bs) = b.context("bank")?;
    ensure!(gov.test == bank.test && gov.train == bank.train, "the parties derived different train/test splits");
    let secure_auc = bank_out.artifact.metrics.as_ref().context("no test metrics (test rows need both classes)")?.auc;
    let test_pds: Vec<f64> = bank_out.test_scores.iter().flatten().filter_map(|s| s.probability).collect();
    let secure_mean_pd = test_pds.iter().sum::<f64>() / test_pds.len().max(1) as f64;

    // Plaintext reference on the joint aligned matrix (gov columns ‖ bank columns).
    let (gc, bc) = (gov.features.len(), bank.features.len());
    let joint: Vec<f64> =
        gov.x.chunks_exact(gc).zip(bank.x.chunks_exact(bc)).flat_map(|(a, c)| a.iter().chain(c).copied()).collect();
    let y = bank.label.as_ref().context("bank labels")?;
    let labels: Vec<f64> = bank.test.iter().map(|&r| y[r]).collect();
    let auc_on = |joint: &[f64], model: &models::reference::LinearModel| {
        let cols = model.weights.len();
        let rows: Vec<f64> = bank.test.iter().flat_map(|&r| joint[r * cols..(r + 1) * cols].iter().copied()).collect();
        auc(&model.logits(&rows), &labels)
    };
    let test_auc = |model: &models::reference::LinearModel| auc_on(&joint, model);
    let (reference, reference_seconds, _) =
        clocked(|| train_reference(&joint, gc + bc, y, &bank.train, &params, false));
    let exact = train_reference(&joint, gc + bc, y, &bank.train, &params, true);
    // The plaintext WOE scorecard on the same bins (labels in the clear), same algorithm.
    fn party<'a>(a: &'a Aligned, label: Option<&'a [f64]>) -> WoeParty<'a> {
        WoeParty { x: &a.raw.x, columns: &a.raw.columns, levels: &a.raw.levels, label }
    }
    let woe_ref = train_woe_reference(
        &party(&gov, None),
        &party(&bank, Some(y)),
        &bank.train,
        &params,
        &BinningParams::default(),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let (raw_auc, woe_auc) = (test_auc(&reference), auc_on(&woe_ref.joint, &woe_ref.model));

    let psi_seconds = g_psi_s.max(b_psi_s);
    let psi_bytes = bytes_sent(&g_psi, &b_psi);
    let bytes = bytes_sent(&gs, &bs);
    let (train_seconds, train_bytes) = (seconds - psi_seconds, bytes - psi_bytes);
    let anchor = cheetah_anchor(args.sigmoid);
    Ok(json!({
        "bench": "lr", "sigmoid": args.sigmoid, "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
        "aligned_rows": gov.train.len() + gov.test.len(), "train_rows": gov.train.len(), "test_rows": gov.test.len(),
        "features": [gc, bc],
        "seconds": round(seconds, 3), "bytes": bytes,
        "psi_seconds": round(psi_seconds, 3), "psi_bytes": psi_bytes,
        "train_seconds": round(train_seconds, 3), "train_bytes": train_bytes,
        "rounds": gs.rounds.max(bs.rounds),
        "train_traffic": traffic_json(correlations, &traffic),
        "model": args.model,
        "secure_auc": round(secure_auc, 4),
        "reference_auc": round(if args.model == TrainModel::RawLr { raw_auc } else { woe_auc }, 4),
        "raw_reference_auc": round(raw_auc, 4), "woe_reference_auc": round(woe_auc, 4),
        "exact_sigmoid_reference_auc": round(test_auc(&exact), 4),
        "secure_mean_pd": round(secure_mean_pd, 4),
        "test_default_rate": round(labels.iter().sum::<f64>() / labels.len().max(1) as f64, 4),
        "reference_seconds": round(reference_seconds, 4),
        "ratio_to_reference": round(train_seconds / reference_seconds, 0),
        "cheetah_seconds": anchor.map(|a| a.0), "cheetah_bytes": anchor.map(|a| a.1),
        "train_seconds_ratio_to_cheetah": anchor.map(|a| round(train_seconds / a.0, 3)),
        "train_bytes_ratio_to_cheetah": anchor.map(|a| round(train_bytes as f64 / a.1, 3)),
    }))
}

// ---------------------------------------------------------------------------------------------
// watchlist

/// Row `i` of the watch-list bench is aligned row `(i · 7919) mod n`, at both parties.
fn drawn_rows(x: &[f64], aligned: usize, rows: usize) -> Vec<f64> {
    let cols = x.len() / aligned.max(1);
    (0..rows).flat_map(|i| x[(i * 7919 % aligned) * cols..][..cols].iter().copied()).collect()
}

/// One party of the watch-list bench: `bench lr`'s party (weights revealed to both), then the
/// watch list over `rows` drawn rows. Returns the model, this party's drawn model inputs, the
/// flags, and the watch list's seconds and traffic.
fn watchlist_party(
    ch: &mut Channel,
    ds: &Dataset,
    ids: &PreparedIds,
    params: &TrainParams,
    args: &LrArgs,
    rows: usize,
    threshold: f64,
) -> Result<(ModelArtifact, Vec<f64>, Flags, f64, Stats)> {
    let correlations = args.correlations.first().copied().unwrap_or(Correlations::Iknp);
    let (data, out, _, _, _) = lr_party(ch, ds, ids, None, params, args.model, correlations)?;
    let art = out.artifact;
    let all = art.block(ch.role()).transform(&data.raw)?.context("own block transform")?.x;
    let x = drawn_rows(&all, data.raw.rows(), rows);
    let (before, t) = (ch.stats(), Instant::now());
    let mut engine = Engine::with_correlations(ch, FixedPoint::new(params.frac_bits), correlations, &mut rand::rng())?;
    let flags = secure_watchlist(&mut engine, &art, &x, threshold)?;
    drop(engine);
    Ok((art, x, flags, t.elapsed().as_secs_f64(), ch.stats().since(&before)))
}

/// `tandem bench watchlist`: secure flags of `rows` entities against the plaintext model's, with
/// the first of `--correlations`.
pub fn watchlist(args: &LrArgs, rows: usize, threshold: f64) -> Result<Value> {
    let params = args.train_params()?;
    let (gov_ds, gov_ids) = load_party(&args.gov, args, None)?;
    let (bank_ds, bank_ids) = load_party(&args.bank, args, Some(&args.label_column))?;
    let lo = Loopback::start(IO_TIMEOUT)?;
    let (g, b) = lo.run(
        |ch| watchlist_party(ch, &gov_ds, &gov_ids, &params, args, rows, threshold),
        |ch| watchlist_party(ch, &bank_ds, &bank_ids, &params, args, rows, threshold),
    )?;
    let (_, xg, gov_flags, g_s, g_st) = g.context("gov")?;
    let (art, xb, bank_flags, b_s, b_st) = b.context("bank")?;
    let (Flags::Gov(flags), Flags::Bank(count)) = (gov_flags, bank_flags) else {
        bail!("the watch list returned flags to the wrong party")
    };
    ensure!(count == flags.iter().filter(|&&f| f).count(), "the bank's count differs from the gov's flags");
    // Plaintext reference: the calibrated joint logit of each drawn row against the threshold.
    let weights = |r: Role| art.block(r).weights.clone().context("weights revealed to both");
    let (wg, wb) = (weights(Role::Gov)?, weights(Role::Bank)?);
    let bias = art.bias.context("bias revealed")?;
    let t = models::watchlist::threshold_logit(threshold).map_err(|e| anyhow!(e))?;
    let dot = |x: &[f64], w: &[f64]| x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
    let margins: Vec<f64> = xg
        .chunks_exact(wg.len().max(1))
        .zip(xb.chunks_exact(wb.len().max(1)))
        .map(|(a, c)| art.calibration.apply(dot(a, &wg) + dot(c, &wb) + bias) - t)
        .collect();
    let plain = margins.iter().filter(|&&m| m > 0.0).count();
    let differ: Vec<f64> =
        margins.iter().zip(&flags).filter(|(m, f)| (**m > 0.0) != **f).map(|(m, _)| m.abs()).collect();
    let seconds = g_s.max(b_s);
    Ok(json!({
        "bench": "watchlist", "rows": rows, "threshold": threshold, "model": args.model,
        "seconds": round(seconds, 3), "bytes": bytes_sent(&g_st, &b_st), "rounds": g_st.rounds.max(b_st.rounds),
        "seconds_per_100k_rows": round(seconds * 1e5 / rows.max(1) as f64, 3),
        "flagged": count, "plaintext_flagged": plain,
        "rows_differing_from_plaintext": differ.len(),
        "largest_logit_margin_of_a_differing_row": round(differ.iter().copied().fold(0.0, f64::max), 5),
    }))
}

// ---------------------------------------------------------------------------------------------
// score

/// A gov table: `entities` raw IDs with fixed-point partial scores.
fn score_table(entities: usize) -> (Vec<String>, Vec<u64>) {
    let fp = FixedPoint::new(16);
    let mut rng = rand::rng();
    let ids: Vec<String> = (0..entities).map(|i| format!("ENTITY{i:012}")).collect();
    let payloads = (0..entities).map(|_| fp.encode(rng.random::<f64>() * 6.0 - 3.0)).collect();
    (ids, payloads)
}

/// The bank's queries: every 10th asks for an ID the gov does not hold.
fn score_queries(entities: usize, count: usize) -> Vec<(String, Option<usize>)> {
    let mut rng = rand::rng();
    (0..count)
        .map(|q| {
            if q % 10 == 9 {
                (format!("ABSENT{q:012}"), None)
            } else {
                let i = (rng.next_u64() % entities as u64) as usize;
                (format!("ENTITY{i:012}"), Some(i))
            }
        })
        .collect()
}

/// Result of one lookup job at the bank.
struct LookupRun {
    setup_seconds: f64,
    latencies: Vec<f64>,
    burst_seconds: f64,
}

/// One lookup job: table set-up, then one-ID queries in sequence, each checked. `ready` is
/// waited on by both parties between set-up and the burst (concurrent jobs start together).
fn lookup_job(
    table: &(Vec<String>, Vec<u64>),
    queries: &[(String, Option<usize>)],
    (gov_ch, bank_ch): (Channel, Channel),
    ready: &Barrier,
) -> Result<(LookupRun, u64)> {
    let domain = "bench-score";
    let bench_grant = protocol::disclose::Grant::new(
        "partial_scores",
        crate::jobs::spec::Reveal::PartialScoresToBank.as_str(),
        "benchmark lookups",
    );
    let (mut g, mut b) = (gov_ch, bank_ch);
    let (gov, bank) = std::thread::scope(|s| {
        let gov = s.spawn(|| -> protocol::Result<Stats> {
            let server = LookupServer::new(&mut rand::rng());
            server.send_table(&mut g, domain, &table.0, &table.1)?;
            ready.wait();
            for _ in queries {
                server.answer(&mut g, &bench_grant, 1)?;
            }
            Ok(g.stats())
        });
        let bank = s.spawn(|| -> Result<(LookupRun, Stats)> {
            let t = Instant::now();
            let client = LookupClient::receive_table(&mut b, table.0.len())?;
            let setup_seconds = t.elapsed().as_secs_f64();
            ready.wait();
            let (burst, mut latencies) = (Instant::now(), Vec::with_capacity(queries.len()));
            let mut rng = rand::rng();
            for (id, expected) in queries {
                let t = Instant::now();
                let got = client.query(&mut b, &bench_grant, domain, std::slice::from_ref(id), &mut rng)?;
                latencies.push(t.elapsed().as_secs_f64());
                if got != [expected.map(|i| table.1[i])] {
                    bail!("lookup of '{id}' returned {got:?}, expected {:?}", expected.map(|i| table.1[i]));
                }
            }
            let burst_seconds = burst.elapsed().as_secs_f64();
            latencies.sort_by(f64::total_cmp);
            Ok((LookupRun { setup_seconds, latencies, burst_seconds }, b.stats()))
        });
        (gov.join(), bank.join())
    });
    let gs = gov.map_err(|_| anyhow!("gov thread panicked"))?.map_err(|e| anyhow!("gov: {e}"))?;
    let (run, bs) = bank.map_err(|_| anyhow!("bank thread panicked"))?.map_err(|e| anyhow!("bank: {e:#}"))?;
    Ok((run, bytes_sent(&gs, &bs)))
}

/// `tandem bench score`: a single job (set-up, then a burst of one-ID lookups), then `jobs`
/// concurrent jobs on separate streams of the one connection. References: small-message round
/// trips on the same connection, and the EC work of the table (`ec_reference_work`).
pub fn score(entities: usize, queries: usize, jobs: usize) -> Result<Vec<Value>> {
    ensure!(entities > 0 && queries > 0, "--entities and --queries must be at least 1");
    let lo = Loopback::start(IO_TIMEOUT)?;
    let rtts = round_trips(&lo, 1000)?;
    let rtt_p50 = quantile(&rtts, 0.5);
    let table = score_table(entities);
    let plan = score_queries(entities, queries);
    let (_, ec_seconds, _) = clocked(|| ec_reference_work(entities.div_ceil(2)));

    let (single, bytes) = lookup_job(&table, &plan, lo.pair()?, &Barrier::new(2))?;
    let p50 = quantile(&single.latencies, 0.5);
    let mut lines = vec![
        json!({
            "bench": "score", "op": "rtt_reference", "count": rtts.len(),
            "p50_ms": round(rtt_p50 * 1e3, 4), "p99_ms": round(quantile(&rtts, 0.99) * 1e3, 4),
        }),
        json!({
            "bench": "score", "op": "single_job", "entities": entities, "queries": queries,
            "setup_seconds": round(single.setup_seconds, 3),
            "ec_reference_seconds": round(ec_seconds, 3),
            "setup_ratio_to_ec": round(single.setup_seconds / ec_seconds, 3),
            "lookups_per_second": round(queries as f64 / single.burst_seconds, 1),
            "p50_ms": round(p50 * 1e3, 4), "p99_ms": round(quantile(&single.latencies, 0.99) * 1e3, 4),
            "p50_ratio_to_rtt": round(p50 / rtt_p50, 2), "bytes": bytes,
        }),
    ];
    if jobs > 0 {
        let pairs: Vec<(Channel, Channel)> = (0..jobs).map(|_| lo.pair()).collect::<Result<_>>()?;
        let ready = Barrier::new(2 * jobs);
        let (outcome, seconds, _) = clocked(|| {
            std::thread::scope(|s| {
                let handles: Vec<_> =
                    pairs.into_iter().map(|pair| s.spawn(|| lookup_job(&table, &plan, pair, &ready))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().map_err(|_| anyhow!("job thread panicked"))?)
                    .collect::<Result<Vec<_>>>()
            })
        });
        let runs = outcome?;
        let mut latencies: Vec<f64> = runs.iter().flat_map(|(r, _)| r.latencies.iter().copied()).collect();
        latencies.sort_by(f64::total_cmp);
        let burst = runs.iter().map(|(r, _)| r.burst_seconds).fold(0.0, f64::max);
        let setup = runs.iter().map(|(r, _)| r.setup_seconds).fold(0.0, f64::max);
        let p50 = quantile(&latencies, 0.5);
        lines.push(json!({
            "bench": "score", "op": "concurrent_jobs", "jobs": jobs, "entities": entities, "queries_per_job": queries,
            "seconds": round(seconds, 3), "setup_seconds": round(setup, 3),
            "lookups_per_second": round((jobs * queries) as f64 / burst, 1),
            "p50_ms": round(p50 * 1e3, 4), "p99_ms": round(quantile(&latencies, 0.99) * 1e3, 4),
            "p50_ratio_to_rtt": round(p50 / rtt_p50, 2),
            "bytes": runs.iter().map(|(_, b)| b).sum::<u64>(),
        }));
    }
    Ok(lines)
}

/// Query clients of the sustained load.
const SESSION_CLIENTS: usize = 10;

/// `tandem bench score` (session part): a scoring session over `entities`: set-up (time and bytes,
/// also per million entities), `queries` single-id queries in sequence (p50/p99), a refresh of 1%
/// changed and 0.1% added rows (the latency of the query that carries it), then `qps` queries a
/// second for `seconds` from [`SESSION_CLIENTS`] threads (p50/p99, achieved rate). Every answer is
/// checked. Reference: small-message round trips on the same connection.
pub fn score_session(entities: usize, queries: usize, seconds: u64, qps: u64) -> Result<Vec<Value>> {
    use std::sync::Mutex;

    use crate::sessions::{
        BankHooks, BankRows, GovHooks, Query, SessionInfo, SessionLog, Sessions, bank_session, gov_session,
    };
    ensure!(entities > 0 && queries > 0 && qps > 0, "--entities, --queries and --qps must be at least 1");
    let lo = Loopback::start(IO_TIMEOUT)?;
    let rtts = round_trips(&lo, 1000)?;
    let rtt_p50 = quantile(&rtts, 0.5);
    let (ids, payloads) = score_table(entities);
    let fp = FixedPoint::new(16);
    let gov_rows: Vec<(String, u64)> = ids.iter().cloned().zip(payloads.iter().copied()).collect();
    // The gov's current rows by id (the test's twin), and the next version the refresh brings.
    let truth: Mutex<std::collections::HashMap<String, u64>> = Mutex::new(gov_rows.iter().cloned().collect());
    let pending: Mutex<Option<Vec<(String, u64)>>> = Mutex::new(None);
    // The bank holds every gov id and the ids the refresh adds, each with partial logit 0, so the
    // probability it gets is σ(the gov's partial).
    let added: Vec<String> = (0..entities.div_ceil(1000)).map(|i| format!("ADDED{i:012}")).collect();
    // It also holds the absent ids of the query plans, so they reach the gov too.
    let absent = (0..queries.max((seconds * qps) as usize)).map(|q| format!("ABSENT{q:012}"));
    let bank_partial = ids.iter().cloned().chain(added.iter().cloned()).chain(absent).map(|id| (id, 0.0)).collect();
    let mut bank_rows = BankRows {
        id_kind: IdKind::Raw,
        partial: bank_partial,
        fp,
        card: models::capped::FixedScorecard::new(&Scorecard::default(), fp).map_err(anyhow::Error::msg)?,
        output: ScoreOutput::Probability,
    };
    let info = SessionInfo {
        id: "bench-session".into(),
        model: "bench".into(),
        entities: 0,
        setup_bytes: 0,
        queries: 0,
        refreshes: 0,
        rotations: 0,
    };
    let (gov_sessions, bank_sessions) = (Sessions::default(), Sessions::default());
    let (mut g, mut b) = lo.pair()?;
    let timeout = Duration::from_secs(600);
    let check = |q: &Query, r: &crate::sessions::QueryResult| -> Result<()> {
        let expected = truth.lock().expect("truth").get(&q.id).map(|&p| 1.0 / (1.0 + (-fp.decode(p)).exp()));
        let ok = match expected {
            Some(p) => r.status == "ok" && r.probability.is_some_and(|got| (got - p).abs() < 1e-9),
            None => r.status == crate::sessions::NOT_AT_GOV,
        };
        ensure!(ok, "session query '{}' returned {r:?}, expected probability {expected:?}", q.id);
        Ok(())
    };
    let ask = |id: &str| -> Result<f64> {
        let q = Query { id: id.to_string(), consent_ref: "BENCH-CONSENT".into() };
        let t = Instant::now();
        let r = bank_sessions.score(None, vec![q.clone()], timeout)?;
        let latency = t.elapsed().as_secs_f64();
        check(&q, &r[0])?;
        Ok(latency)
    };
    let plan = score_queries(entities, queries);
    let mut lines = Vec::new();
    std::thread::scope(|s| -> Result<()> {
        let start = Instant::now();
        let gov = s.spawn(|| {
            let mut reload =
                || -> JobResult<Option<Vec<(String, u64)>>> { Ok(pending.lock().expect("pending").take()) };
            let (mut admit, mut spend) = (|_: u64| true, |_: u64| -> JobResult<()> { Ok(()) });
            let hooks =
                GovHooks { reload: &mut reload, admit: &mut admit, spend: &mut spend, rotate_after: Duration::MAX };
            gov_session(&mut g, &gov_sessions, info.clone(), gov_rows.clone(), hooks)
        });
        let bank = s.spawn(|| {
            let mut log = SessionLog::create(None)?;
            let (mut reload, mut admit) = (|_: &mut BankRows| -> JobResult<()> { Ok(()) }, |_: u64| true);
            let mut spend = |_: u64| -> JobResult<()> { Ok(()) };
            let ping_every = Duration::from_secs(1);
            let hooks =
                BankHooks { reload: &mut reload, admit: &mut admit, spend: &mut spend, ping_every, log: &mut log };
            bank_session(&mut b, &bank_sessions, info.clone(), &mut bank_rows, hooks)
        });
        // Whatever happens below, the session is closed so both parties' threads end.
        let measured = (|| -> Result<()> {
            let opened = loop {
                if let Some(i) = bank_sessions.list().pop() {
                    break i;
                }
                ensure!(!bank.is_finished() && !gov.is_finished(), "the session ended during set-up");
                std::thread::sleep(Duration::from_millis(1));
            };
            let setup_seconds = start.elapsed().as_secs_f64();
            let per_million = 1e6 / entities as f64;
            lines.push(json!({
                "bench": "score", "op": "session_setup", "entities": entities,
                "setup_seconds": round(setup_seconds, 3), "setup_bytes": opened.setup_bytes,
                "seconds_per_million": round(setup_seconds * per_million, 3),
                "bytes_per_million": (opened.setup_bytes as f64 * per_million).round(),
            }));

            let mut latencies = plan.iter().map(|(id, _)| ask(id)).collect::<Result<Vec<f64>>>()?;
            latencies.sort_by(f64::total_cmp);
            let p50 = quantile(&latencies, 0.5);
            lines.push(json!({
                "bench": "score", "op": "session_queries", "entities": entities, "queries": queries,
                "p50_ms": round(p50 * 1e3, 4), "p99_ms": round(quantile(&latencies, 0.99) * 1e3, 4),
                "p50_ratio_to_rtt": round(p50 / rtt_p50, 2), "rtt_p50_ms": round(rtt_p50 * 1e3, 4),
            }));

            // Refresh: 1% of the rows change, 0.1% are added.
            let mut next = gov_rows.clone();
            let mut rng = rand::rng();
            let changed = entities.div_ceil(100);
            for _ in 0..changed {
                let i = (rng.next_u64() % entities as u64) as usize;
                next[i].1 = next[i].1.wrapping_add(fp.encode(0.5));
            }
            next.extend(added.iter().map(|id| (id.clone(), fp.encode(1.25))));
            *truth.lock().expect("truth") = next.iter().cloned().collect();
            *pending.lock().expect("pending") = Some(next);
            let refresh_seconds = ask(&added[0])?;
            let after = bank_sessions.list().pop().context("the session closed")?;
            ensure!(
                after.refreshes == 1 && after.entities as usize == entities + added.len(),
                "refresh not applied: {after:?}"
            );
            lines.push(json!({
                "bench": "score", "op": "session_refresh", "entities": entities,
                "changed_rows_at_most": changed, "added_rows": added.len(),
                "query_with_refresh_ms": round(refresh_seconds * 1e3, 3),
            }));

            // Sustained load: each client sends at its share of the rate, on a fixed schedule.
            let interval = Duration::from_secs_f64(SESSION_CLIENTS as f64 / qps as f64);
            let per_client = (seconds * qps) as usize / SESSION_CLIENTS;
            let load_start = Instant::now();
            let runs: Vec<Result<Vec<f64>>> = (0..SESSION_CLIENTS)
                .map(|c| {
                    let (plan, ask) = (score_queries(entities, per_client.max(1)), &ask);
                    s.spawn(move || {
                        let first = load_start + interval.mul_f64(c as f64 / SESSION_CLIENTS as f64);
                        let mut out = Vec::with_capacity(plan.len());
                        for (k, (id, _)) in plan.iter().enumerate() {
                            if let Some(wait) = (first + interval * k as u32).checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                            out.push(ask(id)?);
                        }
                        Ok(out)
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow!("client thread panicked"))?)
                .collect();
            let load_seconds = load_start.elapsed().as_secs_f64();
            let mut latencies: Vec<f64> = runs.into_iter().collect::<Result<Vec<_>>>()?.concat();
            latencies.sort_by(f64::total_cmp);
            let p50 = quantile(&latencies, 0.5);
            lines.push(json!({
                "bench": "score", "op": "session_sustained", "entities": entities, "clients": SESSION_CLIENTS,
                "target_qps": qps, "queries": latencies.len(), "seconds": round(load_seconds, 3),
                "achieved_qps": round(latencies.len() as f64 / load_seconds, 1),
                "p50_ms": round(p50 * 1e3, 4), "p99_ms": round(quantile(&latencies, 0.99) * 1e3, 4),
                "p50_ratio_to_rtt": round(p50 / rtt_p50, 2),
            }));
            Ok(())
        })();
        bank_sessions.close_all();
        let gov_totals = gov.join().map_err(|_| anyhow!("gov thread panicked"))?.map_err(|e| anyhow!("gov: {e:#}"))?;
        let bank_totals =
            bank.join().map_err(|_| anyhow!("bank thread panicked"))?.map_err(|e| anyhow!("bank: {e:#}"))?;
        measured?;
        ensure!(gov_totals.queries == bank_totals.queries, "gov answered {gov_totals:?}, bank got {bank_totals:?}");
        Ok(())
    })?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_bench_checks_every_answer_over_quic() {
        let lines = score_session(200, 20, 1, 40).unwrap();
        let ops: Vec<&str> = lines.iter().map(|l| l["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["session_setup", "session_queries", "session_refresh", "session_sustained"]);
        assert!(lines[0]["setup_bytes"].as_u64().unwrap() > 200 * 28, "the whole table crossed the link");
        assert_eq!(lines[3]["queries"], 40);
    }

    #[test]
    fn generated_sets_share_exactly_the_requested_fraction() {
        let (g, b, common) = generated_sets(1000, 0.25).unwrap();
        assert_eq!(common, 250);
        let gs: HashSet<&String> = g.ids.iter().collect();
        assert_eq!((g.ids.len(), b.ids.len()), (1000, 1000));
        assert_eq!(b.ids.iter().filter(|id| gs.contains(id)).count(), 250);
        assert!(generated_sets(10, 1.5).is_err());
    }

    /// Each process generates only its own set from the shared seed; the two still share
    /// exactly the common part.
    #[test]
    fn one_party_sets_from_one_seed_share_the_common_part() {
        let seed = [9u8; 16];
        let (g, common) = generated_set(400, 0.5, &seed, Role::Gov).unwrap();
        let (b, _) = generated_set(400, 0.5, &seed, Role::Bank).unwrap();
        let (g2, _) = generated_set(400, 0.5, &[8u8; 16], Role::Gov).unwrap();
        let gs: HashSet<&String> = g.ids.iter().collect();
        assert_eq!((common, b.ids.iter().filter(|id| gs.contains(id)).count()), (200, 200));
        assert_eq!(g2.ids.iter().filter(|id| gs.contains(id)).count(), 0, "another seed, other IDs");
    }

    #[test]
    fn psi_bench_finds_the_generated_intersection_over_quic() {
        let lines = psi(300, 0.5, None).unwrap();
        let protocols: Vec<&str> = lines.iter().map(|l| l["protocol"].as_str().unwrap()).collect();
        assert_eq!(protocols, ["vole", "ecdh"]);
        assert!(lines.iter().all(|l| l["intersection"] == 150));
        assert!(lines[1]["bytes"].as_u64().unwrap() > 300 * 64, "both point lists crossed the link");
        let okvs_bytes = 16 * protocol::okvs::Okvs::new(300).columns() as u64;
        assert!(lines[0]["bytes"].as_u64().unwrap() > okvs_bytes, "the masked OKVS crossed the link");
        let ratio = lines[0]["bytes"].as_f64().unwrap() / lines[1]["bytes"].as_f64().unwrap();
        assert_eq!(lines[0]["bytes_ratio_to_ecdh"], round(ratio, 4));
    }

    #[test]
    fn score_bench_checks_every_lookup_over_quic() {
        let lines = score(50, 20, 2).unwrap();
        let ops: Vec<&str> = lines.iter().map(|l| l["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["rtt_reference", "single_job", "concurrent_jobs"]);
        assert_eq!(lines[1]["queries"], 20);
        assert_eq!(lines[2]["jobs"], 2);
    }

    /// Gov holds entities 0..80, bank 20..100 (label from a logistic rule on both sides'
    /// features); every 4th common entity is a test ID. Row orders differ between the files.
    fn toy_lr_args(dir: &std::path::Path) -> LrArgs {
        let feature = |i: usize, k: usize| ((i * 7919 + k * 104_729) % 1000) as f64 / 500.0 - 1.0;
        let mut gov = String::from("uscc,g0,g1\n");
        for i in (0..80).rev() {
            gov += &format!("E{i:04},{},{}\n", feature(i, 0), feature(i, 1));
        }
        let mut bank = String::from("uscc,b0,default_12m\n");
        for i in 20..100 {
            let z = 2.0 * feature(i, 0) - 1.5 * feature(i, 2) + feature(i, 1);
            bank += &format!("E{i:04},{},{}\n", feature(i, 2), u8::from(z > 0.0));
        }
        let test: Vec<String> = (20..80).step_by(4).map(|i| format!("E{i:04}")).collect();
        let path = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        LrArgs {
            gov: path("gov.csv", &gov),
            bank: path("bank.csv", &bank),
            test_ids: Some(path("test.txt", &test.join("\n"))),
            id_column: "uscc".into(),
            id_kind: IdKind::Raw,
            label_column: "default_12m".into(),
            epochs: 3,
            batch: 16,
            lr: 0.5,
            sigmoid: Sigmoid::Linear,
            model: TrainModel::RawLr,
            correlations: vec![Correlations::Iknp, Correlations::Silent],
        }
    }

    #[test]
    fn lr_bench_aligns_splits_and_matches_the_reference_over_quic() {
        let dir = tempfile::tempdir().unwrap();
        let args = toy_lr_args(dir.path());
        let lines = lr(&args).unwrap();
        assert_eq!(lines.len(), 2);
        for (line, source) in lines.iter().zip(["iknp", "silent"]) {
            assert_eq!((line["aligned_rows"].as_u64(), line["test_rows"].as_u64()), (Some(60), Some(15)));
            assert_eq!(line["features"], json!([2, 1]));
            let (secure, reference) = (line["secure_auc"].as_f64().unwrap(), line["reference_auc"].as_f64().unwrap());
            assert!((secure - reference).abs() < 0.02, "{source}: secure AUC {secure} vs reference {reference}");
            // The traffic report adds up to the bytes of the training and predicts from them.
            let t = &line["train_traffic"];
            assert_eq!(t["correlations"], source);
            let kinds = ["setup_bytes", "correlation_bytes", "correction_bytes", "opening_bytes"];
            let sum: u64 = kinds.iter().map(|k| t[k].as_u64().unwrap()).sum();
            assert_eq!(sum, line["train_bytes"].as_u64().unwrap(), "{source}: bytes by kind add up");
            assert!(kinds[1..3].iter().all(|k| t[k].as_u64().unwrap() > 0), "{source}: {t}");
            let predicted = sum as f64 * 8.0 / 1e8 + t["rounds"].as_f64().unwrap() * 0.02;
            assert!((t["predicted_seconds_100mbit_20ms"].as_f64().unwrap() - predicted).abs() < 0.01);
        }
        let setup = |i: usize| lines[i]["train_traffic"]["setup_bytes"].as_u64().unwrap();
        assert!(setup(0) > 0 && setup(1) == 0, "IKNP runs base OTs at set-up, the silent source does not");
    }

    #[test]
    fn watchlist_bench_flags_what_the_plaintext_model_flags_over_quic() {
        let dir = tempfile::tempdir().unwrap();
        let line = watchlist(&toy_lr_args(dir.path()), 600, 0.5).unwrap();
        let plain = line["plaintext_flagged"].as_u64().unwrap();
        assert!(plain > 0 && plain < 600, "a threshold that splits the rows: {line}");
        // Only rows within fixed-point error of the threshold may differ.
        assert!(line["largest_logit_margin_of_a_differing_row"].as_f64().unwrap() < 1e-3, "{line}");
        let differ = line["rows_differing_from_plaintext"].as_u64().unwrap();
        assert!(line["flagged"].as_u64().unwrap().abs_diff(plain) <= differ, "{line}");
    }

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!((quantile(&v, 0.5), quantile(&v, 0.99), quantile(&v, 0.0)), (51.0, 100.0, 1.0));
    }
}
