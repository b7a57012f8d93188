//! Who is calling and what they may do: bearer JWTs verified against configured keys, the roles of
//! Linkage, and the role × command matrix. Department scope ("a handler acts only on appeals of
//! its department") is enforced by the `Appeal` aggregate, which knows the assignment.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use linkage_domain::values::DepartmentId;
use serde::{Deserialize, Serialize};

/// The roles of the people who use Linkage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Hotline operator / dispatch centre (受理派单): files, assigns, transfers, merges duplicates.
    Dispatcher,
    /// Department handler (承办部门): contacts, feeds back, resolves, asks for extensions, declines.
    Handler,
    /// Supervisor (督办): extensions, rework, supervision, accountability, closing.
    Supervisor,
    /// Return-visit staff (回访).
    Evaluator,
    Analyst,
    Auditor,
    /// The people who run Linkage; also the identity of the SLA watcher.
    Admin,
    /// A market entity (市场主体) scoring departments online (作风评议); reads nothing.
    Enterprise,
}

impl Role {
    pub const ALL: &'static [Role] = &[
        Role::Dispatcher,
        Role::Handler,
        Role::Supervisor,
        Role::Evaluator,
        Role::Analyst,
        Role::Auditor,
        Role::Admin,
        Role::Enterprise,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Dispatcher => "dispatcher",
            Role::Handler => "handler",
            Role::Supervisor => "supervisor",
            Role::Evaluator => "evaluator",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .iter()
            .find(|r| r.as_str() == s)
            .copied()
            .ok_or_else(|| {
                let all: Vec<_> = Role::ALL.iter().map(Role::as_str).collect();
                format!("unknown role {s:?}; expected one of: {}", all.join(", "))
            })
    }
}

/// Which roles may send each command (by the command's route name). The single source of the
/// command access matrix; ARCHITECTURE.md and the access tests render it.
pub const COMMAND_ROLES: &[(&str, &[Role])] = &[
    ("file", &[Role::Dispatcher]),
    ("assign", &[Role::Dispatcher]),
    ("transfer", &[Role::Dispatcher]),
    ("mark-duplicate", &[Role::Dispatcher]),
    ("withdraw", &[Role::Dispatcher]),
    ("decline", &[Role::Handler]),
    ("contact", &[Role::Handler]),
    ("feedback", &[Role::Handler]),
    ("resolve", &[Role::Handler]),
    ("request-extension", &[Role::Handler]),
    ("approve-extension", &[Role::Supervisor]),
    ("reject-extension", &[Role::Supervisor]),
    ("rework", &[Role::Supervisor]),
    ("supervise", &[Role::Supervisor]),
    ("accountability", &[Role::Supervisor]),
    ("close", &[Role::Supervisor]),
    ("return-visit", &[Role::Evaluator]),
    ("deadline-missed", &[Role::Admin]),
    // Assessment (docs/metrics.md): `POST /api/v1/style-evaluations`, `POST /api/v1/assessment-policy`.
    ("style-evaluation", &[Role::Enterprise, Role::Evaluator]),
    ("set-assessment-policy", &[Role::Admin]),
    ("recompute-deadlines", &[Role::Admin]),
    ("publish-calendar-year", &[Role::Admin]),
    ("correct-calendar-date", &[Role::Admin]),
    ("set-sla-policy", &[Role::Admin]),
];

/// Whether `role` may send the command named `command`. Unknown commands are refused.
pub fn may_send(role: Role, command: &str) -> bool {
    COMMAND_ROLES
        .iter()
        .any(|(name, roles)| *name == command && roles.contains(&role))
}

/// The claims Linkage reads from a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The person or system acting.
    pub sub: String,
    pub role: Role,
    /// The caller's department; required for handlers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dept: Option<DepartmentId>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    pub department: Option<DepartmentId>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token has expired")]
    Expired,
    #[error("a handler token must name its department (claim `dept`)")]
    HandlerWithoutDepartment,
    #[error("key configuration: {0}")]
    Key(String),
}

/// How tokens are verified (and, for local use, minted).
#[derive(Clone)]
pub struct TokenKeys {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("TokenKeys")
            .field("algorithm", &self.algorithm)
            .field("can_mint", &self.encoding.is_some())
            .finish()
    }
}

impl TokenKeys {
    /// A shared HS256 secret: for local use, where the same process mints and verifies.
    pub fn hs256(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < 32 {
            return Err(AuthError::Key(
                "the HS256 secret must be at least 32 bytes".into(),
            ));
        }
        Ok(Self {
            algorithm: Algorithm::HS256,
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
        })
    }

