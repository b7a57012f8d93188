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
use linkage_domain::rules::{FixedRules, Rulebook, RulesSource};
use linkage_domain::sla::SlaPolicy;
use linkage_domain::values::DepartmentId;
use linkage_store::rules::LiveRules;
use linkage_store::{PgEventStore, db};
use tracing_subscriber::EnvFilter;

mod audit;
mod demo;

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
// `linkage command-api` is the role's name; the lint's rename would hide it.
#[allow(clippy::enum_variant_names)]
enum Command {
    /// Run every service in one process (command API, relay, projector, query API), migrating first.
    Run(RunArgs),
    /// Run only the command API (for scaling out).
    CommandApi(RunArgs),
    /// Run only the relay (Postgres events → NATS JetStream; one active at a time).
    Relay(RunArgs),
    /// Run only the projector (JetStream → read models).
    Projector(RunArgs),
    /// Run only the query API.
    QueryApi(RunArgs),
    /// Run only the SLA watcher (records missed deadlines; recomputes after calendar changes).
    SlaWatcher(RunArgs),
    /// Read models: rebuild one from the event store, or show every one's position.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Create the database if needed and apply the schema migrations.
    Migrate(DbArgs),
    /// Auditors: export the history, verify its hash chains and anchors, an appeal as of an
    /// instant, replay a projection as of an instant into a scratch schema and diff it.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
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
    /// Generate a deterministic, realistic demo district (months of appeals) through the real
    /// command path, into an event store without appeals (docs/demo-data.md).
    DemoData {
        #[command(flatten)]
        args: demo::DemoArgs,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Rebuild a projection from scratch from the event store (the live projector continues
    /// from where the rebuild ends).
    Rebuild {
        /// The projection, e.g. `ledger`.
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Each projection's position and how many events it is behind the relay.
    Status {
        #[command(flatten)]
        db: DbArgs,
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
    /// `stored` (the district's calendar in the database: the version deadlines use),
    /// `official` (the embedded 2020–2026 data) or `weekdays` (Monday–Friday).
    #[arg(long, default_value = "stored")]
    calendar: String,
    #[command(flatten)]
    db: DbArgs,
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
    /// NATS server with JetStream: the relay publishes there, the projector consumes.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Subject prefix: events go to `<prefix>.events.<aggregate_type>.<event_type>` on the
    /// stream `<PREFIX>_EVENTS`.
    #[arg(long, env = "LINKAGE_NATS_PREFIX", default_value = "linkage")]
    nats_prefix: String,
    /// JetStream replicas of the events stream (3 on a NATS cluster).
    #[arg(long, env = "LINKAGE_NATS_REPLICAS", default_value_t = 1)]
    nats_replicas: usize,
    /// JetStream duplicate window in seconds (republished event ids inside it are dropped).
    #[arg(
        long,
        env = "LINKAGE_NATS_DUPLICATE_WINDOW_SECS",
        default_value_t = 120
    )]
    nats_duplicate_window_secs: u64,
    /// Address the query API listens on.
    #[arg(long, env = "LINKAGE_QUERY_API_ADDR", default_value = "127.0.0.1:8081")]
    query_api_addr: SocketAddr,
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
    /// Command API rate limit: sustained requests per second per client (the token's subject,
    /// else the IP address); 0 turns it off. Over it: 429 with Retry-After.
    #[arg(long, env = "LINKAGE_RATE_LIMIT_PER_SECOND", default_value_t = 50.0)]
    rate_limit_per_second: f64,
    /// Command API rate limit: requests a client may send at once after being idle.
    #[arg(long, env = "LINKAGE_RATE_LIMIT_BURST", default_value_t = 100)]
    rate_limit_burst: u32,
    /// Working-day calendar for deadlines: `stored` (the district's calendar and SLA policies
    /// from the rules stream, seeded with the official 2020–2026 data) or `weekdays`
    /// (Monday–Friday with the default policy, for demos and tests that must not depend on
    /// which years are published).
    #[arg(long, env = "LINKAGE_CALENDAR", default_value = "stored")]
    calendar: String,
    /// The SLA watcher's longest sleep, in milliseconds: how soon it notices a deadline set
    /// since its last look (it otherwise wakes at the next deadline it knows).
    #[arg(long, env = "LINKAGE_SLA_WATCH_MAX_SLEEP_MS", default_value_t = 30_000)]
    sla_watch_max_sleep_ms: u64,
    /// `linkage run` only: `auto` loads the demo district first when the event store has no
    /// appeals (`make run` passes it); `off` never invents data (the default, for production).
    #[arg(long, env = "LINKAGE_DEMO_DATA", value_enum, default_value = "off")]
    demo_data: demo::DemoData,
    #[command(flatten)]
    demo: demo::AutoDemoArgs,
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

// jemalloc rather than glibc's malloc: every role allocates many short-lived buffers per event
// and per request, and glibc's malloc/free were 28 % of a ledger rebuild's client samples; with
// jemalloc the rebuild ran 20-30 % faster (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
            Command::Run(args) => {
                let pool = open_database(&args.db).await?;
                demo::load_if_empty(&pool, args.demo_data, &args.demo).await?;
                pool.close().await;
                run(args, Roles::ALL).await
            }
            Command::CommandApi(args) => {
                run(
                    args,
                    Roles {
                        command_api: true,
                        ..Roles::NONE
                    },
                )
                .await
            }
            Command::Relay(args) => {
                run(
                    args,
                    Roles {
                        relay: true,
                        ..Roles::NONE
                    },
                )
                .await
            }
            Command::Projector(args) => {
                run(
                    args,
                    Roles {
                        projector: true,
                        ..Roles::NONE
                    },
                )
                .await
            }
            Command::QueryApi(args) => {
                run(
                    args,
                    Roles {
                        query_api: true,
                        ..Roles::NONE
                    },
                )
                .await
            }
            Command::SlaWatcher(args) => {
                run(
                    args,
                    Roles {
                        sla_watcher: true,
                        ..Roles::NONE
                    },
                )
                .await
            }
            Command::Projections {
                command: ProjectionsCommand::Rebuild { name, db },
            } => rebuild_projection(&name, &db).await,
            Command::Projections {
                command: ProjectionsCommand::Status { db },
            } => {
                let pool = open_database(&db).await?;
                let status = linkage_projector::status(&pool).await?;
                println!("{}", serde_json::to_string_pretty(&status)?);
                Ok(())
            }
            Command::Audit { command } => audit::run(command).await,
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
            } => explain_deadline(&args).await,
            Command::DemoData { args, db } => {
                let pool = open_database(&db).await?;
                demo::run(&pool, &args).await
            }
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
        other => bail!("unknown calendar {other:?}: use `stored`, `official` or `weekdays`"),
    }
}

