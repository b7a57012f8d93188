//! The one error type of the HTTP API, answered as `application/problem+json` (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use linkage_auth::AuthError;
use linkage_domain::assessment::{PolicyError, StyleError};
use linkage_domain::rules::RulesError;
use linkage_domain::{AppealError, ErrorKind};
use linkage_store::{ExecuteError, StoreError};

/// Everything a request can fail with. `problem` is the problem type's slug: the response's
/// `type` is `/problems/<slug>` (documented in README.md).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict {
        problem: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Malformed(String),
    #[error("{detail}")]
    Invalid {
        field: Option<String>,
        detail: String,
    },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Retry later: the database is unreachable or overloaded.
    #[error("{0}")]
    Unavailable(String),
    /// The client sent more than its rate limit allows; retry after `retry_after` seconds.
    #[error("too many requests from this client; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Self::Unauthenticated(_) => (S::UNAUTHORIZED, "unauthenticated", "Unauthenticated"),
            Self::Forbidden(_) => (S::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (S::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict { problem, .. } => (S::CONFLICT, problem, "Conflict"),
            Self::Malformed(_) => (S::BAD_REQUEST, "malformed-request", "Malformed request"),
            Self::Invalid { .. } => (S::UNPROCESSABLE_ENTITY, "invalid-field", "Invalid field"),
            Self::PayloadTooLarge(_) => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::UnsupportedMediaType(_) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::MethodNotAllowed(_) => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::Unavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
            ),
            Self::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            Self::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, problem, title) = self.parts();
        // The one shape of a problem, also the OpenAPI documents' `Problem` schema.
        let body = crate::openapi::Problem {
            problem_type: format!("/problems/{problem}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            field: match &self {
                Self::Invalid { field, .. } => field.clone(),
                _ => None,
            },
        };
        match &self {
            Self::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            Self::Unavailable(detail) => tracing::warn!(detail, "unavailable"),
            _ => tracing::info!(status = status.as_u16(), detail = %self, "request refused"),
        }
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Self::RateLimited { retry_after } = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::Unauthenticated(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<AppealError> for ApiError {
    fn from(e: AppealError) -> Self {
        refused(&e)
    }
}

/// A command refused by an aggregate, answered by the kind of refusal.
pub fn refused<E: Refusal>(e: &E) -> ApiError {
    let detail = e.to_string();
    match e.kind() {
        ErrorKind::NotFound => ApiError::NotFound(detail),
        ErrorKind::Forbidden => ApiError::Forbidden(detail),
        ErrorKind::Conflict => ApiError::Conflict {
            problem: e.conflict_problem(),
            detail,
        },
        ErrorKind::Invalid => ApiError::Invalid {
            field: e.field().map(str::to_owned),
            detail,
        },
    }
}

impl<E: Refusal> From<ExecuteError<E>> for ApiError {
    fn from(e: ExecuteError<E>) -> Self {
        match e {
            ExecuteError::Rejected(e) => refused(&e),
            ExecuteError::Conflict => Self::Conflict {
                problem: "concurrent-modification",
                detail: e.to_string(),
            },
            ExecuteError::IdempotencyKeyTaken => Self::Conflict {
                problem: "idempotency-key-in-use",
                detail: e.to_string(),
            },
            ExecuteError::Store(e) => e.into(),
        }
    }
}

/// An aggregate's refusal of a command: how an API answers it.
pub trait Refusal: std::error::Error {
    fn kind(&self) -> ErrorKind;
    /// The request field the refusal is about, when there is one.
    fn field(&self) -> Option<&'static str>;
    /// The problem slug of a conflict.
    fn conflict_problem(&self) -> &'static str;
}

impl Refusal for AppealError {
    fn kind(&self) -> ErrorKind {
        AppealError::kind(self)
    }
    fn field(&self) -> Option<&'static str> {
        AppealError::field(self)
    }
    fn conflict_problem(&self) -> &'static str {
        "illegal-transition"
    }
}

impl Refusal for RulesError {
    fn kind(&self) -> ErrorKind {
        RulesError::kind(self)
    }
    fn field(&self) -> Option<&'static str> {
        RulesError::field(self)
    }
    fn conflict_problem(&self) -> &'static str {
        "rules-conflict"
    }
}

impl Refusal for PolicyError {
    fn kind(&self) -> ErrorKind {
        match self {
            PolicyError::InvalidField { .. } => ErrorKind::Invalid,
            PolicyError::Unchanged { .. } => ErrorKind::Conflict,
        }
    }
    fn field(&self) -> Option<&'static str> {
        match self {
            PolicyError::InvalidField { field, .. } => Some(field),
            PolicyError::Unchanged { .. } => None,
        }
    }
    fn conflict_problem(&self) -> &'static str {
        "policy-unchanged"
    }
}

impl Refusal for StyleError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
    fn field(&self) -> Option<&'static str> {
        Some(StyleError::field(self))
    }
    fn conflict_problem(&self) -> &'static str {
        "illegal-transition"
    }
}
