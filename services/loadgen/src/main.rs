//! `linkage-loadgen`: the measuring tools `make bench` (`bench/run.sh`) drives. Each subcommand
//! measures one thing and writes its figures as JSON (to `--out`, or stdout); `report` merges
//! them into the run's report. See BENCHMARKS.md.

mod ceiling;
mod drive;
mod lifecycle;
mod queries;
mod report;
mod scale;
mod seed;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use linkage_auth::TokenKeys;
use linkage_domain::calendar::{self, WeekdayCalendar, WorkingCalendar};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "linkage-loadgen",
    about = "Linkage benchmark tools (see BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive the command mix over HTTP, closed-loop (--clients) or open-loop (--rate).
    Commands(CommandsArgs),
    /// Fill a fresh database with seeded history: appeals decided by the domain, hashed, COPYed.
    Seed(SeedArgs),
    /// Query latency on the query API (ledger mix, plus --route NAME=PATH extras).
    Queries(QueriesArgs),
    /// Copy the projected ledger of a seeded history until it holds --appeals appeals (queries
    /// at scale without seeding and rebuilding them all; scratch databases only).
    ScaleLedger(ScaleArgs),
    /// Summarise pgbench's per-transaction logs.
    PgbenchSummary(PgbenchArgs),
    /// Plain JetStream publish-with-ack loop through the bus, on a stream of its own.
    Publish(PublishArgs),
    /// The relay's rate while it drains a backlog (reads its checkpoint).
    RelayRate(RelayArgs),
    /// Delete the events stream of a prefix (clean-up).
    DeleteStream {
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long)]
        prefix: String,
    },
    /// Merge the parts in a directory into the JSON and Markdown report.
    Report {
        /// Directory holding `<part>.json` files.
        #[arg(long)]
        parts: PathBuf,
        #[arg(long)]
        json: PathBuf,
        #[arg(long)]
        markdown: PathBuf,
    },
}