async fn explain_deadline(args: &DeadlineArgs) -> Result<()> {
    let calendar = match args.calendar.as_str() {
        "stored" => {
            let pool = open_database(&args.db).await?;
            let rules = LiveRules::load(pool, Arc::new(SystemClock)).await?;
            rules.current().calendar.clone()
        }
        other => working_calendar(other)?,
    };
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

/// Which roles one process plays.
#[derive(Debug, Clone, Copy)]
struct Roles {
    command_api: bool,
    relay: bool,
    projector: bool,
    query_api: bool,
    sla_watcher: bool,
}

impl Roles {
    const ALL: Roles = Roles {
        command_api: true,
        relay: true,
        projector: true,
        query_api: true,
        sla_watcher: true,
    };
    const NONE: Roles = Roles {
        command_api: false,
        relay: false,
        projector: false,
        query_api: false,
        sla_watcher: false,
    };
}

async fn run(args: RunArgs, roles: Roles) -> Result<()> {
    let pool = open_database(&args.db).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();

    let bus = if roles.relay || roles.projector {
        Some(
            linkage_bus::Bus::connect(linkage_bus::BusConfig {
                url: args.nats_url.clone(),
                prefix: args.nats_prefix.clone(),
                replicas: args.nats_replicas,
                duplicate_window: Duration::from_secs(args.nats_duplicate_window_secs),
            })
            .await?,
        )
    } else {
        None
    };
    if let (true, Some(bus)) = (roles.relay, &bus) {
        let (pool, bus, stop) = (pool.clone(), bus.clone(), stopped());
        tasks.spawn(async move {
            linkage_relay::run(pool, bus, linkage_relay::RelayConfig::default(), stop)
                .await
                .context("relay")
        });
    }
    if let (true, Some(bus)) = (roles.projector, &bus) {
        let (pool, bus, stop) = (pool.clone(), bus.clone(), stopped());
        tasks.spawn(async move {
            linkage_projector::run(
                pool,
                bus,
                linkage_projector::all_projections(),
                linkage_projector::RunnerConfig::default(),
                stop,
            )
            .await
            .context("projector")
        });
    }
    // The SLA rules (calendar, policies) in force, followed live from the rules stream.
    let clock: Arc<dyn linkage_domain::clock::Clock> = Arc::new(SystemClock);
    let rules = if roles.command_api || roles.sla_watcher {
        let rules = LiveRules::load(pool.clone(), clock.clone()).await?;
        let (follower, stop) = (rules.clone(), stopped());
        tasks.spawn(async move {
            follower.follow(Duration::from_secs(1), stop).await;
            Ok(())
        });
        Some(rules)
    } else {
        None
    };
    let weekdays: Option<Arc<dyn RulesSource>> = match args.calendar.as_str() {
        "stored" => None,
        "weekdays" => Some(Arc::new(FixedRules(Arc::new(Rulebook::fixed(
            Arc::new(WeekdayCalendar),
            SlaPolicy::default(),
        ))))),
        other => bail!("unknown LINKAGE_CALENDAR {other:?}: use `stored` or `weekdays`"),
    };
    let services = |rules: &Arc<LiveRules>| AppealServices {
        clock: clock.clone(),
        rules: weekdays.clone().unwrap_or_else(|| rules.clone()),
    };
    if let (true, Some(rules)) = (roles.sla_watcher, &rules) {
        linkage_projector::ensure_schema(&pool, &linkage_projector::all_projections()).await?;
        let config = linkage_sla_watcher::WatcherConfig {
            max_sleep: Duration::from_millis(args.sla_watch_max_sleep_ms),
            ..Default::default()
        };
        let (pool, services, rules, stop) =
            (pool.clone(), services(rules), rules.clone(), stopped());
        tasks.spawn(async move {
            linkage_sla_watcher::run(pool, services, rules, config, stop)
                .await
                .context("SLA watcher")
        });
    }
    if let (true, Some(rules)) = (roles.command_api, &rules) {
        let state = Arc::new(AppState {
            store: PgEventStore::new(pool.clone()),
            pool: pool.clone(),
            services: services(rules),
            rules: rules.clone(),
            keys: args.keys.keys()?,
            nats_addr: linkage_command_api::health::nats_addr(&args.nats_url)
                .map_err(anyhow::Error::msg)?,
        });
        let config = HttpConfig {
            body_limit: args.body_limit_bytes,
            ..HttpConfig::default()
        };
        let listener = tokio::net::TcpListener::bind(args.command_api_addr)
            .await
            .with_context(|| format!("binding the command API to {}", args.command_api_addr))?;
        tracing::info!(addr = %listener.local_addr()?, "command API listening");
        let mut app = linkage_command_api::router(state, &config);
        let rate_limit = linkage_http::ratelimit::RateLimitConfig {
            per_second: args.rate_limit_per_second,
            burst: args.rate_limit_burst,
        };
        if let Some(limit) = linkage_http::ratelimit::RateLimit::new(rate_limit, args.keys.keys()?)
        {
            app = limit.apply(app);
        }
        let stop = stopped();
        tasks.spawn(async move {
            linkage_http::serve(listener, app, stop)
                .await
                .context("serving the command API")
        });
    }
    if roles.query_api {
        linkage_projector::ensure_schema(&pool, &linkage_projector::all_projections()).await?;
        let state = Arc::new(linkage_query_api::QueryState {
            pool: pool.clone(),
            keys: args.keys.keys()?,
        });
        let listener = tokio::net::TcpListener::bind(args.query_api_addr)
            .await
            .with_context(|| format!("binding the query API to {}", args.query_api_addr))?;
        tracing::info!(addr = %listener.local_addr()?, "query API listening");
        let app = linkage_query_api::router(state, &linkage_query_api::QueryConfig::default());
        let stop = stopped();
        tasks.spawn(async move {
            linkage_http::serve(listener, app, stop)
                .await
                .context("serving the query API")
        });
    }

    // Run until a signal, or until a role fails: then stop the others gracefully.
    let outcome = tokio::select! {
        () = shutdown_signal() => Ok(()),
        Some(done) = tasks.join_next() => match done {
            Ok(Ok(())) => Err(anyhow::anyhow!("a role stopped unexpectedly")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow::anyhow!("a role panicked: {e}")),
        },
    };
    let _ = stop_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::warn!(error = format!("{e:#}"), "while stopping");
        }
    }
    tracing::info!("stopped");
    outcome
}

async fn rebuild_projection(name: &str, db: &DbArgs) -> Result<()> {
    let projection = linkage_projector::projection_named(name).with_context(|| {
        let names: Vec<_> = linkage_projector::all_projections()
            .iter()
            .map(|p| p.name())
            .collect();
        format!("no projection named {name:?}; known: {}", names.join(", "))
    })?;
    let pool = open_database(db).await?;
    linkage_projector::ensure_schema(&pool, std::slice::from_ref(&projection)).await?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A one-line progress bar on a terminal; nothing when piped.
    let progress = audit::terminal_progress(name, tty);
    let summary = linkage_projector::rebuild(&pool, projection.as_ref(), |done, total| {
        progress(done, Some(total))
    })
    .await?;
    if tty {
        eprintln!();
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
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
