use std::time::{Duration, Instant};

/// A token bucket that holds at most one second of its rate: steady traffic
/// up to the rate passes, a burst above it is refused with the time until a
/// token is back (what a `Retry-After` should say).
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// `rate` tokens per second; must be positive.
    pub fn new(rate: f64) -> Self {
        let rate = rate.max(f64::MIN_POSITIVE);
        Self {
            rate,
            tokens: rate.max(1.0),
            refilled: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.refilled = now;
    }

    /// Takes `n` more tokens for work already admitted (a batch that counts
    /// as `n` requests), into debt if need be: later takes wait until the
    /// debt is paid back at the rate.
    pub fn charge(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.tokens -= n.max(0.0);
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_its_rate_per_second_then_says_when_to_retry() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0);
        bucket.refilled = start;
        for _ in 0..10 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).err().unwrap_or_default();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        assert_eq!(bucket.take(start + Duration::from_millis(100)), Ok(()));
    }

    #[test]
    fn a_charge_beyond_the_tokens_is_debt_that_later_takes_wait_out() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0);
        bucket.refilled = start;
        assert_eq!(bucket.take(start), Ok(()));
        // 9 tokens left; a batch of 29 more puts the bucket 20 in debt.
        bucket.charge(29.0, start);
        let wait = bucket.take(start).err().unwrap_or_default();
        assert!(wait > Duration::from_millis(2_000) && wait <= Duration::from_millis(2_100));
        assert_eq!(bucket.take(start + Duration::from_millis(2_100)), Ok(()));
    }
}
