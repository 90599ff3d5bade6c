//! API-key authentication and rate limiting for `/v1/payments`: per API
//! client, and per client IP for requests without a valid key.
//!
//! Keys are configured as SHA-256 hashes (`client:hex`), never in clear, so a
//! leaked config or environment does not leak credentials; `gateway
//! hash-api-key` prints the hash of a new key. A request presents its key as
//! `Authorization: Bearer <key>` or `X-Api-Key: <key>` (or both, if they agree).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use paystream_service_kit::TokenBucket;
use sha2::{Digest, Sha256};

use crate::problem::Problem;
use crate::rate_limit::{self, PerIp};

/// The key a developer gets from `make run`; documented, local only.
pub const DEV_API_KEY: &str = "paystream-dev-key";

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(pub String);

/// A key's SHA-256 as configured: 64 lowercase hex digits.
pub fn hash_key(key: &str) -> String {
    digest(key)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A key's SHA-256, as every request's key is looked up: the raw digest, so
/// a request costs no hex text.
fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// 64 hex digits (either case) as the 32 bytes they spell.
fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    // from_str_radix alone would take a sign ("+f").
    if hex.len() != 64 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

/// `client:sha256hex` pairs, comma-separated.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], String>,
}

impl FromStr for ApiKeys {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut by_hash = HashMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (client, hash) = entry
                .split_once(':')
                .ok_or_else(|| format!("`{entry}`: expected CLIENT:SHA256HEX"))?;
            let hash = parse_digest(hash.trim()).ok_or_else(|| {
                format!("`{client}`: the key hash must be 64 hex digits (SHA-256)")
            })?;
            by_hash.insert(hash, client.trim().to_owned());
        }
        Ok(Self { by_hash })
    }
}

impl ApiKeys {
    pub fn dev() -> Self {
        let mut by_hash = HashMap::new();
        by_hash.insert(digest(DEV_API_KEY), "dev".to_owned());
        Self { by_hash }
    }

    pub fn with(mut self, client: &str, key: &str) -> Self {
        self.by_hash.insert(digest(key), client.to_owned());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The keys a request presents, `None` for a header that is there but
    /// holds no usable key (another scheme, bytes that are not text).
    fn presented(headers: &HeaderMap) -> Vec<Option<&str>> {
        let bearer = headers.get(header::AUTHORIZATION).map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
        });
        let api_key = headers.get("x-api-key").map(|value| value.to_str().ok());
        [bearer, api_key]
            .into_iter()
            .flatten()
            .map(|key| key.map(str::trim))
            .collect()
    }

    /// The client a request's key belongs to. A request may present its key
    /// in either header or in both, but every key it presents must be valid
    /// and name the same client: a wrong key beside a right one is refused,
    /// not overlooked. The lookup is by hash, so the time it takes says
    /// nothing about how close a guess was.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<ClientId> {
        let mut clients = Self::presented(headers)
            .into_iter()
            .map(|key| key.and_then(|key| self.by_hash.get(&digest(key))));
        let first = clients.next()??;
        clients
            .all(|client| client == Some(first))
            .then(|| ClientId(first.clone()))
    }
}

#[derive(Debug, Clone)]
pub struct Guard {
    keys: Arc<ApiKeys>,
    rate_per_client: f64,
    buckets: Arc<Mutex<HashMap<String, TokenBucket>>>,
    unauthenticated: PerIp,
}

impl Guard {
    /// `rate_per_client` requests per second per API client;
    /// `unauthenticated_per_ip` requests without a valid key per client IP.
    pub fn new(keys: ApiKeys, rate_per_client: u32, unauthenticated_per_ip: u32) -> Self {
        Self {
            keys: Arc::new(keys),
            rate_per_client: f64::from(rate_per_client.max(1)),
            buckets: Arc::default(),
            unauthenticated: PerIp::new(unauthenticated_per_ip),
        }
    }

