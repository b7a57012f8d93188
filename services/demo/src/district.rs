//! The demo district: its departments, towns, channels, categories and the words people use.
//! Names follow the policy texts the project serves (the departments they make responsible:
//! 商务局, 财政局, 工信局, 自然资源局, 住建局, 行政审批局, 生态环境局, 水利局, 文化和旅游局, 科技局;
//! the 110 linkage and its police; the "four arbitraries" 四乱; 8 towns and parks with service
//! centres). Everything else (company names, phone numbers, texts) is invented.

use linkage_domain::values::{Category, Channel};

/// How well a department works: the chance (per mille) of each kind of slip, drawn per appeal.
#[derive(Debug, Clone, Copy)]
pub struct Quality {
    pub contact_late: u64,
    pub feedback_late: u64,
    pub resolution_late: u64,
    /// Of reached return visits.
    pub dissatisfied: u64,
    pub basically_satisfied: u64,
    /// Style evaluation scores are drawn from `style_floor..=5`.
    pub style_floor: u8,
}

const GOOD: Quality = Quality {
    contact_late: 15,
    feedback_late: 20,
    resolution_late: 25,
    dissatisfied: 25,
    basically_satisfied: 200,
    style_floor: 4,
};
const FAIR: Quality = Quality {
    contact_late: 40,
    feedback_late: 50,
    resolution_late: 60,
    dissatisfied: 55,
    basically_satisfied: 250,
    style_floor: 3,
};
/// Below the 90% target most months.
const WEAK: Quality = Quality {
    contact_late: 110,
    feedback_late: 120,
    resolution_late: 170,
    dissatisfied: 140,
    basically_satisfied: 300,
    style_floor: 2,
};

#[derive(Debug, Clone, Copy)]
pub struct Department {
    /// The id handler tokens carry.
    pub id: &'static str,
    pub name: &'static str,
    /// How it appears as a complained-about unit (被投诉单位).
    pub unit: &'static str,
    pub quality: Quality,
}

pub const DEPARTMENTS: &[Department] = &[
    Department {
        id: "administrative-approval",
        name: "区行政审批局",
        unit: "区行政审批局",
        quality: GOOD,
    },
    Department {
        id: "commerce",
        name: "区商务局",
        unit: "区商务局",
        quality: GOOD,
    },
    Department {
        id: "finance",
        name: "区财政局",
        unit: "区财政局",
        quality: GOOD,
    },
    Department {
        id: "industry-information",
        name: "区工信局",
        unit: "区工信局",
        quality: FAIR,
    },
    Department {
        id: "natural-resources",
        name: "区自然资源局",
        unit: "区自然资源局",
        quality: WEAK,
    },
    Department {
        id: "housing",
        name: "区住建局",
        unit: "区住建局",
        quality: WEAK,
    },
    Department {
        id: "ecology-environment",
        name: "区生态环境局",
        unit: "区生态环境局执法大队",
        quality: FAIR,
    },
    Department {
        id: "water-resources",
        name: "区水利局",
        unit: "区水利局",
        quality: GOOD,
    },
    Department {
        id: "culture-tourism",
        name: "区文化和旅游局",
        unit: "区文化和旅游局",
        quality: GOOD,
    },
    Department {
        id: "science-technology",
        name: "区科技局",
        unit: "区科技局",
        quality: GOOD,
    },
    Department {
        id: "market-supervision",
        name: "区市场监管局",
        unit: "区市场监管局城关分局",
        quality: FAIR,
    },
    Department {
        id: "tax",
        name: "区税务局",
        unit: "区税务局第一税务所",
        quality: GOOD,
    },
    Department {
        id: "public-security",
        name: "区公安分局",
        unit: "区公安分局城关派出所",
        quality: GOOD,
    },
    Department {
        id: "urban-management",
        name: "区综合行政执法局",
        unit: "某街道综合执法队",
        quality: FAIR,
    },
];

/// The department whose enterprise-harassment accountability (侵企扰企) vetoes its ranking
/// (一票否决) in the last month of the history.
pub const VETOED: &str = "urban-management";

pub fn department(id: &str) -> &'static Department {
    DEPARTMENTS
        .iter()
        .find(|d| d.id == id)
        .unwrap_or(&DEPARTMENTS[0])
}

/// 镇街 and parks (seed 003: eight towns and streets with convenience service centres).
pub const TOWNS: &[&str] = &[
    "城关街道",
    "东城街道",
    "西城街道",
    "青口镇",
    "沙河镇",
    "海头镇",
    "经济开发区",
    "高新技术产业园区",
];

/// Channels with their share of appeals (weights).
pub const CHANNELS: &[(Channel, u64)] = &[
    (Channel::Hotline12345, 38),
    (Channel::Linkage110, 22),
    (Channel::Online, 14),
    (Channel::WalkIn, 8),
    (Channel::EnterpriseWhistle, 8),
    (Channel::Supervisor, 6),
    (Channel::TvInquiry, 4),
];

/// A category: its share, the departments that lead it, whether it is usually about a
/// complained-about unit, and what filers write.
#[derive(Debug, Clone, Copy)]
pub struct CategoryProfile {
    pub category: Category,
    pub weight: u64,
    pub leads: &'static [&'static str],
    /// Per mille of appeals naming a complained-about unit.
    pub complaint: u64,
    pub descriptions: &'static [&'static str],
}

