//! The OpenAPI documents of Linkage's HTTP APIs (utoipa), built from each service's route table
//! ([`Route`]), and the two routes that serve them: `GET /api/v1/openapi.json` and the browsable
//! `GET /api/v1/docs` (a self-contained page, `docs.html`, that renders the document with no
//! script, style or font from anywhere else). Both are public: the API's shape is no secret,
//! its data is.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema,
};

pub use utoipa::ToSchema;

/// Where every service serves its document and its docs page.
pub const SPEC_PATH: &str = "/api/v1/openapi.json";
pub const DOCS_PATH: &str = "/api/v1/docs";

/// The security scheme's name in the documents.
pub const BEARER: &str = "bearer";

/// A problem response's body (RFC 9457), as `ApiError` answers it.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Problem {
    /// `/problems/<slug>`, e.g. `/problems/invalid-field`.
    #[serde(rename = "type")]
    #[schema(example = "/problems/invalid-field")]
    pub problem_type: String,
    #[schema(example = "Invalid field")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "limit: must be an integer from 1 to 500")]
    pub detail: String,
    /// The request field (body path, query parameter or header) the problem is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "limit")]
    pub field: Option<String>,
}

/// What each problem status means, and its problem types (README's table).
pub fn problem_description(status: u16) -> &'static str {
    match status {
        400 => {
            "`/problems/malformed-request`: the body is not JSON, or the query string cannot be read"
        }
        401 => "`/problems/unauthenticated`: no, malformed, expired or wrongly signed bearer token",
        403 => "`/problems/forbidden`: the role (or the handler's department) may not do this",
        404 => "`/problems/not-found`: no such appeal (or route)",
        405 => "`/problems/method-not-allowed`",
        409 => {
            "`/problems/illegal-transition` (not allowed in the current state), \
             `/problems/concurrent-modification`, `/problems/idempotency-key-in-use`, \
             `/problems/rules-conflict` or `/problems/policy-unchanged`"
        }
        413 => "`/problems/payload-too-large`: the body is over the limit",
        415 => "`/problems/unsupported-media-type`: a body that is not application/json",
        422 => {
            "`/problems/invalid-field`: a field or parameter is missing, unknown or invalid; `field` names it"
        }
        429 => {
            "`/problems/rate-limited`: over the per-client rate limit; retry after `Retry-After` seconds"
        }
        503 => {
            "`/problems/unavailable`: the database is unreachable or the request timed out; retry after `Retry-After` seconds"
        }
        _ => "a problem",
    }
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
}

/// A path or query parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: &'static str,
    pub location: In,
    pub required: bool,
    pub description: String,
    pub schema: Value,
}

impl Param {
    fn new(
        name: &'static str,
        location: In,
        description: impl Into<String>,
        schema: Value,
    ) -> Self {
        Self {
            name,
            location,
            required: location == In::Path,
            description: description.into(),
            schema,
        }
    }

    pub fn path(name: &'static str, description: impl Into<String>) -> Self {
        Self::new(
            name,
            In::Path,
            description,
            serde_json::json!({"type": "string"}),
        )
    }

    /// A query parameter with a JSON Schema (`{"type": "string"}`, an `enum`, …).
    pub fn query(name: &'static str, description: impl Into<String>, schema: Value) -> Self {
        Self::new(name, In::Query, description, schema)
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// The success answer of a route.
#[derive(Debug, Clone)]
pub struct Success {
    pub status: u16,
    pub description: String,
    /// Content type → schema (JSON Schema or a `$ref`).
    pub content: Vec<(&'static str, Value)>,
}

impl Success {
    pub fn json(status: u16, description: impl Into<String>, schema: Value) -> Self {
        Self {
            status,
            description: description.into(),
            content: vec![("application/json", schema)],
        }
    }
}

/// One documented route: everything the document says about it.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: String,
    pub description: String,
    pub params: Vec<Param>,
    /// The request body's schema name (in the components) and an example.
    pub body: Option<(String, Value)>,
    pub success: Success,
    /// The problem statuses this route really answers.
    pub problems: Vec<u16>,
    /// Needs the bearer token.
    pub secured: bool,
}

fn method(m: &str) -> HttpMethod {
    match m {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        other => panic!("undocumentable method {other}"),
    }
}

fn schema(v: &Value) -> RefOr<Schema> {
    // A JSON Schema written in the route table; utoipa's own types check it is one.
    serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("a route table schema is not a schema ({e}): {v}"))
}

fn problem_ref() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("Problem"))
}

