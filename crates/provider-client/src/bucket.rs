//! The client's own token bucket: a rate and a burst that start as
//! configured and are lowered to what the provider announces, so the
//! provider does not have to say 429 first.

use std::time::{Duration, Instant};

/// No wait for a token is longer than this: a provider announcing one
/// request a year would otherwise ask for a `Duration` no clock can add.
/// Past it the caller asks again.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
pub(crate) struct Bucket {
    /// Tokens per second.
    rate: f64,
    /// Tokens held at most: how many tries can go out at once.
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    /// A full bucket; `rate` and `burst` are at least one (the settings
    /// refuse less).
    pub(crate) fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            refilled: now,
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    pub(crate) fn burst(&self) -> f64 {
        self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = self.refilled.max(now);
    }

    /// Takes a token, or says how long until one is there.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let seconds = (1.0 - self.tokens) / self.rate;
        Err(Duration::try_from_secs_f64(seconds).map_or(MAX_WAIT, |wait| wait.min(MAX_WAIT)))
    }

    /// Sets the rate and burst (what was earned at the old rate is kept,
    /// up to the new burst); says whether either changed.
    pub(crate) fn set_limits(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let (rate, burst) = (rate.max(f64::MIN_POSITIVE), burst.max(1.0));
        // Exactly the same limits, as every answer of a provider repeats.
        if rate.to_bits() == self.rate.to_bits() && burst.to_bits() == self.burst.to_bits() {
            return false;
        }
        self.refill(now);
        self.rate = rate;
        self.burst = burst;
        self.tokens = self.tokens.min(burst);
        true
    }

    /// Holds no more than `tokens`: what the provider says it has left.
    pub(crate) fn at_most(&mut self, tokens: f64, now: Instant) {
        self.refill(now);
        self.tokens = self.tokens.min(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_at_once_then_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10.0, 3.0, start);
        for _ in 0..3 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).err().unwrap_or_default();
        assert!(wait > Duration::from_millis(99) && wait <= Duration::from_millis(100));
        assert_eq!(bucket.take(start + Duration::from_millis(100)), Ok(()));
        // A long idle time refills no more than the burst.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.take(later), Ok(()));
        }
        assert!(bucket.take(later).is_err());
    }

    #[test]
    fn limits_lowered_keep_what_was_earned_up_to_the_new_burst() {
        let start = Instant::now();
        let mut bucket = Bucket::new(100.0, 100.0, start);
        assert!(bucket.set_limits(10.0, 5.0, start));
        assert!(!bucket.set_limits(10.0, 5.0, start), "unchanged");
        for _ in 0..5 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).err().unwrap_or_default();
        assert!(wait > Duration::from_millis(99) && wait <= Duration::from_millis(100));
    }

    #[test]
    fn what_the_provider_has_left_caps_the_tokens() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10.0, 10.0, start);
        bucket.at_most(1.0, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert!(bucket.take(start).is_err());
        bucket.at_most(0.0, start + Duration::from_millis(100));
        assert!(bucket.take(start + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn a_wait_too_long_for_a_clock_is_cut() {
        let start = Instant::now();
        let mut bucket = Bucket::new(1e-300, 1.0, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start), Err(MAX_WAIT));
    }
}
