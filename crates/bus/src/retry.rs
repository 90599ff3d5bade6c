//! How long to wait before trying a record again.

use std::time::Duration;

use rand::Rng;

/// Back-off for transient failures: one delay per retry, each spread by
/// `jitter` (a fraction either side) so that records failing together do not
/// retry together. After the last delay the record is dead-lettered.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub delays: Vec<Duration>,
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 1 s, 5 s, 30 s: the schedule the reference designs settled on, long
    /// enough to ride out a provider restart, short enough to keep a payment
    /// inside its SLA.
    fn default() -> Self {
        Self {
            delays: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    pub fn new(delays: impl IntoIterator<Item = Duration>) -> Self {
        Self {
            delays: delays.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn none() -> Self {
        Self::new([])
    }

    /// Attempts a record gets in all: the first plus one per delay.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).map_or(u32::MAX, |retries| retries.saturating_add(1))
    }

    /// The wait after failed attempt number `attempt` (1-based), or `None`
    /// when the record has had all its attempts.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        self.delays
            .get(index)
            .map(|delay| spread(*delay, self.jitter))
    }
}

/// Parses a schedule such as `1s,5s,30s` or `250ms,2s` (for configuration).
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(parse_duration)
        .collect()
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 5s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value.saturating_mul(60))),
        _ => Err(format!("{text:?}: unit must be ms, s or m")),
    }
}

/// Back-off for writes that must eventually succeed (the dead-letter topic):
/// doubling from `first` up to `cap`, never giving up.
pub fn capped_doubling(first: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    spread(first.saturating_mul(factor).min(cap), 0.2)
}

fn spread(delay: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 || delay.is_zero() {
        return delay;
    }
    let factor = rand::rng().random_range((1.0 - jitter).max(0.0)..=(1.0 + jitter));
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_is_one_five_thirty_seconds_then_dead_letter() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.max_attempts(), 4);
        assert_eq!(policy.delay_after(1), Some(Duration::from_secs(1)));
        assert_eq!(policy.delay_after(2), Some(Duration::from_secs(5)));
        assert_eq!(policy.delay_after(3), Some(Duration::from_secs(30)));
        assert_eq!(policy.delay_after(4), None);
        assert_eq!(policy.delay_after(0), None);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let policy = RetryPolicy::new([Duration::from_secs(10)]);
        for _ in 0..200 {
            let delay = policy.delay_after(1).unwrap_or_default();
            assert!(delay >= Duration::from_secs(8) && delay <= Duration::from_secs(12));
        }
    }

    #[test]
    fn schedules_parse_with_units() {
        assert_eq!(
            parse_schedule("250ms, 5s,2m"),
            Ok(vec![
                Duration::from_millis(250),
                Duration::from_secs(5),
                Duration::from_secs(120)
            ])
        );
        assert!(parse_schedule("5h").is_err());
        assert!(parse_schedule("fast").is_err());
        assert_eq!(parse_schedule(""), Ok(vec![]));
    }

    #[test]
    fn capped_doubling_grows_then_stops_at_the_cap() {
        let first = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        assert!(capped_doubling(first, cap, 1) <= Duration::from_millis(120));
        assert!(capped_doubling(first, cap, 3) >= Duration::from_millis(320));
        assert!(capped_doubling(first, cap, 30) <= Duration::from_millis(1200));
    }
}
