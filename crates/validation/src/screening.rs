//! The two provider checks, in the shapes their APIs answer, and the bounded
//! wait that makes screening fail closed: a payment is never passed because
//! a provider was down; past the bound it is rejected as unscreened.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::providers::{CallError, ProviderClient};

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

/// A check's answer with what the audit trail needs about the call.
#[derive(Debug, Clone)]
pub struct Checked<T> {
    pub answer: T,
    pub raw: Value,
    pub latency: Duration,
    pub at: DateTime<Utc>,
}

/// Calls a provider, retrying while it is unavailable until `bound` has
/// passed, then giving up with the last error: screening fails closed.
/// Refusals end at once.
async fn checked<T: serde::de::DeserializeOwned>(
    client: &ProviderClient,
    bound: Duration,
    method: reqwest::Method,
    path_and_query: &str,
    body: Option<&Value>,
) -> Result<Checked<T>, CallError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    let raw: Value = loop {
        match client.call(method.clone(), path_and_query, body).await {
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
    let answer = T::deserialize(&raw).map_err(|error| CallError::Refused {
        provider: client.name(),
        reason: format!("unexpected answer: {error}"),
    })?;
    Ok(Checked {
        answer,
        raw,
        latency: started.elapsed(),
        at: Utc::now(),
    })
}

pub async fn check_ip(
    client: &ProviderClient,
    ip: &str,
    bound: Duration,
) -> Result<Checked<IpAnswer>, CallError> {
    checked(
        client,
        bound,
        reqwest::Method::GET,
        &format!("/v1/?ip_address={ip}"),
        None,
    )
    .await
}

pub async fn screen_party(
    client: &ProviderClient,
    party: &paystream_contract::Party,
    bound: Duration,
) -> Result<Checked<AmlAnswer>, CallError> {
    let body = serde_json::json!({
        "name": party.name,
        "country": party.country,
        "dateOfBirth": party.date_of_birth,
    });
    checked(
        client,
        bound,
        reqwest::Method::POST,
        "/v1/screen",
        Some(&body),
    )
    .await
}
