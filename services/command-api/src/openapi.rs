//! The command API's OpenAPI document: one [`Route`] per route of [`crate::router`], the
//! request bodies' schemas built here from the domain's value sets (channels, categories, …) and
//! the role matrix (`linkage_auth::COMMAND_ROLES`), served at `/api/v1/openapi.json` and
//! `/api/v1/docs`. This module's tests parse every documented example into the real body type
//! and check each documented field's required-ness against it; `tests/e2e/tests/openapi.rs`
//! checks the table against the router both ways.

use linkage_auth::COMMAND_ROLES;
use linkage_domain::assessment::{AssessmentPolicy, StyleDimension};
use linkage_domain::sla::SlaPolicy;
use linkage_domain::values::{
    AccountabilityKind, Category, Channel, ContactMethod, DeadlineKind, FilerKind,
    ResolutionOutcome, Satisfaction,
};
use linkage_http::openapi::{Param, Route, Success, document as build, object};
use serde_json::{Map, Value, json};
use utoipa::openapi::{OpenApi, RefOr, Schema};

/// One line of text: not blank, no control character (the domain's `ShortText`).
fn short_text() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 200,
           "pattern": "^(?=[\\s\\S]*\\S)[^\\u0000-\\u001f\\u007f-\\u009f]*$"})
}

/// Text that may have line breaks and tabs but no other control character (`LongText`).
fn long_text() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 5000,
           "pattern": "^(?=[\\s\\S]*\\S)[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"})
}

fn department() -> Value {
    json!({"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$", "example": "market-supervision"})
}

fn working_days() -> Value {
    json!({"type": "integer", "minimum": 1})
}

fn date() -> Value {
    json!({"type": "string", "format": "date"})
}

fn wire<T: AsRef<str>>(values: impl IntoIterator<Item = T>) -> Value {
    let values: Vec<String> = values.into_iter().map(|v| v.as_ref().to_owned()).collect();
    json!({"type": "string", "enum": values})
}

/// An object schema: `(name, schema, required)` per property; no other property is accepted
/// (the domain's bodies deny unknown fields).
fn obj(props: &[(&str, Value, bool)]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, schema, req) in props {
        if *req {
            properties.insert((*name).to_owned(), schema.clone());
            required.push(*name);
        } else if matches!(schema["type"].as_str(), Some("array" | "object")) {
            // Lists and nested objects default when absent; `null` is not accepted for them.
            properties.insert((*name).to_owned(), schema.clone());
        } else {
            // An optional scalar (`Option<…>`) may also be sent as `null`: "absent".
            properties.insert(
                (*name).to_owned(),
                json!({"oneOf": [schema, {"type": "null"}]}),
            );
        }
    }
    json!({"type": "object", "properties": properties, "required": required,
           "additionalProperties": false})
}

/// The schema of a struct of numbers, from its default value (every field required).
fn numbers_like(example: &Value) -> Value {
    let Value::Object(fields) = example else {
        return json!({"type": "number"});
    };
    let props: Vec<(&str, Value, bool)> = fields
        .iter()
        .map(|(name, v)| {
            let schema = match v {
                Value::Object(_) => numbers_like(v),
                Value::Number(n) if n.is_u64() => json!({"type": "integer", "minimum": 0}),
                _ => json!({"type": "number"}),
            };
            (name.as_str(), schema, true)
        })
        .collect();
    obj(&props)
}

/// One documented request body: its schema name, schema, example and (for the tests) how the
/// route parses it.
pub struct Body {
    pub name: &'static str,
    pub schema: Value,
    pub example: Value,
    /// Parses bytes as the real body type: `Err` with the problem when refused.
    pub parse: fn(&[u8]) -> Result<(), String>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").field("name", &self.name).finish()
    }
}

