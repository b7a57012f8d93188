//! Who may read what: the read roles, the department scope of handlers, and phone masking.

use linkage_auth::{Principal, Role};
use linkage_domain::values::DepartmentId;
use linkage_http::error::ApiError;
use linkage_projector::ledger::LedgerRow;

/// The appeals a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Only appeals this department leads or co-handles now.
    Department(DepartmentId),
}

impl Scope {
    /// The read scope of `caller`: district-wide for analysts, auditors, supervisors, dispatchers
    /// and evaluators; their own department for handlers; nothing for anyone else.
    pub fn of(caller: &Principal) -> Result<Self, ApiError> {
        match caller.role {
            Role::Analyst
            | Role::Auditor
            | Role::Supervisor
            | Role::Dispatcher
            | Role::Evaluator => Ok(Self::All),
            Role::Handler => caller
                .department
                .clone()
                .map(Self::Department)
                .ok_or_else(|| ApiError::Forbidden("the token names no department".into())),
            Role::Admin | Role::Enterprise => Err(ApiError::Forbidden(format!(
                "the role {} may not read appeals",
                caller.role
            ))),
        }
    }

    /// The department filter a caller may use: anyone in scope `All` any (or none); a handler
    /// only its own, which is also the default.
    pub fn department_filter(
        &self,
        asked: Option<DepartmentId>,
    ) -> Result<Option<DepartmentId>, ApiError> {
        match (self, asked) {
            (Self::All, d) => Ok(d),
            (Self::Department(own), None) => Ok(Some(own.clone())),
            (Self::Department(own), Some(d)) if &d == own => Ok(Some(d)),
            (Self::Department(own), Some(d)) => Err(ApiError::Forbidden(format!(
                "a handler of {own} may only read the appeals of its own department, not {d}"
            ))),
        }
    }

    pub fn allows(&self, row: &LedgerRow) -> bool {
        match self {
            Self::All => true,
            Self::Department(d) => {
                row.lead_department.as_ref() == Some(d) || row.co_handlers.contains(d)
            }
        }
    }
}

/// Whether `role` sees filers' phone numbers in full: those who call the filer (dispatch,
/// return visits, supervision). Everyone else gets them masked (`138****0000`).
pub fn sees_phone(role: Role) -> bool {
    matches!(role, Role::Dispatcher | Role::Evaluator | Role::Supervisor)
}
