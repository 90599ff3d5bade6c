//! What deciding a payment found — the rejection if any, every check made
//! (the audit rows) and the alerts — and the events it emits. Built by the
//! validator from the providers' answers, written by the decision writer.

use paystream_bus::Emitter;
use paystream_contract::{
    AlertSeverity, AmlAlertRaised, Decision, PaymentRejected, PaymentSubmitted, ReasonCode,
    RejectionStage,
};
use uuid::Uuid;

/// Which check an audit row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Ip,
    Aml,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ip => "IP",
            Self::Aml => "AML",
        }
    }
}

/// The party a check or an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Debtor,
    Creditor,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Debtor => "DEBTOR",
            Self::Creditor => "CREDITOR",
        }
    }

    /// For sentences: "the debtor".
    pub fn lower(self) -> &'static str {
        match self {
            Self::Debtor => "debtor",
            Self::Creditor => "creditor",
        }
    }
}

/// One row of the audit trail of checks.
#[derive(Debug, Clone)]
pub struct ScreeningRow {
    pub kind: CheckKind,
    pub party_role: Role,
    pub party_name: String,
    /// LOW/MEDIUM/HIGH for AML, CLEAR/FLAGGED for IP.
    pub outcome: &'static str,
    pub matched_list: Option<String>,
    pub matched_entry: Option<String>,
    pub score_permille: Option<i32>,
    /// The provider's answer as it came, JSON text: stored as JSONB without
    /// a parse and re-serialise on our side.
    pub details: String,
    pub latency_ms: i32,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub severity: AlertSeverity,
    pub rule_code: &'static str,
    pub party: (Role, String),
    /// (list, entry) of a sanctions match.
    pub matched: Option<(String, String)>,
    pub score_permille: Option<i32>,
    pub details: String,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub rejection: Option<(ReasonCode, String)>,
    pub screenings: Vec<ScreeningRow>,
    pub alerts: Vec<Alert>,
}

impl Outcome {
    /// The first rejection decides; later ones are not recorded.
    pub fn reject(&mut self, code: ReasonCode, text: impl Into<String>) {
        if self.rejection.is_none() {
            self.rejection = Some((code, text.into()));
        }
    }

    pub fn decision(&self) -> Decision {
        match self.rejection {
            Some(_) => Decision::Rejected,
            None => Decision::Validated,
        }
    }

    /// The reason code of a rejection, `None` for a validated payment.
    pub fn reason_code(&self) -> Option<&str> {
        self.rejection.as_ref().map(|(code, _)| code.code())
    }

    /// Stages the decision's events: one alert per alert raised, then the
    /// payment validated or rejected. Ids derive from the input's, so
    /// writing the same outcome again emits the same ids.
    pub fn emit(&self, payment: &PaymentSubmitted, emitter: &mut Emitter) {
        for (n, alert) in self.alerts.iter().enumerate() {
            emitter.emit(|envelope| AmlAlertRaised {
                envelope,
                alert_id: Uuid::new_v5(&payment.payment_id, format!("alert#{n}").as_bytes()),
                payment_id: payment.payment_id,
                severity: alert.severity,
                rule_code: alert.rule_code.to_owned(),
                debtor_account: payment.debtor.account.clone(),
                party_role: Some(alert.party.0.name().to_owned()),
                party_name: Some(alert.party.1.clone()),
                matched_list: alert.matched.as_ref().map(|(list, _)| list.clone()),
                matched_entry: alert.matched.as_ref().map(|(_, entry)| entry.clone()),
                score_permille: alert.score_permille,
                details: alert.details.clone(),
            });
        }
        match &self.rejection {
            Some((code, text)) => {
                emitter.emit(|envelope| PaymentRejected {
                    envelope,
                    payment_id: payment.payment_id,
                    stage: RejectionStage::Validation,
                    reason_code: code.clone(),
                    reason_text: text.clone(),
                    debtor_account: payment.debtor.account.clone(),
                    amount_minor: payment.amount_minor,
                    currency: payment.currency.clone(),
                    corridor_code: Some(payment.corridor_code.clone()),
                });
            }
            None => {
                emitter.emit(|envelope| payment.clone().into_validated(envelope));
            }
        }
    }
}
