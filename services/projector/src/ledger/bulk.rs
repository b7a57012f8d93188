//! The ledger's rows and timeline as binary `COPY` data, for a rebuild's bulk load.
//!
//! The columns are listed here, each with its type, and checked against the catalog before a
//! chunk is written: a column added to `ledger.sql` that is not generated must be written here
//! too (and by the live upsert), or the rebuild stops with the difference instead of leaving
//! the column at its default.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Actors, LedgerRow, NAME, Stamp, inconsistent};
use crate::ProjectionError;
use crate::copy::BinaryCopy;
use linkage_domain::values::{AccountabilityKind, DeadlineKind, DepartmentId};

/// `ledger`'s columns in the order [`write_row`] writes them (the table's), with their types as
/// `format_type` shows them.
const LEDGER_COLUMNS: &[(&str, &str)] = &[
    ("appeal_id", "uuid"),
    ("tracking_number", "text"),
    ("channel", "text"),
    ("filer_kind", "text"),
    ("filer_name", "text"),
    ("filer_contact_person", "text"),
    ("filer_phone", "text"),
    ("category", "text"),
    ("town", "text"),
    ("complained_unit", "text"),
    ("description", "text"),
    ("lead_department", "text"),
    ("co_handlers", "text[]"),
    ("status", "text"),
    ("filed_at", "timestamp with time zone"),
    ("assigned_at", "timestamp with time zone"),
    ("contact_due", "timestamp with time zone"),
    ("contacted_at", "timestamp with time zone"),
    ("feedback_due", "timestamp with time zone"),
    ("feedback_at", "timestamp with time zone"),
    ("resolution_due", "timestamp with time zone"),
    ("resolved_at", "timestamp with time zone"),
    ("resolution_outcome", "text"),
    ("extension_pending_days", "integer"),
    ("return_visit_result", "text"),
    ("return_visit_solved", "boolean"),
    ("return_visit_satisfaction", "text"),
    ("return_visited_at", "timestamp with time zone"),
    ("closed_at", "timestamp with time zone"),
    ("withdrawn_at", "timestamp with time zone"),
    ("duplicate_of", "uuid"),
    ("extension_count", "integer"),
    ("rework_count", "integer"),
    ("transfer_count", "integer"),
    ("decline_count", "integer"),
    ("supervised", "boolean"),
    ("supervision_count", "integer"),
    ("supervision_due", "timestamp with time zone"),
    ("next_due", "timestamp with time zone"),
    ("accountability_count", "integer"),
    ("accountability_kinds", "text[]"),
    ("accountability_departments", "text[]"),
    ("missed_deadlines", "text[]"),
    ("last_sequence", "bigint"),
    ("last_global_position", "bigint"),
    ("last_event_at", "timestamp with time zone"),
    ("updated_at", "timestamp with time zone"),
    ("calendar", "text"),
    ("sla_policy", "text"),
    ("missed_in_force", "text[]"),
    ("watch_due", "timestamp with time zone"),
];

/// `ledger_timeline`'s columns in the order [`write_timeline`] writes them.
const TIMELINE_COLUMNS: &[(&str, &str)] = &[
    ("appeal_id", "uuid"),
    ("sequence", "bigint"),
    ("global_position", "bigint"),
    ("event_id", "uuid"),
    ("event_type", "text"),
    ("at", "timestamp with time zone"),
    ("actor", "text"),
    ("role", "text"),
    ("department", "text"),
    ("summary", "json"),
];

/// Column lists must match the two tables above (checked by a unit test).
pub(super) const COPY_LEDGER: &str = "COPY ledger (appeal_id, tracking_number, channel, \
     filer_kind, filer_name, filer_contact_person, filer_phone, category, town, complained_unit, \
     description, lead_department, co_handlers, status, filed_at, assigned_at, contact_due, \
     contacted_at, feedback_due, feedback_at, resolution_due, resolved_at, resolution_outcome, \
     extension_pending_days, return_visit_result, return_visit_solved, return_visit_satisfaction, \
     return_visited_at, closed_at, withdrawn_at, duplicate_of, extension_count, rework_count, \
     transfer_count, decline_count, supervised, supervision_count, supervision_due, next_due, \
     accountability_count, accountability_kinds, accountability_departments, missed_deadlines, \
     last_sequence, last_global_position, last_event_at, updated_at, calendar, sla_policy, \
     missed_in_force, watch_due) FROM STDIN (FORMAT binary)";

