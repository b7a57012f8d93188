//! Value types of the appeal domain. Each one is parsed once at the edge (from JSON or the CLI)
//! and is valid by construction afterwards: "parse, don't validate".

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a raw value could not become a domain value. The message is shown to API users verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// Implements `FromStr`, `TryFrom<String>`, `Display` and `From<T> for String` for a type with
/// `parse_str` and `as_str`, so serde can round-trip it through a string.
macro_rules! string_value {
    ($ty:ty) => {
        impl FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse_str(s)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                Self::parse_str(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.as_str().to_owned()
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Declares a closed set of wire names for a fieldless enum.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            fn parse_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    other => Err(err(format!(
                        "unknown {} {:?}; expected one of: {}",
                        $what,
                        other,
                        [$($wire),+].join(", ")
                    ))),
                }
            }
        }
        string_value!($name);
    };
}

wire_enum!(
    /// Where the appeal came in (渠道).
    Channel, "channel" {
        /// 110 social linkage (110社会联动).
        Linkage110 => "110",
        /// 12345 government service hotline.
        Hotline12345 => "12345",
        Online => "online",
        WalkIn => "walk_in",
        /// 电视问政.
        TvInquiry => "tv_inquiry",
        /// 企业吹哨.
        EnterpriseWhistle => "enterprise_whistle",
        /// 经济环境监督员.
        Supervisor => "supervisor",
    }
);

wire_enum!(
    /// What the appeal is about (诉求类别).
    Category, "category" {
        /// 乱收费.
        ArbitraryCharges => "arbitrary_charges",
        /// 乱罚款.
        ArbitraryFines => "arbitrary_fines",
        /// 乱摊派.
        ArbitraryApportionment => "arbitrary_apportionment",
        /// 乱检查.
        ArbitraryInspections => "arbitrary_inspections",
        /// 审批慢、办事难.
        ApprovalDelay => "approval_delay",
        /// 执法问题.
        LawEnforcement => "law_enforcement",
        /// 政策不兑现、有诺不践.
        PromiseBroken => "promise_broken",
        /// 基础设施配套.
        Infrastructure => "infrastructure",
        /// 企业周边治安.
        PublicSecurity => "public_security",
        Other => "other",
    }
);

wire_enum!(
    /// Who filed the appeal.
    FilerKind, "filer kind" {
        Enterprise => "enterprise",
        Citizen => "citizen",
    }
);

wire_enum!(
    /// How first contact was made (the "2" of 2110: on site or by reaching the filer).
    ContactMethod, "contact method" {
        OnSite => "on_site",
        Phone => "phone",
        Other => "other",
    }
);

wire_enum!(
    /// The handling department's conclusion (办理结果).
    ResolutionOutcome, "resolution outcome" {
        /// 已解决.
        Resolved => "resolved",
        /// 已解释说明.
        Explained => "explained",
        /// 无法解决.
        CannotResolve => "cannot_resolve",
    }
);

wire_enum!(
    /// The filer's evaluation at the return visit (满意度).
    Satisfaction, "satisfaction" {
        /// 满意.
        Satisfied => "satisfied",
        /// 基本满意.
        BasicallySatisfied => "basically_satisfied",
        /// 不满意.
        Dissatisfied => "dissatisfied",
    }
);

wire_enum!(
    /// Grounds for holding a department accountable (问责).
    AccountabilityKind, "accountability kind" {
        /// 推诿扯皮、办理延误.
        Delay => "delay",
        /// 弄虚作假.
        Fraud => "fraud",
        /// 侵企扰企: vetoes the department's ranking for the period (一票否决).
        EnterpriseHarassment => "enterprise_harassment",
    }
);

wire_enum!(
    /// The three deadlines of the "2110" mechanism.
    DeadlineKind, "deadline" {
        /// 2 hours: contact the filer or arrive on site.
        Contact => "contact",
        /// 1 working day: initial feedback.
        Feedback => "feedback",
        /// 10 working days: resolution.
        Resolution => "resolution",
    }
);

/// A department (部门) identifier: lowercase ASCII letters, digits, `-` and `_`, 1–64 characters,
/// starting with a letter, e.g. `market-supervision`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DepartmentId(String);

impl DepartmentId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse_str(s: &str) -> Result<Self, ParseError> {
        let ok = (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(err(format!(
                "invalid department id {s:?}: use 1-64 lowercase letters, digits, '-' or '_', starting with a letter"
            )))
        }
    }
}
string_value!(DepartmentId);

/// A phone number (personal data): mainland mobile (11 digits starting with 1), landline with
/// area code, or an international number with `+`. Spaces and hyphens are dropped.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse_str(s: &str) -> Result<Self, ParseError> {
        let compact: String = s.chars().filter(|c| *c != ' ' && *c != '-').collect();
        let (plus, digits) = match compact.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, compact.as_str()),
        };
        let all_digits = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
        let ok = all_digits
            && if plus {
                (8..=15).contains(&digits.len())
            } else if digits.starts_with('1') {
                digits.len() == 11
            } else {
                digits.starts_with('0') && (10..=12).contains(&digits.len())
            };
        if ok {
            Ok(Self(compact))
        } else {
            Err(err(
                "invalid phone number: expected an 11-digit mobile number, a landline with area code, or +<country code><number>",
            ))
        }
    }

    /// The number with its middle hidden, e.g. `138****0000`, for roles that may not see it.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        let keep_head = 3.min(chars.len());
        let keep_tail = 4.min(chars.len() - keep_head);
        let hidden = chars.len() - keep_head - keep_tail;
        let mut out: String = chars[..keep_head].iter().collect();
        out.extend(std::iter::repeat_n('*', hidden));
        out.extend(&chars[chars.len() - keep_tail..]);
        out
    }
}
string_value!(Phone);

