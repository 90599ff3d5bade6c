//! The handler of `payment.submitted`: decide once, record why, emit once.
//!
//! The providers are called first, with no transaction open; then the
//! decision, every screening result and the outgoing events are written in
//! the record's transaction, which the runtime commits with the processed
//! `eventId` and the outbox rows. A crash before the commit leaves nothing
//! and the redelivery decides afresh; a redelivery after it is skipped by the
//! runtime. The decisions table's key on paymentId stands guard behind that:
//! a payment submitted again under another eventId keeps its first decision.

use std::time::Duration;

use paystream_bus::{Context, Handler, HandlerError, Record};
use paystream_contract::{
    AlertSeverity, AmlAlertRaised, Decision, Party, PaymentRejected, PaymentSubmitted, ReasonCode,
    RejectionStage,
};
use serde_json::Value;
use uuid::Uuid;

use crate::metrics::METRICS;
use crate::providers::{CallError, ProviderClient};
use crate::rules::Rules;
use crate::screening::{self, AmlAnswer, Checked, RiskLevel};

/// The alert rule of a sanctions-list match (alerts name rules, not reasons).
const SANCTIONS_RULE: &str = "SANCTIONS_MATCH";

/// One row of the audit trail of checks.
#[derive(Debug, Clone)]
struct ScreeningRow {
    kind: &'static str,
    party_role: Option<&'static str>,
    party_name: Option<String>,
    outcome: String,
    matched_list: Option<String>,
    matched_entry: Option<String>,
    score_permille: Option<i32>,
    details: Value,
    latency_ms: i32,
    at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
struct Alert {
    severity: AlertSeverity,
    rule_code: &'static str,
    party: Option<(&'static str, String)>,
    matched: Option<(String, String)>,
    score_permille: Option<i32>,
    details: String,
}

#[derive(Debug, Default)]
struct Outcome {
    rejection: Option<(ReasonCode, String)>,
    screenings: Vec<ScreeningRow>,
    alerts: Vec<Alert>,
}

impl Outcome {
    fn reject(&mut self, code: ReasonCode, text: impl Into<String>) {
        if self.rejection.is_none() {
            self.rejection = Some((code, text.into()));
        }
    }
}

fn permille(score: f64) -> i32 {
    (score.clamp(0.0, 1.0) * 1000.0).round() as i32
}

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

pub struct Validator {
    pub rules: Rules,
    pub ip_intelligence: ProviderClient,
    pub aml: ProviderClient,
    /// How long screening waits for an unavailable provider before the
    /// payment is rejected unscreened.
    pub screening_bound: Duration,
}

impl Handler<PaymentSubmitted> for Validator {
    async fn handle(
        &self,
        record: Record<PaymentSubmitted>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let payment = record.event;
        let outcome = self.decide(&payment).await?;
        self.record(&payment, outcome, ctx).await
    }
}

impl Validator {
    async fn decide(&self, payment: &PaymentSubmitted) -> Result<Outcome, HandlerError> {
        let mut outcome = Outcome::default();
        if let Err(rejection) = self.rules.check(payment) {
            outcome.reject(rejection.code, rejection.text);
            return Ok(outcome);
        }
        if let Some(ip) = &payment.client_ip {
            self.check_ip(payment, ip, &mut outcome).await?;
            if outcome.rejection.is_some() {
                return Ok(outcome);
            }
        }
        let (debtor, creditor) = futures::join!(
            screening::screen_party(
                &self.aml,
                payment.payment_id,
                "DEBTOR",
                &payment.debtor,
                self.screening_bound
            ),
            screening::screen_party(
                &self.aml,
                payment.payment_id,
                "CREDITOR",
                &payment.creditor,
                self.screening_bound
            ),
        );
        for (role, party, result) in [
            ("DEBTOR", &payment.debtor, debtor),
            ("CREDITOR", &payment.creditor, creditor),
        ] {
            self.judge_screening(role, party, result, &mut outcome)?;
        }
        Ok(outcome)
    }