pub(super) const COPY_TIMELINE: &str = "COPY ledger_timeline (appeal_id, sequence, \
     global_position, event_id, event_type, at, actor, role, department, summary) \
     FROM STDIN (FORMAT binary)";

/// The written columns of both tables (generated ones are computed by Postgres), as the
/// catalog lists them through the connection's `search_path`.
const WRITTEN_COLUMNS: &str = "SELECT c.relname::text, a.attname::text, \
            format_type(a.atttypid, a.atttypmod) \
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
     WHERE a.attrelid IN ('ledger'::regclass, 'ledger_timeline'::regclass) \
       AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
     ORDER BY c.relname, a.attnum";

/// Fails when a table's written columns are not exactly the ones this module writes.
pub(super) async fn check_columns(conn: &mut PgConnection) -> Result<(), ProjectionError> {
    let found: Vec<(String, String, String)> = sqlx::query_as(WRITTEN_COLUMNS)
        .fetch_all(conn)
        .await
        .map_err(|e| ProjectionError::db("listing the ledger's columns", e))?;
    for (table, expected) in [
        ("ledger", LEDGER_COLUMNS),
        ("ledger_timeline", TIMELINE_COLUMNS),
    ] {
        let actual: Vec<(&str, &str)> = found
            .iter()
            .filter(|(t, _, _)| t == table)
            .map(|(_, c, ty)| (c.as_str(), ty.as_str()))
            .collect();
        if actual != expected {
            return Err(ProjectionError::Schema {
                projection: NAME,
                detail: format!(
                    "table {table} has the columns {actual:?}, the rebuild's bulk load writes \
                     {expected:?} (update services/projector/src/ledger/bulk.rs)"
                ),
            });
        }
    }
    Ok(())
}

fn out_of_range(what: &str, at: DateTime<Utc>) -> ProjectionError {
    inconsistent(format!("{what} {at} is out of Postgres' range"))
}

fn instant(copy: &mut BinaryCopy, at: DateTime<Utc>) -> Result<(), ProjectionError> {
    copy.timestamptz(at)
        .ok_or_else(|| out_of_range("instant", at))
}

fn opt_instant(copy: &mut BinaryCopy, at: Option<DateTime<Utc>>) -> Result<(), ProjectionError> {
    match at {
        Some(at) => instant(copy, at),
        None => {
            copy.null();
            Ok(())
        }
    }
}

fn opt_text(copy: &mut BinaryCopy, v: Option<&str>) {
    match v {
        Some(v) => copy.text(v),
        None => copy.null(),
    }
}

fn opt<T>(copy: &mut BinaryCopy, v: Option<T>, write: impl FnOnce(&mut BinaryCopy, T)) {
    match v {
        Some(v) => write(copy, v),
        None => copy.null(),
    }
}

