//! `tandem`: the Tandem node daemon and its command-line client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use node::admin::AdminClient;
use node::config::Config;
use node::jobs::record::{JobRecord, JobState, StepState};
use node::jobs::spec::JobSpec;
use protocol::Role;

#[derive(Parser)]
#[command(name = "tandem", version, about = "Tandem: joint credit computation between a government and a bank node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node directory: TLS key and certificate, transcript signing key, admin token.
    Init {
        /// Node name (also the certificate's DNS name), e.g. gov.
        #[arg(long)]
        name: String,
        /// Node role: gov or bank.
        #[arg(long)]
        role: Role,
        /// Directory to create the files in.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the node until SIGINT/SIGTERM.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show this node's status (name, role, peer connection).
    Status {
        /// Node config (default: $TANDEM_CONFIG).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Benchmarks: both parties in this process over QUIC on 127.0.0.1; prints JSON lines.
    Bench {
        #[command(subcommand)]
        command: node::bench::BenchCommand,
    },
    /// Submit and follow jobs on a running node.
    Job {
        /// Node config (default: $TANDEM_CONFIG).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Console sign-in tokens of named operators (needs no running node; takes effect at once).
    Operator {
        /// Node config (default: $TANDEM_CONFIG).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Score one id in an open scoring session (at the bank); prints what the job's score_output
    /// shows (grade, points, probability).
    Score {
        /// The entity's id.
        id: String,
        /// Reference of the consent that allows scoring it (recorded with the query).
        #[arg(long)]
        consent: String,
        /// The session (its score job's id); may be left out when only one is open.
        #[arg(long)]
        session: Option<String>,
        /// Node config (default: $TANDEM_CONFIG).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Scoring sessions open on this node (score jobs with target "session").
    Session {
        /// Node config (default: $TANDEM_CONFIG).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Check job transcripts (needs no running node). Exit code 0: all verified; 1: verification
    /// failed (each problem printed with its record number); 2: bad arguments or unreadable files.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check one transcript: chain, signatures, signed phase heads, payloads if captured.
    Verify { file: PathBuf },
    /// Check both nodes' transcripts of one job against each other (and each on its own).
    Compare { gov: PathBuf, bank: PathBuf },
    /// Print a readable summary of a transcript; with --html, also write an HTML report.
    Report {
        file: PathBuf,
        #[arg(long, value_name = "OUT")]
        html: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Issue a console token for NAME; it is printed once, the node keeps only its hash.
    Add { name: String },
    /// List the operators holding a token.
    List,
    /// Revoke NAME's token: it no longer signs in, and NAME's open console sessions end.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum SessionCommand {
    /// List the open sessions with their counts.
    List,
    /// Close a session: its job ends and both nodes sign its transcript.
    Close { id: String },
}

#[derive(Subcommand)]
enum JobCommand {
    /// Propose the job described by a TOML file to the peer; prints the job id.
    Submit {
        file: PathBuf,
        /// Follow the job until it ends (like `job watch`).
        #[arg(long)]
        watch: bool,
        /// Who submits the job (recorded in its transcript); default: $USER.
        #[arg(long)]
        operator: Option<String>,
    },
    /// List all jobs of this node, with their transcript files.
    List,
    /// Show one job as JSON (`transcript` is its transcript file).
    Status { id: String },
    /// Follow a job's phases until it ends; exits non-zero unless it succeeded.
    Watch { id: String },
    /// Cancel a running job (the peer is told).
    Cancel { id: String },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn config_path(given: Option<PathBuf>) -> Result<PathBuf> {
    match given.or_else(|| std::env::var_os("TANDEM_CONFIG").map(PathBuf::from)) {
        Some(p) => Ok(p),
        None => bail!("no node config: pass --config FILE or set TANDEM_CONFIG"),
    }
}

fn client(config: Option<PathBuf>) -> Result<AdminClient> {
    AdminClient::from_config(&Config::load(&config_path(config)?)?)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init { name, role, out } => init(&name, role, &out),
        Command::Serve { config } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let config = Config::load(&config)?;
            tokio::runtime::Runtime::new()
                .context("cannot start the async runtime")?
                .block_on(node::daemon::serve(config))
        }
        Command::Status { config } => {
            let s = client(config)?.status()?;
            println!(
                "node '{}' (role {}), peer '{}': {}, protocol version {}",
                s.name,
                s.role,
                s.peer,
                if s.peer_connected { "connected" } else { "not connected" },
                s.protocol_version
            );
            Ok(())
        }
        Command::Audit { command } => std::process::exit(audit(&command)),
        Command::Bench { command } => node::bench::run(command),
        Command::Operator { config, command } => operator(&Config::load(&config_path(config)?)?, command),
        Command::Score { id, consent, session, config } => {
            let query = node::sessions::Query { id, consent_ref: consent };
            for r in client(config)?.score(session.as_deref(), vec![query])? {
                let mut line = format!("{} (consent {}): {}", r.id, r.consent_ref, r.status);
                if let Some(g) = &r.grade {
                    line += &format!(", grade {g}");
                }
                if let Some(p) = r.points {
                    line += &format!(", points {p}");
                }
                if let Some(p) = r.probability {
                    line += &format!(", probability of default {p:.6}");
                }
                println!("{line}");
            }
            Ok(())
        }
        Command::Session { config, command } => {
            let c = client(config)?;
            match command {
                SessionCommand::List => {
                    println!(
                        "{:<22} {:<22} {:>10} {:>10} {:>9} {:>9}",
                        "SESSION", "MODEL", "ENTITIES", "QUERIES", "REFRESHES", "ROTATIONS"
                    );
                    for s in c.sessions()? {
                        println!(
                            "{:<22} {:<22} {:>10} {:>10} {:>9} {:>9}",
                            s.id, s.model, s.entities, s.queries, s.refreshes, s.rotations
                        );
                    }
                    Ok(())
                }
                SessionCommand::Close { id } => {
                    let s = c.close_session(&id)?;
                    println!(
                        "closing session {} after {} queries; its job ends when both nodes have signed",
                        s.id, s.queries
                    );
                    Ok(())
                }
            }
        }
        Command::Job { config, command } => {
            let c = client(config)?;
            match command {
                JobCommand::Submit { file, watch: follow, operator } => {
                    let spec = JobSpec::load(&file)?;
                    let operator = match operator.or_else(|| std::env::var("USER").ok()).filter(|o| !o.is_empty()) {
                        Some(o) => o,
                        None => bail!("who submits this job? pass --operator NAME ($USER is not set)"),
                    };
                    let r = c.submit(&spec, &operator)?;
                    println!("{}", r.id);
                    if follow { watch(&c, &r.id) } else { Ok(()) }
                }
                JobCommand::List => {
                    println!(
                        "{:<22} {:<6} {:<10} {:<10} {:<8} {:<12} TRANSCRIPT / ERROR",
                        "ID", "KIND", "STATE", "SUBMITTER", "STEP", "OPERATOR"
                    );
                    for r in c.list()? {
                        let transcript = r.transcript.as_ref().map_or("-".to_string(), |p| p.display().to_string());
                        println!(
                            "{:<22} {:<6} {:<10} {:<10} {:<8} {:<12} {transcript}",
                            r.id,
                            r.spec.kind().as_str(),
                            r.state.as_str(),
                            r.submitted_by,
                            current_step(&r),
                            r.operator,
                        );
                        if let Some(e) = &r.error {
                            println!("{:<22} error: {e}", "");
                        }
                    }
                    Ok(())
                }
                JobCommand::Status { id } => {
                    println!("{}", serde_json::to_string_pretty(&c.job(&id)?)?);
                    Ok(())
                }
                JobCommand::Watch { id } => watch(&c, &id),
                JobCommand::Cancel { id } => {
                    c.cancel(&id)?;
                    println!("cancel requested for job {id}");
                    Ok(())
                }
            }
        }
    }
}

/// `tandem operator ...`: console tokens, in the node's operators file.
fn operator(config: &Config, command: OperatorCommand) -> Result<()> {
    use node::console::operators;
    let file = operators::file(config);
    match command {
        OperatorCommand::Add { name } => {
            let token = operators::add(&file, &name)?;
            println!("console token for operator '{name}' (shown only now; the node keeps its hash):");
            println!("{}", token.as_str());
        }
        OperatorCommand::List => {
            println!("{:<30} ISSUED (UTC)", "OPERATOR");
            for o in operators::load(&file)? {
                println!("{:<30} {}", o.name, node::audit::record::format_rfc3339((o.created_ms / 1000) as i64, 0));
            }
        }
        OperatorCommand::Revoke { name } => {
            operators::revoke(&file, &name)?;
            println!("revoked the console token of operator '{name}'; their open sessions end at once");
        }
    }
    Ok(())
}

/// `tandem audit ...`: the auditor's commands; returns their exit code.
fn audit(command: &AuditCommand) -> i32 {
    use node::audit::cli;
    let mut out = std::io::stdout().lock();
    match command {
        AuditCommand::Verify { file } => cli::verify_cmd(file, &mut out),
        AuditCommand::Compare { gov, bank } => cli::compare_cmd(gov, bank, &mut out),
        AuditCommand::Report { file, html } => cli::report_cmd(file, html.as_deref(), &mut out),
    }
}

fn init(name: &str, role: Role, out: &Path) -> Result<()> {
    let o = node::identity::init_node_dir(name, out)?;
    println!("created node directory {} for '{name}' (role {role})", o.dir.display());
    println!("  tls.crt, tls.key      TLS certificate and key (ECDSA P-256)");
    println!("  signing.key/.pub      Ed25519 transcript signing key (public: {})", o.signing_public_key);
    println!("  admin.token           bearer token of the local admin API");
    println!();
    println!("give both lines to the peer's operator, for their config's [peer] section:");
    println!("fingerprint = \"{}\"", o.fingerprint);
    println!("signing_key = \"{}\"", o.signing_public_key);
    Ok(())
}

fn current_step(r: &JobRecord) -> &str {
    r.steps
        .iter()
        .find(|s| matches!(s.state, StepState::Running | StepState::Failed))
        .or_else(|| r.steps.iter().rev().find(|s| s.state == StepState::Done))
        .map(|s| s.name.as_str())
        .unwrap_or("-")
}

/// Progress bar over the job's steps; prints the outcome and fails unless the job succeeded.
fn watch(c: &AdminClient, id: &str) -> Result<()> {
    let bar = indicatif::ProgressBar::new(100);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {pos}% {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let record = c.wait(id, Duration::from_secs(7 * 24 * 3600), |r| {
        let total = r.steps.len().max(1) as f64;
        let done: f64 = r
            .steps
            .iter()
            .map(|s| match s.state {
                StepState::Done => 1.0,
                StepState::Running | StepState::Failed => s.progress,
                StepState::Pending => 0.0,
            })
            .sum();
        bar.set_position((100.0 * done / total) as u64);
        let step = current_step(r);
        let detail = r.steps.iter().find(|s| s.name == step).map(|s| s.message.as_str()).unwrap_or("");
        bar.set_message(format!("{step} {detail}"));
    })?;
    bar.finish_and_clear();
    println!("job {id} ({}) {}", record.spec.kind().as_str(), record.state.as_str());
    for s in &record.steps {
        println!("  {:<10} {:?} {}", s.name, s.state, s.message);
    }
    if let Some(e) = &record.error {
        println!("error: {e}");
    }
    if !record.outcome.is_empty() {
        println!("outcome: {}", serde_json::to_string_pretty(&record.outcome)?);
    }
    // A job can succeed with a model that failed to learn: say so last, where it is seen.
    for w in record.outcome.get("warnings").and_then(|w| w.as_array()).into_iter().flatten() {
        println!("WARNING: {}", w.as_str().unwrap_or_default());
    }
    if record.state != JobState::Succeeded {
        std::process::exit(2);
    }
    Ok(())
}
