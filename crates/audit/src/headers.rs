//! A record's headers as the log keeps them: every one, in order, a null
//! value apart from an empty one, as deterministic JSON (it is hashed).

use base64::Engine;
use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use serde::Serialize;

/// A record's headers in order, a null value kept apart from an empty one.
pub type RawHeaders = Vec<(String, Option<Vec<u8>>)>;

pub fn headers_of(record: &OwnedMessage) -> RawHeaders {
    record
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}

/// The last value of header `name`, as text.
pub fn header<'a>(headers: &'a RawHeaders, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| value.as_deref())
        .and_then(|value| std::str::from_utf8(value).ok())
}

#[derive(Serialize)]
struct JsonHeader<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

/// The headers as lossless JSON: text where the value is UTF-8, base64
/// where it is not, no value for a null one. Deterministic, as it is hashed.
pub fn headers_json(headers: &RawHeaders) -> String {
    let list: Vec<JsonHeader<'_>> = headers
        .iter()
        .map(|(name, value)| {
            let text = value.as_deref().and_then(|v| std::str::from_utf8(v).ok());
            let base64 = match (value, text) {
                (Some(bytes), None) => {
                    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                _ => None,
            };
            JsonHeader { name, text, base64 }
        })
        .collect();
    // Strings and options only: serialising cannot fail; were it to, an
    // empty list is stored (and hashed) rather than the record refused.
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_kept_losslessly_as_json() {
        let headers: RawHeaders = vec![
            ("a".into(), Some(b"text".to_vec())),
            ("bin".into(), Some(vec![0xff, 0])),
            ("null".into(), None),
            ("a".into(), Some(Vec::new())),
        ];
        assert_eq!(
            headers_json(&headers),
            r#"[{"name":"a","text":"text"},{"name":"bin","base64":"/wA="},{"name":"null"},{"name":"a","text":""}]"#
        );
        assert_eq!(header(&headers, "a"), Some(""));
        assert_eq!(header(&headers, "null"), None);
    }
}
