//! pacs.008.001.08: one customer credit transfer between two banks,
//! settled through the clearing system (`SttlmMtd` CLRG).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::amount::{to_decimal, to_minor};
use crate::{Iso20022Error, read, required, write};

pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08";
pub const MESSAGE_NAME: &str = "pacs.008.001.08";

/// A bank, by BIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub bic: String,
}

/// A debtor or creditor: name, country, account (an IBAN, or another
/// account id), and the bank that keeps the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub name: String,
    pub country: String,
    pub account: String,
    pub agent: Agent,
}

/// The transfer a pacs.008 carries, in plain Rust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditTransfer {
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    pub instruction_id: String,
    pub end_to_end_id: String,
    pub transaction_id: String,
    /// The idempotency key end to end: one payment, one UETR, for ever.
    pub uetr: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub settlement_date: NaiveDate,
    pub instructing_agent: Agent,
    pub instructed_agent: Agent,
    pub debtor: Party,
    pub creditor: Party,
    pub remittance_information: Option<String>,
}

impl CreditTransfer {
    /// The document, as the rail receives it.
    pub fn to_xml(&self) -> Result<String, Iso20022Error> {
        write(&Document::from_transfer(self)?)
    }

    /// Reads a pacs.008 strictly: the namespace, one transaction, every
    /// element this rail needs, an exact amount.
    pub fn from_xml(xml: &str) -> Result<Self, Iso20022Error> {
        let document: Document = read(xml)?;
        document.into_transfer()
    }
}

// The wire shape. Field names are the standard's element names.

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "Document")]
struct Document {
    #[serde(rename = "@xmlns")]
    xmlns: String,
    #[serde(rename = "FIToFICstmrCdtTrf")]
    message: Message,
}

#[derive(Debug, Serialize, Deserialize)]
struct Message {
    #[serde(rename = "GrpHdr")]
    group_header: GroupHeader,
    #[serde(rename = "CdtTrfTxInf")]
    transactions: Vec<Transaction>,
}

#[derive(Debug, Serialize, Deserialize)]
struct GroupHeader {
    #[serde(rename = "MsgId")]
    message_id: String,
    #[serde(rename = "CreDtTm")]
    created_at: String,
    #[serde(rename = "NbOfTxs")]
    count: String,
    #[serde(rename = "SttlmInf")]
    settlement: SettlementInformation,
}

