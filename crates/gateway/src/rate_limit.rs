//! Per-client-IP token buckets, for what no API key identifies: requests
//! without a valid key, and the card processor's webhook.
//!
//! Unlike service-kit's bucket, one here can be asked whether it is empty
//! without taking a token, so a request from an IP that is over its limit is
//! refused before its key is even checked: otherwise a key-guesser would still
//! learn, at full speed, which guess is right.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// IPs tracked at most; past it, those whose bucket is full again (idle) are
/// forgotten, and if every one is still draining the table starts afresh
/// rather than grow without bound under a flood of source addresses.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// `rate` requests per second per IP, in bursts of up to one second's worth.
#[derive(Debug, Clone)]
pub struct PerIp {
    rate: f64,
    buckets: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
}

impl PerIp {
    pub fn new(rate_per_second: u32) -> Self {
        Self {
            rate: f64::from(rate_per_second.max(1)),
            buckets: Arc::default(),
        }
    }

    fn capacity(&self) -> f64 {
        self.rate.max(1.0)
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed * self.rate).min(self.capacity()),
            at: now,
        }
    }

    fn wait_for(&self, bucket: Bucket) -> Option<Duration> {
        (bucket.tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
    }

    /// How long `ip` must wait before a request counted here, without
    /// taking anything; `None` if it may go now.
    pub fn wait(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.get(&ip).copied()?;
        self.wait_for(self.refilled(bucket, now))
    }

    /// Takes a token for `ip`, or says how long until one is there.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let capacity = self.capacity();
            buckets.retain(|_, bucket| self.refilled(*bucket, now).tokens < capacity);
            if buckets.len() >= MAX_TRACKED {
                buckets.clear();
            }
        }
        let full = Bucket {
            tokens: self.capacity(),
            at: now,
        };
        let bucket = buckets.entry(ip).or_insert(full);
        *bucket = self.refilled(*bucket, now);
        match self.wait_for(*bucket) {
            Some(wait) => Err(wait),
            None => {
                bucket.tokens -= 1.0;
                Ok(())
            }
        }
    }
}

/// The client's IP: the TCP peer. Behind a proxy that is the proxy's
/// address, so the proxy must do its own limiting per client.
pub fn client_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        // Served without connection info (a router in a test): one bucket.
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

pub fn too_many(detail: impl Into<String>, wait: Duration) -> Response {
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
        detail,
    )
    .retry_after(wait.as_secs_f64().ceil() as u64)
    .into_response()
}

/// Middleware for the webhook route: every request counts, signed or not.
pub async fn limit_per_ip(State(limit): State<PerIp>, request: Request, next: Next) -> Response {
    let ip = client_ip(&request);
    match limit.take(ip, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many(format!("{ip} is over this route's rate limit"), wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ip_has_its_own_allowance_and_a_peek_takes_nothing() {
        let limit = PerIp::new(2);
        let start = Instant::now();
        let (a, b) = (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        );
        assert_eq!(limit.wait(a, start), None);
        assert_eq!(limit.take(a, start), Ok(()));
        assert_eq!(limit.wait(a, start), None, "a peek takes no token");
        assert_eq!(limit.take(a, start), Ok(()));
        let wait = limit.wait(a, start).unwrap_or_default();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500));
        assert!(limit.take(a, start).is_err());
        assert_eq!(limit.take(b, start), Ok(()), "another IP is not affected");
        assert_eq!(limit.take(a, start + Duration::from_millis(500)), Ok(()));
    }

    #[test]
    fn the_table_of_ips_stays_bounded() {
        let limit = PerIp::new(1);
        let now = Instant::now();
        for n in 0..(MAX_TRACKED as u32 + 10) {
            assert!(limit.take(IpAddr::V4(Ipv4Addr::from(n)), now).is_ok());
        }
        let tracked = limit.buckets.lock().map(|b| b.len()).unwrap_or_default();
        assert!(tracked <= MAX_TRACKED, "{tracked}");
    }
}