#[derive(Debug, Args)]
struct Out {
    /// Where to write the JSON figures (stdout if absent).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CommandsArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    command_url: String,
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    query_url: String,
    /// The command API's HS256 secret, to mint the callers' tokens.
    #[arg(long, env = "LINKAGE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Closed loop: this many concurrent callers.
    #[arg(long, conflicts_with = "rate")]
    clients: Option<usize>,
    /// Open loop: commands per second on a fixed schedule.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 10)]
    warmup_secs: u64,
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Follow one command in this many with a lag probe (0: none).
    #[arg(long, default_value_t = 10)]
    lag_every: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Open loop: at most this many commands in flight.
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct SeedArgs {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 1_000_000)]
    appeals: u64,
    #[arg(long, default_value_t = 5_000)]
    block: u64,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// `official` or `weekdays`.
    #[arg(long, default_value = "official")]
    calendar: String,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct QueriesArgs {
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    query_url: String,
    #[arg(long, env = "LINKAGE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    #[arg(long, default_value_t = 5)]
    warmup_secs: u64,
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// An extra route measured with the mix: NAME=/api/v1/...?...
    #[arg(long = "route")]
    routes: Vec<String>,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct ScaleArgs {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 1_000_000)]
    appeals: u64,
    /// Leave `ledger_timeline` as it is (appeal details of copies then show no history).
    #[arg(long)]
    no_timeline: bool,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct PgbenchArgs {
    /// pgbench's `--log-prefix`.
    #[arg(long)]
    log_prefix: PathBuf,
    #[arg(long)]
    clients: usize,
    #[arg(long, default_value_t = 5)]
    warmup_secs: u64,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct PublishArgs {
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    #[arg(long)]
    prefix: String,
    #[arg(long, default_value_t = 1000)]
    message_bytes: usize,
    /// Messages per pipelined batch (the relay's default batch).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value_t = 15)]
    duration_secs: u64,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct RelayArgs {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 20)]
    window_secs: u64,
    #[command(flatten)]
    out: Out,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(real_main(Cli::parse())));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn real_main(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Commands(a) => {
            let pace = match (a.clients, a.rate) {
                (Some(clients), None) => drive::Pace::Closed { clients },
                (None, Some(rate)) => drive::Pace::Open { rate },
                _ => bail!("give --clients (closed loop) or --rate (open loop)"),
            };
            let report = drive::drive(drive::DriveConfig {
                command_url: a.command_url,
                query_url: a.query_url,
                keys: Arc::new(TokenKeys::hs256(a.jwt_secret.as_bytes())?),
                pace,
                warmup: Duration::from_secs(a.warmup_secs),
                duration: Duration::from_secs(a.duration_secs),
                lag_every: a.lag_every,
                seed: a.seed,
                max_in_flight: a.max_in_flight,
            })
            .await?;
            write(&a.out, &report)
        }
        Command::Seed(a) => {
            let calendar: Arc<dyn WorkingCalendar> = match a.calendar.as_str() {
                "official" => Arc::new(calendar::official().clone()),
                "weekdays" => Arc::new(WeekdayCalendar),
                other => bail!("unknown calendar {other:?}: use `official` or `weekdays`"),
            };
            let report = seed::seed(seed::SeedConfig {
                database_url: a.database_url,
                appeals: a.appeals,
                block: a.block.max(1),
                threads: a.threads,
                seed: a.seed,
                calendar,
            })
            .await?;
            write(&a.out, &report)
        }
        Command::Queries(a) => {
            let extra = a
                .routes
                .iter()
                .map(|r| {
                    r.split_once('=')
                        .map(|(n, p)| (n.to_owned(), p.to_owned()))
                        .with_context(|| format!("--route {r:?}: use NAME=PATH"))
                })
                .collect::<Result<Vec<_>>>()?;
            let report = queries::run(queries::QueryConfig {
                query_url: a.query_url,
                keys: Arc::new(TokenKeys::hs256(a.jwt_secret.as_bytes())?),
                clients: a.clients,
                warmup: Duration::from_secs(a.warmup_secs),
                duration: Duration::from_secs(a.duration_secs),
                seed: a.seed,
                extra,
            })
            .await?;
            write(&a.out, &report)
        }
        Command::ScaleLedger(a) => {
            let report = scale::scale(scale::ScaleConfig {
                database_url: a.database_url,
                appeals: a.appeals,
                timeline: !a.no_timeline,
            })
            .await?;
            write(&a.out, &report)
        }
        Command::PgbenchSummary(a) => {
            let report = ceiling::pgbench_logs(
                &a.log_prefix,
                a.clients,
                Duration::from_secs(a.warmup_secs),
            )?;
            write(&a.out, &report)
        }
        Command::Publish(a) => {
            let report = ceiling::publish_loop(
                &a.nats_url,
                &a.prefix,
                a.message_bytes,
                a.batch.max(1),
                Duration::from_secs(a.duration_secs),
            )
            .await?;
            write(&a.out, &report)
        }
        Command::RelayRate(a) => {
            let report =
                ceiling::relay_rate(&a.database_url, Duration::from_secs(a.window_secs)).await?;
            write(&a.out, &report)
        }
        Command::DeleteStream { nats_url, prefix } => {
            ceiling::delete_stream(&nats_url, &prefix).await
        }
        Command::Report {
            parts,
            json,
            markdown,
        } => {
            let all = report::load_parts(&parts)?;
            let doc = report::document(&all);
            std::fs::write(&json, serde_json::to_string_pretty(&doc)?)
                .with_context(|| format!("writing {}", json.display()))?;
            std::fs::write(&markdown, report::markdown(&all))
                .with_context(|| format!("writing {}", markdown.display()))?;
            Ok(())
        }
    }
}

fn write(out: &Out, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    match &out.out {
        Some(path) => {
            std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
        }
        None => {
            println!("{text}");
            Ok(())
        }
    }
}
