//! The pipeline's words, as types: why a payment was refused or reversed,
//! what validation decided, where a payment stands.
//!
//! Reason codes are ISO 20022 external status reason codes
//! (`ExternalStatusReason1Code`) where one exists — what a pacs.002 carries
//! and what banks' operations teams read — and Paystream's own codes for
//! screening outcomes ISO has no code for. On the wire a code stays the
//! string it always was, so the schemas do not change and a code added by a
//! newer producer reaches an older consumer as [`ReasonCode::Other`].

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! reason_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal, $text:literal;)+) => {
        /// Why a payment was rejected, or a debit reversed.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum ReasonCode {
            $($(#[doc = $doc])* $variant,)+
            /// A code this build does not know, kept as it was sent.
            Other(String),
        }

        impl ReasonCode {
            /// Every code this build knows.
            pub const KNOWN: &'static [ReasonCode] = &[$(ReasonCode::$variant,)+];

            /// The code as it travels: `AM04`, `SANCTIONS_MATCH`, ...
            pub fn code(&self) -> &str {
                match self {
                    $(Self::$variant => $code,)+
                    Self::Other(code) => code,
                }
            }

            /// A description fit for the payer: what happened, never the
            /// internals (list entries, scores, addresses) behind it.
            pub fn description(&self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(_) => "The payment could not be completed.",
                }
            }

            pub fn from_code(code: &str) -> Self {
                match code {
                    $($code => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }
    };
}

reason_codes! {
    /// ISO AM04: the account's available balance does not cover the amount.
    InsufficientFunds = "AM04", "Insufficient funds in the debtor account.";
    /// ISO AC01: the account number is wrong or unknown.
    IncorrectAccountNumber = "AC01", "The account number is incorrect.";
    /// ISO AC04: the account is closed.
    ClosedAccountNumber = "AC04", "The account is closed.";
    /// ISO AC06: the account is blocked.
    BlockedAccount = "AC06", "The account is blocked.";
    /// ISO AG01: the transaction is forbidden on this account.
    TransactionForbidden = "AG01", "This transaction is not allowed on the account.";
    /// ISO AM03: the currency is not the account's (or not allowed).
    NotAllowedCurrency = "AM03", "The currency is not allowed for this account.";
    /// ISO AM05: a duplicate of a payment already made.
    Duplication = "AM05", "The payment duplicates one already made.";
    /// ISO RR04: regulatory reasons.
    RegulatoryReason = "RR04", "The payment was refused for regulatory reasons.";
    /// ISO FF01: the message could not be read or was incomplete.
    InvalidFileFormat = "FF01", "The payment instruction was malformed.";
    /// ISO MS03: not specified by the agent.
    NotSpecifiedReasonAgentGenerated = "MS03", "The payment was refused by a bank.";
    /// A party matched a sanctions list closely enough to block.
    SanctionsMatch = "SANCTIONS_MATCH", "The payment was declined by compliance screening.";
    /// A party matched a list loosely: held for a compliance officer.
    ComplianceReview = "COMPLIANCE_REVIEW", "The payment was stopped for compliance review.";
    /// Initiated from a VPN, proxy or Tor address.
    FraudRiskAnonymisingNetwork = "FRAUD_RISK_ANONYMISING_NETWORK", "The payment was declined by fraud screening.";
    /// Initiated from a country other than the debtor's.
    FraudRiskIpCountryMismatch = "FRAUD_RISK_IP_COUNTRY_MISMATCH", "The payment was declined by fraud screening.";
    /// Fraud screening could not be completed in time (fails closed).
    IpIntelligenceUnavailable = "IP_INTELLIGENCE_UNAVAILABLE", "Fraud screening could not be completed; the payment was not made.";
    /// Sanctions screening could not be completed in time (fails closed).
    AmlUnavailable = "AML_UNAVAILABLE", "Compliance screening could not be completed; the payment was not made.";
    /// A party's country is closed to payments.
    CorridorNotAllowed = "CORRIDOR_NOT_ALLOWED", "Payments between these countries are not offered.";
    /// Above the corridor's limit for the currency.
    AmountLimitExceeded = "AMOUNT_LIMIT_EXCEEDED", "The amount is above the limit for this corridor.";
    /// Above the travel-rule threshold without the party data it needs.
    TravelRuleIncomplete = "TRAVEL_RULE_INCOMPLETE", "The payment lacks originator information required for its amount: the debtor's address and date of birth or national id.";
    /// The currency is not accepted on the corridor.
    UnsupportedCurrency = "UNSUPPORTED_CURRENCY", "The currency is not accepted for this corridor.";
    /// ISO AM12: zero or negative; a credit transfer moves a positive amount.
    InvalidAmount = "AM12", "The amount is not valid.";
}

impl From<String> for ReasonCode {
    fn from(code: String) -> Self {
        Self::from_code(&code)
    }
}

impl From<ReasonCode> for String {
    fn from(code: ReasonCode) -> Self {
        match code {
            ReasonCode::Other(code) => code,
            known => known.code().to_owned(),
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What validation decided about a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    Validated,
    Rejected,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Self::Validated => "VALIDATED",
            Self::Rejected => "REJECTED",
        }
    }
}

/// Where a payment stands. Ranks order the stages, so that a late event of
/// an earlier stage never moves a payment back; the final states rank
/// highest and nothing moves a payment out of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Submitted,
    Validated,
    /// The debtor's account holds the amount.
    Debited,
    /// Sent to the settlement rail; its outcome is awaited.
    SubmittedToRail,
    /// Final: the rail settled it.
    Settled,
    /// Final: refused before any money moved.
    Rejected,
    /// Final: the rail refused it and the debit was reversed.
    Reversed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 7] = [
        Self::Submitted,
        Self::Validated,
        Self::Debited,
        Self::SubmittedToRail,
        Self::Settled,
        Self::Rejected,
        Self::Reversed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Submitted => "SUBMITTED",
            Self::Validated => "VALIDATED",
            Self::Debited => "DEBITED",
            Self::SubmittedToRail => "SUBMITTED_TO_RAIL",
            Self::Settled => "SETTLED",
            Self::Rejected => "REJECTED",
            Self::Reversed => "REVERSED",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.name() == name)
    }

    pub fn rank(self) -> i32 {
        match self {
            Self::Submitted => 0,
            Self::Validated => 10,
            Self::Debited => 20,
            Self::SubmittedToRail => 30,
            Self::Settled | Self::Rejected | Self::Reversed => 1000,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() >= 1000
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_reads_back_as_itself() {
        for code in ReasonCode::KNOWN {
            assert_eq!(&ReasonCode::from_code(code.code()), code);
            assert_eq!(String::from(code.clone()), code.code());
        }
    }

    #[test]
    fn an_unknown_code_is_kept_as_sent() {
        let code = ReasonCode::from_code("XT99");
        assert_eq!(code, ReasonCode::Other("XT99".into()));
        assert_eq!(code.code(), "XT99");
    }

    #[test]
    fn iso_codes_are_the_external_status_reason_codes() {
        assert_eq!(ReasonCode::InsufficientFunds.code(), "AM04");
        assert_eq!(ReasonCode::IncorrectAccountNumber.code(), "AC01");
        assert_eq!(ReasonCode::ClosedAccountNumber.code(), "AC04");
        assert_eq!(ReasonCode::BlockedAccount.code(), "AC06");
        assert_eq!(ReasonCode::TransactionForbidden.code(), "AG01");
        assert_eq!(ReasonCode::RegulatoryReason.code(), "RR04");
        assert_eq!(ReasonCode::InvalidAmount.code(), "AM12");
    }

    #[test]
    fn statuses_round_trip_and_final_states_outrank_the_rest() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::from_name(status.name()), Some(status));
            assert_eq!(
                status.is_final(),
                matches!(
                    status,
                    PaymentStatus::Settled | PaymentStatus::Rejected | PaymentStatus::Reversed
                )
            );
        }
        assert!(PaymentStatus::Debited.rank() > PaymentStatus::Validated.rank());
    }
}
