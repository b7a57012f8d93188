//! The simulated district: what each appeal is meant to go through (its *intent*, drawn from the
//! seed before anything runs) and, step by step, the next command it sends given the state the
//! real aggregate decided. Deadlines come from that state (the stored calendar and policy), so
//! "late" and "on time" are measured against the real deadlines, never assumed.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Timelike, Utc};
use linkage_domain::appeal::*;
use linkage_domain::assessment::period::Quarter;
use linkage_domain::assessment::{StyleCommand, StyleDimension, SubmitStyleEvaluation};
use linkage_domain::calendar::{TZ, add_working_days};
use linkage_domain::rules::Rulebook;
use linkage_domain::sla::StepsDone;
use linkage_domain::values::{
    AccountabilityKind, Category, Channel, ContactMethod, DeadlineKind, DepartmentId, FilerKind,
    LongText, ResolutionOutcome, Satisfaction, ShortText, TrackingNumber,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::district::{self, CATEGORIES, CHANNELS, DEPARTMENTS, TOWNS, VETOED};
use crate::rng::Rng;

fn long(s: impl AsRef<str>) -> LongText {
    s.as_ref().parse().expect("demo texts are valid")
}

fn short(s: impl AsRef<str>) -> ShortText {
    s.as_ref().parse().expect("demo names are valid")
}

fn dept(id: impl AsRef<str>) -> DepartmentId {
    id.as_ref().parse().expect("demo department ids are valid")
}

/// Who sends a command, as a token would say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub subject: String,
    pub role: &'static str,
    pub department: Option<String>,
}

impl Actor {
    fn staff(subject: &str, role: &'static str) -> Self {
        Self {
            subject: subject.to_owned(),
            role,
            department: None,
        }
    }

    fn dispatcher(index: usize) -> Self {
        Self::staff(&format!("dispatcher-{:02}", index % 4 + 1), "dispatcher")
    }

    fn supervisor() -> Self {
        Self::staff("supervisor-01", "supervisor")
    }

    fn evaluator(index: usize) -> Self {
        Self::staff(&format!("evaluator-{:02}", index % 3 + 1), "evaluator")
    }

    fn watcher() -> Self {
        Self::staff("sla-watcher", "system")
    }

    fn handler(department: &DepartmentId) -> Self {
        Self {
            subject: format!("handler-{department}"),
            role: "handler",
            department: Some(department.as_str().to_owned()),
        }
    }
}

/// How an appeal ends up, drawn before it is filed.
#[derive(Debug, Clone, PartialEq)]
enum End {
    Withdraw,
    Duplicate(Uuid),
    Handle,
}

#[derive(Debug, Clone)]
struct Intent {
    end: End,
    lead: DepartmentId,
    co_handlers: Vec<DepartmentId>,
    /// 退单 by the first lead, then assigned to this department.
    decline_to: Option<DepartmentId>,
    /// 转办 to this department before contact.
    transfer_to: Option<DepartmentId>,
    contact_late: bool,
    feedback_late: bool,
    resolution_late: bool,
    /// Working days asked, and whether the supervisor approves.
    extension: Option<(u32, bool)>,
    supervise: bool,
    outcome: ResolutionOutcome,
    /// Where in the resolution window the department resolves (0–1).
    resolve_fraction: f64,
    rework_by_supervisor: bool,
    first_visit_unreachable: bool,
    second_visit_reached: bool,
    satisfaction: Satisfaction,
    solved: bool,
    rework_after_dissatisfied: bool,
    accountability: Option<AccountabilityKind>,
}

/// One appeal of the simulation.
#[derive(Debug)]
pub struct AppealSim {
    pub index: usize,
    pub id: Uuid,
    pub filed_at: DateTime<Utc>,
    body: FileAppeal,
    intent: Intent,
    rng: Rng,
    planned: Option<(DateTime<Utc>, AppealCommand, Actor)>,
    pub last_at: DateTime<Utc>,
    pub steps: u32,
    declined: bool,
    transferred: bool,
    extension_asked: bool,
    supervised: bool,
    reworks: u32,
    reworked_after_visit: bool,
    visits: u32,
    last_visit_dissatisfied: bool,
    accountability_done: bool,
    contact_counted: bool,
    completion_counted: bool,
    visit_counted: bool,
    /// The assignment would need a calendar year that is not stored: the appeal waits, filed.
    pub waiting_for_calendar: bool,
    pub is_veto: bool,
}

/// What the generator itself counts, per department, as the metrics rules define it
/// (docs/metrics.md): the numbers a test compares the read models with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub contacts: u64,
    pub contacts_on_time: u64,
    pub completions: u64,
    pub completions_on_time: u64,
    pub visits: u64,
    pub solved: u64,
    pub satisfied: u64,
    pub basically_satisfied: u64,
    pub unreachable_visits: u64,
    pub extensions_approved: u64,
    pub extensions_rejected: u64,
    pub reworks: u64,
    pub transfers_away: u64,
    pub declines: u64,
    pub supervised: u64,
    pub deadlines_missed: u64,
    pub accountabilities: u64,
}

