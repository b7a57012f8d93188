//! Commands on an appeal. The payload structs are also the HTTP request bodies of the command API
//! (unknown fields are refused); the acting department of handler commands comes from the caller's
//! token, never from the body.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{
    AccountabilityKind, Category, Channel, ContactMethod, DeadlineKind, DepartmentId, FilerKind,
    LongText, Phone, ResolutionOutcome, Satisfaction, ShortText, TrackingNumber,
};

/// Everything that can be asked of an appeal.
#[derive(Debug, Clone, PartialEq)]
pub enum AppealCommand {
    /// 登记: the tracking number is allocated by the store before the command runs.
    File {
        appeal_id: Uuid,
        tracking_number: TrackingNumber,
        body: FileAppeal,
    },
    /// 派单 under first-contact responsibility (首接负责制).
    Assign(AssignAppeal),
    /// 转办 to another lead department.
    Transfer(TransferAppeal),
    /// 退单: the lead department says the appeal is not its responsibility.
    Decline {
        by: DepartmentId,
        body: DeclineAppeal,
    },
    /// 联系诉求人 / 到达现场.
    RecordContact {
        by: DepartmentId,
        body: RecordContact,
    },
    /// 初步反馈.
    GiveInitialFeedback {
        by: DepartmentId,
        body: GiveInitialFeedback,
    },
    /// 办结回复.
    Resolve {
        by: DepartmentId,
        body: ResolveAppeal,
    },
    /// 申请延期.
    RequestExtension {
        by: DepartmentId,
        body: RequestExtension,
    },
    ApproveExtension(ApproveExtension),
    RejectExtension(RejectExtension),
    /// 退回重办.
    ReturnForRework(ReturnForRework),
    /// 回访.
    RecordReturnVisit(RecordReturnVisit),
    /// 办结归档.
    Close(CloseAppeal),
    /// 撤回.
    Withdraw(WithdrawAppeal),
    /// 重复件合并.
    MarkDuplicate(MarkDuplicate),
    /// 督办.
    Supervise(SuperviseAppeal),
    /// 问责.
    RecordAccountability(RecordAccountability),
    /// Recorded by the SLA watcher when a deadline passes unmet.
    RecordDeadlineMissed(RecordDeadlineMissed),
    /// Sent for open appeals after the calendar changed: records new deadlines if they moved.
    RecomputeDeadlines(RecomputeDeadlines),
}

impl AppealCommand {
    /// The command's name as it appears in event metadata, routes and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::Assign(_) => "assign",
            Self::Transfer(_) => "transfer",
            Self::Decline { .. } => "decline",
            Self::RecordContact { .. } => "contact",
            Self::GiveInitialFeedback { .. } => "feedback",
            Self::Resolve { .. } => "resolve",
            Self::RequestExtension { .. } => "request-extension",
            Self::ApproveExtension(_) => "approve-extension",
            Self::RejectExtension(_) => "reject-extension",
            Self::ReturnForRework(_) => "rework",
            Self::RecordReturnVisit(_) => "return-visit",
            Self::Close(_) => "close",
            Self::Withdraw(_) => "withdraw",
            Self::MarkDuplicate(_) => "mark-duplicate",
            Self::Supervise(_) => "supervise",
            Self::RecordAccountability(_) => "accountability",
            Self::RecordDeadlineMissed(_) => "deadline-missed",
            Self::RecomputeDeadlines(_) => "recompute-deadlines",
        }
    }
}

/// The person or enterprise who filed the appeal (personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filer {
    pub kind: FilerKind,
    /// The citizen's name, or the enterprise's name.
    pub name: ShortText,
    /// For an enterprise: the person to contact.
    #[serde(default)]
    pub contact_person: Option<ShortText>,
    pub phone: Phone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAppeal {
    pub channel: Channel,
    pub filer: Filer,
    pub category: Category,
    /// 镇街 / 园区.
    pub town: ShortText,
    pub description: LongText,
    /// 被投诉单位, where there is one.
    #[serde(default)]
    pub complained_unit: Option<ShortText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignAppeal {
    pub lead: DepartmentId,
    #[serde(default)]
    pub co_handlers: Vec<DepartmentId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferAppeal {
    pub lead: DepartmentId,
    #[serde(default)]
    pub co_handlers: Vec<DepartmentId>,
    pub reason: LongText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineAppeal {
    pub reason: LongText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordContact {
    pub method: ContactMethod,
    #[serde(default)]
    pub note: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GiveInitialFeedback {
    pub text: LongText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveAppeal {
    pub outcome: ResolutionOutcome,
    pub text: LongText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestExtension {
    pub working_days: u32,
    pub reason: LongText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveExtension {
    #[serde(default)]
    pub note: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectExtension {
    pub reason: LongText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnForRework {
    pub reason: LongText,
}

/// A return visit as the evaluator enters it: `solved` and `satisfaction` are required when the
/// filer was reached and must be absent when not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordReturnVisit {
    pub reached: bool,
    #[serde(default)]
    pub solved: Option<bool>,
    #[serde(default)]
    pub satisfaction: Option<Satisfaction>,
    #[serde(default)]
    pub comment: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseAppeal {
    #[serde(default)]
    pub note: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawAppeal {
    pub reason: LongText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkDuplicate {
    /// The appeal this one duplicates.
    pub original: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuperviseAppeal {
    pub note: LongText,
    /// Working days the supervision gives; the policy's default when absent.
    #[serde(default)]
    pub working_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordAccountability {
    pub department: DepartmentId,
    pub kind: AccountabilityKind,
    pub note: LongText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDeadlineMissed {
    pub which: DeadlineKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecomputeDeadlines {
    /// Why, in addition to the calendar change itself (e.g. the correction's notice).
    #[serde(default)]
    pub note: Option<LongText>,
}