/// Never print a phone number in logs or debug output.
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

/// Text typed by people: trimmed, non-empty, at most `MAX` characters, no control characters
/// except line breaks and tabs (and none at all when `MAX` is short, i.e. a single-line field).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const MAX: usize>(String);

/// A one-line name or label (≤ 200 characters).
pub type ShortText = Text<200>;
/// A description, reason or comment (≤ 5000 characters).
pub type LongText = Text<5000>;

impl<const MAX: usize> Text<MAX> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse_str(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(err("must not be empty"));
        }
        let len = s.chars().count();
        if len > MAX {
            return Err(err(format!(
                "too long: {len} characters, at most {MAX} allowed"
            )));
        }
        let multiline = MAX > 200;
        if let Some(c) = s
            .chars()
            .find(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
        {
            return Err(err(format!(
                "contains the control character U+{:04X}",
                c as u32
            )));
        }
        Ok(Self(s.to_owned()))
    }
}

impl<const MAX: usize> FromStr for Text<MAX> {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse_str(s)
    }
}
impl<const MAX: usize> TryFrom<String> for Text<MAX> {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse_str(&s)
    }
}
impl<const MAX: usize> From<Text<MAX>> for String {
    fn from(v: Text<MAX>) -> String {
        v.0
    }
}
impl<const MAX: usize> fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The human tracking number of an appeal: `LK-<year>-<serial, at least 6 digits>`,
/// e.g. `LK-2026-000123`. Serials restart each year.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrackingNumber(String);

impl TrackingNumber {
    pub fn new(year: i32, serial: u64) -> Self {
        Self(format!("LK-{year:04}-{serial:06}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse_str(s: &str) -> Result<Self, ParseError> {
        let bad = || {
            err(format!(
                "invalid tracking number {s:?}: expected LK-YYYY-NNNNNN"
            ))
        };
        let rest = s.strip_prefix("LK-").ok_or_else(bad)?;
        let (year, serial) = rest.split_once('-').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
        if year.len() == 4
            && digits(year)
            && serial.len() >= 6
            && serial.len() <= 12
            && digits(serial)
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(bad())
        }
    }
}
string_value!(TrackingNumber);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_wire_names_round_trip() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(*c));
        }
        let e = "fax".parse::<Channel>().unwrap_err();
        assert!(e.0.contains("unknown channel \"fax\""), "{e}");
        let json: Channel = serde_json::from_str("\"110\"").unwrap();
        assert_eq!(json, Channel::Linkage110);
    }

    #[test]
    fn department_ids_are_slugs() {
        assert!("market-supervision".parse::<DepartmentId>().is_ok());
        assert!("tax_2".parse::<DepartmentId>().is_ok());
        for bad in [
            "",
            "Market",
            "2tax",
            "a b",
            "x'; drop table",
            &"a".repeat(65),
        ] {
            assert!(bad.parse::<DepartmentId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn phones_parse_and_mask() {
        let p: Phone = "138 0013 0000".parse().unwrap();
        assert_eq!(p.as_str(), "13800130000");
        assert_eq!(p.masked(), "138****0000");
        assert_eq!(format!("{p:?}"), "Phone(138****0000)");
        assert!("0571-88886666".parse::<Phone>().is_ok());
        assert!("+85291234567".parse::<Phone>().is_ok());
        for bad in ["", "12345", "1380013000", "138001300001", "phone", "+1"] {
            assert!(bad.parse::<Phone>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_is_trimmed_bounded_and_printable() {
        let t: ShortText = "  某某科技有限公司 ".parse().unwrap();
        assert_eq!(t.as_str(), "某某科技有限公司");
        assert!("   ".parse::<ShortText>().is_err());
        assert!("a\u{0}b".parse::<LongText>().is_err());
        assert!("line\nbreak".parse::<ShortText>().is_err());
        assert!("line\nbreak".parse::<LongText>().is_ok());
        assert!("字".repeat(200).parse::<ShortText>().is_ok());
        assert!("字".repeat(201).parse::<ShortText>().is_err());
    }

    #[test]
    fn tracking_numbers() {
        assert_eq!(TrackingNumber::new(2026, 123).as_str(), "LK-2026-000123");
        assert!("LK-2026-000123".parse::<TrackingNumber>().is_ok());
        assert!("LK-2026-1234567".parse::<TrackingNumber>().is_ok());
        for bad in [
            "LK-26-000123",
            "XX-2026-000123",
            "LK-2026-12",
            "LK-2026-00012a",
        ] {
            assert!(bad.parse::<TrackingNumber>().is_err(), "{bad:?}");
        }
    }
}
