use std::time::Duration;

/// How one provider is called.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Calls in flight at most.
    pub concurrency: usize,
    /// Tries per second at most (the provider's documented rate). A
    /// provider that announces a lower rate in its `RateLimit` headers is
    /// kept under that instead; never above this.
    pub rate_per_second: u32,
    /// Tries sent at once at most after a quiet spell (the token bucket's
    /// capacity; the provider's documented burst). `None` is one second of
    /// `rate_per_second`. Lowered, like the rate, to a smaller quota the
    /// provider announces.
    pub burst: Option<u32>,
    /// Timeout of one try.
    pub timeout: Duration,
    /// Tries per call for timeouts, connection errors and 5xx.
    pub attempts: u32,
    /// Consecutive failures that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit refuses calls before one trial call.
    pub breaker_cool_down: Duration,
    /// The longest `Retry-After` honoured. A provider can ask for anything,
    /// a day or a number that overflows a clock; past this the client tries
    /// again anyway, and the provider can say so again. At most a day.
    pub max_retry_after: Duration,
    /// `User-Agent` of every call.
    pub user_agent: String,
    /// Which HTTP the calls speak.
    pub protocol: Protocol,
}

/// Which HTTP a client speaks to its provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/2 where TLS negotiates it (ALPN), HTTP/1.1 otherwise: what
    /// any provider accepts.
    #[default]
    Auto,
    /// HTTP/2 only, over cleartext too (h2c with prior knowledge), for a
    /// provider known to speak it. Thousands of calls in flight then share a
    /// few connections, and one write carries many requests, where HTTP/1.1
    /// needs a connection and a write and a read per call in flight.
    Http2,
}

impl Protocol {
    pub const ALL: [Self; 2] = [Self::Auto, Self::Http2];

    /// The setting's value: `auto` or `http2`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Http2 => "http2",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|protocol| protocol.name() == text)
            .ok_or_else(|| format!("{text:?} is not a protocol: auto or http2"))
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            concurrency: 256,
            rate_per_second: 5_000,
            burst: None,
            timeout: Duration::from_secs(2),
            attempts: 3,
            breaker_threshold: 20,
            breaker_cool_down: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
            user_agent: concat!("paystream/", env!("CARGO_PKG_VERSION")).to_owned(),
            protocol: Protocol::Auto,
        }
    }
}
