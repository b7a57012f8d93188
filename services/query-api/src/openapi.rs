//! The query API's OpenAPI document: one [`Route`] per route of [`crate::router`], with the
//! query parameters taken from the lists the handlers parse with (so a parameter a handler
//! accepts cannot be missing here), served at `/api/v1/openapi.json` and `/api/v1/docs`.
//! `tests/e2e/tests/openapi.rs` checks the table against the router both ways.

use linkage_domain::values::{Category, Channel};
use linkage_http::openapi::{Param, Route, Success, document as build, object, one_of};
use serde_json::{Value, json};
use utoipa::openapi::OpenApi;

use crate::{alerts, audit, complaints, freshness, ledger, rankings, rates, style};

/// Who may read appeals (the ledger, details, alerts).
const APPEAL_READERS: &str = "Roles: analyst, auditor, supervisor, dispatcher, evaluator (district-wide) \
     and handler (own department only). Phones are masked except for dispatchers, evaluators and \
     supervisors.";
/// Who may read metrics.
const METRIC_READERS: &str = "Roles: every staff role (not enterprise).";

fn string() -> Value {
    json!({"type": "string"})
}

fn text_1_200() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"})
}

fn department() -> Value {
    json!({"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$", "example": "market-supervision"})
}

fn instant() -> Value {
    json!({"type": "string", "description": "RFC 3339 instant or YYYY-MM-DD (Beijing day)",
           "example": "2026-11-01"})
}

