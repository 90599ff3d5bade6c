//! How the rail itself misbehaves, beside the HTTP behaviour every provider
//! has: how long settlement takes, what share it rejects and why, and the
//! ways its answers and callbacks go wrong (late, pending, duplicated, out
//! of order, lost).
//!
//! Spec grammar: comma-separated settings, any order, all optional.
//! - `settle=50ms` or `settle=lognormal:50ms:400ms` acceptance to final status
//! - `rejections=0.1` share of accepted transfers rejected at settlement
//! - `reasons=AC01/AM04` the reason codes rejections pick from, uniformly
//! - `pending=0.2` share of acknowledgements answered PDNG instead of ACSP
//! - `late=0.05` share of transfers answered only after `late-by`
//! - `late-by=30s` how late a late answer is (default 30 s)
//! - `duplicates=0.1` share of final callbacks delivered twice
//! - `reorder=0.1` share of final callbacks followed by a stale ACSP report
//! - `lost=0.1` share of final callbacks never sent

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::ReasonCode;
use crate::behaviour::{Latency, SpecError, duration, parse_latency, parse_share};

#[derive(Debug, Clone, PartialEq)]
pub struct RailBehaviour {
    /// From acceptance to the final status.
    pub settle: Latency,
    /// Share of accepted transfers rejected at settlement.
    pub rejections: f64,
    /// The reasons rejections pick from, uniformly.
    pub reasons: Vec<ReasonCode>,
    /// Share of acknowledgements answered PDNG instead of ACSP.
    pub pending: f64,
    /// Share of new transfers recorded at once but answered after `late_by`.
    pub late: f64,
    pub late_by: Duration,
    /// Share of final callbacks delivered twice.
    pub duplicates: f64,
    /// Share of final callbacks followed by a stale ACSP report.
    pub reorder: f64,
    /// Share of final callbacks never sent.
    pub lost: f64,
}

const DEFAULT_SETTLE: Duration = Duration::from_millis(50);
const DEFAULT_LATE_BY: Duration = Duration::from_secs(30);

impl Default for RailBehaviour {
    fn default() -> Self {
        Self {
            settle: Latency::Fixed(DEFAULT_SETTLE),
            rejections: 0.0,
            reasons: ReasonCode::DEFAULT.to_vec(),
            pending: 0.0,
            late: 0.0,
            late_by: DEFAULT_LATE_BY,
            duplicates: 0.0,
            reorder: 0.0,
            lost: 0.0,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RailSpecError {
    #[error(
        "unknown setting `{0}` (expected settle, rejections, reasons, pending, late, late-by, duplicates, reorder or lost)"
    )]
    UnknownSetting(String),
    #[error("`{setting}`: {reason}")]
    BadValue {
        setting: &'static str,
        reason: String,
    },
}

impl From<SpecError> for RailSpecError {
    fn from(error: SpecError) -> Self {
        match error {
            SpecError::UnknownSetting(name) => Self::UnknownSetting(name),
            SpecError::BadValue { setting, reason } => Self::BadValue { setting, reason },
        }
    }
}

fn parse_reasons(text: &str) -> Result<Vec<ReasonCode>, RailSpecError> {
    let reasons = text
        .split('/')
        .filter(|code| !code.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<ReasonCode>, _>>()?;
    if reasons.is_empty() {
        return Err(RailSpecError::BadValue {
            setting: "reasons",
            reason: "at least one code, e.g. reasons=AC01/AM04".into(),
        });
    }
    Ok(reasons)
}

impl FromStr for RailBehaviour {
    type Err = RailSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut rail = RailBehaviour::default();
        for setting in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = setting.split_once('=').unwrap_or((setting, ""));
            let value = value.trim();
            match name.trim() {
                "ok" => {}
                "settle" => rail.settle = parse_latency("settle", value)?,
                "rejections" => rail.rejections = parse_share("rejections", value)?,
                "reasons" => rail.reasons = parse_reasons(value)?,
                "pending" => rail.pending = parse_share("pending", value)?,
                "late" => rail.late = parse_share("late", value)?,
                "late-by" => rail.late_by = duration("late-by", value)?,
                "duplicates" => rail.duplicates = parse_share("duplicates", value)?,
                "reorder" => rail.reorder = parse_share("reorder", value)?,
                "lost" => rail.lost = parse_share("lost", value)?,
                other => return Err(RailSpecError::UnknownSetting(other.to_owned())),
            }
        }
        Ok(rail)
    }
}

