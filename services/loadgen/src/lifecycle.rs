//! The realistic command mix: one *script* per appeal, drawn at random from the lifecycles a
//! district sees. The HTTP driver sends a script's steps one after another as the appeal's
//! callers would; the history seeder runs the same steps through the domain in-process, at the
//! simulated instants the steps' delays give.
//!
//! Shares of appeals (see BENCHMARKS.md, "The command mix"):
//! - 3 % withdrawn by the filer (file → withdraw), 2 % merged as duplicates (file → mark-duplicate);
//! - the rest are assigned (0–2 co-handlers), of which 5 % are transferred and 3 % declined and
//!   assigned again; then contact, initial feedback; 20 % ask for an extension (4 in 5 approved);
//!   5 % are supervised (督办); resolve; 10 % are sent back for rework before the return visit;
//!   return visit: 85 % reached and satisfied or basically satisfied, 7 % dissatisfied (rework,
//!   resolve again, visited again), 8 % unreachable; 2 % get an accountability record; close.
//! - In seeded history only (time is simulated there), 5 % are contacted late and the SLA watcher
//!   records the missed contact deadline.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

/// Departments appeals are assigned to (department ids as the tokens carry them).
pub const DEPARTMENTS: &[&str] = &[
    "market-supervision",
    "tax",
    "housing",
    "natural-resources",
    "ecology-environment",
    "emergency-management",
    "human-resources",
    "commerce",
    "transport",
    "public-security",
    "urban-management",
    "development-reform",
];

pub const CHANNELS: &[&str] = &[
    "12345",
    "12345",
    "12345",
    "110",
    "110",
    "online",
    "online",
    "walk_in",
    "tv_inquiry",
    "enterprise_whistle",
    "supervisor",
];

pub const CATEGORIES: &[&str] = &[
    "arbitrary_charges",
    "arbitrary_fines",
    "arbitrary_apportionment",
    "arbitrary_inspections",
    "approval_delay",
    "law_enforcement",
    "promise_broken",
    "infrastructure",
    "public_security",
    "other",
];

pub const TOWNS: &[&str] = &[
    "城关街道",
    "经济开发区",
    "高新园区",
    "东湖镇",
    "西山镇",
    "南港街道",
    "北塘镇",
    "临江镇",
];

const DESCRIPTIONS: &[&str] = &[
    "同一周内三个部门先后上门检查，影响正常生产。",
    "施工许可申请已提交二十个工作日仍未答复，项目无法开工。",
    "园区道路长期积水，货车无法进出，请求协调修复。",
    "招商时承诺的房租补贴至今未兑现，多次询问无人答复。",
    "执法人员对轻微违规顶格处罚，企业认为处罚过重。",
    "企业门口夜间有人聚集滋事，影响员工上下班安全。",
    "被要求赞助街道活动，否则影响后续审批。",
    "水电接入费用收费标准不明，要求公开依据。",
];

/// Who sends a step: the role, and for handlers the department of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Dispatcher,
    Handler(&'static str),
    Supervisor,
    Evaluator,
    /// The SLA watcher (admin token); only in seeded history.
    Watcher,
}

/// One command of a script.
#[derive(Debug, Clone)]
pub struct Step {
    /// The route's last segment and the command's name (`assign`, `contact`, …); `file` for the
    /// first step.
    pub command: &'static str,
    pub actor: Actor,
    /// The request body, exactly as the command API takes it.
    pub body: Value,
    /// Simulated time since the previous step (used by the seeder; the HTTP driver sends at once).
    pub after: Duration,
}

/// The steps of one appeal's life, the filing first.
#[derive(Debug, Clone)]
pub struct Script {
    pub steps: Vec<Step>,
}

/// SplitMix64: a small, fast, seedable generator, so a run's mix is reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Whether the script will be played live (HTTP, real clock) or into simulated history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeline {
    Live,
    History,
}

