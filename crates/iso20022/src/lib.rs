//! The ISO 20022 messages the RTGS rail speaks, as TARGET2, CHAPS and
//! Fedwire do: the pacs.008.001.08 FIToFICustomerCreditTransfer out and the
//! pacs.002.001.10 FIToFIPaymentStatusReport back, for one transaction per
//! message. Each has a plain Rust form ([`CreditTransfer`],
//! [`StatusReport`]) and is written and read through serde structs over
//! quick-xml, never by concatenating strings. Reading is strict: a missing
//! or malformed element is an error naming it, the rail's cue for a RJCT
//! with reason FF01.

pub mod amount;
pub mod pacs002;
pub mod pacs008;

pub use pacs002::{StatusReport, TxStatus};
pub use pacs008::{Agent, CreditTransfer, Party};

#[derive(Debug, thiserror::Error)]
pub enum Iso20022Error {
    #[error("{0:?} is not an ISO 4217 currency with minor units")]
    Currency(String),
    #[error("{0:?} is not a positive amount in the currency's minor units")]
    Amount(String),
    #[error("the document does not parse: {0}")]
    Xml(String),
    #[error("{element}: {reason}")]
    Invalid {
        element: &'static str,
        reason: String,
    },
    #[error("the document could not be written: {0}")]
    Write(String),
}

impl Iso20022Error {
    fn invalid(element: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            element,
            reason: reason.into(),
        }
    }
}

/// Serialises a document with its XML declaration.
fn write<T: serde::Serialize>(document: &T) -> Result<String, Iso20022Error> {
    let mut body = String::new();
    let mut serializer = quick_xml::se::Serializer::new(&mut body);
    serializer.indent(' ', 2);
    document
        .serialize(serializer)
        .map_err(|error| Iso20022Error::Write(error.to_string()))?;
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"
    ))
}

fn read<T: serde::de::DeserializeOwned>(xml: &str) -> Result<T, Iso20022Error> {
    quick_xml::de::from_str(xml).map_err(|error| Iso20022Error::Xml(error.to_string()))
}

/// A text element that must be present and non-blank.
fn required(element: &'static str, value: &str) -> Result<String, Iso20022Error> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Iso20022Error::invalid(element, "empty"));
    }
    Ok(value.to_owned())
}
