//! What a provider says of its rate limit in its answers' headers, so the
//! client can keep under it before the provider has to answer 429.
//!
//! Three generations of the same idea are in use, and a provider may send
//! any of them (or several):
//!
//! - the IETF draft's structured fields (draft-ietf-httpapi-ratelimit-headers
//!   08 and later): `RateLimit-Policy: "default";q=100;w=60` (a quota of
//!   `q` requests per window of `w` seconds, one list member per policy) and
//!   `RateLimit: "default";r=12;t=40` (`r` requests left, the quota back in
//!   `t` seconds);
//! - the draft's earlier form: `RateLimit-Limit`, `RateLimit-Remaining`,
//!   `RateLimit-Reset` (delta seconds), with the window in `RateLimit-Policy:
//!   100;w=60` or in `RateLimit-Limit: 100, 100;w=60`;
//! - the `X-RateLimit-Limit` / `-Remaining` / `-Reset` headers many APIs
//!   send, whose reset is often a Unix time rather than a delay.
//!
//! A limit without a window (a bare `RateLimit-Limit: 100`) says nothing of
//! a rate, so it is not read; what is left and when it resets still is.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

/// A reset above this many seconds is a Unix time, not a delay: no provider
/// means "in 31 years", and GitHub-style `X-RateLimit-Reset` sends the time.
const UNIX_TIME_FROM: u64 = 1_000_000_000;

/// The provider's announced quota, the most restrictive of its policies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Policy {
    /// Requests per second it allows over time (`q / w`).
    pub per_second: f64,
    /// Requests it allows in one window, so at most at once (`q`).
    pub quota: u64,
}

/// What one answer said of the provider's rate limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Advice {
    pub policy: Option<Policy>,
    /// Requests left before the provider throttles (the lowest announced).
    pub remaining: Option<u64>,
    /// When the quota of `remaining` is back.
    pub reset: Option<Duration>,
}

/// Reads the rate-limit headers of an answer received at `now`.
pub(crate) fn read(headers: &HeaderMap, now: DateTime<Utc>) -> Advice {
    let mut policies = Vec::new();
    let mut left = Vec::new();
    for value in values(headers, "ratelimit-policy") {
        policies.extend(members(value).iter().filter_map(Member::policy));
    }
    for value in values(headers, "ratelimit-limit") {
        // `100, 100;w=60`: only members with a window are policies.
        policies.extend(
            members(value)
                .iter()
                .filter(|member| member.param("w").is_some())
                .filter_map(Member::policy),
        );
    }
    for value in values(headers, "ratelimit") {
        left.extend(members(value).iter().filter_map(|member| {
            let remaining = integer(member.param("r")?)?;
            let reset = member.param("t").and_then(integer).map(Duration::from_secs);
            Some((remaining, reset))
        }));
    }
    for (remaining, reset) in [
        ("ratelimit-remaining", "ratelimit-reset"),
        ("x-ratelimit-remaining", "x-ratelimit-reset"),
    ] {
        let remaining = first(headers, remaining).and_then(integer);
        let reset = first(headers, reset)
            .and_then(integer)
            .map(|seconds| delay(seconds, now));
        if let Some(remaining) = remaining {
            left.push((remaining, reset));
        }
    }
    // The most restrictive wins: the fewest left, and of those the longest
    // wait; the lowest rate, and the smallest quota.
    let (remaining, reset) = left
        .into_iter()
        .min_by(|(a, a_reset), (b, b_reset)| a.cmp(b).then(b_reset.cmp(a_reset)))
        .map_or((None, None), |(remaining, reset)| (Some(remaining), reset));
    let policy = policies.into_iter().reduce(|a, b| Policy {
        per_second: a.per_second.min(b.per_second),
        quota: a.quota.min(b.quota),
    });
    Advice {
        policy,
        remaining,
        reset,
    }
}

/// A reset in seconds: a delay, or past [`UNIX_TIME_FROM`] a Unix time.
fn delay(seconds: u64, now: DateTime<Utc>) -> Duration {
    if seconds < UNIX_TIME_FROM {
        return Duration::from_secs(seconds);
    }
    let now = u64::try_from(now.timestamp()).unwrap_or(0);
    Duration::from_secs(seconds.saturating_sub(now))
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
}

fn first<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    values(headers, name).next()
}

/// A non-negative integer; one too large for a u64 is `u64::MAX` (a
/// provider may say anything; the caller cuts waits to its maximum).
fn integer(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// One member of a structured-field list (RFC 8941): its item and its
/// parameters, unparsed.
#[derive(Debug)]
struct Member<'a> {
    item: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

impl Member<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
    }

    /// `"name";q=100;w=60` (draft 08 on) or `100;w=60` (earlier drafts).
    /// A window or quota of zero describes no rate the client could keep.
    fn policy(&self) -> Option<Policy> {
        let quota = match integer(self.item) {
            Some(quota) => quota,
            None => integer(self.param("q")?)?,
        };
        let window = integer(self.param("w")?)?;
        if quota == 0 || window == 0 {
            return None;
        }
        Some(Policy {
            per_second: quota as f64 / window as f64,
            quota,
        })
    }
}

