use std::time::Duration;

use reqwest::StatusCode;

/// Why a [`ProviderClient`](crate::ProviderClient) could not be made: a
/// configuration mistake, to stop the service at start-up.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("provider {provider}: base URL `{url}`: {reason}")]
    BaseUrl {
        provider: &'static str,
        url: String,
        reason: String,
    },
    #[error("provider {provider}: the HTTP client could not be built: {source}")]
    Http {
        provider: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("provider {provider}: `{user_agent}` cannot be a User-Agent header")]
    UserAgent {
        provider: &'static str,
        user_agent: String,
    },
    /// A burst of zero would let no call through, ever.
    #[error("provider {provider}: a burst of 0 lets no call through")]
    Burst { provider: &'static str },
    #[error("provider {provider}: max_retry_after of {max:?} is over a day")]
    MaxRetryAfter {
        provider: &'static str,
        max: Duration,
    },
}

/// Why a call did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The provider cannot answer now (down, failing, throttling past the
    /// caller's deadline, circuit open): worth trying again later.
    #[error("{provider} unavailable: {reason}")]
    Unavailable {
        provider: &'static str,
        reason: Unavailable,
    },
    /// The provider refused the request itself (4xx other than 429) or
    /// answered something unreadable: the same call cannot do better.
    #[error("{provider} refused the call: {reason}")]
    Refused {
        provider: &'static str,
        reason: Refused,
    },
}

impl CallError {
    pub fn provider(&self) -> &'static str {
        match self {
            CallError::Unavailable { provider, .. } | CallError::Refused { provider, .. } => {
                provider
            }
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, CallError::Unavailable { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("circuit open after repeated failures")]
    CircuitOpen,
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("no answer within the timeout")]
    Timeout,
    #[error("connection failed: {0}")]
    Connection(String),
    /// The provider asked to wait (`Retry-After`, cut to the maximum) past
    /// the caller's deadline.
    #[error("throttled for {wait:?}, past the caller's deadline")]
    Throttled { wait: Duration },
    #[error("the caller's deadline passed")]
    Deadline,
}

impl Unavailable {
    /// A connection failure, told with the whole chain of causes: an HTTP
    /// library's own message ("error sending request", "connection error")
    /// says little; the cause below it says what happened.
    pub(crate) fn connection(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        Self::Connection(text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("unreadable answer: {0}")]
    Unreadable(String),
    /// A batch call was answered, but this one query of it was refused (its
    /// input, say, is not what the provider takes).
    #[error("refused the query: {0}")]
    Query(String),
    /// The request could not be made as asked (a header value that is not
    /// one, a body that does not serialise, a `..` path segment); nothing
    /// was sent.
    #[error("the request is malformed: {0}")]
    Malformed(String),
}