/// Counts over appeals, for comparing with the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppealCounts {
    /// Appeals with at least one approved extension.
    pub extended: u64,
    /// Appeals sent back for rework at least once.
    pub reworked: u64,
    /// Appeals with at least one missed deadline recorded.
    pub late: u64,
    /// Appeals filed with a complained-about unit (duplicates excluded).
    pub with_complained_unit: u64,
}

/// The appeals' draws, in filing order; the index in the vector is the appeal's index.
pub fn draw_appeals(
    rng: &mut Rng,
    count: usize,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<AppealSim> {
    let mut times: Vec<DateTime<Utc>> = (0..count).map(|_| filing_time(rng, from, until)).collect();
    times.sort();
    // The veto case: an inspection harassing an enterprise, filed a month before the end, whose
    // accountability (侵企扰企) lands in the last weeks.
    let veto_at = daytime_on(until - Duration::days(30), 10).max(from + Duration::hours(1));
    let veto_index = times.partition_point(|t| *t < veto_at);
    times.insert(veto_index, veto_at);

    let mut sims: Vec<AppealSim> = Vec::with_capacity(times.len());
    for (index, filed_at) in times.into_iter().enumerate() {
        let id = uuid::Builder::from_unix_timestamp_millis(
            filed_at.timestamp_millis() as u64,
            &rng.bytes10(),
        )
        .into_uuid();
        let mut own = Rng::new(rng.next_u64());
        let is_veto = index == veto_index;
        let (body, intent) = if is_veto {
            veto_draw(&mut own)
        } else {
            // A duplicate points at a handled appeal filed shortly before.
            let original = sims
                .iter()
                .rev()
                .take(40)
                .filter(|s| s.intent.end == End::Handle && !s.is_veto)
                .nth(own.below(5) as usize)
                .map(|s| s.id);
            draw(&mut own, original)
        };
        sims.push(AppealSim {
            index,
            id,
            filed_at,
            body,
            intent,
            rng: own,
            planned: None,
            last_at: filed_at,
            steps: 0,
            declined: false,
            transferred: false,
            extension_asked: false,
            supervised: false,
            reworks: 0,
            reworked_after_visit: false,
            visits: 0,
            last_visit_dissatisfied: false,
            accountability_done: false,
            contact_counted: false,
            completion_counted: false,
            visit_counted: false,
            waiting_for_calendar: false,
            is_veto,
        });
    }
    sims
}

/// Filing instants: fewer on weekends, mostly in office hours (Beijing time).
fn filing_time(rng: &mut Rng, from: DateTime<Utc>, until: DateTime<Utc>) -> DateTime<Utc> {
    loop {
        let at = rng.between(from, until);
        let local = at.with_timezone(&TZ);
        let weekend = local.weekday().number_from_monday() >= 6;
        if weekend && rng.chance(650) {
            continue;
        }
        let hour = local.hour();
        let keep = match hour {
            8..=17 => 1000,
            18..=21 => 450,
            7 | 22 => 150,
            _ => 30,
        };
        if rng.chance(keep) {
            return at;
        }
    }
}

/// `at`'s Beijing date at `hour`:00.
fn daytime_on(at: DateTime<Utc>, hour: u32) -> DateTime<Utc> {
    let date = at.with_timezone(&TZ).date_naive();
    let time = NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or_default();
    TZ.from_local_datetime(&date.and_time(time))
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(at)
}

/// `t` moved into office hours (08:00–20:00 Beijing) when that stays before `limit`.
fn office_hours(rng: &mut Rng, t: DateTime<Utc>, limit: DateTime<Utc>) -> DateTime<Utc> {
    let hour = t.with_timezone(&TZ).hour();
    let moved = if hour < 8 {
        daytime_on(t, 8) + rng.minutes(0, 120)
    } else if hour >= 20 {
        daytime_on(t + Duration::days(1), 8) + rng.minutes(0, 120)
    } else {
        return t;
    };
    if moved < limit { moved } else { t }
}

fn filer(rng: &mut Rng) -> Filer {
    let phone = format!("1380013{:04}", rng.below(10_000));
    let surname = *rng.pick(district::SURNAMES);
    if rng.chance(700) {
        let name = format!(
            "{}{}有限公司",
            rng.pick(district::COMPANY_PREFIXES),
            rng.pick(district::COMPANY_TRADES)
        );
        Filer {
            kind: FilerKind::Enterprise,
            name: short(&name),
            contact_person: Some(short(format!(
                "{surname}{}",
                rng.pick(&["经理", "总", "主任"])
            ))),
            phone: phone.parse().expect("demo phones are valid"),
        }
    } else {
        Filer {
            kind: FilerKind::Citizen,
            name: short(format!("{surname}{}", rng.pick(&["先生", "女士"]))),
            contact_person: None,
            phone: phone.parse().expect("demo phones are valid"),
        }
    }
}

fn other_department(rng: &mut Rng, not: &DepartmentId) -> DepartmentId {
    loop {
        let d = rng.pick(DEPARTMENTS);
        if d.id != not.as_str() {
            return dept(d.id);
        }
    }
}

fn draw(rng: &mut Rng, original: Option<Uuid>) -> (FileAppeal, Intent) {
    let channel = rng.weighted(CHANNELS, |c| c.1).0;
    let profile = rng.weighted(CATEGORIES, |c| c.weight);
    let lead = dept(rng.pick(profile.leads));
    let complained_unit = rng
        .chance(profile.complaint)
        .then(|| short(district::department(lead.as_str()).unit));
    let body = FileAppeal {
        channel,
        filer: filer(rng),
        category: profile.category,
        town: short(rng.pick(TOWNS)),
        description: long(rng.pick(profile.descriptions)),
        complained_unit,
    };
    let roll = rng.below(1000);
    let end = match (roll, original) {
        (0..30, _) => End::Withdraw,
        (30..50, Some(original)) => End::Duplicate(original),
        _ => End::Handle,
    };
    let mut co_handlers = Vec::new();
    if rng.chance(150) {
        co_handlers.push(other_department(rng, &lead));
    }
    let decline_to = rng.chance(30).then(|| other_department(rng, &lead));
    let transfer_to = (decline_to.is_none() && rng.chance(40)).then(|| {
        let to = other_department(rng, &lead);
        co_handlers.retain(|c| *c != to);
        to
    });
    // The department that ends up handling it decides how well it goes.
    let handling = transfer_to
        .as_ref()
        .or(decline_to.as_ref())
        .unwrap_or(&lead);
    let q = district::department(handling.as_str()).quality;
    let resolution_late = rng.chance(q.resolution_late);
    let extension =
        (!resolution_late && rng.chance(110)).then(|| (3 + rng.below(8) as u32, rng.chance(850)));
    let outcome = match rng.below(100) {
        0..78 => ResolutionOutcome::Resolved,
        78..95 => ResolutionOutcome::Explained,
        _ => ResolutionOutcome::CannotResolve,
    };
    let satisfaction = if rng.chance(q.dissatisfied) {
        Satisfaction::Dissatisfied
    } else if rng.chance(q.basically_satisfied) {
        Satisfaction::BasicallySatisfied
    } else {
        Satisfaction::Satisfied
    };
    let solved = match (outcome, satisfaction) {
        (ResolutionOutcome::CannotResolve, _) => false,
        (_, Satisfaction::Dissatisfied) => rng.chance(300),
        (ResolutionOutcome::Explained, _) => rng.chance(800),
        _ => rng.chance(980),
    };
    let intent = Intent {
        end,
        lead,
        co_handlers,
        decline_to,
        transfer_to,
        contact_late: rng.chance(q.contact_late),
        feedback_late: rng.chance(q.feedback_late),
        resolution_late,
        extension,
        supervise: rng.chance(40),
        outcome,
        resolve_fraction: 0.08 + rng.below(800) as f64 / 1000.0,
        rework_by_supervisor: rng.chance(45),
        first_visit_unreachable: rng.chance(60),
        second_visit_reached: rng.chance(600),
        satisfaction,
        solved,
        rework_after_dissatisfied: rng.chance(500),
        accountability: (resolution_late && rng.chance(300)).then_some(AccountabilityKind::Delay),
    };
    (body, intent)
}

/// The appeal behind the veto: an enterprise blows the whistle on repeated inspections.
fn veto_draw(rng: &mut Rng) -> (FileAppeal, Intent) {
    let lead = dept(VETOED);
    let body = FileAppeal {
        channel: Channel::EnterpriseWhistle,
        filer: filer(rng),
        category: Category::ArbitraryInspections,
        town: short("经济开发区"),
        description: long("执法人员一个月内五次上门检查并暗示赞助，企业无法正常生产。"),
        complained_unit: Some(short(district::department(VETOED).unit)),
    };
    let intent = Intent {
        end: End::Handle,
        lead,
        co_handlers: Vec::new(),
        decline_to: None,
        transfer_to: None,
        contact_late: false,
        feedback_late: false,
        resolution_late: false,
        extension: None,
        supervise: true,
        outcome: ResolutionOutcome::Resolved,
        resolve_fraction: 0.2,
        rework_by_supervisor: false,
        first_visit_unreachable: false,
        second_visit_reached: false,
        satisfaction: Satisfaction::Dissatisfied,
        solved: false,
        rework_after_dissatisfied: false,
        accountability: Some(AccountabilityKind::EnterpriseHarassment),
    };
    (body, intent)
}

/// A deadline kind's step done in time, per the aggregate's own rule.
fn met(state: &Appeal, which: DeadlineKind, due: DateTime<Utc>) -> bool {
    StepsDone {
        contacted_at: state.contacted_at,
        feedback_at: state.feedback_at,
        resolved_at: state.resolved_at,
    }
    .met(which, due)
}

impl AppealSim {
    /// The filing command; the loader puts in the tracking number it allocates.
    pub fn file_command(&self, tracking_number: TrackingNumber) -> AppealCommand {
        AppealCommand::File {
            appeal_id: self.id,
            tracking_number,
            body: self.body.clone(),
        }
    }

    pub fn filing_actor(&self) -> Actor {
        Actor::dispatcher(self.index)
    }

    pub fn has_complained_unit(&self) -> bool {
        self.body.complained_unit.is_some() && !matches!(self.intent.end, End::Duplicate(_))
    }

    /// The next command after the appeal reached `state`, not later than `until`; `None` when
    /// its story is over (or continues after `until`). A deadline that passes unmet before the
    /// next step is first recorded as the SLA watcher would, a few minutes after it.
    pub fn next(
        &mut self,
        state: &Appeal,
        rules: &Rulebook,
        until: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, AppealCommand, Actor)> {
        if self.planned.is_none() {
            self.planned = self.plan(state, rules);
        }
        let at = self.planned.as_ref()?.0;
        if let Some(deadlines) = state.deadlines
            && matches!(
                state.status,
                AppealStatus::Assigned
                    | AppealStatus::Resolved
                    | AppealStatus::ReturnVisited
                    | AppealStatus::Closed
            )
        {
            for which in [
                DeadlineKind::Contact,
                DeadlineKind::Feedback,
                DeadlineKind::Resolution,
            ] {
                let due = deadlines.due(which);
                if due <= at && !met(state, which, due) && !state.missed.contains(&(which, due)) {
                    let slack = ((at - due).num_seconds() / 2).clamp(0, 15 * 60);
                    let watch_at = (due
                        + Duration::seconds(1 + self.rng.below(slack as u64 + 1) as i64))
                    .max(self.last_at);
                    if watch_at > until {
                        return None;
                    }
                    // The step waits for the watcher: an appeal's instants never go backwards.
                    if let Some(planned) = self.planned.as_mut() {
                        planned.0 = planned.0.max(watch_at);
                    }
                    return Some((
                        watch_at,
                        AppealCommand::RecordDeadlineMissed(RecordDeadlineMissed { which }),
                        Actor::watcher(),
                    ));
                }
            }
        }
        if at > until {
            return None;
        }
        self.planned.take()
    }

    fn plan(
        &mut self,
        state: &Appeal,
        rules: &Rulebook,
    ) -> Option<(DateTime<Utc>, AppealCommand, Actor)> {
        let mut rng = std::mem::replace(&mut self.rng, Rng::new(0));
        let intent = self.intent.clone();
        let planned = self.plan_with(&mut rng, &intent, state, rules);
        self.rng = rng;
        planned
    }

    fn plan_with(
        &mut self,
        rng: &mut Rng,
        intent: &Intent,
        state: &Appeal,
        rules: &Rulebook,
    ) -> Option<(DateTime<Utc>, AppealCommand, Actor)> {
        use AppealStatus as S;
        let last = self.last_at;
        let step = |at: DateTime<Utc>, command: AppealCommand, actor: Actor| {
            Some((at.max(last), command, actor))
        };
        match state.status {
            S::NotFiled => None,
            S::Filed => match &intent.end {
                End::Withdraw => step(
                    last + rng.minutes(60, 360),
                    AppealCommand::Withdraw(WithdrawAppeal {
                        reason: long("诉求人来电撤回"),
                    }),
                    Actor::dispatcher(self.index),
                ),
                End::Duplicate(original) => step(
                    last + rng.minutes(20, 90),
                    AppealCommand::MarkDuplicate(MarkDuplicate {
                        original: *original,
                    }),
                    Actor::dispatcher(self.index),
                ),
                End::Handle => {
                    let lead = match (&intent.decline_to, self.declined) {
                        (Some(to), true) => to.clone(),
                        _ => intent.lead.clone(),
                    };
                    let at = last + rng.minutes(10, 100);
                    // The deadlines this appeal will need must be on the stored calendar.
                    let (policy, _) = rules
                        .policies
                        .resolve(self.body.channel, self.body.category);
                    let calendar = rules.calendar.as_ref();
                    let needs = |days: u32| add_working_days(calendar, at, days).is_ok();
                    let base = policy.resolution_working_days + 1;
                    if !needs(base) {
                        self.waiting_for_calendar = true;
                        return None;
                    }
                    let extra = self.intent.extension.map_or(0, |e| e.0)
                        + policy.rework_working_days
                        + policy.supervision_working_days;
                    if !needs(base + extra) {
                        // Near an unpublished year: keep to what the calendar can compute.
                        self.intent.extension = None;
                        self.intent.rework_by_supervisor = false;
                        self.intent.rework_after_dissatisfied = false;
                        self.intent.supervise = false;
                    }
                    let co_handlers = self
                        .intent
                        .co_handlers
                        .iter()
                        .filter(|c| **c != lead)
                        .cloned()
                        .collect();
                    Some((
                        at.max(last),
                        AppealCommand::Assign(AssignAppeal { lead, co_handlers }),
                        Actor::dispatcher(self.index),
                    ))
                }
            },
            S::Assigned => {
                let deadlines = state.deadlines?;
                let basis = state.basis.as_ref()?;
                let lead = state.lead.clone()?;
                let handler = Actor::handler(&lead);
                if state.contacted_at.is_none() {
                    if intent.decline_to.is_some() && !self.declined {
                        return step(
                            basis.assigned_at + rng.minutes(10, 60),
                            AppealCommand::Decline {
                                by: lead,
                                body: DeclineAppeal {
                                    reason: long(rng.pick(district::DECLINE_REASONS)),
                                },
                            },
                            handler,
                        );
                    }
                    if let (Some(to), false) = (&intent.transfer_to, self.transferred) {
                        return step(
                            basis.assigned_at + rng.minutes(10, 60),
                            AppealCommand::Transfer(TransferAppeal {
                                lead: to.clone(),
                                co_handlers: state
                                    .co_handlers
                                    .iter()
                                    .filter(|c| *c != to)
                                    .cloned()
                                    .collect(),
                                reason: long(rng.pick(district::TRANSFER_REASONS)),
                            }),
                            Actor::dispatcher(self.index),
                        );
                    }
                    let window = (deadlines.contact_due - basis.assigned_at).num_minutes();
                    let at = if intent.contact_late {
                        deadlines.contact_due + rng.minutes(20, 300)
                    } else {
                        basis.assigned_at + rng.minutes(3, (window - 3).max(4))
                    };
                    let method = *rng.pick(&[
                        ContactMethod::Phone,
                        ContactMethod::Phone,
                        ContactMethod::OnSite,
                    ]);
                    return step(
                        at,
                        AppealCommand::RecordContact {
                            by: lead,
                            body: RecordContact {
                                method,
                                note: Some(long(rng.pick(district::CONTACT_NOTES))),
                            },
                        },
                        handler,
                    );
                }
                if state.feedback_at.is_none() && state.resolved_at.is_none() {
                    let lo = last + rng.minutes(10, 60);
                    let hi = deadlines.feedback_due - Duration::minutes(5);
                    let at = if intent.feedback_late || lo >= hi {
                        deadlines.feedback_due.max(lo) + rng.minutes(60, 20 * 60)
                    } else {
                        let t = rng.between(lo, hi);
                        office_hours(rng, t, hi)
                    };
                    return step(
                        at,
                        AppealCommand::GiveInitialFeedback {
                            by: lead,
                            body: GiveInitialFeedback {
                                text: long(rng.pick(district::FEEDBACK_TEXTS)),
                            },
                        },
                        handler,
                    );
                }
                if state.pending_extension_days.is_some() {
                    let hi = deadlines.resolution_due - Duration::minutes(30);
                    let at = (last + rng.minutes(120, 20 * 60)).min(hi);
                    let approve = intent.extension.is_none_or(|e| e.1);
                    let command = if approve {
                        AppealCommand::ApproveExtension(ApproveExtension {
                            note: Some(long("同意延期")),
                        })
                    } else {
                        AppealCommand::RejectExtension(RejectExtension {
                            reason: long("理由不充分，请按期办结"),
                        })
                    };
                    return step(at, command, Actor::supervisor());
                }
                let first_round = state.basis.as_ref().is_some_and(|b| b.rework.is_none());
                if let (Some((days, _)), false, true) =
                    (intent.extension, self.extension_asked, first_round)
                {
                    self.extension_asked = true;
                    let lo = last + Duration::hours(1);
                    let hi = deadlines.resolution_due - Duration::days(1);
                    if lo < hi {
                        let span = (hi - lo) * 7 / 10;
                        let t = rng.between(lo, lo + span);
                        let at = office_hours(rng, t, hi);
                        return step(
                            at,
                            AppealCommand::RequestExtension {
                                by: lead,
                                body: RequestExtension {
                                    working_days: days.min(
                                        rules
                                            .policies
                                            .resolve(self.body.channel, self.body.category)
                                            .0
                                            .max_extension_working_days,
                                    ),
                                    reason: long(rng.pick(district::EXTENSION_REASONS)),
                                },
                            },
                            handler,
                        );
                    }
                }
                if intent.supervise && !self.supervised {
                    self.supervised = true;
                    let lo = last + Duration::hours(1);
                    let hi = deadlines.resolution_due - Duration::hours(2);
                    if lo < hi {
                        let t = rng.between(lo, lo + (hi - lo) / 3);
                        let at = office_hours(rng, t, hi);
                        return step(
                            at,
                            AppealCommand::Supervise(SuperviseAppeal {
                                note: long("请加快办理，按期答复企业"),
                                working_days: None,
                            }),
                            Actor::supervisor(),
                        );
                    }
                }
                // Resolve: late as intended on the first round, else within the window.
                let lo = last + Duration::hours(1);
                let hi = deadlines.resolution_due - Duration::minutes(1);
                let at = if intent.resolution_late && first_round {
                    deadlines.resolution_due.max(lo) + rng.minutes(120, 96 * 60)
                } else if lo < hi {
                    let fraction = if first_round {
                        intent.resolve_fraction
                    } else {
                        0.2 + rng.below(500) as f64 / 1000.0
                    };
                    let t =
                        lo + Duration::seconds(((hi - lo).num_seconds() as f64 * fraction) as i64);
                    office_hours(rng, t, hi)
                } else {
                    lo
                };
                let (outcome, texts) = match intent.outcome {
                    ResolutionOutcome::Resolved => (intent.outcome, district::RESOLVED_TEXTS),
                    ResolutionOutcome::Explained => (intent.outcome, district::EXPLAINED_TEXTS),
                    ResolutionOutcome::CannotResolve => {
                        (intent.outcome, district::CANNOT_RESOLVE_TEXTS)
                    }
                };
                step(
                    at,
                    AppealCommand::Resolve {
                        by: lead,
                        body: ResolveAppeal {
                            outcome,
                            text: long(rng.pick(texts)),
                        },
                    },
                    handler,
                )
            }
            S::Resolved => {
                if intent.rework_by_supervisor && self.reworks == 0 && self.visits == 0 {
                    return step(
                        last + rng.minutes(4 * 60, 30 * 60),
                        AppealCommand::ReturnForRework(ReturnForRework {
                            reason: long(district::REWORK_REASONS[0]),
                        }),
                        Actor::supervisor(),
                    );
                }
                if state.unreachable_visits > 0 && !(intent.second_visit_reached && self.visits < 2)
                {
                    return step(
                        last + rng.minutes(120, 24 * 60),
                        AppealCommand::Close(CloseAppeal {
                            note: Some(long("多次回访未接通，办结归档")),
                        }),
                        Actor::supervisor(),
                    );
                }
                let t = last + rng.minutes(4 * 60, 72 * 60);
                let at = office_hours(rng, t, t + Duration::days(1));
                let body = if intent.first_visit_unreachable && self.visits == 0 {
                    RecordReturnVisit {
                        reached: false,
                        solved: None,
                        satisfaction: None,
                        comment: Some(long("电话无人接听")),
                    }
                } else {
                    // After a rework the second answer usually satisfies.
                    let (satisfaction, solved) = if self.reworks > 0 && self.reworked_after_visit {
                        if rng.chance(700) {
                            (Satisfaction::Satisfied, true)
                        } else {
                            (Satisfaction::BasicallySatisfied, true)
                        }
                    } else {
                        (intent.satisfaction, intent.solved)
                    };
                    let comment = match satisfaction {
                        Satisfaction::Satisfied => district::VISIT_COMMENTS[0],
                        Satisfaction::BasicallySatisfied => district::VISIT_COMMENTS[2],
                        Satisfaction::Dissatisfied => district::VISIT_COMMENTS[3],
                    };
                    RecordReturnVisit {
                        reached: true,
                        solved: Some(solved),
                        satisfaction: Some(satisfaction),
                        comment: Some(long(comment)),
                    }
                };
                step(
                    at,
                    AppealCommand::RecordReturnVisit(body),
                    Actor::evaluator(self.index),
                )
            }
            S::ReturnVisited => {
                if self.last_visit_dissatisfied
                    && intent.rework_after_dissatisfied
                    && !self.reworked_after_visit
                {
                    return step(
                        last + rng.minutes(120, 24 * 60),
                        AppealCommand::ReturnForRework(ReturnForRework {
                            reason: long(district::REWORK_REASONS[1]),
                        }),
                        Actor::supervisor(),
                    );
                }
                step(
                    last + rng.minutes(120, 48 * 60),
                    AppealCommand::Close(CloseAppeal {
                        note: Some(long("已回访，办结归档")),
                    }),
                    Actor::supervisor(),
                )
            }
            S::Closed => {
                let kind = intent.accountability?;
                if self.accountability_done {
                    return None;
                }
                let department = state.lead.clone()?;
                let note = match kind {
                    AccountabilityKind::EnterpriseHarassment => {
                        "经查实，执法人员多次无故上门检查并变相索要赞助，属侵企扰企行为，予以问责"
                    }
                    AccountabilityKind::Fraud => "办结材料弄虚作假，予以问责",
                    AccountabilityKind::Delay => "超期办理，予以问责",
                };
                step(
                    last + rng.minutes(20 * 60, 60 * 60),
                    AppealCommand::RecordAccountability(RecordAccountability {
                        department,
                        kind,
                        note: long(note),
                    }),
                    Actor::supervisor(),
                )
            }
            S::Withdrawn | S::Duplicate => None,
        }
    }

    /// Counts what `command` made known, from the state before and after it (docs/metrics.md:
    /// one outcome of each kind per appeal, for the lead department at the time).
    pub fn record(
        &mut self,
        at: DateTime<Utc>,
        command: &AppealCommand,
        before: &Appeal,
        tallies: &mut BTreeMap<String, Tally>,
    ) {
        self.last_at = at;
        self.steps += 1;
        let lead = before.lead.as_ref().map(|d| d.as_str().to_owned());
        let mut tally = |department: Option<&str>, f: &dyn Fn(&mut Tally)| {
            if let Some(d) = department {
                f(tallies.entry(d.to_owned()).or_default());
            }
        };
        let lead = lead.as_deref();
        match command {
            AppealCommand::Decline { .. } => {
                self.declined = true;
                tally(lead, &|t| t.declines += 1);
            }
            AppealCommand::Transfer(_) => {
                self.transferred = true;
                tally(lead, &|t| t.transfers_away += 1);
            }
            AppealCommand::RecordContact { .. } if !self.contact_counted => {
                self.contact_counted = true;
                let on_time = before.deadlines.is_some_and(|d| at < d.contact_due);
                tally(lead, &|t| {
                    t.contacts += 1;
                    t.contacts_on_time += u64::from(on_time);
                });
            }
            AppealCommand::Resolve { .. } if !self.completion_counted => {
                self.completion_counted = true;
                let on_time = before.deadlines.is_some_and(|d| at < d.resolution_due);
                tally(lead, &|t| {
                    t.completions += 1;
                    t.completions_on_time += u64::from(on_time);
                });
            }
            AppealCommand::RecordDeadlineMissed(RecordDeadlineMissed { which }) => {
                tally(lead, &|t| t.deadlines_missed += 1);
                match which {
                    DeadlineKind::Contact if !self.contact_counted => {
                        self.contact_counted = true;
                        tally(lead, &|t| t.contacts += 1);
                    }
                    DeadlineKind::Resolution if !self.completion_counted => {
                        self.completion_counted = true;
                        tally(lead, &|t| t.completions += 1);
                    }
                    _ => {}
                }
            }
            AppealCommand::ApproveExtension(_) => tally(lead, &|t| t.extensions_approved += 1),
            AppealCommand::RejectExtension(_) => tally(lead, &|t| t.extensions_rejected += 1),
            AppealCommand::ReturnForRework(_) => {
                if before.status == AppealStatus::ReturnVisited {
                    self.reworked_after_visit = true;
                }
                self.reworks += 1;
                tally(lead, &|t| t.reworks += 1);
            }
            AppealCommand::Supervise(_) => tally(lead, &|t| t.supervised += 1),
            AppealCommand::RecordReturnVisit(visit) => {
                self.visits += 1;
                match (visit.reached, visit.solved, visit.satisfaction) {
                    (true, Some(solved), Some(satisfaction)) => {
                        self.last_visit_dissatisfied = satisfaction == Satisfaction::Dissatisfied;
                        if !self.visit_counted {
                            self.visit_counted = true;
                            tally(lead, &|t| {
                                t.visits += 1;
                                t.solved += u64::from(solved);
                                t.satisfied += u64::from(satisfaction == Satisfaction::Satisfied);
                                t.basically_satisfied +=
                                    u64::from(satisfaction == Satisfaction::BasicallySatisfied);
                            });
                        }
                    }
                    _ => tally(lead, &|t| t.unreachable_visits += 1),
                }
            }
            AppealCommand::RecordAccountability(a) => {
                self.accountability_done = true;
                tally(Some(a.department.as_str()), &|t| t.accountabilities += 1);
            }
            _ => {}
        }
    }

    /// Whether the appeal's history has what the ledger shows as extended / reworked / late.
    pub fn counts(&self, state: &Appeal, counts: &mut AppealCounts) {
        counts.extended += u64::from(state.extensions_granted > 0);
        counts.reworked += u64::from(self.reworks > 0);
        counts.late += u64::from(!state.missed.is_empty());
        counts.with_complained_unit += u64::from(self.has_complained_unit() && self.steps > 0);
    }
}

/// Quarterly style evaluations (作风评议) by enterprises: `per_department` evaluators score each
/// department once per quarter, during the quarter or the next one, before `until`.
pub fn draw_style_evaluations(
    rng: &mut Rng,
    per_department: usize,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, StyleCommand, Actor)> {
    let mut out = Vec::new();
    let mut quarter = Quarter::of(from);
    while quarter.months()[0].start() < until {
        let [first, _, last] = quarter.months();
        let next_end = last.next().next().next().end();
        let lo = first.start().max(from);
        // Most evaluations come in at the quarter's end and the first weeks after.
        let lo = lo.max(last.start()).min(until);
        let hi = next_end.min(until);
        if lo < hi {
            for (d, department) in DEPARTMENTS.iter().enumerate() {
                let floor = if department.id == VETOED {
                    2
                } else {
                    department.quality.style_floor
                };
                for e in 0..per_department {
                    let t = rng.between(lo, hi);
                    let at = office_hours(rng, t, hi);
                    let scores = StyleDimension::ALL
                        .iter()
                        .map(|dim| (*dim, floor + rng.below(u64::from(6 - floor)) as u8))
                        .collect();
                    let evaluator = format!("enterprise-{:03}", (e * 7 + d) % 60 + 1);
                    out.push((
                        at,
                        StyleCommand::Submit {
                            evaluator: evaluator.clone(),
                            evaluator_role: "enterprise".to_owned(),
                            body: SubmitStyleEvaluation {
                                quarter,
                                department: dept(department.id),
                                scores,
                                comment: None,
                            },
                        },
                        Actor::staff(&evaluator, "enterprise"),
                    ));
                }
            }
        }
        quarter = last.next().quarter();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    #[test]
    fn the_same_seed_draws_the_same_appeals_in_filing_order() {
        let (from, until) = (at("2026-05-23T00:00:00Z"), at("2026-11-23T00:00:00Z"));
        let a = draw_appeals(&mut Rng::new(1), 500, from, until);
        let b = draw_appeals(&mut Rng::new(1), 500, from, until);
        let c = draw_appeals(&mut Rng::new(2), 500, from, until);
        let key = |s: &[AppealSim]| {
            s.iter()
                .map(|a| (a.id, a.filed_at, a.body.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        // 500 drawn plus the appeal behind the veto.
        assert_eq!(a.len(), 501);
        assert_eq!(a.iter().filter(|s| s.is_veto).count(), 1);
        assert!(a.windows(2).all(|w| w[0].filed_at <= w[1].filed_at));
        assert!(a.iter().all(|s| s.filed_at >= from && s.filed_at < until));
        assert!(a.iter().all(|s| s.id.get_version_num() == 7));
        let withdrawn = a.iter().filter(|s| s.intent.end == End::Withdraw).count();
        assert!((5..=30).contains(&withdrawn), "{withdrawn}");
        for (i, s) in a.iter().enumerate() {
            if let End::Duplicate(original) = s.intent.end {
                assert!(a[..i].iter().any(|earlier| earlier.id == original));
            }
        }
    }

    #[test]
    fn style_evaluations_fall_in_an_open_quarter_before_the_end() {
        let (from, until) = (at("2026-05-23T00:00:00Z"), at("2026-11-23T00:00:00Z"));
        let evaluations = draw_style_evaluations(&mut Rng::new(3), 2, from, until);
        assert!(!evaluations.is_empty());
        for (when, StyleCommand::Submit { body, .. }, _) in &evaluations {
            assert!(*when >= from && *when < until);
            let current = Quarter::of(*when);
            assert!(
                body.quarter == current || body.quarter.months()[2].next().quarter() == current,
                "{} evaluated at {when}",
                body.quarter
            );
        }
    }

    /// A filed appeal's state, as the aggregate folds its filing.
    fn filed(sim: &AppealSim) -> Appeal {
        let mut appeal = Appeal::default();
        for event in appeal
            .decide(
                &sim.file_command(TrackingNumber::new(2026, 1)),
                &AppealServices::fixed(
                    std::sync::Arc::new(linkage_domain::clock::FixedClock::new(sim.filed_at)),
                    std::sync::Arc::new(linkage_domain::calendar::WeekdayCalendar),
                    Default::default(),
                ),
            )
            .expect("filing")
        {
            cqrs_es::Aggregate::apply(&mut appeal, event);
        }
        appeal
    }

    #[test]
    fn an_assignment_that_needs_an_unpublished_year_is_not_sent() {
        let rules = Rulebook::fixed(
            std::sync::Arc::new(linkage_domain::calendar::official().clone()),
            Default::default(),
        );
        let (from, until) = (at("2026-12-01T00:00:00Z"), at("2026-12-31T12:00:00Z"));
        let mut sims = draw_appeals(&mut Rng::new(4), 300, from, until);
        let (mut waiting, mut assigned_late) = (0, 0);
        for sim in sims.iter_mut().filter(|s| s.intent.end == End::Handle) {
            let state = filed(sim);
            match sim.next(&state, &rules, until) {
                Some((when, AppealCommand::Assign(_), _)) => {
                    // Its deadlines, extension and rework included, are on the calendar.
                    assert!(!sim.waiting_for_calendar);
                    assert!(add_working_days(rules.calendar.as_ref(), when, 11).is_ok());
                    if when > at("2026-12-12T00:00:00Z") {
                        assigned_late += 1;
                        assert!(sim.intent.extension.is_none() && !sim.intent.rework_by_supervisor);
                    }
                }
                None => {
                    assert!(sim.waiting_for_calendar, "filed {}", sim.filed_at);
                    assert!(sim.filed_at > at("2026-12-14T00:00:00Z"));
                    waiting += 1;
                }
                Some((_, other, _)) => panic!("unexpected {}", other.name()),
            }
        }
        assert!(
            waiting > 0 && assigned_late > 0,
            "{waiting} {assigned_late}"
        );
    }
}