/// Draws one appeal's script. `original` is an appeal filed earlier that a duplicate can point
/// at (without one, no duplicate is drawn).
pub fn draw(rng: &mut Rng, original: Option<Uuid>, timeline: Timeline) -> Script {
    let mut steps = vec![file_step(rng)];
    let mut push = |command, actor, body, after| {
        steps.push(Step {
            command,
            actor,
            body,
            after,
        })
    };
    let roll = rng.below(100);
    if roll < 3 {
        push(
            "withdraw",
            Actor::Dispatcher,
            json!({"reason": "诉求人来电撤回"}),
            2 * HOUR,
        );
        return Script { steps };
    }
    if let (true, Some(original)) = (roll < 5, original) {
        push(
            "mark-duplicate",
            Actor::Dispatcher,
            json!({"original": original}),
            30 * MINUTE,
        );
        return Script { steps };
    }

    let mut lead = *rng.pick(DEPARTMENTS);
    push(
        "assign",
        Actor::Dispatcher,
        assign_body(rng, lead),
        15 * MINUTE,
    );
    if rng.chance(3) {
        push(
            "decline",
            Actor::Handler(lead),
            json!({"reason": "不属于本部门职责"}),
            30 * MINUTE,
        );
        lead = other_department(rng, lead);
        push(
            "assign",
            Actor::Dispatcher,
            assign_body(rng, lead),
            20 * MINUTE,
        );
    } else if rng.chance(5) {
        lead = other_department(rng, lead);
        push(
            "transfer",
            Actor::Dispatcher,
            json!({"lead": lead, "co_handlers": [], "reason": "属其他部门职责，转办"}),
            40 * MINUTE,
        );
    }
    let late_contact = timeline == Timeline::History && rng.chance(5);
    if late_contact {
        // The watcher looks just after the 2-hour deadline; the contact comes later still.
        push(
            "deadline-missed",
            Actor::Watcher,
            json!({"which": "contact"}),
            2 * HOUR + 5 * MINUTE,
        );
    }
    push(
        "contact",
        Actor::Handler(lead),
        json!({"method": if rng.chance(60) { "phone" } else { "on_site" }, "note": "已与诉求人取得联系"}),
        if late_contact { HOUR } else { 50 * MINUTE },
    );
    push(
        "feedback",
        Actor::Handler(lead),
        json!({"text": "已受理，正在核实情况，约定本周内上门处理"}),
        4 * HOUR,
    );
    if rng.chance(20) {
        push(
            "request-extension",
            Actor::Handler(lead),
            json!({"working_days": 1 + rng.below(5), "reason": "需第三方检测，申请延期"}),
            2 * DAY,
        );
        if rng.chance(80) {
            push(
                "approve-extension",
                Actor::Supervisor,
                json!({"note": "同意延期"}),
                2 * HOUR,
            );
        } else {
            push(
                "reject-extension",
                Actor::Supervisor,
                json!({"reason": "理由不充分"}),
                2 * HOUR,
            );
        }
    }
    if rng.chance(5) {
        push(
            "supervise",
            Actor::Supervisor,
            json!({"note": "请加快办理"}),
            DAY,
        );
    }
    push("resolve", Actor::Handler(lead), resolve_body(rng), 3 * DAY);
    if rng.chance(10) {
        push(
            "rework",
            Actor::Supervisor,
            json!({"reason": "答复敷衍，请重新办理"}),
            5 * HOUR,
        );
        push("resolve", Actor::Handler(lead), resolve_body(rng), 2 * DAY);
    }
    let visit = rng.below(100);
    if visit < 85 {
        let satisfaction = if rng.chance(80) {
            "satisfied"
        } else {
            "basically_satisfied"
        };
        push(
            "return-visit",
            Actor::Evaluator,
            json!({"reached": true, "solved": true, "satisfaction": satisfaction, "comment": "满意"}),
            DAY,
        );
    } else if visit < 92 {
        push(
            "return-visit",
            Actor::Evaluator,
            json!({"reached": true, "solved": false, "satisfaction": "dissatisfied", "comment": "问题未解决"}),
            DAY,
        );
        push(
            "rework",
            Actor::Supervisor,
            json!({"reason": "诉求人不满意，退回重办"}),
            3 * HOUR,
        );
        push("resolve", Actor::Handler(lead), resolve_body(rng), 3 * DAY);
        push(
            "return-visit",
            Actor::Evaluator,
            json!({"reached": true, "solved": true, "satisfaction": "basically_satisfied"}),
            DAY,
        );
    } else {
        push(
            "return-visit",
            Actor::Evaluator,
            json!({"reached": false}),
            DAY,
        );
    }
    if rng.chance(2) {
        push(
            "accountability",
            Actor::Supervisor,
            json!({"department": lead, "kind": "delay", "note": "办理拖延"}),
            2 * HOUR,
        );
    }
    push(
        "close",
        Actor::Supervisor,
        json!({"note": "已回访，办结归档"}),
        DAY,
    );
    Script { steps }
}

