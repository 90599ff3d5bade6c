//! A provider's rate limit (`rate=50/s,burst=10`): a token bucket that
//! answers 429 with `Retry-After` when it is empty, and tells its clients on
//! every answer how it stands, in the IETF RateLimit headers, so a client
//! that reads them can keep under the limit instead of being throttled.
//!
//! Both forms of the headers go out, as real providers send either:
//!
//! - the draft's structured fields: `RateLimit-Policy: "default";q=Q;w=W`
//!   and `RateLimit: "default";r=R;t=T`;
//! - its earlier form: `RateLimit-Limit: Q`, `RateLimit-Remaining: R`,
//!   `RateLimit-Reset: T`.
//!
//! A token bucket is no fixed window, so the policy is its nearest honest
//! reading: a quota `Q` of the burst per window `W` of the whole seconds the
//! empty bucket takes to fill (at least one). `Q / W` is the rate exactly
//! when the burst is a whole number of seconds of it (the default burst is
//! one second), and under it otherwise, so a client keeping to the policy is
//! never throttled. `R` is the whole tokens left after this request, and `T`
//! the whole seconds, rounded up, until the bucket is full again: a client
//! that waits `T` after `R = 0` finds the whole burst there.

use std::fmt;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// `rate=PER_SECOND/s`, with `burst=BURST` requests at once at most
/// (default: one second of the rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// The window of the announced policy: the whole seconds an empty
    /// bucket takes to fill, at least one.
    fn window(self) -> u64 {
        u64::from(self.burst)
            .div_ceil(u64::from(self.per_second.max(1)))
            .max(1)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate={}/s", self.per_second)?;
        if self.burst != self.per_second {
            write!(f, ",burst={}", self.burst)?;
        }
        Ok(())
    }
}

/// The bucket behind a [`RateLimit`].
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: RateLimit,
    tokens: f64,
    refilled: Instant,
}

/// How a request found the bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Standing {
    /// It took a token; otherwise it is answered 429.
    pub admitted: bool,
    /// Whole tokens left after it.
    pub remaining: u64,
    /// Until the bucket is full again.
    pub full_in: Duration,
    /// Until a token is there (zero if one is).
    pub next_in: Duration,
}

impl Limiter {
    /// A full bucket.
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst),
            refilled: Instant::now(),
        }
    }

    pub(crate) fn take(&mut self, now: Instant) -> Standing {
        let rate = f64::from(self.limit.per_second.max(1));
        let burst = f64::from(self.limit.burst.max(1));
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.refilled = self.refilled.max(now);
        let admitted = self.tokens >= 1.0;
        if admitted {
            self.tokens -= 1.0;
        }
        // At most a burst of tokens over at least one per second: finite,
        // and far inside what a `Duration` holds.
        let seconds = |tokens: f64| Duration::from_secs_f64((tokens.max(0.0) / rate).min(1e9));
        Standing {
            admitted,
            remaining: self.tokens.floor() as u64,
            full_in: seconds(burst - self.tokens),
            next_in: seconds(1.0 - self.tokens),
        }
    }

    /// The RateLimit headers of an answer to a request that found `standing`.
    pub(crate) fn headers(&self, standing: &Standing) -> HeaderMap {
        let quota = u64::from(self.limit.burst);
        let window = self.limit.window();
        let remaining = standing.remaining;
        let reset = whole_seconds_up(standing.full_in);
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        put(
            "ratelimit-policy",
            format!("\"default\";q={quota};w={window}"),
        );
        put("ratelimit", format!("\"default\";r={remaining};t={reset}"));
        put("ratelimit-limit", quota.to_string());
        put("ratelimit-remaining", remaining.to_string());
        put("ratelimit-reset", reset.to_string());
        headers
    }
}

/// Whole seconds, rounded up: a client waiting that long finds what it was
/// promised.
pub(crate) fn whole_seconds_up(duration: Duration) -> u64 {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        seconds + 1
    } else {
        seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    #[test]
    fn a_burst_at_once_then_429_with_when_to_come_back() {
        let limit = RateLimit {
            per_second: 10,
            burst: 3,
        };
        let mut limiter = Limiter::new(limit);
        let start = limiter.refilled;
        let remaining: Vec<_> = (0..4)
            .map(|_| {
                let standing = limiter.take(start);
                (standing.admitted, standing.remaining)
            })
            .collect();
        assert_eq!(remaining, [(true, 2), (true, 1), (true, 0), (false, 0)]);
        let standing = limiter.take(start);
        assert_eq!(standing.next_in, Duration::from_millis(100));
        assert_eq!(standing.full_in, Duration::from_millis(300));
        assert!(limiter.take(start + Duration::from_millis(100)).admitted);
    }

    #[test]
    fn the_headers_say_the_policy_what_is_left_and_when_it_is_full() {
        let limit = RateLimit {
            per_second: 20,
            burst: 20,
        };
        let mut limiter = Limiter::new(limit);
        let standing = limiter.take(limiter.refilled);
        let headers = limiter.headers(&standing);
        assert_eq!(
            header(&headers, "ratelimit-policy"),
            r#""default";q=20;w=1"#
        );
        assert_eq!(header(&headers, "ratelimit"), r#""default";r=19;t=1"#);
        assert_eq!(header(&headers, "ratelimit-limit"), "20");
        assert_eq!(header(&headers, "ratelimit-remaining"), "19");
        assert_eq!(header(&headers, "ratelimit-reset"), "1");
    }

    #[test]
    fn the_policy_window_is_the_whole_seconds_a_burst_takes_to_refill() {
        let window = |per_second, burst| RateLimit { per_second, burst }.window();
        assert_eq!(window(20, 20), 1);
        assert_eq!(window(20, 40), 2);
        assert_eq!(window(20, 50), 3);
        assert_eq!(window(20, 5), 1);
        assert_eq!(window(1, u32::MAX), u64::from(u32::MAX));
    }

    #[test]
    fn whole_seconds_round_up() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 0);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds_up(Duration::from_millis(2001)), 3);
    }
}