macro_rules! parser {
    ($ty:ty) => {
        |bytes: &[u8]| {
            linkage_http::extract::parse_json::<$ty>(bytes)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
}

/// Every command's body by the route's last segment (`file` for `POST /api/v1/appeals`).
pub fn bodies() -> Vec<(&'static str, Body)> {
    use linkage_domain::appeal::*;
    let note = || ("note", long_text(), false);
    let reason = || ("reason", long_text(), true);
    let b = |name: &'static str,
             schema: Value,
             example: Value,
             parse: fn(&[u8]) -> Result<(), String>| Body {
        name,
        schema,
        example,
        parse,
    };
    let scores: Map<String, Value> = StyleDimension::ALL
        .iter()
        .map(|d| {
            let name = serde_json::to_value(d)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            (name, json!({"type": "integer", "minimum": 1, "maximum": 5}))
        })
        .collect();
    let score_names: Vec<String> = scores.keys().cloned().collect();
    let assessment = serde_json::to_value(AssessmentPolicy::default()).unwrap_or(Value::Null);
    let sla = serde_json::to_value(SlaPolicy::default()).unwrap_or(Value::Null);
    vec![
        (
            "file",
            b(
                "FileAppeal",
                obj(&[
                    (
                        "channel",
                        wire(Channel::ALL.iter().map(|c| c.as_str())),
                        true,
                    ),
                    (
                        "filer",
                        obj(&[
                            (
                                "kind",
                                wire(FilerKind::ALL.iter().map(|c| c.as_str())),
                                true,
                            ),
                            ("name", short_text(), true),
                            ("contact_person", short_text(), false),
                            (
                                "phone",
                                json!({"type": "string", "pattern": "^(\\+[0-9]{8,15}|1[0-9]{10}|0[0-9]{9,11})$",
                                       "description": "11-digit mobile, landline with area code, or \
                                         +<country code><number> (spaces and hyphens are also accepted and dropped)"}),
                                true,
                            ),
                        ]),
                        true,
                    ),
                    (
                        "category",
                        wire(Category::ALL.iter().map(|c| c.as_str())),
                        true,
                    ),
                    ("town", short_text(), true),
                    ("description", long_text(), true),
                    ("complained_unit", short_text(), false),
                ]),
                json!({"channel": "12345",
                       "filer": {"kind": "enterprise", "name": "杭州某某精密机械有限公司",
                                 "contact_person": "王经理", "phone": "13800130000"},
                       "category": "arbitrary_inspections", "town": "经济开发区",
                       "description": "同一周内三个部门先后上门检查，影响正常生产。",
                       "complained_unit": "某街道综合执法队"}),
                parser!(FileAppeal),
            ),
        ),
        (
            "assign",
            b(
                "AssignAppeal",
                obj(&[
                    ("lead", department(), true),
                    (
                        "co_handlers",
                        json!({"type": "array", "items": department()}),
                        false,
                    ),
                ]),
                json!({"lead": "market-supervision", "co_handlers": ["tax"]}),
                parser!(AssignAppeal),
            ),
        ),
        (
            "transfer",
            b(
                "TransferAppeal",
                obj(&[
                    ("lead", department(), true),
                    (
                        "co_handlers",
                        json!({"type": "array", "items": department()}),
                        false,
                    ),
                    reason(),
                ]),
                json!({"lead": "housing", "co_handlers": [], "reason": "属住建部门职责"}),
                parser!(TransferAppeal),
            ),
        ),
        (
            "decline",
            b(
                "DeclineAppeal",
                obj(&[reason()]),
                json!({"reason": "不属于本部门职责"}),
                parser!(DeclineAppeal),
            ),
        ),
        (
            "contact",
            b(
                "RecordContact",
                obj(&[
                    (
                        "method",
                        wire(ContactMethod::ALL.iter().map(|c| c.as_str())),
                        true,
                    ),
                    note(),
                ]),
                json!({"method": "phone", "note": "已电话联系"}),
                parser!(RecordContact),
            ),
        ),
        (
            "feedback",
            b(
                "GiveInitialFeedback",
                obj(&[("text", long_text(), true)]),
                json!({"text": "已约定周三上门核实"}),
                parser!(GiveInitialFeedback),
            ),
        ),
        (
            "resolve",
            b(
                "ResolveAppeal",
                obj(&[
                    (
                        "outcome",
                        wire(ResolutionOutcome::ALL.iter().map(|c| c.as_str())),
                        true,
                    ),
                    ("text", long_text(), true),
                ]),
                json!({"outcome": "resolved", "text": "已协调解决"}),
                parser!(ResolveAppeal),
            ),
        ),
        (
            "request-extension",
            b(
                "RequestExtension",
                obj(&[("working_days", working_days(), true), reason()]),
                json!({"working_days": 5, "reason": "需第三方检测"}),
                parser!(RequestExtension),
            ),
        ),
        (
            "approve-extension",
            b(
                "ApproveExtension",
                obj(&[note()]),
                json!({"note": "同意"}),
                parser!(ApproveExtension),
            ),
        ),
        (
            "reject-extension",
            b(
                "RejectExtension",
                obj(&[reason()]),
                json!({"reason": "理由不充分"}),
                parser!(RejectExtension),
            ),
        ),
        (
            "rework",
            b(
                "ReturnForRework",
                obj(&[reason()]),
                json!({"reason": "答复敷衍"}),
                parser!(ReturnForRework),
            ),
        ),
        (
            "return-visit",
            b(
                "RecordReturnVisit",
                obj(&[
                    ("reached", json!({"type": "boolean"}), true),
                    (
                        "solved",
                        json!({"type": "boolean", "description": "required when reached, absent when not"}),
                        false,
                    ),
                    (
                        "satisfaction",
                        wire(Satisfaction::ALL.iter().map(|c| c.as_str())),
                        false,
                    ),
                    ("comment", long_text(), false),
                ]),
                json!({"reached": true, "solved": true, "satisfaction": "satisfied", "comment": "满意"}),
                parser!(RecordReturnVisit),
            ),
        ),
        (
            "close",
            b(
                "CloseAppeal",
                obj(&[note()]),
                json!({"note": "已回访满意"}),
                parser!(CloseAppeal),
            ),
        ),
        (
            "withdraw",
            b(
                "WithdrawAppeal",
                obj(&[reason()]),
                json!({"reason": "诉求人来电撤回"}),
                parser!(WithdrawAppeal),
            ),
        ),
        (
            "mark-duplicate",
            b(
                "MarkDuplicate",
                obj(&[(
                    "original",
                    json!({"type": "string", "format": "uuid"}),
                    true,
                )]),
                json!({"original": "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}),
                parser!(MarkDuplicate),
            ),
        ),
        (
            "supervise",
            b(
                "SuperviseAppeal",
                obj(&[
                    ("note", long_text(), true),
                    ("working_days", working_days(), false),
                ]),
                json!({"note": "请加快办理", "working_days": 3}),
                parser!(SuperviseAppeal),
            ),
        ),
        (
            "accountability",
            b(
                "RecordAccountability",
                obj(&[
                    ("department", department(), true),
                    (
                        "kind",
                        wire(AccountabilityKind::ALL.iter().map(|c| c.as_str())),
                        true,
                    ),
                    ("note", long_text(), true),
                ]),
                json!({"department": "market-supervision", "kind": "delay", "note": "超时未联系"}),
                parser!(RecordAccountability),
            ),
        ),
        (
            "deadline-missed",
            b(
                "RecordDeadlineMissed",
                obj(&[(
                    "which",
                    wire(DeadlineKind::ALL.iter().map(|c| c.as_str())),
                    true,
                )]),
                json!({"which": "contact"}),
                parser!(RecordDeadlineMissed),
            ),
        ),
        (
            "recompute-deadlines",
            b(
                "RecomputeDeadlines",
                obj(&[note()]),
                json!({"note": "国务院办公厅通知调整"}),
                parser!(RecomputeDeadlines),
            ),
        ),
        (
            "publish-calendar-year",
            b(
                "PublishCalendarYear",
                obj(&[
                    ("year", json!({"type": "integer"}), true),
                    ("holidays", json!({"type": "array", "items": date()}), true),
                    (
                        "working_weekends",
                        json!({"type": "array", "items": date()}),
                        false,
                    ),
                    ("source", short_text(), true),
                ]),
                json!({"year": 2027, "holidays": ["2027-01-01"], "working_weekends": ["2027-02-07"],
                       "source": "国办发明电〔2026〕1号"}),
                parser!(linkage_domain::rules::PublishCalendarYear),
            ),
        ),
        (
            "correct-calendar-date",
            b(
                "CorrectCalendarDate",
                obj(&[
                    ("date", date(), true),
                    ("working", json!({"type": "boolean"}), true),
                    reason(),
                ]),
                json!({"date": "2026-12-31", "working": false, "reason": "临时调整"}),
                parser!(linkage_domain::rules::CorrectCalendarDate),
            ),
        ),
        (
            "set-sla-policy",
            b(
                "SetSlaPolicy",
                obj(&[
                    (
                        "scope",
                        obj(&[
                            (
                                "channel",
                                wire(Channel::ALL.iter().map(|c| c.as_str())),
                                false,
                            ),
                            (
                                "category",
                                wire(Category::ALL.iter().map(|c| c.as_str())),
                                false,
                            ),
                        ]),
                        false,
                    ),
                    ("policy", numbers_like(&sla), true),
                    reason(),
                ]),
                json!({"scope": {"channel": "110", "category": "public_security"}, "policy": sla,
                       "reason": "110 联动时限"}),
                parser!(linkage_domain::rules::SetSlaPolicy),
            ),
        ),
        (
            "style-evaluation",
            b(
                "SubmitStyleEvaluation",
                obj(&[
                    (
                        "quarter",
                        json!({"type": "string", "pattern": "^\\d{4}-Q[1-4]$", "example": "2026-Q4"}),
                        true,
                    ),
                    ("department", department(), true),
                    (
                        "scores",
                        json!({"type": "object", "properties": scores, "required": score_names,
                               "additionalProperties": false}),
                        true,
                    ),
                    ("comment", long_text(), false),
                ]),
                json!({"quarter": "2026-Q4", "department": "market-supervision",
                       "scores": {"service_attitude": 5, "efficiency": 4, "lawful_administration": 4,
                                  "integrity": 5, "promise_keeping": 3},
                       "comment": "办事效率有提升"}),
                parser!(linkage_domain::assessment::SubmitStyleEvaluation),
            ),
        ),
        (
            "set-assessment-policy",
            b(
                "SetAssessmentPolicy",
                obj(&[("policy", numbers_like(&assessment), true), reason()]),
                json!({"policy": assessment, "reason": "考核委员会决定"}),
                parser!(linkage_domain::assessment::policy::SetAssessmentPolicy),
            ),
        ),
    ]
}

/// The roles that may send `command`, from the role matrix.
fn roles(command: &str) -> String {
    let roles: Vec<&str> = COMMAND_ROLES
        .iter()
        .filter(|(name, _)| *name == command)
        .flat_map(|(_, roles)| roles.iter().map(|r| r.as_str()))
        .collect();
    format!("Roles: {}.", roles.join(", "))
}

/// What a command answers.
fn command_answer(status: u16) -> Success {
    Success::json(
        status,
        "`{appeal_id, tracking_number, status, events: [{event_id, event_type, sequence, \
         global_position, tx_id, recorded_at}]}`; a replay of an `Idempotency-Key` answers the \
         first answer again with `Idempotent-Replayed: true`",
        json!({"type": "object", "required": ["appeal_id", "tracking_number", "status", "events"],
               "properties": {
                   "appeal_id": {"type": "string", "format": "uuid"},
                   "tracking_number": {"type": "string", "example": "LK-2026-000001"},
                   "status": {"type": "string"},
                   "events": {"type": "array", "items": {"type": "object"}}}}),
    )
}

/// Problems of a command on an existing appeal: every one a command can meet.
const COMMAND: &[u16] = &[400, 401, 403, 404, 409, 413, 415, 422, 429, 503];
/// Problems of a command that creates its stream (no appeal to miss).
const CREATE: &[u16] = &[400, 401, 403, 409, 413, 415, 422, 429, 503];
/// Problems of the rules reads.
const READ: &[u16] = &[401, 422, 429, 503];

fn idempotency_note(summary: &str) -> String {
    format!(
        "{summary} Send `Idempotency-Key: <1–255 printable ASCII>` to make a retry safe: the same key \
         and body answer the first answer again; the same key with another body is 422."
    )
}

/// Every route of the command API, documented.
pub fn routes() -> Vec<Route> {
    let bodies = bodies();
    let body = |command: &str| {
        bodies
            .iter()
            .find(|(name, _)| *name == command)
            .map(|(_, b)| (b.name.to_owned(), b.example.clone()))
            .unwrap_or_else(|| panic!("no documented body for {command}"))
    };
    let post = |path: &'static str,
                tag: &'static str,
                command: &str,
                summary: &str,
                success: Success,
                problems: &[u16]| Route {
        method: "POST",
        path,
        tag,
        summary: summary.to_owned(),
        description: idempotency_note(&roles(command)),
        params: if path.contains("{id}") {
            vec![Param::path("id", "The appeal id (UUID)")]
        } else {
            Vec::new()
        },
        body: Some(body(command)),
        success,
        problems: problems.to_vec(),
        secured: true,
    };
    let mut routes = vec![post(
        "/api/v1/appeals",
        "appeals",
        "file",
        "File an appeal (受理登记); 201 with its id and tracking number",
        command_answer(201),
        CREATE,
    )];
    // The command routes, in `routes::COMMANDS` order (the router's own list).
    for (command, summary) in crate::routes::COMMANDS {
        let path: &'static str = format!("/api/v1/appeals/{{id}}/{command}").leak();
        routes.push(post(
            path,
            "appeals",
            command,
            summary,
            command_answer(200),
            COMMAND,
        ));
    }
    routes.extend([
        Route {
            method: "GET",
            path: "/api/v1/calendar",
            tag: "rules",
            summary:
                "The working-day calendar in force: its version, covered years and, for a year, \
                      its holidays and working weekends"
                    .to_owned(),
            description: "Every signed-in role. 404 when the year is not published.".to_owned(),
            params: vec![Param::query(
                "year",
                "A year to list",
                json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX}),
            )],
            body: None,
            success: Success::json(200, "`{rules_version, calendar, years, year?}`", object()),
            problems: vec![401, 404, 422, 429, 503],
            secured: true,
        },
        post(
            "/api/v1/calendar/years",
            "rules",
            "publish-calendar-year",
            "Publish a year's official calendar (holidays and working weekends)",
            Success::json(201, "The rules stream's new events", object()),
            CREATE,
        ),
        post(
            "/api/v1/calendar/corrections",
            "rules",
            "correct-calendar-date",
            "Correct one date of a published year",
            Success::json(201, "The rules stream's new events", object()),
            CREATE,
        ),
        Route {
            method: "GET",
            path: "/api/v1/sla-policies",
            tag: "rules",
            summary: "The SLA policies in force (and the built-in default)".to_owned(),
            description: "Every signed-in role.".to_owned(),
            params: Vec::new(),
            body: None,
            success: Success::json(
                200,
                "`{rules_version, built_in_default, policies}`",
                object(),
            ),
            problems: READ.to_vec(),
            secured: true,
        },
        post(
            "/api/v1/sla-policies",
            "rules",
            "set-sla-policy",
            "Set the SLA policy of a scope (channel and/or category)",
            Success::json(201, "The rules stream's new events", object()),
            CREATE,
        ),
        post(
            "/api/v1/style-evaluations",
            "assessment",
            "style-evaluation",
            "Score a department's style (作风评议) for a quarter; again = replace",
            Success::json(
                201,
                "The evaluation's stream, revision and events",
                object(),
            ),
            CREATE,
        ),
        post(
            "/api/v1/assessment-policy",
            "assessment",
            "set-assessment-policy",
            "Set the assessment policy (weights, penalties, target, w, best/worst sizes)",
            Success::json(201, "The policy's version and events", object()),
            CREATE,
        ),
    ]);
    routes.push(Route {
        method: "GET",
        path: "/metrics",
        tag: "health",
        summary: "Prometheus metrics: the relay's lag".to_owned(),
        description: "No token needed.".to_owned(),
        params: Vec::new(),
        body: None,
        success: Success {
            status: 200,
            description: "Prometheus text format".to_owned(),
            content: vec![("text/plain; version=0.0.4", json!({"type": "string"}))],
        },
        problems: Vec::new(),
        secured: false,
    });
    routes.extend(linkage_http::openapi::public_routes(
        "Ready: Postgres and NATS reachable, with the relay's lag (503 with the same body when not)",
        "`{ready, checks, relay_lag}`",
    ));
    routes
}

fn schema(v: &Value) -> RefOr<Schema> {
    serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("a body schema is not a schema ({e}): {v}"))
}

/// The command API's document.
pub fn document() -> OpenApi {
    let schemas = bodies()
        .into_iter()
        .map(|(_, b)| (b.name.to_owned(), schema(&b.schema)))
        .collect();
    build(
        "Linkage command API",
        "Appeals (诉求) and their handling, the SLA rules and the assessment inputs, as commands \
         recorded as events. Errors are application/problem+json (RFC 9457).",
        &[
            ("appeals", "Filing and handling appeals"),
            ("rules", "The working-day calendar and SLA policies"),
            ("assessment", "Style evaluations and the assessment policy"),
            ("health", "Liveness, readiness and metrics"),
            ("docs", "This document"),
        ],
        &routes(),
        schemas,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example with one property removed or one added.
    fn without(example: &Value, name: &str) -> Vec<u8> {
        let mut v = example.clone();
        v.as_object_mut().expect("object").remove(name);
        serde_json::to_vec(&v).expect("json")
    }

    #[test]
    fn every_documented_body_is_what_the_route_parses() {
        for (command, body) in bodies() {
            let example = serde_json::to_vec(&body.example).expect("json");
            (body.parse)(&example).unwrap_or_else(|e| panic!("{command}: the example: {e}"));
            let props = body.schema["properties"].as_object().expect("properties");
            let required: Vec<&str> = body.schema["required"]
                .as_array()
                .expect("required")
                .iter()
                .map(|v| v.as_str().expect("name"))
                .collect();
            for name in props.keys() {
                // The example shows every documented field, so each one is a real field…
                assert!(
                    body.example.get(name).is_some(),
                    "{command}: the example lacks {name}"
                );
                // …and its required-ness is the real one.
                let parsed = (body.parse)(&without(&body.example, name));
                if required.contains(&name.as_str()) {
                    assert!(
                        parsed.is_err(),
                        "{command}: {name} is documented as required"
                    );
                } else {
                    assert!(
                        parsed.is_ok(),
                        "{command}: {name} is documented as optional: {parsed:?}"
                    );
                    // …and may be null exactly when its schema says so.
                    let mut null = body.example.clone();
                    null[name.as_str()] = Value::Null;
                    let parsed = (body.parse)(&serde_json::to_vec(&null).expect("json"));
                    let nullable = props[name]["oneOf"].is_array();
                    assert_eq!(
                        parsed.is_ok(),
                        nullable,
                        "{command}: {name}: null: {parsed:?}"
                    );
                }
            }
            // Unknown fields are refused, as `additionalProperties: false` says.
            let mut extra = body.example.clone();
            extra["not_a_field"] = json!(1);
            assert!(
                (body.parse)(&serde_json::to_vec(&extra).expect("json")).is_err(),
                "{command}: an unknown field"
            );
        }
    }

    #[test]
    fn every_command_of_the_role_matrix_is_documented() {
        let documented: Vec<&str> = bodies().iter().map(|(c, _)| *c).collect();
        for (command, _) in COMMAND_ROLES {
            assert!(documented.contains(command), "{command} has no body");
        }
        let doc = document();
        let json: Value = serde_json::from_str(&doc.to_json().expect("json")).expect("parses");
        let operations: usize = json["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|item| item.as_object().expect("path item").len())
            .sum();
        assert_eq!(operations, routes().len(), "one operation per route");
        assert!(json["paths"]["/api/v1/sla-policies"]["get"].is_object());
        assert!(json["paths"]["/api/v1/sla-policies"]["post"].is_object());
    }
}
