//! `linkage`: the one binary. `linkage run` serves every role in one process; the other
//! subcommands are operator tools. Settings come from flags or the environment (`.env.example`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use linkage_auth::{Role, TokenKeys};
use linkage_command_api::{AppState, HttpConfig};
use linkage_domain::AppealServices;
use linkage_domain::calendar::{self, WeekdayCalendar, WorkingCalendar};
use linkage_domain::clock::SystemClock;
use linkage_domain::sla::SlaPolicy;
use linkage_domain::values::DepartmentId;
use linkage_store::{PgEventStore, db};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "linkage",
    version,
    about = "Linkage: appeals about the business environment, event-sourced"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service in one process (now: the command API), migrating first.
    Run(RunArgs),
    /// Create the database if needed and apply the schema migrations.
    Migrate(DbArgs),
    /// Local bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Deadlines, explained ("why is my deadline this date?").
    Sla {
        #[command(subcommand)]
        command: SlaCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SlaCommand {
    /// The deadline N working days or N clock hours after an instant.
    Deadline(DeadlineArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("period").required(true).args(["working_days", "hours"])))]
struct DeadlineArgs {
    /// The start instant, RFC 3339 (e.g. 2026-09-30T10:00:00+08:00).
    #[arg(long)]
    from: chrono::DateTime<chrono::FixedOffset>,
    /// Working days (the starting day is not counted; ends 24:00 Asia/Shanghai).
    #[arg(long)]
    working_days: Option<u32>,
    /// Clock hours.
    #[arg(long)]
    hours: Option<u32>,
    /// `official` or `weekdays`.
    #[arg(long, env = "LINKAGE_CALENDAR", default_value = "official")]
    calendar: String,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Mint a token signed with the local HS256 secret, for trying the API.
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
struct DbArgs {
    /// Postgres holding the event store.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/linkage"
    )]
    database_url: String,
    /// Connections in the pool.
    #[arg(long, env = "LINKAGE_DB_MAX_CONNECTIONS", default_value_t = 16)]
    db_max_connections: u32,
}

#[derive(Debug, Args)]
struct KeyArgs {
    /// Shared HS256 secret (≥ 32 bytes), for local use: lets `linkage token issue` mint tokens.
    #[arg(long, env = "LINKAGE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// PEM file with the identity provider's public key (RSA → RS256, Ed25519 → EdDSA).
    /// Takes precedence over the secret.
    #[arg(long, env = "LINKAGE_JWT_PUBLIC_KEY_FILE")]
    jwt_public_key_file: Option<std::path::PathBuf>,
}

impl KeyArgs {
    fn keys(&self) -> Result<TokenKeys> {
        if let Some(path) = &self.jwt_public_key_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the JWT public key {}", path.display()))?;
            return Ok(TokenKeys::public_key_pem(&pem)?);
        }
        match &self.jwt_secret {
            Some(secret) => Ok(TokenKeys::hs256(secret.as_bytes())?),
            None => bail!(
                "no token key configured: set LINKAGE_JWT_SECRET (local) or LINKAGE_JWT_PUBLIC_KEY_FILE"
            ),
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    keys: KeyArgs,
    /// NATS server (checked by /readyz; the event relay will publish there).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Address the command API listens on.
    #[arg(
        long,
        env = "LINKAGE_COMMAND_API_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    command_api_addr: SocketAddr,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "LINKAGE_BODY_LIMIT_BYTES", default_value_t = 64 * 1024)]
    body_limit_bytes: usize,
    /// Working-day calendar for deadlines: `official` (PRC holidays and 调休, 2020–2026) or
    /// `weekdays` (Monday–Friday only).
    #[arg(long, env = "LINKAGE_CALENDAR", default_value = "official")]
    calendar: String,
}

#[derive(Debug, Args)]
struct IssueArgs {
    #[command(flatten)]
    keys: KeyArgs,
    /// dispatcher, handler, supervisor, evaluator, analyst, auditor or admin.
    #[arg(long)]
    role: Role,
    /// The department (required for handlers), e.g. market-supervision.
    #[arg(long)]
    dept: Option<DepartmentId>,
    /// Who the token is for.
    #[arg(long, default_value = "local-user")]
    sub: String,
    /// Hours until the token expires.
    #[arg(long, default_value_t = 12)]
    hours: i64,
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of contexts, one line: what was being done and why it failed.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Migrate(args) => {
                let pool = open_database(&args).await?;
                tracing::info!("migrations applied");
                pool.close().await;
                Ok(())
            }
            Command::Token {
                command: TokenCommand::Issue(args),
            } => {
                let token = args.keys.keys()?.issue(
                    &args.sub,
                    args.role,
                    args.dept,
                    chrono::Utc::now(),
                    chrono::Duration::hours(args.hours),
                )?;
                println!("{token}");
                Ok(())
            }
            Command::Sla {
                command: SlaCommand::Deadline(args),
            } => explain_deadline(&args),
        }
    })
}

