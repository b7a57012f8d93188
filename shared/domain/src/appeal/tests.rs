//! Given/when/then tests of the `Appeal` aggregate: for every command, the exact events it records
//! and every way it can be refused.
//!
//! Unless a test says otherwise the calendar is [`WeekdayCalendar`] (Monday–Friday) and the policy
//! is the default "2110" one. Every deadline below is written out by hand, with the counting
//! beside it, so these tests check the working-day arithmetic too instead of echoing it. Instants
//! are UTC; "local" is Asia/Shanghai (UTC+08:00), where a deadline of N working days ends at 24:00
//! local of the N-th working day after the start day, i.e. at 16:00 UTC of that day.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::test::{AggregateResultValidator, TestFramework};
use cqrs_es::{Aggregate, DomainEvent};
use uuid::Uuid;

use super::{
    Appeal, AppealCommand, AppealError, AppealEvent, AppealServices, AppealStatus, AppliedPolicy,
    ApproveExtension, AssignAppeal, CloseAppeal, DeadlineBasis, DeclineAppeal, ErrorKind,
    FileAppeal, Filer, GiveInitialFeedback, MarkDuplicate, RecordAccountability, RecordContact,
    RecordDeadlineMissed, RecordReturnVisit, RejectExtension, RequestExtension, ResolveAppeal,
    ReturnForRework, ReturnVisitResult, SuperviseAppeal, TransferAppeal, WithdrawAppeal,
};
use crate::calendar::{CalendarError, WeekdayCalendar, official};
use crate::clock::FixedClock;
use crate::sla::{Deadlines, SlaPolicy};
use crate::values::{
    AccountabilityKind, Category, Channel, ContactMethod, DeadlineKind, DepartmentId, FilerKind,
    ResolutionOutcome, Satisfaction, TrackingNumber,
};

use AppealStatus as S;
use DeadlineKind::{Contact, Feedback, Resolution};

// ---------------------------------------------------------------------------------------------
// Instants and hand-computed deadlines
// ---------------------------------------------------------------------------------------------

/// Mon 2026-03-02 08:00 local: the sample appeal is filed.
const FILED_AT: &str = "2026-03-02T00:00:00Z";
/// Mon 2026-03-02 09:00 local: the fixed "now" of the sample assignment.
const NOW: &str = "2026-03-02T01:00:00Z";
/// Mon 10:00 local: contact, an hour before its deadline.
const CONTACTED_AT: &str = "2026-03-02T02:00:00Z";
/// Tue 2026-03-03 09:00 local: initial feedback, the morning of its last day.
const FEEDBACK_AT: &str = "2026-03-03T01:00:00Z";
/// Wed 2026-03-04 10:00 local: transfers, re-assignments, extensions, supervision.
const LATER: &str = "2026-03-04T02:00:00Z";
/// Tue 2026-03-10 10:00 local: the lead resolves the appeal.
const RESOLVED_AT: &str = "2026-03-10T02:00:00Z";
/// Thu 2026-03-12 10:00 local: the return visit.
const VISITED_AT: &str = "2026-03-12T02:00:00Z";
/// Fri 2026-03-13 10:00 local: closing, or returning for rework.
const CLOSED_AT: &str = "2026-03-13T02:00:00Z";
const REWORK_AT: &str = CLOSED_AT;

// Deadlines of the assignment at NOW (Mon 09:00 local).
/// 2 clock hours after 01:00Z.
const CONTACT_DUE: &str = "2026-03-02T03:00:00Z";
/// Mon is the start day and not counted; the 1st working day is Tue 03-03, which ends at
/// 24:00 local = Tue 16:00Z.
const FEEDBACK_DUE: &str = "2026-03-03T16:00:00Z";
/// Tue 3, Wed 4, Thu 5, Fri 6 (4); Sat/Sun off; Mon 9 … Fri 13 (9); Sat/Sun off; Mon 16 (10)
/// → 24:00 Mon 03-16 local.
const RESOLUTION_DUE: &str = "2026-03-16T16:00:00Z";

// Deadlines of an assignment or transfer at LATER (Wed 03-04 10:00 local).
/// 02:00Z + 2 h.
const LATER_CONTACT_DUE: &str = "2026-03-04T04:00:00Z";
/// 1st working day after Wed is Thu 03-05 → 24:00 Thu local.
const LATER_FEEDBACK_DUE: &str = "2026-03-05T16:00:00Z";
/// Thu 5, Fri 6 (2); Mon 9 … Fri 13 (7); Mon 16, Tue 17, Wed 18 (10) → 24:00 Wed 03-18 local.
const LATER_RESOLUTION_DUE: &str = "2026-03-18T16:00:00Z";

/// RESOLUTION_DUE + 3 working days. The old deadline is 24:00 Mon 03-16 local, so counting starts
/// from Mon 03-16 (its last day): Tue 17, Wed 18, Thu 19 → 24:00 Thu 03-19 local.
const EXTENDED_DUE: &str = "2026-03-19T16:00:00Z";
/// EXTENDED_DUE + 2 working days: counting from Thu 03-19, Fri 20, (weekend), Mon 23
/// → 24:00 Mon 03-23 local.
const EXTENDED_TWICE_DUE: &str = "2026-03-23T16:00:00Z";
/// Rework at REWORK_AT (Fri 03-13) + 5 working days: (weekend) Mon 16, Tue 17, Wed 18, Thu 19,
/// Fri 20 → 24:00 Fri 03-20 local.
const REWORK_DUE: &str = "2026-03-20T16:00:00Z";

/// The version label `WeekdayCalendar` records with every deadline.
const WEEKDAYS: &str = "weekdays";

/// An RFC 3339 instant.
fn t(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("bad instant {rfc3339:?}: {e}"))
        .with_timezone(&Utc)
}

fn deadlines(contact: &str, feedback: &str, resolution: &str) -> Deadlines {
    Deadlines {
        contact_due: t(contact),
        feedback_due: t(feedback),
        resolution_due: t(resolution),
    }
}

/// The deadlines of an assignment at NOW.
fn deadlines_now() -> Deadlines {
    deadlines(CONTACT_DUE, FEEDBACK_DUE, RESOLUTION_DUE)
}

/// The deadlines of an assignment or transfer at LATER.
fn deadlines_later() -> Deadlines {
    deadlines(LATER_CONTACT_DUE, LATER_FEEDBACK_DUE, LATER_RESOLUTION_DUE)
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// The lead department of the sample assignment.
const LEAD: &str = "market-supervision";
/// Its co-handling department.
const CO: &str = "housing-construction";
/// The lead after a transfer.
const NEW_LEAD: &str = "natural-resources";
/// A department that never had anything to do with the appeal.
const OTHER: &str = "tax";

const DESCRIPTION: &str = "园区道路长期积水，企业货车无法通行";
const TRANSFER_REASON: &str = "涉及排水设施，转自然资源部门办理";
const DECLINE_REASON: &str = "不属于本部门职责";
const CONTACT_NOTE: &str = "已电话联系企业负责人";
const FEEDBACK_TEXT: &str = "已受理，正在现场核查";
const RESOLUTION_TEXT: &str = "已完成排水改造";
const EXTENSION_REASON: &str = "需协调施工单位";
const APPROVAL_NOTE: &str = "同意延期";
const REJECTION_REASON: &str = "理由不充分";
const REWORK_REASON: &str = "诉求人反映问题仍未解决";
const VISIT_COMMENT: &str = "诉求人表示满意";
const CLOSE_NOTE: &str = "办结归档";
const WITHDRAW_REASON: &str = "企业已自行解决";
const SUPERVISION_NOTE: &str = "请加快办理";
const ACCOUNTABILITY_NOTE: &str = "推诿扯皮，延误办理";

/// Any value type parsed from its wire text (texts, phone numbers, department ids).
fn parse<T>(s: &str) -> T
where
    T: FromStr,
    T::Err: Debug,
{
    s.parse()
        .unwrap_or_else(|e| panic!("bad test value {s:?}: {e:?}"))
}

fn dept(id: &str) -> DepartmentId {
    parse(id)
}

fn depts(ids: &[&str]) -> Vec<DepartmentId> {
    ids.iter().map(|d| dept(d)).collect()
}

fn appeal_id() -> Uuid {
    Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0001)
}

/// Another appeal, the one the sample duplicates.
fn original_id() -> Uuid {
    Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0002)
}

fn tracking_number() -> TrackingNumber {
    TrackingNumber::new(2026, 123)
}

fn filer() -> Filer {
    Filer {
        kind: FilerKind::Enterprise,
        name: parse("某某科技有限公司"),
        contact_person: Some(parse("张三")),
        phone: parse("13800130000"),
    }
}

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

/// The weekday calendar, the default policy and a clock stopped at `now`.
fn services_at(now: &str) -> AppealServices {
    AppealServices::fixed(
        Arc::new(FixedClock::new(t(now))),
        Arc::new(WeekdayCalendar),
        SlaPolicy::default(),
    )
}

/// The official PRC calendar, the default policy and a clock stopped at `now`.
fn official_services_at(now: &str) -> AppealServices {
    AppealServices::fixed(
        Arc::new(FixedClock::new(t(now))),
        Arc::new(official().clone()),
        SlaPolicy::default(),
    )
}

/// A given/when/then test whose command runs at `now`.
fn test_at(now: &str) -> TestFramework<Appeal> {
    TestFramework::with(services_at(now))
}

/// The outcome of `command` at `now` on the appeal `given` adds up to, for table-driven tests
/// whose assertions must say which case failed.
fn run(
    now: &str,
    given: Vec<AppealEvent>,
    command: AppealCommand,
) -> Result<Vec<AppealEvent>, AppealError> {
    test_at(now).given(given).when(command).inspect_result()
}

/// The state a sequence of events adds up to.
fn replay(events: impl IntoIterator<Item = AppealEvent>) -> Appeal {
    let mut appeal = Appeal::default();
    for event in events {
        appeal.apply(event);
    }
    appeal
}

/// `then_expect_error` for [`AppealError::InvalidField`], whose reason is free text for people:
/// checks the field exactly and that the reason mentions `hint` (which tells the rules apart).
trait ThenExpectInvalid {
    fn then_expect_invalid(self, field: &str, hint: &str);
}

