//! `linkage demo-data` and the "load demo data when empty" option of `linkage run`
//! (docs/demo-data.md). The generation itself is `linkage-demo`.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, ValueEnum};
use linkage_demo::{DemoOptions, Scale, Summary};
use sqlx::PgPool;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of everything drawn: the same seed (with the same --months, --until and --scale)
    /// on an empty database gives the same events, ids, tracking numbers and hashes.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Months of history, ending at --until (1–24).
    #[arg(long, default_value_t = 6)]
    pub months: u32,
    /// End of the history: a date (YYYY-MM-DD, through the end of that day, Beijing time) or an
    /// RFC 3339 instant; not in the future. Default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// `default` (about 500 appeals a month) or `small` (about 60, for tests).
    #[arg(long, default_value = "default", value_parser = parse_scale)]
    pub scale: Scale,
    /// Load even though the event store already holds appeals (nothing is ever deleted; the same
    /// seed again records nothing new: every step has its idempotency key).
    #[arg(long)]
    pub force: bool,
}

fn parse_scale(s: &str) -> Result<Scale, String> {
    s.parse()
}

/// Whether `linkage run` loads demo data into an empty event store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoData {
    /// Load the default demo district when the event store has no appeals (`make run`).
    Auto,
    /// Never (production).
    Off,
}

/// What `linkage run --demo-data auto` loads (ending now, seed 2026).
#[derive(Debug, Args)]
pub struct AutoDemoArgs {
    /// Size of the demo district `--demo-data auto` loads: `default` or `small`.
    #[arg(long, env = "LINKAGE_DEMO_SCALE", default_value = "default", value_parser = parse_scale)]
    pub demo_scale: Scale,
    /// Months of history `--demo-data auto` loads.
    #[arg(long, env = "LINKAGE_DEMO_MONTHS", default_value_t = 6)]
    pub demo_months: u32,
}

/// `--until`: a Beijing date (through its end) or an RFC 3339 instant.
pub fn parse_until(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let next = date
            .succ_opt()
            .context("--until: the date is out of range")?
            .and_hms_opt(0, 0, 0)
            .context("--until: midnight")?;
        return next
            .and_local_timezone(linkage_domain::calendar::TZ)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .context("--until: no such local time");
    }
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => Ok(t.with_timezone(&Utc)),
        Err(_) => bail!("--until {s:?}: expected a date YYYY-MM-DD or an RFC 3339 instant"),
    }
}

/// `linkage demo-data`: generates, prints the summary as JSON on stdout.
pub async fn run(pool: &PgPool, args: &DemoArgs) -> Result<()> {
    let until = match &args.until {
        Some(s) => parse_until(s)?,
        None => Utc::now(),
    };
    let options = DemoOptions {
        seed: args.seed,
        months: args.months,
        until,
        scale: args.scale,
        force: args.force,
    };
    let summary = generate(pool, &options).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// `linkage run --demo-data auto`: the default district when the event store has no appeals.
pub async fn load_if_empty(pool: &PgPool, mode: DemoData, demo: &AutoDemoArgs) -> Result<()> {
    if mode == DemoData::Off {
        return Ok(());
    }
    let appeals = linkage_demo::appeal_count(pool).await?;
    if appeals > 0 {
        tracing::info!(
            appeals,
            "demo data: the event store already holds appeals; nothing loaded"
        );
        return Ok(());
    }
    tracing::info!(
        months = demo.demo_months,
        scale = ?demo.demo_scale,
        "demo data: the event store has no appeals, loading the demo district \
         (seed 2026; off with LINKAGE_DEMO_DATA=off or `make run DEMO=0`)"
    );
    let options = DemoOptions {
        seed: 2026,
        months: demo.demo_months,
        until: Utc::now(),
        scale: demo.demo_scale,
        force: false,
    };
    generate(pool, &options).await?;
    Ok(())
}

async fn generate(pool: &PgPool, options: &DemoOptions) -> Result<Summary> {
    let tty = std::io::stderr().is_terminal();
    let mut shown = u64::MAX;
    let summary = linkage_demo::load(pool, options, |done, total| {
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        if tty && percent != shown {
            shown = percent;
            let filled = (percent / 2) as usize;
            eprint!(
                "\rdemo data [{}{}] {percent:>3}% {done}/{total} appeals filed",
                "#".repeat(filled),
                " ".repeat(50usize.saturating_sub(filled))
            );
        }
    })
    .await
    .context("loading demo data")?;
    if tty {
        eprintln!();
    }
    tracing::info!(
        appeals = summary.appeals,
        events = summary.events,
        commands = summary.commands,
        style_evaluations = summary.style_evaluations,
        seconds = format!("{:.1}", summary.elapsed_seconds),
        from = %summary.from,
        until = %summary.until,
        "demo data loaded; the read models catch up as the relay and projector run"
    );
    Ok(summary)
}