/// Prints `settle` always and every other setting that is not its default,
/// so the text parses back to the same behaviour.
impl fmt::Display for RailBehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![format!("settle={}", self.settle)];
        if self.rejections > 0.0 {
            parts.push(format!("rejections={}", self.rejections));
        }
        if self.reasons != ReasonCode::DEFAULT {
            let codes: Vec<&str> = self.reasons.iter().map(|reason| reason.code()).collect();
            parts.push(format!("reasons={}", codes.join("/")));
        }
        let shares = [
            ("pending", self.pending),
            ("late", self.late),
            ("duplicates", self.duplicates),
            ("reorder", self.reorder),
            ("lost", self.lost),
        ];
        for (name, share) in shares {
            if share > 0.0 {
                parts.push(format!("{name}={share}"));
            }
            if name == "late" && self.late_by != DEFAULT_LATE_BY {
                parts.push(format!("late-by={}ms", self.late_by.as_millis()));
            }
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        let rail: RailBehaviour =
            "settle=lognormal:50ms:400ms, rejections=0.1, reasons=AM04/AC01, \
             pending=0.2, late=0.05, late-by=2s, duplicates=0.3, reorder=0.4, lost=0.5"
                .parse()
                .unwrap_or_default();
        assert_eq!(
            rail.settle,
            Latency::LogNormal {
                median: Duration::from_millis(50),
                p99: Duration::from_millis(400)
            }
        );
        assert_eq!(rail.rejections, 0.1);
        assert_eq!(
            rail.reasons,
            [
                ReasonCode::InsufficientFunds,
                ReasonCode::IncorrectAccountNumber
            ]
        );
        assert_eq!(rail.late_by, Duration::from_secs(2));
        assert_eq!(rail.lost, 0.5);
        let printed = rail.to_string();
        assert_eq!(
            printed,
            "settle=lognormal:50ms:400ms,rejections=0.1,reasons=AM04/AC01,pending=0.2,\
             late=0.05,late-by=2000ms,duplicates=0.3,reorder=0.4,lost=0.5"
        );
        assert_eq!(printed.parse::<RailBehaviour>().ok(), Some(rail));

        let default = RailBehaviour::default();
        assert_eq!(default.to_string(), "settle=50ms");
        for spec in ["", "ok", "settle=50ms", "reasons=AC01/AC04/AG01/RR04/AM04"] {
            assert_eq!(spec.parse::<RailBehaviour>().ok(), Some(default.clone()));
        }
        // A late-by without late still prints, so nothing is lost on the way back.
        let quiet: RailBehaviour = "late-by=5s,settle=0".parse().unwrap_or_default();
        assert_eq!(quiet.to_string(), "settle=0ms,late-by=5000ms");
        assert_eq!(quiet.to_string().parse::<RailBehaviour>().ok(), Some(quiet));
    }

    #[test]
    fn bad_specs_name_the_setting() {
        assert_eq!(
            RailBehaviour::from_str("setle=5ms"),
            Err(RailSpecError::UnknownSetting("setle".into()))
        );
        for (spec, setting) in [
            ("rejections=1.5", "rejections"),
            ("pending=x", "pending"),
            ("late=-0.1", "late"),
            ("duplicates=2", "duplicates"),
            ("reorder=", "reorder"),
            ("lost=NaN", "lost"),
            ("late-by=3601s", "late-by"),
            ("settle=lognormal:400ms:50ms", "settle"),
            ("settle=fast", "settle"),
            ("reasons=AC01/XX99", "reasons"),
            ("reasons=", "reasons"),
        ] {
            match RailBehaviour::from_str(spec) {
                Err(RailSpecError::BadValue { setting: named, .. }) => {
                    assert_eq!(named, setting, "{spec}");
                }
                other => panic!("`{spec}` gave {other:?}"),
            }
        }
        let unknown = RailBehaviour::from_str("reasons=AC01/XX99")
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(unknown.contains("XX99"), "{unknown}");
    }
}