impl ThenExpectInvalid for AggregateResultValidator<Appeal> {
    fn then_expect_invalid(self, field: &str, hint: &str) {
        match self.inspect_result() {
            Err(AppealError::InvalidField {
                field: actual,
                reason,
            }) => {
                assert_eq!(actual, field, "reason: {reason}");
                assert!(reason.contains(hint), "{reason:?} should mention {hint:?}");
            }
            other => panic!("expected InvalidField {{ field: {field:?} }}, got {other:?}"),
        }
    }
}

fn illegal(command: &'static str, status: AppealStatus) -> AppealError {
    AppealError::IllegalTransition { command, status }
}

fn not_lead(department: &str) -> AppealError {
    AppealError::NotResponsible {
        department: dept(department),
        role: "the lead department",
    }
}

fn not_handler(department: &str) -> AppealError {
    AppealError::NotResponsible {
        department: dept(department),
        role: "the lead or a co-handling department",
    }
}

fn not_missed(which: DeadlineKind, reason: &'static str) -> AppealError {
    AppealError::DeadlineNotMissed { which, reason }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

fn file() -> AppealCommand {
    AppealCommand::File {
        appeal_id: appeal_id(),
        tracking_number: tracking_number(),
        body: FileAppeal {
            channel: Channel::EnterpriseWhistle,
            filer: filer(),
            category: Category::Infrastructure,
            town: parse("高新园区"),
            description: parse(DESCRIPTION),
            complained_unit: Some(parse("某物业公司")),
        },
    }
}

fn assign(lead: &str, co: &[&str]) -> AppealCommand {
    AppealCommand::Assign(AssignAppeal {
        lead: dept(lead),
        co_handlers: depts(co),
    })
}

fn transfer(lead: &str, co: &[&str]) -> AppealCommand {
    AppealCommand::Transfer(TransferAppeal {
        lead: dept(lead),
        co_handlers: depts(co),
        reason: parse(TRANSFER_REASON),
    })
}

fn decline(by: &str) -> AppealCommand {
    AppealCommand::Decline {
        by: dept(by),
        body: DeclineAppeal {
            reason: parse(DECLINE_REASON),
        },
    }
}

fn contact(by: &str) -> AppealCommand {
    AppealCommand::RecordContact {
        by: dept(by),
        body: RecordContact {
            method: ContactMethod::Phone,
            note: Some(parse(CONTACT_NOTE)),
        },
    }
}

fn feedback(by: &str) -> AppealCommand {
    AppealCommand::GiveInitialFeedback {
        by: dept(by),
        body: GiveInitialFeedback {
            text: parse(FEEDBACK_TEXT),
        },
    }
}

fn resolve(by: &str) -> AppealCommand {
    AppealCommand::Resolve {
        by: dept(by),
        body: ResolveAppeal {
            outcome: ResolutionOutcome::Resolved,
            text: parse(RESOLUTION_TEXT),
        },
    }
}

fn request_extension(by: &str, working_days: u32) -> AppealCommand {
    AppealCommand::RequestExtension {
        by: dept(by),
        body: RequestExtension {
            working_days,
            reason: parse(EXTENSION_REASON),
        },
    }
}

fn approve_extension() -> AppealCommand {
    AppealCommand::ApproveExtension(ApproveExtension {
        note: Some(parse(APPROVAL_NOTE)),
    })
}

fn reject_extension() -> AppealCommand {
    AppealCommand::RejectExtension(RejectExtension {
        reason: parse(REJECTION_REASON),
    })
}

fn rework() -> AppealCommand {
    AppealCommand::ReturnForRework(ReturnForRework {
        reason: parse(REWORK_REASON),
    })
}

fn return_visit(
    reached: bool,
    solved: Option<bool>,
    satisfaction: Option<Satisfaction>,
) -> AppealCommand {
    AppealCommand::RecordReturnVisit(RecordReturnVisit {
        reached,
        solved,
        satisfaction,
        comment: Some(parse(VISIT_COMMENT)),
    })
}

/// The filer was reached, the problem is solved and they are satisfied.
fn satisfied_visit() -> AppealCommand {
    return_visit(true, Some(true), Some(Satisfaction::Satisfied))
}

fn unreachable_visit() -> AppealCommand {
    return_visit(false, None, None)
}

fn close() -> AppealCommand {
    AppealCommand::Close(CloseAppeal {
        note: Some(parse(CLOSE_NOTE)),
    })
}

fn withdraw() -> AppealCommand {
    AppealCommand::Withdraw(WithdrawAppeal {
        reason: parse(WITHDRAW_REASON),
    })
}

fn mark_duplicate(original: Uuid) -> AppealCommand {
    AppealCommand::MarkDuplicate(MarkDuplicate { original })
}

fn supervise(working_days: Option<u32>) -> AppealCommand {
    AppealCommand::Supervise(SuperviseAppeal {
        note: parse(SUPERVISION_NOTE),
        working_days,
    })
}

fn accountability(department: &str, kind: AccountabilityKind) -> AppealCommand {
    AppealCommand::RecordAccountability(RecordAccountability {
        department: dept(department),
        kind,
        note: parse(ACCOUNTABILITY_NOTE),
    })
}

fn record_missed(which: DeadlineKind) -> AppealCommand {
    AppealCommand::RecordDeadlineMissed(RecordDeadlineMissed { which })
}

/// One command of every kind but `File`, each valid in itself.
fn every_command_but_file() -> Vec<AppealCommand> {
    vec![
        assign(LEAD, &[]),
        transfer(NEW_LEAD, &[]),
        decline(LEAD),
        contact(LEAD),
        feedback(LEAD),
        resolve(LEAD),
        request_extension(LEAD, 3),
        approve_extension(),
        reject_extension(),
        rework(),
        satisfied_visit(),
        close(),
        withdraw(),
        mark_duplicate(original_id()),
        supervise(None),
        accountability(LEAD, AccountabilityKind::Delay),
        record_missed(Contact),
    ]
}

// ---------------------------------------------------------------------------------------------
// Events (what the commands above record, field for field)
// ---------------------------------------------------------------------------------------------

/// The sample appeal filed at FILED_AT.
fn filed() -> AppealEvent {
    AppealEvent::AppealFiled {
        appeal_id: appeal_id(),
        tracking_number: tracking_number(),
        channel: Channel::EnterpriseWhistle,
        filer: filer(),
        category: Category::Infrastructure,
        town: parse("高新园区"),
        description: parse(DESCRIPTION),
        complained_unit: Some(parse("某物业公司")),
        at: t(FILED_AT),
    }
}

/// An assignment at `at` whose (hand-computed) deadlines are `deadlines`.
fn assigned_at(lead: &str, co: &[&str], at: &str, deadlines: Deadlines) -> AppealEvent {
    AppealEvent::AppealAssigned {
        lead: dept(lead),
        co_handlers: depts(co),
        deadlines,
        calendar: WEEKDAYS.into(),
        policy: AppliedPolicy::default(),
        at: t(at),
    }
}

/// The assignment at NOW.
fn assigned(lead: &str, co: &[&str]) -> AppealEvent {
    assigned_at(lead, co, NOW, deadlines_now())
}

/// A transfer at LATER.
fn transferred(from: &str, lead: &str, co: &[&str]) -> AppealEvent {
    AppealEvent::AppealTransferred {
        from: dept(from),
        lead: dept(lead),
        co_handlers: depts(co),
        reason: parse(TRANSFER_REASON),
        deadlines: deadlines_later(),
        calendar: WEEKDAYS.into(),
        policy: AppliedPolicy::default(),
        at: t(LATER),
    }
}

fn declined(by: &str, at: &str) -> AppealEvent {
    AppealEvent::AppealDeclined {
        department: dept(by),
        reason: parse(DECLINE_REASON),
        at: t(at),
    }
}

fn contacted(by: &str, at: &str) -> AppealEvent {
    AppealEvent::ContactRecorded {
        department: dept(by),
        method: ContactMethod::Phone,
        note: Some(parse(CONTACT_NOTE)),
        at: t(at),
    }
}

fn feedback_given(by: &str, at: &str) -> AppealEvent {
    AppealEvent::InitialFeedbackGiven {
        department: dept(by),
        text: parse(FEEDBACK_TEXT),
        at: t(at),
    }
}

fn resolved(by: &str, at: &str) -> AppealEvent {
    AppealEvent::AppealResolved {
        department: dept(by),
        outcome: ResolutionOutcome::Resolved,
        text: parse(RESOLUTION_TEXT),
        at: t(at),
    }
}

fn extension_requested(by: &str, working_days: u32, at: &str) -> AppealEvent {
    AppealEvent::ExtensionRequested {
        department: dept(by),
        working_days,
        reason: parse(EXTENSION_REASON),
        at: t(at),
    }
}

fn extension_approved(working_days: u32, previous: &str, due: &str, at: &str) -> AppealEvent {
    AppealEvent::ExtensionApproved {
        working_days,
        previous_resolution_due: t(previous),
        resolution_due: t(due),
        calendar: WEEKDAYS.into(),
        note: Some(parse(APPROVAL_NOTE)),
        at: t(at),
    }
}

fn extension_rejected(at: &str) -> AppealEvent {
    AppealEvent::ExtensionRejected {
        reason: parse(REJECTION_REASON),
        at: t(at),
    }
}

fn returned_for_rework(due: &str, at: &str) -> AppealEvent {
    AppealEvent::ReturnedForRework {
        reason: parse(REWORK_REASON),
        working_days: 5,
        resolution_due: t(due),
        calendar: WEEKDAYS.into(),
        at: t(at),
    }
}

fn return_visited(result: ReturnVisitResult, at: &str) -> AppealEvent {
    AppealEvent::ReturnVisitRecorded {
        result,
        comment: Some(parse(VISIT_COMMENT)),
        at: t(at),
    }
}

/// What [`satisfied_visit`] records.
fn reached_satisfied() -> ReturnVisitResult {
    ReturnVisitResult::Reached {
        solved: true,
        satisfaction: Satisfaction::Satisfied,
    }
}

fn closed(at: &str) -> AppealEvent {
    AppealEvent::AppealClosed {
        note: Some(parse(CLOSE_NOTE)),
        at: t(at),
    }
}

fn withdrawn(at: &str) -> AppealEvent {
    AppealEvent::AppealWithdrawn {
        reason: parse(WITHDRAW_REASON),
        at: t(at),
    }
}

fn marked_duplicate(original: Uuid, at: &str) -> AppealEvent {
    AppealEvent::AppealMarkedDuplicate {
        original,
        at: t(at),
    }
}

fn supervised(due: &str, calendar: &str, at: &str) -> AppealEvent {
    AppealEvent::AppealSupervised {
        note: parse(SUPERVISION_NOTE),
        due: t(due),
        calendar: calendar.into(),
        at: t(at),
    }
}

fn accountability_recorded(department: &str, kind: AccountabilityKind, at: &str) -> AppealEvent {
    AppealEvent::AccountabilityRecorded {
        department: dept(department),
        kind,
        note: parse(ACCOUNTABILITY_NOTE),
        at: t(at),
    }
}

fn deadline_missed(which: DeadlineKind, due: &str, at: &str) -> AppealEvent {
    AppealEvent::DeadlineMissed {
        which,
        due: t(due),
        at: t(at),
    }
}

// ---------------------------------------------------------------------------------------------
// Stories: the histories most tests start from
// ---------------------------------------------------------------------------------------------

/// Filed, then assigned at NOW to LEAD with CO co-handling.
fn story_assigned() -> Vec<AppealEvent> {
    vec![filed(), assigned(LEAD, &[CO])]
}

/// … and the lead contacted the filer in time.
fn story_contacted() -> Vec<AppealEvent> {
    let mut events = story_assigned();
    events.push(contacted(LEAD, CONTACTED_AT));
    events
}

/// … gave initial feedback in time and resolved the appeal at RESOLVED_AT.
fn story_resolved() -> Vec<AppealEvent> {
    let mut events = story_contacted();
    events.extend([
        feedback_given(LEAD, FEEDBACK_AT),
        resolved(LEAD, RESOLVED_AT),
    ]);
    events
}

/// … and the filer was reached at the return visit, satisfied.
fn story_visited() -> Vec<AppealEvent> {
    let mut events = story_resolved();
    events.push(return_visited(reached_satisfied(), VISITED_AT));
    events
}

/// … and the appeal was closed.
fn story_closed() -> Vec<AppealEvent> {
    let mut events = story_visited();
    events.push(closed(CLOSED_AT));
    events
}

/// Contacted, then a 3-day extension requested and approved at LATER (resolution due moves from
/// RESOLUTION_DUE to EXTENDED_DUE).
fn story_extended() -> Vec<AppealEvent> {
    let mut events = story_contacted();
    events.extend([
        extension_requested(LEAD, 3, LATER),
        extension_approved(3, RESOLUTION_DUE, EXTENDED_DUE, LATER),
    ]);
    events
}

// ---------------------------------------------------------------------------------------------
// File
// ---------------------------------------------------------------------------------------------

#[test]
fn file_on_an_empty_stream_records_the_appeal() {
    test_at(FILED_AT)
        .given_no_previous_events()
        .when(file())
        .then_expect_events(vec![filed()]);
}

#[test]
fn file_twice_is_already_filed() {
    test_at(NOW)
        .given(vec![filed()])
        .when(file())
        .then_expect_error(AppealError::AlreadyFiled);
}

#[test]
fn file_is_already_filed_in_every_later_status() {
    for story in [story_assigned(), story_resolved(), story_closed()] {
        let status = replay(story.clone()).status;
        assert_eq!(
            run(LATER, story, file()),
            Err(AppealError::AlreadyFiled),
            "{status}"
        );
    }
}

#[test]
fn every_other_command_on_an_empty_stream_is_not_found() {
    let commands = every_command_but_file();
    let names: BTreeSet<&str> = commands.iter().map(AppealCommand::name).collect();
    assert_eq!(names.len(), 17, "one command of each other kind: {names:?}");
    for command in commands {
        let name = command.name();
        assert_eq!(
            run(NOW, vec![], command),
            Err(AppealError::NotFound),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Assign
// ---------------------------------------------------------------------------------------------

#[test]
fn assign_sets_the_2110_deadlines() {
    test_at(NOW)
        .given(vec![filed()])
        .when(assign(LEAD, &[]))
        .then_expect_events(vec![assigned(LEAD, &[])]);
}

#[test]
fn assign_with_co_handlers() {
    test_at(NOW)
        .given(vec![filed()])
        .when(assign(LEAD, &[CO, OTHER]))
        .then_expect_events(vec![assigned(LEAD, &[CO, OTHER])]);
}

#[test]
fn assign_counts_working_days_on_the_official_calendar() {
    // Wed 2026-09-30 10:00 local = 02:00Z; Oct 1–7 are the National Day holidays and Sat Oct 10
    // is an adjusted working day (调休).
    const AT: &str = "2026-09-30T02:00:00Z";
    TestFramework::<Appeal>::with(official_services_at(AT))
        .given(vec![filed()])
        .when(assign(LEAD, &[]))
        .then_expect_events(vec![AppealEvent::AppealAssigned {
            lead: dept(LEAD),
            co_handlers: vec![],
            deadlines: deadlines(
                // Clock hours, holiday or not.
                "2026-09-30T04:00:00Z",
                // Wed is not counted, Oct 1–7 are off: 1st working day Thu Oct 8.
                "2026-10-08T16:00:00Z",
                // Thu 8, Fri 9, Sat 10 (调休) (3); Sun off; Mon 12 … Fri 16 (8); Mon 19, Tue 20
                // (10) → 24:00 Tue Oct 20 local.
                "2026-10-20T16:00:00Z",
            ),
            calendar: "cn-official-2020-2026".into(),
            policy: AppliedPolicy::default(),
            at: t(AT),
        }]);
}

#[test]
fn assign_past_the_calendar_data_is_a_calendar_error() {
    // Mon 2026-12-28 10:00 local: the 10 working days run into 2027, which the embedded official
    // data does not cover; the aggregate must refuse rather than guess.
    TestFramework::<Appeal>::with(official_services_at("2026-12-28T02:00:00Z"))
        .given(vec![filed()])
        .when(assign(LEAD, &[]))
        .then_expect_error(AppealError::Calendar(CalendarError::YearNotCovered(2027)));
}

#[test]
fn assign_with_the_lead_among_the_co_handlers_is_invalid() {
    test_at(NOW)
        .given(vec![filed()])
        .when(assign(LEAD, &[CO, LEAD]))
        .then_expect_invalid("co_handlers", "already the lead");
}

#[test]
fn assign_with_a_co_handler_listed_twice_is_invalid() {
    test_at(NOW)
        .given(vec![filed()])
        .when(assign(LEAD, &[CO, OTHER, CO]))
        .then_expect_invalid("co_handlers", "listed twice");
}

#[test]
fn assign_accepts_20_co_handlers_but_not_21() {
    let names: Vec<String> = (1..=21).map(|i| format!("town-office-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    test_at(NOW)
        .given(vec![filed()])
        .when(assign(LEAD, &names[..20]))
        .then_expect_events(vec![assigned(LEAD, &names[..20])]);
    test_at(NOW)
        .given(vec![filed()])
        .when(assign(LEAD, &names))
        .then_expect_invalid("co_handlers", "at most 20");
}

#[test]
fn assign_when_already_assigned_is_illegal() {
    test_at(LATER)
        .given(story_assigned())
        .when(assign(NEW_LEAD, &[]))
        .then_expect_error(illegal("assign", S::Assigned));
}

#[test]
fn assign_after_a_decline_works_again() {
    test_at(LATER)
        .given(story_assigned())
        .and(vec![declined(LEAD, CONTACTED_AT)])
        .when(assign(NEW_LEAD, &[]))
        .then_expect_events(vec![assigned_at(NEW_LEAD, &[], LATER, deadlines_later())]);
}

// ---------------------------------------------------------------------------------------------
// Transfer
// ---------------------------------------------------------------------------------------------

#[test]
fn transfer_sets_new_deadlines_from_the_transfer() {
    test_at(LATER)
        .given(story_contacted())
        .and(vec![feedback_given(LEAD, FEEDBACK_AT)])
        .when(transfer(NEW_LEAD, &[OTHER]))
        .then_expect_events(vec![transferred(LEAD, NEW_LEAD, &[OTHER])]);
}

#[test]
fn transfer_hands_the_appeal_over_with_fresh_contact_and_feedback() {
    let mut events = story_contacted();
    events.extend([
        feedback_given(LEAD, FEEDBACK_AT),
        extension_requested(LEAD, 3, LATER),
        transferred(LEAD, NEW_LEAD, &[OTHER]),
    ]);
    let appeal = replay(events.clone());
    assert_eq!(appeal.status, S::Assigned);
    assert_eq!(appeal.lead, Some(dept(NEW_LEAD)));
    assert_eq!(appeal.co_handlers, depts(&[OTHER]));
    assert_eq!(appeal.deadlines, Some(deadlines_later()));
    assert!(appeal.contacted_at.is_none() && appeal.feedback_at.is_none());
    assert_eq!(appeal.pending_extension_days, None);
    let everyone: BTreeSet<_> = depts(&[LEAD, CO, NEW_LEAD, OTHER]).into_iter().collect();
    assert_eq!(appeal.involved, everyone);

    // The new lead contacts the filer and gives feedback again…
    test_at(LATER)
        .given(events.clone())
        .when(contact(NEW_LEAD))
        .then_expect_events(vec![contacted(NEW_LEAD, LATER)]);
    test_at(LATER)
        .given(events.clone())
        .when(feedback(NEW_LEAD))
        .then_expect_events(vec![feedback_given(NEW_LEAD, LATER)]);
    // …the extension requested by the former lead is gone…
    test_at(LATER)
        .given(events.clone())
        .when(approve_extension())
        .then_expect_error(AppealError::NoExtensionPending);
    // …and the former lead and co-handler are no longer responsible.
    test_at(LATER)
        .given(events.clone())
        .when(resolve(LEAD))
        .then_expect_error(not_lead(LEAD));
    test_at(LATER)
        .given(events)
        .when(contact(CO))
        .then_expect_error(not_handler(CO));
}

#[test]
fn transfer_to_the_same_lead_is_a_conflict() {
    let err = run(LATER, story_assigned(), transfer(LEAD, &[])).unwrap_err();
    assert_eq!(err, AppealError::AlreadyLedBy(dept(LEAD)));
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[test]
fn transfer_checks_the_co_handlers_like_assign() {
    test_at(LATER)
        .given(story_assigned())
        .when(transfer(NEW_LEAD, &[NEW_LEAD]))
        .then_expect_invalid("co_handlers", "already the lead");
    test_at(LATER)
        .given(story_assigned())
        .when(transfer(NEW_LEAD, &[CO, CO]))
        .then_expect_invalid("co_handlers", "listed twice");
}

#[test]
fn transfer_when_only_filed_is_illegal() {
    test_at(LATER)
        .given(vec![filed()])
        .when(transfer(NEW_LEAD, &[]))
        .then_expect_error(illegal("transfer", S::Filed));
}

// ---------------------------------------------------------------------------------------------
// Decline
// ---------------------------------------------------------------------------------------------

#[test]
fn decline_by_the_lead_sends_the_appeal_back_to_be_assigned() {
    test_at(CONTACTED_AT)
        .given(story_assigned())
        .when(decline(LEAD))
        .then_expect_events(vec![declined(LEAD, CONTACTED_AT)]);

    let mut events = story_contacted();
    events.push(declined(LEAD, LATER));
    let appeal = replay(events);
    assert_eq!(appeal.status, S::Filed);
    assert_eq!(appeal.lead, None);
    assert!(appeal.co_handlers.is_empty());
    assert_eq!(appeal.deadlines, None);
    assert!(appeal.contacted_at.is_none());
    // Who handled it is remembered (accountability may still name them).
    let both: BTreeSet<_> = depts(&[LEAD, CO]).into_iter().collect();
    assert_eq!(appeal.involved, both);
}

#[test]
fn decline_by_a_co_handler_is_not_allowed() {
    test_at(LATER)
        .given(story_assigned())
        .when(decline(CO))
        .then_expect_error(not_lead(CO));
}

#[test]
fn decline_by_an_unrelated_department_is_not_allowed() {
    test_at(LATER)
        .given(story_assigned())
        .when(decline(OTHER))
        .then_expect_error(not_lead(OTHER));
}

#[test]
fn decline_when_resolved_is_illegal() {
    test_at(VISITED_AT)
        .given(story_resolved())
        .when(decline(LEAD))
        .then_expect_error(illegal("decline", S::Resolved));
}

// ---------------------------------------------------------------------------------------------
// RecordContact
// ---------------------------------------------------------------------------------------------

#[test]
fn contact_by_the_lead() {
    test_at(CONTACTED_AT)
        .given(story_assigned())
        .when(contact(LEAD))
        .then_expect_events(vec![contacted(LEAD, CONTACTED_AT)]);
}

#[test]
fn contact_by_a_co_handler() {
    test_at(CONTACTED_AT)
        .given(story_assigned())
        .when(contact(CO))
        .then_expect_events(vec![contacted(CO, CONTACTED_AT)]);
}

#[test]
fn contact_by_an_unrelated_department_is_not_allowed() {
    test_at(CONTACTED_AT)
        .given(story_assigned())
        .when(contact(OTHER))
        .then_expect_error(not_handler(OTHER));
}

#[test]
fn contact_twice_is_already_contacted() {
    for by in [LEAD, CO] {
        assert_eq!(
            run(LATER, story_contacted(), contact(by)),
            Err(AppealError::AlreadyContacted),
            "{by}"
        );
    }
}

#[test]
fn contact_when_only_filed_is_illegal() {
    test_at(CONTACTED_AT)
        .given(vec![filed()])
        .when(contact(LEAD))
        .then_expect_error(illegal("contact", S::Filed));
}

// ---------------------------------------------------------------------------------------------
// GiveInitialFeedback
// ---------------------------------------------------------------------------------------------

#[test]
fn feedback_by_the_lead() {
    test_at(FEEDBACK_AT)
        .given(story_contacted())
        .when(feedback(LEAD))
        .then_expect_events(vec![feedback_given(LEAD, FEEDBACK_AT)]);
}

#[test]
fn feedback_twice_is_already_given() {
    test_at(LATER)
        .given(story_contacted())
        .and(vec![feedback_given(LEAD, FEEDBACK_AT)])
        .when(feedback(LEAD))
        .then_expect_error(AppealError::FeedbackAlreadyGiven);
}

#[test]
fn feedback_by_a_co_handler_is_not_allowed() {
    test_at(FEEDBACK_AT)
        .given(story_contacted())
        .when(feedback(CO))
        .then_expect_error(not_lead(CO));
}

// ---------------------------------------------------------------------------------------------
// Resolve
// ---------------------------------------------------------------------------------------------

#[test]
fn resolve_by_the_lead_after_contact() {
    test_at(RESOLVED_AT)
        .given(story_contacted())
        .when(resolve(LEAD))
        .then_expect_events(vec![resolved(LEAD, RESOLVED_AT)]);
}

#[test]
fn resolve_without_contact_is_refused() {
    test_at(RESOLVED_AT)
        .given(story_assigned())
        .when(resolve(LEAD))
        .then_expect_error(AppealError::ContactNotRecorded);
}

#[test]
fn resolve_by_a_co_handler_is_not_allowed() {
    test_at(RESOLVED_AT)
        .given(story_contacted())
        .when(resolve(CO))
        .then_expect_error(not_lead(CO));
}

#[test]
fn resolve_when_resolved_is_illegal() {
    test_at(VISITED_AT)
        .given(story_resolved())
        .when(resolve(LEAD))
        .then_expect_error(illegal("resolve", S::Resolved));
}

// ---------------------------------------------------------------------------------------------
// RequestExtension
// ---------------------------------------------------------------------------------------------

#[test]
fn request_extension_by_the_lead() {
    test_at(LATER)
        .given(story_contacted())
        .when(request_extension(LEAD, 3))
        .then_expect_events(vec![extension_requested(LEAD, 3, LATER)]);
}

#[test]
fn request_extension_accepts_1_to_10_working_days() {
    for days in [1, 10] {
        assert_eq!(
            run(LATER, story_contacted(), request_extension(LEAD, days)),
            Ok(vec![extension_requested(LEAD, days, LATER)]),
            "{days} days"
        );
    }
}

#[test]
fn request_extension_of_0_or_11_working_days_is_invalid() {
    for days in [0, 11] {
        test_at(LATER)
            .given(story_contacted())
            .when(request_extension(LEAD, days))
            .then_expect_invalid("working_days", "between 1 and 10");
    }
}

#[test]
fn request_extension_by_a_co_handler_is_not_allowed() {
    test_at(LATER)
        .given(story_contacted())
        .when(request_extension(CO, 3))
        .then_expect_error(not_lead(CO));
}

#[test]
fn request_extension_once_the_resolution_deadline_has_passed_is_refused() {
    // Exactly at the deadline it has passed.
    test_at(RESOLUTION_DUE)
        .given(story_contacted())
        .when(request_extension(LEAD, 3))
        .then_expect_error(AppealError::ResolutionDeadlinePassed {
            due: t(RESOLUTION_DUE),
        });
}

#[test]
fn request_extension_while_one_is_pending_is_refused() {
    test_at(LATER)
        .given(story_contacted())
        .and(vec![extension_requested(LEAD, 3, LATER)])
        .when(request_extension(LEAD, 2))
        .then_expect_error(AppealError::ExtensionAlreadyPending);
}

#[test]
fn request_extension_after_two_approved_reaches_the_limit() {
    test_at(LATER)
        .given(story_extended())
        .and(vec![
            extension_requested(LEAD, 2, LATER),
            extension_approved(2, EXTENDED_DUE, EXTENDED_TWICE_DUE, LATER),
        ])
        .when(request_extension(LEAD, 1))
        .then_expect_error(AppealError::ExtensionLimitReached { max: 2 });
}

#[test]
fn the_extension_limit_is_per_appeal_and_survives_a_transfer() {
    // `SlaPolicy::max_extensions` is "how many extensions one appeal may be granted in all": a new
    // lead does not get a fresh allowance, although it gets fresh deadlines.
    test_at(LATER)
        .given(story_extended())
        .and(vec![
            extension_requested(LEAD, 2, LATER),
            extension_approved(2, EXTENDED_DUE, EXTENDED_TWICE_DUE, LATER),
            transferred(LEAD, NEW_LEAD, &[]),
        ])
        .when(request_extension(NEW_LEAD, 1))
        .then_expect_error(AppealError::ExtensionLimitReached { max: 2 });
}

#[test]
fn a_rejected_extension_does_not_count_towards_the_limit() {
    test_at(LATER)
        .given(story_extended())
        .and(vec![
            extension_requested(LEAD, 2, LATER),
            extension_rejected(LATER),
        ])
        .when(request_extension(LEAD, 2))
        .then_expect_events(vec![extension_requested(LEAD, 2, LATER)]);
}

// ---------------------------------------------------------------------------------------------
// ApproveExtension
// ---------------------------------------------------------------------------------------------

#[test]
fn approve_extension_counts_from_the_old_deadline() {
    test_at(LATER)
        .given(story_contacted())
        .and(vec![extension_requested(LEAD, 3, LATER)])
        .when(approve_extension())
        .then_expect_events(vec![extension_approved(
            3,
            RESOLUTION_DUE,
            EXTENDED_DUE,
            LATER,
        )]);
}

#[test]
fn approve_extension_skips_weekends() {
    // From Mon 03-16 (the old deadline's last day): Tue 17 … Fri 20 (4); Sat/Sun off; Mon 23 …
    // Fri 27 (9); Sat/Sun off; Mon 30 (10) → 24:00 Mon 03-30 local.
    test_at(LATER)
        .given(story_contacted())
        .and(vec![extension_requested(LEAD, 10, LATER)])
        .when(approve_extension())
        .then_expect_events(vec![extension_approved(
            10,
            RESOLUTION_DUE,
            "2026-03-30T16:00:00Z",
            LATER,
        )]);
}

#[test]
fn approve_extension_moves_the_resolution_deadline() {
    let appeal = replay(story_extended());
    assert_eq!(
        appeal.deadlines.map(|d| d.resolution_due),
        Some(t(EXTENDED_DUE))
    );
    assert_eq!(appeal.extensions_granted, 1);
    assert_eq!(appeal.pending_extension_days, None);
    // The second extension counts from the moved deadline.
    test_at(LATER)
        .given(story_extended())
        .and(vec![extension_requested(LEAD, 2, LATER)])
        .when(approve_extension())
        .then_expect_events(vec![extension_approved(
            2,
            EXTENDED_DUE,
            EXTENDED_TWICE_DUE,
            LATER,
        )]);
}

#[test]
fn approve_extension_with_none_pending_is_refused() {
    test_at(LATER)
        .given(story_contacted())
        .when(approve_extension())
        .then_expect_error(AppealError::NoExtensionPending);
    // Approved already: nothing is pending any more.
    test_at(LATER)
        .given(story_extended())
        .when(approve_extension())
        .then_expect_error(AppealError::NoExtensionPending);
}

#[test]
fn approve_extension_after_the_resolution_deadline_is_refused() {
    test_at(RESOLUTION_DUE)
        .given(story_contacted())
        .and(vec![extension_requested(LEAD, 3, LATER)])
        .when(approve_extension())
        .then_expect_error(AppealError::ResolutionDeadlinePassed {
            due: t(RESOLUTION_DUE),
        });
}

// ---------------------------------------------------------------------------------------------
// RejectExtension
// ---------------------------------------------------------------------------------------------

#[test]
fn reject_extension_clears_the_request() {
    test_at(LATER)
        .given(story_contacted())
        .and(vec![extension_requested(LEAD, 3, LATER)])
        .when(reject_extension())
        .then_expect_events(vec![extension_rejected(LATER)]);
    // Nothing pending afterwards, and the deadline did not move.
    let mut events = story_contacted();
    events.extend([
        extension_requested(LEAD, 3, LATER),
        extension_rejected(LATER),
    ]);
    let appeal = replay(events.clone());
    assert_eq!(appeal.pending_extension_days, None);
    assert_eq!(appeal.extensions_granted, 0);
    assert_eq!(appeal.deadlines, Some(deadlines_now()));
    test_at(LATER)
        .given(events)
        .when(approve_extension())
        .then_expect_error(AppealError::NoExtensionPending);
}

#[test]
fn reject_extension_with_none_pending_is_refused() {
    test_at(LATER)
        .given(story_contacted())
        .when(reject_extension())
        .then_expect_error(AppealError::NoExtensionPending);
}

#[test]
fn reject_extension_after_the_resolution_deadline_is_refused() {
    test_at("2026-03-17T02:00:00Z")
        .given(story_contacted())
        .and(vec![extension_requested(LEAD, 3, LATER)])
        .when(reject_extension())
        .then_expect_error(AppealError::ResolutionDeadlinePassed {
            due: t(RESOLUTION_DUE),
        });
}

// ---------------------------------------------------------------------------------------------
// ReturnForRework
// ---------------------------------------------------------------------------------------------

#[test]
fn rework_of_a_resolved_appeal_gives_5_working_days() {
    test_at(REWORK_AT)
        .given(story_resolved())
        .when(rework())
        .then_expect_events(vec![returned_for_rework(REWORK_DUE, REWORK_AT)]);
}

#[test]
fn rework_after_the_return_visit() {
    test_at(REWORK_AT)
        .given(story_visited())
        .when(rework())
        .then_expect_events(vec![returned_for_rework(REWORK_DUE, REWORK_AT)]);
}

#[test]
fn rework_of_an_appeal_being_handled_is_illegal() {
    test_at(REWORK_AT)
        .given(story_contacted())
        .when(rework())
        .then_expect_error(illegal("rework", S::Assigned));
}

#[test]
fn a_reworked_appeal_is_handled_and_resolved_again() {
    const RESOLVED_AGAIN_AT: &str = "2026-03-18T02:00:00Z";
    let mut events = story_visited();
    events.push(returned_for_rework(REWORK_DUE, REWORK_AT));
    let appeal = replay(events.clone());
    assert_eq!(appeal.status, S::Assigned);
    assert_eq!(appeal.lead, Some(dept(LEAD)));
    assert_eq!(
        appeal.deadlines,
        Some(deadlines(CONTACT_DUE, FEEDBACK_DUE, REWORK_DUE))
    );
    test_at(RESOLVED_AGAIN_AT)
        .given(events)
        .when(resolve(LEAD))
        .then_expect_events(vec![resolved(LEAD, RESOLVED_AGAIN_AT)]);
}

#[test]
fn a_reworked_appeal_needs_a_new_return_visit_before_closing() {
    // An unreachable visit allowed closing the first resolution; it does not carry over.
    let mut events = story_resolved();
    events.extend([
        return_visited(ReturnVisitResult::Unreachable, VISITED_AT),
        returned_for_rework(REWORK_DUE, REWORK_AT),
        resolved(LEAD, "2026-03-18T02:00:00Z"),
    ]);
    test_at("2026-03-19T02:00:00Z")
        .given(events)
        .when(close())
        .then_expect_error(illegal("close", S::Resolved));
}

// ---------------------------------------------------------------------------------------------
// RecordReturnVisit
// ---------------------------------------------------------------------------------------------

#[test]
fn return_visit_reaching_the_filer() {
    test_at(VISITED_AT)
        .given(story_resolved())
        .when(satisfied_visit())
        .then_expect_events(vec![return_visited(reached_satisfied(), VISITED_AT)]);
    assert_eq!(replay(story_visited()).status, S::ReturnVisited);
}

#[test]
fn return_visit_records_unsolved_and_dissatisfied_too() {
    let result = ReturnVisitResult::Reached {
        solved: false,
        satisfaction: Satisfaction::Dissatisfied,
    };
    test_at(VISITED_AT)
        .given(story_resolved())
        .when(return_visit(
            true,
            Some(false),
            Some(Satisfaction::Dissatisfied),
        ))
        .then_expect_events(vec![return_visited(result, VISITED_AT)]);
}

#[test]
fn return_visit_without_reaching_the_filer_keeps_the_appeal_resolved() {
    test_at(VISITED_AT)
        .given(story_resolved())
        .when(unreachable_visit())
        .then_expect_events(vec![return_visited(
            ReturnVisitResult::Unreachable,
            VISITED_AT,
        )]);
    let mut events = story_resolved();
    events.push(return_visited(ReturnVisitResult::Unreachable, VISITED_AT));
    let appeal = replay(events.clone());
    assert_eq!(appeal.status, S::Resolved);
    assert_eq!(appeal.unreachable_visits, 1);
    // The filer can still be visited again.
    test_at(CLOSED_AT)
        .given(events)
        .when(satisfied_visit())
        .then_expect_events(vec![return_visited(reached_satisfied(), CLOSED_AT)]);
}

#[test]
fn return_visit_reaching_the_filer_needs_solved() {
    test_at(VISITED_AT)
        .given(story_resolved())
        .when(return_visit(true, None, Some(Satisfaction::Satisfied)))
        .then_expect_invalid("solved", "required");
}

#[test]
fn return_visit_reaching_the_filer_needs_satisfaction() {
    test_at(VISITED_AT)
        .given(story_resolved())
        .when(return_visit(true, Some(true), None))
        .then_expect_invalid("satisfaction", "required");
}

#[test]
fn return_visit_not_reaching_the_filer_takes_no_satisfaction_or_solved() {
    test_at(VISITED_AT)
        .given(story_resolved())
        .when(return_visit(false, None, Some(Satisfaction::Satisfied)))
        .then_expect_invalid("satisfaction", "must be absent");
    test_at(VISITED_AT)
        .given(story_resolved())
        .when(return_visit(false, Some(true), None))
        .then_expect_invalid("solved", "must be absent");
}

#[test]
fn return_visit_while_being_handled_is_illegal() {
    test_at(VISITED_AT)
        .given(story_contacted())
        .when(satisfied_visit())
        .then_expect_error(illegal("return-visit", S::Assigned));
}

#[test]
fn return_visit_twice_is_illegal() {
    test_at(CLOSED_AT)
        .given(story_visited())
        .when(satisfied_visit())
        .then_expect_error(illegal("return-visit", S::ReturnVisited));
}

// ---------------------------------------------------------------------------------------------
// Close
// ---------------------------------------------------------------------------------------------

#[test]
fn close_after_reaching_the_filer() {
    test_at(CLOSED_AT)
        .given(story_visited())
        .when(close())
        .then_expect_events(vec![closed(CLOSED_AT)]);
    assert_eq!(replay(story_closed()).status, S::Closed);
}

#[test]
fn close_after_an_unreachable_visit() {
    test_at(CLOSED_AT)
        .given(story_resolved())
        .and(vec![return_visited(
            ReturnVisitResult::Unreachable,
            VISITED_AT,
        )])
        .when(close())
        .then_expect_events(vec![closed(CLOSED_AT)]);
}

#[test]
fn close_without_a_return_visit_is_illegal() {
    test_at(CLOSED_AT)
        .given(story_resolved())
        .when(close())
        .then_expect_error(illegal("close", S::Resolved));
}

#[test]
fn close_while_being_handled_is_illegal() {
    test_at(CLOSED_AT)
        .given(story_contacted())
        .when(close())
        .then_expect_error(illegal("close", S::Assigned));
}

#[test]
fn close_twice_is_illegal() {
    test_at(CLOSED_AT)
        .given(story_closed())
        .when(close())
        .then_expect_error(illegal("close", S::Closed));
}

// ---------------------------------------------------------------------------------------------
// Withdraw
// ---------------------------------------------------------------------------------------------

#[test]
fn withdraw_before_or_during_handling() {
    for story in [vec![filed()], story_contacted()] {
        let status = replay(story.clone()).status;
        assert_eq!(
            run(LATER, story.clone(), withdraw()),
            Ok(vec![withdrawn(LATER)]),
            "{status}"
        );
        let mut events = story;
        events.push(withdrawn(LATER));
        assert_eq!(replay(events).status, S::Withdrawn);
    }
}

#[test]
fn withdraw_after_resolution_is_illegal() {
    test_at(VISITED_AT)
        .given(story_resolved())
        .when(withdraw())
        .then_expect_error(illegal("withdraw", S::Resolved));
}

#[test]
fn withdraw_twice_is_illegal() {
    test_at(VISITED_AT)
        .given(vec![filed(), withdrawn(NOW)])
        .when(withdraw())
        .then_expect_error(illegal("withdraw", S::Withdrawn));
}

// ---------------------------------------------------------------------------------------------
// MarkDuplicate
// ---------------------------------------------------------------------------------------------

#[test]
fn mark_duplicate_before_or_during_handling() {
    for story in [vec![filed()], story_contacted()] {
        let status = replay(story.clone()).status;
        assert_eq!(
            run(LATER, story.clone(), mark_duplicate(original_id())),
            Ok(vec![marked_duplicate(original_id(), LATER)]),
            "{status}"
        );
        let mut events = story;
        events.push(marked_duplicate(original_id(), LATER));
        assert_eq!(replay(events).status, S::Duplicate);
    }
}

#[test]
fn mark_duplicate_of_itself_is_invalid() {
    test_at(LATER)
        .given(story_assigned())
        .when(mark_duplicate(appeal_id()))
        .then_expect_invalid("original", "itself");
}

#[test]
fn mark_duplicate_when_closed_is_illegal() {
    test_at(LATER)
        .given(story_closed())
        .when(mark_duplicate(original_id()))
        .then_expect_error(illegal("mark-duplicate", S::Closed));
}

// ---------------------------------------------------------------------------------------------
// Supervise
// ---------------------------------------------------------------------------------------------

#[test]
fn supervise_gives_3_working_days_by_default() {
    // From Wed 03-04: Thu 5, Fri 6, (weekend), Mon 9 → 24:00 Mon 03-09 local.
    test_at(LATER)
        .given(story_assigned())
        .when(supervise(None))
        .then_expect_events(vec![supervised("2026-03-09T16:00:00Z", WEEKDAYS, LATER)]);
}

#[test]
fn supervise_with_explicit_working_days() {
    let cases = [
        // Thu 03-05.
        (1, "2026-03-05T16:00:00Z"),
        // Thu 5, Fri 6, Mon 9, Tue 10, Wed 11.
        (5, "2026-03-11T16:00:00Z"),
        // Six whole weeks after Wed 03-04: Wed 04-15.
        (30, "2026-04-15T16:00:00Z"),
    ];
    for (days, due) in cases {
        assert_eq!(
            run(LATER, vec![filed()], supervise(Some(days))),
            Ok(vec![supervised(due, WEEKDAYS, LATER)]),
            "{days} days"
        );
    }
}

#[test]
fn supervise_across_the_national_day_holidays() {
    // Tue 2026-09-29 10:00 local: Wed 30 (1); Oct 1–7 off; Thu 8 (2), Fri 9 (3) → 24:00 Fri
    // Oct 9 local.
    const AT: &str = "2026-09-29T02:00:00Z";
    TestFramework::<Appeal>::with(official_services_at(AT))
        .given(vec![filed()])
        .when(supervise(None))
        .then_expect_events(vec![supervised(
            "2026-10-09T16:00:00Z",
            "cn-official-2020-2026",
            AT,
        )]);
}

#[test]
fn supervise_for_0_or_31_working_days_is_invalid() {
    for days in [0, 31] {
        test_at(LATER)
            .given(story_assigned())
            .when(supervise(Some(days)))
            .then_expect_invalid("working_days", "between 1 and 30");
    }
}

#[test]
fn supervise_when_closed_is_illegal() {
    test_at(LATER)
        .given(story_closed())
        .when(supervise(None))
        .then_expect_error(illegal("supervise", S::Closed));
}

// ---------------------------------------------------------------------------------------------
// RecordAccountability
// ---------------------------------------------------------------------------------------------

#[test]
fn accountability_of_the_lead_for_every_kind() {
    for &kind in AccountabilityKind::ALL {
        assert_eq!(
            run(LATER, story_assigned(), accountability(LEAD, kind)),
            Ok(vec![accountability_recorded(LEAD, kind, LATER)]),
            "{kind}"
        );
    }
    let kinds: Vec<&str> = AccountabilityKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(kinds, ["delay", "fraud", "enterprise_harassment"]);
}

#[test]
fn accountability_of_a_co_handler() {
    test_at(LATER)
        .given(story_assigned())
        .when(accountability(CO, AccountabilityKind::Fraud))
        .then_expect_events(vec![accountability_recorded(
            CO,
            AccountabilityKind::Fraud,
            LATER,
        )]);
}

#[test]
fn accountability_of_a_former_lead_after_a_transfer() {
    test_at(LATER)
        .given(story_assigned())
        .and(vec![transferred(LEAD, NEW_LEAD, &[])])
        .when(accountability(LEAD, AccountabilityKind::Delay))
        .then_expect_events(vec![accountability_recorded(
            LEAD,
            AccountabilityKind::Delay,
            LATER,
        )]);
}

#[test]
fn accountability_of_a_department_that_declined() {
    test_at(LATER)
        .given(story_assigned())
        .and(vec![declined(LEAD, CONTACTED_AT)])
        .when(accountability(LEAD, AccountabilityKind::Delay))
        .then_expect_events(vec![accountability_recorded(
            LEAD,
            AccountabilityKind::Delay,
            LATER,
        )]);
}

#[test]
fn accountability_even_after_closing() {
    const AT: &str = "2026-03-20T02:00:00Z";
    test_at(AT)
        .given(story_closed())
        .when(accountability(
            LEAD,
            AccountabilityKind::EnterpriseHarassment,
        ))
        .then_expect_events(vec![accountability_recorded(
            LEAD,
            AccountabilityKind::EnterpriseHarassment,
            AT,
        )]);
}

#[test]
fn accountability_of_a_department_never_involved_is_refused() {
    for story in [vec![filed()], story_assigned(), story_closed()] {
        let status = replay(story.clone()).status;
        assert_eq!(
            run(
                LATER,
                story,
                accountability(OTHER, AccountabilityKind::Delay)
            ),
            Err(AppealError::DepartmentNotInvolved(dept(OTHER))),
            "{status}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RecordDeadlineMissed
// ---------------------------------------------------------------------------------------------

#[test]
fn a_missed_contact_deadline_is_recorded_with_its_due_instant() {
    // Exactly at the deadline it has passed (a deadline is the first instant that is late).
    for now in [CONTACT_DUE, LATER] {
        assert_eq!(
            run(now, story_assigned(), record_missed(Contact)),
            Ok(vec![deadline_missed(Contact, CONTACT_DUE, now)]),
            "at {now}"
        );
    }
}

#[test]
fn a_contact_deadline_not_yet_passed_is_not_missed() {
    test_at("2026-03-02T02:59:59Z")
        .given(story_assigned())
        .when(record_missed(Contact))
        .then_expect_error(not_missed(Contact, "it has not passed yet"));
}

#[test]
fn a_contact_deadline_met_is_not_missed() {
    test_at(LATER)
        .given(story_contacted())
        .when(record_missed(Contact))
        .then_expect_error(not_missed(Contact, "it was met"));
}

#[test]
fn a_missed_contact_deadline_is_recorded_once() {
    test_at(LATER)
        .given(story_assigned())
        .and(vec![deadline_missed(Contact, CONTACT_DUE, CONTACT_DUE)])
        .when(record_missed(Contact))
        .then_expect_error(AppealError::DeadlineMissAlreadyRecorded {
            which: Contact,
            due: t(CONTACT_DUE),
        });
}

#[test]
fn a_missed_feedback_deadline_is_recorded() {
    test_at(FEEDBACK_DUE)
        .given(story_contacted())
        .when(record_missed(Feedback))
        .then_expect_events(vec![deadline_missed(Feedback, FEEDBACK_DUE, FEEDBACK_DUE)]);
}

#[test]
fn a_feedback_deadline_not_yet_passed_is_not_missed() {
    test_at("2026-03-03T15:59:59Z")
        .given(story_contacted())
        .when(record_missed(Feedback))
        .then_expect_error(not_missed(Feedback, "it has not passed yet"));
}

#[test]
fn a_feedback_deadline_met_is_not_missed() {
    test_at(LATER)
        .given(story_contacted())
        .and(vec![feedback_given(LEAD, FEEDBACK_AT)])
        .when(record_missed(Feedback))
        .then_expect_error(not_missed(Feedback, "it was met"));
}

#[test]
fn a_missed_feedback_deadline_is_recorded_once() {
    test_at(LATER)
        .given(story_contacted())
        .and(vec![deadline_missed(Feedback, FEEDBACK_DUE, FEEDBACK_DUE)])
        .when(record_missed(Feedback))
        .then_expect_error(AppealError::DeadlineMissAlreadyRecorded {
            which: Feedback,
            due: t(FEEDBACK_DUE),
        });
}

#[test]
fn a_missed_resolution_deadline_is_recorded() {
    test_at(RESOLUTION_DUE)
        .given(story_contacted())
        .when(record_missed(Resolution))
        .then_expect_events(vec![deadline_missed(
            Resolution,
            RESOLUTION_DUE,
            RESOLUTION_DUE,
        )]);
}

#[test]
fn a_resolution_deadline_not_yet_passed_is_not_missed() {
    test_at("2026-03-16T15:59:59Z")
        .given(story_contacted())
        .when(record_missed(Resolution))
        .then_expect_error(not_missed(Resolution, "it has not passed yet"));
}

#[test]
fn a_missed_resolution_deadline_is_recorded_once() {
    test_at("2026-03-17T02:00:00Z")
        .given(story_contacted())
        .and(vec![deadline_missed(
            Resolution,
            RESOLUTION_DUE,
            RESOLUTION_DUE,
        )])
        .when(record_missed(Resolution))
        .then_expect_error(AppealError::DeadlineMissAlreadyRecorded {
            which: Resolution,
            due: t(RESOLUTION_DUE),
        });
}

#[test]
fn deadlines_met_by_a_resolved_appeal_are_not_recorded_as_missed() {
    // Resolved on 03-10, before the 03-16 deadline: met, whatever the status is now.
    test_at("2026-03-17T02:00:00Z")
        .given(story_resolved())
        .when(record_missed(Resolution))
        .then_expect_error(not_missed(Resolution, "it was met"));
}

#[test]
fn deadlines_of_a_withdrawn_appeal_are_not_recorded_as_missed() {
    let mut events = story_assigned();
    events.push(AppealEvent::AppealWithdrawn {
        reason: "诉求人撤回".parse().unwrap(),
        at: t(LATER),
    });
    test_at("2026-03-17T02:00:00Z")
        .given(events)
        .when(record_missed(Resolution))
        .then_expect_error(illegal("deadline-missed", S::Withdrawn));
}

#[test]
fn after_an_extension_the_old_resolution_deadline_is_not_missed() {
    test_at(RESOLUTION_DUE)
        .given(story_extended())
        .when(record_missed(Resolution))
        .then_expect_error(not_missed(Resolution, "it has not passed yet"));
}

#[test]
fn after_an_extension_the_new_resolution_deadline_can_be_missed_once() {
    test_at(EXTENDED_DUE)
        .given(story_extended())
        .when(record_missed(Resolution))
        .then_expect_events(vec![deadline_missed(
            Resolution,
            EXTENDED_DUE,
            EXTENDED_DUE,
        )]);
    test_at("2026-03-20T02:00:00Z")
        .given(story_extended())
        .and(vec![deadline_missed(
            Resolution,
            EXTENDED_DUE,
            EXTENDED_DUE,
        )])
        .when(record_missed(Resolution))
        .then_expect_error(AppealError::DeadlineMissAlreadyRecorded {
            which: Resolution,
            due: t(EXTENDED_DUE),
        });
}

#[test]
fn after_a_rework_the_new_resolution_deadline_can_be_missed_again() {
    // Missed once, resolved late on Tue 03-17, returned for rework on Wed 03-18 10:00 local:
    // Thu 19, Fri 20, (weekend), Mon 23, Tue 24, Wed 25 → 24:00 Wed 03-25 local.
    const LATE_REWORK_AT: &str = "2026-03-18T02:00:00Z";
    const LATE_REWORK_DUE: &str = "2026-03-25T16:00:00Z";
    let mut events = story_contacted();
    events.extend([
        deadline_missed(Resolution, RESOLUTION_DUE, RESOLUTION_DUE),
        resolved(LEAD, "2026-03-17T02:00:00Z"),
        returned_for_rework(LATE_REWORK_DUE, LATE_REWORK_AT),
    ]);
    test_at(LATE_REWORK_DUE)
        .given(events)
        .when(record_missed(Resolution))
        .then_expect_events(vec![deadline_missed(
            Resolution,
            LATE_REWORK_DUE,
            LATE_REWORK_DUE,
        )]);
}

#[test]
fn after_a_transfer_the_new_contact_deadline_can_be_missed_again() {
    test_at(LATER_CONTACT_DUE)
        .given(story_assigned())
        .and(vec![
            deadline_missed(Contact, CONTACT_DUE, CONTACT_DUE),
            transferred(LEAD, NEW_LEAD, &[]),
        ])
        .when(record_missed(Contact))
        .then_expect_events(vec![deadline_missed(
            Contact,
            LATER_CONTACT_DUE,
            LATER_CONTACT_DUE,
        )]);
}

#[test]
fn a_contact_made_after_its_deadline_is_still_a_missed_deadline() {
    // The deadline is 03:00Z; the filer is contacted at 04:00Z and the SLA watcher gets round to
    // it at 05:00Z. The deadline was missed, but the aggregate only knows "contacted" and answers
    // DeadlineNotMissed("it was met").
    const WATCHER_AT: &str = "2026-03-02T05:00:00Z";
    test_at(WATCHER_AT)
        .given(story_assigned())
        .and(vec![contacted(LEAD, "2026-03-02T04:00:00Z")])
        .when(record_missed(Contact))
        .then_expect_events(vec![deadline_missed(Contact, CONTACT_DUE, WATCHER_AT)]);
}

#[test]
fn feedback_given_after_its_deadline_is_still_a_missed_deadline() {
    // Due 24:00 Tue local; feedback comes Wed 09:00 local, the watcher runs at Wed 10:00 local.
    test_at(LATER)
        .given(story_contacted())
        .and(vec![feedback_given(LEAD, "2026-03-04T01:00:00Z")])
        .when(record_missed(Feedback))
        .then_expect_events(vec![deadline_missed(Feedback, FEEDBACK_DUE, LATER)]);
}

#[test]
fn a_resolution_after_its_deadline_is_still_a_missed_deadline() {
    // Due 24:00 Mon 03-16 local; resolved Tue 10:00 local, the watcher runs Tue 11:00 local and is
    // refused with IllegalTransition because the appeal is no longer Assigned.
    const WATCHER_AT: &str = "2026-03-17T03:00:00Z";
    test_at(WATCHER_AT)
        .given(story_contacted())
        .and(vec![resolved(LEAD, "2026-03-17T02:00:00Z")])
        .when(record_missed(Resolution))
        .then_expect_events(vec![deadline_missed(
            Resolution,
            RESOLUTION_DUE,
            WATCHER_AT,
        )]);
}

// ---------------------------------------------------------------------------------------------
// Whole lifecycle
// ---------------------------------------------------------------------------------------------

#[test]
fn a_full_lifecycle_adds_up_to_a_closed_appeal() {
    let clock = Arc::new(FixedClock::new(t(FILED_AT)));
    let services = AppealServices::fixed(
        clock.clone(),
        Arc::new(WeekdayCalendar),
        SlaPolicy::default(),
    );
    let steps = [
        (FILED_AT, file(), filed()),
        (NOW, assign(LEAD, &[CO]), assigned(LEAD, &[CO])),
        (CONTACTED_AT, contact(CO), contacted(CO, CONTACTED_AT)),
        (
            FEEDBACK_AT,
            feedback(LEAD),
            feedback_given(LEAD, FEEDBACK_AT),
        ),
        (RESOLVED_AT, resolve(LEAD), resolved(LEAD, RESOLVED_AT)),
        (
            VISITED_AT,
            satisfied_visit(),
            return_visited(reached_satisfied(), VISITED_AT),
        ),
        (CLOSED_AT, close(), closed(CLOSED_AT)),
    ];
    let mut appeal = Appeal::default();
    for (now, command, expected) in steps {
        clock.set(t(now));
        let events = appeal
            .decide(&command, &services)
            .unwrap_or_else(|e| panic!("{}: {e}", command.name()));
        assert_eq!(events, vec![expected], "{}", command.name());
        for event in events {
            appeal.apply(event);
        }
    }
    assert_eq!(
        appeal,
        Appeal {
            id: Some(appeal_id()),
            tracking_number: Some(tracking_number()),
            channel: Some(Channel::EnterpriseWhistle),
            category: Some(Category::Infrastructure),
            status: S::Closed,
            lead: Some(dept(LEAD)),
            co_handlers: depts(&[CO]),
            involved: depts(&[LEAD, CO]).into_iter().collect(),
            deadlines: Some(deadlines_now()),
            basis: Some(DeadlineBasis {
                assigned_at: t(NOW),
                policy: SlaPolicy::default(),
                calendar: WEEKDAYS.into(),
                rework: None,
                extensions: vec![],
            }),
            contacted_at: Some(t(CONTACTED_AT)),
            feedback_at: Some(t(FEEDBACK_AT)),
            resolved_at: Some(t(RESOLVED_AT)),
            pending_extension_days: None,
            extensions_granted: 0,
            unreachable_visits: 0,
            missed: vec![],
        }
    );
    // The state itself survives JSON (it is snapshotted).
    let json = serde_json::to_string(&appeal).unwrap();
    assert_eq!(serde_json::from_str::<Appeal>(&json).unwrap(), appeal);
}

#[test]
fn a_troubled_history_adds_up_too() {
    let mut events = story_extended();
    events.extend([
        deadline_missed(Feedback, FEEDBACK_DUE, FEEDBACK_DUE),
        resolved(LEAD, RESOLVED_AT),
        return_visited(ReturnVisitResult::Unreachable, VISITED_AT),
        returned_for_rework(REWORK_DUE, REWORK_AT),
    ]);
    let appeal = replay(events);
    assert_eq!(appeal.status, S::Assigned);
    assert_eq!(
        appeal.deadlines,
        Some(deadlines(CONTACT_DUE, FEEDBACK_DUE, REWORK_DUE))
    );
    assert!(appeal.contacted_at.is_some());
    assert!(appeal.feedback_at.is_none());
    assert_eq!(appeal.extensions_granted, 1);
    assert_eq!(appeal.unreachable_visits, 0);
    assert_eq!(appeal.missed, vec![(Feedback, t(FEEDBACK_DUE))]);
    assert!(appeal.is_handled_by(&dept(LEAD)) && appeal.is_handled_by(&dept(CO)));
    assert!(!appeal.is_handled_by(&dept(OTHER)));
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn error_kinds_and_fields() {
    let invalid = AppealError::InvalidField {
        field: "co_handlers",
        reason: "x".into(),
    };
    let cases = [
        (AppealError::NotFound, ErrorKind::NotFound, None),
        (not_lead(CO), ErrorKind::Forbidden, None),
        (not_handler(OTHER), ErrorKind::Forbidden, None),
        (illegal("assign", S::Assigned), ErrorKind::Conflict, None),
        (invalid, ErrorKind::Invalid, Some("co_handlers")),
        (
            AppealError::DepartmentNotInvolved(dept(OTHER)),
            ErrorKind::Invalid,
            Some("department"),
        ),
        (AppealError::AlreadyFiled, ErrorKind::Conflict, None),
        (AppealError::AlreadyContacted, ErrorKind::Conflict, None),
        (AppealError::FeedbackAlreadyGiven, ErrorKind::Conflict, None),
        (AppealError::ContactNotRecorded, ErrorKind::Conflict, None),
        (
            AppealError::ResolutionDeadlinePassed {
                due: t(RESOLUTION_DUE),
            },
            ErrorKind::Conflict,
            None,
        ),
        (
            AppealError::ExtensionAlreadyPending,
            ErrorKind::Conflict,
            None,
        ),
        (AppealError::NoExtensionPending, ErrorKind::Conflict, None),
        (
            AppealError::ExtensionLimitReached { max: 2 },
            ErrorKind::Conflict,
            None,
        ),
        (not_missed(Contact, "it was met"), ErrorKind::Conflict, None),
        (
            AppealError::DeadlineMissAlreadyRecorded {
                which: Contact,
                due: t(CONTACT_DUE),
            },
            ErrorKind::Conflict,
            None,
        ),
    ];
    for (error, kind, field) in cases {
        assert_eq!(error.kind(), kind, "{error:?}");
        assert_eq!(error.field(), field, "{error:?}");
    }
}

#[test]
fn error_messages_name_what_went_wrong() {
    assert_eq!(
        illegal("assign", S::Assigned).to_string(),
        "the command `assign` is not allowed while the appeal's status is assigned"
    );
    assert_eq!(
        not_lead(CO).to_string(),
        "department housing-construction is not the lead department of this appeal"
    );
    assert_eq!(
        not_missed(Contact, "it was met").to_string(),
        "the contact deadline is not missed: it was met"
    );
    assert_eq!(
        AppealError::ExtensionLimitReached { max: 2 }.to_string(),
        "the appeal has already been granted the maximum of 2 extensions"
    );
}

// ---------------------------------------------------------------------------------------------
// Events on the wire
// ---------------------------------------------------------------------------------------------

/// One event of every kind (both return-visit results), as the tests above build them.
fn every_event() -> Vec<AppealEvent> {
    vec![
        filed(),
        assigned(LEAD, &[CO]),
        transferred(LEAD, NEW_LEAD, &[OTHER]),
        declined(LEAD, LATER),
        contacted(CO, CONTACTED_AT),
        feedback_given(LEAD, FEEDBACK_AT),
        resolved(LEAD, RESOLVED_AT),
        extension_requested(LEAD, 3, LATER),
        extension_approved(3, RESOLUTION_DUE, EXTENDED_DUE, LATER),
        extension_rejected(LATER),
        returned_for_rework(REWORK_DUE, REWORK_AT),
        return_visited(reached_satisfied(), VISITED_AT),
        return_visited(ReturnVisitResult::Unreachable, VISITED_AT),
        closed(CLOSED_AT),
        withdrawn(LATER),
        marked_duplicate(original_id(), LATER),
        supervised("2026-03-09T16:00:00Z", WEEKDAYS, LATER),
        accountability_recorded(LEAD, AccountabilityKind::EnterpriseHarassment, LATER),
        deadline_missed(Resolution, RESOLUTION_DUE, RESOLUTION_DUE),
    ]
}

#[test]
fn every_event_round_trips_through_json() {
    let events = every_event();
    let names: BTreeSet<&str> = events.iter().map(AppealEvent::name).collect();
    assert_eq!(names.len(), 18, "one event of each kind: {names:?}");
    for event in events {
        let json = serde_json::to_string(&event).unwrap();
        let back: AppealEvent =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(back, event, "{json}");
        // The variant name is the event's type in the store.
        assert!(
            json.starts_with(&format!("{{\"{}\":", event.name())),
            "{json}"
        );
        assert_eq!(event.event_type(), event.name());
        assert_eq!(event.event_version(), "1");
    }
}

#[test]
fn event_payloads_use_the_wire_names_of_values() {
    let json = serde_json::to_value(return_visited(reached_satisfied(), VISITED_AT)).unwrap();
    assert_eq!(
        json["ReturnVisitRecorded"]["result"],
        serde_json::json!({ "outcome": "reached", "solved": true, "satisfaction": "satisfied" })
    );
    let json = serde_json::to_value(deadline_missed(Contact, CONTACT_DUE, LATER)).unwrap();
    assert_eq!(
        json["DeadlineMissed"],
        serde_json::json!({
            "which": "contact",
            "due": "2026-03-02T03:00:00Z",
            "at": "2026-03-04T02:00:00Z",
        })
    );
}

// ---------------------------------------------------------------------------------------------
// SLA rules as data: policy per channel/category, recomputing after a calendar change
// ---------------------------------------------------------------------------------------------

/// Monday–Friday in 2026, except the dates given as days off; labelled like the rules do.
fn calendar_with_days_off(label: &str, off: &[&str]) -> Arc<dyn crate::calendar::WorkingCalendar> {
    let mut calendar = crate::calendar::OfficialCalendar::empty(label);
    calendar.publish_year(
        2026,
        off.iter()
            .map(|d| (d.parse::<chrono::NaiveDate>().unwrap(), false)),
    );
    Arc::new(calendar)
}

fn recompute() -> AppealCommand {
    AppealCommand::RecomputeDeadlines(super::RecomputeDeadlines::default())
}

#[test]
fn recompute_moves_deadlines_a_new_day_off_touches() {
    // given an assignment at Mon 03-02 computed with Monday–Friday ("weekdays"), extended by 3
    // working days to Thu 03-19; when Wed 03-11 becomes a day off (calendar-v9), then feedback
    // (Tue 03-03) stays, the resolution period ends a working day later: Tue 3 … Fri 13 has one
    // working day less, so the 10th is Tue 03-17, and the 3-day extension counts Wed 18, Thu 19,
    // Fri 20 → 24:00 Fri 03-20 local.
    let services = AppealServices::fixed(
        Arc::new(FixedClock::new(t(LATER))),
        calendar_with_days_off("calendar-v9", &["2026-03-11"]),
        SlaPolicy::default(),
    );
    let new = deadlines(CONTACT_DUE, FEEDBACK_DUE, "2026-03-20T16:00:00Z");
    TestFramework::<Appeal>::with(services)
        .given(story_extended())
        .when(recompute())
        .then_expect_events(vec![AppealEvent::DeadlinesRecomputed {
            previous: deadlines(CONTACT_DUE, FEEDBACK_DUE, EXTENDED_DUE),
            deadlines: new,
            previous_calendar: WEEKDAYS.into(),
            calendar: "calendar-v9".into(),
            reason: "calendar changed from weekdays to calendar-v9".into(),
            at: t(LATER),
        }]);
}

#[test]
fn recompute_records_nothing_when_the_change_misses_the_appeal() {
    // A day off after every deadline of the appeal changes none of them.
    let services = AppealServices::fixed(
        Arc::new(FixedClock::new(t(LATER))),
        calendar_with_days_off("calendar-v9", &["2026-05-01"]),
        SlaPolicy::default(),
    );
    TestFramework::<Appeal>::with(services)
        .given(story_extended())
        .when(recompute())
        .then_expect_events(vec![]);
    // Nor with the same calendar version the deadlines were computed with.
    test_at(LATER)
        .given(story_extended())
        .when(recompute())
        .then_expect_events(vec![]);
}

#[test]
fn recompute_after_rework_restarts_from_the_rework() {
    // Rework at Fri 03-13 + 5 working days = Fri 03-20 under weekdays; with Wed 03-18 off it
    // becomes Mon 03-23.
    let mut given = story_visited();
    given.push(returned_for_rework(REWORK_DUE, REWORK_AT));
    let services = AppealServices::fixed(
        Arc::new(FixedClock::new(t("2026-03-16T02:00:00Z"))),
        calendar_with_days_off("calendar-v9", &["2026-03-18"]),
        SlaPolicy::default(),
    );
    let events = TestFramework::<Appeal>::with(services)
        .given(given)
        .when(recompute())
        .inspect_result()
        .unwrap();
    let [AppealEvent::DeadlinesRecomputed { deadlines, .. }] = events.as_slice() else {
        panic!("expected one DeadlinesRecomputed, got {events:?}");
    };
    assert_eq!(deadlines.resolution_due, t("2026-03-23T16:00:00Z"));
    // feedback of the original assignment: Tue 03-03 is still a working day
    assert_eq!(deadlines.feedback_due, t(FEEDBACK_DUE));
}

#[test]
fn recompute_is_only_for_appeals_being_handled() {
    let err = run(LATER, vec![filed()], recompute()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[test]
fn assignment_uses_the_policy_of_the_appeals_channel_and_records_it() {
    use crate::rules::{FixedRules, Rulebook};
    use crate::sla::PolicyScope;
    let fast = SlaPolicy {
        contact_minutes: 30,
        feedback_working_days: 2,
        ..SlaPolicy::default()
    };
    let mut rules = Rulebook::fixed(Arc::new(WeekdayCalendar), SlaPolicy::default());
    rules.policies.set(
        PolicyScope {
            channel: Some(Channel::EnterpriseWhistle),
            category: None,
        },
        fast.clone(),
        12,
    );
    let services = AppealServices {
        clock: Arc::new(FixedClock::new(t(NOW))),
        rules: Arc::new(FixedRules(Arc::new(rules))),
    };
    TestFramework::<Appeal>::with(services)
        .given(vec![filed()])
        .when(assign(LEAD, &[]))
        .then_expect_events(vec![AppealEvent::AppealAssigned {
            lead: dept(LEAD),
            co_handlers: vec![],
            // 01:00Z + 30 min; feedback: Tue 3, Wed 4 → 24:00 Wed local
            deadlines: deadlines(
                "2026-03-02T01:30:00Z",
                "2026-03-04T16:00:00Z",
                RESOLUTION_DUE,
            ),
            calendar: WEEKDAYS.into(),
            policy: AppliedPolicy {
                label: "channel=enterprise_whistle,category=*@v12".into(),
                terms: fast,
            },
            at: t(NOW),
        }]);
}
