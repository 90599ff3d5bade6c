//! How the notification provider itself misbehaves, beside the HTTP
//! behaviour every provider has: answers that come after the client gave
//! up, and failures before delivery.
//!
//! Spec grammar: comma-separated settings, any order, all optional.
//! - `late=0.05` share of new messages delivered and recorded at once but
//!   answered only after `late-by`
//! - `late-by=30s` how late a late answer is (default 30 s)
//! - `fail=0.05` share of new messages answered 502 with nothing delivered
//!
//! An empty spec (or `ok`) is a provider that delivers and answers at once.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::behaviour::{SpecError, duration, parse_share};

#[derive(Debug, Clone, PartialEq)]
pub struct NotifyBehaviour {
    /// Share of new messages delivered and recorded at once but answered
    /// after `late_by`.
    pub late: f64,
    pub late_by: Duration,
    /// Share of new messages answered 502 before anything is delivered.
    pub fail: f64,
}

const DEFAULT_LATE_BY: Duration = Duration::from_secs(30);

impl Default for NotifyBehaviour {
    fn default() -> Self {
        Self {
            late: 0.0,
            late_by: DEFAULT_LATE_BY,
            fail: 0.0,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NotifySpecError {
    #[error("unknown setting `{0}` (expected late, late-by or fail)")]
    UnknownSetting(String),
    #[error("`{setting}`: {reason}")]
    BadValue {
        setting: &'static str,
        reason: String,
    },
}

impl From<SpecError> for NotifySpecError {
    fn from(error: SpecError) -> Self {
        match error {
            SpecError::UnknownSetting(name) => Self::UnknownSetting(name),
            SpecError::BadValue { setting, reason } => Self::BadValue { setting, reason },
        }
    }
}

impl FromStr for NotifyBehaviour {
    type Err = NotifySpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut notify = NotifyBehaviour::default();
        for setting in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = setting.split_once('=').unwrap_or((setting, ""));
            let value = value.trim();
            match name.trim() {
                "ok" => {}
                "late" => notify.late = parse_share("late", value)?,
                "late-by" => notify.late_by = duration("late-by", value)?,
                "fail" => notify.fail = parse_share("fail", value)?,
                other => return Err(NotifySpecError::UnknownSetting(other.to_owned())),
            }
        }
        Ok(notify)
    }
}

/// Prints every setting that is not its default (`ok` if none is), so the
/// text parses back to the same behaviour.
impl fmt::Display for NotifyBehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.late > 0.0 {
            parts.push(format!("late={}", self.late));
        }
        if self.late_by != DEFAULT_LATE_BY {
            parts.push(format!("late-by={}ms", self.late_by.as_millis()));
        }
        if self.fail > 0.0 {
            parts.push(format!("fail={}", self.fail));
        }
        if parts.is_empty() {
            parts.push("ok".to_owned());
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        let notify: NotifyBehaviour = "fail=0.25, late-by=2s, late=0.5"
            .parse()
            .unwrap_or_default();
        assert_eq!(notify.late, 0.5);
        assert_eq!(notify.late_by, Duration::from_secs(2));
        assert_eq!(notify.fail, 0.25);
        let printed = notify.to_string();
        assert_eq!(printed, "late=0.5,late-by=2000ms,fail=0.25");
        assert_eq!(printed.parse::<NotifyBehaviour>().ok(), Some(notify));

        let default = NotifyBehaviour::default();
        assert_eq!(default.to_string(), "ok");
        for spec in ["", "ok", " ok ", "late-by=30s", "late=0,fail=0"] {
            assert_eq!(spec.parse::<NotifyBehaviour>().ok(), Some(default.clone()));
        }
        // A late-by without late still prints, so nothing is lost on the way back.
        let quiet: NotifyBehaviour = "late-by=5s".parse().unwrap_or_default();
        assert_eq!(quiet.to_string(), "late-by=5000ms");
        assert_eq!(
            quiet.to_string().parse::<NotifyBehaviour>().ok(),
            Some(quiet)
        );
    }

    #[test]
    fn bad_specs_name_the_setting() {
        assert_eq!(
            NotifyBehaviour::from_str("lat=0.5"),
            Err(NotifySpecError::UnknownSetting("lat".into()))
        );
        for (spec, setting) in [
            ("late=1.5", "late"),
            ("late=", "late"),
            ("fail=-0.1", "fail"),
            ("fail=NaN", "fail"),
            ("late-by=3601s", "late-by"),
            ("late-by=soon", "late-by"),
        ] {
            match NotifyBehaviour::from_str(spec) {
                Err(NotifySpecError::BadValue { setting: named, .. }) => {
                    assert_eq!(named, setting, "{spec}");
                }
                other => panic!("`{spec}` gave {other:?}"),
            }
        }
        let unknown = NotifyBehaviour::from_str("retries=3")
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            unknown.contains("retries") && unknown.contains("late-by"),
            "{unknown}"
        );
    }
}
