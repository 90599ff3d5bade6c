//! The handler of `payment.submitted`: decide once, record why, emit once.
//!
//! The providers are called first, with no transaction open; then the
//! decision, every screening result and the outgoing events go to the
//! decision writer ([`crate::decisions`]), which commits them with the
//! processed `eventId` and the outbox rows in one transaction shared by the
//! payments decided at the same time. The handler returns, and its offset
//! may be committed, only after that commit. A crash before it leaves
//! nothing and the redelivery decides afresh; a redelivery after it is found
//! before the providers are called. The decisions table's key on paymentId
//! stands guard behind that: a payment submitted again under another eventId
//! keeps its first decision.

use std::time::Duration;

use paystream_bus::{Context, Handler, HandlerError, Record};
use paystream_contract::{AlertSeverity, Party, PaymentSubmitted, ReasonCode};

use crate::batching::Batcher;
use crate::decisions::{Decided, Decisions, Written};
use crate::metrics::METRICS;
use crate::outcome::{Alert, CheckKind, Outcome, Role, ScreeningRow};
use crate::providers::CallError;
use crate::rules::Rules;
use crate::screening::{self, AmlAnswer, Checked, RiskLevel};

/// The alert rule of a sanctions-list match (alerts name rules, not reasons).
const SANCTIONS_RULE: &str = "SANCTIONS_MATCH";

fn permille(score: f64) -> i32 {
    (score.clamp(0.0, 1.0) * 1000.0).round() as i32
}

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

pub struct Validator {
    pub rules: Rules,
    /// The IP-intelligence and AML checks, each sent in batch calls shared
    /// by the payments being decided.
    pub ip_intelligence: Batcher,
    pub aml: Batcher,
    /// How long screening waits for an unavailable provider before the
    /// payment is rejected unscreened.
    pub screening_bound: Duration,
    /// Where decisions are written, in batches, exactly once.
    pub decisions: Decisions,
}

impl Handler<PaymentSubmitted> for Validator {
    /// `_ctx` stays unused: the decision writer commits this record's
    /// effects, claim and events itself, with those of the payments decided
    /// beside it.
    async fn handle(
        &self,
        record: Record<PaymentSubmitted>,
        _ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let Record {
            event: payment,
            meta,
        } = record;
        if self.decisions.processed(payment.envelope.event_id).await? {
            METRICS.duplicates.inc();
            tracing::debug!(event_id = %payment.envelope.event_id, "already processed; skipping the duplicate");
            return Ok(());
        }
        let outcome = self.decide(&payment).await?;
        let (decision, reason_code) =
            (outcome.decision(), outcome.reason_code().map(str::to_owned));
        let payment_id = payment.payment_id;
        let written = self
            .decisions
            .write(Decided {
                payment,
                headers: meta.headers,
                span: tracing::Span::current(),
                outcome,
            })
            .await?;
        match written {
            Written::Decided => {
                let reason_code = reason_code.as_deref().unwrap_or("");
                METRICS
                    .decisions
                    .with_label_values(&[decision.name(), reason_code])
                    .inc();
                // Info, though it costs a formatted write per payment: an
                // operator searching the logs for a payment's correlation id
                // must find its decision (PAYSTREAM_LOG=warn turns it off).
                tracing::info!(%payment_id, decision = decision.name(), reason_code, "payment decided");
            }
            Written::AlreadyDecided => {
                tracing::warn!(%payment_id, "payment submitted again under another eventId; its first decision stands");
            }
            Written::Duplicate => {
                METRICS.duplicates.inc();
                tracing::debug!(%payment_id, "processed meanwhile by another delivery; this attempt is dropped");
            }
        }
        Ok(())
    }
}

impl Validator {
    async fn decide(&self, payment: &PaymentSubmitted) -> Result<Outcome, HandlerError> {
        let mut outcome = Outcome::default();
        if let Err(rejection) = self.rules.check(payment) {
            outcome.reject(rejection.code, rejection.text);
            return Ok(outcome);
        }
        let span = screening::screening_span(payment.payment_id);
        if let Some(ip) = &payment.client_ip {
            self.check_ip(payment, ip, &span, &mut outcome).await?;
            if outcome.rejection.is_some() {
                return Ok(outcome);
            }
        }
        let (debtor, creditor) = futures::join!(
            screening::screen_party(
                &self.aml,
                Role::Debtor,
                &payment.debtor,
                &span,
                self.screening_bound
            ),
            screening::screen_party(
                &self.aml,
                Role::Creditor,
                &payment.creditor,
                &span,
                self.screening_bound
            ),
        );
        for (role, party, result) in [
            (Role::Debtor, &payment.debtor, debtor),
            (Role::Creditor, &payment.creditor, creditor),
        ] {
            self.judge_screening(role, party, result, &mut outcome)?;
        }
        Ok(outcome)
    }

    async fn check_ip(
        &self,
        payment: &PaymentSubmitted,
        ip: &str,
        span: &tracing::Span,
        outcome: &mut Outcome,
    ) -> Result<(), HandlerError> {
        let checked = match screening::check_ip(
            &self.ip_intelligence,
            ip,
            span,
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
            kind: CheckKind::Ip,
            party_role: Role::Debtor,
            party_name: payment.debtor.name.clone(),
            outcome: if anonymised || mismatch {
                "FLAGGED"
            } else {
                "CLEAR"
            },
            matched_list: None,
            matched_entry: None,
            score_permille: None,
            details: checked.raw,
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
                party: (Role::Debtor, payment.debtor.name.clone()),
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
                party: (Role::Debtor, payment.debtor.name.clone()),
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
        role: Role,
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
                        role.lower(),
                        self.screening_bound
                    ),
                );
                return Ok(());
            }
            Err(refused @ CallError::Refused { .. }) => {
                return Err(HandlerError::permanent(refused));
            }
        };
        let Checked {
            answer,
            raw,
            latency,
            at,
        } = checked;
        let best = answer.matches.first();
        outcome.screenings.push(ScreeningRow {
            kind: CheckKind::Aml,
            party_role: role,
            party_name: party.name.clone(),
            outcome: answer.risk_level.name(),
            matched_list: best.map(|m| m.list.clone()),
            matched_entry: best.map(|m| format!("{} ({})", m.reference, m.listed_name)),
            score_permille: Some(permille(answer.score)),
            details: raw,
            latency_ms: millis(latency),
            at,
        });
        let (severity, code, verdict) = match answer.risk_level {
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
            role.lower(),
            party.name
        );
        outcome.alerts.push(Alert {
            severity,
            rule_code: SANCTIONS_RULE,
            party: (role, party.name.clone()),
            matched: best.map(|m| {
                (
                    m.list.clone(),
                    format!("{} ({})", m.reference, m.listed_name),
                )
            }),
            score_permille: Some(permille(answer.score)),
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
}
