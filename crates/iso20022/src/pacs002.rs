//! pacs.002.001.10: the rail's status of one transaction it was sent:
//! accepted (ACSP), pending (PDNG), settled (ACSC) or rejected (RJCT, with
//! an external status reason code such as AC04 or AM04).

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::pacs008::MESSAGE_NAME as PACS008;
use crate::{Iso20022Error, read, required, write};

pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxStatus {
    /// Accepted; settlement in process.
    AcceptedSettlementInProcess,
    /// Settled on the creditor agent's account.
    AcceptedSettlementCompleted,
    Pending,
    Rejected,
}

impl TxStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::AcceptedSettlementInProcess => "ACSP",
            Self::AcceptedSettlementCompleted => "ACSC",
            Self::Pending => "PDNG",
            Self::Rejected => "RJCT",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [
            Self::AcceptedSettlementInProcess,
            Self::AcceptedSettlementCompleted,
            Self::Pending,
            Self::Rejected,
        ]
        .into_iter()
        .find(|status| status.code() == code)
    }

    /// Whether the status is an outcome (settled or rejected), not a step.
    pub fn is_final(self) -> bool {
        matches!(self, Self::AcceptedSettlementCompleted | Self::Rejected)
    }
}

impl fmt::Display for TxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A status report in plain Rust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    /// The MsgId of the pacs.008 reported on.
    pub original_message_id: String,
    pub original_end_to_end_id: String,
    pub uetr: Uuid,
    pub status: TxStatus,
    /// The ISO 20022 external status reason of a rejection (AC04, AM04, FF01…).
    pub reason: Option<String>,
    /// Free text beside the reason code (`StsRsnInf/AddtlInf`).
    pub reason_text: Option<String>,
    /// The date the rail settled on (`FctvIntrBkSttlmDt`), once settled.
    pub settlement_date: Option<NaiveDate>,
    /// The rail's own reference for the transaction (`ClrSysRef`), from
    /// acceptance on.
    pub clearing_reference: Option<String>,
}

impl StatusReport {
    pub fn to_xml(&self) -> Result<String, Iso20022Error> {
        if (self.status == TxStatus::Rejected) != self.reason.is_some() {
            return Err(Iso20022Error::invalid(
                "TxInfAndSts/StsRsnInf",
                "a rejection carries a reason, and only a rejection",
            ));
        }
        write(&Document {
            xmlns: NAMESPACE.to_owned(),
            report: Report {
                group_header: GroupHeader {
                    message_id: self.message_id.clone(),
                    created_at: self
                        .created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                },
                original_group: OriginalGroup {
                    message_id: self.original_message_id.clone(),
                    message_name: PACS008.to_owned(),
                },
                transaction: TransactionStatus {
                    original_end_to_end_id: self.original_end_to_end_id.clone(),
                    original_uetr: self.uetr.to_string(),
                    status: self.status.code().to_owned(),
                    reason: self.reason.as_ref().map(|code| ReasonInformation {
                        reason: Reason { code: code.clone() },
                        text: self.reason_text.clone(),
                    }),
                    settlement_date: self.settlement_date.map(|date| DateChoice {
                        date: date.format("%Y-%m-%d").to_string(),
                    }),
                    clearing_reference: self.clearing_reference.clone(),
                },
            },
        })
    }

    pub fn from_xml(xml: &str) -> Result<Self, Iso20022Error> {
        let document: Document = read(xml)?;
        if document.xmlns != NAMESPACE {
            return Err(Iso20022Error::invalid(
                "Document",
                format!("namespace {:?}, expected {NAMESPACE}", document.xmlns),
            ));
        }
        let report = document.report;
        let tx = report.transaction;
        let status = TxStatus::from_code(tx.status.trim()).ok_or_else(|| {
            Iso20022Error::invalid(
                "TxInfAndSts/TxSts",
                format!("unknown status {:?}", tx.status),
            )
        })?;
        let (reason, reason_text) = match tx.reason {
            Some(info) => (
                Some(required("StsRsnInf/Rsn/Cd", &info.reason.code)?),
                info.text.map(|text| text.trim().to_owned()),
            ),
            None => (None, None),
        };
        let settlement_date = match tx.settlement_date {
            Some(choice) => Some(
                NaiveDate::parse_from_str(choice.date.trim(), "%Y-%m-%d").map_err(|e| {
                    Iso20022Error::invalid("TxInfAndSts/FctvIntrBkSttlmDt/Dt", e.to_string())
                })?,
            ),
            None => None,
        };
        let clearing_reference = match tx.clearing_reference {
            Some(reference) => Some(required("TxInfAndSts/ClrSysRef", &reference)?),
            None => None,
        };
        if status == TxStatus::Rejected && reason.is_none() {
            return Err(Iso20022Error::invalid(
                "TxInfAndSts/StsRsnInf",
                "a rejection without a reason",
            ));
        }
        Ok(Self {
            message_id: required("GrpHdr/MsgId", &report.group_header.message_id)?,
            created_at: DateTime::parse_from_rfc3339(report.group_header.created_at.trim())
                .map_err(|e| Iso20022Error::invalid("GrpHdr/CreDtTm", e.to_string()))?
                .with_timezone(&Utc),
            original_message_id: required(
                "OrgnlGrpInfAndSts/OrgnlMsgId",
                &report.original_group.message_id,
            )?,
            original_end_to_end_id: required(
                "TxInfAndSts/OrgnlEndToEndId",
                &tx.original_end_to_end_id,
            )?,
            uetr: Uuid::parse_str(tx.original_uetr.trim())
                .map_err(|e| Iso20022Error::invalid("TxInfAndSts/OrgnlUETR", e.to_string()))?,
            status,
            reason,
            reason_text,
            settlement_date,
            clearing_reference,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "Document")]
struct Document {
    #[serde(rename = "@xmlns")]
    xmlns: String,
    #[serde(rename = "FIToFIPmtStsRpt")]
    report: Report,
}

#[derive(Debug, Serialize, Deserialize)]
struct Report {
    #[serde(rename = "GrpHdr")]
    group_header: GroupHeader,
    #[serde(rename = "OrgnlGrpInfAndSts")]
    original_group: OriginalGroup,
    #[serde(rename = "TxInfAndSts")]
    transaction: TransactionStatus,
}

#[derive(Debug, Serialize, Deserialize)]
struct GroupHeader {
    #[serde(rename = "MsgId")]
    message_id: String,
    #[serde(rename = "CreDtTm")]
    created_at: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct OriginalGroup {
    #[serde(rename = "OrgnlMsgId")]
    message_id: String,
    #[serde(rename = "OrgnlMsgNmId")]
    message_name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct TransactionStatus {
    #[serde(rename = "OrgnlEndToEndId")]
    original_end_to_end_id: String,
    #[serde(rename = "OrgnlUETR")]
    original_uetr: String,
    #[serde(rename = "TxSts")]
    status: String,
    #[serde(rename = "StsRsnInf", skip_serializing_if = "Option::is_none", default)]
    reason: Option<ReasonInformation>,
    #[serde(
        rename = "FctvIntrBkSttlmDt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    settlement_date: Option<DateChoice>,
    #[serde(rename = "ClrSysRef", skip_serializing_if = "Option::is_none", default)]
    clearing_reference: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DateChoice {
    #[serde(rename = "Dt")]
    date: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ReasonInformation {
    #[serde(rename = "Rsn")]
    reason: Reason,
    #[serde(rename = "AddtlInf", skip_serializing_if = "Option::is_none", default)]
    text: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reason {
    #[serde(rename = "Cd")]
    code: String,
}
