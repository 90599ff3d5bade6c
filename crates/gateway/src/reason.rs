//! What an API client is told about why its payment was rejected.
//!
//! The pipeline's `reasonText` is written for compliance and operations: a
//! screening rejection names the party, the sanctions list, the entry and the
//! match score. None of that may reach the client (it would tip off whoever
//! is behind the payment and leak the screening's workings). The client gets
//! the reason code and a fixed description of it; the full text stays in the
//! events, the validation service's audit trail and the gateway's database.

use paystream_contract::ReasonCode;

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

impl ClientReason {
    /// The client's view of the pipeline's reason `code`: the contract's
    /// description of a code it knows. Codes are constants of the services
    /// (upper case, digits, underscores); anything else in the field is not
    /// passed on.
    pub fn of(code: &str) -> Self {
        match ReasonCode::from_code(code) {
            ReasonCode::Other(code) => {
                let is_code = !code.is_empty()
                    && code.len() <= 64
                    && code
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                Self {
                    code: if is_code { code } else { NO_CODE.to_owned() },
                    description: GENERIC,
                }
            }
            known => Self {
                code: known.code().to_owned(),
                description: known.description(),
            },
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
        assert_eq!(
            ClientReason::of("AC04").description,
            "The account is closed."
        );
        assert_eq!(ClientReason::of("XT99").description, GENERIC);
        assert_eq!(ClientReason::of("XT99").code, "XT99");
        assert_eq!(ClientReason::of("entry 12345 (score 0.96)").code, NO_CODE);
        assert_eq!(ClientReason::of("").code, NO_CODE);
    }
}
