//! `linkage audit …`: argument parsing and output for the audit library (`linkage-audit`).
//! Data goes to stdout (machine-readable when piped), progress to stderr on a terminal only.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use linkage_audit::{ExportFormat, ExportOptions};

use crate::DbArgs;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Every event in the global order with its envelope (NDJSON or CSV on stdout).
    Export {
        /// Start at the event with this global position (inclusive) in the global order.
        #[arg(long)]
        from_position: Option<i64>,
        /// Only events recorded at or before this instant (RFC 3339, or a date: the end of that
        /// day in Beijing time).
        #[arg(long, value_parser = linkage_audit::parse_as_of)]
        until: Option<DateTime<Utc>>,
        /// `ndjson` or `csv`.
        #[arg(long, default_value = "ndjson")]
        format: ExportFormat,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Re-check every stream's hash chain and the relay's global anchors; exit 1 naming the
    /// first bad event.
    Verify {
        #[command(flatten)]
        db: DbArgs,
    },
    /// An appeal's state and timeline as they stood at an instant (JSON).
    Appeal {
        /// The appeal id or tracking number (LK-YYYY-NNNNNN).
        id: String,
        /// RFC 3339, or a date (the end of that day in Beijing time); default: now.
        #[arg(long, value_parser = linkage_audit::parse_as_of)]
        as_of: Option<DateTime<Utc>>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Rebuild a projection from the events recorded up to an instant into a scratch schema.
    Replay {
        /// RFC 3339, or a date (the end of that day in Beijing time).
        #[arg(long, value_parser = linkage_audit::parse_as_of)]
        as_of: DateTime<Utc>,
        /// The projection, e.g. `ledger`.
        #[arg(long)]
        projection: String,
        /// The scratch schema ([a-z_][a-z0-9_]*), created if missing.
        #[arg(long)]
        into: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Compare a projection's tables in a schema with the live ones (or another schema); exit 1
    /// when they differ.
    Diff {
        #[arg(long)]
        projection: String,
        /// The schema a replay wrote.
        #[arg(long)]
        schema: String,
        /// Compare with this schema instead of the live one.
        #[arg(long)]
        against: Option<String>,
        /// Differing rows shown per table and side.
        #[arg(long, default_value_t = 5)]
        sample: i64,
        #[command(flatten)]
        db: DbArgs,
    },
}

pub async fn run(command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Export {
            from_position,
            until,
            format,
            db,
        } => {
            let pool = connect(&db).await?;
            let tty = std::io::stderr().is_terminal();
            let options = ExportOptions {
                from_position,
                until,
                format,
                count_first: tty,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            let summary =
                linkage_audit::export(&pool, &options, &mut out, &terminal_progress("export", tty))
                    .await?;
            if tty {
                eprintln!(
                    "\nexported {} events in {:.1} s",
                    summary.events,
                    summary.elapsed.as_secs_f64()
                );
            }
            Ok(())
        }
        AuditCommand::Verify { db } => {
            let pool = connect(&db).await?;
            let tty = std::io::stderr().is_terminal();
            let report =
                linkage_audit::verify(&pool, tty, &terminal_progress("verify", tty)).await?;
            if tty {
                eprintln!();
            }
            let mut out = std::io::stdout().lock();
            if std::io::stdout().is_terminal() {
                writeln!(
                    out,
                    "{} events in {} streams, {} anchors ({} events in the global chain), {:.1} s",
                    report.events,
                    report.streams,
                    report.anchors,
                    report.chained_events,
                    report.elapsed.as_secs_f64()
                )?;
                for finding in &report.findings {
                    writeln!(out, "BAD {finding}")?;
                }
            } else {
                serde_json::to_writer(&mut out, &report)?;
                writeln!(out)?;
            }
            match report.first() {
                None if report.ok => Ok(()),
                Some(first) => bail!(
                    "the history does not verify ({} findings); first bad: {first}",
                    report.findings.len() as u64 + report.findings_omitted
                ),
                None => bail!("the history does not verify"),
            }
        }
        AuditCommand::Appeal { id, as_of, db } => {
            let pool = connect(&db).await?;
            let appeal = linkage_audit::appeal_as_of(&pool, &id, as_of).await?;
            print_json(serde_json::to_value(appeal)?)
        }
        AuditCommand::Replay {
            as_of,
            projection,
            into,
            db,
        } => {
            let projection = projection_named(&projection)?;
            let pool = connect(&db).await?;
            let tty = std::io::stderr().is_terminal();
            let progress = terminal_progress(projection.name(), tty);
            let summary =
                linkage_audit::replay(&pool, projection.as_ref(), as_of, &into, |d, t| {
                    progress(d, Some(t))
                })
                .await?;
            if tty {
                eprintln!();
            }
            print_json(serde_json::to_value(summary)?)
        }
        AuditCommand::Diff {
            projection,
            schema,
            against,
            sample,
            db,
        } => {
            let projection = projection_named(&projection)?;
            let pool = connect(&db).await?;
            let report = linkage_audit::diff(
                &pool,
                projection.as_ref(),
                &schema,
                against.as_deref(),
                sample,
            )
            .await?;
            print_json(serde_json::to_value(&report)?)?;
            if !report.equal {
                bail!(
                    "{} in {} differs from {}",
                    report.projection,
                    report.left,
                    report.right
                );
            }
            Ok(())
        }
    }
}

/// Audit tools read an existing database; they neither create nor migrate it.
async fn connect(db: &DbArgs) -> Result<sqlx::PgPool> {
    Ok(linkage_store::db::connect(
        &db.database_url,
        db.db_max_connections.min(4),
        std::time::Duration::from_secs(5),
    )
    .await?)
}

fn projection_named(name: &str) -> Result<std::sync::Arc<dyn linkage_projector::Projection>> {
    linkage_projector::projection_named(name).with_context(|| {
        let names: Vec<_> = linkage_projector::all_projections()
            .iter()
            .map(|p| p.name())
            .collect();
        format!("no projection named {name:?}; known: {}", names.join(", "))
    })
}

/// Pretty on a terminal, one line when piped.
fn print_json(value: serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if std::io::stdout().is_terminal() {
        serde_json::to_writer_pretty(&mut out, &value)?;
    } else {
        serde_json::to_writer(&mut out, &value)?;
    }
    writeln!(out)?;
    Ok(())
}

/// A one-line progress bar on stderr when `tty` (nothing otherwise): `label [####  ] 42%
/// done/total events`, or a running count while the total is unknown.
pub fn terminal_progress(label: &str, tty: bool) -> impl Fn(u64, Option<u64>) + use<> {
    let label = label.to_owned();
    let last_shown = AtomicU64::new(u64::MAX);
    move |done, total| {
        if !tty {
            return;
        }
        match total {
            Some(total) => {
                let percent = (done * 100).checked_div(total).unwrap_or(100).min(100);
                if last_shown.swap(percent, Ordering::Relaxed) != percent {
                    let filled = (percent / 2) as usize;
                    eprint!(
                        "\r{label} [{}{}] {percent:>3}% {done}/{total} events",
                        "#".repeat(filled),
                        " ".repeat(50 - filled)
                    );
                }
            }
            None => eprint!("\r{label} {done} events"),
        }
    }
}
