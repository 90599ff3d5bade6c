//! The two provider checks, in the shapes their APIs answer, and the bounded
//! wait that makes screening fail closed: a payment is never passed because
//! a provider was down; past the bound it is rejected as unscreened.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::field::Empty;
use uuid::Uuid;

use paystream_provider_client::{CallError, Method, ProviderClient, Refused, Request, call_span};

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

/// The AML API's screening request, serialised from the party's fields as
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
    pub latency: Duration,
    pub at: DateTime<Utc>,
}

/// Sends `request`, retrying while the provider is unavailable until `bound`
/// has passed, then giving up with the last error: screening fails closed.
/// Every try carries the deadline, so no wait inside the client (a
/// provider's `Retry-After`, a back-off) outlasts the bound. Refusals end at
/// once. The answer is read straight into `T` and kept as text: no JSON
/// tree is built for it.
async fn checked<T: serde::de::DeserializeOwned>(
    client: &ProviderClient,
    request: Request,
    bound: Duration,
) -> Result<Checked<T>, CallError> {
    let started = Instant::now();
    // A bound too large for the clock is no bound.
    let request = match started.checked_add(bound) {
        Some(deadline) => request.deadline(deadline),
        None => request,
    };
    let mut pause = Duration::from_millis(100);
    let answer = loop {
        match request.send().await {
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
    let unreadable = |error: &dyn std::fmt::Display| CallError::Refused {
        provider: client.name(),
        reason: Refused::Unreadable(format!("unexpected answer: {error}")),
    };
    let raw = String::from_utf8(answer.body).map_err(|error| unreadable(&error))?;
    let answer = serde_json::from_str(&raw).map_err(|error| unreadable(&error))?;
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

/// A check's outcome for its span: what the provider said, or why it said
/// nothing.
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

/// Looks the payer's address up; the call's span carries the payment and
/// the outcome (answered, or flagged as an anonymising network).
pub async fn check_ip(
    client: &ProviderClient,
    payment_id: Uuid,
    ip: &str,
    bound: Duration,
) -> Result<Checked<IpAnswer>, CallError> {
    // The address is the payer's, so untrusted: a query value, encoded.
    let request = client
        .request(Method::GET, &["v1", ""])
        .query("ip_address", ip);
    let span = call_span!("ip.check", request, %payment_id, ip.outcome = Empty);
    let result = checked(client, request.in_span(span.clone()), bound).await;
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

/// Screens one party of the payment; the call's span carries the payment,
/// the party's role and the outcome (the risk level, or why there is none),
/// so a trace shows what each screening decided.
pub async fn screen_party(
    client: &ProviderClient,
    payment_id: Uuid,
    role: Role,
    party: &paystream_contract::Party,
    bound: Duration,
) -> Result<Checked<AmlAnswer>, CallError> {
    let body = ScreenRequest {
        name: &party.name,
        country: &party.country,
        date_of_birth: party.date_of_birth.as_deref(),
    };
    let request = client.request(Method::POST, &["v1", "screen"]).json(&body);
    let span = call_span!(
        "aml.screen",
        request,
        %payment_id,
        party.role = role.name(),
        aml.outcome = Empty,
        aml.matches = Empty,
    );
    let result = checked(client, request.in_span(span.clone()), bound).await;
    span.record(
        "aml.outcome",
        outcome_of(&result, |answer: &AmlAnswer| answer.risk_level.name()),
    );
    if let Ok(checked) = &result {
        span.record("aml.matches", checked.answer.matches.len());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use paystream_sandbox::{Config, IP_INTELLIGENCE, Server};
    use tokio_util::sync::CancellationToken;

    /// An IP-intelligence client against a sandbox behaving as `behaviour`;
    /// the sandbox stops when the token is dropped.
    async fn ip_intelligence(behaviour: &str) -> (ProviderClient, CancellationToken) {
        let mut config = Config::local();
        config.ip_intelligence = behaviour.parse().unwrap();
        let server = Server::build(&config).await.unwrap();
        let base = format!("http://{}/{IP_INTELLIGENCE}", server.local_addr());
        let shutdown = CancellationToken::new();
        tokio::spawn(server.run(shutdown.clone()));
        let client = ProviderClient::new(IP_INTELLIGENCE, &base, Default::default()).unwrap();
        (client, shutdown)
    }

    #[tokio::test]
    async fn a_client_ip_cannot_change_the_provider_url() {
        let (client, _sandbox) = ip_intelligence("ok").await;
        for ip in [
            "1.2.3.4/../../admin?x=",
            "8.8.8.8#/../../admin?x=",
            "8.8.8.8&ip_address=1.1.1.1",
        ] {
            // The provider's refusal quotes the whole value it was asked
            // about: it reached the lookup as one parameter.
            match check_ip(&client, Uuid::nil(), ip, Duration::from_secs(5)).await {
                Err(CallError::Refused { reason, .. }) => {
                    let reason = reason.to_string();
                    assert!(reason.contains(&format!("`{ip}`")), "{ip}: {reason}");
                }
                other => panic!("{ip}: expected the provider to refuse it, got {other:?}"),
            }
        }
    }

    async fn assert_the_bound_is_kept(throttle: &str) {
        let (client, _sandbox) = ip_intelligence(throttle).await;
        let checked = tokio::time::timeout(
            Duration::from_secs(30),
            check_ip(&client, Uuid::nil(), "8.8.8.8", Duration::from_secs(1)),
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