    /// Counts `n` more requests against `client`'s rate, for work already
    /// admitted: a batch of n payments costs what n payments cost, paid
    /// back before the client's next request passes.
    pub fn charge(&self, client: &ClientId, n: usize) {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets
            .entry(client.0.clone())
            .or_insert_with(|| TokenBucket::new(self.rate_per_client))
            .charge(n as f64, Instant::now());
    }

    fn admit(&self, client: &ClientId) -> Result<(), std::time::Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets
            .entry(client.0.clone())
            .or_insert_with(|| TokenBucket::new(self.rate_per_client))
            .take(Instant::now())
    }
}

/// Middleware: authenticates, rate-limits, and hands the client id on. An
/// IP whose requests without a valid key used up its allowance is refused
/// before its key is checked, so guessing keys cannot go faster than that.
pub async fn require_client(
    State(guard): State<Guard>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = rate_limit::client_ip(&request);
    let now = Instant::now();
    if let Some(wait) = guard.unauthenticated.wait(ip, now) {
        return rate_limit::too_many(
            format!("{ip} sent too many requests without a valid API key"),
            wait,
        );
    }
    let Some(client) = guard.keys.authenticate(request.headers()) else {
        if let Err(wait) = guard.unauthenticated.take(ip, now) {
            return rate_limit::too_many(
                format!("{ip} sent too many requests without a valid API key"),
                wait,
            );
        }
        return Problem::unauthorized("present a valid API key as `Authorization: Bearer <key>`")
            .into_response();
    };
    if let Err(wait) = guard.admit(&client) {
        return rate_limit::too_many(
            format!("client `{}` is over its rate limit", client.0),
            wait,
        );
    }
    request.extensions_mut().insert(client);
    // A handler whose request counts as more than one (a batch) charges
    // the rest through it.
    request.extensions_mut().insert(guard);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keys_are_matched_by_hash_from_either_header() {
        let keys: ApiKeys = format!("acme:{}", hash_key("s3cret"))
            .parse()
            .unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert_eq!(keys.authenticate(&headers), Some(ClientId("acme".into())));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("s3cret"));
        assert_eq!(keys.authenticate(&headers), Some(ClientId("acme".into())));
        headers.insert("x-api-key", HeaderValue::from_static("s3cret2"));
        assert_eq!(keys.authenticate(&headers), None);
        assert_eq!(keys.authenticate(&HeaderMap::new()), None);
    }

    #[test]
    fn a_wrong_or_unusable_credential_beside_a_right_one_is_refused() {
        let keys = ApiKeys::default()
            .with("acme", "s3cret")
            .with("other", "k2");
        let both = |authorization: &'static str, api_key: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_static(authorization),
            );
            headers.insert("x-api-key", HeaderValue::from_static(api_key));
            keys.authenticate(&headers)
        };
        assert_eq!(
            both("Bearer s3cret", "s3cret"),
            Some(ClientId("acme".into()))
        );
        assert_eq!(both("Bearer s3cret", "wrong"), None);
        assert_eq!(both("Bearer wrong", "s3cret"), None);
        assert_eq!(both("Basic czNjcmV0", "s3cret"), None);
        assert_eq!(both("Bearer s3cret", "k2"), None, "two clients' keys");
    }

    #[test]
    fn a_clear_text_key_in_the_config_is_refused() {
        assert!("acme:s3cret".parse::<ApiKeys>().is_err());
        assert!("acme".parse::<ApiKeys>().is_err());
        // 64 characters, but a sign is not a hex digit.
        let signed = format!("+f{}", &hash_key("s3cret")[2..]);
        assert!(format!("acme:{signed}").parse::<ApiKeys>().is_err());
    }

    #[test]
    fn a_configured_hash_may_be_written_in_capitals() {
        let keys: ApiKeys = format!("acme:{}", hash_key("s3cret").to_uppercase())
            .parse()
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "s3cret".parse().unwrap());
        assert_eq!(
            keys.authenticate(&headers),
            Some(ClientId("acme".to_owned()))
        );
    }
}
