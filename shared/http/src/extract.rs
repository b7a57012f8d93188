//! Request extractors: the authenticated caller, the request context (ids, idempotency key) and
//! the JSON body, each refusing bad input with a problem+json answer.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use linkage_auth::{Principal, TokenKeys};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const REQUEST_ID: &str = "x-request-id";
pub const CORRELATION_ID: &str = "x-correlation-id";

/// The caller, from `Authorization: Bearer <jwt>`.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// A service state that can verify tokens.
pub trait HasTokenKeys {
    fn token_keys(&self) -> &TokenKeys;
}

impl<T: HasTokenKeys> HasTokenKeys for std::sync::Arc<T> {
    fn token_keys(&self) -> &TokenKeys {
        (**self).token_keys()
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: HasTokenKeys + Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Every refusal is logged with its reason only: never the token or the header.
        let refuse = |e: ApiError| {
            tracing::warn!(reason = %e, "authentication failed");
            e
        };
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| refuse(linkage_auth::AuthError::Missing.into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                refuse(ApiError::Unauthenticated(
                    "the Authorization header must be `Bearer <token>`".into(),
                ))
            })?;
        state
            .token_keys()
            .verify(token)
            .map(Caller)
            .map_err(|e| refuse(e.into()))
    }
}

/// Ids that travel with a request into the events it records.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub correlation_id: String,
    pub idempotency_key: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let request_id = header_token(&parts.headers, REQUEST_ID)?
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let correlation_id =
            header_token(&parts.headers, CORRELATION_ID)?.unwrap_or_else(|| request_id.clone());
        let idempotency_key = header_token(&parts.headers, IDEMPOTENCY_KEY)?;
        Ok(Self {
            request_id,
            correlation_id,
            idempotency_key,
        })
    }
}

/// A header value that must be 1–255 printable ASCII characters when present.
fn header_token(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| (1..=255).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()));
    match text {
        Some(v) => Ok(Some(v.to_owned())),
        None => Err(ApiError::invalid(
            name,
            format!("the {name} header must be 1-255 printable ASCII characters"),
        )),
    }
}

/// A JSON request body, parsed into `T`, keeping its raw bytes (idempotency compares requests
/// by them). An empty body counts as `{}` so commands without required fields need none.
#[derive(Debug)]
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_content = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
                    || mime.to_ascii_lowercase().ends_with("+json")
            });
        let raw = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(e.body_text())
            } else {
                ApiError::Malformed(e.body_text())
            }
        })?;
        let text: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            if json_content != Some(true) {
                return Err(ApiError::UnsupportedMediaType(
                    "send the body as Content-Type: application/json".into(),
                ));
            }
            &raw
        };
        let value = parse_json(text)?;
        Ok(Self { value, raw })
    }
}

/// Parses JSON, telling a syntax error (400) from a wrong field (422, naming the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { None } else { Some(path) };
                ApiError::Invalid {
                    detail: match &field {
                        Some(f) => format!("{f}: {inner}"),
                        None => inner.to_string(),
                    },
                    field,
                }
            }
            _ => ApiError::Malformed(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    // Only whitespace may follow the value: `{…}}}` is not one JSON document.
    de.end()
        .map_err(|e| ApiError::Malformed(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}