fn integer(min: i64, max: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

fn wire<T: AsRef<str>>(values: impl IntoIterator<Item = T>) -> Value {
    let values: Vec<String> = values.into_iter().map(|v| v.as_ref().to_owned()).collect();
    json!({"type": "string", "enum": values})
}

/// The description and schema of each query parameter name the handlers parse. A name without
/// one here panics (caught by this crate's tests the moment a handler gains a parameter).
fn query_param(route: &str, name: &'static str) -> Param {
    let (description, schema): (&str, Value) = match (route, name) {
        (_, "department") => (
            "Lead department or co-handler; a handler may only give its own (the default)",
            department(),
        ),
        (_, "channel") => ("诉求渠道", wire(Channel::ALL.iter().map(|c| c.as_str()))),
        (_, "category") => ("诉求类别", wire(Category::ALL.iter().map(|c| c.as_str()))),
        (_, "status") => ("办理状态", wire(ledger::status_names())),
        (_, "town") => ("镇街 / 园区, exactly (1–200 characters)", text_1_200()),
        (_, "filed_from") => ("Filed at or after (inclusive)", instant()),
        (_, "filed_to") => ("Filed before (a date: the whole day)", instant()),
        (_, "resolved_from") => ("Resolved at or after (inclusive)", instant()),
        (_, "resolved_to") => ("Resolved before (a date: the whole day)", instant()),
        (_, "overdue") => (
            "Only appeals past (true) or not past (false) a deadline in force",
            json!({"type": "boolean"}),
        ),
        ("/api/v1/ledger", "limit") => ("Page size (default 50)", integer(1, ledger::MAX_LIMIT)),
        ("/api/v1/ledger/export", "limit") => (
            "At most this many rows (default: every matching row)",
            integer(1, ledger::MAX_EXPORT_LIMIT),
        ),
        (_, "cursor") => (
            "`next_cursor` of the previous page (with the same sort)",
            string(),
        ),
        (_, "sort") => ("Order (default -filed_at)", wire(ledger::sort_names())),
        (_, "format") => ("File format (default csv)", one_of(&["csv", "xlsx"])),
        (_, "lang") => (
            "Column header language (default: Accept-Language, else zh-CN)",
            one_of(&["zh-CN", "zh", "en"]),
        ),
        (_, "month") => (
            "Month (YYYY-MM, Beijing time, years 2000-2100); required",
            json!({"type": "string", "pattern": "^(20\\d\\d|2100)-(0[1-9]|1[0-2])$", "example": "2026-11"}),
        ),
        (_, "by") => (
            "Group by (default department)",
            one_of(&["department", "channel", "town"]),
        ),
        (_, "period") => (
            "Period: YYYY-MM, YYYY-Qn or YYYY (Beijing time); required",
            json!({"type": "string", "pattern": "^(20\\d\\d|2100)(-(0[1-9]|1[0-2])|-Q[1-4])?$",
                   "example": "2026-Q4"}),
        ),
        (_, "policy") => (
            "Rank with the policy in force at the period's end (default) or the current one",
            one_of(&["in_force", "current"]),
        ),
        (_, "unit") => (
            "One complained-about unit (被投诉单位); adds its appeals",
            text_1_200(),
        ),
        (_, "quarter") => (
            "Quarter (YYYY-Qn); required",
            json!({"type": "string", "pattern": "^(20\\d\\d|2100)-Q[1-4]$", "example": "2026-Q4"}),
        ),
        (_, "light") => (
            "Only red or only yellow (default both)",
            one_of(&["red", "yellow"]),
        ),
        ("/api/v1/alerts", "limit") => (
            "At most this many deadlines (default 100)",
            integer(1, alerts::MAX_LIMIT),
        ),
        (_, "min_position") => (
            "Wait (up to 5 s) until the ledger has applied this global position (read your writes)",
            integer(0, i64::MAX),
        ),
        (_, "after") => (
            "Events after this global position (default 0)",
            integer(0, i64::MAX),
        ),
        ("/api/v1/audit/events", "limit") => {
            ("Page size (default 100)", integer(1, audit::MAX_LIMIT))
        }
        (_, "as_of") => (
            "The appeal as it stood at this instant (RFC 3339, or a date: its end in Beijing time); default now",
            instant(),
        ),
        (route, name) => panic!("the query parameter {name} of {route} is not documented"),
    };
    let param = Param::query(name, description, schema);
    let required = matches!(name, "month" | "period" | "quarter");
    if required { param.required() } else { param }
}

fn get(
    path: &'static str,
    tag: &'static str,
    summary: &str,
    description: &str,
    params: &[&'static str],
    success: Success,
    problems: &[u16],
) -> Route {
    let mut all: Vec<Param> = Vec::new();
    if path.contains("{id}") {
        all.push(Param::path(
            "id",
            "The appeal id (UUID) or its tracking number (LK-YYYY-NNNNNN)",
        ));
    }
    all.extend(params.iter().map(|name| query_param(path, name)));
    Route {
        method: "GET",
        path,
        tag,
        summary: summary.to_owned(),
        description: description.to_owned(),
        params: all,
        body: None,
        success,
        problems: problems.to_vec(),
        secured: true,
    }
}

fn with_export(params: &[&'static str]) -> Vec<&'static str> {
    crate::export::params_with_export(params)
}

fn file(what: &str) -> Success {
    Success {
        status: 200,
        description: format!(
            "{what}, as an attachment (`Content-Disposition: attachment; filename=\"<name>-<date>.<csv|xlsx>\"`); \
             column headers in Chinese or English (docs/api.md)"
        ),
        content: vec![
            (
                "text/csv; charset=utf-8",
                json!({"type": "string", "description": "RFC 4180, UTF-8 with a BOM"}),
            ),
            (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                json!({"type": "string", "format": "binary"}),
            ),
        ],
    }
}

/// The problems every authenticated read can answer: unreadable query (400), token (401),
/// role (403), bad parameter (422), database down (503).
const READ: &[u16] = &[400, 401, 403, 422, 503];
/// … and a missing appeal.
const READ_ONE: &[u16] = &[400, 401, 403, 404, 422, 503];

/// Every route of the query API, documented.
pub fn routes() -> Vec<Route> {
    let ok = |d: &str| Success::json(200, d, object());
    let mut routes = vec![
        get(
            "/api/v1/ledger",
            "ledger",
            "The ledger (台账): appeals filtered, sorted and keyset-paginated",
            APPEAL_READERS,
            ledger::LIST_PARAMS,
            ok("`{items, next_cursor, freshness}`"),
            READ,
        ),
        get(
            "/api/v1/ledger/export",
            "exports",
            "The ledger as CSV or XLSX (the ledger's filters, scope and masking)",
            APPEAL_READERS,
            &with_export(ledger::LIST_PARAMS),
            file("The ledger's rows, streamed"),
            READ,
        ),
        get(
            "/api/v1/appeals/{id}",
            "ledger",
            "One appeal with its timeline",
            APPEAL_READERS,
            ledger::DETAIL_PARAMS,
            ok("`{appeal, timeline, stale, freshness}`"),
            READ_ONE,
        ),
        get(
            "/api/v1/rates",
            "metrics",
            "The month's response, on-time completion, resolution and satisfaction rates (四率)",
            METRIC_READERS,
            rates::PARAMS,
            ok("`{month, by, policy_version, target_percent, district, groups, freshness}`"),
            READ,
        ),
        get(
            "/api/v1/rates/export",
            "exports",
            "The rates as CSV or XLSX: the district line, then one line per group",
            METRIC_READERS,
            &with_export(rates::PARAMS),
            file("The rates"),
            READ,
        ),
        get(
            "/api/v1/rankings",
            "metrics",
            "The assessment ranking (考核排名) of a period: scores, one-vote veto, best and worst lists",
            METRIC_READERS,
            rankings::PARAMS,
            ok("`{period, policy, policy_version, weights, departments, best, worst, freshness}`"),
            READ,
        ),
        get(
            "/api/v1/rankings/export",
            "exports",
            "The ranking as CSV or XLSX, one line per department in rank order",
            METRIC_READERS,
            &with_export(rankings::PARAMS),
            file("The ranking"),
            READ,
        ),
        get(
            "/api/v1/assessment-policies",
            "metrics",
            "Every assessment policy version",
            METRIC_READERS,
            rankings::POLICIES_PARAMS,
            ok("`{default, versions, freshness}`"),
            READ,
        ),
        get(
            "/api/v1/style-evaluations",
            "metrics",
            "Style evaluations (作风评议) of a quarter per department",
            METRIC_READERS,
            style::PARAMS,
            ok("`{quarter, departments, freshness}`"),
            READ,
        ),
        get(
            "/api/v1/complaint-notices",
            "metrics",
            "Complaint notices (投诉通报): complaints per complained-about unit and category",
            METRIC_READERS,
            complaints::PARAMS,
            ok("`{period, notices, freshness}`"),
            READ,
        ),
        get(
            "/api/v1/complaint-notices/export",
            "exports",
            "The complaint notices as CSV or XLSX, one line per unit and category",
            METRIC_READERS,
            &with_export(complaints::PARAMS),
            file("The complaint notices"),
            READ,
        ),
        get(
            "/api/v1/alerts",
            "ledger",
            "Red and yellow deadlines (红绿灯), soonest first, with the count per light",
            APPEAL_READERS,
            alerts::PARAMS,
            ok("`{as_of, lights, thresholds, items, truncated, freshness}`"),
            READ,
        ),
        get(
            "/api/v1/freshness",
            "ledger",
            "How fresh each read model is: the last event applied and when",
            METRIC_READERS,
            freshness::PARAMS,
            Success::json(
                200,
                "One entry per view",
                json!({"type": "object", "properties": {"views": {"type": "array", "items": {
                    "type": "object", "required": ["view", "position", "updated_at"],
                    "properties": {
                        "view": {"type": "string", "enum": freshness::VIEWS},
                        "position": {"type": ["integer", "null"], "description": "global position of the last event applied"},
                        "updated_at": {"type": ["string", "null"], "format": "date-time"}}}}}}),
            ),
            READ,
        ),
        get(
            "/api/v1/audit/events",
            "audit",
            "Every event in the global order, page by page, as envelopes (from the event store)",
            "Role: auditor.",
            audit::EVENTS_PARAMS,
            ok("`{events, next_after}`"),
            READ,
        ),
        get(
            "/api/v1/audit/appeals/{id}",
            "audit",
            "An appeal as it stood at an instant, folded from its events, with its chain check",
            "Role: auditor.",
            audit::APPEAL_PARAMS,
            ok("The appeal's state, timeline and chain check"),
            READ_ONE,
        ),
    ];
    routes.extend(linkage_http::openapi::public_routes(
        "Ready: Postgres reachable (503 with the same body when not)",
        "`{ready, checks}`",
    ));
    routes
}

/// The query API's document.
pub fn document() -> OpenApi {
    build(
        "Linkage query API",
        "Read models of the appeals system: the ledger (台账), metrics, exports, alerts, \
         freshness and the auditor's reads. Errors are application/problem+json (RFC 9457).",
        &[
            ("ledger", "Appeals, deadlines and read-model freshness"),
            (
                "metrics",
                "Rates, rankings, style evaluations and complaint notices",
            ),
            (
                "exports",
                "CSV / XLSX downloads with the JSON routes' parameters",
            ),
            ("audit", "The auditor's reads from the event store"),
            ("health", "Liveness and readiness"),
            ("docs", "This document"),
        ],
        &routes(),
        Vec::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_parameter_is_described() {
        // `query_param` panics on a parameter without a description.
        let doc = document();
        let json: Value = serde_json::from_str(&doc.to_json().expect("json")).expect("parses");
        let paths = json["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), routes().len(), "one path per route");
        let ledger = &json["paths"]["/api/v1/ledger/export"]["get"];
        let names: Vec<&str> = ledger["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| p["name"].as_str().expect("name"))
            .collect();
        assert!(names.contains(&"format") && names.contains(&"lang") && names.contains(&"sort"));
        assert_eq!(
            ledger["responses"]["422"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        assert_eq!(
            json["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
