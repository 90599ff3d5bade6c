//! `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

/// The formats an HTTP-date may take: IMF-fixdate, which senders must use,
/// then the obsolete RFC 850 and asctime forms, which recipients must accept.
const HTTP_DATE_FORMATS: [&str; 3] = [
    "%a, %d %b %Y %H:%M:%S GMT",
    "%A, %d-%b-%y %H:%M:%S GMT",
    "%a %b %e %H:%M:%S %Y",
];

/// How long a `Retry-After` value asks to wait from `now`; `None` if it is
/// neither form. A number too large for any clock is `Duration::MAX`, left
/// for the caller to cut to its maximum.
pub(crate) fn parse(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let at = HTTP_DATE_FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())?
        .and_utc();
    // A date in the past means now.
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("1994-11-06T08:49:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn seconds_however_many() {
        assert_eq!(parse("120", now()), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            parse("18446744073709551615", now()),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse("99999999999999999999999", now()), Some(Duration::MAX));
    }

    #[test]
    fn an_http_date_in_each_of_its_three_forms() {
        let in_37s = Some(Duration::from_secs(37));
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT", now()), in_37s);
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT", now()), in_37s);
        assert_eq!(parse("Sun Nov  6 08:49:37 1994", now()), in_37s);
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:48:00 GMT", now()),
            Some(Duration::ZERO),
            "a date in the past is now"
        );
    }

    #[test]
    fn anything_else_is_not_a_retry_after() {
        for value in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994 08:49:37 PST"] {
            assert_eq!(parse(value, now()), None, "{value}");
        }
    }
}
