//! The two provider checks, in the shapes their APIs answer, and the bounded
//! wait that makes screening fail closed: a payment is never passed because
//! a provider was down; past the bound it is rejected as unscreened. Each
//! check goes out in a batch call shared with other payments' checks
//! ([`crate::batching`]).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Span;

use paystream_provider_client::CallError;

use crate::batching::{self, BatchApi, Batcher, Envelope};

use crate::outcome::Role;

#[derive(Debug, Clone, Deserialize)]
pub struct IpSecurity {
    #[serde(default)]
    pub is_vpn: bool,
    #[serde(default)]
    pub is_proxy: bool,
    #[serde(default)]
    pub is_tor: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IpAnswer {
    pub country_code: Option<String>,
    pub security: IpSecurity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmlMatch {
    pub list: String,
    pub reference: String,
    pub listed_name: String,
    pub score: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmlAnswer {
    pub risk_level: RiskLevel,
    pub score: f64,
    #[serde(default)]
    pub matches: Vec<AmlMatch>,
}

/// Where the IP-intelligence API takes batches: a JSON array of addresses.
pub const IP_BATCH: BatchApi = BatchApi {
    path: &["v1", "batch"],
    envelope: Envelope::Array,
};

/// Where the AML API takes batches: `{"queries": [party, …]}`.
pub const AML_BATCH: BatchApi = BatchApi {
    path: &["v1", "screen", "batch"],
    envelope: Envelope::Queries,
};

/// The AML API's screening query, serialised from the party's fields as
/// they are (no JSON tree in between).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScreenRequest<'a> {
    name: &'a str,
    country: &'a str,
    date_of_birth: Option<&'a str>,
}

/// A check's answer with what the audit trail needs about the call.
#[derive(Debug, Clone)]
pub struct Checked<T> {
    pub answer: T,
    /// The answer's JSON text as the provider sent it, for the audit row.
    pub raw: String,
    /// From the check's first try to its answer, waits for a batch included.
    pub latency: Duration,
    pub at: DateTime<Utc>,
}

/// Sends `query` (JSON text) in `batcher`'s batches, trying again while the
/// provider is unavailable until `bound` has passed, then giving up with the
/// last error: screening fails closed. Every try carries the deadline, so no
/// wait inside the client (a provider's `Retry-After`, a back-off) outlasts
/// the bound. Refusals end at once. The answer is read straight into `T`
/// and kept as text: no JSON tree is built for it.
async fn checked<T: serde::de::DeserializeOwned>(
    batcher: &Batcher,
    query: String,
    span: &Span,
    bound: Duration,
) -> Result<Checked<T>, CallError> {
    let started = Instant::now();
    // A bound too large for the clock is no bound.
    let deadline = started.checked_add(bound);
    let mut pause = Duration::from_millis(100);
    let raw = loop {
        match batcher.check(query.clone(), span.clone(), deadline).await {
            Err(CallError::Unavailable { provider, reason })
                if started.elapsed() + pause < bound =>
            {
                tracing::info!(provider, %reason, retry_in_ms = pause.as_millis() as u64, "provider unavailable; waiting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => break other?,
        }
    };
    let answer = batching::read_answer(batcher.provider(), &raw)?;
    Ok(Checked {
        answer,
        raw,
        latency: started.elapsed(),
        at: Utc::now(),
    })
}

impl RiskLevel {
    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        }
    }
}

/// A check's outcome for the payment's screening span: what the provider
/// said, or why it said nothing.
fn outcome_of<T>(
    result: &Result<Checked<T>, CallError>,
    said: impl Fn(&T) -> &'static str,
) -> &'static str {
    match result {
        Ok(checked) => said(&checked.answer),
        Err(CallError::Unavailable { .. }) => "UNAVAILABLE",
        Err(CallError::Refused { .. }) => "REFUSED",
    }
}

/// The span of one payment's screening: its checks' outcomes, recorded as
/// they come, and the parent (or a link) of the batch calls that carried
/// them.
pub fn screening_span(payment_id: uuid::Uuid) -> Span {
    tracing::info_span!(
        "screening",
        %payment_id,
        ip.outcome = tracing::field::Empty,
        aml.debtor = tracing::field::Empty,
        aml.creditor = tracing::field::Empty,
    )
}

/// Looks the payer's address up; `span` (the payment's screening) records
/// the outcome: answered, or flagged as an anonymising network.
pub async fn check_ip(
    batcher: &Batcher,
    ip: &str,
    span: &Span,
    bound: Duration,
) -> Result<Checked<IpAnswer>, CallError> {
    // The address is the payer's, so untrusted: a JSON string, escaped.
    let query = serde_json::to_string(ip).map_err(|error| malformed(batcher, &error))?;
    let result = checked(batcher, query, span, bound).await;
    span.record(
        "ip.outcome",
        outcome_of(&result, |answer: &IpAnswer| {
            let security = &answer.security;
            if security.is_vpn || security.is_proxy || security.is_tor {
                "ANONYMISED"
            } else {
                "ANSWERED"
            }
        }),
    );
    result
}

/// Screens one party of the payment; `span` (the payment's screening)
/// records the party's outcome (the risk level, or why there is none), so a
/// trace shows what each screening decided.
pub async fn screen_party(
    batcher: &Batcher,
    role: Role,
    party: &paystream_contract::Party,
    span: &Span,
    bound: Duration,
) -> Result<Checked<AmlAnswer>, CallError> {
    let query = serde_json::to_string(&ScreenRequest {
        name: &party.name,
        country: &party.country,
        date_of_birth: party.date_of_birth.as_deref(),
    })
    .map_err(|error| malformed(batcher, &error))?;
    let result = checked(batcher, query, span, bound).await;
    let field = match role {
        Role::Debtor => "aml.debtor",
        Role::Creditor => "aml.creditor",
    };
    span.record(
        field,
        outcome_of(&result, |answer: &AmlAnswer| answer.risk_level.name()),
    );
    result
}

fn malformed(batcher: &Batcher, error: &serde_json::Error) -> CallError {
    CallError::Refused {
        provider: batcher.provider(),
        reason: paystream_provider_client::Refused::Malformed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::BatchLimits;
    use crate::test_sandbox::Sandbox;
    use paystream_provider_client::{ProviderClient, Refused};
    use paystream_sandbox::{Config, IP_INTELLIGENCE};

    /// An IP-intelligence batcher against a sandbox behaving as `behaviour`.
    async fn ip_intelligence(behaviour: &str, limits: BatchLimits) -> (Batcher, Sandbox) {
        let mut config = Config::local();
        config.ip_intelligence = behaviour.parse().unwrap();
        let sandbox = Sandbox::start(config).await;
        let client = ProviderClient::new(
            IP_INTELLIGENCE,
            &sandbox.base(IP_INTELLIGENCE),
            Default::default(),
        )
        .unwrap();
        (Batcher::start(client, IP_BATCH, limits), sandbox)
    }

    fn limits(size: usize, calls: usize) -> BatchLimits {
        BatchLimits::new(size, calls, Duration::ZERO).unwrap()
    }

    #[tokio::test]
    async fn checks_queued_together_share_one_call_and_a_bad_address_fails_alone() {
        let (batcher, sandbox) = ip_intelligence("ok", limits(10, 1)).await;
        let span = Span::none();
        let bound = Duration::from_secs(5);
        // A current-thread runtime: both checks are queued before the
        // batch sender first runs.
        let bad_ip = "1.2.3.4/../../admin?x=";
        let (bad, good) = futures::join!(
            check_ip(&batcher, bad_ip, &span, bound),
            check_ip(&batcher, "8.8.8.8", &span, bound),
        );
        match bad {
            Err(CallError::Refused {
                reason: Refused::Query(reason),
                ..
            }) => assert!(reason.contains(&format!("`{bad_ip}`")), "{reason}"),
            other => panic!("expected the provider to refuse that query alone, got {other:?}"),
        }
        let good = good.unwrap();
        assert_eq!(good.answer.country_code.as_deref(), Some("US"), "{good:?}");
        assert_eq!(sandbox.requests(IP_INTELLIGENCE).await, 1);
    }

    async fn assert_the_bound_is_kept(throttle: &str) {
        let (batcher, _sandbox) = ip_intelligence(throttle, limits(10, 2)).await;
        let checked = tokio::time::timeout(
            Duration::from_secs(30),
            check_ip(&batcher, "8.8.8.8", &Span::none(), Duration::from_secs(1)),
        )
        .await
        .unwrap_or_else(|_| panic!("`{throttle}`: screening waited far past its bound"));
        assert!(
            matches!(checked, Err(CallError::Unavailable { .. })),
            "`{throttle}`: {checked:?}"
        );
    }

    #[tokio::test]
    async fn a_day_long_retry_after_in_seconds_keeps_the_screening_bound() {
        assert_the_bound_is_kept("throttle=86400").await;
    }

    #[tokio::test]
    async fn a_day_long_retry_after_as_a_date_keeps_the_screening_bound() {
        assert_the_bound_is_kept("throttle=date:86400").await;
    }
}
