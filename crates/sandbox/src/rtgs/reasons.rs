//! The reasons the rail gives for a rejection: ISO 20022 external status
//! reason codes, each with the short text it puts beside the code.

use std::fmt;
use std::str::FromStr;

use super::RailSpecError;

/// The ISO 20022 external status reasons the rail rejects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// AC01
    IncorrectAccountNumber,
    /// AC04
    ClosedAccountNumber,
    /// AC06
    BlockedAccount,
    /// AG01
    TransactionForbidden,
    /// AM04
    InsufficientFunds,
    /// AM05
    Duplication,
    /// BE01
    InconsistentWithEndCustomer,
    /// FF01: the document does not parse or lacks an element.
    InvalidFileFormat,
    /// MS03
    NotSpecifiedReasonAgentGenerated,
    /// RC01
    BankIdentifierIncorrect,
    /// RR04
    RegulatoryReason,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 11] = [
        Self::IncorrectAccountNumber,
        Self::ClosedAccountNumber,
        Self::BlockedAccount,
        Self::TransactionForbidden,
        Self::InsufficientFunds,
        Self::Duplication,
        Self::InconsistentWithEndCustomer,
        Self::InvalidFileFormat,
        Self::NotSpecifiedReasonAgentGenerated,
        Self::BankIdentifierIncorrect,
        Self::RegulatoryReason,
    ];

    /// What `reasons` defaults to: the rejections a real rail gives most.
    pub const DEFAULT: [ReasonCode; 5] = [
        Self::IncorrectAccountNumber,
        Self::ClosedAccountNumber,
        Self::TransactionForbidden,
        Self::RegulatoryReason,
        Self::InsufficientFunds,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::IncorrectAccountNumber => "AC01",
            Self::ClosedAccountNumber => "AC04",
            Self::BlockedAccount => "AC06",
            Self::TransactionForbidden => "AG01",
            Self::InsufficientFunds => "AM04",
            Self::Duplication => "AM05",
            Self::InconsistentWithEndCustomer => "BE01",
            Self::InvalidFileFormat => "FF01",
            Self::NotSpecifiedReasonAgentGenerated => "MS03",
            Self::BankIdentifierIncorrect => "RC01",
            Self::RegulatoryReason => "RR04",
        }
    }

    /// The short text the rail puts beside the code (`AddtlInf`).
    pub fn text(self) -> &'static str {
        match self {
            Self::IncorrectAccountNumber => "Creditor account number invalid",
            Self::ClosedAccountNumber => "Creditor account closed",
            Self::BlockedAccount => "Creditor account blocked",
            Self::TransactionForbidden => "Transaction forbidden on this account",
            Self::InsufficientFunds => "Insufficient funds",
            Self::Duplication => "Duplicate payment",
            Self::InconsistentWithEndCustomer => "Inconsistent with end customer",
            Self::InvalidFileFormat => "Invalid file format",
            Self::NotSpecifiedReasonAgentGenerated => "Reason not specified",
            Self::BankIdentifierIncorrect => "Bank identifier incorrect",
            Self::RegulatoryReason => "Regulatory reason",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for ReasonCode {
    type Err = RailSpecError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        let code = code.trim();
        Self::ALL
            .into_iter()
            .find(|reason| reason.code() == code)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|reason| reason.code()).collect();
                RailSpecError::BadValue {
                    setting: "reasons",
                    reason: format!("`{code}` is not one of {}", known.join("/")),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_round_trip() {
        for reason in ReasonCode::ALL {
            assert_eq!(reason.code().parse::<ReasonCode>().ok(), Some(reason));
            assert!(!reason.text().is_empty());
        }
        assert_eq!(
            ReasonCode::ClosedAccountNumber.text(),
            "Creditor account closed"
        );
    }
}
