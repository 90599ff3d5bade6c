//! A closed-loop HTTP/1.1 load generator for the benchmarks, the way `wrk`
//! drives a server: a fixed number of keep-alive connections, each sending
//! its next request as soon as the last is answered. It runs on hyper's bare
//! client connection (no pool, no redirects, no per-request URL parsing) so
//! that it spends little of the CPU it shares with what it measures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How hard and how long to drive.
#[derive(Debug, Clone)]
pub struct Load {
    pub connections: usize,
    /// Requests before this are sent but not counted: connections, caches
    /// and pools warm up.
    pub warmup: Duration,
    /// The timed window after the warm-up.
    pub duration: Duration,
}

/// What the timed window saw.
#[derive(Debug, Clone)]
pub struct Report {
    pub requests: usize,
    pub elapsed: Duration,
    /// Of every request answered inside the window, sorted.
    pub latencies: Vec<Duration>,
    /// Answers by status code, warm-up included.
    pub statuses: BTreeMap<u16, usize>,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index.min(self.latencies.len() - 1)]
    }
}

/// Drives `request(n)` (n counts every request sent, from 0) at `address`
/// over `load.connections` connections. Panics if a connection fails: a
/// figure with lost requests would be wrong.
pub async fn drive<F>(address: SocketAddr, load: &Load, request: F) -> Report
where
    F: Fn(usize) -> Request<Full<Bytes>> + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let window = (started + load.warmup, started + load.warmup + load.duration);
    let tasks: Vec<_> = (0..load.connections)
        .map(|_| tokio::spawn(connection(address, window, request.clone(), sent.clone())))
        .collect();
    let mut latencies = Vec::new();
    let mut statuses = BTreeMap::new();
    for task in tasks {
        let (own, own_statuses) = task.await.unwrap();
        latencies.extend(own);
        for (status, count) in own_statuses {
            *statuses.entry(status).or_insert(0) += count;
        }
    }
    latencies.sort();
    Report {
        requests: latencies.len(),
        elapsed: load.duration,
        latencies,
        statuses,
    }
}

async fn connection<F>(
    address: SocketAddr,
    (from, until): (Instant, Instant),
    request: Arc<F>,
    sent: Arc<AtomicUsize>,
) -> (Vec<Duration>, BTreeMap<u16, usize>)
where
    F: Fn(usize) -> Request<Full<Bytes>> + Send + Sync + 'static,
{
    let stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut latencies = Vec::new();
    let mut statuses = BTreeMap::new();
    loop {
        let start = Instant::now();
        if start >= until {
            break;
        }
        let next = request(sent.fetch_add(1, Ordering::Relaxed));
        let response = sender.send_request(next).await.unwrap();
        let status = response.status().as_u16();
        response.into_body().collect().await.unwrap();
        let end = Instant::now();
        *statuses.entry(status).or_insert(0) += 1;
        if start >= from && end <= until {
            latencies.push(end - start);
        }
    }
    (latencies, statuses)
}
