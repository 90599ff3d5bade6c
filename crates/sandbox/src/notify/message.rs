//! A message as a client sends it, read strictly, and the receipt the
//! provider answers with.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Channel {
    #[serde(rename = "SMS")]
    Sms,
    #[serde(rename = "EMAIL")]
    Email,
}

impl Channel {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "SMS" => Some(Self::Sms),
            "EMAIL" => Some(Self::Email),
            _ => None,
        }
    }
}

/// The body of `POST /v1/messages`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Draft {
    channel: String,
    to: String,
    #[serde(default)]
    subject: Option<String>,
    body: String,
}

/// A message the provider can deliver. Two sends under one idempotency
/// key are the same request if their messages are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub channel: Channel,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
}

/// Why a request was refused, with the status it is answered with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// 400: not the JSON a message is.
    Malformed(String),
    /// 422: the JSON of a message, with a channel the provider has not got.
    UnknownChannel(String),
}

impl Message {
    /// Reads a request body: a JSON object with `channel`, `to`, `body` and
    /// an optional `subject`, nothing else.
    pub(crate) fn read(body: &[u8]) -> Result<Self, Invalid> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|error| Invalid::Malformed(format!("the body is not JSON: {error}")))?;
        // A struct would also read from an array of its fields.
        if !value.is_object() {
            return Err(Invalid::Malformed(
                "the body is not a JSON object".to_owned(),
            ));
        }
        let draft = Draft::deserialize(value)
            .map_err(|error| Invalid::Malformed(format!("the body is not a message: {error}")))?;
        let channel = Channel::parse(&draft.channel).ok_or_else(|| {
            Invalid::UnknownChannel(format!(
                "unknown channel `{}` (expected SMS or EMAIL)",
                draft.channel
            ))
        })?;
        if draft.to.trim().is_empty() {
            return Err(Invalid::Malformed("`to` is empty".to_owned()));
        }
        Ok(Self {
            channel,
            to: draft.to,
            subject: draft.subject,
            body: draft.body,
        })
    }
}

/// What the provider answers for a delivered message, the first time and
/// on every replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Receipt {
    pub message_id: String,
    pub status: &'static str,
    pub idempotency_key: String,
    pub channel: Channel,
    pub to: String,
}

/// A receipt with the time of its delivery, for `GET /v1/messages/{key}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    #[serde(flatten)]
    pub receipt: Receipt,
    /// RFC 3339, UTC.
    pub delivered_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_strictly() {
        let sms = Message::read(br#"{"channel":"SMS","to":"+4915112345678","body":"Paid"}"#);
        assert_eq!(
            sms,
            Ok(Message {
                channel: Channel::Sms,
                to: "+4915112345678".into(),
                subject: None,
                body: "Paid".into(),
            })
        );
        let email = Message::read(
            br#"{"channel":"EMAIL","to":"anna@example.com","subject":"Receipt","body":"Paid"}"#,
        );
        assert_eq!(
            email.map(|message| (message.channel, message.subject)),
            Ok((Channel::Email, Some("Receipt".into())))
        );

        for (body, named) in [
            (&b"not json"[..], "not JSON"),
            (br#"["SMS","+49151","Receipt","Paid"]"#, "not a JSON object"),
            (br#"{"channel":"SMS","body":"Paid"}"#, "`to`"),
            (br#"{"channel":"SMS","to":"+49151","body":7}"#, "integer"),
            (
                br#"{"channel":"SMS","to":"+49151","body":"x","cc":"y"}"#,
                "cc",
            ),
            (
                br#"{"channel":"SMS","to":" ","body":"Paid"}"#,
                "`to` is empty",
            ),
        ] {
            match Message::read(body) {
                Err(Invalid::Malformed(error)) => assert!(error.contains(named), "{error}"),
                other => panic!("{} gave {other:?}", String::from_utf8_lossy(body)),
            }
        }
        assert_eq!(
            Message::read(br#"{"channel":"PIGEON","to":"roof","body":"coo"}"#),
            Err(Invalid::UnknownChannel(
                "unknown channel `PIGEON` (expected SMS or EMAIL)".into()
            ))
        );
    }

    #[test]
    fn a_receipt_is_camel_case_and_a_record_adds_the_time() {
        let receipt = Receipt {
            message_id: "msg_1".into(),
            status: "SENT",
            idempotency_key: "k-1".into(),
            channel: Channel::Email,
            to: "anna@example.com".into(),
        };
        let record = Record {
            receipt,
            delivered_at: "2026-06-01T12:00:00.000Z".into(),
        };
        assert_eq!(
            serde_json::to_value(&record).ok(),
            Some(serde_json::json!({
                "messageId": "msg_1",
                "status": "SENT",
                "idempotencyKey": "k-1",
                "channel": "EMAIL",
                "to": "anna@example.com",
                "deliveredAt": "2026-06-01T12:00:00.000Z",
            }))
        );
    }
}