    /// A public key in PEM (RSA → RS256, Ed25519 → EdDSA): production, where an identity
    /// provider mints tokens and Linkage only verifies them.
    pub fn public_key_pem(pem: &[u8]) -> Result<Self, AuthError> {
        let text = String::from_utf8_lossy(pem);
        let (algorithm, decoding) = if text.contains("RSA") || pem_is_rsa(&text) {
            (Algorithm::RS256, DecodingKey::from_rsa_pem(pem))
        } else {
            (Algorithm::EdDSA, DecodingKey::from_ed_pem(pem))
        };
        let decoding = decoding.map_err(|e| AuthError::Key(format!("public key: {e}")))?;
        Ok(Self {
            algorithm,
            decoding,
            encoding: None,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Verifies signature, algorithm and expiry, and reads the caller.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let mut validation = Validation::new(self.algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            },
        )?;
        let claims = data.claims;
        if claims.role == Role::Handler && claims.dept.is_none() {
            return Err(AuthError::HandlerWithoutDepartment);
        }
        if claims.sub.trim().is_empty() || claims.sub.len() > 200 {
            return Err(AuthError::Invalid(
                "the subject must be 1-200 characters".into(),
            ));
        }
        Ok(Principal {
            subject: claims.sub,
            role: claims.role,
            department: claims.dept,
        })
    }

    /// Mints a token (only with a shared secret).
    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        department: Option<DepartmentId>,
        now: DateTime<Utc>,
        valid_for: chrono::Duration,
    ) -> Result<String, AuthError> {
        let key = self.encoding.as_ref().ok_or_else(|| {
            AuthError::Key("tokens can only be minted with an HS256 secret".into())
        })?;
        if role == Role::Handler && department.is_none() {
            return Err(AuthError::HandlerWithoutDepartment);
        }
        let claims = Claims {
            sub: subject.to_owned(),
            role,
            dept: department,
            exp: (now + valid_for).timestamp(),
            iat: now.timestamp(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key)
            .map_err(|e| AuthError::Key(e.to_string()))
    }
}

fn pem_is_rsa(text: &str) -> bool {
    // An RSA SubjectPublicKeyInfo is far longer than an Ed25519 one (44 bytes of DER).
    text.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::len)
        .sum::<usize>()
        > 100
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> TokenKeys {
        TokenKeys::hs256(SECRET).unwrap()
    }

    #[test]
    fn round_trip() {
        let now = Utc::now();
        let dept: DepartmentId = "tax".parse().unwrap();
        let t = keys()
            .issue(
                "alice",
                Role::Handler,
                Some(dept.clone()),
                now,
                chrono::Duration::hours(1),
            )
            .unwrap();
        let p = keys().verify(&t).unwrap();
        assert_eq!(p.subject, "alice");
        assert_eq!(p.role, Role::Handler);
        assert_eq!(p.department, Some(dept));
    }

    #[test]
    fn refuses_expired_wrongly_signed_malformed_and_unsigned() {
        let now = Utc::now();
        let expired = keys()
            .issue(
                "a",
                Role::Analyst,
                None,
                now - chrono::Duration::hours(2),
                chrono::Duration::hours(1),
            )
            .unwrap();
        assert_eq!(keys().verify(&expired), Err(AuthError::Expired));

        let other = TokenKeys::hs256(b"another secret that is long enough!").unwrap();
        let forged = other
            .issue("a", Role::Admin, None, now, chrono::Duration::hours(1))
            .unwrap();
        assert!(matches!(keys().verify(&forged), Err(AuthError::Invalid(_))));

        assert!(matches!(
            keys().verify("not.a.jwt"),
            Err(AuthError::Invalid(_))
        ));

        // {"alg":"none","typ":"JWT"} . {"sub":"a","role":"admin","exp":9999999999} . (no signature)
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwicm9sZSI6ImFkbWluIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        assert!(matches!(keys().verify(none), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn handler_tokens_need_a_department() {
        assert_eq!(
            keys().issue(
                "h",
                Role::Handler,
                None,
                Utc::now(),
                chrono::Duration::hours(1)
            ),
            Err(AuthError::HandlerWithoutDepartment)
        );
        assert!(TokenKeys::hs256(b"short").is_err());
    }

    #[test]
    fn matrix() {
        assert!(may_send(Role::Dispatcher, "file"));
        assert!(!may_send(Role::Handler, "file"));
        assert!(may_send(Role::Handler, "resolve"));
        assert!(!may_send(Role::Analyst, "resolve"));
        assert!(!may_send(Role::Admin, "no-such-command"));
        for (name, roles) in COMMAND_ROLES {
            assert!(!roles.is_empty(), "{name}");
            assert!(!roles.contains(&Role::Analyst) && !roles.contains(&Role::Auditor));
        }
    }
}