/// Creates the database if missing, connects and migrates.
async fn open_database(args: &DbArgs) -> Result<sqlx::PgPool> {
    db::ensure_database(&args.database_url).await?;
    let pool = db::connect(
        &args.database_url,
        args.db_max_connections,
        Duration::from_secs(5),
    )
    .await?;
    db::migrate(&pool).await?;
    Ok(pool)
}

fn working_calendar(name: &str) -> Result<Arc<dyn WorkingCalendar>> {
    match name {
        "official" => Ok(Arc::new(calendar::official().clone())),
        "weekdays" => Ok(Arc::new(WeekdayCalendar)),
        other => bail!("unknown calendar {other:?}: use `official` or `weekdays`"),
    }
}

fn explain_deadline(args: &DeadlineArgs) -> Result<()> {
    let calendar = working_calendar(&args.calendar)?;
    let from = args.from.with_timezone(&chrono::Utc);
    let due = match (args.working_days, args.hours) {
        (Some(n), _) => calendar::add_working_days(calendar.as_ref(), from, n)
            .with_context(|| format!("{n} working days from {}", args.from))?,
        (None, Some(n)) => calendar::add_hours(from, n),
        (None, None) => bail!("give --working-days or --hours"),
    };
    let local = due.with_timezone(&calendar::TZ);
    println!(
        "deadline: {}",
        due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    println!(
        "local:    {} (Asia/Shanghai)",
        local.format("%Y-%m-%d %H:%M %a")
    );
    if args.working_days.is_some() {
        let last_day = (local - chrono::Duration::seconds(1)).date_naive();
        println!(
            "rule:     24:00 of working day no. {} after {} (the starting day is not counted); that day is {}",
            args.working_days.unwrap_or_default(),
            args.from.with_timezone(&calendar::TZ).date_naive(),
            last_day.format("%Y-%m-%d %a"),
        );
    } else {
        println!("rule:     clock hours, no calendar involved");
    }
    println!("calendar: {}", calendar.version());
    Ok(())
}

/// `host:port` of a `nats://host:port` URL.
fn nats_addr(url: &str) -> Result<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest
        .rsplit('@')
        .next()
        .unwrap_or(rest)
        .trim_end_matches('/');
    if hostport.is_empty() {
        bail!("NATS_URL {url:?} names no host");
    }
    Ok(if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:4222")
    })
}

async fn run(args: RunArgs) -> Result<()> {
    let keys = args.keys.keys()?;
    let calendar = working_calendar(&args.calendar)?;
    let pool = open_database(&args.db).await?;
    let state = Arc::new(AppState {
        store: PgEventStore::new(pool.clone()),
        pool,
        services: AppealServices {
            clock: Arc::new(SystemClock),
            calendar,
            policy: SlaPolicy::default(),
        },
        keys,
        nats_addr: nats_addr(&args.nats_url)?,
    });
    let config = HttpConfig {
        body_limit: args.body_limit_bytes,
        ..HttpConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.command_api_addr)
        .await
        .with_context(|| format!("binding the command API to {}", args.command_api_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "command API listening");
    linkage_command_api::serve(
        listener,
        linkage_command_api::router(state, &config),
        shutdown_signal(),
    )
    .await
    .context("serving the command API")?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::nats_addr;

    #[test]
    fn nats_addresses() {
        assert_eq!(
            nats_addr("nats://127.0.0.1:4222").unwrap(),
            "127.0.0.1:4222"
        );
        assert_eq!(nats_addr("nats://user:pw@host:1").unwrap(), "host:1");
        assert_eq!(nats_addr("nats://host").unwrap(), "host:4222");
        assert!(nats_addr("nats://").is_err());
    }
}