/// One ledger row, every column as the live upsert writes it.
pub(super) fn write_row(copy: &mut BinaryCopy, r: &LedgerRow) -> Result<(), ProjectionError> {
    copy.row(LEDGER_COLUMNS.len() as i16);
    copy.uuid(&r.appeal_id);
    copy.text(r.tracking_number.as_str());
    copy.text(r.channel.as_str());
    copy.text(r.filer_kind.as_str());
    copy.text(&r.filer_name);
    opt_text(copy, r.filer_contact_person.as_deref());
    copy.text(r.filer_phone.as_str());
    copy.text(r.category.as_str());
    copy.text(&r.town);
    opt_text(copy, r.complained_unit.as_deref());
    copy.text(&r.description);
    opt_text(copy, r.lead_department.as_ref().map(DepartmentId::as_str));
    copy.text_array(r.co_handlers.iter().map(DepartmentId::as_str));
    copy.text(r.status.as_str());
    instant(copy, r.filed_at)?;
    opt_instant(copy, r.assigned_at)?;
    opt_instant(copy, r.contact_due)?;
    opt_instant(copy, r.contacted_at)?;
    opt_instant(copy, r.feedback_due)?;
    opt_instant(copy, r.feedback_at)?;
    opt_instant(copy, r.resolution_due)?;
    opt_instant(copy, r.resolved_at)?;
    opt_text(copy, r.resolution_outcome.as_ref().map(|o| o.as_str()));
    opt(copy, r.extension_pending_days, BinaryCopy::i32);
    opt_text(copy, r.return_visit_result.as_deref());
    opt(copy, r.return_visit_solved, BinaryCopy::bool);
    opt_text(
        copy,
        r.return_visit_satisfaction.as_ref().map(|s| s.as_str()),
    );
    opt_instant(copy, r.return_visited_at)?;
    opt_instant(copy, r.closed_at)?;
    opt_instant(copy, r.withdrawn_at)?;
    opt(copy, r.duplicate_of.as_ref(), BinaryCopy::uuid);
    copy.i32(r.extension_count);
    copy.i32(r.rework_count);
    copy.i32(r.transfer_count);
    copy.i32(r.decline_count);
    copy.bool(r.supervised);
    copy.i32(r.supervision_count);
    opt_instant(copy, r.supervision_due)?;
    opt_instant(copy, r.next_due)?;
    copy.i32(r.accountability_count);
    copy.text_array(
        r.accountability_kinds
            .iter()
            .map(AccountabilityKind::as_str),
    );
    copy.text_array(
        r.accountability_departments
            .iter()
            .map(DepartmentId::as_str),
    );
    copy.text_array(r.missed_deadlines.iter().map(DeadlineKind::as_str));
    copy.i64(r.last_sequence);
    copy.i64(r.last_global_position);
    instant(copy, r.last_event_at)?;
    instant(copy, r.updated_at)?;
    opt_text(copy, r.calendar.as_deref());
    opt_text(copy, r.sla_policy.as_deref());
    copy.text_array(r.missed_in_force.iter().map(DeadlineKind::as_str));
    opt_instant(copy, r.watch_due)?;
    Ok(())
}

/// One timeline row, as the live path's `TimelineColumns::push` makes it; `summary` writes the
/// summary's JSON text.
pub(super) fn write_timeline(
    copy: &mut BinaryCopy,
    event: &Stamp<'_>,
    appeal_id: Uuid,
    at: DateTime<Utc>,
    actors: &Actors<'_>,
    summary: impl FnOnce(&mut Vec<u8>) -> Result<(), ProjectionError>,
) -> Result<(), ProjectionError> {
    copy.row(TIMELINE_COLUMNS.len() as i16);
    copy.uuid(&appeal_id);
    copy.i64(event.sequence);
    copy.i64(event.global_position);
    copy.uuid(&event.event_id);
    copy.text(event.event_type);
    instant(copy, at)?;
    opt_text(copy, actors.actor.as_deref());
    opt_text(copy, actors.role.as_deref());
    opt_text(copy, actors.department.as_deref());
    copy.with(summary)
}

/// Sends one COPY's data on the chunk's transaction.
pub(super) async fn copy_in(
    conn: &mut PgConnection,
    statement: &'static str,
    data: Vec<u8>,
    what: &str,
) -> Result<u64, ProjectionError> {
    let mut copy = conn
        .copy_in_raw(statement)
        .await
        .map_err(|e| ProjectionError::db(format!("starting to copy {what}"), e))?;
    copy.send(data)
        .await
        .map_err(|e| ProjectionError::db(format!("sending {what}"), e))?;
    copy.finish()
        .await
        .map_err(|e| ProjectionError::db(format!("copying {what}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(statement: &str) -> Vec<String> {
        let open = statement.find('(').unwrap();
        let close = statement.find(')').unwrap();
        statement[open + 1..close]
            .split(',')
            .map(|c| c.trim().to_owned())
            .collect()
    }

    #[test]
    fn copy_statements_name_the_checked_columns_in_order() {
        let names = |cols: &[(&str, &str)]| -> Vec<String> {
            cols.iter().map(|(c, _)| (*c).to_owned()).collect()
        };
        assert_eq!(listed(COPY_LEDGER), names(LEDGER_COLUMNS));
        assert_eq!(listed(COPY_TIMELINE), names(TIMELINE_COLUMNS));
    }
}
