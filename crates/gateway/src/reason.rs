//! What an API client is told about why its payment was rejected.
//!
//! The pipeline's `reasonText` is written for compliance and operations: a
//! screening rejection names the party, the sanctions list, the entry and the
//! match score. None of that may reach the client (it would tip off whoever
//! is behind the payment and leak the screening's workings). The client gets
//! the reason code and a fixed description of it; the full text stays in the
//! events, the validation service's audit trail and the gateway's database.

/// A rejection reason fit for the API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientReason {
    pub code: String,
    pub description: &'static str,
}

/// Shown for a code the pipeline may add later; not a reason to hide it.
const GENERIC: &str = "The payment was rejected.";

/// Shown instead of something that is not a reason code at all.
const NO_CODE: &str = "REJECTED";

const KNOWN: &[(&str, &str)] = &[
    (
        "CORRIDOR_NOT_ALLOWED",
        "Payments between these countries are not accepted.",
    ),
    (
        "AMOUNT_LIMIT_EXCEEDED",
        "The amount is above the limit for this corridor.",
    ),
    (
        "UNSUPPORTED_CURRENCY",
        "The currency is not accepted for this corridor.",
    ),
    (
        "TRAVEL_RULE_INCOMPLETE",
        "The payment lacks originator information required for its amount: the debtor's address and date of birth or national id.",
    ),
    (
        "SANCTIONS_MATCH",
        "The payment was declined by compliance screening.",
    ),
    (
        "COMPLIANCE_REVIEW",
        "The payment was stopped for compliance review.",
    ),
    (
        "AML_UNAVAILABLE",
        "Compliance screening could not be completed; the payment was not made.",
    ),
    (
        "FRAUD_RISK_ANONYMISING_NETWORK",
        "The payment was declined by fraud screening.",
    ),
    (
        "FRAUD_RISK_IP_COUNTRY_MISMATCH",
        "The payment was declined by fraud screening.",
    ),
    (
        "IP_INTELLIGENCE_UNAVAILABLE",
        "Fraud screening could not be completed; the payment was not made.",
    ),
];

impl ClientReason {
    /// The client's view of the pipeline's reason `code`. Codes are
    /// constants of the services (upper case, digits, underscores); anything
    /// else in the field is not passed on.
    pub fn of(code: &str) -> Self {
        if let Some((code, description)) = KNOWN.iter().find(|(known, _)| *known == code) {
            return Self {
                code: (*code).to_owned(),
                description,
            };
        }
        let is_code = !code.is_empty()
            && code.len() <= 64
            && code
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        Self {
            code: if is_code { code } else { NO_CODE }.to_owned(),
            description: GENERIC,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_get_their_description_and_others_a_generic_one() {
        let sanctions = ClientReason::of("SANCTIONS_MATCH");
        assert_eq!(sanctions.code, "SANCTIONS_MATCH");
        assert!(!sanctions.description.contains("list"));
        assert_eq!(ClientReason::of("AC04").description, GENERIC);
        assert_eq!(ClientReason::of("AC04").code, "AC04");
        assert_eq!(ClientReason::of("entry 12345 (score 0.96)").code, NO_CODE);
        assert_eq!(ClientReason::of("").code, NO_CODE);
    }
}
