//! Signed HTTP callbacks, in the Standard Webhooks scheme Svix uses: the
//! sender puts `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`
//! on the request; the receiver recomputes the signature over the body
//! bytes as received and refuses a timestamp outside its tolerance, so a
//! captured callback cannot be replayed days later. The rail's status
//! reports reach rtgs-gateway this way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How far a callback's timestamp may be from the receiver's clock.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the `{0}` header is missing or not text")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` is not Unix seconds")]
    BadTimestamp,
    #[error("the timestamp is {0:?} away from now, more than the tolerance")]
    Stale(Duration),
    #[error("no `v1` signature matches the body")]
    Mismatch,
}

/// The `webhook-signature` value for a callback: `v1,<base64>`.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", BASE64.encode(mac(secret, id, timestamp, body)))
}

/// The three headers of a callback signed now, as (name, value) pairs.
pub fn headers(secret: &[u8], id: &str, body: &[u8]) -> [(&'static str, String); 3] {
    let timestamp = unix_now();
    [
        (ID_HEADER, id.to_owned()),
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, sign(secret, id, timestamp, body)),
    ]
}

/// Checks a received callback; returns its `webhook-id` when it is genuine.
/// Any of several space-separated signatures may match (secret rotation).
pub fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    tolerance: Duration,
) -> Result<String, SignatureError> {
    let text = |name: &'static str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or(SignatureError::MissingHeader(name))
    };
    let id = text(ID_HEADER)?;
    let timestamp: i64 = text(TIMESTAMP_HEADER)?
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = Duration::from_secs(unix_now().abs_diff(timestamp));
    if skew > tolerance {
        return Err(SignatureError::Stale(skew));
    }
    let expected = mac(secret, id, timestamp, body);
    let matches = text(SIGNATURE_HEADER)?
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .any(|candidate| !expected.is_empty() && bool::from(candidate.as_slice().ct_eq(&expected)));
    if matches {
        Ok(id.to_owned())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn mac(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so this never returns early; an
    // empty MAC would match nothing (see `verify`).
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return Vec::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn signed(secret: &[u8], body: &[u8]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers(secret, "msg_1", body) {
            map.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        map
    }

    #[test]
    fn a_signed_body_verifies_and_any_change_does_not() {
        let map = signed(b"secret", b"<Document/>");
        assert_eq!(
            verify(b"secret", &map, b"<Document/>", DEFAULT_TOLERANCE).as_deref(),
            Ok("msg_1")
        );
        assert_eq!(
            verify(b"secret", &map, b"<Document />", DEFAULT_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &map, b"<Document/>", DEFAULT_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_old_timestamp_and_missing_headers_are_refused() {
        let body = b"x";
        let old = unix_now() - 3_600;
        let mut map = HeaderMap::new();
        map.insert(ID_HEADER, HeaderValue::from_static("msg_1"));
        map.insert(TIMESTAMP_HEADER, HeaderValue::from(old));
        map.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&sign(b"s", "msg_1", old, body)).unwrap(),
        );
        assert!(matches!(
            verify(b"s", &map, body, DEFAULT_TOLERANCE),
            Err(SignatureError::Stale(_))
        ));
        map.remove(SIGNATURE_HEADER);
        map.insert(TIMESTAMP_HEADER, HeaderValue::from(unix_now()));
        assert_eq!(
            verify(b"s", &map, body, DEFAULT_TOLERANCE),
            Err(SignatureError::MissingHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn one_of_several_signatures_may_match() {
        let now = unix_now();
        let mut map = HeaderMap::new();
        map.insert(ID_HEADER, HeaderValue::from_static("msg_1"));
        map.insert(TIMESTAMP_HEADER, HeaderValue::from(now));
        let both = format!(
            "{} {}",
            sign(b"old", "msg_1", now, b"x"),
            sign(b"new", "msg_1", now, b"x")
        );
        map.insert(SIGNATURE_HEADER, HeaderValue::from_str(&both).unwrap());
        assert!(verify(b"new", &map, b"x", DEFAULT_TOLERANCE).is_ok());
    }
}