#[derive(Debug, Serialize, Deserialize)]
struct SettlementInformation {
    #[serde(rename = "SttlmMtd")]
    method: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Transaction {
    #[serde(rename = "PmtId")]
    payment_id: PaymentIdentification,
    #[serde(rename = "IntrBkSttlmAmt")]
    amount: Amount,
    #[serde(rename = "IntrBkSttlmDt")]
    settlement_date: String,
    #[serde(rename = "ChrgBr")]
    charge_bearer: String,
    #[serde(rename = "InstgAgt")]
    instructing_agent: AgentXml,
    #[serde(rename = "InstdAgt")]
    instructed_agent: AgentXml,
    #[serde(rename = "Dbtr")]
    debtor: PartyXml,
    #[serde(rename = "DbtrAcct")]
    debtor_account: AccountXml,
    #[serde(rename = "DbtrAgt")]
    debtor_agent: AgentXml,
    #[serde(rename = "CdtrAgt")]
    creditor_agent: AgentXml,
    #[serde(rename = "Cdtr")]
    creditor: PartyXml,
    #[serde(rename = "CdtrAcct")]
    creditor_account: AccountXml,
    #[serde(rename = "RmtInf", skip_serializing_if = "Option::is_none", default)]
    remittance: Option<Remittance>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PaymentIdentification {
    #[serde(rename = "InstrId")]
    instruction_id: String,
    #[serde(rename = "EndToEndId")]
    end_to_end_id: String,
    #[serde(rename = "TxId")]
    transaction_id: String,
    #[serde(rename = "UETR")]
    uetr: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Amount {
    #[serde(rename = "@Ccy")]
    currency: String,
    #[serde(rename = "$text")]
    value: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct AgentXml {
    #[serde(rename = "FinInstnId")]
    institution: Institution,
}

#[derive(Debug, Serialize, Deserialize)]
struct Institution {
    #[serde(rename = "BICFI")]
    bic: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PartyXml {
    #[serde(rename = "Nm")]
    name: String,
    #[serde(rename = "PstlAdr")]
    address: PostalAddress,
}

#[derive(Debug, Serialize, Deserialize)]
struct PostalAddress {
    #[serde(rename = "Ctry")]
    country: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct AccountXml {
    #[serde(rename = "Id")]
    id: AccountId,
}

#[derive(Debug, Serialize, Deserialize)]
struct AccountId {
    #[serde(rename = "IBAN", skip_serializing_if = "Option::is_none", default)]
    iban: Option<String>,
    #[serde(rename = "Othr", skip_serializing_if = "Option::is_none", default)]
    other: Option<OtherId>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OtherId {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Remittance {
    #[serde(rename = "Ustrd")]
    unstructured: String,
}

/// An IBAN by shape: two letters, two check digits, up to 30 letters and digits.
fn looks_like_iban(account: &str) -> bool {
    let bytes = account.as_bytes();
    (15..=34).contains(&bytes.len())
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..4].iter().all(u8::is_ascii_digit)
        && bytes[4..].iter().all(u8::is_ascii_alphanumeric)
}

fn agent(bic: &str) -> AgentXml {
    AgentXml {
        institution: Institution {
            bic: bic.to_owned(),
        },
    }
}

fn account(id: &str) -> AccountXml {
    let id = if looks_like_iban(id) {
        AccountId {
            iban: Some(id.to_owned()),
            other: None,
        }
    } else {
        AccountId {
            iban: None,
            other: Some(OtherId { id: id.to_owned() }),
        }
    };
    AccountXml { id }
}

fn party(party: &Party) -> PartyXml {
    PartyXml {
        name: party.name.clone(),
        address: PostalAddress {
            country: party.country.clone(),
        },
    }
}

impl Document {
    fn from_transfer(t: &CreditTransfer) -> Result<Self, Iso20022Error> {
        Ok(Self {
            xmlns: NAMESPACE.to_owned(),
            message: Message {
                group_header: GroupHeader {
                    message_id: t.message_id.clone(),
                    created_at: t
                        .created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    count: "1".to_owned(),
                    settlement: SettlementInformation {
                        method: "CLRG".to_owned(),
                    },
                },
                transactions: vec![Transaction {
                    payment_id: PaymentIdentification {
                        instruction_id: t.instruction_id.clone(),
                        end_to_end_id: t.end_to_end_id.clone(),
                        transaction_id: t.transaction_id.clone(),
                        uetr: t.uetr.to_string(),
                    },
                    amount: Amount {
                        currency: t.currency.clone(),
                        value: to_decimal(t.amount_minor, &t.currency)?,
                    },
                    settlement_date: t.settlement_date.format("%Y-%m-%d").to_string(),
                    charge_bearer: "SLEV".to_owned(),
                    instructing_agent: agent(&t.instructing_agent.bic),
                    instructed_agent: agent(&t.instructed_agent.bic),
                    debtor: party(&t.debtor),
                    debtor_account: account(&t.debtor.account),
                    debtor_agent: agent(&t.debtor.agent.bic),
                    creditor_agent: agent(&t.creditor.agent.bic),
                    creditor: party(&t.creditor),
                    creditor_account: account(&t.creditor.account),
                    remittance: t.remittance_information.as_ref().map(|text| Remittance {
                        unstructured: text.clone(),
                    }),
                }],
            },
        })
    }

    fn into_transfer(self) -> Result<CreditTransfer, Iso20022Error> {
        if self.xmlns != NAMESPACE {
            return Err(Iso20022Error::invalid(
                "Document",
                format!("namespace {:?}, expected {NAMESPACE}", self.xmlns),
            ));
        }
        let header = self.message.group_header;
        if header.count.trim() != "1" || self.message.transactions.len() != 1 {
            return Err(Iso20022Error::invalid(
                "GrpHdr/NbOfTxs",
                "this rail takes exactly one transaction per message",
            ));
        }
        if header.settlement.method.trim() != "CLRG" {
            return Err(Iso20022Error::invalid(
                "GrpHdr/SttlmInf/SttlmMtd",
                "only CLRG (settled through the clearing system)",
            ));
        }
        let created_at = DateTime::parse_from_rfc3339(header.created_at.trim())
            .map_err(|e| Iso20022Error::invalid("GrpHdr/CreDtTm", e.to_string()))?
            .with_timezone(&Utc);
        let Some(tx) = self.message.transactions.into_iter().next() else {
            return Err(Iso20022Error::invalid("CdtTrfTxInf", "missing"));
        };
        let currency = required("IntrBkSttlmAmt/@Ccy", &tx.amount.currency)?;
        let amount_minor = to_minor(tx.amount.value.trim(), &currency)?;
        let uetr = Uuid::parse_str(tx.payment_id.uetr.trim())
            .map_err(|e| Iso20022Error::invalid("PmtId/UETR", e.to_string()))?;
        let settlement_date = NaiveDate::parse_from_str(tx.settlement_date.trim(), "%Y-%m-%d")
            .map_err(|e| Iso20022Error::invalid("IntrBkSttlmDt", e.to_string()))?;
        Ok(CreditTransfer {
            message_id: required("GrpHdr/MsgId", &header.message_id)?,
            created_at,
            instruction_id: required("PmtId/InstrId", &tx.payment_id.instruction_id)?,
            end_to_end_id: required("PmtId/EndToEndId", &tx.payment_id.end_to_end_id)?,
            transaction_id: required("PmtId/TxId", &tx.payment_id.transaction_id)?,
            uetr,
            amount_minor,
            currency,
            settlement_date,
            instructing_agent: read_agent("InstgAgt", tx.instructing_agent)?,
            instructed_agent: read_agent("InstdAgt", tx.instructed_agent)?,
            debtor: read_party(
                "Dbtr",
                tx.debtor,
                tx.debtor_account,
                read_agent("DbtrAgt", tx.debtor_agent)?,
            )?,
            creditor: read_party(
                "Cdtr",
                tx.creditor,
                tx.creditor_account,
                read_agent("CdtrAgt", tx.creditor_agent)?,
            )?,
            remittance_information: tx.remittance.map(|r| r.unstructured),
        })
    }
}

fn read_agent(element: &'static str, agent: AgentXml) -> Result<Agent, Iso20022Error> {
    Ok(Agent {
        bic: required(element, &agent.institution.bic)?,
    })
}

fn read_party(
    element: &'static str,
    party: PartyXml,
    account: AccountXml,
    agent: Agent,
) -> Result<Party, Iso20022Error> {
    let account = match (account.id.iban, account.id.other) {
        (Some(iban), None) => required(element, &iban)?,
        (None, Some(other)) => required(element, &other.id)?,
        _ => {
            return Err(Iso20022Error::invalid(
                element,
                "the account needs exactly one of IBAN or Othr/Id",
            ));
        }
    };
    Ok(Party {
        name: required(element, &party.name)?,
        country: required(element, &party.address.country)?,
        account,
        agent,
    })
}
