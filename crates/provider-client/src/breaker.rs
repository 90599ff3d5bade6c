//! The circuit breaker: after `threshold` consecutive failures the circuit
//! opens and refuses calls for a cool-down; then one trial call goes out, and
//! its outcome closes the circuit or opens it again.
//!
//! Every trial reports. Its [`Pass`] records the outcome it is given, and a
//! pass dropped without one (the caller's future cancelled, a deadline cut
//! it short) lets the next caller make the trial instead: a trial that never
//! reports would otherwise leave the circuit half-open, refusing every call
//! until a restart.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// Trial `trial` is out; other calls are refused until it reports.
    HalfOpen {
        trial: u64,
    },
}

#[derive(Debug)]
struct Inner {
    state: State,
    trials: u64,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    provider: &'static str,
    threshold: u32,
    cool_down: Duration,
    inner: Mutex<Inner>,
}

/// Leave to make one call; say how it went with [`Pass::succeeded`] or
/// [`Pass::failed`].
#[derive(Debug)]
#[must_use = "a pass reports how the call went"]
pub(crate) struct Pass<'a> {
    breaker: &'a Breaker,
    trial: Option<u64>,
}

impl Breaker {
    pub(crate) fn new(provider: &'static str, threshold: u32, cool_down: Duration) -> Self {
        Self {
            provider,
            threshold: threshold.max(1),
            cool_down,
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                trials: 0,
            }),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pass, or `None` while the circuit is open or a trial is out.
    pub(crate) fn admit(&self) -> Option<Pass<'_>> {
        let mut inner = self.inner();
        match inner.state {
            State::Closed { .. } => Some(Pass {
                breaker: self,
                trial: None,
            }),
            State::Open { until } if Instant::now() >= until => {
                inner.trials += 1;
                let trial = inner.trials;
                inner.state = State::HalfOpen { trial };
                Some(Pass {
                    breaker: self,
                    trial: Some(trial),
                })
            }
            State::Open { .. } | State::HalfOpen { .. } => None,
        }
    }

    fn record(&self, succeeded: bool) {
        let mut inner = self.inner();
        let next = match inner.state {
            _ if succeeded => State::Closed { failures: 0 },
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: Instant::now() + self.cool_down,
            },
        };
        match (inner.state, next) {
            (State::Closed { .. }, State::Open { .. })
            | (State::HalfOpen { .. }, State::Open { .. }) => {
                tracing::warn!(
                    provider = self.provider,
                    cool_down_ms = self.cool_down.as_millis() as u64,
                    "circuit opened"
                );
            }
            (State::Open { .. } | State::HalfOpen { .. }, State::Closed { .. }) => {
                tracing::info!(provider = self.provider, "circuit closed");
            }
            _ => {}
        }
        inner.state = next;
    }

    /// A trial ended without an outcome: the next caller tries instead. A
    /// later trial may already be out (this one's state was overtaken); it
    /// is left alone.
    fn abandon(&self, trial: u64) {
        let mut inner = self.inner();
        if inner.state == (State::HalfOpen { trial }) {
            inner.state = State::Open {
                until: Instant::now(),
            };
        }
    }
}

impl Pass<'_> {
    /// The provider answered (any answer but a timeout, a connection error
    /// or a 5xx): it is up.
    pub(crate) fn succeeded(mut self) {
        self.trial = None;
        self.breaker.record(true);
    }

    pub(crate) fn failed(mut self) {
        self.trial = None;
        self.breaker.record(false);
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if let Some(trial) = self.trial {
            self.breaker.abandon(trial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A breaker that opens after 2 failures and half-opens at once.
    fn breaker() -> Breaker {
        Breaker::new("test", 2, Duration::ZERO)
    }

    fn open(breaker: &Breaker) {
        breaker.admit().unwrap().failed();
        breaker.admit().unwrap().failed();
    }

    #[test]
    fn consecutive_failures_open_it_and_a_success_in_between_resets_the_count() {
        let breaker = Breaker::new("test", 2, Duration::from_secs(60));
        breaker.admit().unwrap().failed();
        breaker.admit().unwrap().succeeded();
        breaker.admit().unwrap().failed();
        assert!(breaker.admit().is_some(), "one failure since the success");
        breaker.admit().unwrap().failed();
        assert!(breaker.admit().is_none(), "two in a row open it");
    }

    #[test]
    fn after_the_cool_down_one_trial_goes_out_and_its_outcome_decides() {
        let breaker = breaker();
        open(&breaker);
        let trial = breaker.admit().unwrap();
        assert!(breaker.admit().is_none(), "one trial at a time");
        trial.failed();
        let trial = breaker.admit().unwrap();
        trial.succeeded();
        assert!(breaker.admit().is_some());
        assert!(breaker.admit().is_some(), "closed: everyone passes");
    }

    #[test]
    fn a_trial_dropped_without_an_outcome_lets_the_next_caller_try() {
        let breaker = breaker();
        open(&breaker);
        drop(breaker.admit().unwrap());
        let trial = breaker.admit();
        assert!(trial.is_some(), "the circuit is not stuck half-open");
    }

    #[test]
    fn an_overtaken_trial_does_not_release_a_later_one() {
        let breaker = breaker();
        open(&breaker);
        let first = breaker.admit().unwrap();
        // A call admitted before the circuit opened fails late: open again.
        breaker.record(false);
        let second = breaker.admit().unwrap();
        drop(first);
        assert!(breaker.admit().is_none(), "the second trial is still out");
        second.succeeded();
        assert!(breaker.admit().is_some());
    }
}