    async fn check_ip(
        &self,
        payment: &PaymentSubmitted,
        ip: &str,
        outcome: &mut Outcome,
    ) -> Result<(), HandlerError> {
        let checked = match screening::check_ip(
            &self.ip_intelligence,
            payment.payment_id,
            ip,
            self.screening_bound,
        )
        .await
        {
            Ok(checked) => checked,
            Err(CallError::Unavailable { reason, .. }) => {
                outcome.reject(
                    ReasonCode::IpIntelligenceUnavailable,
                    format!("fraud screening could not be completed: {reason}"),
                );
                return Ok(());
            }
            Err(refused @ CallError::Refused { .. }) => {
                return Err(HandlerError::permanent(refused));
            }
        };
        let security = &checked.answer.security;
        let anonymised = security.is_vpn || security.is_proxy || security.is_tor;
        let country = checked.answer.country_code.clone();
        let mismatch = country
            .as_deref()
            .is_some_and(|c| c != payment.debtor.country);
        outcome.screenings.push(ScreeningRow {
            kind: "IP",
            party_role: Some("DEBTOR"),
            party_name: Some(payment.debtor.name.clone()),
            outcome: if anonymised || mismatch {
                "FLAGGED"
            } else {
                "CLEAR"
            }
            .into(),
            matched_list: None,
            matched_entry: None,
            score_permille: None,
            details: checked.raw.clone(),
            latency_ms: millis(checked.latency),
            at: checked.at,
        });
        if anonymised {
            let network = [
                (security.is_vpn, "VPN"),
                (security.is_proxy, "proxy"),
                (security.is_tor, "Tor"),
            ]
            .into_iter()
            .filter(|(flag, _)| *flag)
            .map(|(_, name)| name)
            .collect::<Vec<_>>()
            .join("/");
            let text = format!("initiated from {ip}, a {network} address");
            outcome.alerts.push(Alert {
                severity: AlertSeverity::High,
                rule_code: "ANONYMISING_NETWORK",
                party: Some(("DEBTOR", payment.debtor.name.clone())),
                matched: None,
                score_permille: None,
                details: text.clone(),
            });
            outcome.reject(ReasonCode::FraudRiskAnonymisingNetwork, text);
        } else if mismatch {
            let text = format!(
                "initiated from {ip} in {}, the debtor resides in {}",
                country.as_deref().unwrap_or("?"),
                payment.debtor.country
            );
            outcome.alerts.push(Alert {
                severity: AlertSeverity::Medium,
                rule_code: "IP_COUNTRY_MISMATCH",
                party: Some(("DEBTOR", payment.debtor.name.clone())),
                matched: None,
                score_permille: None,
                details: text.clone(),
            });
            outcome.reject(ReasonCode::FraudRiskIpCountryMismatch, text);
        }
        Ok(())
    }

    fn judge_screening(
        &self,
        role: &'static str,
        party: &Party,
        result: Result<Checked<AmlAnswer>, CallError>,
        outcome: &mut Outcome,
    ) -> Result<(), HandlerError> {
        let checked = match result {
            Ok(checked) => checked,
            Err(CallError::Unavailable { reason, .. }) => {
                outcome.reject(
                    ReasonCode::AmlUnavailable,
                    format!(
                        "the {} could not be screened within {:?}: {reason}",
                        role.to_lowercase(),
                        self.screening_bound
                    ),
                );
                return Ok(());
            }
            Err(refused @ CallError::Refused { .. }) => {
                return Err(HandlerError::permanent(refused));
            }
        };
        let best = checked.answer.matches.first();
        outcome.screenings.push(ScreeningRow {
            kind: "AML",
            party_role: Some(role),
            party_name: Some(party.name.clone()),
            outcome: format!("{:?}", checked.answer.risk_level).to_uppercase(),
            matched_list: best.map(|m| m.list.clone()),
            matched_entry: best.map(|m| format!("{} ({})", m.reference, m.listed_name)),
            score_permille: Some(permille(checked.answer.score)),
            details: checked.raw.clone(),
            latency_ms: millis(checked.latency),
            at: checked.at,
        });
        let (severity, code, verdict) = match checked.answer.risk_level {
            RiskLevel::Low => return Ok(()),
            RiskLevel::Medium => (
                AlertSeverity::Medium,
                ReasonCode::ComplianceReview,
                "held for compliance review",
            ),
            RiskLevel::High => (AlertSeverity::High, ReasonCode::SanctionsMatch, "blocked"),
        };
        let matched = best
            .map(|m| {
                format!(
                    "{} {} ({}, score {:.2})",
                    m.list, m.reference, m.listed_name, m.score
                )
            })
            .unwrap_or_default();
        let text = format!(
            "{} `{}` {verdict}: matches {matched}",
            role.to_lowercase(),
            party.name
        );
        outcome.alerts.push(Alert {
            severity,
            rule_code: SANCTIONS_RULE,
            party: Some((role, party.name.clone())),
            matched: best.map(|m| {
                (
                    m.list.clone(),
                    format!("{} ({})", m.reference, m.listed_name),
                )
            }),
            score_permille: Some(permille(checked.answer.score)),
            details: text.clone(),
        });
        // A block outranks a review: HIGH on either party decides.
        if code == ReasonCode::SanctionsMatch
            && outcome
                .rejection
                .as_ref()
                .is_some_and(|(c, _)| *c == ReasonCode::ComplianceReview)
        {
            outcome.rejection = None;
        }
        outcome.reject(code, text);
        Ok(())
    }