pub const CATEGORIES: &[CategoryProfile] = &[
    CategoryProfile {
        category: Category::ApprovalDelay,
        weight: 16,
        leads: &["administrative-approval", "natural-resources", "housing"],
        complaint: 300,
        descriptions: &[
            "施工许可申请已提交二十个工作日仍未答复，项目无法按期开工。",
            "不动产登记窗口要求补充法无规定的证明材料，来回跑了四趟。",
            "并联审批中两个部门意见不一致，互相推诿，审批停滞。",
        ],
    },
    CategoryProfile {
        category: Category::PromiseBroken,
        weight: 12,
        leads: &[
            "commerce",
            "industry-information",
            "finance",
            "science-technology",
        ],
        complaint: 250,
        descriptions: &[
            "招商时承诺的房租补贴至今未兑现，多次询问无人答复。",
            "技改奖补资金已公示半年仍未拨付。",
            "高新技术企业认定奖励迟迟不到位，企业资金周转困难。",
        ],
    },
    CategoryProfile {
        category: Category::Infrastructure,
        weight: 14,
        leads: &["housing", "water-resources", "natural-resources"],
        complaint: 50,
        descriptions: &[
            "园区道路长期积水，货车无法进出，请求协调修复。",
            "厂区供水管网压力不足，影响正常生产。",
            "园区污水管网未接通，企业无法通过环评验收。",
        ],
    },
    CategoryProfile {
        category: Category::LawEnforcement,
        weight: 10,
        leads: &["urban-management", "market-supervision", "public-security"],
        complaint: 600,
        descriptions: &[
            "执法人员对轻微违规顶格处罚，企业认为处罚过重。",
            "执法检查未出示证件，态度粗暴。",
            "同一问题被两个执法部门重复立案。",
        ],
    },
    CategoryProfile {
        category: Category::ArbitraryInspections,
        weight: 10,
        leads: &[
            "urban-management",
            "market-supervision",
            "ecology-environment",
        ],
        complaint: 800,
        descriptions: &[
            "同一周内三个部门先后上门检查，影响正常生产。",
            "\"企业宁静日\"期间仍有人员上门检查。",
            "检查人员要求企业停产配合，未说明依据。",
        ],
    },
    CategoryProfile {
        category: Category::ArbitraryFines,
        weight: 8,
        leads: &[
            "urban-management",
            "market-supervision",
            "ecology-environment",
        ],
        complaint: 800,
        descriptions: &[
            "门头招牌轻微不规范被罚款，未先行责令改正。",
            "罚款未开具正式票据。",
        ],
    },
    CategoryProfile {
        category: Category::ArbitraryCharges,
        weight: 8,
        leads: &["market-supervision", "finance", "tax"],
        complaint: 700,
        descriptions: &[
            "水电接入费用收费标准不明，要求公开依据。",
            "办理业务被要求购买指定服务，另行收费。",
        ],
    },
    CategoryProfile {
        category: Category::ArbitraryApportionment,
        weight: 4,
        leads: &["finance", "commerce"],
        complaint: 700,
        descriptions: &[
            "被要求赞助街道活动，否则影响后续审批。",
            "被摊派订阅报刊和培训费用。",
        ],
    },
    CategoryProfile {
        category: Category::PublicSecurity,
        weight: 8,
        leads: &["public-security"],
        complaint: 0,
        descriptions: &[
            "企业门口夜间有人聚集滋事，影响员工上下班安全。",
            "施工现场有人强行揽活、阻挠施工。",
            "厂区周边多次发生电缆被盗。",
        ],
    },
    CategoryProfile {
        category: Category::Other,
        weight: 10,
        leads: &["culture-tourism", "commerce", "industry-information", "tax"],
        complaint: 100,
        descriptions: &[
            "咨询小微企业税费减免政策的申报流程。",
            "希望协调解决员工子女入学问题。",
            "景区周边经营秩序混乱，影响游客体验。",
        ],
    },
];

pub const COMPANY_PREFIXES: &[&str] = &[
    "华联", "恒达", "鑫源", "海川", "金泰", "瑞丰", "宏远", "东方", "天成", "永盛", "港城", "青松",
];
pub const COMPANY_TRADES: &[&str] = &[
    "精密机械",
    "食品",
    "纺织",
    "物流",
    "建材",
    "电子科技",
    "医药",
    "水产",
    "新能源",
    "商贸",
];
pub const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"];

pub const CONTACT_NOTES: &[&str] = &[
    "已电话联系诉求人，了解具体情况",
    "已到达现场核实",
    "已与企业负责人约定上门时间",
];
pub const FEEDBACK_TEXTS: &[&str] = &[
    "已受理，正在协调相关科室核实办理",
    "已约定现场核实，三个工作日内给出处理意见",
    "已调取相关材料，正在研究解决方案",
];
pub const RESOLVED_TEXTS: &[&str] = &[
    "已协调解决，企业认可处理结果",
    "已现场整改完毕",
    "相关资金已拨付到位",
    "审批手续已办结，证照已送达企业",
];
pub const EXPLAINED_TEXTS: &[&str] = &[
    "已向诉求人解释相关政策依据",
    "经核实收费符合规定，已公开收费依据并向企业说明",
];
pub const CANNOT_RESOLVE_TEXTS: &[&str] =
    &["涉及规划调整，短期内无法解决，已纳入明年计划并向企业说明"];
pub const EXTENSION_REASONS: &[&str] = &[
    "需第三方检测，申请延期",
    "涉及多部门联合会商，申请延期",
    "需上级部门批复，申请延期",
];
pub const REWORK_REASONS: &[&str] = &[
    "答复敷衍，未回应诉求人核心问题",
    "诉求人不满意，问题未实际解决",
];
pub const DECLINE_REASONS: &[&str] = &["不属于本部门职责", "该事项已划转其他部门管理"];
pub const TRANSFER_REASONS: &[&str] = &["属其他部门职责，转办", "经核实由主管部门牵头办理"];
pub const VISIT_COMMENTS: &[&str] = &["满意", "处理及时", "基本满意，希望跟进", "问题仍未解决"];