fn file_step(rng: &mut Rng) -> Step {
    let enterprise = rng.chance(70);
    let n = rng.below(100_000);
    let filer = if enterprise {
        json!({"kind": "enterprise", "name": format!("某某精密机械有限公司{n:05}"),
               "contact_person": "王经理", "phone": format!("138{:08}", rng.below(100_000_000))})
    } else {
        json!({"kind": "citizen", "name": format!("张{n:05}"),
               "phone": format!("139{:08}", rng.below(100_000_000))})
    };
    let complained_unit = rng
        .chance(40)
        .then(|| format!("某街道综合执法队{}", rng.below(20)));
    Step {
        command: "file",
        actor: Actor::Dispatcher,
        body: json!({
            "channel": rng.pick(CHANNELS),
            "filer": filer,
            "category": rng.pick(CATEGORIES),
            "town": rng.pick(TOWNS),
            "description": rng.pick(DESCRIPTIONS),
            "complained_unit": complained_unit,
        }),
        after: Duration::ZERO,
    }
}

fn assign_body(rng: &mut Rng, lead: &'static str) -> Value {
    let mut co_handlers = Vec::new();
    for _ in 0..rng.below(3) {
        let co = other_department(rng, lead);
        if !co_handlers.contains(&co) {
            co_handlers.push(co);
        }
    }
    json!({"lead": lead, "co_handlers": co_handlers})
}

fn resolve_body(rng: &mut Rng) -> Value {
    let outcome = match rng.below(10) {
        0 => "cannot_resolve",
        1 | 2 => "explained",
        _ => "resolved",
    };
    json!({"outcome": outcome, "text": "已协调相关部门现场处理，问题已解决"})
}

fn other_department(rng: &mut Rng, not: &str) -> &'static str {
    loop {
        let d = *rng.pick(DEPARTMENTS);
        if d != not {
            return d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_live_script_files_first_and_has_no_watcher_steps() {
        let mut rng = Rng::new(7);
        for _ in 0..2_000 {
            let script = draw(&mut rng, Some(Uuid::nil()), Timeline::Live);
            assert_eq!(script.steps[0].command, "file");
            assert!(script.steps[1..].iter().all(|s| s.command != "file"));
            assert!(script.steps.iter().all(|s| s.actor != Actor::Watcher));
        }
    }

    #[test]
    fn the_mix_has_the_documented_shares() {
        let mut rng = Rng::new(42);
        let n = 20_000;
        let (mut withdrawn, mut duplicates, mut extensions, mut closed) = (0, 0, 0, 0);
        for _ in 0..n {
            let script = draw(&mut rng, Some(Uuid::nil()), Timeline::History);
            let has = |c: &str| script.steps.iter().any(|s| s.command == c);
            withdrawn += usize::from(has("withdraw"));
            duplicates += usize::from(has("mark-duplicate"));
            extensions += usize::from(has("request-extension"));
            closed += usize::from(has("close"));
        }
        let share = |k: usize| k as f64 * 100.0 / n as f64;
        assert!(
            (2.5..3.5).contains(&share(withdrawn)),
            "{}",
            share(withdrawn)
        );
        assert!(
            (1.5..2.5).contains(&share(duplicates)),
            "{}",
            share(duplicates)
        );
        assert!((17.0..21.0).contains(&share(extensions)));
        assert_eq!(closed + withdrawn + duplicates, n);
    }

    #[test]
    fn the_generator_is_reproducible() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(1), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(1), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