    async fn record(
        &self,
        payment: &PaymentSubmitted,
        outcome: Outcome,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let (decision, reason_code, reason_text) = match &outcome.rejection {
            Some((code, text)) => (Decision::Rejected, Some(code.code()), Some(text.as_str())),
            None => (Decision::Validated, None, None),
        };
        let inserted = sqlx::query(
            "INSERT INTO decisions (payment_id, correlation_id, decision, reason_code, reason_text)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_id) DO NOTHING",
        )
        .bind(payment.payment_id)
        .bind(&payment.envelope.correlation_id)
        .bind(decision.name())
        .bind(reason_code)
        .bind(reason_text)
        .execute(ctx.tx().await?)
        .await?
        .rows_affected();
        if inserted == 0 {
            tracing::warn!(payment_id = %payment.payment_id, "payment submitted again under another eventId; its first decision stands");
            return Ok(());
        }
        for row in &outcome.screenings {
            sqlx::query(
                "INSERT INTO screening_results (payment_id, check_kind, party_role, party_name, outcome,
                     matched_list, matched_entry, score_permille, details, provider_latency_ms, screened_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(payment.payment_id)
            .bind(row.kind)
            .bind(row.party_role)
            .bind(&row.party_name)
            .bind(&row.outcome)
            .bind(&row.matched_list)
            .bind(&row.matched_entry)
            .bind(row.score_permille)
            .bind(&row.details)
            .bind(row.latency_ms)
            .bind(row.at)
            .execute(ctx.tx().await?)
            .await?;
        }
        for (n, alert) in outcome.alerts.iter().enumerate() {
            ctx.emit(|envelope| AmlAlertRaised {
                envelope,
                alert_id: Uuid::new_v5(&payment.payment_id, format!("alert#{n}").as_bytes()),
                payment_id: payment.payment_id,
                severity: alert.severity,
                rule_code: alert.rule_code.to_owned(),
                debtor_account: payment.debtor.account.clone(),
                party_role: alert.party.as_ref().map(|(role, _)| (*role).to_owned()),
                party_name: alert.party.as_ref().map(|(_, name)| name.clone()),
                matched_list: alert.matched.as_ref().map(|(list, _)| list.clone()),
                matched_entry: alert.matched.as_ref().map(|(_, entry)| entry.clone()),
                score_permille: alert.score_permille,
                details: alert.details.clone(),
            });
        }
        match &outcome.rejection {
            Some((code, text)) => {
                ctx.emit(|envelope| PaymentRejected {
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
                ctx.emit(|envelope| payment.clone().into_validated(envelope));
            }
        }
        METRICS
            .decisions
            .with_label_values(&[decision.name(), reason_code.unwrap_or("")])
            .inc();
        tracing::info!(
            payment_id = %payment.payment_id,
            decision = decision.name(),
            reason_code = reason_code.unwrap_or(""),
            alerts = outcome.alerts.len(),
            "payment decided"
        );
        Ok(())
    }
}