/// The OpenAPI document of one API: its routes, the problem schema, the bearer scheme and the
/// given component schemas (request bodies).
pub fn document(
    title: &str,
    description: &str,
    tags: &[(&str, &str)],
    routes: &[Route],
    schemas: Vec<(String, RefOr<Schema>)>,
) -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut items: Vec<(&str, PathItem)> = Vec::new();
    for r in routes {
        let mut op = OperationBuilder::new()
            .tag(r.tag)
            .summary(Some(r.summary.clone()))
            .description(Some(r.description.clone()))
            .operation_id(Some(format!(
                "{}{}",
                r.method.to_ascii_lowercase(),
                r.path
                    .replace("/api/v1", "")
                    .replace(['/', '-', '{', '}', '.'], "_")
            )));
        for p in &r.params {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(p.name)
                    .parameter_in(match p.location {
                        In::Path => ParameterIn::Path,
                        In::Query => ParameterIn::Query,
                    })
                    .required(if p.required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .description(Some(p.description.clone()))
                    .schema(Some(schema(&p.schema))),
            );
        }
        if let Some((name, example)) = &r.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(RefOr::Ref(Ref::from_schema_name(name.clone()))))
                            .example(Some(example.clone()))
                            .build(),
                    )
                    .build(),
            ));
        }
        let mut ok = ResponseBuilder::new().description(r.success.description.clone());
        for (content_type, s) in &r.success.content {
            ok = ok.content(
                *content_type,
                ContentBuilder::new().schema(Some(schema(s))).build(),
            );
        }
        op = op.response(r.success.status.to_string(), ok.build());
        for status in &r.problems {
            op = op.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(problem_description(*status))
                    .content(
                        "application/problem+json",
                        ContentBuilder::new().schema(Some(problem_ref())).build(),
                    )
                    .build(),
            );
        }
        if r.secured {
            op = op.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
        }
        let item = PathItem::new(method(r.method), op.build());
        match items.iter_mut().find(|(path, _)| *path == r.path) {
            // Another method of a path already documented (e.g. GET and POST).
            Some((_, existing)) => existing.merge_operations(item),
            None => items.push((r.path, item)),
        }
    }
    for (path, item) in items {
        paths = paths.path(path, item);
    }
    let mut components = ComponentsBuilder::new()
        .schema_from::<Problem>()
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT with the claims `sub`, `role` and (for handlers) `dept`",
                    ))
                    .build(),
            ),
        );
    for (name, s) in schemas {
        components = components.schema(name, s);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(title)
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(description))
                .build(),
        )
        .tags(Some(tags.iter().map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        })))
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

/// The schema of a string parameter with a closed set of values.
pub fn one_of(values: &[&str]) -> Value {
    serde_json::json!({"type": "string", "enum": values})
}

/// A plain JSON object answer (its fields are described in the route's description).
pub fn object() -> Value {
    serde_json::json!({"type": "object"})
}

/// The routes every API serves without a token: health, and this document and its docs page.
/// `readyz` says what readiness checks and what its body holds.
pub fn public_routes(readyz_summary: &str, readyz_body: &str) -> Vec<Route> {
    let public = |path: &'static str, tag: &'static str, summary: &str, success: Success| Route {
        method: "GET",
        path,
        tag,
        summary: summary.to_owned(),
        description: "No token needed.".to_owned(),
        params: Vec::new(),
        body: None,
        success,
        problems: Vec::new(),
        secured: false,
    };
    vec![
        public(
            "/healthz",
            "health",
            "The process answers",
            Success::json(200, "`{\"status\": \"ok\"}`", object()),
        ),
        public(
            "/readyz",
            "health",
            readyz_summary,
            Success::json(200, readyz_body, object()),
        ),
        public(
            SPEC_PATH,
            "docs",
            "This OpenAPI document",
            Success::json(200, "The document", object()),
        ),
        public(
            DOCS_PATH,
            "docs",
            "The browsable docs page (self-contained HTML)",
            Success {
                status: 200,
                description: "HTML".to_owned(),
                content: vec![(
                    "text/html; charset=utf-8",
                    serde_json::json!({"type": "string"}),
                )],
            },
        ),
    ]
}

/// The docs page: one HTML file with its script and style inline.
const DOCS_HTML: &str = include_str!("docs.html");

/// `GET /api/v1/openapi.json` and `GET /api/v1/docs` for `spec`.
pub fn routes<S: Clone + Send + Sync + 'static>(spec: &OpenApi) -> Router<S> {
    let json: Arc<str> = match spec.to_json() {
        Ok(json) => json.into(),
        // Cannot happen for a document made of utoipa's types; still answer something honest.
        Err(e) => format!("{{\"error\": \"the document could not be written: {e}\"}}").into(),
    };
    Router::new()
        .route(
            SPEC_PATH,
            get(move || {
                let json = json.clone();
                async move {
                    let mut r = json.to_string().into_response();
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    r
                }
            }),
        )
        .route(DOCS_PATH, get(docs))
}

async fn docs() -> Response {
    let mut r = DOCS_HTML.into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Everything the page needs is in it or on this host; the browser refuses anything else.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:",
        ),
    );
    r
}

/// A type's schema, named, for [`document`]'s `schemas`.
pub fn named_schema<T: ToSchema>() -> (String, RefOr<Schema>) {
    (T::name().into_owned(), T::schema())
}