/// The members of a list, split at commas and semicolons outside quoted
/// strings (a policy name may hold either).
fn members(value: &str) -> Vec<Member<'_>> {
    split_outside_quotes(value, b',')
        .into_iter()
        .filter(|member| !member.trim().is_empty())
        .map(|member| {
            let mut parts = split_outside_quotes(member, b';').into_iter();
            let item = parts.next().unwrap_or_default().trim();
            let params = parts
                .map(|param| {
                    let (key, value) = param.split_once('=').unwrap_or((param, ""));
                    (key.trim(), value.trim())
                })
                .collect();
            Member { item, params }
        })
        .collect()
}

fn split_outside_quotes(text: &str, separator: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (at, byte) in text.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if byte == separator && !quoted => {
                parts.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn advice(headers: &[(&'static str, &'static str)]) -> Advice {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        read(&map, now())
    }

    fn policy(per_second: f64, quota: u64) -> Option<Policy> {
        Some(Policy { per_second, quota })
    }

    #[test]
    fn the_structured_fields_of_the_current_draft() {
        let advice = advice(&[
            ("ratelimit-policy", r#""default";q=100;w=1"#),
            ("ratelimit", r#""default";r=0;t=1"#),
        ]);
        assert_eq!(
            advice,
            Advice {
                policy: policy(100.0, 100),
                remaining: Some(0),
                reset: Some(Duration::from_secs(1)),
            }
        );
    }

    #[test]
    fn several_policies_keep_the_most_restrictive() {
        let advice = advice(&[
            (
                "ratelimit-policy",
                r#""burst";q=100;w=1, "daily";q=86400;w=86400;pk=:YWJj:"#,
            ),
            ("ratelimit", r#""burst";r=50;t=1, "daily";r=7;t=3600"#),
        ]);
        assert_eq!(advice.policy, policy(1.0, 100));
        assert_eq!(advice.remaining, Some(7));
        assert_eq!(advice.reset, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn a_policy_name_may_hold_a_comma_or_semicolon() {
        let advice = advice(&[("ratelimit-policy", r#""a,b;c\"d";q=20;w=2"#)]);
        assert_eq!(advice.policy, policy(10.0, 20));
    }

    #[test]
    fn the_earlier_draft_headers() {
        let advice = advice(&[
            ("ratelimit-limit", "10"),
            ("ratelimit-remaining", "3"),
            ("ratelimit-reset", "7"),
            ("ratelimit-policy", "10;w=2"),
        ]);
        assert_eq!(
            advice,
            Advice {
                policy: policy(5.0, 10),
                remaining: Some(3),
                reset: Some(Duration::from_secs(7)),
            }
        );
        // The window given in RateLimit-Limit itself (drafts 00 to 02).
        let advice = super::tests::advice(&[("ratelimit-limit", "10, 10;w=1, 1000;w=3600")]);
        assert_eq!(advice.policy, policy(1000.0 / 3600.0, 10));
    }

    #[test]
    fn x_ratelimit_headers_with_a_delay_or_a_unix_time() {
        let advice = advice(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000042"),
        ]);
        assert_eq!(
            advice,
            Advice {
                // A limit with no window is no rate.
                policy: None,
                remaining: Some(0),
                reset: Some(Duration::from_secs(42)),
            }
        );
        let advice = super::tests::advice(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1600000000"),
        ]);
        assert_eq!(advice.reset, Some(Duration::ZERO), "a time past is now");
        let advice =
            super::tests::advice(&[("x-ratelimit-remaining", "4"), ("x-ratelimit-reset", "30")]);
        assert_eq!(advice.remaining, Some(4));
        assert_eq!(advice.reset, Some(Duration::from_secs(30)));
    }

    #[test]
    fn the_fewest_left_wins_across_forms() {
        let advice = advice(&[
            ("ratelimit", r#""default";r=5;t=1"#),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "2"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "9"),
        ]);
        assert_eq!(advice.remaining, Some(0));
        assert_eq!(advice.reset, Some(Duration::from_secs(9)));
    }

    #[test]
    fn nothing_readable_is_no_advice() {
        assert_eq!(advice(&[]), Advice::default());
        let advice = advice(&[
            (
                "ratelimit-policy",
                r#""default";q=0;w=1, "x";q=5;w=0, "y";q=5, "z";w=1"#,
            ),
            ("ratelimit", r#""default";t=1, "x";r=-1;t=1, "y";r=1.5"#),
            ("ratelimit-remaining", "soon"),
            ("x-ratelimit-remaining", ""),
            ("ratelimit-limit", "100"),
        ]);
        assert_eq!(advice, Advice::default());
    }

    #[test]
    fn numbers_too_large_for_a_clock_are_kept_for_the_caller_to_cut() {
        let advice = advice(&[
            ("ratelimit", r#""default";r=0;t=99999999999999999999999"#),
            (
                "ratelimit-policy",
                r#""default";q=1;w=99999999999999999999999"#,
            ),
        ]);
        assert_eq!(advice.reset, Some(Duration::from_secs(u64::MAX)));
        assert_eq!(advice.policy, policy(1.0 / u64::MAX as f64, 1));
    }
}
